"""Building latency lookup tables: time a space's parts in context, cache them, calibrate; predictors.

Enumeration is :func:`nas.cost.parts.space_parts`, exact and derived from the
rules the space samples with, so every sampled network's parts are in the
table (``tests/test_latency.py`` checks it on ``tiny.yaml``).

Timing in context (torch CPU targets): a part alone, run over and over,
finds its weights and input in cache, which it does not inside a network
(and the probe run between passes evicts them, which the network does not
either). So parts are timed *inside* whole networks by forward hooks
(:func:`nas.latency.measure.measure_in_context`): :func:`carriers` splices
the parts to measure into random networks of the space, at slots of the
same shape, as many per network as fit. Measured here on ``tiny.yaml``, the
in-context parts of a network add up to within a few percent of the whole
network, where parts timed alone were off by 10-20% either way. Other
backends (ONNX Runtime, CUDA) time each part alone as its own model.

Entries also go to a cache per (target, device)
(``~/.cache/nas/lut/<target>-<device hash>.json``; ``$NAS_CACHE_DIR``
moves it), so a second build, or a build for another space sharing parts,
measures only what is new. Calibration then measures a few random whole
networks of the space and fits the offset (and with ``fit="linear"`` the
scale) of ``measured = scale * sum(entries) + offset_ms``.
"""

from __future__ import annotations

import functools
import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from nas.config import Target
from nas.cost.parts import Part, parts, space_parts
from nas.cost.table import PROTOCOL, LatencyTable, find_table, load_lut
from nas.errors import InputError
from nas.genotype import Genotype, GenotypeError
from nas.latency.cache import LatencyPredictor, MachineCache
from nas.latency.device import device_info, get_target
from nas.latency.measure import (
    deployed,
    input_shape,
    measure_in_context,
    measure_many,
    measure_parts,
    probe_ms,
)

log = logging.getLogger(__name__)

FITS = ("offset", "linear")
CHUNK = 32  # carrier networks (or parts timed alone) measured between two cache saves

#: ``task(description, total) -> advance``: how a build reports progress (the CLI draws a bar).
Progress = Callable[[str, int], Callable[[], None]]


# -- carriers: networks to time parts in ---------------------------------------------

def _splice(g: Genotype, index: int, p: Part) -> Genotype:
    """``g`` with its ``index``-th part (stem, blocks..., head) replaced by ``p``."""
    if p.kind == "stem":
        return replace(g, stem=p.spec)
    if p.kind == "head":
        return replace(g, head=p.spec)
    stages, i = [], index - 1
    for stage in g.stages:
        blocks = list(stage)
        if 0 <= i < len(blocks):
            blocks[i] = p.spec
        i -= len(blocks)
        stages.append(tuple(blocks))
    return replace(g, stages=tuple(stages))


def carriers(wanted: dict[str, Part], pool: list[Genotype], num_classes: int) -> tuple[list[Genotype], list[Part]]:
    """Networks holding every wanted part, and the parts no network could hold.

    Each network is one of ``pool`` (random networks of the space) with
    wanted parts spliced into slots of the same shape (input channels and
    resolution, output channels, stride), as many per network as fit; so a
    part is timed among neighbours it can really have.
    """
    left: dict[tuple, list[Part]] = {}
    for p in wanted.values():
        left.setdefault(p.slot, []).append(p)
    out: list[Genotype] = []
    idle = 0
    for g in itertools.cycle(pool):
        if not left or idle == len(pool):
            break
        placed = 0
        for i, slot_part in enumerate(parts(g, num_classes)):
            queue = left.get(slot_part.slot)
            if not queue:
                continue
            try:
                g2 = _splice(g, i, queue[-1])
            except GenotypeError:
                continue
            g, placed = g2, placed + 1
            queue.pop()
            if not queue:
                del left[slot_part.slot]
        idle = 0 if placed else idle + 1
        if placed:
            out.append(g)
    return out, [p for q in left.values() for p in q]


# -- building ------------------------------------------------------------------------

@dataclass
class BuildStats:
    parts: int  # distinct parts of the space
    measured: int  # measured in this build
    reused: int  # taken from the cache
    networks: int  # whole networks measured for the calibration
    seconds: float


