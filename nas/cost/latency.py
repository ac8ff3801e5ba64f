"""Latency: targets, measurement of deployed models, and prediction from a lookup table.

Targets
-------
A :class:`Target` is where latency is measured: a backend (``torch-cpu``,
``onnxruntime-cpu``, ``cuda``), a batch size, a thread count and a clock.
Presets are in :data:`TARGETS`; ``torch-cpu`` is batch 1 on one thread.

Measurement
-----------
:func:`measure` and :func:`measure_many` time *deployed* modules (BN and ACB
branches folded, ``nas.model.deploy``) one forward pass at a time, after a
warm-up, in interleaved rounds (each module a short burst per round, so a
slow spell hits every module alike) and report the median and the
interquartile range. The clock:

* ``wall``: wall-clock time (CUDA: events). With one CPU thread, iterations
  during which the process was descheduled (wall time above its CPU time)
  are dropped.
* ``cpu``: the process's CPU time, which leaves out time other processes
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

Prediction
----------
:func:`predict` uses a :class:`LatencyTable` built by ``nas lut build``
(:mod:`nas.cost.lut`): one entry per distinct stem, block (kind, input and
output channels, input resolution, stride, kernels, split, expansion, SE,
ghost ratio, ...) and head configuration, each timed inside whole networks
(:func:`measure_in_context`, torch CPU) or as a module of its own (ONNX
Runtime, CUDA). A network's latency is ``scale * sum(entries) +
offset_ms``, fitted on whole networks measured at the end of the build
(the glue between parts; with parts timed alone also the cache and fusion
effects they miss). Keys are those of :func:`parts`; ACB branches and
dropout are not in them because a deployed network has none.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import json
import math
import os
import platform
import time
import warnings
from collections.abc import Callable, Hashable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nas.errors import InputError
from nas.genotype import BlockSpec, Genotype, HeadSpec, StemSpec

LUT_VERSION = 1
BACKENDS = ("torch-cpu", "onnxruntime-cpu", "cuda")
CLOCKS = ("probe", "cpu", "wall")


@dataclass(frozen=True)
class Target:
    """Where latency is measured; batch, threads and clock are part of the definition (see the module doc)."""

    name: str
    backend: str = "torch-cpu"
    batch: int = 1
    threads: int = 1
    device: str = "cpu"
    clock: str = "probe"

    def __post_init__(self) -> None:
        where = f"target {self.name}"
        if self.backend not in BACKENDS:
            raise InputError(f"{where}: backend: {self.backend!r} is not one of {', '.join(BACKENDS)}")
        if self.clock not in CLOCKS:
            raise InputError(f"{where}: clock: {self.clock!r} is not one of {', '.join(CLOCKS)}")
        if self.batch < 1 or self.threads < 1:
            raise InputError(f"{where}: batch/threads: must be positive integers")
        if self.clock != "wall" and (self.threads != 1 or self.backend == "cuda"):
            raise InputError(f"{where}: clock: {self.clock} time is a latency only for one thread on a CPU backend")


TARGETS: dict[str, Target] = {t.name: t for t in (
    Target("torch-cpu"),
    Target("torch-cpu-b8", batch=8),
    Target("torch-cpu-cputime", clock="cpu"),
    Target("torch-cpu-wall", clock="wall"),
    Target("torch-cpu-t2", threads=2, clock="wall"),
    Target("onnxruntime-cpu", backend="onnxruntime-cpu"),
    Target("cuda", backend="cuda", device="cuda", clock="wall"),
    Target("cuda-b32", backend="cuda", batch=32, device="cuda", clock="wall"),
)}
ALIASES = {"cpu": "torch-cpu", "onnx": "onnxruntime-cpu", "ort": "onnxruntime-cpu", "gpu": "cuda"}


def get_target(target: str | Target) -> Target:
    """A preset by name or alias (or the target itself); an unknown name is an InputError."""
    if isinstance(target, Target):
        return target
    name = ALIASES.get(target, target)
    if name not in TARGETS:
        raise InputError(f"--target: unknown target {target!r} (known: {', '.join(TARGETS)})")
    t = TARGETS[name]
    if t.backend == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise InputError(f"--target: {target}: no CUDA device on this machine")
    return t


# -- the machine ----------------------------------------------------------------

def _cpu_model() -> str:
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def device_info(target: Target) -> dict[str, Any]:
    """What a table's figures depend on besides the target: CPU/GPU, cores, library versions."""
    import torch

    d: dict[str, Any] = {"cpu": _cpu_model(), "cores": os.cpu_count(), "machine": platform.machine(),
                         "torch": torch.__version__.split("+")[0]}
    if target.backend == "onnxruntime-cpu":
        import onnxruntime

        d["onnxruntime"] = onnxruntime.__version__
    if target.backend == "cuda":
        d["gpu"] = torch.cuda.get_device_name(0)
        d["cuda"] = torch.version.cuda
    return d


