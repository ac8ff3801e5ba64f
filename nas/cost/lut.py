"""Building latency lookup tables: enumerate a space's parts, time them in context, calibrate.

Enumeration (:func:`space_parts`) is exact and comes from the space's
public choice lists: the stem's choices; for every stage, each (input
channels, resolution) its first block can see (the previous stage's
widths, every stem stride), each width and every combination of its block
options, plus, when the stage can be deeper than one block, the later blocks
(input = the stage width, stride 1); the head for every last width. Each
combination becomes a table key; :func:`nas.cost.latency.block_fields`
drops options that do not change the deployed block, so combinations that
build the same module share one entry. ``SearchSpace.sample`` draws from
the same lists, so every sampled network's parts are in the table
(``tests/test_latency.py`` checks it on ``tiny.yaml``).

Timing in context (torch CPU targets): a part alone, run over and over,
finds its weights and input in cache, which it does not inside a network
(and the probe run between passes evicts them, which the network does not
either). So parts are timed *inside* whole networks by forward hooks
(:func:`nas.cost.latency.measure_in_context`): :func:`carriers` splices the
parts to measure into random networks of the space, at slots of the same
shape, as many per network as fit. Measured here on ``tiny.yaml``, the
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

import contextlib
import itertools
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from nas.cost.latency import (
    LatencyTable,
    Part,
    Target,
    block_part,
    deployed,
    device_hash,
    device_info,
    get_target,
    head_part,
    input_shape,
    measure_in_context,
    measure_many,
    measure_parts,
    parts,
    probe_ms,
    stem_part,
    table_from_dict,
)
from nas.errors import InputError
from nas.genotype import BlockSpec, Genotype, GenotypeError, HeadSpec, StemSpec

FITS = ("offset", "linear")
CHUNK = 32  # carrier networks (or parts timed alone) measured between two cache saves


# -- enumeration ---------------------------------------------------------------------

def _down(r: int, stride: int) -> int:
    return -(-r // stride)


def _block_options(st: Any, out: int, stride: int) -> Iterator[BlockSpec]:
    """Every combination of a stage's block choices (``acb`` left out: deploy folds it away)."""
    lists = {"kind": st.kind, "kernels": st.kernel_sets(), "split": st.split, "dilation": st.dilation,
             "expand": [float(e) for e in st.expand], "act": st.act, "se": [float(s) for s in st.se],
             "se_gate": st.se_gate, "ghost": st.ghost, "ghost_kernel": st.ghost_kernel,
             "exp_groups": st.exp_groups, "proj_groups": st.proj_groups, "shuffle": st.shuffle, "proj": st.proj}
    fixed = {"se_base": st.se_base, "se_divisor": st.se_divisor, "se_act": st.se_act}
    names = list(lists)
    for combo in itertools.product(*lists.values()):
        kw = dict(zip(names, combo, strict=True))
        if kw["kind"] == "ghost":
            kw.update(exp_groups=1, proj_groups=1, shuffle=False, proj="conv")
        elif kw["ghost"] > 1:
            kw.update(exp_groups=1, proj_groups=1, shuffle=False)  # the walk draws no groups with ghost modules
        yield BlockSpec(out=out, stride=stride, **kw, **fixed)


def space_parts(space: Any) -> dict[str, Part]:
    """Every distinct part (stem, block in context, head) the space can produce, by table key."""
    t, found = space.target, {}

    def add(p: Part) -> None:
        found.setdefault(p.key, p)

    s = space.stem
    ctx = set()
    for out, k, stride, act in itertools.product(s.out, s.kernel, s.stride, s.act):
        add(stem_part(t.in_chans, t.resolution, StemSpec(out=out, kernel=k, stride=stride, act=act)))
        ctx.add((out, _down(t.resolution, stride)))
    for st in space.stages:
        nxt = set()
        for (cin, res), out in itertools.product(sorted(ctx), st.out):
            for b in _block_options(st, out, st.stride):
                add(block_part(cin, res, b))
            r1 = _down(res, st.stride)
            if max(st.repeat) > 1:
                for b in _block_options(st, out, 1):
                    add(block_part(out, r1, b))
            nxt.add((out, r1))
        ctx = nxt
    h = space.head
    for (cin, res), f, hd, act, kind in itertools.product(sorted(ctx), h.features, h.hidden, h.act, h.kind):
        add(head_part(cin, res, HeadSpec(features=f, hidden=hd, act=act, kind=kind), t.num_classes))
    return found


# -- carriers: networks to time parts in ---------------------------------------------

def _slot(p: Part) -> tuple:
    """Parts with the same slot can replace each other in a network without changing any shape."""
    if p.kind == "block":
        return ("block", p.cin, p.res, p.spec.out, p.spec.stride)
    if p.kind == "stem":
        return ("stem", p.cin, p.res, p.spec.out, p.spec.stride)
    return ("head", p.cin, p.res)


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
        left.setdefault(_slot(p), []).append(p)
    out: list[Genotype] = []
    idle = 0
    for g in itertools.cycle(pool):
        if not left or idle == len(pool):
            break
        placed = 0
        for i, slot_part in enumerate(parts(g, num_classes)):
            queue = left.get(_slot(slot_part))
            if not queue:
                continue
            try:
                g2 = _splice(g, i, queue[-1])
            except GenotypeError:
                continue
            g, placed = g2, placed + 1
            queue.pop()
            if not queue:
                del left[_slot(slot_part)]
        idle = 0 if placed else idle + 1
        if placed:
            out.append(g)
    return out, [p for q in left.values() for p in q]


