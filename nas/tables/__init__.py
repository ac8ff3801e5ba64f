"""Published tables of trained networks: ground truth that nobody here wrote (torch-free).

A *table* is JSONL (optionally gzip-compressed), one object per network::

    {"genotype": {...the dict a genotype YAML holds...}, "metrics": {"accuracy": 0.9313, "runs": [...], ...}}

``metrics.accuracy`` is in [0, 1] (the mean over the table's runs where it has several); ``runs`` (optional)
the per-run accuracies; any other metric is kept as given (``params``, ``flops``, ...). Networks are keyed by
the hash of their canonical genotype (:func:`nas.rules.canonical`), so the codes of a published table that
build one network (e.g. NAS-Bench-Macro's identities placed differently after a stage's first layer) are one
entry, and a genotype drawn from a space finds its entry however its options were spelt.

Shipped tables (``nas table list``): ``nas-bench-macro`` (Su et al., CVPR 2021; Apache-2.0, see
``nas/tables/files/NOTICE``). :func:`convert` turns a published file keyed by per-layer codes into a table
for a space (``nas table convert``), so a user can plug in a table of their own.
"""

from __future__ import annotations

import gzip
import io
import json
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nas import rules
from nas.errors import InputError
from nas.genotype import Genotype, from_dict
from nas.io import atomic_write

__all__ = ["SHIPPED", "Table", "accuracy_of", "convert", "load", "resolve", "write"]

_FILES = Path(__file__).parent / "files"
#: The tables that ship inside the package, by name.
SHIPPED: dict[str, Path] = {"nas-bench-macro": _FILES / "nas-bench-macro.jsonl.gz"}
_CACHE: dict[tuple[str, int, int], Table] = {}


@dataclass
class Table:
    """A loaded table: ``lookup`` by genotype, ``items`` over its distinct networks."""

    source: str
    entries: dict[str, tuple[Genotype, dict[str, Any]]] = field(repr=False)

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, genotype: Genotype) -> bool:
        return _key(genotype) in self.entries

    def items(self) -> Iterator[tuple[Genotype, dict[str, Any]]]:
        """``(genotype, metrics)`` of every distinct network, in file order."""
        return iter(self.entries.values())

    def lookup(self, genotype: Genotype) -> dict[str, Any]:
        """The metrics of ``genotype``'s network; :class:`InputError` when the table does not hold it."""
        hit = self.entries.get(_key(genotype))
        if hit is None:
            raise InputError(f"{self.source}: no network {genotype.hash} ({genotype.summary()}) in this table of "
                             f"{len(self):,} networks (is the space the table's?)")
        return hit[1]

    def accuracy(self, genotype: Genotype, run: int | None = None) -> float:
        """The mean accuracy, or run ``run % len(runs)`` of the table's runs (the mean where it has none)."""
        return accuracy_of(self.lookup(genotype), run)


def accuracy_of(metrics: Mapping[str, Any], run: int | None = None) -> float:
    runs = metrics.get("runs") or []
    if run is not None and runs:
        return float(runs[run % len(runs)])
    return float(metrics["accuracy"])


def _key(genotype: Genotype) -> str:
    return rules.canonical(genotype).hash


def resolve(spec: str | os.PathLike[str]) -> Path:
    """A shipped table's file by name, else the path as given; :class:`InputError` when neither exists."""
    text = str(spec)
    if text in SHIPPED:
        return SHIPPED[text]
    path = Path(text).expanduser()
    if not path.is_file():
        raise InputError(f"{text}: no such table file (shipped tables: {', '.join(SHIPPED)})")
    return path


def load(spec: str | os.PathLike[str]) -> Table:
    """The table of a file (``.jsonl`` or ``.jsonl.gz``) or shipped name; read once per process and file."""
    path = resolve(spec)
    st = path.stat()
    key = (str(path.resolve()), st.st_mtime_ns, st.st_size)
    table = _CACHE.get(key)
    if table is None:
        table = _CACHE[key] = _read(path, str(spec) if str(spec) in SHIPPED else str(path))
    return table


def _open_text(path: Path) -> io.TextIOBase:
    with open(path, "rb") as f:
        gz = f.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rt", encoding="utf-8") if gz else open(path, encoding="utf-8")  # noqa: SIM115


