"""Search quality: hypervolume after equal trial budgets for random, NSGA-II and TPE.

Every (sampler, seed) is a real ``nas search`` study, so a long run can be
stopped and resumed (rerun the same command: finished studies are kept,
unfinished ones continue). The hypervolume after ``k`` trials is that of the
first ``k`` trials by Optuna number (the order they were proposed in), with the
study's fixed reference point (accuracy 0, each cost at its budget), so all
figures of one space compare. Goal (issue 7): the best sampler's mean
hypervolume at ``--check`` trials (50) reaches random's at ``--trials`` (100).

Full mode trains every proxy (default: tiny.yaml's one-epoch digits proxy, two
trials at a time on local Ray; hours on two cores). ``--quick`` runs the same
samplers on costs alone (``--objective cost``: MACs and parameters of
mixnet.yaml's architectures, minimised under its budgets), which checks the
sampler and constraint plumbing in a minute or two but says nothing about
accuracy.

    python -m benchmarks.bench_search_quality --quick
    python -m benchmarks.bench_search_quality [--space tiny.yaml] [--seeds 3] [--trials 100] [--out DIR]
                                              [--epochs N] [--concurrency 2] [--short]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks._machine import banner
from benchmarks._spaces import drop_latency, variant

SAMPLERS = ("random", "nsga2", "tpe")


def _cost_space(space: str, work: Path) -> Path:
    """The space with MACs and params as objectives (cost-only mode drops accuracy), without latency."""
    def edit(data: dict) -> None:
        drop_latency(data)
        data["objectives"] = ["accuracy", "macs", "params"]

    return variant(space, work, "cost", edit)


def _with_epochs(space: str, epochs: int, work: Path) -> Path:
    """The space with a proxy of ``epochs`` epochs (a longer proxy ranks architectures with less noise)."""
    def edit(data: dict) -> None:
        data.setdefault("proxy", {})["epochs"] = epochs

    return variant(space, work, f"{epochs}ep", edit)


def run_study(space: Path | str, sampler: str, seed: int, trials: int, out: Path, objective: str,
              concurrency: int | None) -> tuple[list[dict], list[dict], list[float], float]:
    from nas.results.pareto import read_reference_point
    from nas.search.driver import SearchOptions, run_search

    t0 = time.perf_counter()
    s = run_search(SearchOptions(space=space, trials=trials, sampler=sampler, seed=seed, out=out,
                                 study=f"{sampler}-s{seed}", objective=objective, concurrency=concurrency,
                                 storage="journal" if objective == "cost" else None))
    ref = read_reference_point(s.study_dir, len(s.objectives))
    records = sorted(s.records, key=lambda r: r["number"])
    return records, s.objectives, ref, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="costs only (no training), on mixnet.yaml")
    ap.add_argument("--space", default=None, help="search space (default: tiny.yaml; mixnet.yaml with --quick)")
    ap.add_argument("--samplers", default=",".join(SAMPLERS))
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--trials", type=int, default=100)
    ap.add_argument("--check", type=int, default=50, help="the smaller budget compared with random's full one")
    ap.add_argument("--short", action="store_true",
                    help="samplers other than random stop at --check trials (all the goal compares; ~1/3 less work)")
    ap.add_argument("--epochs", type=int, default=None, help="proxy epochs (default: the space's)")
    ap.add_argument("--concurrency", type=int, default=None, help="trials trained at once (default: the space's)")
    ap.add_argument("--out", type=Path, default=None,
                    help="study directory root (default: results/bench_quality; a temp dir with --quick)")
    args = ap.parse_args()
    mode = "quick, costs only" if args.quick else "full, trained proxies"
    banner(f"search quality: hypervolume at equal trial budgets ({mode})")

    from nas.results.front import hypervolume

    work = Path(tempfile.mkdtemp(prefix="bench_quality_"))
    space = args.space or ("mixnet.yaml" if args.quick else "tiny.yaml")
    objective = "cost" if args.quick else "train"
    if args.epochs is not None and not args.quick:
        space = _with_epochs(space, args.epochs, work)
    if args.quick:
        space = _cost_space(space, work)
    out = args.out or (work if args.quick else Path("results") / "bench_quality")
    samplers = [s.strip() for s in args.samplers.split(",") if s.strip()]
    budgets = sorted({args.check, args.trials})
    hv: dict[str, dict[int, list[float]]] = {s: {k: [] for k in budgets} for s in samplers}
    objs_shown = None
    for sampler in samplers:
        for seed in range(args.seeds):
            n = args.check if args.short and sampler != "random" else args.trials
            records, objs, ref, wall = run_study(space, sampler, seed, n, out, objective, args.concurrency)
            objs_shown = objs_shown or ", ".join(f"{o['metric']} ({o['direction']})" for o in objs)
            row = []
            for k in (k for k in budgets if k <= n):
                v = hypervolume(records[:k], objs, ref)
                hv[sampler][k].append(v)
                row.append(f"HV@{k} {v:.4f}")
            feasible = sum(r["status"] == "complete" for r in records)
            print(f"  {sampler:7s} seed {seed}: {'  '.join(row)}  ({feasible}/{len(records)} feasible, "
                  f"{wall:.0f} s)", flush=True)

    print(f"\nspace {Path(str(space)).name}, objectives {objs_shown}, {args.seeds} seeds, "
          f"reference point: accuracy 0 / each cost at its budget")
    print(f"  {'sampler':8s}" + "".join(f"{'HV@' + str(k):>20s}" for k in budgets))
    for sampler in samplers:
        cells = []
        for k in budgets:
            vals = hv[sampler][k]
            if not vals:
                cells.append("-")
                continue
            sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
            cells.append(f"{statistics.mean(vals):.4f} +- {sd:.4f}")
        print(f"  {sampler:8s}" + "".join(f"{c:>20s}" for c in cells))
    if "random" in hv and len(samplers) > 1:
        target = statistics.mean(hv["random"][args.trials])
        best = max((s for s in samplers if s != "random"), key=lambda s: statistics.mean(hv[s][args.check]))
        got = statistics.mean(hv[best][args.check])
        verdict = "met" if got >= target else "NOT met"
        print(f"  goal: best sampler at {args.check} ({best}, {got:.4f}) >= random at {args.trials} "
              f"({target:.4f}): {verdict}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
