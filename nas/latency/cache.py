"""This machine's latency table, filled on demand, and the predictor budgets and objectives use (torch).

A search whose space names a latency target but no complete table (``nas
lut build``) times the parts a proposal needs and the table lacks when the
proposal is costed, and keeps them in a table *for this machine*: one JSON
file per (target, device fingerprint) in the cache directory
(``~/.cache/nas/lut/<target>-<device hash>.json``, ``$NAS_CACHE_DIR``
moves it). The search's driver, its trial processes, ``nas lut build`` and a
second search may share that file, so:

* every write is a merge under an exclusive ``flock`` on ``<file>.lock``: re-read
  the file, add the new entries (an entry once written is never replaced, so a
  prediction made from the table stays reproducible), write the whole table with
  :func:`nas.io.atomic_write` (temp file + ``os.replace``); two writers never lose
  each other's entries;
* readers take no lock: a replaced file is always whole, and a predictor re-reads
  it (when its inode or mtime changed) before timing anything, so a part another
  process timed meanwhile is not timed twice;
* a probe-clock table's unit (``unit_ms``, :mod:`nas.latency.measure`) is fixed
  by the first write; entries timed under another unit are rescaled on merge
  (an entry is a probe ratio times the unit, so rescaling is exact). Each
  search measures the probe before it starts and lowers the unit (rescaling
  the whole table) when the machine shows itself faster than the unit says,
  so a table started under load converges on the unloaded speed. A new unit gives
  the table a new id (:attr:`nas.cost.table.LatencyTable.table_id`) and keeps the
  old one in its ``history``, so a prediction that names the old id is reproduced
  exactly (:meth:`LatencyTable.factor_to`); a new calibration (``nas lut build``)
  is recorded there too, as a change;
* a cache made by an earlier measurement protocol (``protocol``,
  :data:`nas.cost.table.PROTOCOL`) is not mixed with new entries: it is set aside
  with a logged warning and a new table started.

A search also keeps the entries its predictions used in its study directory
(:data:`STUDY_TABLE`, :meth:`LatencyPredictor.keep_in`), so ``nas export-best``
predicts its members from the very table the search used, with this machine's
cache or without it.

Parts are timed *in context* (inside the proposed network itself, by forward
hooks, as ``nas lut build`` times them) by the protocol :data:`ON_DEMAND`: short,
because a search needs tens of new parts per proposal and a proposal waits
for them. A table measured elsewhere (another target or device, e.g. a phone's
or a GPU's, given as ``budgets.lut``) is used as is: nothing is timed for
it, and a missing part is an InputError naming the part.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nas.config import Target
from nas.cost.parts import Part, parts
from nas.cost.table import PROTOCOL, LatencyTable, table_from_dict
from nas.errors import InputError
from nas.genotype import Genotype
from nas.latency.device import device_hash, device_info, get_target, on_this_machine
from nas.latency.protocol import ON_DEMAND, Protocol

log = logging.getLogger(__name__)

#: A probe latency this much below a table's unit replaces it (the entries are rescaled).
UNIT_SLACK = 0.03
#: ``nas search`` warns when this machine's probe unit differs from the one a space's limits were derived with
#: (``budgets.unit_ms``) by more than this share: the budget then stands for another network here.
UNIT_WARN = 0.15
#: The file in a study directory holding the entries its latency predictions used (a table file).
STUDY_TABLE = "latency_table.json"


def cache_dir() -> Path:
    env = os.environ.get("NAS_CACHE_DIR")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "nas" / "lut"


def cache_path(target: Target) -> Path:
    """This machine's cache file for ``target``."""
    return cache_dir() / f"{target.name}-{device_hash(target)}.json"


