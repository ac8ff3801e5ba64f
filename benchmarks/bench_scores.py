"""Training-free scores against a table of trained networks: how well each ranks the table's mean accuracy.

For N distinct networks drawn from the table (all of them with ``-n 0``), every single score (synflow, Zen-score,
NASWOT, gradient norm, SNIP, params, MACs) is computed on the space's proxy network (``nas.scores.Scorer``: the
proxy's resolution and width, synthetic Gaussian input, the given initialisation seeds) through
``nas.fidelity.scores.score_fidelity``, the same code as ``nas fidelity --reference table:FILE``. Printed per
recipe: Kendall tau, Spearman rho, top-5% overlap against the table's mean accuracy, and seconds per network
(a combination: the sum of its members'). Also printed, from the per-seed values kept in ``scores.jsonl``: each
seed-averaged score with its first seed alone, to show what the extra initialisations buy.

The combinations are rank averages; ``default`` is the shipped one (``nas.scores.COMBINATIONS``). The scores
directory keeps every computed score: rerun the same command to resume.

    python -m benchmarks.bench_scores --quick        # 40 networks, one seed
    python -m benchmarks.bench_scores [--space nasbench_macro.yaml] [--table nas-bench-macro] [-n 1000]
        [--seeds 0,1,2] [--out DIR] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks._machine import banner

SINGLE = ["naswot", "grad_norm", "synflow", "zen", "snip", "macs", "params", "depth"]
NETWORK = SINGLE[:5]  # the scores that build a network (the others are read off the genotype)
COMBOS = [["naswot", "synflow", "macs"], ["naswot", "depth"], ["naswot", "grad_norm"], ["naswot", "grad_norm", "depth"],
          ["naswot", "macs"], ["naswot", "synflow"], ["naswot", "grad_norm", "synflow", "macs"],
          ["naswot", "grad_norm", "synflow", "zen", "snip"], ["naswot", "grad_norm", "synflow", "zen", "snip", "macs"]]


def _table(rows: list[dict[str, str]]) -> str:
    cols = list(rows[0])
    widths = {c: max(len(c), *(len(r[c]) for r in rows)) for c in cols}
    out = ["  ".join(c.ljust(widths[c]) for c in cols), "  ".join("-" * widths[c] for c in cols)]
    out += ["  ".join(r[c].ljust(widths[c]) for c in cols) for r in rows]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--space", default="nasbench_macro.yaml")
    p.add_argument("--table", default="nas-bench-macro")
    p.add_argument("-n", type=int, default=1000, help="networks drawn from the table (0: all)")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--sample-seed", type=int, default=0)
    p.add_argument("--out", default=None)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--resolution", type=int, default=None, help="score at this input size (default: the space's)")
    p.add_argument("--width", type=float, default=None, help="score at this width multiplier (default: the space's)")
    p.add_argument("--quick", action="store_true", help="40 networks, one seed")
    a = p.parse_args(argv)
    import torch

    from nas.fidelity import stats
    from nas.fidelity.scores import SCORES_FILE, score_fidelity, top_k
    from nas.scores import COMBINATIONS, Scorer, rank_average
    from nas.space import find_space_file, load_space
    from nas.tables import load

    torch.set_num_threads(a.threads)
    if a.quick:
        a.n, a.seeds = 40, "0"
    seeds = tuple(int(s) for s in a.seeds.split(","))
    space_path = find_space_file(a.space)
    table = load(a.table)
    n = a.n or len(table)
    tag = "".join(f"-{k[0]}{v:g}" for k, v in (("resolution", a.resolution), ("width", a.width)) if v is not None)
    out = Path(a.out or f"results/bench-scores-{space_path.stem}{tag}")
    banner("training-free scores against a table")
    print(f"load average: {os.getloadavg()}")
    over = {k: v for k, v in (("resolution", a.resolution), ("width", a.width)) if v is not None}
    scorer = Scorer.for_space(load_space(space_path), seeds=seeds, **over)
    print(f"space {space_path.name}, table {a.table} ({len(table)} distinct networks), n {n}, scorer {scorer}")
    recipes = ([{"score": s} for s in SINGLE] + [{"score": "default"}]
               + [{"score": c} for c in COMBOS if tuple(c) != COMBINATIONS["default"]])
    t0 = time.perf_counter()
    last = [t0]

    def progress(done: int, total: int) -> None:
        if time.perf_counter() - last[0] > 60 or done == total:
            last[0] = time.perf_counter()
            print(f"  {done}/{total} networks scored, {last[0] - t0:.0f} s", flush=True)

    rep = score_fidelity(space_path, table, out, recipes, n=n, sample_seed=a.sample_seed, scorer=scorer,
                         on_network=progress)
    print(f"\n{rep.n} networks, {time.perf_counter() - t0:.0f} s wall; default = rank average of "
          f"{', '.join(COMBINATIONS['default'])}\n")
    print(_table(rep.rows()))
    recs = {}
    for line in (out / SCORES_FILE).read_text().splitlines():
        r = json.loads(line)
        recs[(r["arch"], r["score"])] = r
    acc = np.array(rep.table_accuracy)[:, None]

    def column(s: str, hashes: list[str]) -> np.ndarray:
        v = np.array([-np.inf if recs[(h, s)]["value"] is None else recs[(h, s)]["value"] for h in hashes])
        return np.where(np.isfinite(v), v, np.min(v[np.isfinite(v)]) - 1)

    # Selection check: which recipe is best on the first half of the drawn networks, and how it does on the
    # other half (the choice of a default on one table, seen from data it was not chosen on).
    half = rep.n // 2
    halves = [list(rep.networks[:half]), list(rep.networks[half:])]
    rows = []
    for r in rep.recipes:
        taus = []
        for hs, lo in zip(halves, (0, half), strict=True):
            cols = {s: column(s, hs) for s in r.scores}
            v = cols[r.scores[0]] if len(cols) == 1 else rank_average(cols)
            taus.append(stats.agreement(v[:, None], acc[lo:lo + len(hs)], top_k(len(hs))).kendall_tau)
        rows.append({"recipe": r.recipe, "tau 1st half": f"{taus[0]:.3f}", "tau 2nd half": f"{taus[1]:.3f}"})
    best = max(rows, key=lambda x: float(x["tau 1st half"]))
    print(f"\nselection check: first half {half} networks, second half {rep.n - half}; best on the first half: "
          f"{best['recipe']} ({best['tau 1st half']}), on the second half {best['tau 2nd half']}\n")
    print(_table(rows))
    if len(seeds) > 1:
        # Each score from its first seed alone, from the per-seed values kept in scores.jsonl.
        rows = []
        for s in NETWORK:
            first = [recs[(h, s)]["per_seed"][0] for h in rep.networks]
            one = np.array([-np.inf if v is None else v for v in first], dtype=float)
            one = np.where(np.isfinite(one), one, np.min(one[np.isfinite(one)]) - 1)[:, None]
            ag = stats.agreement(one, acc, top_k(rep.n))
            rows.append({"score": s, "seeds": str(seeds[0]), "tau": f"{ag.kendall_tau:.3f}",
                         "rho": f"{ag.spearman_rho:.3f}", "top-5%": f"{ag.top_k_overlap:.2f}"})
        print(f"\nfirst seed alone ({rep.n} networks):\n")
        print(_table(rows))
    print(f"\n{out}: report.json, scores.jsonl")
    return 0


if __name__ == "__main__":
    sys.exit(main())
