"""Optuna proposes, the analytic cost model filters, Ray Tune trains.

:class:`Proposer` owns the ask/tell loop and never touches Ray: it asks the
sampler for an architecture (``space.suggest``), costs it analytically and
answers at once, without training, every proposal that needs none:

* over budget -> ``infeasible``; told to Optuna as COMPLETE with accuracy 0
  and its real costs. Every costed trial carries its relative budget
  excesses as Optuna constraints (``trial.set_constraint``, which Optuna 5
  samplers read in place of the deprecated ``constraints_func``): NSGA-II
  ranks infeasible trials by total violation, TPE and GP model feasibility,
  so the sampler learns where the budget wall is;
* already evaluated (same ``Genotype.hash``) -> the earlier result (complete,
  pruned or failed alike) is told again and recorded with ``duplicate_of``,
  without training time; a proposal identical to an architecture still
  training waits for that trial's result (an infeasible architecture is
  simply costed again: that is as cheap as looking it up);
* in cost-only mode every feasible proposal is ``complete`` on its costs.

Anything else is handed out as a :class:`Launch` to be trained. A trial
process that dies is retried by Tune (``tuning.TRIAL_RETRIES``) before it is
recorded ``failed`` (FAIL in Optuna); an exception in training is ``failed``
at once, with its message. A trial the
scheduler (ASHA) stops early is recorded ``pruned`` with its last accuracy and
told to Optuna as PRUNED: multi-objective studies accept no intermediate
values, and a partial accuracy told as final would make every pruned
architecture look like a bad point of the front. Samplers learn from COMPLETE
trials (NSGA-II, TPE and GP all skip PRUNED ones), so a pruned architecture
is simply not a parent; its constraint values are still recorded.

:class:`nas.search.tuning.TuneSearcher` adapts a proposer to Ray Tune.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

try:  # Study.tell without the deep copy of the trial it returns (1 ms for a 100-parameter trial)
    from optuna.study._tell import _tell_with_warning
except ImportError:  # pragma: no cover - a future Optuna without it: the public call
    _tell_with_warning = None

from nas.config import COST_METRICS
from nas.errors import InputError
from nas.genotype import Genotype
from nas.search import budgets
from nas.search.pareto import objective_spec, objective_values

RESULT_KEYS = ("val_accuracy", "epoch", "final")  # what a trainable must report (see nas.search.objective)


def constraint_metrics(space: Any) -> list[str]:
    """Budgeted metrics, in the order of the ``constraints`` user attribute."""
    return [m for m in COST_METRICS if getattr(space.budgets, m, None) is not None]


def outcome(record: dict[str, Any], objectives: Sequence[dict[str, str]]) -> tuple[TrialState, list[float] | None]:
    """Optuna state and values for a record (see the module docstring for the choices)."""
    status = record["status"]
    if status == "pruned":
        return TrialState.PRUNED, None
    if status == "failed":
        return TrialState.FAIL, None
    rec = dict(record)
    if status == "infeasible" or rec.get("accuracy") is None:
        rec["accuracy"] = 0.0
    values = list(objective_values(rec, objectives))
    if any(math.isnan(v) for v in values):
        return TrialState.FAIL, None
    return TrialState.COMPLETE, values


def new_record(number: int, genotype: Genotype, *, macs: int, params: int, latency_ms: float | None,
               violations: dict[str, float], status: str, seed: int) -> dict[str, Any]:
    """A ``trials.jsonl`` object with nothing trained yet."""
    return {"number": number, "hash": genotype.hash, "genotype": genotype.to_dict(), "status": status,
            "accuracy": None, "best_accuracy": None, "macs": int(macs), "params": int(params),
            "latency_ms": latency_ms, "latency_ms_measured": None, "epochs": 0, "train_s": None,
            "images_per_s": None, "history": [], "violations": violations, "duplicate_of": None, "error": None,
            "node": None, "seed": seed, "time": time.time()}


def apply_result(record: dict[str, Any], result: dict[str, Any] | None, planned_epochs: int) -> dict[str, Any]:
    """Fill a record from a trial's last report; sets the status (complete, pruned or failed)."""
    result = result or {}
    hist = result.get("history") or []
    record["history"] = [{"epoch": int(h["epoch"]), "val_accuracy": float(h["val_accuracy"]),
                          "train_loss": float(h["train_loss"])} for h in hist]
    epoch = int(result.get("epoch") or len(hist) or 0)
    record["epochs"] = epoch
    acc = result.get("val_accuracy")
    record["accuracy"] = float(acc) if acc is not None and epoch > 0 else None
    best = result.get("best_accuracy", acc)
    record["best_accuracy"] = float(best) if best is not None and epoch > 0 else None
    for key in ("train_s", "images_per_s"):
        if result.get(key) is not None:
            record[key] = float(result[key])
    record["node"] = result.get("node")
    record["time"] = time.time()
    if result.get("error"):
        record["status"], record["error"] = "failed", str(result["error"])
    elif result.get("final") or epoch >= planned_epochs:
        record["status"] = "complete"
    else:
        record["status"] = "pruned"
    return record


