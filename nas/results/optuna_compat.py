"""Every use of Optuna's private API in nas, in one place.

nas relies on six things Optuna does not promise to keep:

* ``optuna._hypervolume.compute_hypervolume``: the exact WFG hypervolume (there is no public function);
* ``optuna.study._multi_objective._is_pareto_front``: the non-dominated mask of a loss matrix;
* ``optuna.study._tell._tell_with_warning``: ``Study.tell`` without the deep copy of the trial it returns
  (1 ms for a trial of 100 parameters, on every answered proposal); without it, the public ``Study.tell``;
* ``Study._storage`` and ``Study._study_id``: the storage of a study, to read a trial without copying it and
  to repair trials of a persistent study on resume;
* ``Trial._trial_id`` / ``FrozenTrial._trial_id``: the storage's id of a trial;
* ``optuna.samplers._base._CONSTRAINTS_KEY`` (``"constraints"``): the system attribute holding a trial's
  constraint values as a list, the form ``constraints_func`` writes. Samplers read it (``FrozenTrial.constraints``
  still reads the list as keys ``"0"``, ``"1"``, ...) and optuna-dashboard reads only it, not the
  ``constraints:<name>`` keys of ``Trial.set_constraint``: so nas writes the list alone (both forms at once would
  count every violation twice).

Two public storage calls stand in for ``Trial`` methods that refuse what nas needs:
``BaseStorage.set_trial_intermediate_value`` for ``Trial.report`` (which raises ``NotImplementedError`` in
multi-objective studies, every nas study with a cost objective; the storage keeps per-epoch values for any
study, and optuna-dashboard draws them), and ``set_trial_system_attr`` for the constraint list.

:func:`problems` checks that each is still there with the parameters nas passes; ``tests/test_optuna_compat.py``
fails on any problem it reports, so an Optuna upgrade that changes one is caught before a search runs into it.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence

import numpy as np
import optuna
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState

try:
    from optuna._hypervolume import compute_hypervolume as _compute_hypervolume
except ImportError:  # pragma: no cover - reported by problems()
    _compute_hypervolume = None
try:
    from optuna.study._multi_objective import _is_pareto_front
except ImportError:  # pragma: no cover - reported by problems()
    _is_pareto_front = None
try:
    from optuna.samplers._base import _CONSTRAINTS_KEY as CONSTRAINTS_KEY
except ImportError:  # pragma: no cover - reported by problems()
    CONSTRAINTS_KEY = "constraints"
try:
    from optuna.study._tell import _tell_with_warning
except ImportError:  # pragma: no cover - reported by problems(); tell() falls back on the public call
    _tell_with_warning = None

#: The private functions and the parameters nas passes them.
_SIGNATURES = {
    "optuna._hypervolume.compute_hypervolume": (lambda: _compute_hypervolume,
                                                ("loss_vals", "reference_point", "assume_pareto")),
    "optuna.study._multi_objective._is_pareto_front": (lambda: _is_pareto_front,
                                                       ("loss_values", "assume_unique_lexsorted")),
    "optuna.study._tell._tell_with_warning": (lambda: _tell_with_warning,
                                              ("study", "trial", "value_or_values", "state", "skip_if_finished",
                                               "suppress_warning")),
}


def pareto_mask(losses: np.ndarray) -> np.ndarray:
    """Which rows of ``losses`` (every objective minimised) no other row dominates."""
    return _is_pareto_front(losses, assume_unique_lexsorted=False)


def hypervolume(losses: np.ndarray, reference: np.ndarray) -> float:
    """Hypervolume dominated by the non-dominated ``losses`` (minimised), each strictly below ``reference``."""
    return float(_compute_hypervolume(losses, reference, assume_pareto=True))


def tell(study: optuna.Study, trial: optuna.Trial, values: Sequence[float] | None, state: TrialState) -> None:
    """``study.tell(trial, values, state, skip_if_finished=True)`` without copying the finished trial."""
    if _tell_with_warning is None:
        study.tell(trial, values=values, state=state, skip_if_finished=True)
    else:
        _tell_with_warning(study=study, trial=trial, value_or_values=values, state=state, skip_if_finished=True,
                           suppress_warning=True)


def storage_of(study: optuna.Study) -> tuple[BaseStorage, int]:
    """The storage holding ``study`` and the study's id in it."""
    return study._storage, study._study_id


