"""Search strategies scored against a published table (``bench_search_quality --space nasbench_macro.yaml``).

Every strategy proposes architectures of the space; each *query* is one table lookup of a network not
looked up before (a proposal of a network already seen is answered from its earlier result, as ``nas
search`` answers duplicates, and costs no query). Strategies:

* nas's samplers (random, tpe, nsga2, gp, predictor) driving ``space.suggest`` exactly as ``nas search``
  does (same sampler factories, same define-by-run walk, canonical hashing of identities);
* Optuna's own samplers on a flat categorical encoding (one parameter per layer, the code a user would
  write without nas): ``optuna-random``, ``optuna-tpe``, ``optuna-nsga2``, ``optuna-gp``;
* ``gbm-onehot``: gradient boosting on a one-hot encoding of the decisions, 10 random networks, then each
  round the 5 best-predicted unseen ones (the plain model-based baseline of issue 25).

Single objective (accuracy): queries until one of the 10 best distinct networks and until the best
(median and interquartile range over seeds; ``>B`` when a run of B queries never got there), and the mean
regret curve (``regret.png``). Two objectives (accuracy, MACs): hypervolume after 25/50/100/200 queries as
a fraction of the table's true front (reference point: accuracy 0, the table's largest MACs).

    python -m benchmarks.bench_table_search [--space nasbench_macro.yaml] [--seeds 30] [--budget 200]
        [--mo-budget 200] [--random-budget 400] [--samplers ...] [--out DIR]

Results are appended per (mode, strategy, seed) to ``DIR/runs.jsonl``, so a stopped run resumes.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks._machine import banner

NAS_SAMPLERS = ("random", "tpe", "nsga2", "gp", "predictor")
OPTUNA_SAMPLERS = ("optuna-random", "optuna-tpe", "optuna-nsga2", "optuna-gp")
STRATEGIES = (*NAS_SAMPLERS, *OPTUNA_SAMPLERS, "gbm-onehot")
HV_AT = (25, 50, 100, 200, 400)


class Oracle:
    """The table behind a space: canonical hash -> (accuracy, MACs), the ranks, the true front."""

    def __init__(self, space: Any) -> None:
        from nas import tables
        from nas.search import budgets

        self.space = space
        table = tables.load(space.proxy.table)
        self.acc: dict[str, float] = {}
        self.macs: dict[str, float] = {}
        for g, m in table.items():
            self.acc[g.hash] = float(m["accuracy"])
            self.macs[g.hash] = float(budgets.target_cost(space, g).macs)
        ranked = sorted(self.acc.values(), reverse=True)
        self.best = ranked[0]
        self.top10 = ranked[9]
        self.ref = np.array([0.0, max(self.macs.values())])
        pts = np.array([[-self.acc[h], self.macs[h]] for h in self.acc])
        self.true_hv = _hv(pts, self.ref)

    def key(self, g: Any) -> str:
        from nas import rules

        return rules.canonical(g).hash


def load_table_space(name: str) -> Any | None:
    """The space ``name`` (shipped names resolve) when its proxy is a table, else None after one line on stderr."""
    from nas.cli.common import resolve_path
    from nas.space import load_space

    space = load_space(resolve_path(name))
    if space.proxy.kind != "table":
        print(f"{name}: proxy kind {space.proxy.kind}: this benchmark needs a table space", file=sys.stderr)
        return None
    return space


def read_runs(log: Path, *key: str) -> dict[tuple, dict]:
    """The runs a benchmark appended to ``log`` (JSON lines), by the fields ``key``: what a resumed run skips."""
    done: dict[tuple, dict] = {}
    if log.exists():
        for line in log.read_text().splitlines():
            if line.strip():
                r = json.loads(line)
                done[tuple(r[k] for k in key)] = r
    return done


def _hv(losses: np.ndarray, ref: np.ndarray) -> float:
    from nas.search.evolve import hypervolume

    losses = np.asarray(losses, dtype=float)
    ok = np.all(losses < ref, axis=1)
    return float(hypervolume(losses[ok], ref)) if ok.any() else 0.0


# -- strategies -------------------------------------------------------------------------------------------------


def _run_optuna(oracle: Oracle, strategy: str, seed: int, budget: int, mo: bool, score_cache: Any = None
                ) -> list[str]:
    """The networks queried, in order, by an Optuna sampler (nas's or Optuna's own on a flat encoding);
    ``score_cache``: the predictor sampler's training-free score features (``search.score_features``)."""
    import optuna

    from nas.search import budgets
    from nas.search.samplers import make_sampler, quiet_optuna

    quiet_optuna()
    space = oracle.space
    objectives = [{"metric": "accuracy", "direction": "maximize"}] + (
        [{"metric": "macs", "direction": "minimize"}] if mo else [])
    directions = [o["direction"] for o in objectives]
    flat = strategy.startswith("optuna-")
    if flat:
        kind = strategy.removeprefix("optuna-")
        sampler = {"random": lambda: optuna.samplers.RandomSampler(seed=seed),
                   "tpe": lambda: optuna.samplers.TPESampler(seed=seed),
                   "nsga2": lambda: optuna.samplers.NSGAIISampler(seed=seed),
                   "gp": lambda: optuna.samplers.GPSampler(seed=seed)}[kind]()
    elif strategy == "predictor":  # fits in this thread: as nas search's in-process table path waits for each fit
        from nas.search.predictor import from_context
        from nas.search.samplers import SamplerContext

        sampler = from_context(SamplerContext("predictor", seed, budget, 1, space=space, objectives=objectives,
                                              cost_fn=lambda g: budgets.target_cost(space, g),
                                              score_cache=score_cache), background=False)
    else:
        sampler = make_sampler(strategy, seed, budget, 1, space=space, objectives=objectives,
                               cost_fn=lambda g: budgets.target_cost(space, g))
    study = optuna.create_study(directions=directions, sampler=sampler)
    names = _decisions(space) if flat else None
    seen: dict[str, list[float]] = {}
    order: list[str] = []
    proposals = 0
    while len(order) < budget and proposals < 20 * budget:
        proposals += 1
        trial = study.ask()
        if flat:
            code = {n: trial.suggest_categorical(n, list(ch)) for n, ch in names}
            g = space.from_params(code)
        else:
            g = space.suggest(trial)
        h = oracle.key(g)
        if h not in seen:
            seen[h] = [oracle.acc[h]] + ([oracle.macs[h] / 1e6] if mo else [])
            order.append(h)
        study.tell(trial, seen[h])
    return order


