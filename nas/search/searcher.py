"""Optuna proposes, the analytic cost model filters, Ray Tune trains.

:class:`Proposer` owns the ask/tell loop and never touches Ray: it asks the
sampler for an architecture (``space.suggest``), costs it analytically and
answers at once, without training, every proposal that needs none. Each
finished trial has one state, named the same in ``trials.jsonl``, Optuna, the plots, W&B and the CLI
(:mod:`nas.search.states`: trained, over budget, refused for its tier, screened out, failed).

An architecture already evaluated (same ``Genotype.hash``) is answered with
the earlier *result* (trained or failed; never a refusal, so a real result
always wins over one) and recorded with ``duplicate_of``, without training
time; a proposal identical to an architecture still training waits for that
trial's result (an over-budget or refused architecture is simply costed
again: that is as cheap as looking it up). In cost-only mode every feasible
proposal is ``complete`` on its costs.

Every proposal is costed in full (MACs, params and, when the space names a
latency target, latency, timing missing parts on demand), so every record
carries its costs and its tier (``record.tier``); its costs and a summary of
the architecture are user attributes (:func:`user_attrs`).

:class:`nas.search.tuning.TuneSearcher` adapts a proposer to Ray Tune.
"""

from __future__ import annotations

import dataclasses
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from nas.errors import InputError
from nas.genotype import Genotype
from nas.results.front import objective_spec
from nas.results.optuna_compat import set_constraints, set_intermediate_value, stored_trial, tell
from nas.results.record import TrialRecord, tier_rejected
from nas.search import budgets
from nas.search.predictor import ATTR as PREDICTOR_ATTR
from nas.search.screening import Pools
from nas.search.spread import TIER, TierSpread, bands, draw, tier_of
from nas.search.states import (
    ANSWERABLE,
    constraint_metrics,
    constraint_values,
    outcome,
    state_attrs,
    uncounted,
    user_attrs,
)

__all__ = ["ANSWERABLE", "Launch", "Proposer", "constraint_metrics", "constraint_values", "outcome", "state_attrs",
           "tier_rejected", "uncounted", "user_attrs"]


@dataclass
class Launch:
    """A trial that needs training: ``config`` is what the trainable receives."""

    number: int
    genotype: Genotype
    config: dict[str, Any]


@dataclass
class _Active:
    trial: optuna.Trial
    record: TrialRecord  # the record so far (costs); completed when the trial finishes
    genotype: Genotype
    waiting: list[tuple[optuna.Trial, TrialRecord]] = field(default_factory=list)


#: Screening: the best-scoring candidates of a pool timed, at most, before the pool gives up (each timing of a
#: network whose parts are new costs about a second on 2 cores).
TIMED_TRIES = 4


