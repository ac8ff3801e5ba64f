"""Measuring latency: deployed modules timed on a target, one forward pass at a time (torch).

:func:`measure` and :func:`measure_many` time *deployed* modules (BN and ACB
branches folded, ``nas.model.deploy``) one forward pass at a time, after a
warm-up, in interleaved rounds (each module a short burst per round, so a
slow spell hits every module alike) and report the median and the
interquartile range. A target's clock (:class:`nas.config.Target`):

* ``wall``: wall-clock time (CUDA: events). With one CPU thread, iterations
  during which the process was descheduled (wall time above its CPU time)
  are dropped.
* ``cpu``: the timing thread's CPU time (not the process's: a search's
  driver has Ray's and Tune's threads busy beside it; measured in the driver
  of a ``mixnet.yaml`` search, process CPU time made networks 1.8x slower
  than on their own), which leaves out time other processes
  held the core.
* ``probe`` (the CPU presets): every timed pass is followed by a pass of a
  fixed small *probe* network (a deployed inverted residual block); per
  burst, the median CPU time of the measured passes over the probe's
  median is one ratio, and the median ratio over the bursts times the
  probe's latency (``unit_ms``) is the figure. On a shared machine the
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
(:func:`measure_in_context`, torch CPU) or as modules of their own
(:func:`measure_parts`, ONNX Runtime, CUDA).
"""

from __future__ import annotations

import contextlib
import io
import time
import warnings
from collections.abc import Callable, Hashable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from nas.config import Target
from nas.cost.parts import Part, block_part, parts
from nas.cost.table import LatencyTable, MeasureMissing
from nas.genotype import BlockSpec, Genotype
from nas.latency.device import get_target, on_this_machine


@dataclass(frozen=True)
class Measurement:
    """Median latency of one forward pass and its spread, in milliseconds."""

    ms: float
    iqr: float
    n: int  # passes the figures come from
    raw_ms: float  # median by the plain clock (CPU time for ``probe``), without the probe's correction

    def to_dict(self) -> dict[str, float]:
        return {"ms": round(self.ms, 5), "iqr": round(self.iqr, 5), "n": self.n}


# One timed forward pass -> [(key, wall ms, CPU ms)]: the whole module's, or each hooked part's.
Runner = Callable[[], list[tuple[Hashable, float, float]]]


@contextlib.contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _input(shape: tuple[int, ...], seed: int = 0):
    import torch

    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def _onnx_bytes(module, x) -> bytes:
    import torch

    f = io.BytesIO()
    with warnings.catch_warnings():
        # The TorchScript exporter is deprecated but, unlike dynamo=True, needs no onnxscript.
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (x,), f, dynamo=False, opset_version=17, input_names=["x"], output_names=["y"])
    return f.getvalue()


def _hooked(parts: list[tuple[Any, Hashable]], rows: list) -> Callable[[], None]:
    """Forward hooks appending (key, wall ms, CPU ms) of each part's call to ``rows``; returns the remover."""
    clock, cpu = time.perf_counter_ns, time.thread_time_ns
    handles = []
    for module, key in parts:
        start: list[int] = [0, 0]

        def pre(_m, _x, start=start) -> None:
            start[0], start[1] = clock(), cpu()

        def post(_m, _x, _y, start=start, key=key) -> None:
            c, t = cpu(), clock()
            rows.append((key, (t - start[0]) / 1e6, (c - start[1]) / 1e6))
        handles += [module.register_forward_pre_hook(pre), module.register_forward_hook(post)]
    return lambda: [h.remove() for h in handles]