def calibrate(table: LatencyTable, networks: list[Genotype], num_classes: int, fit: str = "offset", *,
              on_step: Callable[[], None] | None = None, rounds: int | None = None,
              burst_s: float | None = None) -> dict[str, Any]:
    """Fit ``measured = scale * sum(entries) + offset_ms`` on whole deployed networks.

    Whole networks are measured by the protocol :data:`nas.latency.protocol.WHOLE`
    (``rounds``/``burst_s`` fix the windows instead). ``fit="offset"``: scale
    1 and the median difference as offset (parts timed in context are
    chained, glue included, so they add up to their network: the offset is
    what is left, e.g. the statistic of a sum against the sum of statistics).
    ``"linear"``: least squares on both (parts timed alone miss cache and
    fusion effects that grow with the network), falling back
    to the offset when fewer than 3 networks, too little spread in their
    sums, or a slope outside [0.5, 2] make the slope untrustworthy.
    """
    if not networks:
        return {"scale": 1.0, "offset_ms": 0.0, "networks": 0, "fit": "none"}
    items = {i: (deployed(g, num_classes), input_shape(g, table.target)) for i, g in enumerate(networks)}
    measured = measure_many(items, table.target, rounds=rounds, burst_s=burst_s, unit_ms=table.unit_ms,
                            on_step=on_step)
    s = np.array([sum(table.entries[p.key]["ms"] for p in parts(g, num_classes)) for g in networks])
    m = np.array([measured[i].ms for i in range(len(networks))])
    scale, offset, used = 1.0, float(np.median(m - s)), "offset"
    if fit == "linear" and len(s) >= 3 and s.std() > 0.05 * s.mean():
        a, b = np.linalg.lstsq(np.stack([s, np.ones_like(s)], 1), m, rcond=None)[0]
        if 0.5 <= a <= 2.0:
            scale, offset, used = float(a), float(b), "linear"
    pred = scale * s + offset
    return {"scale": round(scale, 6), "offset_ms": round(offset, 6), "networks": len(networks), "fit": used,
            "mape": round(float(np.mean(np.abs(pred - m) / m)), 5),
            "points": [[round(float(a), 5), round(float(b), 5)] for a, b in zip(s, m, strict=True)]}


def _merge(into: dict[str, dict[str, Any]], found: dict, keys: Any) -> dict[str, dict[str, Any]]:
    """Entries of ``found`` whose key is in ``keys``, keeping the one with most passes when seen twice."""
    new = {}
    for k, m in found.items():
        if k in keys and (k not in into or m.n > into[k]["n"]):
            new[k] = into[k] = m.to_dict()
    return new


def _no_progress(_description: str, _total: int) -> Callable[[], None]:
    return lambda: None


def build_lut(space: Any, target: str | Target, *, out: str | Path | None = None, cache: str | Path | bool = True,
              networks: int = 10, fit: str | None = None, seed: int = 0, rounds: int = 3, burst_s: float = 0.05,
              in_context: bool | None = None, progress: Progress | None = None) -> tuple[LatencyTable, BuildStats]:
    """Measure every part of ``space`` on ``target`` (reusing the cache), calibrate, write ``out``.

    ``cache``: True for this machine's cache file, a path for another, False
    for none. ``in_context`` (default: on torch CPU backends): time parts
    inside carrier networks (:func:`carriers`) rather than alone.
    ``networks``: whole random networks measured for the calibration (0
    skips it: scale 1, offset 0); ``fit``: see :func:`calibrate` (default
    ``offset`` in context, ``linear`` alone). ``progress``: told each task
    (measuring, calibrating) and its size, it returns what to call per step.
    """
    t0 = time.perf_counter()
    task = progress or _no_progress
    target = get_target(target)
    mc = None if cache is False else MachineCache(target, None if cache is True else cache)
    cached = mc.table() if mc is not None else LatencyTable(target=target, device=device_info(target))
    if target.clock == "probe" and cached.unit_ms is None:
        # The unit is fixed once per cache, so that entries measured in different builds add up.
        cached.unit_ms = round(probe_ms(), 6)
    nc = space.target.num_classes
    wanted = space_parts(space)
    todo = {k: p for k, p in wanted.items() if k not in cached.entries}
    table = LatencyTable(target=target, device=cached.device, space=getattr(space, "name", ""), num_classes=nc,
                         unit_ms=cached.unit_ms, entries={k: cached.entries[k] for k in wanted if k in cached.entries},
                         protocol=PROTOCOL)
    if in_context is None:
        in_context = target.backend == "torch-cpu"
    nets, alone = [], list(todo.values())
    if todo and in_context:
        nets, alone = carriers(todo, space.sample_many(300, seed=seed + 1, unique=False), nc)
    sample = space.sample_many(networks, seed=seed, unique=False) if networks else []
    measured: dict[str, dict[str, Any]] = {}
    step = task(f"measuring {len(todo)} parts", (len(nets) + len(alone)) * rounds)
    for i in range(0, max(len(nets), len(alone)), CHUNK):
        found = {}
        if nets[i:i + CHUNK]:
            found.update(measure_in_context(nets[i:i + CHUNK], target, nc, rounds=rounds, burst_s=burst_s,
                                            unit_ms=table.unit_ms, on_step=step))
        if alone[i:i + CHUNK]:
            found.update(measure_parts(alone[i:i + CHUNK], target, rounds=rounds, burst_s=burst_s,
                                       unit_ms=table.unit_ms, on_step=step))
        new = _merge(measured, found, todo)
        table.entries.update(new)
        if mc is not None:
            mc.add(new, table.unit_ms)
    step = task(f"calibrating on {len(sample)} networks", len(sample) * 3)
    table.calibration = calibrate(table, sample, nc, fit or ("offset" if in_context else "linear"), on_step=step)
    if mc is not None and sample:
        mc.add({}, table.unit_ms, calibration=table.calibration)  # the latest, for predictions from the cache
    if out is not None:
        table.save(out)
    stats = BuildStats(len(wanted), len(todo), len(wanted) - len(todo), len(sample), time.perf_counter() - t0)
    return replace(table, source=str(out) if out is not None else "<built>"), stats


