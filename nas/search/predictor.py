"""A predictor-guided Optuna sampler: learn accuracy from the trials so far, evolve against it, propose the best.

The loop (after DyNAS-T/LINAS and OFA's accuracy predictor):

1. the first ``n_startup`` trials are a space-filling random design within the budgets (each the farthest,
   in decisions changed, of a few random feasible draws from everything proposed so far);
2. once they are measured, and again after every ``batch_size`` further results, a background job fits a
   regression ensemble (:mod:`nas.search.surrogate`) on the decisions and exact costs of the measured
   architectures, runs NSGA-II over decisions (:mod:`nas.search.evolve`) against the predicted accuracy and
   the exact costs, and ranks the new feasible candidates by the hypervolume they add to the measured front,
   scoring each at its optimistic accuracy (mean + ``optimism`` x the ensemble's spread);
3. each new trial takes the next candidate of the latest plan (``before_trial``) and its parameters are
   answered from it (``sample_independent``); a fraction ``explore`` of trials is a random feasible
   architecture instead. The job never blocks a proposal: until its plan is ready, trials take the previous
   plan's spare candidates, then random feasible ones.

Everything Optuna does around a sampler (storage, resume, constraints, ask/tell from Ray Tune) works as
for any other: the sampler's history is the study itself, so a new sampler on a reloaded study refits
from its trials at the first proposal. Before each refit, the previous model's Kendall tau on the results
it had not seen is appended to :attr:`PredictorSampler.quality`; each proposed trial carries a
``predictor`` user attribute (source, predicted accuracy and spread, latest tau) that a record or a W&B
run can show, and from which a resumed sampler restores its quality history.

Callbacks: ``cost_fn(genotype)`` gives the exact costs, a dict ``{"macs", "params", "latency_ms"?}`` or an
object with those attributes (``nas.cost.macs.Cost``); ``feasible_fn(genotype, costs) -> bool`` says whether
they are within every budget (``costs`` as a dict). :func:`from_context` builds both from a space's budgets,
for the sampler registry.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from optuna.distributions import BaseDistribution, CategoricalDistribution, IntDistribution
from optuna.samplers import BaseSampler, RandomSampler
from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState

from nas.errors import InputError
from nas.search import evolve as ev
from nas.search.surrogate import COST_FEATURES, Encoder, Surrogate, tau, union_choices

ATTR = "predictor"  # the user attribute on every trial this sampler planned
_Finished = tuple[int, dict[str, Any], tuple[float, ...], "float | None"]  # number, params, values, prediction
_SPREAD_POOL = 8  # random feasible draws per space-filling start trial


@dataclass
class _Plan:
    """What one job produced: ranked proposals, the model behind them and what it was trained on."""

    queue: list[ev.Candidate]
    exclude: set[tuple]  # keys of every architecture measured, running or planned when the job started
    surrogate: Surrogate | None = None
    encoder: Encoder | None = None
    numbers: frozenset[int] = frozenset()
    quality: dict[str, Any] | None = None
    fit: dict[str, Any] = field(default_factory=dict)


class PredictorSampler(BaseSampler):
    """Predictor-guided NSGA-II proposals (see the module docstring).

    ``objectives`` are ``{"metric", "direction"}`` dicts (or objects with those attributes) in the study's
    order, ``metric`` one of accuracy, macs, params, latency_ms; accuracy is predicted, the costs come from
    ``cost_fn`` (default: analytic MACs and parameters of the space's target). ``feasible_fn`` (default: all
    feasible) keeps every proposal after the first fit within the budgets. ``background=False`` fits in the
    calling thread (deterministic, for tests and benchmarks)."""

    def __init__(self, space: Any, objectives: Sequence[Any], cost_fn: Callable[[Any], Any] | None = None,
                 feasible_fn: ev.FeasibleFn | None = None, *, seed: int = 0, n_startup: int = 8, batch_size: int = 4,
                 population: int = 48, generations: int = 20, explore: float = 0.1, optimism: float = 1.0,
                 model: str = "gradient_boosting", n_estimators: int = 100, background: bool = True) -> None:
        self.space = space
        self.objectives = [_objective(o) for o in objectives]
        metrics = [o["metric"] for o in self.objectives]
        unknown = [m for m in metrics if m != "accuracy" and m not in COST_FEATURES]
        if unknown:
            raise InputError(f"{space.source}: objectives: the predictor sampler cannot score {unknown[0]!r}")
        self._acc = metrics.index("accuracy") if "accuracy" in metrics else None
        self.cost_fn = _as_dicts(cost_fn or _analytic_costs(space))
        self.feasible_fn = feasible_fn
        self.seed, self.n_startup, self.batch_size = seed, max(2, n_startup), max(1, batch_size)
        self.population, self.generations = population, generations
        self.explore, self.optimism, self.background = explore, optimism, background
        self.model, self.n_estimators = model, n_estimators
        Surrogate(model)  # reject an unknown model name now, not in the first job
        self.quality: list[dict[str, Any]] = []  # Kendall tau of each model on the results it had not seen
        self.fits: list[dict[str, Any]] = []  # per job: trials used, timings, candidates met
        self._rng = random.Random(seed)
        self._random = RandomSampler(seed=seed)
        self._lock = threading.RLock()
        self._thread: threading.Thread | None = None
        self._done: _Plan | None = None
        self._error: BaseException | None = None
        self._plan: _Plan | None = None
        self._n_at_job = 0  # finished trials the latest job saw
        self._assigned: dict[int, dict[str, Any]] = {}
        self._taken: set[tuple] = set()  # keys of the architectures this sampler handed out
        self._measured: dict[int, ev.Candidate | None] = {}  # trial number -> its architecture (job thread only)
        self._restored = False

    # -- Optuna's interface -----------------------------------------------------------------------------------

    def infer_relative_search_space(self, study: Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return {}

    def sample_relative(self, study: Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        return {}

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        if "fixed_params" in trial.system_attrs:  # an enqueued trial: its parameters are given
            return
        with self._lock:
            self._collect()
            if not self._restored:
                self._restore(study)
            complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if self._due(len(complete)):
                self._start(study, complete)
            cand, source = self._propose(complete)
            info: dict[str, Any] = {"source": source}
            if cand is not None:
                self._assigned[trial.number] = cand.params
                self._taken.add(cand.key)
                if source == "model" and self._acc is not None:
                    info.update(predicted=_num(cand.mean), std=_num(cand.std))
            if self._plan is not None:
                info["fit_trials"] = len(self._plan.numbers)
            if self.quality:
                q = self.quality[-1]
                info.update(tau=q["tau"], tau_trials=q["trials"], tau_n=q["n_eval"], tau_all=q["tau_all"],
                            tau_all_n=q["n_all"])
        _set_user_attr(study, trial, ATTR, info)

    def sample_independent(self, study: Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        params = self._assigned.get(trial.number)
        if params is not None and param_name in params and _contains(param_distribution, params[param_name]):
            return params[param_name]
        return self._random.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study: Study, trial: FrozenTrial, state: TrialState,
                    values: Sequence[float] | None) -> None:
        self._assigned.pop(trial.number, None)

    def reseed_rng(self) -> None:
        self._random.reseed_rng()
        self._rng = random.Random()

    # -- public helpers ---------------------------------------------------------------------------------------

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for a running fit to finish (benchmarks, tests); False when it is still running."""
        t = self._thread
        if t is not None:
            t.join(timeout)
            if t.is_alive():
                return False
        with self._lock:
            self._collect()
        return True

    @property
    def fitted(self) -> bool:
        """Whether proposals now come from a fitted model (or, without an accuracy objective, from evolution)."""
        return self._plan is not None

    # -- scheduling -------------------------------------------------------------------------------------------

    def _due(self, n_complete: int) -> bool:
        if self._thread is not None or n_complete < self.n_startup:
            return False
        if self._plan is None:
            return True
        new = n_complete - self._n_at_job
        return new >= self.batch_size or (new > 0 and not self._plan.queue)

    def _start(self, study: Study, complete: list[FrozenTrial]) -> None:
        self._n_at_job = len(complete)
        snapshot = [(t.number, dict(t.params), tuple(t.values or ()), _predicted(t)) for t in complete]
        running = [dict(t.params) for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))]
        args = (snapshot, running, set(self._taken), self._plan)
        if not self.background:
            self._done = self._job(*args)
            self._collect()
            return
        self._thread = threading.Thread(target=self._run, args=args, name="nas-predictor", daemon=True)
        self._thread.start()

    def _run(self, *args: Any) -> None:
        try:
            plan = self._job(*args)
        except BaseException as e:  # handed to the main thread: a bug here must not pass silently
            with self._lock:
                self._error, self._thread = e, None
            return
        with self._lock:
            self._done, self._thread = plan, None

    def _collect(self) -> None:
        if self._error is not None:
            err, self._error = self._error, None
            raise err
        if self._done is not None:
            plan, self._done = self._done, None
            plan.queue = [c for c in plan.queue if c.key not in self._taken]
            self._plan = plan
            if plan.quality is not None:
                self.quality.append(plan.quality)
            self.fits.append(plan.fit)

    def _restore(self, study: Study) -> None:
        """A resumed study: the quality history from the trials' attributes (the models refit from the trials)."""
        self._restored = True
        seen = {(q["trials"], q["n_eval"]) for q in self.quality}
        for t in study.get_trials(deepcopy=False):
            info = t.user_attrs.get(ATTR)
            if isinstance(info, dict) and info.get("tau_trials") is not None:
                key = (info["tau_trials"], info["tau_n"])
                if key not in seen:
                    seen.add(key)
                    self.quality.append({"trials": key[0], "tau": info.get("tau"), "n_eval": key[1],
                                         "tau_all": info.get("tau_all"), "n_all": info.get("tau_all_n", 0)})
        self.quality.sort(key=lambda q: q["trials"])

    # -- proposing --------------------------------------------------------------------------------------------

    def _propose(self, complete: list[FrozenTrial]) -> tuple[ev.Candidate | None, str]:
        plan = self._plan
        if plan is None:  # the start design, spread from the latest trials (all of them, but for a resumed study)
            existing = [t.params for t in complete[-64:]] + list(self._assigned.values())
            return self._spread(existing), "startup"
        exclude = plan.exclude | self._taken
        if self.explore and self._rng.random() < self.explore:
            return ev.random_feasible(self.space, self._rng, self.cost_fn, self.feasible_fn, exclude), "explore"
        while plan.queue:
            c = plan.queue.pop(0)
            if c.key not in exclude:
                return c, "model"
        return ev.random_feasible(self.space, self._rng, self.cost_fn, self.feasible_fn, exclude), "random"

    def _spread(self, existing: list[dict[str, Any]]) -> ev.Candidate | None:
        pool = []
        for _ in range(_SPREAD_POOL):
            c = ev.random_feasible(self.space, self._rng, self.cost_fn, self.feasible_fn, self._taken)
            if c is not None:
                pool.append(c)
        return pool[ev.spread_pick(pool, existing)] if pool else None

    # -- the job (background thread) ------------------------------------------------------------------------------

    def _job(self, snapshot: list[tuple[int, dict[str, Any], tuple[float, ...]]], running: list[dict[str, Any]],
             taken: set[str], prev: _Plan | None) -> _Plan:
        t0 = time.perf_counter()
        rng = random.Random(self.seed * 1_000_003 + len(snapshot))
        measured, exclude = self._measurements(snapshot)
        exclude |= {ev.params_key(p) for p in running} | taken
        plan = _Plan(queue=[], exclude=exclude, numbers=frozenset(c.number for c in measured))
        if self._acc is not None and measured:
            plan.quality = self._quality(prev, measured, {s[0]: s[3] for s in snapshot if s[3] is not None})
            plan.encoder = Encoder(union_choices([c.choices for c in measured]), self._cost_keys(measured))
            x = plan.encoder.matrix([(c.params, c.costs) for c in measured])
            plan.surrogate = Surrogate(self.model, seed=self.seed, n_estimators=self.n_estimators).fit(
                x, np.array([c.mean for c in measured]), trend=plan.encoder.cost_columns)
        t1 = time.perf_counter()

        def losses_fn(cands: list[ev.Candidate]) -> np.ndarray:
            if plan.surrogate is not None:
                mean, std = plan.surrogate.predict(plan.encoder.matrix([(c.params, c.costs) for c in cands]))
                for c, m, s in zip(cands, mean, std, strict=True):
                    c.mean, c.std = float(m), float(s)
            return self._losses(cands, 0.0)

        evo = ev.Evolution(self.space, self.cost_fn, self.feasible_fn, losses_fn, rng, exclude, size=self.population)
        archive = evo.run(measured, self._losses(measured, 0.0), self.generations)
        t2 = time.perf_counter()
        plan.queue = self._rank(measured, archive, 2 * self.batch_size)
        t3 = time.perf_counter()
        plan.fit = {"trials": len(measured), "numbers": sorted(plan.numbers), "fit_s": t1 - t0, "evolve_s": t2 - t1,
                    "select_s": t3 - t2, "candidates": len(archive), "planned": len(plan.queue)}
        return plan

    def _measurements(self, snapshot: list[tuple[int, dict[str, Any], tuple[float, ...]]]
                      ) -> tuple[list[ev.Candidate], set[str]]:
        """Feasible measured architectures (one per genotype, the first trial), and every finished one's key."""
        out, hashes, keys = [], set(), set()
        for number, params, values, _ in sorted(snapshot, key=lambda s: s[0]):
            if number not in self._measured:
                self._measured[number] = self._replay(number, params)
            c = self._measured[number]
            if c is None:
                continue
            keys.add(c.key)
            if c.hash in hashes:
                continue
            hashes.add(c.hash)
            if self.feasible_fn is not None and not self.feasible_fn(c.genotype, c.costs):
                continue  # told with accuracy 0: not a measurement
            if self._acc is not None:
                acc = values[self._acc] if len(values) > self._acc else math.nan
                if not math.isfinite(acc):
                    continue
                c.mean = float(acc)
            out.append(c)
        return out, keys

    def _replay(self, number: int, params: dict[str, Any]) -> ev.Candidate | None:
        c, exact = ev.make(self.space, random.Random(0), self.cost_fn, [params])
        if not exact:  # parameters from another space or an objective that asks more: not this space's point
            return None
        c.number = number
        return c

    def _quality(self, prev: _Plan | None, measured: list[ev.Candidate],
                 predicted: dict[int, float]) -> dict[str, Any] | None:
        """The previous model's tau on the results it had not seen (``tau``, the last batch: few points), and the
        tau of every model-proposed trial's prediction at proposal time (``tau_all``: each made before its
        result was known, so also on unseen trials, and steadier)."""
        if prev is None or prev.surrogate is None:
            return None
        unseen = [c for c in measured if c.number not in prev.numbers]
        if len(unseen) < 2:
            return None
        pred, _ = prev.surrogate.predict(prev.encoder.matrix([(c.params, c.costs) for c in unseen]))
        ahead = [(predicted[c.number], c.mean) for c in measured if c.number in predicted]
        return {"trials": len(prev.numbers), "tau": tau(pred, [c.mean for c in unseen]), "n_eval": len(unseen),
                "tau_all": tau(*zip(*ahead, strict=True)) if ahead else None, "n_all": len(ahead),
                "evaluated": sorted(c.number for c in unseen)}

    def _cost_keys(self, measured: list[ev.Candidate]) -> tuple[str, ...]:
        return tuple(k for k in COST_FEATURES if all(c.costs.get(k) is not None for c in measured))

    def _losses(self, cands: Sequence[ev.Candidate], optimism: float) -> np.ndarray:
        out = np.zeros((len(cands), len(self.objectives)))
        for j, o in enumerate(self.objectives):
            sign = -1.0 if o["direction"] == "maximize" else 1.0
            for i, c in enumerate(cands):
                if j == self._acc:
                    v = c.mean + optimism * c.std * (1.0 if sign < 0 else -1.0)
                else:
                    v = c.costs.get(o["metric"])
                    if v is None:
                        raise InputError(f"{self.space.source}: objectives: {o['metric']} has no value "
                                         "(the cost function gives none)")
                out[i, j] = sign * float(v)
        return out

    def _rank(self, measured: list[ev.Candidate], archive: list[ev.Candidate], k: int) -> list[ev.Candidate]:
        """The ``k`` proposals: hypervolume-gain picks first, then the best-ranked of the rest."""
        if not archive:
            return []
        opt, bel = self._losses(archive, self.optimism), self._losses(archive, 0.0)
        front = self._losses(measured, 0.0)
        if len(front):
            front = front[ev.nondominated_ranks(front) == 0]
        picks = ev.select_by_gain(front, opt, bel, self._reference(np.vstack([front, opt, bel])), k)
        if len(picks) < k:
            chosen = set(picks)
            rest = [i for i in ev.survivors(opt, len(opt)) if i not in chosen]
            picks += rest[:k - len(picks)]
        return [archive[i] for i in picks]


    def _reference(self, losses: np.ndarray) -> np.ndarray:
        """The project's reference point where it can be inferred: accuracy 0, each cost a little beyond the
        largest met (candidates fill the space up to the budgets, which the sampler does not see)."""
        hi, lo = losses.max(axis=0), losses.min(axis=0)
        ref = hi + 0.05 * np.maximum(hi - lo, 1e-12)
        for j, o in enumerate(self.objectives):
            if o["direction"] == "maximize" and hi[j] <= 0:
                ref[j] = 0.0
        return ref