def _runner(key: Hashable, module, shape: tuple[int, ...], target: Target,
            parts: list[tuple[Any, Hashable]] | None = None) -> Runner:
    """A closure timing one forward pass of ``module`` (deployed, eval mode) on ``target``.

    With ``parts`` (torch CPU only), the pass reports each listed submodule's
    time instead of the whole module's: parts timed in context.
    """
    import torch

    x = _input(shape)
    clock, cpu = time.perf_counter_ns, time.thread_time_ns
    if target.backend == "torch-cpu":
        module, rows = module.eval(), []
        if parts:
            _hooked(parts, rows)

        def run() -> list[tuple[Hashable, float, float]]:
            with torch.inference_mode():
                rows.clear()
                t, c = clock(), cpu()
                module(x)
                c, t = cpu() - c, clock() - t
            return list(rows) if parts else [(key, t / 1e6, c / 1e6)]
        return run
    if parts:
        raise ValueError(f"parts are timed in context on torch-cpu only, not {target.backend}")
    if target.backend == "onnxruntime-cpu":
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = target.threads
        so.inter_op_num_threads = 1
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        sess = ort.InferenceSession(_onnx_bytes(module.eval(), x), so, providers=["CPUExecutionProvider"])
        feed = {"x": x.numpy()}

        def run_ort() -> list[tuple[Hashable, float, float]]:
            t, c = clock(), cpu()
            sess.run(None, feed)
            c, t = cpu() - c, clock() - t
            return [(key, t / 1e6, c / 1e6)]
        return run_ort
    module = module.eval().to(target.device)
    xd = x.to(target.device)
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)

    def run_cuda() -> list[tuple[Hashable, float, float]]:
        with torch.inference_mode():
            start.record()
            module(xd)
            end.record()
            end.synchronize()
        ms = start.elapsed_time(end)
        return [(key, ms, ms)]
    return run_cuda


def _probe_runner() -> Callable[[], float]:
    """CPU ms of one pass of the probe: a deployed MixConv inverted residual, 32 channels at 16x16."""
    p = block_part(32, 16, BlockSpec(out=32, kernels=(3, 5), expand=3.0))
    run = _runner("probe", part_module(p), p.input_shape(1), Target("probe", clock="cpu"))
    return lambda: run()[0][2]


