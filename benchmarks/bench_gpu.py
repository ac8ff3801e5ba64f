"""GPU figures on one GPU in a few minutes: trial packing, AMP and channels-last, MixConv, the CUDA latency table.

    python -m benchmarks.bench_gpu [--json out.json] [--quick] [--only packing,trainer,mixconv,lut]

1. packing: trials per hour of mixnet.yaml's proxy (the main job's: 32 px, width 0.5, 4 epochs of digits,
   the real trainer, through ``nas search`` on Ray) with 1, 2, 4 and 8 trials per GPU (``gpus_per_trial``
   1/k, ``concurrency`` k); every point a fresh study of the same trials (same sampler seed, so the same
   architectures, ASHA off). Goal: the best packing at least 3x the trials per hour of one trial per GPU.
   During each point the GPU's utilisation and memory are sampled every 0.5 s (``nvidia-smi``, else
   ``torch.cuda``): mean utilisation, and memory per trial (the peak over the idle GPU, divided by k: CUDA
   context included).
2. trainer: images/s of the MixNet-S proxy with mixnet.yaml's recipe on synthetic 32-px data held on the GPU,
   AMP (bf16 autocast) and channels-last each on and off, and ``torch.cuda.max_memory_allocated`` of each
   run (what one trial's tensors take).
3. mixconv: MixConv forward+backward against the naive split form (``benchmarks.bench_ops`` on CUDA).
   Goal: at least 1.3x.
4. lut: a ``cuda`` latency table built for tiny.yaml without a cache, then predicted against measured
   latency of random networks of the space, as ``bench_latency`` does (within +-10%, Kendall tau, MAPE).

One GPU is used (Ray gets one). Budget: about 8 minutes on an H200 (``--quick``: about 3). Without CUDA it
prints one line and exits 2. The machine line and every figure are printed; ``--json`` writes them.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SECTIONS = ("packing", "trainer", "mixconv", "lut")
PER_GPU = (1, 2, 4, 8)
GOAL_PACKING = 3.0
GOAL_MIXCONV = 1.3
NO_GPU_EXIT = 2
SAMPLE_S = 0.5
FULL = {"trials": 16, "trainer_epochs": 4, "images": 8192, "mixconv_reps": 15, "lut_networks": 40,
        "lut": {"rounds": 2, "burst_s": 0.02, "networks": 6}}
QUICK = {"trials": 8, "trainer_epochs": 3, "images": 4096, "mixconv_reps": 7, "lut_networks": 15,
         "lut": {"rounds": 1, "burst_s": 0.01, "networks": 2}}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.bench_gpu", description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path, default=None, help="write every figure to this JSON file")
    ap.add_argument("--quick", action="store_true", help="fewer trials, epochs and repeats (about 3 minutes)")
    ap.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated sections of {', '.join(SECTIONS)}")
    ap.add_argument("--trials", type=int, default=None, help="trials per packing point (default 16, quick 8)")
    ap.add_argument("--space", default="mixnet.yaml", help="space whose proxy the packing trains")
    ap.add_argument("--lut-space", default="tiny.yaml", help="space of the CUDA latency table")
    args = ap.parse_args(argv)
    args.sections = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = [s for s in args.sections if s not in SECTIONS]
    if unknown or not args.sections:
        ap.error(f"--only: {unknown[0] if unknown else '(empty)'!r} is not one of {', '.join(SECTIONS)}")
    args.setting = dict(QUICK if args.quick else FULL)
    if args.trials is not None:
        if args.trials < 1:
            ap.error("--trials: must be >= 1")
        args.setting["trials"] = args.trials
    return args


# -- the packing schedule and GPU sampling (pure) ---------------------------------------------------------------


@dataclass(frozen=True)
class Point:
    per_gpu: int  # trials sharing the GPU
    gpus_per_trial: float
    cpus_per_trial: float
    concurrency: int
    trials: int


def packing_schedule(trials: int, cpus: int, per_gpu: tuple[int, ...] = PER_GPU) -> list[Point]:
    """One point per packing on one GPU; each trial gets a CPU, or an equal share where k exceeds the CPUs
    (Ray must be able to run all k at once, or the point would measure the CPUs)."""
    return [Point(k, 1 / k, min(1.0, cpus / k), k, trials) for k in per_gpu]


def parse_smi(text: str) -> tuple[float, float] | None:
    """``utilization.gpu, memory.used`` (csv, noheader, nounits) of the first GPU -> (percent, MiB)."""
    for line in text.strip().splitlines():
        try:
            util, mem = (float(v) for v in line.split(","))
        except ValueError:
            return None
        return util, mem
    return None


class GpuSampler:
    """Samples GPU 0's utilisation (%) and used memory (MiB) every ``period`` seconds in a thread."""

    def __init__(self, period: float = SAMPLE_S, read: Any = None) -> None:
        self.period, self.read = period, read or read_gpu
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> GpuSampler:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            s = self.read()
            if s is not None:
                self.samples.append(s)
            self._stop.wait(self.period)

    def summary(self, idle_mib: float, trials_at_once: int) -> dict[str, float | None]:
        if not self.samples:
            return {"util_mean": None, "util_max": None, "mem_peak_mib": None, "mem_per_trial_mib": None}
        util = [u for u, _ in self.samples]
        peak = max(m for _, m in self.samples)
        return {"util_mean": statistics.fmean(util), "util_max": max(util), "mem_peak_mib": peak,
                "mem_per_trial_mib": max(0.0, peak - idle_mib) / max(1, trials_at_once)}


