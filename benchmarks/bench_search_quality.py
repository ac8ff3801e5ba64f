"""Search quality: hypervolume after equal trial budgets for random, NSGA-II and TPE.

Every (sampler, seed) is a real ``nas search`` study, so a long run can be
stopped and resumed (rerun the same command: finished studies are kept,
unfinished ones continue). The hypervolume after ``k`` trials is that of the
first ``k`` trials by Optuna number (the order they were proposed in), with the
study's fixed reference point (accuracy 0, each cost at its budget), so all
figures of one space compare. Goals:

* the best sampler's mean hypervolume at ``--check`` trials (50) is above
  random's at ``--trials`` (100) by more than 2 standard errors of the
  difference (Welch's t-test p-value printed beside it);
* the trials each sampler needs to reach random's mean ``--trials``
  hypervolume (per seed; ``>n`` when a study of n trials never does): the
  predictor sampler's goal is at most 25, and fewer than the best of NSGA-II
  and TPE;
* the predictor's own Kendall tau between predicted and measured accuracy on
  trials it had not seen, after 20 and after 50 trials.

Full mode trains every proxy (default: mixnet.yaml with its shipped proxy, as
many trials at a time as local Ray holds; hours on two cores). ``--quick`` runs the same
samplers on costs alone (``--objective cost``: MACs and parameters of
mixnet.yaml's architectures, minimised under its budgets), which checks the
sampler and constraint plumbing in a minute or two but says nothing about
accuracy.

A space evaluated by a published table (``--space nasbench_macro.yaml``) is handed to
:mod:`benchmarks.bench_table_search` (every sampler and Optuna's own against the table, 30 seeds).

    python -m benchmarks.bench_search_quality --quick
    python -m benchmarks.bench_search_quality [--space mixnet.yaml] [--seeds 3] [--trials 100] [--out DIR]
                                              [--epochs N] [--concurrency 2] [--short]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from benchmarks._machine import banner
from benchmarks._spaces import drop_latency, variant, with_length

SAMPLERS = ("random", "nsga2", "tpe", "predictor")
TAU_AT = (20, 50)  # trials after which the predictor's tau on unseen trials is shown


def _cost_space(space: str, work: Path) -> Path:
    """The space with MACs and params as objectives (cost-only mode drops accuracy), without latency."""
    def edit(data: dict) -> None:
        drop_latency(data)
        data["objectives"] = ["accuracy", "macs", "params"]

    return variant(space, work, "cost", edit)


def _table_space(argv: list[str]) -> bool:
    """Whether ``--space`` names a space whose proxy is a published table (``proxy: {kind: table}``)."""
    if "--space" not in argv or argv.index("--space") + 1 >= len(argv):
        return False
    from nas.cli.common import resolve_path
    from nas.space import load_space

    return load_space(resolve_path(argv[argv.index("--space") + 1])).proxy.kind == "table"


def _with_epochs(space: str, epochs: int, work: Path) -> Path:
    """The space with a proxy of ``epochs`` epochs (a longer proxy ranks architectures with less noise)."""
    def edit(data: dict) -> None:
        data["proxy"] = with_length(data.get("proxy") or {}, {"epochs": epochs})

    return variant(space, work, f"{epochs}ep", edit)


def run_study(space: Path | str, sampler: str, seed: int, trials: int, out: Path, objective: str,
              concurrency: int | None) -> tuple[list[dict], list[dict], list[float], float, Path]:
    from nas.results.pareto import read_reference_point
    from nas.search.driver import SearchOptions, run_search

    t0 = time.perf_counter()
    s = run_search(SearchOptions(space=space, trials=trials, sampler=sampler, seed=seed, out=out,
                                 study=f"{sampler}-s{seed}", objective=objective, concurrency=concurrency,
                                 storage="journal" if objective == "cost" else None))
    ref = read_reference_point(s.study_dir, len(s.objectives))
    records = sorted(s.records, key=lambda r: r["number"])
    return records, s.objectives, ref, time.perf_counter() - t0, s.study_dir


def trials_to_reach(records: list[dict], objs: list[dict], ref: list[float], target: float) -> int | None:
    """The first k whose first-k hypervolume reaches ``target`` (None: never within these records)."""
    from nas.results.front import hypervolume

    return next((k for k in range(1, len(records) + 1) if hypervolume(records[:k], objs, ref) >= target), None)


def predictor_tau(study_dir: Path, at: tuple[int, ...] = TAU_AT) -> dict[int, float | None]:
    """The predictor sampler's cumulative Kendall tau on unseen trials (``tau_all``) as it stood after ``k``
    trials, read from the Optuna storage (the sampler stores it on the trials it proposes)."""
    import optuna

    from nas.results.store import StudyDir
    from nas.search.storage import open_storage

    sd = StudyDir(study_dir)
    kind = sd.existing_storage()
    if kind is None:
        return {k: None for k in at}
    study = optuna.load_study(study_name=None, storage=open_storage(sd, kind))
    info = [(t.number, t.user_attrs.get("predictor") or {}) for t in study.get_trials(deepcopy=False)]
    out = {}
    for k in at:
        seen = [i for n, i in info if n < k and i.get("tau_all") is not None]
        out[k] = float(seen[-1]["tau_all"]) if seen else None
    return out


def welch(a: list[float], b: list[float]) -> tuple[float, float, float]:
    """(mean(a) - mean(b), its standard error, Welch's one-sided p-value for mean(a) > mean(b))."""
    from scipy import stats

    diff = statistics.mean(a) - statistics.mean(b)
    if min(len(a), len(b)) < 2:
        return diff, float("nan"), float("nan")
    se = (statistics.variance(a) / len(a) + statistics.variance(b) / len(b)) ** 0.5
    p = float(stats.ttest_ind(a, b, equal_var=False, alternative="greater").pvalue) if se > 0 else float("nan")
    return diff, se, p


def main() -> None:
    if _table_space(sys.argv[1:]):  # a space evaluated by a published table: strategies scored against it
        from benchmarks import bench_table_search

        sys.exit(bench_table_search.main(sys.argv[1:]))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="costs only (no training), on mixnet.yaml")
    ap.add_argument("--space", default="mixnet.yaml", help="search space (default: mixnet.yaml, the flagship)")
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
    space = args.space
    objective = "cost" if args.quick else "train"
    if args.epochs is not None and not args.quick:
        space = _with_epochs(space, args.epochs, work)
    if args.quick:
        space = _cost_space(space, work)
    out = args.out or (work if args.quick else Path("results") / "bench_quality")
    samplers = [s.strip() for s in args.samplers.split(",") if s.strip()]
    budgets = sorted({args.check, args.trials})
    hv: dict[str, dict[int, list[float]]] = {s: {k: [] for k in budgets} for s in samplers}
    runs: dict[str, list[tuple[list[dict], list[dict], list[float], Path]]] = {s: [] for s in samplers}
    objs_shown = None
    for sampler in samplers:
        for seed in range(args.seeds):
            n = args.check if args.short and sampler != "random" else args.trials
            records, objs, ref, wall, study_dir = run_study(space, sampler, seed, n, out, objective,
                                                            args.concurrency)
            runs[sampler].append((records, objs, ref, study_dir))
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
    print(f"  {'sampler':10s}" + "".join(f"{'HV@' + str(k):>20s}" for k in budgets))
    for sampler in samplers:
        cells = []
        for k in budgets:
            vals = hv[sampler][k]
            if not vals:
                cells.append("-")
                continue
            sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
            cells.append(f"{statistics.mean(vals):.4f} +- {sd:.4f}")
        print(f"  {sampler:10s}" + "".join(f"{c:>20s}" for c in cells))
    if "random" in hv and len(samplers) > 1:
        _goals(hv, runs, samplers, args.check, args.trials)
    shutil.rmtree(work, ignore_errors=True)