def _summary(bursts: list[np.ndarray], target: Target, unit_ms: float) -> Measurement:
    """Figures from bursts of samples, rows (wall ms, CPU ms, CPU ms of the probe pass that followed)."""
    allx = np.concatenate(bursts)
    wall, cpu = allx[:, 0], allx[:, 1]
    if target.clock == "probe":
        # Per burst, the part's median CPU time over the probe's median CPU time in the same moments.
        speed = [np.median(b[:, 2]) for b in bursts]
        ms = float(np.median([np.median(b[:, 1]) / p for b, p in zip(bursts, speed, strict=True)])) * unit_ms
        t = np.concatenate([b[:, 1] / p for b, p in zip(bursts, speed, strict=True)]) * unit_ms
        q1, q3 = np.percentile(t, [25, 75])
        return Measurement(ms, float(q3 - q1), len(t), float(np.median(cpu)))
    t = cpu if target.clock == "cpu" else wall
    if target.clock == "wall" and target.threads == 1 and target.backend != "cuda":
        # Descheduled passes show wall time well above CPU time; keep the others if enough remain.
        keep = wall <= cpu * 1.1 + 0.02
        if keep.sum() >= max(3, len(wall) // 4):
            t = wall[keep]
    q1, med, q3 = np.percentile(t, [25, 50, 75])
    return Measurement(float(med), float(q3 - q1), len(t), float(med))


def _measure(runners: list[Runner], target: Target, *, rounds: int, burst_s: float, min_iters: int = 3,
             max_iters: int = 200, warmup: int = 2, warmup_s: float = 0.02, unit_ms: float | None = None,
             on_step: Callable[[], None] | None = None) -> dict[Hashable, Measurement]:
    """Run the runners in interleaved rounds of bursts; pool every key's bursts into one measurement."""
    probe = _probe_runner() if target.clock == "probe" else None
    for run in runners:
        t_end = time.perf_counter() + warmup_s
        for _ in range(warmup):
            run()
        while time.perf_counter() < t_end:
            run()
    bursts: dict[Hashable, list[np.ndarray]] = {}
    for _ in range(rounds):
        for run in runners:
            run()  # the first pass of a burst follows another module's: not kept
            if probe:
                probe()
            rows: dict[Hashable, list[tuple[float, float, float]]] = {}
            t_end, n = time.perf_counter() + burst_s, 0
            while n < min_iters or (n < max_iters and time.perf_counter() < t_end):
                out = run()
                p = probe() if probe else 0.0
                for key, wall, cpu in out:
                    rows.setdefault(key, []).append((wall, cpu, p))
                n += 1
            for key, r in rows.items():
                bursts.setdefault(key, []).append(np.array(r))
            if on_step is not None:
                on_step()
    if unit_ms is None:
        unit_ms = float(np.median(np.concatenate([b[:, 2] for bs in bursts.values() for b in bs]))) if probe else 1.0
    return {k: _summary(b, target, unit_ms) for k, b in bursts.items()}


def measure_many(items: Mapping[Hashable, tuple[Any, tuple[int, ...]]], target: Target | str, *,
                 rounds: int = 3, burst_s: float = 0.03, unit_ms: float | None = None,
                 on_step: Callable[[], None] | None = None) -> dict[Hashable, Measurement]:
    """Measure several ``(module, input_shape)`` items interleaved; see the module docstring.

    Each item is warmed up, then timed in ``rounds`` bursts of about
    ``burst_s`` seconds (at least 3, at most 200 passes, each followed by a
    probe pass with the ``probe`` clock; the first pass of a burst is not
    kept). ``unit_ms`` is the probe latency that probe ratios are
    multiplied by (default: the probe's median in this call; pass a table's
    ``unit_ms`` to compare with it). ``on_step`` is called after every burst.
    """
    target = get_target(target)
    with _torch_threads(target.threads):
        runners = [_runner(k, m, shape, target) for k, (m, shape) in items.items()]
        return _measure(runners, target, rounds=rounds, burst_s=burst_s, unit_ms=unit_ms, on_step=on_step)


def measure_in_context(genotypes: list[Genotype], target: Target | str, num_classes: int = 1000, *,
                       rounds: int = 3, burst_s: float = 0.05, unit_ms: float | None = None,
                       on_step: Callable[[], None] | None = None, min_iters: int = 3, warmup: int = 2,
                       warmup_s: float = 0.02, built: list | None = None) -> dict[str, Measurement]:
    """Per-part latencies timed inside whole deployed networks (torch CPU backends).

    Every stem, block and head is timed by forward hooks while its network
    runs, so its input is as hot and its weights as cold as in a real
    forward pass; a key found in several networks pools their passes.
    ``min_iters``, ``warmup`` (passes) and ``warmup_s``: see :func:`measure_many`;
    ``built``: the genotypes' :func:`deployed` networks, when the caller built them.
    """
    target = get_target(target)
    with _torch_threads(target.threads):
        runners = []
        for i, g in enumerate(genotypes):
            net = built[i] if built is not None else deployed(g, num_classes)
            mods = [net.stem, *(b for stage in net.stages for b in stage), net.head]
            keyed = [(m, p.key) for m, p in zip(mods, parts(g, num_classes), strict=True)]
            runners.append(_runner(i, net, input_shape(g, target), target, keyed))
        return _measure(runners, target, rounds=rounds, burst_s=burst_s, unit_ms=unit_ms, on_step=on_step,
                        min_iters=min_iters, warmup=warmup, warmup_s=warmup_s)


def probe_ms(seconds: float = 2.0) -> float:
    """The probe network's CPU time on this machine, unloaded: the 1st percentile of its passes over ``seconds``
    (the ``unit_ms`` of a ``probe``-clock table).

    Other processes only ever slow the probe down, by tens of percent for seconds at a time on a shared
    machine. Measured here (2 cores, a VM, load average 4-8), one-second medians of the probe ranged from
    0.46 to 0.77 ms while their minima stayed at 0.38-0.40 ms, except under the heaviest load (load average
    14), when even the minima rose to 0.60 ms for tens of seconds.
    """
    with _torch_threads(1):
        run = _probe_runner()
        for _ in range(3):
            run()
        t_end, times = time.perf_counter() + seconds, []
        while time.perf_counter() < t_end or len(times) < 5:
            times.append(run())
    return float(np.percentile(times, 1))


def measure(module, input_shape: tuple[int, ...], target: Target | str = "torch-cpu", *,
            rounds: int = 5, burst_s: float = 0.05, unit_ms: float | None = None) -> Measurement:
    """Median latency (ms) of one forward pass of a deployed ``module`` on ``target``.

    ``input_shape`` is the full ``(batch, C, H, W)``.
    """
    return measure_many({0: (module, input_shape)}, target, rounds=rounds, burst_s=burst_s, unit_ms=unit_ms)[0]


def input_shape(genotype: Genotype, target: Target) -> tuple[int, int, int, int]:
    return (target.batch, genotype.in_chans, genotype.resolution, genotype.resolution)


def deployed(genotype: Genotype, num_classes: int = 1000):
    """The fused inference network of ``genotype`` (what is measured)."""
    from nas.model import build, deploy

    return deploy(build(genotype, num_classes=num_classes), inplace=True)


def measure_genotype(genotype: Genotype, target: Target | str = "torch-cpu", num_classes: int = 1000, *,
                     rounds: int = 5, burst_s: float = 0.1, unit_ms: float | None = None) -> Measurement:
    """Measured end-to-end latency of the deployed network of ``genotype`` at its resolution."""
    target = get_target(target)
    return measure(deployed(genotype, num_classes), input_shape(genotype, target), target,
                   rounds=rounds, burst_s=burst_s, unit_ms=unit_ms)


def part_module(p: Part):
    """The deployed module of one part alone."""
    from nas.model import deploy
    from nas.ops.adapter import block_from_spec, head_from_spec, stem_from_spec

    if p.kind == "stem":
        m = stem_from_spec(p.cin, p.spec, deployed=True)
    elif p.kind == "block":
        m = block_from_spec(p.cin, p.spec)
    else:
        m = head_from_spec(p.cin, p.spec, p.num_classes, p.res)
    return deploy(m)


def measure_parts(todo: list[Part], target: Target | str, *, rounds: int = 3, burst_s: float = 0.05,
                  unit_ms: float | None = None, on_step: Callable[[], None] | None = None, min_iters: int = 3,
                  warmup: int = 2, warmup_s: float = 0.02) -> dict[str, Measurement]:
    """Parts each measured alone, as a deployed module of their own (any backend)."""
    target = get_target(target)
    items = {p.key: (part_module(p), p.input_shape(target.batch)) for p in todo}
    with _torch_threads(target.threads):
        runners = [_runner(k, m, shape, target) for k, (m, shape) in items.items()]
        return _measure(runners, target, rounds=rounds, burst_s=burst_s, unit_ms=unit_ms, on_step=on_step,
                        min_iters=min_iters, warmup=warmup, warmup_s=warmup_s)


def measure_missing(genotype: Genotype, missing: list[Part], lut: LatencyTable,
                    num_classes: int) -> dict[str, dict[str, Any]]:
    """Entries for the parts of ``genotype`` that ``lut`` lacks, measured on this machine: in context,
    inside this very network, on torch CPU; alone elsewhere (for :func:`nas.cost.table.predict`)."""
    if lut.target.backend == "torch-cpu":
        found = measure_in_context([genotype], lut.target, num_classes, unit_ms=lut.unit_ms)
    else:
        found = measure_parts(missing, lut.target, unit_ms=lut.unit_ms)
    return {p.key: found[p.key].to_dict() for p in missing}


def on_the_fly(lut: LatencyTable) -> MeasureMissing | None:
    """:func:`measure_missing` when ``lut`` was measured on this very machine (else ``None``: a missing part
    is an error), the ``measure`` argument of :func:`nas.cost.table.predict`."""
    return measure_missing if on_this_machine(lut) else None