def _decisions(space: Any) -> list[tuple[str, tuple]]:
    """Every decision of the space with its choices (a flat encoding: one categorical parameter each)."""
    from nas.space.sources import TrialSource

    class Record:
        def __init__(self) -> None:
            self.seen: dict[str, tuple] = {}

        def suggest_categorical(self, name: str, choices: Any) -> Any:
            self.seen.setdefault(name, tuple(choices))
            return choices[0]

        def suggest_int(self, name: str, low: int, high: int, step: int = 1) -> int:
            self.seen.setdefault(name, tuple(range(low, high + 1, step)))
            return low

    from nas.space.walk import walk

    rec = Record()
    walk(space, TrialSource(rec))
    return list(rec.seen.items())


def _run_gbm(oracle: Oracle, seed: int, budget: int, mo: bool) -> list[str]:
    """Gradient boosting on one-hot decisions: 10 random networks, then the 5 best-predicted unseen per round."""
    from sklearn.ensemble import GradientBoostingRegressor

    space = oracle.space
    rng = random.Random(seed)
    pool = {oracle.key(g): space.params_of(g) for g, _ in _table_items(space)}
    keys = list(pool)
    cols = sorted({(k, v) for p in pool.values() for k, v in p.items()})
    index = {c: i for i, c in enumerate(cols)}
    x_all = np.zeros((len(keys), len(cols)))
    for r, h in enumerate(keys):
        for k, v in pool[h].items():
            x_all[r, index[(k, v)]] = 1
    order = rng.sample(keys, 10)
    while len(order) < budget:
        seen = set(order)
        rows = [keys.index(h) for h in order]
        y = np.array([oracle.acc[h] for h in order])
        model = GradientBoostingRegressor(random_state=seed).fit(x_all[rows], y)
        unseen = [i for i, h in enumerate(keys) if h not in seen]
        pred = model.predict(x_all[unseen])
        if mo:  # two objectives: the predicted front's members first (non-dominated in predicted acc, exact MACs)
            from nas.search.evolve import nondominated_ranks

            loss = np.stack([-pred, [oracle.macs[keys[i]] for i in unseen]], axis=1)
            best = np.lexsort((-pred, nondominated_ranks(loss)))[:5]
        else:
            best = np.argsort(-pred, kind="stable")[:5]
        order += [keys[unseen[i]] for i in best][:budget - len(order)]
    return order


_ITEMS: dict[int, list] = {}


def _table_items(space: Any) -> list:
    from nas import tables

    if id(space) not in _ITEMS:
        _ITEMS[id(space)] = list(tables.load(space.proxy.table).items())
    return _ITEMS[id(space)]


def run_one(oracle: Oracle, strategy: str, seed: int, budget: int, mo: bool, score_cache: Any = None) -> list[str]:
    if strategy == "gbm-onehot":
        return _run_gbm(oracle, seed, budget, mo)
    return _run_optuna(oracle, strategy, seed, budget, mo, score_cache)


# -- figures ----------------------------------------------------------------------------------------------------


def first_reaching(oracle: Oracle, order: list[str], level: float) -> int | None:
    for i, h in enumerate(order, 1):
        if oracle.acc[h] >= level - 1e-12:
            return i
    return None


def hv_curve(oracle: Oracle, order: list[str], at: tuple[int, ...]) -> dict[int, float]:
    out = {}
    for k in at:
        if k <= len(order):
            pts = np.array([[-oracle.acc[h], oracle.macs[h]] for h in order[:k]])
            out[k] = _hv(pts, oracle.ref) / oracle.true_hv
    return out


