"""Runners: closures that time one forward pass of a deployed module on a target (torch CPU, with its parts
chained inside it; ONNX Runtime; CUDA events), the probe network's pass, and the deployed module of one part.
:mod:`nas.latency.measure` runs them by the protocol of :mod:`nas.latency.protocol`."""

from __future__ import annotations

import contextlib
import io
import time
import warnings
from collections.abc import Callable, Hashable, Iterator
from typing import Any

from nas.config import Target
from nas.cost.parts import Part, block_part
from nas.genotype import BlockSpec

# One timed forward pass -> [(key, wall ms, CPU ms)]: the whole module's, then each hooked part's.
Runner = Callable[[], list[tuple[Hashable, float, float]]]


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def make_input(shape: tuple[int, ...], seed: int = 0):
    import torch

    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def onnx_bytes(module, x) -> bytes:
    import torch

    f = io.BytesIO()
    with warnings.catch_warnings():
        # The TorchScript exporter is deprecated but, unlike dynamo=True, needs no onnxscript.
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (x,), f, dynamo=False, opset_version=17, input_names=["x"], output_names=["y"])
    return f.getvalue()


def chained(parts: list[tuple[Any, Hashable]], rows: list, last: list[int]) -> Callable[[], None]:
    """Forward hooks timing each part from the end of the previous one (``last``: wall and CPU ns of that end,
    set to the pass's start by the runner): a part's time takes in the glue before it (the network's own code
    between parts, e.g. the stem's channels-last copy), so the parts of a pass add up to the pass exactly.
    Returns the remover."""
    clock, cpu = time.perf_counter_ns, time.thread_time_ns
    handles = []
    for module, key in parts:
        def post(_m, _x, _y, key=key) -> None:
            c, t = cpu(), clock()
            rows.append((key, (t - last[0]) / 1e6, (c - last[1]) / 1e6))
            last[0], last[1] = clock(), cpu()  # the hook's own cost is left out of both neighbours
        handles.append(module.register_forward_hook(post))
    return lambda: [h.remove() for h in handles]


def runner(key: Hashable, module, shape: tuple[int, ...], target: Target,
            parts: list[tuple[Any, Hashable]] | None = None) -> Runner:
    """A closure timing one forward pass of ``module`` (deployed, eval mode) on ``target``.

    With ``parts`` (torch CPU only), the pass also reports each listed submodule's time, chained
    (:func:`chained`): parts timed in context, the time after the last part (returning from the network)
    added to it, so the parts sum to the whole pass.
    """
    import torch

    x = make_input(shape)
    clock, cpu = time.perf_counter_ns, time.thread_time_ns
    if target.backend == "torch-cpu":
        module, rows, last = module.eval(), [], [0, 0]
        if parts:
            chained(parts, rows, last)

        def run() -> list[tuple[Hashable, float, float]]:
            with torch.inference_mode():
                rows.clear()
                t, c = clock(), cpu()
                last[0], last[1] = t, c
                module(x)
                c1, t1 = cpu(), clock()
            if rows:
                k, w, u = rows[-1]
                rows[-1] = (k, w + (t1 - last[0]) / 1e6, u + (c1 - last[1]) / 1e6)
            return [(key, (t1 - t) / 1e6, (c1 - c) / 1e6), *rows]
        return run
    if parts:
        raise ValueError(f"parts are timed in context on torch-cpu only, not {target.backend}")
    if target.backend == "onnxruntime-cpu":
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = target.threads
        so.inter_op_num_threads = 1
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        sess = ort.InferenceSession(onnx_bytes(module.eval(), x), so, providers=["CPUExecutionProvider"])
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


def probe_runner() -> Callable[[], float]:
    """CPU ms of one pass of the probe: a deployed MixConv inverted residual, 32 channels at 16x16."""
    p = block_part(32, 16, BlockSpec(out=32, kernels=(3, 5), expand=3.0))
    run = runner("probe", part_module(p), p.input_shape(1), Target("probe", clock="cpu"))
    return lambda: run()[0][2]


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