def _goals(hv: dict[str, dict[int, list[float]]], runs: dict[str, list], samplers: list[str], check: int,
           trials: int) -> None:
    target = statistics.mean(hv["random"][trials])
    best = max((s for s in samplers if s != "random"), key=lambda s: statistics.mean(hv[s][check]))
    diff, se, p = welch(hv[best][check], hv["random"][trials])
    verdict = "met" if diff > 2 * se else "NOT met"
    print(f"  goal: best sampler at {check} ({best}, {statistics.mean(hv[best][check]):.4f}) > random at {trials} "
          f"({target:.4f}) by more than 2 standard errors: difference {diff:+.4f}, SE {se:.4f}, "
          f"Welch p = {p:.3g}: {verdict}")
    print(f"  trials to reach random's HV@{trials} ({target:.4f}), per seed:")
    needed: dict[str, list[float]] = {}
    for sampler in samplers:
        ks = [trials_to_reach(rec, objs, ref, target) for rec, objs, ref, _ in runs[sampler]]
        needed[sampler] = [k if k is not None else float("inf") for k in ks]
        shown = ", ".join(str(k) if k is not None else f">{len(rec)}" for k, (rec, *_) in zip(ks, runs[sampler],
                                                                                                 strict=True))
        print(f"    {sampler:9s} {shown}  (median {statistics.median(needed[sampler]):g})")
    if "predictor" in needed:
        med = statistics.median(needed["predictor"])
        others = [statistics.median(needed[s]) for s in ("nsga2", "tpe") if s in needed]
        ok = med <= 25 and all(med < o for o in others)
        print(f"  goal: predictor needs at most 25 trials and fewer than NSGA-II and TPE: median {med:g} "
              f"against {', '.join(f'{o:g}' for o in others) or '-'}: {'met' if ok else 'NOT met'}")
        taus = [predictor_tau(d) for *_, d in runs["predictor"]]
        for k in TAU_AT:
            vals = [t[k] for t in taus if t[k] is not None]
            cell = f"{statistics.mean(vals):.2f} (seeds: {', '.join(f'{v:.2f}' for v in vals)})" if vals else "-"
            print(f"  predictor's Kendall tau on unseen trials after {k} trials: {cell}")


if __name__ == "__main__":
    main()
