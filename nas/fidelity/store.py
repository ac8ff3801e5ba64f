"""A fidelity study's directory: ``fidelity.json`` (its settings) and ``runs.jsonl`` (one line per finished run).

``runs.jsonl`` is the source of truth: each finished (architecture, recipe,
seed) run is appended as one JSON line, flushed and fsync'ed before the next
is awaited, so a crash loses at most the runs in progress. A last line cut
short by a crash mid-write is dropped (with a note) and trained again; any
other line that is not a run record stops the study with the file and line.

``fidelity.json`` holds what the runs depend on: the space file's SHA-256,
N, the seeds, the sampling seed, the data override, the recipes, and the
sampled architectures themselves (so a resumed study never depends on the
sampler drawing the same ones again). A rerun whose settings differ is
refused with the first field that differs.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

from nas.errors import InputError
from nas.genotype import Genotype, from_dict
from nas.io import atomic_write, atomic_write_json, read_text

SETTINGS_FILE = "fidelity.json"
RUNS_FILE = "runs.jsonl"
SCHEMA = "nas.fidelity/1"
#: Settings compared on a rerun, in the order a difference is reported.
COMPARED = ("space_sha256", "n", "seeds", "sample_seed", "data", "recipes", "reference")
_MAX_SETTINGS_BYTES = 64 * 2**20


@dataclass(frozen=True)
class Run:
    """One finished training: ``accuracy`` in [0, 1], ``seconds`` of training wall time."""

    arch: str  # Genotype.hash
    recipe: str
    seed: int
    accuracy: float
    seconds: float

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.arch, self.recipe, self.seed)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def file_sha256(path: str | Path) -> str:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError as e:
        raise InputError(f"{path}: cannot read ({e.strerror or e.__class__.__name__})") from None


def _plain(value: Any) -> Any:
    """The value as JSON gives it back (tuples become lists), so stored and new settings compare equal."""
    return json.loads(json.dumps(value))


def _short(value: Any, limit: int = 80) -> str:
    text = json.dumps(value, separators=(",", ":"))
    return text if len(text) <= limit else text[:limit - 3] + "..."


def open_settings(out: Path, settings: dict[str, Any], sample: Any) -> list[Genotype]:
    """The study's architectures: those stored in ``out/fidelity.json`` when its settings equal ``settings``,
    else (a new study) ``sample()``'s, stored with the settings. Differing settings are an ``InputError``."""
    path = out / SETTINGS_FILE
    settings = _plain(settings)
    if path.exists():
        stored = _read_settings(path)
        for key in COMPARED:
            if stored.get(key) != settings.get(key):
                raise InputError(f"{path}: {key}: this study was run with {_short(stored.get(key))}, not "
                                 f"{_short(settings.get(key))}; use another output directory for other settings")
        return _stored_architectures(path, stored)
    genotypes = list(sample())
    atomic_write_json(path, {"schema": SCHEMA, **settings,
                             "architectures": [{"hash": g.hash, "genotype": g.to_dict()} for g in genotypes]},
                      fsync=True)
    return genotypes


def _read_settings(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(read_text(path, max_bytes=_MAX_SETTINGS_BYTES, what="fidelity settings file"))
    except ValueError as e:
        raise InputError(f"{path}: top level: not valid JSON ({e})") from None
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        raise InputError(f"{path}: schema: not a fidelity study's settings (expected schema {SCHEMA!r})")
    return doc


def _stored_architectures(path: Path, doc: dict[str, Any]) -> list[Genotype]:
    archs = doc.get("architectures")
    if not isinstance(archs, list) or len(archs) != doc.get("n"):
        raise InputError(f"{path}: architectures: expected a list of {doc.get('n')} architectures")
    out = []
    for i, a in enumerate(archs):
        where = f"{path}: architectures[{i}]"
        if not isinstance(a, dict) or not isinstance(a.get("genotype"), dict):
            raise InputError(f"{where}: expected {{hash, genotype}}")
        g = from_dict(a["genotype"], where)
        if g.hash != a.get("hash"):
            raise InputError(f"{where}.hash: {a.get('hash')!r} is not the genotype's hash {g.hash!r}")
        out.append(g)
    return out


class RunLog:
    """The finished runs of ``runs.jsonl`` and an appender for new ones.

    Opening it drops a torn last line from the file (so the next append starts a clean line) and says so in
    :attr:`notes`; ``valid(run)`` decides which records belong to the study (a record that does not is an
    ``InputError`` naming the line). ``parse`` turns a JSON object into a record with ``key`` and ``to_dict``
    (:class:`Run` by default; ``nas.export.final`` keeps its test-split runs in a log of its own kind).
    """

    def __init__(self, path: Path, valid: Any = None, parse: Any = None) -> None:
        parse = parse or _parse
        self.path = path
        self.notes: list[str] = []
        self.runs: dict[tuple[str, str, int], Run] = {}
        self._f: IO[str] | None = None
        if not path.exists():
            return
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise InputError(f"{path}: cannot read ({e.__class__.__name__})") from None
        lines = text.split("\n")
        tail = lines.pop()  # after the final newline: "" unless the last write was cut short
        if tail.strip():
            try:
                parse(json.loads(tail))
                lines.append(tail)
                text += "\n"
            except (ValueError, TypeError, KeyError):
                self.notes.append(f"{path}: line {len(lines) + 1}: skipped a run cut short while it was written "
                                  "(a crash?); it is trained again")
                text = text[:len(text) - len(tail)]
            atomic_write(path, text, fsync=True)
        for i, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                run = parse(json.loads(line))
            except (ValueError, TypeError, KeyError) as e:
                raise InputError(f"{path}: line {i}: not a run record ({e.__class__.__name__}: {e}); repair or "
                                 "remove the line to resume, nothing was changed") from None
            if valid is not None and not valid(run):
                raise InputError(f"{path}: line {i}: a run of architecture {run.arch}, recipe {run.recipe!r}, seed "
                                 f"{run.seed} is not part of this study's settings")
            if run.key in self.runs:
                self.notes.append(f"{path}: line {i}: a second record of {run.key} ignored; the first is kept")
                continue
            self.runs[run.key] = run

    def append(self, run: Run) -> None:
        """Record ``run`` durably (flushed and fsync'ed) before returning."""
        if self._f is None:
            # Append mode is the point here: an atomic rewrite per run would copy the whole log every time.
            self._f = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed by close()
        self._f.write(json.dumps(run.to_dict(), separators=(",", ":")) + "\n")
        self._f.flush()
        os.fsync(self._f.fileno())
        self.runs.setdefault(run.key, run)

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None


def _parse(rec: Any) -> Run:
    if not isinstance(rec, dict):
        raise TypeError("expected a JSON object")
    for key, types in (("arch", str), ("recipe", str), ("seed", int), ("accuracy", (int, float)),
                       ("seconds", (int, float))):
        if not isinstance(rec[key], types) or isinstance(rec[key], bool):
            raise TypeError(f"{key}: wrong type {type(rec[key]).__name__}")
    return Run(rec["arch"], rec["recipe"], int(rec["seed"]), float(rec["accuracy"]), float(rec["seconds"]))