def load_cache(target: Target, path: str | Path | None = None) -> LatencyTable:
    """The cached entries for ``target`` on this machine (an empty table when there are none).

    An unreadable cache is ignored with a logged warning (it only saves time; the
    next write replaces it); one for another target or device is an InputError.
    """
    p = Path(path) if path is not None else cache_path(target)
    empty = LatencyTable(target=target, device=device_info(target), source=str(p), protocol=PROTOCOL)
    try:
        table = table_from_dict(json.loads(p.read_text(encoding="utf-8")), str(p))
    except FileNotFoundError:
        return empty
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, InputError) as e:
        log.warning("ignoring unreadable latency cache %s (%s)", p, str(e).splitlines()[0][:120])
        return empty
    if table.target != target or table.device != empty.device:
        raise InputError(f"{p}: target: this cache holds {table.target.name} entries measured on "
                         f"{table.device.get('cpu')}, not {target.name} on this machine")
    if table.protocol != PROTOCOL:
        log.warning("latency cache %s was measured by another protocol (%s): starting a new table",
                    p, table.protocol or "before windows")
        return empty
    table.source = str(p)
    return table


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive ``flock`` on ``<path>.lock`` (a file of its own: the table itself is replaced on write)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns


class MachineCache:
    """This machine's table for one target in a file shared by processes (see the module docstring)."""

    def __init__(self, target: str | Target, path: str | Path | None = None) -> None:
        self.target = get_target(target)
        self.path = Path(path) if path is not None else cache_path(self.target)
        self._table: LatencyTable | None = None
        self._stamp: tuple[int, int] | None = None

    def table(self) -> LatencyTable:
        """The table as the file holds it now (read again only when the file was replaced)."""
        stamp = _stamp(self.path)
        if self._table is None or stamp != self._stamp:
            self._table, self._stamp = load_cache(self.target, self.path), stamp
        return self._table

    def unit_ms(self) -> float | None:
        """The probe latency entries are expressed in: the file's, or a fresh one until the first write fixes it."""
        table = self.table()
        if self.target.clock == "probe" and table.unit_ms is None:
            from nas.latency.measure import probe_ms

            table.unit_ms = round(probe_ms(), 6)
        return table.unit_ms

    def refine_unit(self, unit_ms: float) -> LatencyTable:
        """Take ``unit_ms`` (a probe latency measured now) as the table's unit if it is the first, or faster than
        the table's by more than :data:`UNIT_SLACK`: every entry (and the calibration offset) is rescaled, so
        the table converges on the machine's unloaded speed over the searches that use it."""
        with _locked(self.path):
            current = load_cache(self.target, self.path)
            old = current.unit_ms
            if old is not None and unit_ms >= old * (1 - UNIT_SLACK):
                self._table, self._stamp = current, _stamp(self.path)
                return current
            if old is not None:
                current.history = [*current.history, {"id": current.table_id, "unit_ms": old}]
                f = unit_ms / old
                current.entries = {k: {**e, "ms": round(e["ms"] * f, 5), "iqr": round(e.get("iqr", 0.0) * f, 5)}
                                   for k, e in current.entries.items()}
                current.calibration = {**current.calibration,
                                       "offset_ms": float(current.calibration["offset_ms"]) * f}
            current.unit_ms = round(unit_ms, 6)
            current.save(self.path)
            self._table, self._stamp = current, _stamp(self.path)
        return current

    def add(self, entries: Mapping[str, dict[str, Any]], unit_ms: float | None = None,
            calibration: dict[str, Any] | None = None) -> LatencyTable:
        """Merge ``entries`` (measured with the probe latency ``unit_ms``) into the file, under the lock.

        A key already in the file keeps its entry (predictions made from it stay as they were). ``calibration``
        replaces the file's (``nas lut build`` stores its latest one, for predictions straight from the cache;
        the table's id changes with it, and the old id is kept in ``history`` as changed).
        """
        with _locked(self.path):
            current = load_cache(self.target, self.path)
            if current.unit_ms is None:
                current.unit_ms = unit_ms
            factor = current.unit_ms / unit_ms if current.unit_ms and unit_ms else 1.0
            for key, e in entries.items():
                if factor != 1.0:
                    e = {**e, "ms": round(e["ms"] * factor, 5), "iqr": round(e.get("iqr", 0.0) * factor, 5)}
                if key not in current.entries:
                    current.entries[key] = e
            if calibration is not None and calibration != current.calibration:
                if current.entries:
                    current.history = [*current.history, {"id": current.table_id, "unit_ms": current.unit_ms or 1.0,
                                                          "changed": "calibration"}]
                current.calibration = calibration
            current.save(self.path)
            self._table, self._stamp = current, _stamp(self.path)
        return current


