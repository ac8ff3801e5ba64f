"""A predictor-guided Optuna sampler: learn accuracy from the trials so far, evolve against it, propose the best.

The loop (after DyNAS-T/LINAS and OFA's accuracy predictor):

1. the first ``n_startup`` trials are a space-filling random design within the budgets (each the farthest,
   in decisions changed, of a few random feasible draws from everything proposed so far);
2. once they are measured, and again after every ``batch_size`` further results, a refit in a background
   thread (:mod:`nas.search.planner`) fits a regression ensemble (:mod:`nas.search.surrogate`) on the
   decisions and exact costs of the measured architectures, runs NSGA-II over decisions
   (:mod:`nas.search.evolve`) against the predicted accuracy and the exact costs, and ranks the new feasible
   candidates by the hypervolume they add to the measured front, scoring each at its optimistic accuracy
   (mean + ``optimism`` x the ensemble's spread);
3. each new trial takes the next candidate of the latest plan (``before_trial``) and its parameters are
   answered from it (``sample_independent``); a fraction ``explore`` of trials is a random feasible
   architecture instead. A refit never blocks a proposal: until its plan is ready, trials take the previous
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
from collections.abc import Callable, Sequence
from typing import Any

from optuna.distributions import BaseDistribution, CategoricalDistribution, IntDistribution
from optuna.samplers import BaseSampler, RandomSampler
from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState

from nas.results.optuna_compat import storage_of, trial_id
from nas.search import evolve as ev
from nas.search.budgets import latency_predictor
from nas.search.planner import Plan, Planner, objective
from nas.search.surrogate import COST_FEATURES

ATTR = "predictor"  # the user attribute on every trial this sampler planned
_SPREAD_POOL = 8  # random feasible draws per space-filling start trial


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
                 model: str = "gradient_boosting", n_estimators: int = 200, background: bool = True,
                 score_cache: Any = None) -> None:
        self.space = space
        self.cost_fn = _as_dicts(cost_fn or _analytic_costs(space))
        if score_cache is not None:  # training-free scores as features of the model (nas.scores.cache)
            self.cost_fn = _with_scores(self.cost_fn, score_cache)
        self.feasible_fn = feasible_fn
        self.seed, self.n_startup, self.batch_size = seed, max(2, n_startup), max(1, batch_size)
        self.explore, self.background = explore, background
        # a plan holds two batches: proposals go on from its spare half while the next refit runs
        self.planner = Planner(space, [objective(o) for o in objectives], self.cost_fn, feasible_fn, seed=seed,
                               model=model, n_estimators=n_estimators, population=population,
                               generations=generations, optimism=optimism, size=2 * self.batch_size)
        self.quality: list[dict[str, Any]] = []  # Kendall tau of each model on the results it had not seen
        self.fits: list[dict[str, Any]] = []  # per job: trials used, timings, candidates met
        self._rng = random.Random(seed)
        self._random = RandomSampler(seed=seed)
        self._lock = threading.RLock()
        self._thread: threading.Thread | None = None
        self._done: Plan | None = None
        self._error: BaseException | None = None
        self._plan: Plan | None = None
        self._n_at_job = 0  # finished trials the latest job saw
        self._assigned: dict[int, dict[str, Any]] = {}
        self._taken: set[tuple] = set()  # keys of the architectures this sampler handed out
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
            complete = measured_trials(study)
            if self._due(len(complete)):
                self._start(study, complete)
            cand, source = self._propose(complete)
            info: dict[str, Any] = {"source": source}
            if cand is not None:
                self._assigned[trial.number] = cand.params
                self._taken.add(cand.key)
                if source == "model" and self.planner.acc is not None:
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
            self._done = self.planner.plan(*args)
            self._collect()
            return
        self._thread = threading.Thread(target=self._run, args=args, name="nas-predictor", daemon=True)
        self._thread.start()

    def _run(self, *args: Any) -> None:
        try:
            plan = self.planner.plan(*args)
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


def measured_trials(study: Study) -> list[FrozenTrial]:
    """The trials whose values were measured, the only labels the model learns from: COMPLETE and within every
    constraint. nas tells never-trained proposals (over budget, refused for their tier) as PRUNED with no values;
    a study written before that stored them COMPLETE with accuracy 0 and a positive constraint, skipped here."""
    return [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if not any(v > 0 for v in t.constraints.values())]


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
    objectives = [objective(o) for o in (ctx.objectives or space.objectives)]
    budgets = {m: float(b) for m in COST_FEATURES if (b := getattr(space.budgets, m, None)) is not None}
    base = _as_dicts(ctx.cost_fn or _analytic_costs(space))
    latency = None
    if "latency_ms" in budgets or any(o["metric"] == "latency_ms" for o in objectives):
        latency = latency_predictor(space)

    def cost_fn(g: Any) -> dict[str, float]:
        c = base(g)
        if latency is not None and c.get("latency_ms") is None:
            c["latency_ms"] = latency(g)
        return c

    def feasible_fn(g: Any, costs: dict[str, float]) -> bool:
        return all(costs[m] <= b for m, b in budgets.items())

    overrides.setdefault("score_cache", getattr(ctx, "score_cache", None))
    return predictor_sampler(space, objectives, cost_fn, feasible_fn if budgets else None, seed=ctx.seed,
                             trials=ctx.trials, concurrency=ctx.concurrency, **overrides)


# -- small helpers ------------------------------------------------------------------------------------------------


def _as_dicts(cost_fn: Callable[[Any], Any]) -> ev.CostFn:
    def cost(g: Any) -> dict[str, float]:
        c = cost_fn(g)
        if isinstance(c, dict):
            return dict(c)
        return {k: getattr(c, k) for k in COST_FEATURES if getattr(c, k, None) is not None}

    return cost


def _with_scores(cost_fn: ev.CostFn, cache: Any) -> ev.CostFn:
    """Costs plus the architecture's training-free scores (``score:NAME``), which the model reads as features."""
    from nas.scores.cache import feature_values

    def cost(g: Any) -> dict[str, float]:
        return {**cost_fn(g), **feature_values(cache, g)}

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
    # A sampler gets a FrozenTrial; Optuna's own samplers write to it through the storage like this.
    storage, _ = storage_of(study)
    storage.set_trial_user_attr(trial_id(trial), key, value)
