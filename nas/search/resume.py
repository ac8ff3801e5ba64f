"""Resuming a study: the space it was created with, and its Optuna storage repaired from ``trials.jsonl``.

Finished trials stay as recorded. Trials a crash or a Ctrl-C left RUNNING in
the storage are marked FAIL and their architectures queued again
(``enqueue_trial``); trials whose result reached ``trials.jsonl`` but whose
storage update was lost are completed from their records.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from nas.errors import InputError
from nas.io import atomic_write
from nas.results.optuna_compat import CONSTRAINTS_KEY, storage_of, trial_id
from nas.results.record import TrialRecord
from nas.results.store import StudyDir
from nas.search.states import constraint_metrics, constraint_values, outcome, state_attrs, user_attrs


def keep_space(space: Any, sd: StudyDir) -> None:
    """Copy the space file into the study; resuming with a different space is refused."""
    from nas.space import load_space

    exclude = {"name", "description", "search", "tracking"}
    if sd.space.exists():
        kept = load_space(sd.space)
        if kept.model_dump(exclude=exclude) != space.model_dump(exclude=exclude):
            raise InputError(f"{space.source}: the study {sd.root} was created with a different space "
                             f"({sd.space}); use another --study, or the same space (search: and tracking: "
                             "may differ)")
        return
    atomic_write(sd.space, Path(space.source).read_bytes())


@dataclass
class Reconciled:
    trials: list[FrozenTrial]  # every trial of the persistent study, all finished now, in number order
    requeue: list[dict[str, Any]] = field(default_factory=list)  # params of interrupted architectures
    repaired: int = 0  # storage trials completed from trials.jsonl
    abandoned: int = 0  # RUNNING/WAITING trials marked FAIL


#: Trial numbers a resume may find missing from both files (trials in flight when a run died, never stored).
RESUME_SLACK = 64


def check_consistent(trials: Sequence[FrozenTrial], records: Sequence[TrialRecord], sd: StudyDir,
                     slack: int = RESUME_SLACK) -> None:
    """Refuse (one line, nothing changed) a storage and a ``trials.jsonl`` that cannot be the same study.

    ``trials.jsonl`` is written before Optuna is told, so every trial the storage holds as finished has its
    record; the storage may only lag. A missing or cut ``trials.jsonl`` beside a full storage would otherwise
    restart the study silently (forgetting trials, training designs again), and a record numbered far beyond
    the study (2000 in a study of 20) would make the resume invent thousands of failed trials."""
    by_number = {r.number: r for r in records}
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    lost = [t.number for t in finished if t.number not in by_number]
    if lost:
        shown = ", ".join(map(str, lost[:5])) + (", ..." if len(lost) > 5 else "")
        what = "is missing" if not sd.trials.exists() else f"lacks {len(lost)} of its finished trials ({shown})"
        raise InputError(f"{sd.trials}: trials.jsonl {what}, but {sd.storage_file(_kind(sd))} holds "
                         f"{len(finished)} finished trials; restore trials.jsonl, or remove the storage file to "
                         "resume from trials.jsonl alone (the trials only the storage holds are then forgotten); "
                         "nothing was changed")
    for t in finished:
        stored = t.user_attrs.get("hash")
        if stored is not None and stored != by_number[t.number].hash:
            raise InputError(f"{sd.trials}: trial {t.number}: hash: {by_number[t.number].hash} is not the "
                             f"architecture the storage holds ({stored}); the two files are of different studies, "
                             "nothing was changed")
    limit = len(trials) + len(records) + slack
    beyond = [n for n in by_number if n >= limit]
    if beyond:
        raise InputError(f"{sd.trials}: trial {max(beyond)}: number: beyond the study ({len(trials)} trials stored, "
                         f"{len(records)} recorded, so below {limit}); a record from another study? nothing was "
                         "changed")


def _kind(sd: StudyDir) -> str:
    return sd.existing_storage() or "sqlite"


def reconcile(study: optuna.Study, records: Sequence[TrialRecord], space: Any,
              objectives: Sequence[dict[str, str]], sd: StudyDir | None = None,
              slack: int = RESUME_SLACK) -> Reconciled:
    """Bring the persistent study in line with ``trials.jsonl`` after a crash or a Ctrl-C (checked first with
    :func:`check_consistent` when the study directory ``sd`` is given)."""
    storage, sid = storage_of(study)
    if sd is not None:
        check_consistent(study.get_trials(deepcopy=False), records, sd, slack)
    by_number = {r.number: r for r in records}
    done_hashes = {r.hash for r in records}
    out = Reconciled(trials=[])
    for t in study.get_trials(deepcopy=False):
        if t.state in (TrialState.RUNNING, TrialState.WAITING):
            rec = by_number.get(t.number)
            if rec is not None and t.user_attrs.get("hash") in (None, rec.hash):
                state, values = outcome(rec, objectives)
                rebuilt = rebuild_trial(space, rec, objectives)
                for k, v in rebuilt.user_attrs.items():
                    storage.set_trial_user_attr(trial_id(t), k, v)
                for step, v in rebuilt.intermediate_values.items():
                    if step not in t.intermediate_values:
                        storage.set_trial_intermediate_value(trial_id(t), step, v)
                storage.set_trial_state_values(trial_id(t), state, values)
                out.repaired += 1
            else:
                storage.set_trial_state_values(trial_id(t), TrialState.FAIL)
                params = t.params or t.system_attrs.get("fixed_params") or {}
                if params and t.user_attrs.get("hash") not in done_hashes:
                    out.requeue.append(dict(params))
                out.abandoned += 1
    n_stored = len(study.get_trials(deepcopy=False, states=None))
    for n in range(n_stored, max(by_number, default=-1) + 1):
        rec = by_number.get(n)
        template = (rebuild_trial(space, rec, objectives) if rec is not None
                    else optuna.trial.create_trial(state=TrialState.FAIL))
        tid = storage.create_new_trial(sid, template_trial=template)
        if storage.get_trial_number_from_id(tid) != n:
            raise InputError(f"{study.study_name}: storage: trial numbers of the storage and trials.jsonl "
                             "disagree; the study cannot be resumed safely")
        out.repaired += rec is not None
    out.trials = study.get_trials(deepcopy=False)
    for t in out.trials:  # older runs could finish a queued trial without a start time; Optuna rejects that
        if t.state != TrialState.WAITING and t.datetime_start is None:
            t.datetime_start = t.datetime_complete or datetime.datetime.now()
    return out


def rebuild_trial(space: Any, record: TrialRecord, objectives: Sequence[dict[str, str]]) -> FrozenTrial:
    """A finished Optuna trial for a record whose trial never reached the storage (a crash lost the write)."""
    params = space.params_of(record.to_genotype(f"trials.jsonl: trial {record.number}"))
    fixed = optuna.trial.FixedTrial(params, number=record.number)
    space.suggest(fixed)
    state, values = outcome(record, objectives)
    system = {CONSTRAINTS_KEY: constraint_values(space, record.violations)} if constraint_metrics(space) else {}
    steps = {int(h["epoch"]): float(h["val_accuracy"]) for h in record.history or []
             if h.get("epoch") and h.get("val_accuracy") is not None}
    return optuna.trial.create_trial(state=state, values=values, params=params, distributions=fixed.distributions,
                                     user_attrs={**user_attrs(record, record.to_genotype().summary()),
                                                 **state_attrs(record)},
                                     system_attrs=system, intermediate_values=steps)
