"""Measuring latency: deployed modules timed on a target, one forward pass at a time (torch).

:func:`measure` and :func:`measure_many` time *deployed* modules (BN and ACB
branches folded, ``nas.model.deploy``) one forward pass at a time by the
measurement protocol of :mod:`nas.latency.protocol`: warm-up until stable,
then windows of passes (interleaved across modules, so a slow spell hits
every module alike), one robust figure per window (a low percentile), until
the interval of their mean is narrow enough or a time cap is spent; windows
disturbed by steal time, this process's other threads or the probe's drift
are measured again, then flagged. A target's clock (:class:`nas.config.Target`):

* ``wall``: wall-clock time (CUDA: events). With one CPU thread, iterations
  during which the process was descheduled (wall time above its CPU time)
  are dropped.
* ``cpu``: the timing thread's CPU time (not the process's: a search's
  driver has Ray's and Tune's threads busy beside it; measured in the driver
  of a ``mixnet.yaml`` search, process CPU time made networks 1.8x slower
  than on their own), which leaves out time other processes
  held the core.
* ``probe`` (the CPU presets): every timed pass is followed by a pass of a
  fixed small *probe* network (a deployed inverted residual block); a
  pass's CPU time over the CPU time of the probe pass after it is one
  ratio, and a window's figure is the median of its ratios times
  the probe's latency (``unit_ms``). On a shared machine the
  speed of a core swings by tens of percent within milliseconds (other
  processes' cache and memory traffic, a busy sibling hyper-thread, cold
  caches after each preemption); a swing slows the probe and the measured
  pass alike and largely cancels out. Measured here (2 cores, load average
  10 to 12, 100 networks of ``tiny.yaml``, two passes of 4 rounds each):
  the two passes agreed within 10% for 3% of the networks by plain CPU-time
  medians and for 62% by probe ratios. On a quiet machine a probe figure
  equals the CPU-time one. A table keeps its ``unit_ms`` (fixed once per
  cache), and measurements compared with it use the same unit.

Parts of a table (:mod:`nas.cost.parts`) are timed inside whole networks
(:func:`measure_in_context`, torch CPU: chained, so they add up to their
network, glue included) or as modules of their own (:func:`measure_parts`,
ONNX Runtime, CUDA).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from nas.config import Target
from nas.cost.parts import Part, parts
from nas.cost.table import LatencyTable, MeasureMissing
from nas.genotype import Genotype
from nas.latency.device import get_target, on_this_machine
from nas.latency.protocol import ON_DEMAND, WHOLE, Monitor, Protocol, ci_rel, pinned, stat
from nas.latency.runners import Runner, part_module, probe_runner, runner, torch_threads


@dataclass(frozen=True)
class Measurement:
    """Latency of one forward pass (ms) by the protocol (:mod:`nas.latency.protocol`), and how sure it is."""

    ms: float  # mean over the kept windows of each window's robust figure
    iqr: float  # interquartile range of the window figures
    n: int  # passes the figures come from
    raw_ms: float  # the same by the plain clock (CPU time for ``probe``), without the probe's correction
    ci: float = math.inf  # full width of the 95% interval of ``ms``, relative to it
    windows: int = 0
    rejected: int = 0  # windows thrown away for interference and measured again
    flags: tuple[str, ...] = ()  # interference kept (after max_rejects) and "capped" (the interval is wider)
    neighbours: float = 0.0  # mean busy share of the other CPUs while the kept windows ran
    samples: tuple = ()  # per kept window, rows (wall ms, CPU ms, probe CPU ms) (only with keep_samples)

    def to_dict(self) -> dict[str, float]:
        d: dict[str, Any] = {"ms": round(self.ms, 5), "iqr": round(self.iqr, 5), "n": self.n}
        if math.isfinite(self.ci):
            d["ci"] = round(self.ci, 4)
        return d


def _values(rows: np.ndarray, target: Target, unit_ms: float) -> np.ndarray:
    """Per-pass latencies of one window's rows (wall ms, CPU ms, probe CPU ms) by the target's clock."""
    wall, cpu = rows[:, 0], rows[:, 1]
    if target.clock == "probe":
        return cpu / rows[:, 2] * unit_ms
    if target.clock == "cpu":
        return cpu
    if target.threads == 1 and target.backend != "cuda":
        # Descheduled passes show wall time well above CPU time; keep the others if enough remain.
        keep = wall <= cpu * 1.1 + 0.02
        if keep.sum() >= max(3, len(wall) // 4):
            return wall[keep]
    return wall


def _protocol(protocol: Protocol | None, *, rounds: int | None = None, burst_s: float | None = None,
              min_iters: int | None = None, warmup: int | None = None, warmup_s: float | None = None) -> Protocol:
    """``protocol`` (default :data:`~nas.latency.protocol.WHOLE`) with the older knobs: ``rounds`` fixes the
    number of windows (no interval-driven stop: a table build's progress counts them), ``burst_s`` is the
    window length, ``min_iters`` the passes per window at least, ``warmup``/``warmup_s`` the warm-up."""
    p = protocol or WHOLE
    kw: dict[str, Any] = {}
    if rounds is not None:
        kw.update(min_windows=rounds, max_windows=rounds)
    if burst_s is not None:
        kw["window_s"] = burst_s
    if min_iters is not None:
        kw["min_passes"] = min_iters
    if warmup is not None:
        kw["warmup_min"] = warmup
    if warmup_s is not None:
        kw["warmup_max_s"] = warmup_s
    return p.with_(**kw) if kw else p


def _warm(run: Runner, p: Protocol) -> None:
    """Warm-up until stable: windows of passes until one's median is within ``warmup_tol`` of the previous
    one's, or ``warmup_max_s`` has passed (Google Benchmark's MinWarmUpTime; pyperf's warm-up calibration)."""
    for _ in range(p.warmup_min):
        run()
    t_end, prev = time.perf_counter() + p.warmup_max_s, None
    while time.perf_counter() < t_end:
        w_end, xs = time.perf_counter() + p.window_s / 2, []
        while len(xs) < 3 or time.perf_counter() < w_end:
            xs.append(run()[0][2])
        med = float(np.median(xs))
        if prev is not None and abs(med - prev) <= p.warmup_tol * prev:
            return
        prev = med


@dataclass
class _Item:
    """A runner's state across its windows."""

    run: Runner
    key: Hashable  # the key whose interval decides when the item is done (the whole module)
    figs: dict = dataclasses.field(default_factory=dict)  # key -> [window figure]
    raw: dict = dataclasses.field(default_factory=dict)  # key -> [window figure by the plain clock]
    passes: dict = dataclasses.field(default_factory=dict)
    samples: dict = dataclasses.field(default_factory=dict)
    spent: float = 0.0
    rejected: int = 0
    flags: set = dataclasses.field(default_factory=set)
    neighbours: list = dataclasses.field(default_factory=list)
    done: bool = False


def _window(item: _Item, probe: Callable[[], float] | None, p: Protocol) -> dict[Hashable, np.ndarray]:
    """One window of ``item``'s passes (each followed by a probe pass with the probe clock): rows by key."""
    item.run()  # the first pass after another item's: not kept
    if probe:
        probe()
    rows: dict[Hashable, list[tuple[float, float, float]]] = {}
    t_end, n = time.perf_counter() + p.window_s, 0
    while n < p.min_passes or (n < p.max_passes and time.perf_counter() < t_end):
        out = item.run()
        q = probe() if probe else 0.0
        for key, wall, cpu in out:
            rows.setdefault(key, []).append((wall, cpu, q))
        n += 1
    return {k: np.array(r) for k, r in rows.items()}


def _add_window(it: _Item, rows: dict[Hashable, np.ndarray], target: Target, unit: float,
                keep_samples: bool) -> None:
    """Keep one window's figures: the whole module's robust figure and, for parts timed in context, that figure
    apportioned by each part's share of the window's passes (its time over the passes' time, per occurrence in
    the network), so the parts of a network add up to its figure (less the hooks' own time, which the parts
    leave out: the hooks are not in a deployed network)."""
    col = 0 if target.clock == "wall" else 1
    whole = rows[it.key]
    fig, raw = stat(_values(whole, target, unit)), stat(whole[:, col])
    total = float(whole[:, col].sum())
    for key, r in rows.items():
        share = 1.0 if key == it.key else float(r[:, col].sum()) / total / max(1, len(r) // len(whole))
        it.figs.setdefault(key, []).append(fig * share)
        it.raw.setdefault(key, []).append(raw * share)
        it.passes[key] = it.passes.get(key, 0) + len(r)
        if keep_samples:
            it.samples.setdefault(key, []).append(r)


def _measure(runners: list[tuple[Hashable, Runner]], target: Target, protocol: Protocol, *,
             unit_ms: float | None = None, on_step: Callable[[], None] | None = None,
             keep_samples: bool = False) -> dict[Hashable, Measurement]:
    """The protocol over ``runners`` (interleaved: each item one window per round, so a slow spell of the
    machine hits every item alike), until every item's interval is narrow enough or its time cap is spent."""
    p = protocol
    probe = probe_runner() if target.clock == "probe" else None
    with pinned(p.pin and target.backend != "cuda") as core:
        monitor = Monitor(core)
        items = [_Item(run, key) for key, run in runners]
        for it in items:
            _warm(it.run, p)
        if probe is not None:
            for _ in range(5):
                probe()
            if unit_ms is None:  # this call's own unit: a low percentile of the probe, as the windows' figures
                unit_ms = stat(np.array([probe() for _ in range(30)]))
        unit = unit_ms or 1.0
        while not all(it.done for it in items):
            for it in items:
                if it.done:
                    continue
                snap = monitor.start()
                rows = _window(it, probe, p)
                w = monitor.stop(snap)
                it.spent += w.wall_s
                if probe is not None:
                    w.drift = stat(rows[it.key][:, 2]) / unit - 1
                reasons = w.reasons(p)
                if reasons and it.rejected < p.max_rejects and it.spent < p.cap_s:
                    it.rejected += 1
                    continue
                it.flags.update(reasons)
                it.neighbours.append(w.neighbours)
                _add_window(it, rows, target, unit, keep_samples)
                if on_step is not None:
                    on_step()
                n, ci = len(it.figs[it.key]), ci_rel(it.figs[it.key])
                if n >= p.min_windows and ci <= p.rel_ci:
                    it.done = True
                elif n >= p.max_windows or it.spent >= p.cap_s:
                    it.done = True
                    if n < p.min_windows or ci > p.rel_ci:
                        it.flags.add("capped")
    # A key found in several items (a block two networks share) pools their windows.
    pooled: dict[Hashable, list] = {}
    for it in items:
        for key in it.figs:
            pooled.setdefault(key, []).append(it)
    out = {}
    for key, its in pooled.items():
        figs = np.array([f for it in its for f in it.figs[key]])
        raw = [f for it in its for f in it.raw[key]]
        q1, q3 = np.percentile(figs, [25, 75])
        out[key] = Measurement(float(figs.mean()), float(q3 - q1), sum(it.passes[key] for it in its),
                               float(np.mean(raw)), ci_rel(figs), len(figs), sum(it.rejected for it in its),
                               tuple(sorted({f for it in its for f in it.flags})),
                               float(np.mean([x for it in its for x in it.neighbours])),
                               tuple(s for it in its for s in it.samples.get(key, ())))
    return out


def measure_many(items: Mapping[Hashable, tuple[Any, tuple[int, ...]]], target: Target | str, *,
                 protocol: Protocol | None = None, rounds: int | None = None, burst_s: float | None = None,
                 unit_ms: float | None = None, on_step: Callable[[], None] | None = None,
                 keep_samples: bool = False) -> dict[Hashable, Measurement]:
    """Measure several ``(module, input_shape)`` items interleaved by ``protocol`` (default
    :data:`~nas.latency.protocol.WHOLE`); see :mod:`nas.latency.protocol`.

    Each item is warmed up until stable, then timed in windows (about ``window_s`` of passes, each followed
    by a probe pass with the ``probe`` clock; the first pass of a window is not kept) until the interval of
    its figure is narrow enough or its cap is spent. ``rounds``/``burst_s``: a fixed number of windows and
    their length (:func:`_protocol`). ``unit_ms`` is the probe latency that probe ratios are multiplied by
    (default: the probe's in this call; pass a table's ``unit_ms`` to compare with it). ``on_step`` is
    called after every kept window; ``keep_samples`` keeps every window's rows in the measurement.
    """
    target = get_target(target)
    p = _protocol(protocol, rounds=rounds, burst_s=burst_s)
    with torch_threads(target.threads):
        runners = [(k, runner(k, m, shape, target)) for k, (m, shape) in items.items()]
        return _measure(runners, target, p, unit_ms=unit_ms, on_step=on_step, keep_samples=keep_samples)


def measure_in_context(genotypes: list[Genotype], target: Target | str, num_classes: int = 1000, *,
                       protocol: Protocol | None = None, rounds: int | None = None, burst_s: float | None = None,
                       unit_ms: float | None = None, on_step: Callable[[], None] | None = None,
                       min_iters: int | None = None, warmup: int | None = None, warmup_s: float | None = None,
                       built: list | None = None, with_networks: bool = False) -> dict[Hashable, Measurement]:
    """Per-part latencies timed inside whole deployed networks (torch CPU backends).

    Every stem, block and head is timed by forward hooks while its network runs, so its input is as hot and
    its weights as cold as in a real forward pass, and chained (:func:`_chained`): each part's time runs from
    the end of the previous part, so the glue between parts is in the parts and they add up to the pass. A
    key found in several networks pools their windows. A network's whole pass decides when it has been timed
    enough; ``with_networks`` adds it to the result under the network's index in ``genotypes``. ``protocol``,
    ``rounds``, ``burst_s``, ``min_iters``, ``warmup`` (passes) and ``warmup_s``: :func:`_protocol`;
    ``built``: the genotypes' :func:`deployed` networks, when the caller built them.
    """
    target = get_target(target)
    p = _protocol(protocol, rounds=rounds, burst_s=burst_s, min_iters=min_iters, warmup=warmup, warmup_s=warmup_s)
    with torch_threads(target.threads):
        runners = []
        for i, g in enumerate(genotypes):
            net = built[i] if built is not None else deployed(g, num_classes)
            mods = [net.stem, *(b for stage in net.stages for b in stage), net.head]
            keyed = [(m, part.key) for m, part in zip(mods, parts(g, num_classes), strict=True)]
            runners.append((i, runner(i, net, input_shape(g, target), target, keyed)))
        found = _measure(runners, target, p, unit_ms=unit_ms, on_step=on_step)
    return found if with_networks else {k: m for k, m in found.items() if not isinstance(k, int)}


def probe_ms(seconds: float = 2.0) -> float:
    """The probe network's CPU time on this machine, unloaded: the 1st percentile of its passes over ``seconds``
    (the ``unit_ms`` of a ``probe``-clock table), the timing thread pinned and warmed up as for a measurement.

    Other processes only ever slow the probe down, by tens of percent for seconds at a time on a shared
    machine. Measured here (2 cores, a VM, load average 4-8), one-second medians of the probe ranged from
    0.46 to 0.77 ms while their minima stayed at 0.38-0.40 ms, except under the heaviest load (load average
    14), when even the minima rose to 0.60 ms for tens of seconds.
    """
    with torch_threads(1), pinned(WHOLE.pin):
        run = probe_runner()
        for _ in range(10):
            run()
        t_end, times = time.perf_counter() + seconds, []
        while time.perf_counter() < t_end or len(times) < 5:
            times.append(run())
    return float(np.percentile(times, 1))


def measure(module, input_shape: tuple[int, ...], target: Target | str = "torch-cpu", *,
            protocol: Protocol | None = None, rounds: int | None = None, burst_s: float | None = None,
            unit_ms: float | None = None, keep_samples: bool = False) -> Measurement:
    """Latency (ms) of one forward pass of a deployed ``module`` on ``target`` by ``protocol``.

    ``input_shape`` is the full ``(batch, C, H, W)``.
    """
    return measure_many({0: (module, input_shape)}, target, protocol=protocol, rounds=rounds, burst_s=burst_s,
                        unit_ms=unit_ms, keep_samples=keep_samples)[0]


def input_shape(genotype: Genotype, target: Target) -> tuple[int, int, int, int]:
    return (target.batch, genotype.in_chans, genotype.resolution, genotype.resolution)


def deployed(genotype: Genotype, num_classes: int = 1000):
    """The fused inference network of ``genotype`` (what is measured)."""
    from nas.model import build, deploy

    return deploy(build(genotype, num_classes=num_classes), inplace=True)


def measure_genotype(genotype: Genotype, target: Target | str = "torch-cpu", num_classes: int = 1000, *,
                     protocol: Protocol | None = None, rounds: int | None = None, burst_s: float | None = None,
                     unit_ms: float | None = None, keep_samples: bool = False) -> Measurement:
    """Measured end-to-end latency of the deployed network of ``genotype`` at its resolution (the protocol
    :data:`~nas.latency.protocol.WHOLE` unless told otherwise)."""
    target = get_target(target)
    return measure(deployed(genotype, num_classes), input_shape(genotype, target), target, protocol=protocol,
                   rounds=rounds, burst_s=burst_s, unit_ms=unit_ms, keep_samples=keep_samples)


def measure_parts(todo: list[Part], target: Target | str, *, protocol: Protocol | None = None,
                  rounds: int | None = None, burst_s: float | None = None, unit_ms: float | None = None,
                  on_step: Callable[[], None] | None = None, min_iters: int | None = None,
                  warmup: int | None = None, warmup_s: float | None = None) -> dict[str, Measurement]:
    """Parts each measured alone, as a deployed module of their own (any backend)."""
    target = get_target(target)
    p = _protocol(protocol, rounds=rounds, burst_s=burst_s, min_iters=min_iters, warmup=warmup, warmup_s=warmup_s)
    items = {part.key: (part_module(part), part.input_shape(target.batch)) for part in todo}
    with torch_threads(target.threads):
        runners = [(k, runner(k, m, shape, target)) for k, (m, shape) in items.items()]
        return _measure(runners, target, p, unit_ms=unit_ms, on_step=on_step)


def measure_missing(genotype: Genotype, missing: list[Part], lut: LatencyTable,
                    num_classes: int) -> dict[str, dict[str, Any]]:
    """Entries for the parts of ``genotype`` that ``lut`` lacks, measured on this machine: in context,
    inside this very network, on torch CPU; alone elsewhere (for :func:`nas.cost.table.predict`)."""
    if lut.target.backend == "torch-cpu":
        found = measure_in_context([genotype], lut.target, num_classes, protocol=ON_DEMAND, unit_ms=lut.unit_ms)
    else:
        found = measure_parts(missing, lut.target, protocol=ON_DEMAND, unit_ms=lut.unit_ms)
    return {p.key: found[p.key].to_dict() for p in missing}


def on_the_fly(lut: LatencyTable) -> MeasureMissing | None:
    """:func:`measure_missing` when ``lut`` was measured on this very machine (else ``None``: a missing part
    is an error), the ``measure`` argument of :func:`nas.cost.table.predict`."""
    return measure_missing if on_this_machine(lut) else None