@dataclass
class TimingStats:
    """What timing on demand has cost a predictor so far."""

    seconds: float = 0.0  # all of it: timing parts and measuring the probe unit
    parts: int = 0  # parts timed
    networks: int = 0  # networks they were timed in
    unit_s: float = 0.0  # measuring the probe unit (:meth:`LatencyPredictor.prepare`)


class LatencyPredictor:
    """``genotype -> predicted ms``: ``scale * sum(entries) + offset_ms`` over a table, timing what it lacks.

    ``lut``: a table file's contents (``budgets.lut``), or None for this machine's table alone. Parts the
    table lacks are looked up in this machine's cache and otherwise timed on demand and added to it, but only
    when the table was measured here (a table of another device is used as is; a missing part is then an
    InputError naming it). Cache entries used with a probe-clock table are rescaled to the table's unit.
    ``protocol``: how parts are timed on demand (default :data:`ON_DEMAND`). :attr:`table_id` names the table
    a prediction came from; :meth:`keep_in` keeps the entries used in a file of their own (a study's).
    """

    def __init__(self, target: str | Target | None = None, lut: LatencyTable | None = None,
                 num_classes: int = 1000, cache: MachineCache | str | Path | None = None,
                 protocol: Protocol | None = None) -> None:
        if lut is None and target is None:
            raise InputError("budgets.target: latency prediction needs a target or a lut")
        self.lut = lut
        self.num_classes = num_classes
        self.protocol = protocol or ON_DEMAND
        self.stats = TimingStats()
        self.ledger: MachineCache | None = None
        self.derived_unit_ms: float | None = None  # budgets.unit_ms (see prepare)
        #: Entered around each timing (a search pauses its local trials: ``nas.search.quiet.trials_paused``).
        self.quiet: Callable[[], contextlib.AbstractContextManager] | None = None
        local = lut is None or on_this_machine(lut)
        tgt = lut.target if lut is not None else get_target(target)
        if not local:
            self.cache = None
        elif isinstance(cache, MachineCache):
            self.cache = cache
        else:
            self.cache = MachineCache(tgt, cache)

    def prepare(self) -> None:
        """Measure the probe unit now and give it to this machine's table (:meth:`MachineCache.refine_unit`); a
        search calls this before it starts training, when the machine is quietest. The 2 s it takes count as
        timing."""
        if self.cache is not None and self.cache.target.clock == "probe":
            from nas.latency.measure import probe_ms

            t0 = time.perf_counter()
            now = probe_ms()
            self.cache.refine_unit(now)
            dt = time.perf_counter() - t0
            self.stats.seconds += dt
            self.stats.unit_s += dt
            self.check_unit(now)

    def check_unit(self, unit_ms: float) -> str | None:
        """A warning (logged, and returned) when ``unit_ms``, this machine's probe unit, is more than
        :data:`UNIT_WARN` away from ``budgets.unit_ms``, the one the space's latency limits were derived with."""
        ref = self.derived_unit_ms
        if not ref or abs(unit_ms / ref - 1) <= UNIT_WARN:
            return None
        msg = (f"budgets.unit_ms: this machine's probe unit is {unit_ms:.3f} ms, {abs(unit_ms / ref - 1):.0%} "
               f"{'slower' if unit_ms > ref else 'faster'} than the {ref:g} ms the space's latency budget and tiers "
               "were derived with: they stand for other networks here (re-derive them with `nas lut budgets "
               "--space ...`)")
        log.warning(msg)
        return msg

    def keep_in(self, path: str | Path) -> None:
        """Also write every entry a prediction uses to the table file ``path`` (a search's study directory,
        :data:`STUDY_TABLE`), in this predictor's unit and with its calibration, so the study's predictions
        can be made again from that file alone (``nas export-best``), whatever this machine's cache holds."""
        if self.lut is None:  # a table file (budgets.lut) is its own record
            self.ledger = MachineCache(self.target, path)

    @property
    def target(self) -> Target:
        return self.lut.target if self.lut is not None else self.cache.target  # type: ignore[union-attr]

    def table(self) -> LatencyTable:
        """The table predictions come from now (the lut's, else this machine's)."""
        return self.lut if self.lut is not None else self.cache.table()  # type: ignore[union-attr]

    @property
    def table_id(self) -> str:
        """The id (:attr:`LatencyTable.table_id`) of the table predictions come from now."""
        return self.table().table_id

    def provenance(self) -> dict[str, Any]:
        """Where predictions come from: table id, probe unit, protocol, target (thread count) and device."""
        t = self.table()
        return {"table": t.table_id, "unit_ms": t.unit_ms, "protocol": t.protocol, "target": t.target.name,
                "threads": t.target.threads, "device": dict(t.device), "source": t.source}

    @property
    def measures(self) -> bool:
        """Whether parts missing from the table are timed on this machine."""
        return self.cache is not None

    def __call__(self, genotype: Genotype) -> float:
        ps = parts(genotype, self.num_classes)
        ms = self._lookup(ps)
        missing = [p for p in ps if p.key not in ms]
        if missing:
            if self.cache is None:
                src = self.lut.source if self.lut is not None else "latency table"
                raise InputError(f"{src}: entries: no entry for {missing[0].key} ({len(set(p.key for p in missing))} "
                                 "part(s) missing; the table was measured on another device, so nothing is timed "
                                 "here: rebuild it for this space with `nas lut build` there)")
            self._time(genotype, missing)
            ms = self._lookup(ps)
        table = self.table()
        if self.ledger is not None:
            self._keep(table, ms)
        cal = table.calibration
        return float(cal["scale"]) * sum(ms[p.key] for p in ps) + float(cal["offset_ms"])

    def _keep(self, table: LatencyTable, ms: Mapping[str, float]) -> None:
        assert self.ledger is not None
        kept = self.ledger.table()
        new = {k: {"ms": round(v, 5)} for k, v in ms.items() if k not in kept.entries}
        if new or kept.calibration != table.calibration and not kept.entries:
            self.ledger.add(new, table.unit_ms, calibration=table.calibration)

    def _lookup(self, ps: list[Part]) -> dict[str, float]:
        found: dict[str, float] = {}
        own = self.lut.entries if self.lut is not None else {}
        cached = self.cache.table() if self.cache is not None else None
        factor = 1.0
        if cached is not None and self.lut is not None and self.lut.unit_ms and cached.unit_ms:
            factor = self.lut.unit_ms / cached.unit_ms
        for p in ps:
            if p.key in own:
                found[p.key] = own[p.key]["ms"]
            elif cached is not None and p.key in cached.entries:
                found[p.key] = cached.entries[p.key]["ms"] * factor
        return found

    def _time(self, genotype: Genotype, missing: list[Part]) -> None:
        from nas.latency.measure import deployed, measure_in_context, measure_parts

        assert self.cache is not None
        t0 = time.perf_counter()
        target, unit = self.cache.target, self.cache.unit_ms()
        net = deployed(genotype, self.num_classes) if target.backend == "torch-cpu" else None
        with self.quiet() if self.quiet is not None else contextlib.nullcontext():
            if net is not None:
                found = measure_in_context([genotype], target, self.num_classes, unit_ms=unit, built=[net],
                                           protocol=self.protocol)
            else:
                found = measure_parts(list({p.key: p for p in missing}.values()), target, unit_ms=unit,
                                      protocol=self.protocol)
        keys = {p.key for p in missing}
        self.cache.add({k: m.to_dict() for k, m in found.items() if k in keys}, unit)
        self.stats.seconds += time.perf_counter() - t0
        self.stats.parts += len(keys)
        self.stats.networks += 1