def _read(path: Path, source: str) -> Table:
    entries: dict[str, tuple[Genotype, dict[str, Any]]] = {}
    try:
        with _open_text(path) as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                where = f"{source}: line {n}"
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as e:
                    raise InputError(f"{where}: not JSON ({e.msg})") from None
                if not isinstance(obj, dict) or not isinstance(obj.get("genotype"), dict):
                    raise InputError(f"{where}: genotype: expected an object holding a genotype")
                metrics = obj.get("metrics")
                acc = metrics.get("accuracy") if isinstance(metrics, dict) else None
                if isinstance(acc, bool) or not isinstance(acc, (int, float)) or not 0 <= acc <= 1:
                    raise InputError(f"{where}: metrics.accuracy: expected a number in [0, 1], got {acc!r}")
                runs = metrics.get("runs")
                if runs is not None and not (isinstance(runs, list) and all(
                        isinstance(r, (int, float)) and not isinstance(r, bool) and 0 <= r <= 1 for r in runs)):
                    raise InputError(f"{where}: metrics.runs: expected a list of numbers in [0, 1]")
                g = rules.canonical(from_dict(obj["genotype"], where))
                entries.setdefault(g.hash, (g, metrics))
    except (OSError, EOFError, gzip.BadGzipFile, UnicodeDecodeError) as e:
        raise InputError(f"{source}: cannot read the table ({e.__class__.__name__}: {e})") from None
    if not entries:
        raise InputError(f"{source}: the table holds no network")
    return Table(source, entries)


def write(path: str | os.PathLike[str], rows: Sequence[tuple[Genotype, Mapping[str, Any]]]) -> int:
    """Write ``(genotype, metrics)`` rows as a table (gzip when the name ends in ``.gz``); returns the number of
    distinct networks written (rows of one network after the first are dropped)."""
    seen: set[str] = set()
    lines = []
    for g, metrics in rows:
        c = rules.canonical(g)
        if c.hash in seen:
            continue
        seen.add(c.hash)
        lines.append(json.dumps({"genotype": c.to_dict(), "metrics": dict(metrics)}, sort_keys=False))
    data = ("\n".join(lines) + "\n").encode()
    path = Path(path)
    if path.name.endswith(".gz"):
        data = gzip.compress(data, compresslevel=9, mtime=0)
    atomic_write(path, data)
    return len(lines)


def convert(raw: Mapping[str, Any], decode: Callable[[str], Genotype], *, accuracy: str, runs: str | None = None,
            scale: float = 1.0, keep: Sequence[str] = (), source: str = "<table>",
            ) -> list[tuple[Genotype, dict[str, Any]]]:
    """Rows of a published table keyed by codes: ``decode(code)`` is the genotype of a code; ``accuracy`` and
    ``runs`` name the entry's fields (times ``scale``, e.g. 0.01 for percentages); ``keep``: other fields
    copied as they are. Codes of one network must agree on their accuracy (else :class:`InputError`)."""
    rows: list[tuple[Genotype, dict[str, Any]]] = []
    first: dict[str, tuple[str, float]] = {}
    for code, entry in raw.items():
        where = f"{source}: {code}"
        if not isinstance(entry, Mapping) or accuracy not in entry:
            raise InputError(f"{where}: {accuracy}: missing")
        g = decode(code)
        metrics: dict[str, Any] = {"accuracy": _scaled(entry[accuracy], scale, f"{where}: {accuracy}")}
        if runs is not None:
            vals = entry.get(runs)
            if not isinstance(vals, list):
                raise InputError(f"{where}: {runs}: expected a list")
            metrics["runs"] = [_scaled(v, scale, f"{where}: {runs}") for v in vals]
        metrics.update({k: entry[k] for k in keep if k in entry})
        metrics["code"] = code
        h = rules.canonical(g).hash
        if h in first and abs(first[h][1] - metrics["accuracy"]) > 1e-9:
            raise InputError(f"{where}: builds the same network as {first[h][0]} but its accuracy differs "
                             f"({metrics['accuracy']} vs {first[h][1]}): is the decoding right?")
        first.setdefault(h, (code, metrics["accuracy"]))
        rows.append((g, metrics))
    return rows


def _scaled(v: Any, scale: float, where: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise InputError(f"{where}: expected a number, got {v!r}")
    x = float(v) * scale
    if not 0 <= x <= 1:
        raise InputError(f"{where}: {v!r} x {scale} = {x:g} is not an accuracy in [0, 1] (use --scale 0.01 for "
                         "percentages)")
    return x