def read_gpu() -> tuple[float, float] | None:
    """GPU 0 now: ``nvidia-smi``, else ``torch.cuda.utilization`` and ``mem_get_info``; None if neither works."""
    if shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(["nvidia-smi", "-i", "0", "--query-gpu=utilization.gpu,memory.used",
                                  "--format=csv,noheader,nounits"], capture_output=True, text=True, timeout=10)
            if out.returncode == 0 and (s := parse_smi(out.stdout)):
                return s
        except (OSError, subprocess.TimeoutExpired):
            pass
    try:
        import torch

        free, total = torch.cuda.mem_get_info(0)
        return float(torch.cuda.utilization(0)), (total - free) / 2**20
    except Exception:  # noqa: BLE001 - no pynvml, or no driver: no sample
        return None


# -- the report (pure) ------------------------------------------------------------------------------------------


def _f(v: float | None, fmt: str) -> str:
    return "-" if v is None else format(v, fmt)


def packing_table(rows: list[dict[str, Any]]) -> str:
    base = rows[0]["trials_per_hour"] if rows else 0.0
    lines = [f"{'per GPU':>7} {'GPU/trial':>9} {'trained':>7} {'wall s':>7} {'trials/h':>9} {'vs 1':>6} "
             f"{'util %':>6} {'MiB/trial':>9}"]
    for r in rows:
        lines.append(f"{r['per_gpu']:>7} {r['gpus_per_trial']:>9.3g} {r['trained']:>7} {r['wall_s']:>7.1f} "
                     f"{r['trials_per_hour']:>9.0f} {r['trials_per_hour'] / max(base, 1e-9):>5.2f}x "
                     f"{_f(r.get('util_mean'), '6.0f'):>6} {_f(r.get('mem_per_trial_mib'), '9.0f'):>9}")
    return "\n".join(lines)


def trainer_table(rows: list[dict[str, Any]]) -> str:
    base = rows[0]["images_per_s"] if rows else 0.0
    lines = [f"{'amp':>5} {'channels_last':>13} {'images/s':>9} {'vs first':>8} {'max MiB':>8}"]
    for r in rows:
        lines.append(f"{r['amp']!s:>5} {r['channels_last']!s:>13} {r['images_per_s']:>9.0f} "
                     f"{r['images_per_s'] / max(base, 1e-9):>7.2f}x {r['max_memory_mib']:>8.0f}")
    return "\n".join(lines)