class Proposer:
    """Optuna ask/tell + analytic cost + budgets + de-duplication + records (no Ray).

    ``write(record, durable=...)`` stores a record (``durable`` for trained
    trials); ``emit(record)`` is called for every finished trial, after the
    record is written and Optuna has been told. ``target`` is the total number of finished
    trials the study should hold (records loaded on resume count; proposals refused for their tier do not,
    :mod:`nas.search.spread`).
    """

    def __init__(self, space: Any, study: optuna.Study, *, objectives: Sequence[Any], target: int,
                 records: Sequence[TrialRecord], write: Callable[..., None],
                 mirror: Callable[[FrozenTrial], None], emit: Callable[[TrialRecord], None] | None = None,
                 latency_fn: Callable[[Genotype], float] | None = None, cost_only: bool = False,
                 make_config: Callable[[int, Genotype], dict[str, Any]] | None = None,
                 planned_epochs: int = 1, seed: int = 0,
                 refuse: Callable[[Genotype], str | None] | None = None, screen: int = 1,
                 screen_score: str = "default", scorer: Any = None) -> None:
        self.space = space
        self.study = study
        self.objectives = objective_spec(objectives)
        self.target = target
        self.cost_only = cost_only
        self.planned_epochs = planned_epochs
        self.seed = seed
        self._write, self._mirror, self._emit = write, mirror, emit or (lambda r: None)
        self._latency_fn = latency_fn
        self._make_config = make_config or (lambda n, g: {"number": n, "genotype": g.to_dict()})
        self._constraints = constraint_metrics(space)
        self._refuse = refuse  # why an architecture cannot be trained here (e.g. memory), answered as failed
        self._bands = bands(space)
        rejected = sum(map(tier_rejected, records))
        self._screening = max(1, int(screen)) > 1
        # refusals are not counted (nas.search.spread), nor screened or (when screening) over-budget proposals
        self.n_finished = len(records) - sum(uncounted(r, self._screening) for r in records)
        # refusals allowed: a trial's worth of proposals each (screening asks ``screen`` trainable ones per trial)
        self.spread = None if cost_only else TierSpread(self._bands,
                                                        allowance=target * max(1, int(screen)) - rejected)
        self.done: dict[str, TrialRecord] = {}  # hash -> the original result of that architecture (no refusal)
        for r in records:
            if r.duplicate_of is None and r.status in ANSWERABLE:
                self.done.setdefault(r.hash, r)
            if self.spread is not None and r.trained and r.status == "complete":
                self.spread.count(r.tier, +1)
        self.active: dict[int, _Active] = {}
        self._active_hash: dict[str, int] = {}
        self.propose_s = 0.0  # time spent proposing (ask, suggest, cost), for the benchmarks
        self.n_proposed = 0
        self.stop: Any = None  # an Event; once set, nothing more is proposed
        self._costed_so_far: list[TrialRecord] = list(records)  # latency per MAC, for the tier draws
        self._ready: list[Launch] = []  # proposed ahead (prefetch), handed out first
        # screening: the K candidates of each tier waiting for the best-scoring one to be trained
        self.screen = max(1, int(screen))
        self.pools = Pools(space, self.screen, screen_score, scorer, records)

    # -- counts -----------------------------------------------------------------------------------------------

    @property
    def n_active(self) -> int:
        return sum(1 + len(a.waiting) for a in self.active.values())

    @property
    def exhausted(self) -> bool:
        """Every trial the study should hold is finished or under way."""
        return self.n_finished + self.n_active >= self.target

    # -- proposing --------------------------------------------------------------------------------------------

    def prefetch(self, n: int) -> None:
        """Propose the first ``n`` launches now, before the trials start: the latency parts they need are then
        timed on a quiet machine (and the probe unit of a new latency table is fixed there), not while Ray
        starts and trials train; :meth:`next` hands them out first."""
        prepare = getattr(self._latency_fn, "prepare", None)
        if prepare is not None:
            prepare()
        while len(self._ready) < n and (launch := self._propose()) is not None:
            self._ready.append(launch)

    def next(self) -> Launch | None:
        """The next architecture to train, answering the others on the way; None once :attr:`exhausted`."""
        if self._ready:
            return self._ready.pop(0)
        return self._propose()

    def _propose(self) -> Launch | None:
        while not self.exhausted and not (self.stop is not None and self.stop.is_set()):
            t0 = time.perf_counter()
            trial = self.study.ask()
            try:
                g = self.space.suggest(trial)
                record = self._costed(trial, g)
                self._costed_so_far.append(record)
            except InputError:  # e.g. a latency table without an entry: the user must fix it, so stop
                tell(self.study, trial, None, TrialState.FAIL)
                self._mirror(stored_trial(self.study, trial))
                raise
            launch = self._dispatch(trial, g, record)
            self.propose_s += time.perf_counter() - t0
            self.n_proposed += 1
            if launch is not None:
                return launch
        return None

    def _latency(self, g: Genotype, macs: int) -> tuple[float | None, float | None]:
        """``(latency_ms, estimate)``. The prediction, timing the parts this machine lacks; but when screening,
        a candidate whose parts are not all timed yet gets an estimate instead (this search's median latency per
        MAC, once 5 networks were predicted): timing every candidate would cost more than training the chosen
        ones. Only the candidate screening chooses is then timed and checked against the budget
        (:meth:`_screened`); an estimate is never recorded as a latency."""
        if self._latency_fn is None:
            return None, None
        if self.screen > 1:
            cached = getattr(self._latency_fn, "cached", None)
            known = cached(g) if cached is not None else None
            if known is not None:
                return known, None
            ratios = sorted(r.latency_ms / r.macs for r in self._costed_so_far if r.latency_ms and r.macs)
            if len(ratios) >= 5:
                return None, ratios[len(ratios) // 2] * macs
        return self._latency_fn(g), None

    def _costed(self, trial: optuna.Trial, g: Genotype) -> TrialRecord:
        cost = budgets.target_cost(self.space, g)
        latency, estimate = self._latency(g, cost.macs)
        violations = budgets.violations(self.space, g, cost, latency_ms=latency if estimate is None else estimate,
                                        latency_fn=self._latency_fn) if self._constraints else {}
        costs = {"macs": cost.macs, "params": cost.params, "latency_ms": latency if estimate is None else estimate}
        if self.spread is not None and all(v <= 0 for v in violations.values()):
            excess = self.spread.rejection(costs)
            if excess > 0:
                violations[TIER] = excess
        # set in the storage by the predictor sampler as the trial was asked (the Trial object caches older attrs)
        note = stored_trial(self.study, trial).user_attrs.get(PREDICTOR_ATTR)
        record = TrialRecord.costed(trial.number, g, macs=cost.macs, params=cost.params, latency_ms=latency,
                                    violations=violations, seed=self.seed, tier=tier_of(costs, self._bands),
                                    predictor=dict(note) if isinstance(note, dict) else None)
        if latency is not None and hasattr(self._latency_fn, "table_id"):
            record = dataclasses.replace(record, latency_table=self._latency_fn.table_id)
        if estimate is not None:
            record = dataclasses.replace(record, screen={"latency_ms_estimate": round(estimate, 4)})
        for k, v in user_attrs(record, g.summary()).items():
            trial.set_user_attr(k, v)
        if self._constraints:
            set_constraints(self.study, trial, constraint_values(self.space, violations))
        return record

    def _dispatch(self, trial: optuna.Trial, g: Genotype, record: TrialRecord) -> Launch | None:
        if any(v > 0 for v in record.violations.values()):
            refused = all(v <= 0 for m, v in record.violations.items() if m != TIER)
            self._finish(trial, dataclasses.replace(record, status="refused" if refused else "infeasible"))
            if refused and self.spread is not None:
                self.spread.allowance -= 1
                self._queue_needed(record)
            return None
        prior = self.done.get(g.hash)
        if prior is not None:
            self._finish(trial, record.answered_from(prior))
            return None
        if self.cost_only:
            self._finish(trial, record)
            return None
        problem = self._refuse(g) if self._refuse is not None else None
        if problem:
            self._finish(trial, dataclasses.replace(record, status="failed", error=problem))
            return None
        # A trial answered at once is stored once, finished; one that waits or trains is stored now (RUNNING,
        # with its parameters), so that a resume finds and re-runs it.
        running = self._active_hash.get(g.hash)
        if running is not None:
            self._mirror(stored_trial(self.study, trial))
            self.active[running].waiting.append((trial, record))
            return None
        if self.screen > 1:
            chosen = self._screened(trial, g, record)
            if chosen is None:
                return None
            trial, g, record = chosen
        self._mirror(stored_trial(self.study, trial))
        self.active[trial.number] = _Active(trial, record, g)
        self._active_hash[g.hash] = trial.number
        if self.spread is not None:
            self.spread.count(record.tier, +1)
        return Launch(trial.number, g, self._make_config(trial.number, g))

    def _screened(self, trial: optuna.Trial, g: Genotype, record: TrialRecord
                  ) -> tuple[optuna.Trial, Genotype, TrialRecord] | None:
        """Screening: pool the trainable proposals of a tier; once it holds ``screen`` candidates, the best-scoring
        one (:func:`nas.scores.best_of`, on the proxy network each would train) is trained and the others are
        ``screened`` (never trained, never a measurement). None while the pool fills."""
        if self.pools.holds(record.tier, g):  # the same network is a candidate already
            self._finish(trial, dataclasses.replace(record, status="screened", screen=self.pools.duplicate_info()))
            return None
        self._mirror(stored_trial(self.study, trial))  # RUNNING, in the order asked (the storage numbers them so)
        tier = record.tier
        pool = self.pools.add(tier, trial, g, record)
        if pool is None:
            return None
        order, infos = self.pools.rank([h for _, h, _ in pool])
        pool = [(t, h, dataclasses.replace(r, screen={**(r.screen or {}), **infos[i]}))
                for i, (t, h, r) in enumerate(pool)]
        out = None
        # best score first; a candidate whose latency was estimated is timed now, and trained only if it is within
        # the budgets and still in this pool's tier (a tier's trials are its best within its own limits)
        for i in order[:TIMED_TRIES]:
            t, h, r = pool[i]
            if r.latency_ms is None and self._latency_fn is not None:
                r = self._timed(t, h, r)
                pool[i] = (t, h, r)
                if any(v > 0 for v in r.violations.values()):
                    self._finish(t, dataclasses.replace(r, status="infeasible"))
                    pool[i] = None
                    continue
                if r.tier != tier:
                    self._finish(t, dataclasses.replace(r, status="screened",
                                                        screen={**r.screen, "pool_tier": tier, "moved": True}))
                    pool[i] = None
                    continue
            out = pool[i]
            break
        chosen = out[0].number if out is not None else None
        for item in pool:
            if item is not None and item is not out:
                t, h, r = item
                self._finish(t, dataclasses.replace(r, status="screened", screen={**r.screen, "chosen": chosen}))
        if out is None:
            return None
        t, h, r = out
        return t, h, dataclasses.replace(r, screen={**r.screen, "chosen": chosen})

    def _timed(self, trial: optuna.Trial, g: Genotype, record: TrialRecord) -> TrialRecord:
        """A candidate whose latency was estimated, with its predicted latency (parts timed), budgets and tier."""
        latency = self._latency_fn(g)
        cost = budgets.target_cost(self.space, g)
        violations = budgets.violations(self.space, g, cost, latency_ms=latency) if self._constraints else {}
        costs = {"macs": cost.macs, "params": cost.params, "latency_ms": latency}
        record = dataclasses.replace(record, latency_ms=latency, violations=violations,
                                     tier=tier_of(costs, self._bands),
                                     latency_table=getattr(self._latency_fn, "table_id", None))
        trial.set_user_attr("latency_ms", latency)
        if self._constraints:
            set_constraints(self.study, trial, constraint_values(self.space, violations))
        self._costed_so_far.append(record)
        return record

    def _queue_needed(self, refused: TrialRecord) -> None:
        """Queue a random architecture of the nearest needed tier's band as the next proposal (nas.search.spread)."""
        assert self.spread is not None
        if not self.spread.active:
            return
        ratios = sorted(r.latency_ms / r.macs for r in self._costed_so_far if r.latency_ms and r.macs)
        per_mac = ratios[len(ratios) // 2] if ratios else None

        def estimate(g: Genotype) -> dict[str, float | None] | None:
            c = budgets.target_cost(self.space, g)
            latency = per_mac * c.macs if per_mac else None
            over = budgets.violations(self.space, g, c, latency_ms=latency if latency is not None else 0.0)
            if any(v > 0 for v in over.values()):
                return None
            return {"macs": c.macs, "params": c.params, "latency_ms": latency}

        rng = random.Random(self.seed * 100003 + refused.number)
        taken = set(self.done) | set(self._active_hash)
        for band in self.spread.nearest_needed(refused):
            g = draw(self.space, band, estimate, rng, taken)
            if g is not None:
                self.study.enqueue_trial(self.space.params_of(g), skip_if_exists=False)
                return

    # -- finishing --------------------------------------------------------------------------------------------

    def complete(self, number: int, result: dict[str, Any] | None, error: str | None = None) -> TrialRecord:
        """Record a trained trial from its last report (``error``: the trial process failed)."""
        act = self.active.pop(number)
        self._active_hash.pop(act.genotype.hash, None)
        record = act.record.with_result(result, self.planned_epochs, error)
        if self.spread is not None and record.status != "complete":
            self.spread.count(record.tier, -1)  # a pruned or failed design is no member: its tier needs another
        self._finish(act.trial, record, trained=True)
        for trial, waiting in act.waiting:
            self._finish(trial, waiting.answered_from(record))
        return record

    def report_epoch(self, number: int, epoch: int, accuracy: float | None) -> None:
        """A trained epoch's validation accuracy, as the trial's intermediate value at step ``epoch``."""
        act = self.active.get(number)
        if act is None or accuracy is None or epoch < 1 or not math.isfinite(accuracy):
            return
        set_intermediate_value(self.study, act.trial, epoch, accuracy)
        self._mirror(stored_trial(self.study, act.trial))

    def abandon(self, number: int) -> None:
        """Forget a trial interrupted by a shutdown: it stays RUNNING in the storage and re-runs on resume."""
        self._ready = [launch for launch in self._ready if launch.number != number]
        act = self.active.pop(number, None)
        if act is not None:
            self._active_hash.pop(act.genotype.hash, None)
            if self.spread is not None:
                self.spread.count(act.record.tier, -1)

    def answer_all(self) -> None:
        """Cost-only mode: propose and answer until the study holds ``target`` trials."""
        if not self.cost_only:
            raise ValueError("answer_all is for cost-only mode")
        self.next()

    def _finish(self, trial: optuna.Trial, record: TrialRecord, trained: bool = False) -> None:
        self._write(record, durable=trained)
        state, values = outcome(record, self.objectives)
        for k, v in state_attrs(record).items():
            trial.set_user_attr(k, v)
        tell(self.study, trial, values, state)
        self._mirror(stored_trial(self.study, trial))
        self.n_finished += not uncounted(record, self._screening)
        if record.duplicate_of is None and record.status in ANSWERABLE:
            self.done.setdefault(record.hash, record)
        self._emit(record)