# -- prediction --------------------------------------------------------------------

@functools.lru_cache(maxsize=8)
def _load_lut_cached(path: str, mtime_ns: int, target: str | Target | None) -> LatencyTable:
    # Budgets build a predictor per check; the file is read once per version of it.
    return load_lut(path, target)


def predictor(target: str | Target | None = None, lut: str | Path | None = None, num_classes: int = 1000,
              cache: str | Path | None = None, derived_unit_ms: float | None = None) -> LatencyPredictor:
    """``genotype -> predicted ms`` for a space's ``budgets`` (``target`` and/or ``lut``).

    With ``lut``, that table (checked against ``target`` when both are given; a relative path not found as
    typed is looked up in the checkout, where shipped tables live in ``luts/``); without, this machine's
    table for ``target`` (``cache``: its file, default :func:`cache_path`). Parts the table lacks are timed
    on demand and kept in this machine's table when the table was measured here; otherwise they are an
    InputError naming the part (see :mod:`nas.latency.cache`). ``derived_unit_ms``: the probe unit the space's
    latency limits were derived with (``budgets.unit_ms``; :meth:`LatencyPredictor.prepare` warns when this
    machine's is far from it).
    """
    table = None
    if lut is not None:
        p = find_table(lut)
        table = _load_lut_cached(str(p), p.stat().st_mtime_ns if p.exists() else 0, target)
        # The cached object is shared: a predictor must not see another's in-process changes.
        table = replace(table, entries=dict(table.entries))
    elif target is None:
        raise InputError("budgets.target: latency prediction needs a target or a lut")
    p = LatencyPredictor(target, table, num_classes, cache)
    p.derived_unit_ms = derived_unit_ms
    return p


# -- budgets and tiers from a recorded run -------------------------------------------

#: The tier rule ``derive_budgets`` applies: the quartiles of the predicted latency of feasible random networks.
TIER_QUANTILES = {"s": 25, "m": 50, "l": 75}


def derive_budgets(space: Any, n: int = 50, seed: int = 2024, *, cache: str | Path | None = None,
                   on_network: Callable[[], None] | None = None) -> dict[str, Any]:
    """Re-derive a space's latency budget and family tiers on this machine: predict ``n`` random networks of the
    space that meet its MAC/param budgets (``seed``) with this machine's table for ``budgets.target`` (parts
    timed on demand, as ``nas search`` does), and take the quartiles (:data:`TIER_QUANTILES`: S the fastest
    quarter, M the second, L the third; the budget is L's limit, so it cuts the slowest quarter). Returns the
    figures and what they rest on (probe unit, table id, machine), for a log and for ``budgets.unit_ms``."""
    from nas.cost.macs import count

    b = space.budgets
    if not b.target:
        raise InputError(f"{space.source}: budgets.target: deriving latency limits needs a latency target")
    nc = space.target.num_classes
    p = LatencyPredictor(b.target, num_classes=nc, cache=cache)
    t0 = time.perf_counter()
    p.prepare()

    def fits(g: Genotype) -> bool:
        c = count(g, resolution=space.target.resolution, num_classes=nc)
        return (b.macs is None or c.macs <= b.macs) and (b.params is None or c.params <= b.params)

    nets = space.sample_many(n, seed=seed, feasible=fits)
    lat = []
    for g in nets:
        lat.append(p(g))
        if on_network is not None:
            on_network()
    lat_a = np.array(lat)
    limits = {t: round(float(np.percentile(lat_a, q)), 1) for t, q in TIER_QUANTILES.items()}
    table = p.table()
    return {"space": space.name, "networks": len(nets), "seed": seed, "target": b.target,
            "quartiles_ms": limits, "min_ms": round(float(lat_a.min()), 2), "max_ms": round(float(lat_a.max()), 2),
            "budget_ms": limits["l"], "unit_ms": table.unit_ms, "table": table.table_id,
            "protocol": table.protocol, "device": dict(table.device), "threads": table.target.threads,
            "seconds": round(time.perf_counter() - t0, 1), "parts_timed": p.stats.parts}