def goals(figures: dict[str, Any]) -> list[str]:
    """One line per goal whose figures were measured: met or MISSED, with the number."""
    out = []
    rows = figures.get("packing") or []
    if len(rows) > 1:
        best = max(rows[1:], key=lambda r: r["trials_per_hour"])
        ratio = best["trials_per_hour"] / max(rows[0]["trials_per_hour"], 1e-9)
        out.append(f"packing >= {GOAL_PACKING:g}x trials/h of one trial per GPU: "
                   f"{'met' if ratio >= GOAL_PACKING else 'MISSED'} ({ratio:.2f}x at {best['per_gpu']} per GPU)")
    mix = figures.get("mixconv") or []
    if mix:
        worst = min(r["speedup"] for r in mix)
        median = statistics.median(r["speedup"] for r in mix)
        out.append(f"MixConv >= {GOAL_MIXCONV:g}x the naive split form: "
                   f"{'met' if worst >= GOAL_MIXCONV else 'MISSED'} (median {median:.2f}x, worst {worst:.2f}x)")
    lut = figures.get("lut")
    if lut:
        ok = lut["within_10pct"] >= 0.95 and lut["kendall_tau"] >= 0.9
        out.append(f"CUDA latency table within +-10% >= 95% and Kendall tau >= 0.9: {'met' if ok else 'MISSED'} "
                   f"({100 * lut['within_10pct']:.0f}%, tau {lut['kendall_tau']:.3f})")
    return out


# -- measuring (CUDA) -------------------------------------------------------------------------------------------


def run_packing(points: list[Point], space: Path, work: Path) -> list[dict[str, Any]]:
    """One fresh study per point on a Ray holding this machine's CPUs and one GPU."""
    import ray

    from benchmarks.bench_scaling import search_point
    from nas.search import tuning

    epochs = _proxy(space).epochs
    tuning.start_ray(None, os.cpu_count(), num_gpus=1)
    rows = []
    try:
        for p in points:
            time.sleep(2 * SAMPLE_S)  # the last point's trial processes release the GPU
            idle = read_gpu()
            with GpuSampler() as sampler:
                sp = search_point(space, work, p.trials, p.concurrency, epochs, name=f"pack{p.per_gpu}",
                                  extra_search={"gpus_per_trial": p.gpus_per_trial,
                                                "cpus_per_trial": p.cpus_per_trial})
            row = {**dataclasses.asdict(p), "wall_s": sp.wall_s, "trained": sp.trained,
                   "trials_per_hour": sp.trials_per_hour, "counts": sp.counts,
                   **sampler.summary(idle[1] if idle else 0.0, p.concurrency)}
            rows.append(row)
            print(f"  {p.per_gpu} per GPU: {sp.trained} trained in {sp.wall_s:.1f} s = {sp.trials_per_hour:.0f} "
                  f"trials/h, GPU {_f(row['util_mean'], '.0f')}% busy", flush=True)
    finally:
        ray.shutdown()
    return rows


def _proxy(space: Path) -> Any:
    from nas.space import load_space

    return load_space(space).proxy


