"""The state of a finished trial, and how Optuna is told it.

Each finished trial has one of these states, named the same in ``trials.jsonl``
(``status``), Optuna, the plots, W&B and the CLI
(:func:`nas.results.record.state_text`). The Optuna side is here: its state,
values, constraints and user attributes.

* **trained**: ``complete`` (COMPLETE in Optuna, its measured values), or
  ``pruned``, stopped early by the scheduler (PRUNED, its per-epoch accuracy
  as intermediate values; multi-objective studies accept no intermediate
  values, and a partial accuracy told as final would make every pruned
  architecture look like a bad point of the front);
* **over budget** (``infeasible``, the limits it misses in ``violations``),
  **refused for its tier** (``refused``: in a space with family tiers, a
  proposal in a tier that is ahead of the others, constraint ``tier``, not
  counted among the study's trials, :mod:`nas.search.spread`) and **screened
  out** (``screened``: a candidate of a screening search that another outscored,
  :mod:`nas.search.screening`): never trained, so never a measurement. Optuna
  gets them as PRUNED with no values (no fake accuracy: ``study.best_trials``,
  what optuna-dashboard's best trials show, holds trained trials only) and with
  their constraint values (the ``constraints`` list, in the order of
  :func:`constraint_metrics`, :mod:`nas.results.optuna_compat`). Which samplers
  learn from that (Optuna 5.1's code): TPE splits COMPLETE and PRUNED trials and
  puts those with a positive constraint among the bad ones by total violation
  (``optuna/samplers/_tpe/sampler.py``, ``_split_trials``), so it learns where
  the budget wall and the needed tiers are; NSGA-II and GP build their
  populations and models from COMPLETE trials only, so they never take an
  untrained proposal as a parent or a point; the predictor sampler keeps
  proposals within the budgets itself and learns from COMPLETE trials only.
  Each trial's ``state`` user attribute says the state in words;
* **failed**: an exception in training, or a trial process that died after
  Tune's retries (``tuning.TRIAL_RETRIES``): FAIL in Optuna.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from optuna.trial import TrialState

from nas.results.front import objective_values
from nas.results.record import COST_METRICS, UNTRAINED, TrialRecord, is_trial, state_text, tier_rejected
from nas.search.spread import TIER, bands


def constraint_metrics(space: Any) -> list[str]:
    """Optuna constraints of a search: budgeted metrics, and ``tier`` when the space has family tiers to
    spread over (in the order of the ``constraints`` user attribute)."""
    spread = [TIER] if len(bands(space)) > 1 else []
    return [m for m in COST_METRICS if getattr(space.budgets, m, None) is not None] + spread


#: Statuses whose result a later proposal of the same architecture is answered with (never a refusal).
ANSWERABLE = ("complete", "pruned", "failed")


def uncounted(record: Mapping[str, Any], screening: bool = False) -> bool:
    """Not one of the study's counted trials (:func:`nas.results.record.is_trial`)."""
    return not is_trial(record, screening)


def constraint_values(space: Any, violations: Mapping[str, float] | None) -> list[float]:
    """A trial's constraint values: its relative excess over each budget (<= 0 within it)."""
    return [float((violations or {}).get(m, 0.0)) for m in constraint_metrics(space)]


def user_attrs(record: TrialRecord, summary: str) -> dict[str, Any]:
    """What a trial's Optuna user attributes show (optuna-dashboard's columns): hash, costs, architecture."""
    return {"hash": record.hash, "macs": record.macs, "params": record.params, "latency_ms": record.latency_ms,
            "arch": summary}


def state_attrs(record: Mapping[str, Any]) -> dict[str, Any]:
    """The user attributes that say a finished trial's state in words (``state``) and its record status."""
    return {"state": state_text(record), "status": record.get("status")}


def outcome(record: Mapping[str, Any], objectives: Sequence[dict[str, str]]) -> tuple[TrialState, list[float] | None]:
    """Optuna state and values for a record (see the module docstring for the choices): never a value that was
    not measured."""
    status = record["status"]
    if status == "pruned" or status in UNTRAINED or tier_rejected(record):
        return TrialState.PRUNED, None
    if status == "failed":
        return TrialState.FAIL, None
    values = list(objective_values(record, objectives))
    if any(math.isnan(v) for v in values):  # e.g. an accuracy objective with no accuracy reported
        return TrialState.FAIL, None
    return TrialState.COMPLETE, values
