"""Training-free scores as features of the predictor sampler's model, measured against a published table.

Three stages, each resumable:

1. ``fill``: every distinct network of the table space scored once (the components of ``--score``, the space's
   proxy network, one initialisation, as screening scores) into a :class:`nas.scores.cache.ScoreCache` file;
2. ``tau``: the sampler's model (``nas predictor``'s protocol: Kendall tau on every network not trained on,
   after 20 / 50 / 100 / 500 training networks) with and without the score features, same splits and seeds;
3. ``search``: queries to a top-10 network (single objective, ``bench_table_search``'s protocol) for the
   predictor sampler with and without the score features, ``--seeds`` seeds.

    python -m benchmarks.bench_score_features [--space nasbench_macro.yaml] [--score default] [--seeds 30]
        [--stages fill,tau,search] [--cache FILE] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks._machine import banner


def fill(space: Any, cache: Any) -> None:
    from nas import tables

    items = list(tables.load(space.proxy.table).items())
    t0 = time.perf_counter()
    before = len(cache)
    for i, (g, _) in enumerate(items, 1):
        cache(g)
        if i % 250 == 0 or i == len(items):
            dt = time.perf_counter() - t0
            print(f"  fill: {i:,}/{len(items):,} networks ({cache.computed:,} scored now, "
                  f"{dt / max(cache.computed, 1):.3f} s each, {dt:.0f} s)", flush=True)
    print(f"fill: {len(cache):,} networks in the cache ({len(cache) - before:,} new), "
          f"{cache.seconds:.0f} s of scoring", flush=True)


def taus(space: Any, cache: Any, sizes: tuple[int, ...], seeds: tuple[int, ...]) -> None:
    from nas.search.assess import assess, measured_points

    points, source = measured_points(space, space.proxy.table)
    for label, sc in (("decisions + costs", None), (f"+ score features ({', '.join(cache.names)})", cache)):
        t0 = time.perf_counter()
        rows = [assess(points, n, seeds, score_cache=sc) for n in sizes]
        cells = "  ".join(f"n={n}: {r['kendall_tau']:.3f} (one-hot {r['baseline']['kendall_tau']:.3f})"
                          for n, r in zip(sizes, rows, strict=True))
        print(f"tau [{label}] on {source}: {cells}  ({time.perf_counter() - t0:.0f} s)", flush=True)


def search(space: Any, cache: Any, seeds: int, budget: int, out: Path, label: str = "predictor+scores") -> None:
    from benchmarks.bench_table_search import Oracle, _med_iqr, first_reaching, read_runs, run_one

    oracle = Oracle(space)
    log = out / "runs.jsonl"
    done = read_runs(log, "strategy", "seed")
    for strategy, sc in (("predictor", None), (label, cache)):
        for seed in range(seeds):
            if (strategy, seed) in done:
                continue
            t0 = time.perf_counter()
            order = run_one(oracle, "predictor", seed, budget, False, score_cache=sc)
            rec = {"strategy": strategy, "seed": seed, "budget": budget, "order": order,
                   "seconds": time.perf_counter() - t0}
            with open(log, "a") as f:
                f.write(json.dumps(rec) + "\n")
            done[(strategy, seed)] = rec
        runs = [r for (s, _), r in done.items() if s == strategy]
        top = [first_reaching(oracle, r["order"], oracle.top10) for r in runs]
        best = [first_reaching(oracle, r["order"], oracle.best) for r in runs]
        secs = sum(r["seconds"] for r in runs) / len(runs)
        print(f"search [{strategy}], {len(runs)} seeds: queries to a top-10 network {_med_iqr(top, budget)}, "
              f"to the best {_med_iqr(best, budget)} (median [IQR]); {secs:.1f} s per run", flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--space", default="nasbench_macro.yaml")
    ap.add_argument("--score", default="default", help="the score whose components become features")
    ap.add_argument("--stages", default="fill,tau,search")
    ap.add_argument("--seeds", type=int, default=30, help="seeds of the search stage")
    ap.add_argument("--tau-seeds", type=int, default=5)
    ap.add_argument("--budget", type=int, default=200)
    ap.add_argument("--cache", default="results/score_cache/nasbench_macro.jsonl")
    ap.add_argument("--out", default="benchmarks/logs/score_features")
    ap.add_argument("--label", default="predictor+scores", help="the name of the score-feature arm in runs.jsonl "
                    "(a new name runs that arm again, e.g. after a change to the model)")
    args = ap.parse_args(argv)

    from benchmarks.bench_table_search import load_table_space
    from nas.scores import Scorer
    from nas.scores.cache import ScoreCache

    print(banner("bench_score_features: training-free scores as predictor features, against a table"))
    space = load_table_space(args.space)
    if space is None:
        return 2
    cache = ScoreCache(Scorer.for_space(space, seeds=(0,)), args.score, args.cache)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stages = args.stages.split(",")
    print(f"{space.name}: score {args.score} -> features {', '.join(cache.names)}; cache {args.cache} "
          f"({len(cache):,} networks)", flush=True)
    if "fill" in stages:
        fill(space, cache)
    if "tau" in stages:
        taus(space, cache, (20, 50, 100, 500), tuple(range(args.tau_seeds)))
    if "search" in stages:
        search(space, cache, args.seeds, args.budget, out, args.label)
    return 0


if __name__ == "__main__":
    sys.exit(main())