def _med_iqr(values: list[int | None], budget: int) -> str:
    xs = [v if v is not None else math.inf for v in values]
    q = np.percentile(xs, [25, 50, 75], method="lower") if xs else [math.nan] * 3

    def fmt(v: float) -> str:
        return f">{budget}" if math.isinf(v) else f"{int(v)}"

    return f"{fmt(q[1])} [{fmt(q[0])}-{fmt(q[2])}]"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--space", default="nasbench_macro.yaml")
    ap.add_argument("--seeds", type=int, default=30)
    ap.add_argument("--budget", type=int, default=200, help="queries per single-objective run")
    ap.add_argument("--mo-budget", type=int, default=200, help="queries per two-objective run")
    ap.add_argument("--random-budget", type=int, default=400, help="queries of the random runs (both modes)")
    ap.add_argument("--predictor-budget", type=int, default=None,
                    help="queries of the predictor's runs (its refits make it the slowest; default: --budget)")
    ap.add_argument("--samplers", default=",".join(STRATEGIES))
    ap.add_argument("--modes", default="so,mo")
    ap.add_argument("--out", default="benchmarks/logs/table_search")
    ap.add_argument("--report", action="store_true", help="only report the runs already in DIR/runs.jsonl")
    args = ap.parse_args(argv)

    print(banner("bench_table_search: search strategies against a published table"))
    space = load_table_space(args.space)
    if space is None:
        return 2
    oracle = Oracle(space)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log = out / "runs.jsonl"
    done = read_runs(log, "mode", "strategy", "seed")
    strategies = [s for s in args.samplers.split(",") if s]
    print(f"{space.name}: {len(oracle.acc):,} distinct networks; best {100 * oracle.best:.2f}%, 10th best "
          f"{100 * oracle.top10:.2f}%; true front hypervolume {oracle.true_hv:.4g} (ref acc 0, "
          f"{oracle.ref[1] / 1e6:.1f}M MACs); {args.seeds} seeds", flush=True)
    for mode in [] if args.report else args.modes.split(","):
        mo = mode == "mo"
        for s in strategies:
            budget = args.random_budget if s.endswith("random") else (args.mo_budget if mo else args.budget)
            if s == "predictor" and args.predictor_budget:
                budget = min(budget, args.predictor_budget)
            for seed in range(args.seeds):
                if (mode, s, seed) in done:
                    continue
                t0 = time.perf_counter()
                order = run_one(oracle, s, seed, budget, mo)
                rec = {"mode": mode, "strategy": s, "seed": seed, "budget": budget, "order": order,
                       "seconds": time.perf_counter() - t0}
                with open(log, "a") as f:
                    f.write(json.dumps(rec) + "\n")
                done[(mode, s, seed)] = rec
            print(f"  {mode} {s}: {args.seeds} seeds done", flush=True)
    report(oracle, done, strategies, args, out)
    return 0


def report(oracle: Oracle, done: dict, strategies: list[str], args: Any, out: Path) -> None:
    print("\nsingle objective (accuracy): queries to a top-10 network and to the best, median [IQR] over seeds")
    print(f"  {'strategy':<16}{'top-10':>18}{'best':>18}{'s/run':>8}")
    curves = {}
    for s in strategies:
        runs = [r for (m, st, _), r in done.items() if m == "so" and st == s]
        if not runs:
            continue
        b = runs[0]["budget"]
        top = [first_reaching(oracle, r["order"], oracle.top10) for r in runs]
        best = [first_reaching(oracle, r["order"], oracle.best) for r in runs]
        secs = statistics.mean(r["seconds"] for r in runs)
        print(f"  {s:<16}{_med_iqr(top, b):>18}{_med_iqr(best, b):>18}{secs:>8.1f}  ({len(runs)} seeds)")
        regret = np.array([[oracle.best - max(oracle.acc[h] for h in r["order"][:k]) for k in range(1, b + 1)]
                           for r in runs if len(r["order"]) >= b])
        if len(regret):
            curves[s] = regret.mean(axis=0)
    if curves:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 4.5))
        for s, c in curves.items():
            ax.plot(np.arange(1, len(c) + 1), 100 * c, label=s, lw=1.4)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("queries (distinct networks looked up)")
        ax.set_ylabel("mean regret (accuracy points below the best)")
        ax.set_title(f"{oracle.space.name}: regret over {args.seeds} seeds")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / "regret.png", dpi=120)
        print(f"  regret curve: {out / 'regret.png'}")
    print("\ntwo objectives (accuracy, MACs): hypervolume as a fraction of the true front's, mean over seeds")
    print(f"  {'strategy':<16}" + "".join(f"{'@' + str(k):>9}" for k in HV_AT))
    for s in strategies:
        runs = [r for (m, st, _), r in done.items() if m == "mo" and st == s]
        if not runs:
            continue
        cells = []
        for k in HV_AT:
            vals = [v for r in runs if (v := hv_curve(oracle, r["order"], (k,)).get(k)) is not None]
            cells.append(f"{statistics.mean(vals):9.4f}" if vals else f"{'-':>9}")
        print(f"  {s:<16}" + "".join(cells) + f"  ({len(runs)} seeds)")


if __name__ == "__main__":
    sys.exit(main())
