"""Cost-only search at scale: 1,000 trials (no training), peak memory and throughput.

Run: ``python -m benchmarks.bench_costonly [--space mixnet.yaml] [--trials 1000] [--storage sqlite|journal]``.

The search runs in this process (``nas search --objective cost``: sample, cost, record, mirror to the Optuna
storage). A sampling thread reads this process's resident memory and the number of records in
trials.jsonl every 0.2 s, so the output shows RSS against trials done: memory that is bounded stops growing
once the imports and the sampler's working set are in; a leak grows with the trials. The study goes to a
temporary directory, removed at the end (``--keep`` keeps it).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import tempfile
import threading
import time
from pathlib import Path

from benchmarks._machine import banner
from benchmarks._spaces import drop_latency, variant


def _status_kb(pid: str, key: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1])
    except OSError:  # the process ended meanwhile
        pass
    return 0


def _descendants(pid: str) -> list[str]:
    out = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                out += f.read().split()
    except OSError:
        return []
    return out + [d for c in out for d in _descendants(c)]


def rss_mb(tree: bool = False) -> float:
    """Resident set size (MiB) of this process, or with ``tree`` of it and its child processes (the storage
    writer), from /proc."""
    pids = [str(os.getpid())] + (_descendants(str(os.getpid())) if tree else [])
    return sum(_status_kb(p, "VmRSS:") for p in pids) / 1024


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def peak_child_rss_mb() -> float:
    """Peak RSS of the largest child process that has ended (the storage writer, once the search is over)."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


class Sampler(threading.Thread):
    """(seconds, records in trials.jsonl, RSS MiB of this process and its children) every ``period`` seconds."""

    def __init__(self, trials_file: Path, period: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.trials_file, self.period = trials_file, period
        self.samples: list[tuple[float, int, float]] = []
        self._done = threading.Event()
        self._t0 = time.perf_counter()

    def _count(self) -> int:
        try:
            with open(self.trials_file, "rb") as f:
                return sum(1 for _ in f)
        except FileNotFoundError:
            return 0

    def run(self) -> None:
        while not self._done.wait(self.period):
            self.samples.append((time.perf_counter() - self._t0, self._count(), rss_mb(tree=True)))

    def stop(self) -> None:
        self._done.set()
        self.join()

    def rss_at(self, n: int) -> float | None:
        """RSS at the first sample with at least ``n`` records."""
        return next((r for _, k, r in self.samples if k >= n), None)

    def time_at(self, n: int) -> float | None:
        return next((t for t, k, _ in self.samples if k >= n), None)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--space", default="mixnet.yaml")
    ap.add_argument("--trials", type=int, default=1000)
    ap.add_argument("--storage", choices=("sqlite", "journal"), default="sqlite")
    ap.add_argument("--sampler", default=None, help="default: the space's")
    ap.add_argument("--keep", action="store_true", help="keep the study directory")
    ap.add_argument("--quick", action="store_true", help="200 trials (python -m benchmarks --quick)")
    args = ap.parse_args()
    if args.quick:
        args.trials = min(args.trials, 200)

    banner(f"cost-only search: {args.trials} trials of {args.space}, {args.storage} storage")
    rss_start = rss_mb()
    from nas.search.driver import SearchOptions, run_search  # imports (torch, optuna) counted as start-up

    out = Path(tempfile.mkdtemp(prefix="bench_costonly_"))
    rss_imported = rss_mb()
    from nas.cli import resolve_path
    from nas.space import load_space

    # Analytic costs only: a latency target would time every new network (bench_latency's subject).
    space = variant(resolve_path(args.space), out, "costs", drop_latency)
    opts = SearchOptions(space=space, trials=args.trials, out=out, objective="cost", storage=args.storage,
                         sampler=args.sampler, wandb="disabled")
    study_dir = out / load_space(space).name
    sampler = Sampler(study_dir / "trials.jsonl")
    sampler.start()
    t0 = time.perf_counter()
    summary = run_search(opts)
    wall = time.perf_counter() - t0
    sampler.stop()

    n = len(summary.records)
    t_all = sampler.time_at(n) or wall
    print(f"trials: {n} recorded ({summary.new_trials} new): {summary.counts}")
    print(f"time: {wall:.1f} s in run_search; the last record was written at {t_all:.1f} s, the rest was flushing the "
          f"storage and the final plots/pareto.json")
    print(f"throughput: {n / t_all:.1f} trials/s to trials.jsonl, {n / wall:.1f} trials/s end to end; "
          f"{summary.propose_ms:.1f} ms per proposal (sample + cost + record)")
    tree_peak = max((r for _, _, r in sampler.samples), default=float("nan"))
    print(f"memory: RSS {rss_start:.0f} MiB at start, {rss_imported:.0f} MiB after imports; peak RSS "
          f"{peak_rss_mb():.0f} MiB (this process), {peak_child_rss_mb():.0f} MiB (largest child: the storage "
          f"writer), {tree_peak:.0f} MiB (both together, sampled)")
    marks = [m for m in (n // 10, n // 4, n // 2, 3 * n // 4, n) if m > 0]
    curve = ", ".join(f"{m}: {r:.0f}" for m in marks if (r := sampler.rss_at(m)) is not None)
    print(f"RSS of process + children (MiB) after N trials: {curve}")
    lo, hi = sampler.rss_at(n // 4), sampler.rss_at(n)
    if lo is not None and hi is not None and n >= 4:
        per_k = (hi - lo) / (n - n // 4) * 1000
        print(f"growth from {n // 4} to {n} trials: {hi - lo:+.1f} MiB ({per_k:+.1f} MiB per 1,000 trials)")
    if args.keep:
        print(f"study kept in {study_dir}")
    else:
        shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