def predictor_sampler(space: Any, objectives: Sequence[Any], cost_fn: Callable[[Any], Any] | None = None,
                      feasible_fn: ev.FeasibleFn | None = None, *, seed: int = 0, trials: int = 100,
                      concurrency: int = 1, **overrides: Any) -> PredictorSampler:
    """The sampler with defaults for a study of ``trials`` trials, ``concurrency`` at a time.

    A batch is at least as large as the trials running at once, so a refit follows each wave of results."""
    opts: dict[str, Any] = {"n_startup": max(4, min(10, trials // 10)), "batch_size": max(4, concurrency)}
    opts.update(overrides)
    return PredictorSampler(space, objectives, cost_fn, feasible_fn, seed=seed, **opts)


def from_context(ctx: Any, **overrides: Any) -> PredictorSampler:
    """A factory for the sampler registry: ``ctx`` has ``seed``, ``trials``, ``concurrency``, ``space``,
    ``objectives`` and ``cost_fn`` (``nas.search.samplers.SamplerContext``).

    Feasibility is the space's budgets on the exact costs; latency (an objective or a budget) comes from the
    space's latency predictor when the cost function does not give it."""
    space = ctx.space
    objectives = [_objective(o) for o in (ctx.objectives or space.objectives)]
    budgets = {m: float(b) for m in COST_FEATURES if (b := getattr(space.budgets, m, None)) is not None}
    base = _as_dicts(ctx.cost_fn or _analytic_costs(space))
    latency = None
    if "latency_ms" in budgets or any(o["metric"] == "latency_ms" for o in objectives):
        latency = space.latency_fn()

    def cost_fn(g: Any) -> dict[str, float]:
        c = base(g)
        if latency is not None and c.get("latency_ms") is None:
            c["latency_ms"] = latency(g)
        return c

    def feasible_fn(g: Any, costs: dict[str, float]) -> bool:
        return all(costs[m] <= b for m, b in budgets.items())

    return predictor_sampler(space, objectives, cost_fn, feasible_fn if budgets else None, seed=ctx.seed,
                             trials=ctx.trials, concurrency=ctx.concurrency, **overrides)


# -- small helpers ------------------------------------------------------------------------------------------------


def _objective(o: Any) -> dict[str, str]:
    metric = o["metric"] if isinstance(o, dict) else o.metric
    direction = (o.get("direction") if isinstance(o, dict) else o.direction) or (
        "maximize" if metric == "accuracy" else "minimize")
    return {"metric": metric, "direction": direction}


def _as_dicts(cost_fn: Callable[[Any], Any]) -> ev.CostFn:
    def cost(g: Any) -> dict[str, float]:
        c = cost_fn(g)
        if isinstance(c, dict):
            return dict(c)
        return {k: getattr(c, k) for k in COST_FEATURES if getattr(c, k, None) is not None}

    return cost


def _analytic_costs(space: Any) -> ev.CostFn:
    from nas.cost.macs import count

    target = space.target

    def cost(g: Any) -> dict[str, float]:
        c = count(g, resolution=target.resolution, num_classes=target.num_classes)
        return {"macs": c.macs, "params": c.params}

    return cost


def _contains(dist: BaseDistribution, value: Any) -> bool:
    if isinstance(dist, CategoricalDistribution):
        return any(value == c and type(value) is type(c) for c in dist.choices)
    if isinstance(dist, IntDistribution):
        return type(value) is int and dist.low <= value <= dist.high and (value - dist.low) % dist.step == 0
    return False


def _predicted(t: FrozenTrial) -> float | None:
    info = t.user_attrs.get(ATTR)
    return info.get("predicted") if isinstance(info, dict) and info.get("source") == "model" else None


def _num(v: float) -> float | None:
    return float(v) if math.isfinite(v) else None


def _set_user_attr(study: Study, trial: FrozenTrial, key: str, value: Any) -> None:
    # A sampler gets a FrozenTrial; Optuna's own samplers write to it through the storage like this (private
    # names, used only here).
    study._storage.set_trial_user_attr(trial._trial_id, key, value)