def trial_id(trial: optuna.Trial | FrozenTrial) -> int:
    """The storage's id of a trial (not its number)."""
    return trial._trial_id


def stored_trial(study: optuna.Study, trial: optuna.Trial) -> FrozenTrial:
    """The trial as its storage holds it now, not copied (read only)."""
    storage, _ = storage_of(study)
    return storage.get_trial(trial_id(trial))


def set_intermediate_value(study: optuna.Study, trial: optuna.Trial | FrozenTrial, step: int, value: float) -> None:
    """``trial.report(value, step)``, also in a multi-objective study (see the module docstring)."""
    storage, _ = storage_of(study)
    storage.set_trial_intermediate_value(trial_id(trial), step, float(value))


def set_constraints(study: optuna.Study, trial: optuna.Trial, values: Sequence[float]) -> None:
    """The trial's constraint values (feasible when all are <= 0), where samplers and optuna-dashboard read them."""
    storage, _ = storage_of(study)
    storage.set_trial_system_attr(trial_id(trial), CONSTRAINTS_KEY, [float(v) for v in values])


def problems() -> list[str]:
    """What of the private API above this Optuna lacks or has changed; empty when all is as nas expects."""
    out: list[str] = []
    for name, (get, params) in _SIGNATURES.items():
        fn = get()
        if fn is None:
            out.append(f"{name}: missing")
            continue
        have = set(inspect.signature(fn).parameters)
        missing = [p for p in params if p not in have]
        if missing:
            out.append(f"{name}: no parameter {', '.join(missing)}")
    study = optuna.create_study(storage=optuna.storages.InMemoryStorage())
    trial = study.ask()
    for obj, attr in ((study, "_storage"), (study, "_study_id"), (trial, "_trial_id")):
        if not hasattr(obj, attr):
            out.append(f"{type(obj).__name__}.{attr}: missing")
    if not out:
        frozen = study.get_trials(deepcopy=False)[0]
        if getattr(frozen, "_trial_id", None) != trial._trial_id:
            out.append("FrozenTrial._trial_id: missing or not the trial's storage id")
        if not isinstance(study._storage, BaseStorage):
            out.append("Study._storage: not a BaseStorage")
        out += _constraint_problems()
    return out


def _constraint_problems() -> list[str]:
    try:
        from optuna.samplers._base import _CONSTRAINTS_KEY
    except ImportError:
        return ["optuna.samplers._base._CONSTRAINTS_KEY: missing"]
    if _CONSTRAINTS_KEY != CONSTRAINTS_KEY:
        return [f"optuna.samplers._base._CONSTRAINTS_KEY: {_CONSTRAINTS_KEY!r}, not {CONSTRAINTS_KEY!r}"]
    study = optuna.create_study(storage=optuna.storages.InMemoryStorage(), directions=["maximize", "minimize"])
    trial = study.ask()
    set_constraints(study, trial, [0.5, -1.0])
    set_intermediate_value(study, trial, 1, 0.25)
    frozen = study.get_trials(deepcopy=False)[0]
    out = []
    if frozen.constraints != {"0": 0.5, "1": -1.0}:
        out.append(f"FrozenTrial.constraints: reads the {CONSTRAINTS_KEY!r} list as {frozen.constraints}")
    if frozen.intermediate_values != {1: 0.25}:
        out.append("BaseStorage.set_trial_intermediate_value: refused in a multi-objective study")
    return out