def device_hash(target: Target, device: Mapping[str, Any] | None = None) -> str:
    """Short fingerprint of (target, device): tables and caches with the same one are interchangeable."""
    d = device_info(target) if device is None else dict(device)
    blob = json.dumps({"target": asdict(target), "device": d}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


# -- measurement -------------------------------------------------------------------

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
    clock, cpu = time.perf_counter_ns, time.process_time_ns
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
    clock, cpu = time.perf_counter_ns, time.process_time_ns
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
    run = _runner("probe", p.module(), p.input_shape(1), Target("probe", clock="cpu"))
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
             max_iters: int = 200, warmup_s: float = 0.02, unit_ms: float | None = None,
             on_step: Callable[[], None] | None = None) -> dict[Hashable, Measurement]:
    """Run the runners in interleaved rounds of bursts; pool every key's bursts into one measurement."""
    probe = _probe_runner() if target.clock == "probe" else None
    for run in runners:
        t_end = time.perf_counter() + warmup_s
        for _ in range(2):
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
                       on_step: Callable[[], None] | None = None) -> dict[str, Measurement]:
    """Per-part latencies timed inside whole deployed networks (torch CPU backends).

    Every stem, block and head is timed by forward hooks while its network
    runs, so its input is as hot and its weights as cold as in a real
    forward pass; a key found in several networks pools their passes.
    """
    target = get_target(target)
    with _torch_threads(target.threads):
        runners = []
        for i, g in enumerate(genotypes):
            net = deployed(g, num_classes)
            mods = [net.stem, *(b for stage in net.stages for b in stage), net.head]
            keyed = [(m, p.key) for m, p in zip(mods, parts(g, num_classes), strict=True)]
            runners.append(_runner(i, net, input_shape(g, target), target, keyed))
        return _measure(runners, target, rounds=rounds, burst_s=burst_s, unit_ms=unit_ms, on_step=on_step)


def probe_ms(seconds: float = 0.5) -> float:
    """The probe network's median CPU time now (the ``unit_ms`` of a new ``probe``-clock table)."""
    with _torch_threads(1):
        run = _probe_runner()
        for _ in range(3):
            run()
        t_end, times = time.perf_counter() + seconds, []
        while time.perf_counter() < t_end or len(times) < 5:
            times.append(run())
    return float(np.median(times))


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

    return deploy(build(genotype, num_classes=num_classes).eval())


def measure_genotype(genotype: Genotype, target: Target | str = "torch-cpu", num_classes: int = 1000, *,
                     rounds: int = 5, burst_s: float = 0.1, unit_ms: float | None = None) -> Measurement:
    """Measured end-to-end latency of the deployed network of ``genotype`` at its resolution."""
    target = get_target(target)
    return measure(deployed(genotype, num_classes), input_shape(genotype, target), target,
                   rounds=rounds, burst_s=burst_s, unit_ms=unit_ms)


# -- table keys --------------------------------------------------------------------

def _key(part: str, res: int, cin: int, fields: Mapping[str, Any]) -> str:
    return f"{part} r{res} c{cin} " + json.dumps(dict(fields), sort_keys=True, separators=(",", ":"))