# -- cache ---------------------------------------------------------------------------

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

    An unreadable cache is ignored with a warning (it only saves time; the
    next save replaces it); one for another target or device is an InputError.
    """
    p = Path(path) if path is not None else cache_path(target)
    empty = LatencyTable(target=target, device=device_info(target), source=str(p))
    try:
        table = table_from_dict(json.loads(p.read_text(encoding="utf-8")), str(p))
    except FileNotFoundError:
        return empty
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, InputError) as e:
        print(f"warning: ignoring unreadable latency cache {p} ({str(e).splitlines()[0][:120]})", file=sys.stderr)
        return empty
    if table.target != target or table.device != empty.device:
        raise InputError(f"{p}: target: this cache holds {table.target.name} entries measured on "
                         f"{table.device.get('cpu')}, not {target.name} on this machine")
    return table


# -- building ------------------------------------------------------------------------

@dataclass
class BuildStats:
    parts: int  # distinct parts of the space
    measured: int  # measured in this build
    reused: int  # taken from the cache
    networks: int  # whole networks measured for the calibration
    seconds: float


def calibrate(table: LatencyTable, networks: list[Genotype], num_classes: int, fit: str = "offset", *,
              on_step: Callable[[], None] | None = None, rounds: int = 3, burst_s: float = 0.1) -> dict[str, Any]:
    """Fit ``measured = scale * sum(entries) + offset_ms`` on whole deployed networks.

    ``fit="offset"``: scale 1 and the median difference as offset (parts
    timed in context already add up to a network; only the glue between
    them is missing). ``"linear"``: least squares on both (parts timed alone
    miss cache and fusion effects that grow with the network), falling back
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


@contextlib.contextmanager
def _progress(show: bool) -> Iterator[Callable[[str, int], Callable[[], None]]]:
    """``task(description, total) -> advance`` over a rich progress bar on stderr (or nothing)."""
    if not show:
        yield lambda _d, _n: (lambda: None)
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    cols = (TextColumn("{task.description:<28}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            TextColumn("eta"), TimeRemainingColumn())
    with Progress(*cols, console=Console(stderr=True)) as prog:
        def task(desc: str, total: int) -> Callable[[], None]:
            tid = prog.add_task(desc, total=total)
            return lambda: prog.advance(tid)
        yield task


def _merge(into: dict[str, dict[str, Any]], found: dict, keys: Any) -> dict[str, dict[str, Any]]:
    """Entries of ``found`` whose key is in ``keys``, keeping the one with most passes when seen twice."""
    new = {}
    for k, m in found.items():
        if k in keys and (k not in into or m.n > into[k]["n"]):
            new[k] = into[k] = m.to_dict()
    return new


def build_lut(space: Any, target: str | Target, *, out: str | Path | None = None, cache: str | Path | bool = True,
              networks: int = 10, fit: str | None = None, seed: int = 0, rounds: int = 3, burst_s: float = 0.05,
              in_context: bool | None = None, progress: bool = False) -> tuple[LatencyTable, BuildStats]:
    """Measure every part of ``space`` on ``target`` (reusing the cache), calibrate, write ``out``.

    ``cache``: True for this machine's cache file, a path for another, False
    for none. ``in_context`` (default: on torch CPU backends): time parts
    inside carrier networks (:func:`carriers`) rather than alone.
    ``networks``: whole random networks measured for the calibration (0
    skips it: scale 1, offset 0); ``fit``: see :func:`calibrate` (default
    ``offset`` in context, ``linear`` alone).
    """
    t0 = time.perf_counter()
    target = get_target(target)
    cpath = None if cache is False else cache_path(target) if cache is True else Path(cache)
    cached = load_cache(target, cpath) if cpath else LatencyTable(target=target, device=device_info(target))
    if target.clock == "probe" and cached.unit_ms is None:
        # The unit is fixed once per cache, so that entries measured in different builds add up.
        cached.unit_ms = round(probe_ms(seconds=1.0), 6)
    nc = space.target.num_classes
    wanted = space_parts(space)
    todo = {k: p for k, p in wanted.items() if k not in cached.entries}
    table = LatencyTable(target=target, device=cached.device, space=getattr(space, "name", ""), num_classes=nc,
                         unit_ms=cached.unit_ms, entries={k: cached.entries[k] for k in wanted if k in cached.entries})
    if in_context is None:
        in_context = target.backend == "torch-cpu"
    nets, alone = [], list(todo.values())
    if todo and in_context:
        nets, alone = carriers(todo, space.sample_many(300, seed=seed + 1, unique=False), nc)
    sample = space.sample_many(networks, seed=seed, unique=False) if networks else []
    measured: dict[str, dict[str, Any]] = {}
    with _progress(progress) as task:
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
            if cpath is not None:
                cached.entries.update(new)
                cached.save(cpath)
        step = task(f"calibrating on {len(sample)} networks", len(sample) * 3)
        table.calibration = calibrate(table, sample, nc, fit or ("offset" if in_context else "linear"), on_step=step)
    if cpath is not None and sample:
        cached.calibration = table.calibration  # the latest, for predictions straight from the cache
        cached.save(cpath)
    if out is not None:
        table.save(out)
    stats = BuildStats(len(wanted), len(todo), len(wanted) - len(todo), len(sample), time.perf_counter() - t0)
    return replace(table, source=str(out) if out is not None else "<built>"), stats