def trainer_speeds(space: Path, epochs: int, images: int, device: str = "cuda",
                   arch: str = "mixnet_s.yaml") -> list[dict[str, Any]]:
    """The trainer's images/s (median of the epochs after the first) with AMP and channels-last on and off."""
    import torch

    from nas.cli import resolve_path
    from nas.config import with_overrides
    from nas.data import ProxyData
    from nas.genotype import load
    from nas.train import train

    recipe = _proxy(space)
    g = load(resolve_path(arch))
    gen = torch.Generator().manual_seed(0)
    res = recipe.resolution

    def synthetic(n: int) -> tuple[Any, Any]:
        return (torch.randn(n, g.in_chans, res, res, generator=gen).to(device),
                torch.randint(0, 10, (n,), generator=gen).to(device))

    data = ProxyData("synthetic", *synthetic(images), *synthetic(max(512, images // 8)), 10, "crop_flip")
    rows = []
    for amp, cl in ((True, True), (True, False), (False, True), (False, False)):
        cuda = device.startswith("cuda")
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        r = train(g, with_overrides(recipe, epochs=epochs, device=device, amp=amp, channels_last=cl,
                                         subsample=None), data=data)
        speeds = [h["images_per_s"] for h in r.history[1:]] or [r.images_per_s]
        rows.append({"amp": amp, "channels_last": cl, "images_per_s": statistics.median(speeds),
                     "max_memory_mib": torch.cuda.max_memory_allocated() / 2**20 if cuda else 0.0})
        print(f"  amp {amp!s:<5} channels_last {cl!s:<5}: {rows[-1]['images_per_s']:.0f} images/s", flush=True)
    return rows


def latency_check(space_path: Path, target: str, n: int, setting: dict[str, Any], seed: int = 1000,
                  ) -> dict[str, Any]:
    """Build ``space_path``'s table for ``target`` (no cache), then predicted vs measured on ``n`` networks."""
    import numpy as np

    from benchmarks.bench_latency import _figures
    from nas.cost.table import predict
    from nas.latency import build_lut, deployed, get_target, input_shape, measure_many
    from nas.space import load_space

    space = load_space(space_path)
    tgt = get_target(target)
    t0 = time.perf_counter()
    table, stats = build_lut(space, tgt, cache=False, networks=setting["networks"], rounds=setting["rounds"],
                             burst_s=setting["burst_s"])
    build_s = time.perf_counter() - t0
    nets = space.sample_many(n, seed=seed)
    nc = space.target.num_classes
    items = {i: (deployed(g, nc), input_shape(g, tgt)) for i, g in enumerate(nets)}
    measured = measure_many(items, tgt, rounds=3, burst_s=0.05, unit_ms=table.unit_ms)
    meas = np.array([measured[i].ms for i in items])
    pred = np.array([predict(g, table) for g in nets])
    within, tau, mape, worst = _figures(pred, meas)
    return {"space": space.name, "target": tgt.name, "parts": stats.parts, "build_s": build_s, "n": n,
            "within_10pct": within, "kendall_tau": tau, "mape": mape, "worst": worst,
            "median_measured_ms": float(np.median(meas))}


# -- main -------------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    if not torch.cuda.is_available():
        print(f"bench_gpu: no CUDA device (torch {torch.__version__}, CUDA build {torch.version.cuda or 'none'}): "
              "nothing to measure; run it on a GPU machine", file=sys.stderr)
        return NO_GPU_EXIT
    from benchmarks._machine import banner
    from benchmarks.bench_ops import bench_mixconv
    from nas.cli import resolve_path
    from nas.io import atomic_write_json

    figures: dict[str, Any] = {"machine": banner("bench_gpu: packing, AMP and channels-last, MixConv, CUDA LUT"),
                               "quick": bool(args.quick), "setting": args.setting}
    st, space = args.setting, Path(resolve_path(args.space))
    t0 = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="bench_gpu_"))
    try:
        if "packing" in args.sections:  # first: the driver holds no CUDA context yet
            points = packing_schedule(st["trials"], os.cpu_count() or 1)
            print(f"\n-- packing: {space.name}'s proxy, {st['trials']} trials per point, one GPU --", flush=True)
            figures["packing"] = run_packing(points, space, work)
            print(packing_table(figures["packing"]), flush=True)
        if "trainer" in args.sections:
            print(f"\n-- trainer: MixNet-S proxy, {space.name}'s recipe, synthetic data on the GPU --", flush=True)
            figures["trainer"] = trainer_speeds(space, st["trainer_epochs"], st["images"])
            print(trainer_table(figures["trainer"]), flush=True)
        if "mixconv" in args.sections:
            figures["mixconv"] = bench_mixconv(st["mixconv_reps"], "cuda")
        if "lut" in args.sections:
            print(f"\n-- CUDA latency table: {args.lut_space}, predicted vs measured --", flush=True)
            lut = latency_check(Path(resolve_path(args.lut_space)), "cuda", st["lut_networks"], st["lut"])
            figures["lut"] = lut
            print(f"{lut['parts']} parts built in {lut['build_s']:.0f} s; {lut['n']} networks (median "
                  f"{lut['median_measured_ms']:.2f} ms): within +-10% {100 * lut['within_10pct']:.0f}%, Kendall tau "
                  f"{lut['kendall_tau']:.3f}, MAPE {100 * lut['mape']:.1f}%, worst {100 * lut['worst']:.0f}%")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    figures["wall_s"] = time.perf_counter() - t0
    figures["goals"] = goals(figures)
    print("\n-- goals --\n" + "\n".join(figures["goals"]) + f"\n(bench_gpu took {figures['wall_s']:.0f} s)")
    if args.json:
        atomic_write_json(args.json, figures)
        print(f"figures written to {args.json}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