def block_fields(cin: int, b: BlockSpec) -> dict[str, Any]:
    """The fields of a block that change its deployed computation, normalised.

    Mirrors what ``nas.ops`` builds: ``expand``/``mid`` become the resulting
    ``mid`` channels and whether an expand conv exists; SE settings become
    the reduced channels, gate and activation, only when SE is on; ``split``
    matters for more than one kernel, grouping and shuffle only where a
    grouped 1x1 conv exists, the ghost ratio only where a ghost module is
    built; a ghost bottleneck's kernel only when it has a depthwise conv.
    ``acb`` is absent: deploy folds it into a plain conv.
    """
    d: dict[str, Any] = {"kind": b.kind, "out": b.out, "stride": b.stride, "act": b.act, "mid": b.mid_channels(cin)}
    if b.se > 0:
        d["se"] = [b.se_channels(cin), b.se_gate, b.se_act or b.act]
    if b.kind == "ghost":
        if b.stride == 2 or cin != b.out:
            d["k"] = [b.kernels[0]]
        d["ghost"] = [b.ghost, b.ghost_kernel] if b.ghost > 1 else [1]
        return d
    xp = d["xp"] = b.has_expand(cin)
    d["k"] = list(b.kernels)
    if len(b.kernels) > 1:
        d["split"] = b.split
    if b.dilation != 1:
        d["dil"] = b.dilation
    ghost = b.ghost if b.ghost > 1 and (xp or b.proj == "conv") else 1
    if ghost > 1:
        d["ghost"] = [ghost, b.ghost_kernel]
    eg = b.exp_groups if xp and ghost == 1 else 1
    pg = b.proj_groups if ghost == 1 or b.proj == "cw" else 1
    if eg > 1:
        d["eg"] = eg
    if b.proj == "cw":
        d["proj"], d["pg"] = "cw", max(pg, 2)
    elif pg > 1:
        d["pg"] = pg
    if b.shuffle and (eg > 1 or (pg > 1 and b.proj == "conv")):
        d["shuffle"] = True
    return d


def _head_fields(h: HeadSpec, num_classes: int) -> dict[str, Any]:
    d: dict[str, Any] = {"features": h.features, "hidden": h.hidden, "kind": h.kind, "classes": num_classes}
    if h.features or h.hidden:
        d["act"] = h.act
    return d


@dataclass(frozen=True)
class Part:
    """One table entry's worth of network: the stem, a block or the head, with its input size."""

    key: str
    kind: str  # "stem" | "block" | "head"
    cin: int
    res: int
    spec: StemSpec | BlockSpec | HeadSpec
    num_classes: int = 1000

    def module(self):
        """The deployed module of this part alone."""
        from nas.model import deploy
        from nas.ops.acb import conv_bn
        from nas.ops.block import Head, make_block

        if self.kind == "stem":
            s = self.spec
            m = conv_bn(self.cin, s.out, s.kernel, s.stride, act=s.act)
        elif self.kind == "block":
            m = make_block(self.cin, self.spec)
        else:
            m = Head(self.cin, self.spec, self.num_classes, self.res)
        return deploy(m)

    def input_shape(self, batch: int) -> tuple[int, int, int, int]:
        return (batch, self.cin, self.res, self.res)


def stem_part(in_chans: int, res: int, s: StemSpec) -> Part:
    return Part(_key("stem", res, in_chans, {"out": s.out, "k": s.kernel, "stride": s.stride, "act": s.act}),
                "stem", in_chans, res, s)


def block_part(cin: int, res: int, b: BlockSpec) -> Part:
    return Part(_key("block", res, cin, block_fields(cin, b)), "block", cin, res, b)


def head_part(cin: int, res: int, h: HeadSpec, num_classes: int) -> Part:
    return Part(_key("head", res, cin, _head_fields(h, num_classes)), "head", cin, res, h, num_classes)


