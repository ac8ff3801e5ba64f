"""Optuna's private API that nas relies on (nas.results.optuna_compat): still there, still behaving.

These are not skipped on a new Optuna: a failure here means an upgrade removed or changed something the
search, the resume repair or the hypervolume depends on, and nas.results.optuna_compat must be adapted.
"""

from __future__ import annotations

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from nas.results import optuna_compat


def test_every_private_name_is_there_with_the_parameters_nas_passes():
    assert optuna_compat.problems() == []
    # the fast tell must not have fallen back to the public call silently
    assert optuna_compat._tell_with_warning is not None


@pytest.mark.parametrize("storage", ["memory", "sqlite"])
def test_tell_and_read_back_through_the_storage(storage, tmp_path):
    url = None if storage == "memory" else f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(storage=url, directions=["maximize", "minimize"])
    trial = study.ask()
    trial.suggest_int("x", 0, 3)
    optuna_compat.tell(study, trial, [0.5, 3.0], TrialState.COMPLETE)
    frozen = optuna_compat.stored_trial(study, trial)
    assert frozen.number == trial.number and frozen.state == TrialState.COMPLETE and frozen.values == [0.5, 3.0]
    # telling a finished trial again is skipped, not an error (skip_if_finished)
    optuna_compat.tell(study, trial, [0.9, 1.0], TrialState.COMPLETE)
    assert optuna_compat.stored_trial(study, trial).values == [0.5, 3.0]
    storage_obj, study_id = optuna_compat.storage_of(study)
    assert isinstance(storage_obj, optuna.storages.BaseStorage)
    assert storage_obj.get_study_id_from_name(study.study_name) == study_id
    assert optuna_compat.trial_id(trial) == optuna_compat.trial_id(study.get_trials(deepcopy=False)[0])
    failed = study.ask()
    optuna_compat.tell(study, failed, None, TrialState.FAIL)
    assert optuna_compat.stored_trial(study, failed).state == TrialState.FAIL


def test_pareto_mask_and_hypervolume():
    losses = np.array([[1.0, 4.0], [2.0, 2.0], [3.0, 3.0], [4.0, 1.0]])  # (3, 3) is dominated by (2, 2)
    assert optuna_compat.pareto_mask(losses).tolist() == [True, True, False, True]
    # unit squares below the reference (0, 0): the union of [-0.5,0]x[-0.5,0] and [-0.8,0]x[-0.2,0]
    front = np.array([[-0.5, -0.5], [-0.8, -0.2]])
    assert optuna_compat.hypervolume(front, np.zeros(2)) == pytest.approx(0.25 + 0.3 * 0.2)