@dataclass
class Launch:
    """A trial that needs training: ``config`` is what the trainable receives."""

    number: int
    genotype: Genotype
    config: dict[str, Any]


@dataclass
class _Active:
    trial: optuna.Trial
    record: dict[str, Any]  # the record so far (costs); completed when the trial finishes
    genotype: Genotype
    waiting: list[tuple[optuna.Trial, dict[str, Any]]] = field(default_factory=list)


class Proposer:
    """Optuna ask/tell + analytic cost + budgets + de-duplication + records (no Ray).

    ``write(record, durable=...)`` stores a record (``durable`` for trained
    trials); ``emit(record)`` is called for every finished trial, after the
    record is written and Optuna has been told. ``target`` is the total number of finished
    trials the study should hold (records loaded on resume count).
    """

    def __init__(self, space: Any, study: optuna.Study, *, objectives: Sequence[Any], target: int,
                 records: Sequence[dict[str, Any]], write: Callable[..., None],
                 mirror: Callable[[FrozenTrial], None], emit: Callable[[dict[str, Any]], None] | None = None,
                 latency_fn: Callable[[Genotype], float] | None = None, cost_only: bool = False,
                 make_config: Callable[[int, Genotype], dict[str, Any]] | None = None,
                 planned_epochs: int = 1, seed: int = 0) -> None:
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
        self.n_finished = len(records)
        self.done: dict[str, dict[str, Any]] = {}  # hash -> the original record of that architecture
        for r in records:
            if r.get("duplicate_of") is None:
                self.done.setdefault(r["hash"], r)
        self.active: dict[int, _Active] = {}
        self._active_hash: dict[str, int] = {}
        self.propose_s = 0.0  # time spent proposing (ask, suggest, cost), for the benchmarks
        self.n_proposed = 0
        self.stop: Any = None  # an Event; once set, nothing more is proposed

    # -- counts -----------------------------------------------------------------------------------------------

    @property
    def n_active(self) -> int:
        return sum(1 + len(a.waiting) for a in self.active.values())

    @property
    def exhausted(self) -> bool:
        """Every trial the study should hold is finished or under way."""
        return self.n_finished + self.n_active >= self.target

    # -- proposing --------------------------------------------------------------------------------------------

    def next(self) -> Launch | None:
        """The next architecture to train, answering the others on the way; None once :attr:`exhausted`."""
        while not self.exhausted and not (self.stop is not None and self.stop.is_set()):
            t0 = time.perf_counter()
            trial = self.study.ask()
            try:
                g = self.space.suggest(trial)
                record = self._costed(trial, g)
            except InputError:  # e.g. a latency table without an entry: the user must fix it, so stop
                _tell(self.study, trial, None, TrialState.FAIL)
                self._mirror(self._frozen(trial))
                raise
            launch = self._dispatch(trial, g, record)
            self.propose_s += time.perf_counter() - t0
            self.n_proposed += 1
            if launch is not None:
                return launch
        return None

    def _costed(self, trial: optuna.Trial, g: Genotype) -> dict[str, Any]:
        cost = budgets.target_cost(self.space, g)
        latency = self._latency_fn(g) if self._latency_fn is not None else None
        violations = budgets.violations(self.space, g, cost, latency_ms=latency,
                                        latency_fn=self._latency_fn) if self._constraints else {}
        trial.set_user_attr("hash", g.hash)
        for m in self._constraints:
            trial.set_constraint(m, float(violations.get(m, 0.0)))
        return new_record(trial.number, g, macs=cost.macs, params=cost.params, latency_ms=latency,
                          violations=violations, status="complete", seed=self.seed)

    def _dispatch(self, trial: optuna.Trial, g: Genotype, record: dict[str, Any]) -> Launch | None:
        if any(v > 0 for v in record["violations"].values()):
            record["status"] = "infeasible"
            self._finish(trial, record)
            return None
        prior = self.done.get(g.hash)
        if prior is not None:
            self._finish(trial, _duplicate(record, prior))
            return None
        if self.cost_only:
            self._finish(trial, record)
            return None
        # A trial answered at once is stored once, finished; one that waits or trains is stored now (RUNNING,
        # with its parameters), so that a resume finds and re-runs it.
        self._mirror(self._frozen(trial))
        running = self._active_hash.get(g.hash)
        if running is not None:
            self.active[running].waiting.append((trial, record))
            return None
        self.active[trial.number] = _Active(trial, record, g)
        self._active_hash[g.hash] = trial.number
        return Launch(trial.number, g, self._make_config(trial.number, g))

    # -- finishing --------------------------------------------------------------------------------------------

    def complete(self, number: int, result: dict[str, Any] | None, error: str | None = None) -> dict[str, Any]:
        """Record a trained trial from its last report (``error``: the trial process failed)."""
        act = self.active.pop(number)
        self._active_hash.pop(act.genotype.hash, None)
        record = apply_result(act.record, result, self.planned_epochs)
        if error and not record.get("error"):
            record["status"], record["error"] = "failed", error
        self._finish(act.trial, record, trained=True)
        for trial, waiting in act.waiting:
            self._finish(trial, _duplicate(waiting, record))
        return record

    def abandon(self, number: int) -> None:
        """Forget a trial interrupted by a shutdown: it stays RUNNING in the storage and re-runs on resume."""
        act = self.active.pop(number, None)
        if act is not None:
            self._active_hash.pop(act.genotype.hash, None)

    def answer_all(self) -> None:
        """Cost-only mode: propose and answer until the study holds ``target`` trials."""
        if not self.cost_only:
            raise ValueError("answer_all is for cost-only mode")
        self.next()

    def _finish(self, trial: optuna.Trial, record: dict[str, Any], trained: bool = False) -> None:
        self._write(record, durable=trained)
        state, values = outcome(record, self.objectives)
        _tell(self.study, trial, values, state)
        self._mirror(self._frozen(trial))
        self.n_finished += 1
        if record["duplicate_of"] is None and record["status"] != "infeasible":
            self.done.setdefault(record["hash"], record)
        self._emit(record)

    def _frozen(self, trial: optuna.Trial) -> FrozenTrial:
        return self.study._storage.get_trial(trial._trial_id)


def _tell(study: optuna.Study, trial: optuna.Trial, values: list[float] | None, state: TrialState) -> None:
    if _tell_with_warning is None:
        study.tell(trial, values=values, state=state, skip_if_finished=True)
    else:
        _tell_with_warning(study=study, trial=trial, value_or_values=values, state=state, skip_if_finished=True,
                           suppress_warning=True)


def _duplicate(record: dict[str, Any], prior: dict[str, Any]) -> dict[str, Any]:
    """``record`` answered from ``prior``'s result: nothing is trained, so no time or speed is claimed."""
    for key in ("status", "accuracy", "best_accuracy", "epochs", "history", "error", "node",
                "latency_ms_measured"):
        record[key] = prior.get(key)
    record["duplicate_of"] = prior["number"] if prior.get("duplicate_of") is None else prior["duplicate_of"]
    record["train_s"] = record["images_per_s"] = None
    record["time"] = time.time()
    return record
