"""The predictor-guided sampler: cost of a refit, fidelity of the models, and convergence on a known objective.

Three parts (``--part``), all without training (the accuracy is synthetic, see ``benchmarks/_synth_objective.py``:
a saturating function of log MACs plus a fixed random non-separable function of the decisions, small noise):

* ``timing``: seconds to fit the predictor and evolve + choose a batch, after 20, 50 and 100 measured trials of
  the space (mixnet.yaml: ~110 decisions per architecture). The issue's limit: at most 2 s per trained trial,
  i.e. ``batch_size`` x 2 s per refit (the refit runs in a background thread while trials train).
* ``fidelity``: Kendall tau of each regressor of ``nas.search.surrogate.MODELS`` on 300 held-out random feasible
  architectures after 20, 50 and 100 training architectures (the model choice).
* ``hv``: ``optuna.create_study`` over ``space.suggest`` with objectives (accuracy, MACs) under the space's
  budgets, for each sampler and seed: hypervolume (accuracy 0 / MACs at budget, normalised) after k trials, the
  trials each sampler needs to reach random search's hypervolume at ``--trials``, and the predictor's Kendall
  tau on the trials it had not seen.

    python -m benchmarks.bench_predictor [--quick] [--part timing,fidelity,hv] [--space mixnet.yaml]
                                         [--seeds 3] [--trials 100] [--samplers random,nsga2,tpe,predictor]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import optuna

from benchmarks._machine import banner
from benchmarks._synth_objective import SyntheticAccuracy, feasible, hypervolume_2d, objective
from nas.space import load_space

OBJECTIVES = [{"metric": "accuracy", "direction": "maximize"}, {"metric": "macs", "direction": "minimize"}]
SAMPLERS = ("random", "nsga2", "tpe", "predictor")


def budgets_of(space: Any) -> dict[str, float]:
    return {m: float(getattr(space.budgets, m)) for m in ("macs", "params") if getattr(space.budgets, m) is not None}


def make_sampler(name: str, space: Any, synth: SyntheticAccuracy, seed: int, trials: int,
                 **opts: Any) -> optuna.samplers.BaseSampler:
    """A sampler by name; ``predictor`` fits in the calling thread here, so that a run repeats exactly."""
    if name == "predictor":
        from nas.search.predictor import predictor_sampler as predictor

        opts.setdefault("background", False)
        return predictor(space, OBJECTIVES, synth.costs, feasible(budgets_of(space)), seed=seed, trials=trials,
                         **opts)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(population_size=max(4, min(50, trials // 4)), seed=seed)
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True,
                                          n_startup_trials=max(4, min(10, trials // 5)))
    raise SystemExit(f"unknown sampler {name!r}")


def run(space: Any, sampler: str, seed: int, trials: int, **opts: Any) -> tuple[list[tuple[float, float]], Any]:
    """(accuracy, MACs) of every trial in proposal order (accuracy 0 over budget), and the sampler."""
    synth = SyntheticAccuracy(space, seed=seed)
    s = make_sampler(sampler, space, synth, seed, trials, **opts)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=s)
    study.optimize(objective(space, synth, budgets_of(space)), n_trials=trials)
    return [(t.values[0], t.values[1]) for t in study.trials], s


def hv_curve(points: list[tuple[float, float]], macs_ref: float) -> list[float]:
    """Hypervolume after each trial."""
    return [hypervolume_2d(points[:k], macs_ref) for k in range(1, len(points) + 1)]


def trials_to_reach(curve: list[float], target: float) -> int | None:
    return next((k + 1 for k, v in enumerate(curve) if v >= target), None)


# -- parts --------------------------------------------------------------------------------------------------------


def part_hv(space: Any, samplers: list[str], seeds: int, trials: int) -> None:
    ref = budgets_of(space)["macs"]
    checks = sorted({20, 25, 50, trials} & set(range(1, trials + 1)))
    curves: dict[str, list[list[float]]] = {}
    for sampler in samplers:
        for seed in range(seeds):
            t0 = time.perf_counter()
            points, s = run(space, sampler, seed, trials)
            curve = hv_curve(points, ref)
            curves.setdefault(sampler, []).append(curve)
            extra = ""
            if sampler == "predictor":
                at = sorted(k for k in {20, 50, trials} if k <= trials)
                extra = "; Kendall tau on unseen trials " + ", ".join(_tau_at(s.quality, k) for k in at)
            cells = "  ".join(f"HV@{k} {curve[k - 1]:.4f}" for k in checks)
            print(f"  {sampler:9s} seed {seed}: {cells}  ({time.perf_counter() - t0:.0f} s){extra}", flush=True)
    target = statistics.mean(c[trials - 1] for c in curves["random"]) if "random" in curves else None
    print(f"\nspace {space.name}: objectives accuracy (synthetic) / MACs, budgets {budgets_of(space)}, {seeds} seeds; "
          "hypervolume with reference accuracy 0 / MACs at budget")
    print(f"  {'sampler':9s}" + "".join(f"{'HV@' + str(k):>18s}" for k in checks)
          + (f"{'trials to random@' + str(trials):>24s}" if target is not None else ""))
    for sampler, cs in curves.items():
        cells = [f"{statistics.mean(c[k - 1] for c in cs):.4f} +- {_sd([c[k - 1] for c in cs]):.4f}" for k in checks]
        row = f"  {sampler:9s}" + "".join(f"{c:>18s}" for c in cells)
        if target is not None:
            reach = [trials_to_reach(c, target) for c in cs]
            row += f"{', '.join('-' if r is None else str(r) for r in reach):>24s}"
        print(row)
    if target is not None:
        print(f"  (random's mean HV@{trials} = {target:.4f}; '-': not reached within {trials} trials)")


def part_timing(space: Any, sizes: tuple[int, ...], repeats: int) -> None:
    from nas.search.predictor import PredictorSampler

    synth = SyntheticAccuracy(space, seed=0)
    budgets = budgets_of(space)
    print(f"space {space.name}: one refit (fit + evolve + choose) on a study of n measured random trials, "
          f"median of {repeats}; the sampler's defaults (population 48, 20 generations, boosted ensemble)")
    print(f"  {'n':>5s} {'fit s':>8s} {'evolve s':>9s} {'choose s':>9s} {'total s':>8s} {'cpu s':>7s} "
          f"{'candidates':>11s} {'proposal ms':>14s}")
    for n in sizes:
        study = optuna.create_study(directions=["maximize", "minimize"], sampler=optuna.samplers.RandomSampler(seed=n))
        study.optimize(objective(space, synth, budgets), n_trials=n)
        rows, cpu = [], []
        for r in range(repeats):
            s = PredictorSampler(space, OBJECTIVES, synth.costs, feasible(budgets), seed=r, n_startup=2,
                                 background=False)
            study.sampler = s
            c0 = time.process_time()
            study.tell(study.ask(), state=optuna.trial.TrialState.FAIL)  # the first ask refits from the study
            cpu.append(time.process_time() - c0)
            rows.append(s.fits[-1])
        fit, evo, sel = (statistics.median(f[k] for f in rows) for k in ("fit_s", "evolve_s", "select_s"))
        cands = statistics.median(f["candidates"] for f in rows)
        t0 = time.perf_counter()  # proposals from the plan: what the driver waits for
        for _ in range(8):
            trial = study.ask()
            space.suggest(trial)
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
        ask_ms = (time.perf_counter() - t0) / 8 * 1e3
        print(f"  {n:5d} {fit:8.2f} {evo:9.2f} {sel:9.2f} {fit + evo + sel:8.2f} {statistics.median(cpu):7.2f} "
              f"{cands:11.0f} {ask_ms:14.1f}", flush=True)


def part_fidelity(space: Any, seeds: int, sizes: tuple[int, ...]) -> None:
    from nas.search import evolve as ev
    from nas.search.surrogate import MODELS, Encoder, Surrogate, tau, union_choices

    budgets = budgets_of(space)
    variants = [(m, trend) for m in MODELS for trend in (True, False)]
    taus: dict[tuple, dict[int, list[float]]] = {v: {n: [] for n in sizes} for v in variants}
    secs: dict[tuple, dict[int, list[float]]] = {v: {n: [] for n in sizes} for v in variants}
    n_test = 300
    for seed in range(seeds):
        synth = SyntheticAccuracy(space, seed=seed)
        rng, keys, pool = random.Random(100 + seed), set(), []
        while len(pool) < max(sizes) + n_test:
            c = ev.random_feasible(space, rng, synth.costs, feasible(budgets), keys)
            keys.add(c.key)
            c.mean = synth(c.params, c.costs["macs"], 10_000 * seed + len(pool))
            pool.append(c)
        test = pool[-n_test:]
        truth = [synth.clean(c.params, c.costs["macs"]) for c in test]
        for n in sizes:
            train = pool[:n]
            enc = Encoder(union_choices([c.choices for c in train]), ("macs", "params"))
            x, xt = enc.matrix([(c.params, c.costs) for c in train]), enc.matrix([(c.params, c.costs) for c in test])
            for m, trend in variants:
                t0 = time.perf_counter()
                model = Surrogate(m, seed=seed).fit(x, np.array([c.mean for c in train]),
                                                    trend=enc.cost_columns if trend else ())
                pred, _ = model.predict(xt)
                secs[m, trend][n].append(time.perf_counter() - t0)
                taus[m, trend][n].append(tau(pred, truth))
    print(f"space {space.name}: Kendall tau on {n_test} held-out random feasible architectures (noiseless truth), "
          f"mean over {seeds} seeds (fit + predict seconds); the sampler uses the trend in log costs")
    print(f"  {'model':30s}" + "".join(f"{'n=' + str(n):>18s}" for n in sizes))
    for m, trend in variants:
        name = f"{m} {'+ trend' if trend else '(trees only)'}"
        print(f"  {name:30s}" + "".join(
            f"{statistics.mean(taus[m, trend][n]):>9.3f} ({statistics.mean(secs[m, trend][n]):4.2f} s)"
            for n in sizes))


def _tau_at(quality: list[dict[str, Any]], trials: int) -> str:
    """The quality entry of the refit nearest ``trials`` results: the last batch's tau and the tau of every
    model proposal's prediction so far."""
    if not quality:
        return f"@{trials}: -"
    q = min(quality, key=lambda e: abs(e["trials"] + e["n_eval"] - trials))

    def show(v: float | None) -> str:
        return "-" if v is None else f"{v:+.2f}"

    return (f"@{q['trials'] + q['n_eval']}: batch {show(q['tau'])} (n={q['n_eval']}), "
            f"all {show(q['tau_all'])} (n={q['n_all']})")


