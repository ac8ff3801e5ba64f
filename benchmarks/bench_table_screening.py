"""Screening against a published table: queries (table lookups) to a top-10 network with and without screening.

Without screening, each query is a random unseen network of the space. With screening K, each query is the
best-scoring of K random unseen networks under the training-free score (``search.screen_score``, default
``default``: the rank average of NASWOT and depth among the K candidates, as ``nas.scores.best_of`` ranks them),
which is what ``search: {screen: K}`` does for every trained trial. The scores are computed once per network on
the space's proxy network (one initialisation, as screening does; ``nas.scores.Scorer``) and kept in
``DIR/scores.jsonl`` (resumable), so the 30 seeds cost lookups only.

    python -m benchmarks.bench_table_screening [--space nasbench_macro.yaml] [--seeds 30] [--screen 8,32]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks._machine import banner


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--space", default="nasbench_macro.yaml")
    ap.add_argument("--seeds", type=int, default=30)
    ap.add_argument("--screen", default="8,32")
    ap.add_argument("--budget", type=int, default=400)
    ap.add_argument("--out", default="benchmarks/logs/table_screening")
    args = ap.parse_args(argv)

    import torch

    from nas import tables
    from nas.cli.common import resolve_path
    from nas.scores import Scorer
    from nas.scores.registry import depth, rank_average
    from nas.space import load_space

    torch.set_num_threads(1)
    print(banner("bench_table_screening: queries to a top-10 network with and without screening"))
    space = load_space(resolve_path(args.space))
    table = tables.load(space.proxy.table)
    items = list(table.items())
    acc = {g.hash: float(m["accuracy"]) for g, m in items}
    top10 = sorted(acc.values(), reverse=True)[9]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cache = out / "scores.jsonl"
    naswot: dict[str, float] = {}
    if cache.exists():
        for line in cache.read_text().splitlines():
            if line.strip():
                r = json.loads(line)
                naswot[r["hash"]] = r["naswot"]
    scorer = Scorer.for_space(space, seeds=(0,))
    t0, todo = time.perf_counter(), [g for g, _ in items if g.hash not in naswot]
    with open(cache, "a") as f:
        for i, g in enumerate(todo, 1):
            naswot[g.hash] = scorer.score(g, "naswot").value
            f.write(json.dumps({"hash": g.hash, "naswot": naswot[g.hash]}) + "\n")
            if i % 500 == 0:
                f.flush()
                print(f"  scored {i}/{len(todo)} ({(time.perf_counter() - t0) / i:.3f} s/network)", flush=True)
    if todo:
        print(f"scored {len(todo)} networks in {time.perf_counter() - t0:.0f} s "
              f"({(time.perf_counter() - t0) / len(todo):.3f} s/network, 1 thread)")
    hashes = [g.hash for g, _ in items]
    deep = {g.hash: depth(g) for g, _ in items}
    print(f"{space.name}: {len(hashes):,} networks; a top-10 network has accuracy >= {100 * top10:.2f}%; "
          f"{args.seeds} seeds, at most {args.budget} queries")

    def run(seed: int, k: int) -> int | None:
        rng = random.Random(seed)
        unseen = hashes[:]
        rng.shuffle(unseen)
        seen: set[str] = set()
        for q in range(1, args.budget + 1):
            pool = [h for h in unseen if h not in seen][:k] if k > 1 else [next(h for h in unseen if h not in seen)]
            if k > 1:
                ranks = rank_average({"naswot": np.array([naswot[h] for h in pool]),
                                      "depth": np.array([float(deep[h]) for h in pool])})
                pick = pool[int(np.argmax(ranks))]
                seen.update(pool)  # screened-out candidates are not proposed again
                rng.shuffle(unseen)
            else:
                pick = pool[0]
                seen.add(pick)
            if acc[pick] >= top10 - 1e-12:
                return q
        return None

    print(f"\n  {'strategy':<22}{'median':>8}{'IQR':>14}{'mean':>8}{'not found':>11}")
    for k in [1, *[int(x) for x in args.screen.split(",") if x]]:
        res = [run(s, k) for s in range(args.seeds)]
        xs = [r if r is not None else np.inf for r in res]
        q = np.percentile(xs, [25, 50, 75], method="lower")
        found = [r for r in res if r is not None]
        name = "random" if k == 1 else f"random + screen {k}"

        def fmt(v: float) -> str:
            return f">{args.budget}" if np.isinf(v) else str(int(v))

        print(f"  {name:<22}{fmt(q[1]):>8}{fmt(q[0]) + '-' + fmt(q[2]):>14}"
              f"{(np.mean(found) if found else float('nan')):>8.1f}{len(res) - len(found):>11}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