def parts(genotype: Genotype, num_classes: int = 1000) -> list[Part]:
    """The stem, every block (with its input channels and resolution) and the head of a network."""
    g = genotype
    out = [stem_part(g.in_chans, g.resolution, g.stem)]
    res = g.resolution
    for cin, res, b in g.block_inputs():
        out.append(block_part(cin, res, b))
    out.append(head_part(g.last_channels, -(-res // g.blocks[-1].stride), g.head, num_classes))
    return out


def part_keys(genotype: Genotype, num_classes: int = 1000) -> list[str]:
    """Table keys of a network, in order (a key repeats when a block does)."""
    return [p.key for p in parts(genotype, num_classes)]


def measure_parts(todo: list[Part], target: Target | str, *, rounds: int = 3, burst_s: float = 0.05,
                  unit_ms: float | None = None, on_step: Callable[[], None] | None = None,
                  ) -> dict[str, Measurement]:
    """Parts each measured alone, as a deployed module of their own (any backend)."""
    target = get_target(target)
    items = {p.key: (p.module(), p.input_shape(target.batch)) for p in todo}
    return measure_many(items, target, rounds=rounds, burst_s=burst_s, unit_ms=unit_ms, on_step=on_step)


# -- tables ------------------------------------------------------------------------

@dataclass
class LatencyTable:
    """A versioned lookup table of per-part latencies for one target on one device."""

    target: Target
    device: dict[str, Any]
    entries: dict[str, dict[str, Any]] = field(default_factory=dict)
    calibration: dict[str, Any] = field(default_factory=lambda: {"scale": 1.0, "offset_ms": 0.0})
    space: str = ""
    num_classes: int = 1000
    unit_ms: float | None = None  # the probe's latency, for ``probe``-clock targets (see the module doc)
    source: str = "<table>"

    def to_dict(self) -> dict[str, Any]:
        return {"version": LUT_VERSION, "target": asdict(self.target), "device": self.device,
                "device_hash": device_hash(self.target, self.device), "space": self.space,
                "num_classes": self.num_classes, "unit_ms": self.unit_ms, "calibration": self.calibration,
                "entries": dict(sorted(self.entries.items()))}

    def save(self, path: str | Path) -> None:
        """Write atomically: an interrupted write never leaves half a table behind."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
        tmp.write_text(self.to_json())
        tmp.replace(p)

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

    def matches_this_machine(self) -> bool:
        """Whether parts measured here would belong in this table (same target, same device)."""
        try:
            return device_info(self.target) == self.device
        except Exception:  # e.g. a CUDA table read where torch has no CUDA
            return False

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
    return LatencyTable(target=target, device=data["device"], entries=data["entries"], calibration=cal,
                        space=str(data.get("space", "")), num_classes=nc, unit_ms=unit, source=source)


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
        want = target if isinstance(target, Target) else TARGETS.get(name)
        if table.target.name != name or (want is not None and table.target != want):
            t = table.target
            raise _bad(str(p), "target", f"table is for target {t.name!r} ({t.backend}, batch {t.batch}, "
                       f"{t.threads} thread(s)), not {name!r}")
    return table


def predict(genotype: Genotype, lut: LatencyTable, *, num_classes: int | None = None,
            measure_missing: bool = False) -> float:
    """Predicted latency (ms) of ``genotype``: ``scale * sum(entries) + offset_ms``.

    A part whose key is not in the table is measured on the fly and added to
    ``lut.entries`` when ``measure_missing`` is true (only sensible on the
    table's own device); otherwise it is an InputError naming the key.
    """
    nc = lut.num_classes if num_classes is None else num_classes
    ps = parts(genotype, nc)
    missing = [p for p in ps if p.key not in lut.entries]
    if missing:
        if not measure_missing:
            raise _bad(lut.source, "entries", f"no entry for {missing[0].key} ({len(missing)} part(s) missing: "
                       "the table was built for another space; rebuild it or measure on the fly)")
        if lut.target.backend == "torch-cpu":  # timed in context, inside this very network
            found = measure_in_context([genotype], lut.target, nc, unit_ms=lut.unit_ms)
        else:
            found = measure_parts(missing, lut.target, unit_ms=lut.unit_ms)
        lut.entries.update({p.key: found[p.key].to_dict() for p in missing})
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


@functools.lru_cache(maxsize=8)
def _load_lut_cached(path: str, mtime_ns: int, target: str | Target | None) -> LatencyTable:
    # Budgets build a predictor per check; the file is read once per version of it.
    return load_lut(path, target)


def predictor(target: str | Target | None = None, lut: str | Path | None = None, num_classes: int = 1000,
              ) -> Callable[[Genotype], float]:
    """``genotype -> predicted ms`` for a space's ``budgets`` (``target`` and/or ``lut``).

    With ``lut``, that table (checked against ``target`` when both are
    given; a relative path not found as typed is looked up in the checkout,
    where shipped tables live in ``luts/``); without, this machine's cache
    for ``target`` (``nas lut build`` fills it, with its latest
    calibration). Parts missing from the table are measured on the fly (in
    this process only, the file is not changed) when the table was built on
    this very machine; otherwise they are an InputError naming the part.
    """
    if lut is not None:
        p = find_table(lut)
        table = _load_lut_cached(str(p), p.stat().st_mtime_ns if p.exists() else 0, target)
    elif target is not None:
        from nas.cost.lut import load_cache

        table = load_cache(get_target(target))
        if table.target.clock == "probe" and table.unit_ms is None:
            table.unit_ms = probe_ms()  # so that parts measured on the fly share one unit
    else:
        raise InputError("budgets.target: latency prediction needs a target or a lut")
    on_the_fly = table.matches_this_machine()
    return lambda g: predict(g, table, num_classes=num_classes, measure_missing=on_the_fly)
