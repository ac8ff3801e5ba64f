"""Latency lookup tables: the file format, reading and writing, and prediction from a table (torch-free).

A :class:`LatencyTable` holds, for one target (:class:`nas.config.Target`)
on one device, the measured latency of every part key
(:mod:`nas.cost.parts`) and a calibration fitted on whole networks. A
network's predicted latency is ``scale * sum(entries) + offset_ms`` (the
glue between parts; with parts timed alone also the cache and fusion
effects they miss). Tables are built and measured by :mod:`nas.latency`
(torch); reading them and predicting from them needs no torch.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from nas.config import ALIASES, TARGETS, Target
from nas.cost.parts import Part, part_keys, parts
from nas.errors import InputError
from nas.genotype import Genotype
from nas.io import atomic_write

LUT_VERSION = 1
#: The measurement protocol tables are made with now (:mod:`nas.latency.protocol`): windows of passes, the median
#: per window, repeats until the interval is narrow, parts chained so they add up to their network. A table
#: records its own (``windows-p25-chained-1``: the 25th percentile per window; tables without one were made by the
#: earlier protocol, medians of fixed rounds).
PROTOCOL = "windows-p50-chained-1"

#: Measures the parts a table lacks: ``(genotype, missing parts, table, num_classes) -> {key: entry}``
#: (:func:`nas.latency.measure_missing`).
MeasureMissing = Callable[[Genotype, list[Part], "LatencyTable", int], Mapping[str, dict[str, Any]]]


def find_target(target: str | Target) -> Target | None:
    """A preset by name or alias (or the target itself); ``None`` for an unknown name."""
    if isinstance(target, Target):
        return target
    return TARGETS.get(ALIASES.get(target, target))


def fingerprint(target: Target, device: Mapping[str, Any]) -> str:
    """Short fingerprint of (target, device): tables and caches with the same one are interchangeable."""
    blob = json.dumps({"target": asdict(target), "device": dict(device)}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


@dataclass
class LatencyTable:
    """A versioned lookup table of per-part latencies for one target on one device."""

    target: Target
    device: dict[str, Any]
    entries: dict[str, dict[str, Any]] = field(default_factory=dict)
    calibration: dict[str, Any] = field(default_factory=lambda: {"scale": 1.0, "offset_ms": 0.0})
    space: str = ""
    num_classes: int = 1000
    unit_ms: float | None = None  # the probe's latency, for ``probe``-clock targets (see nas.latency.measure)
    source: str = "<table>"
    protocol: str = ""  # how its entries were measured (PROTOCOL when made by this version)
    history: list[dict[str, Any]] = field(default_factory=list)  # earlier ids of this table: {"id", "unit_ms"}

    @property
    def table_id(self) -> str:
        """What a prediction from this table depends on besides its entries (which are never replaced once
        written): target, device (CPU, cores, machine, torch; the target's thread count), probe unit,
        calibration and protocol. A prediction names it (trial records' ``latency_table``); a re-measured unit
        or a new calibration gives the table a new id and keeps the old one in ``history``."""
        cal = {k: self.calibration.get(k) for k in ("scale", "offset_ms")}
        blob = json.dumps({"target": asdict(self.target), "device": dict(self.device), "unit_ms": self.unit_ms,
                           "calibration": cal, "protocol": self.protocol}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    def factor_to(self, table_id: str) -> float | None:
        """What this table's predictions are multiplied by to give the predictions of its version ``table_id``
        (1 for itself; the ratio of units for an earlier unit, which rescaled every entry exactly); None for an
        id this table never had (its predictions then changed: say so)."""
        if table_id == self.table_id:
            return 1.0
        for h in self.history:
            if h.get("id") == table_id and not h.get("changed") and h.get("unit_ms") and self.unit_ms:
                return float(h["unit_ms"]) / float(self.unit_ms)
        return None

    def to_dict(self) -> dict[str, Any]:
        d = {"version": LUT_VERSION, "id": self.table_id, "target": asdict(self.target), "device": self.device,
             "device_hash": fingerprint(self.target, self.device), "space": self.space,
             "num_classes": self.num_classes, "unit_ms": self.unit_ms, "protocol": self.protocol,
             "calibration": self.calibration, "entries": dict(sorted(self.entries.items()))}
        if self.history:
            d["history"] = self.history
        return d

    def save(self, path: str | Path) -> None:
        """Write atomically: an interrupted write never leaves half a table behind."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(p, self.to_json())

    def to_json(self) -> str:
        """Readable JSON: one line per entry and per calibration point, so diffs stay small."""
        d = self.to_dict()
        entries, cal = d.pop("entries"), dict(d.pop("calibration"))
        points = cal.pop("points", None)
        lines = [json.dumps(d, indent=1)[:-2] + ","]
        cal_items = [f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in cal.items()]
        if points is not None:
            cal_items.append('  "points": [' + ", ".join(json.dumps(pt) for pt in points) + "]")
        lines.append(' "calibration": {\n' + ",\n".join(cal_items) + "\n },")
        body = ",\n".join(f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in entries.items())
        lines.append(' "entries": {\n' + body + ("\n" if body else "") + " }\n}\n")
        return "\n".join(lines)

    def missing(self, genotype: Genotype, num_classes: int | None = None) -> list[str]:
        keys = part_keys(genotype, self.num_classes if num_classes is None else num_classes)
        return [k for k in dict.fromkeys(keys) if k not in self.entries]


def _bad(source: str, where: str, problem: str) -> InputError:
    return InputError(f"{source}: {where}: {problem}")


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def table_from_dict(data: Any, source: str = "<table>") -> LatencyTable:
    """Validate the JSON form of a table; every problem is one InputError line naming the field."""
    if not isinstance(data, dict):
        raise _bad(source, "top level", "not a latency table (expected a JSON object)")
    if data.get("version") != LUT_VERSION:
        raise _bad(source, "version", f"unsupported table version {data.get('version')!r} (expected {LUT_VERSION})")
    for k in ("target", "device", "entries", "calibration"):
        if not isinstance(data.get(k), dict):
            raise _bad(source, k, "expected a JSON object")
    try:
        target = Target(**data["target"])
    except TypeError as e:
        raise _bad(source, "target", f"not a target ({e})") from None
    except InputError as e:
        raise _bad(source, "target", str(e)) from None
    for key, e in data["entries"].items():
        if not isinstance(e, dict) or not _number(e.get("ms")) or e["ms"] < 0:
            raise _bad(source, f"entries[{key!r}].ms", "expected a non-negative number")
    cal = data["calibration"]
    for k in ("scale", "offset_ms"):
        if not _number(cal.get(k)):
            raise _bad(source, f"calibration.{k}", "expected a number")
    nc = data.get("num_classes", 1000)
    if not isinstance(nc, int) or isinstance(nc, bool) or nc < 1:
        raise _bad(source, "num_classes", "expected a positive integer")
    unit = data.get("unit_ms")
    if target.clock == "probe" and not (_number(unit) and unit > 0):
        raise _bad(source, "unit_ms", "expected a positive number (the probe latency of a probe-clock table)")
    history = data.get("history", [])
    if not isinstance(history, list) or not all(
            isinstance(h, dict) and isinstance(h.get("id"), str) and _number(h.get("unit_ms")) for h in history):
        raise _bad(source, "history", "expected a list of {id, unit_ms} objects")
    protocol = data.get("protocol") or ""
    if not isinstance(protocol, str):
        raise _bad(source, "protocol", "expected a string")
    return LatencyTable(target=target, device=data["device"], entries=data["entries"], calibration=cal,
                        space=str(data.get("space", "")), num_classes=nc, unit_ms=unit, source=source,
                        protocol=protocol, history=history)


def load_lut(path: str | Path, target: str | Target | None = None) -> LatencyTable:
    """Read a table written by ``nas lut build``.

    A missing or corrupt file, or (when ``target`` is given) a table for
    another target, is an InputError of one line naming the file.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise _bad(str(p), "lut", "file not found (build one with `nas lut build`)") from None
    except (OSError, UnicodeDecodeError) as e:
        raise _bad(str(p), "lut", f"cannot read file ({e.__class__.__name__})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise _bad(str(p), f"line {e.lineno}", f"not a latency table (invalid JSON: {e.msg})") from None
    table = table_from_dict(data, str(p))
    if target is not None:
        name = target.name if isinstance(target, Target) else ALIASES.get(target, target)
        want = find_target(target)
        if table.target.name != name or (want is not None and table.target != want):
            t = table.target
            raise _bad(str(p), "target", f"table is for target {t.name!r} ({t.backend}, batch {t.batch}, "
                       f"{t.threads} thread(s)), not {name!r}")
    return table


def predict(genotype: Genotype, lut: LatencyTable, *, num_classes: int | None = None,
            measure: MeasureMissing | None = None) -> float:
    """Predicted latency (ms) of ``genotype``: ``scale * sum(entries) + offset_ms``.

    A part whose key is not in the table is measured by ``measure`` and added to ``lut.entries`` (only
    sensible on the table's own device: :func:`nas.latency.measure_missing`); without it, an InputError
    naming the key.
    """
    nc = lut.num_classes if num_classes is None else num_classes
    ps = parts(genotype, nc)
    missing = [p for p in ps if p.key not in lut.entries]
    if missing:
        if measure is None:
            raise _bad(lut.source, "entries", f"no entry for {missing[0].key} ({len(missing)} part(s) missing: "
                       "the table was built for another space; rebuild it or measure on the fly)")
        lut.entries.update(measure(genotype, missing, lut, nc))
    total = sum(lut.entries[p.key]["ms"] for p in ps)
    return float(lut.calibration["scale"]) * total + float(lut.calibration["offset_ms"])


def find_table(path: str | Path, near: str | Path | None = None) -> Path:
    """Where a LUT path written in a space or on a command line points: as typed; else
    relative to ``near`` (the space file's folder); else relative to the checkout, where
    shipped tables live (``luts/...``). The one resolver every caller uses."""
    p = Path(path)
    if p.exists() or p.is_absolute():
        return p
    for base in ([Path(near)] if near is not None else []) + [Path(__file__).resolve().parents[2]]:
        if (base / p).exists():
            return base / p
    return p