def _sd(v: list[float]) -> float:
    return statistics.stdev(v) if len(v) > 1 else 0.0


PARTS: dict[str, Callable[..., None]] = {"timing": part_timing, "fidelity": part_fidelity, "hv": part_hv}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny.yaml, 2 seeds, 40 trials, one timing repeat")
    ap.add_argument("--part", default="timing,fidelity,hv")
    ap.add_argument("--space", default=None, help="default mixnet.yaml (tiny.yaml with --quick)")
    ap.add_argument("--seeds", type=int, default=None)
    ap.add_argument("--trials", type=int, default=None)
    ap.add_argument("--samplers", default=",".join(SAMPLERS))
    args = ap.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    space = load_space(args.space or ("tiny.yaml" if args.quick else "mixnet.yaml"))
    seeds = args.seeds or (2 if args.quick else 3)
    trials = args.trials or (40 if args.quick else 100)
    banner(f"predictor sampler ({'quick' if args.quick else 'full'})")
    for part in (p.strip() for p in args.part.split(",") if p.strip()):
        print(f"\n-- {part} --")
        if part == "timing":
            part_timing(space, (20, 50) if args.quick else (20, 50, 100), 1 if args.quick else 3)
        elif part == "fidelity":
            part_fidelity(space, seeds, (20, 50) if args.quick else (20, 50, 100))
        elif part == "hv":
            part_hv(space, [s.strip() for s in args.samplers.split(",") if s.strip()], seeds, trials)
        else:
            raise SystemExit(f"unknown part {part!r} (one of {', '.join(PARTS)})")


if __name__ == "__main__":
    main()
