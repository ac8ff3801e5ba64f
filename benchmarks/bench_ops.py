"""Op benchmarks: MixConv forward+backward against the naive split form; deployed ACB against a plain conv.

Run: ``python -m benchmarks.bench_ops`` (on CPU; ``bench_gpu`` runs the MixConv
part on CUDA). Variants are timed interleaved (A, B, B, A, A, B, ...) and
compared by their medians, so load from other processes on a shared machine
hits them alike.
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from benchmarks._machine import banner
from nas.genotype import Genotype, split_channels
from nas.ops.acb import ACBConv2d, ConvBnAct
from nas.ops.mixconv import MixConv2d

REFERENCE_DIR = Path(__file__).resolve().parent.parent / "search_spaces" / "reference"
# (batch, channels, side, kernels, stride): realistic MixNet-S/M dw layers.
MIXCONV_SHAPES = [
    (32, 96, 28, (3, 5, 7), 1),
    (32, 144, 28, (3, 5, 7, 9), 1),
    (32, 240, 14, (3, 5, 7), 2),
    (32, 240, 14, (3, 5, 7, 9), 1),
    (32, 480, 14, (3, 5, 7, 9), 1),
]
# (batch, cin, cout, side, kernel, stride, groups): the stem and depthwise layers ACB is used on.
ACB_SHAPES = [
    (32, 3, 16, 112, 3, 2, 1),
    (32, 96, 96, 28, 3, 1, 96),
    (32, 144, 144, 28, 5, 1, 144),
    (32, 240, 240, 14, 7, 1, 240),
]


def _interleaved(fns: dict[str, Callable[[], object]], reps: int, sync: Callable[[], None] | None = None,
                 number: int = 1) -> dict[str, float]:
    """Median seconds per call of each function, timed round-robin after one warm-up call each.

    With one torch thread and no ``sync`` the clock is this process's CPU time, so time spent descheduled by
    other processes on a shared machine does not count. On CUDA ``sync`` (``torch.cuda.synchronize``) ends
    every sample, the clock is wall time and a sample is ``number`` calls (one call is too short to time).
    """
    clock = time.process_time if sync is None and torch.get_num_threads() == 1 else time.perf_counter
    done = sync or (lambda: None)
    for fn in fns.values():
        fn()
    done()
    times: dict[str, list[float]] = {k: [] for k in fns}
    order = list(fns.items())
    for i in range(reps):
        for k, fn in order if i % 2 == 0 else order[::-1]:  # alternate so neither always runs on a warm cache
            t = clock()
            for _ in range(number):
                fn()
            done()
            times[k].append((clock() - t) / number)
    return {k: statistics.median(v) for k, v in times.items()}


def _naive_mixconv(x: Tensor, weights: list[Tensor], splits: list[int], stride: int) -> Tensor:
    xs = torch.split(x, splits, 1)
    return torch.cat([F.conv2d(xi, w, None, stride, (w.shape[-1] - 1) // 2, 1, w.shape[0])
                      for xi, w in zip(xs, weights, strict=True)], 1)


def _padded_mixconv(x: Tensor, weights: list[Tensor], stride: int) -> Tensor:
    k = max(w.shape[-1] for w in weights)
    w = torch.cat([F.pad(w, [(k - w.shape[-1]) // 2] * 4) for w in weights], 0)
    return F.conv2d(x, w, None, stride, (k - 1) // 2, 1, w.shape[0])


def mixconv_variants(n: int, c: int, side: int, kernels: tuple[int, ...], stride: int,
                     device: str = "cpu") -> dict[str, Callable[[], None]]:
    """Forward+backward of MixConv forms on one input: ``naive`` (split -> per-group conv -> concat on NCHW),
    ``ours`` (MixConv2d's conv part on NCHW), ``naive_cl`` (the naive form on a channels-last input),
    ``padded`` (one dense depthwise conv, every kernel zero-padded to the largest) and ``ours_cl``
    (MixConv2d on a channels-last input, as the trainer runs it on CUDA)."""
    op = MixConv2d(c, kernels, stride).to(device)
    op.bn = nn.Identity()  # time the convs only, as the naive form has no BN
    weights = [conv.weight for conv in op.convs]
    splits = list(split_channels(c, len(kernels)))
    x = torch.randn(n, c, side, side, device=device, requires_grad=True)
    x_cl = x.detach().contiguous(memory_format=torch.channels_last).requires_grad_()

    def step(fn: Callable[[], Tensor]) -> Callable[[], None]:
        return lambda: fn().sum().backward()

    return {"naive": step(lambda: _naive_mixconv(x, weights, splits, stride)),
            "ours": step(lambda: op(x)),
            "naive_cl": step(lambda: _naive_mixconv(x_cl, weights, splits, stride)),
            "padded": step(lambda: _padded_mixconv(x, weights, stride)),
            "ours_cl": step(lambda: op(x_cl))}


def bench_mixconv(reps: int = 9, device: str = "cpu") -> list[dict]:
    """MixConv2d (conv part) forward+backward vs split -> per-group conv -> concat, per shape of MIXCONV_SHAPES.

    The speedup is the naive form over MixConv2d on the layout the trainer gives it: NCHW on CPU (where
    MixConv2d itself moves to channels-last), channels-last on CUDA (``TrainConfig.channels_last``). Also
    shown: the naive form on a channels-last input and one dense conv with every kernel zero-padded to the
    largest.
    """
    cuda = device.startswith("cuda")
    ours = "ours_cl" if cuda else "ours"
    print(f"\nMixConv forward+backward on {device} (ms, median); speedup = naive / {ours} (goal >= "
          f"{'1.3' if cuda else '1.0'})")
    print(f"{'N':>3} {'C':>4} {'HxW':>6} {'kernels':<12} {'s':>1} {'naive':>8} {'ours':>8} {'ours_cl':>8} "
          f"{'naive_cl':>8} {'padded':>8} {'speedup':>8}")
    rows = []
    for n, c, side, kernels, stride in MIXCONV_SHAPES:
        fns = mixconv_variants(n, c, side, kernels, stride, device)
        if not cuda:
            del fns["ours_cl"]  # MixConv2d moves a CPU input to channels-last itself: the same as ours
        t = _interleaved(fns, reps, torch.cuda.synchronize if cuda else None, number=10 if cuda else 1)
        row = {"shape": (n, c, side, kernels, stride), **{k: v * 1e3 for k, v in t.items()},
               "speedup": t["naive"] / t[ours]}
        rows.append(row)
        ks = ",".join(map(str, kernels))
        print(f"{n:>3} {c:>4} {side:>3}x{side:<2} {ks:<12} {stride:>1} {row['naive']:>8.2f} {row['ours']:>8.2f} "
              f"{row.get('ours_cl', row['ours']):>8.2f} {row['naive_cl']:>8.2f} {row['padded']:>8.2f} "
              f"{row['speedup']:>7.2f}x")
    return rows


def _geometry(conv: nn.Conv2d) -> tuple:
    return (conv.weight.shape, conv.bias is not None, conv.stride, conv.padding, conv.dilation, conv.groups)


def bench_acb(reps: int = 21) -> list[dict]:
    """Inference latency of a deployed ACB (one fused conv) vs a deployed plain conv + BN of the same shape.

    ``same_op`` says whether the two deployed convs have identical geometry
    (weight shape, bias, stride, padding, dilation, groups): then they run the
    same kernel and a ratio away from 1.00 is timing noise.
    """
    print("\nDeployed ACB vs plain conv, inference (ms, median); ratio = ACB / plain (goal <= 1.02)")
    print(f"{'N':>3} {'cin':>4} {'cout':>4} {'HxW':>7} {'k':>2} {'s':>1} {'groups':>6} {'plain':>8} {'acb':>8} "
          f"{'ratio':>6} {'same_op':>7}")
    rows = []
    for n, cin, cout, side, k, stride, groups in ACB_SHAPES:
        acb = ACBConv2d(cin, cout, k, stride, groups).eval().fused().eval()
        plain = ConvBnAct(cin, cout, k, stride, groups).eval().fused().eval()
        x = torch.randn(n, cin, side, side)
        same = _geometry(acb[0]) == _geometry(plain[0])
        with torch.inference_mode():
            t = _interleaved({"plain": lambda: plain(x), "acb": lambda: acb(x)}, reps)  # noqa: B023
        row = {"shape": (n, cin, cout, side, k, stride, groups), "plain": t["plain"] * 1e3, "acb": t["acb"] * 1e3,
               "ratio": t["acb"] / t["plain"], "same_op": same}
        rows.append(row)
        print(f"{n:>3} {cin:>4} {cout:>4} {side:>3}x{side:<3} {k:>2} {stride:>1} {groups:>6} {row['plain']:>8.2f} "
              f"{row['acb']:>8.2f} {row['ratio']:>6.3f} {same!s:>7}")
    return rows


def _mutated(g: Genotype, rng: random.Random) -> Genotype:
    """A genotype of the same shape with per-block choices redrawn, as a factorized search space samples them."""
    stages = []
    for stage in g.stages:
        blocks = []
        for b in stage:
            n = rng.randint(1, 4)
            blocks.append(dataclasses.replace(
                b, kernels=tuple(range(3, 2 * n + 2, 2)), expand=rng.choice([3.0, 6.0]), mid=None,
                se=rng.choice([0.0, 0.25, 0.5]), exp_groups=1, proj_groups=1, kind="ir", ghost=rng.choice([1, 2]),
                acb=rng.random() < 0.2))
        stages.append(tuple(blocks))
    return g.replace(stages=tuple(stages))


def _rate(fn: Callable[[], object], n_per_call: int, seconds: float = 0.5) -> float:
    """Calls of ``fn`` per CPU second (this process's, so other load on a shared machine counts less) times
    ``n_per_call``, over at least ``seconds``."""
    calls, t0 = 0, time.process_time()
    while (dt := time.process_time() - t0) < seconds:
        fn()
        calls += 1
    return calls * n_per_call / dt


def bench_cost(n_random: int = 2000) -> dict:
    """Analytic cost throughput (genotypes/s on one core) and its speedup over build() + FlopCounterMode."""
    from torch.utils.flop_counter import FlopCounterMode

    from nas.cost import macs
    from nas.genotype import load
    from nas.model import build

    refs = [load(p) for p in sorted(REFERENCE_DIR.glob("*.yaml"))]
    rng = random.Random(0)
    randoms = [_mutated(rng.choice(refs), rng) for _ in range(n_random)]
    blocks = sum(len(g.blocks) for g in randoms) / len(randoms)

    def count_all(gs: list[Genotype]) -> Callable[[], None]:
        return lambda: [macs.count(g) for g in gs]

    macs._block.cache_clear()
    t = time.process_time()
    count_all(randoms)()
    cold = len(randoms) / (time.process_time() - t)  # first sight of nearly every (block, cin, r)
    res = {"refs_per_s": _rate(count_all(refs), len(refs)), "random_warm_per_s": _rate(count_all(randoms), n_random),
           "random_cold_per_s": cold, "blocks_per_genotype": blocks}

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    t = time.process_time()
    for g in refs:
        with torch.no_grad(), FlopCounterMode(display=False) as fc:
            build(g).eval()(torch.randn(1, 3, g.resolution, g.resolution))
        assert fc.get_total_flops() // 2 == macs.count(g).macs
    res["torch_per_s"] = len(refs) / (time.process_time() - t)
    torch.set_num_threads(threads)
    res["speedup"] = res["refs_per_s"] / res["torch_per_s"]

    print("\nAnalytic cost, one thread (genotypes per CPU second; goal >= 10,000 on ~20-block genotypes)")
    print(f"  reference genotypes (15-19 blocks, cache warm): {res['refs_per_s']:>10,.0f}")
    print(f"  random genotypes ({blocks:.1f} blocks), cache warm: {res['random_warm_per_s']:>10,.0f}")
    print(f"  random genotypes, cold (every block new):      {res['random_cold_per_s']:>10,.0f}")
    print(f"  build() + FlopCounterMode at 224 (references):  {res['torch_per_s']:>10,.2f}")
    print(f"  analytic / torch speedup: {res['speedup']:,.0f}x (MACs equal on all {len(refs)} references)")
    return res


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # One thread by default: on a shared machine, OpenMP threads waiting on busy cores swamp the op time.
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    ap.add_argument("--reps", type=int, default=9, help="timed calls per variant (default 9)")
    ap.add_argument("--quick", action="store_true", help="3 timed calls per variant (python -m benchmarks --quick)")
    args = ap.parse_args(argv)
    if args.quick:
        args.reps = min(args.reps, 3)
    torch.set_num_threads(args.threads)
    banner("nas ops: MixConv and ACB")
    torch.manual_seed(0)
    bench_mixconv(args.reps)
    bench_acb(6 * args.reps + 1)
    bench_cost()


if __name__ == "__main__":
    main()
