"""One study, one story (issue 28): on a search with family tiers on, trials.jsonl, the Optuna storage as
optuna-dashboard reads it (``study.best_trials``), the plots, the W&B runs and the exported family agree.

The search looks its accuracies up in the shipped NAS-Bench-Macro table, in this process (no Ray, no training),
with budgets and family tiers added to the space: every kind of state occurs in a few seconds."""

from __future__ import annotations

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from nas import export, tracking
from nas.plots.panels import OVER_LABEL, REFUSED_LABEL, groups
from nas.results.record import state_text
from nas.results.store import StudyDir, study_records
from nas.search.driver import SearchOptions, run_search
from nas.space import find_space_file

pytestmark = pytest.mark.integration  # a search, W&B offline runs and an export


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("agreement")
    space = yaml.safe_load(find_space_file("nasbench_macro.yaml").read_text())
    space["budgets"] = {"macs": 80e6}
    space["family"] = {"s": {"macs": 45e6}, "m": {"macs": 56e6}, "l": {"macs": 80e6}}
    space["search"] = {"sampler": "nsga2", "trials": 16, "seed": 0}
    space["tracking"] = {"wandb": "offline", "project": "nas-test"}
    path = tmp / "macro_tiers.yaml"
    path.write_text(yaml.safe_dump(space))
    s = run_search(SearchOptions(space=str(path), out=tmp / "results", wandb="offline"),
                   listeners=[tracking.StudyTracker()])
    return s.study_dir, study_records(s.study_dir)


def test_every_state_occurs(study):
    _, records = study
    statuses = {r.status for r in records}
    assert {"complete", "refused"} <= statuses, statuses
    assert len([r for r in records if r.status != "refused"]) == 16


def test_the_storage_as_optuna_dashboard_reads_it(study):
    d, records = study
    sd = StudyDir(d)
    kind = sd.existing_storage()
    url = f"sqlite:///{sd.root / 'study.db'}" if kind == "sqlite" else optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(sd.root / "journal.log")))
    st = optuna.load_study(study_name=optuna.get_all_study_names(url)[0], storage=url)
    by_number = {r.number: r for r in records}
    trials = st.get_trials()
    assert sorted(t.number for t in trials) == sorted(by_number)
    for t in trials:
        r = by_number[t.number]
        assert t.user_attrs["state"] == state_text(r)
        if r.status in ("refused", "infeasible"):
            assert t.state == TrialState.PRUNED and t.values is None
        elif r.status == "complete":
            assert t.state == TrialState.COMPLETE and t.values[0] == pytest.approx(r.accuracy)
    best = st.best_trials  # what optuna-dashboard's "Best Trials" shows
    assert best and all(by_number[t.number].status == "complete" for t in best)
    accs = [t.values[0] for t in st.get_trials(states=(TrialState.COMPLETE,))]
    assert min(accs) > 0.5  # no fake zero among them (the table's networks all reach 80%+)


def test_the_plots_and_w_and_b(study):
    d, records = study
    g = groups(records, [])
    assert {r.number for r in g.refused} == {r.number for r in records if r.status == "refused"}
    html = (d / "pareto.html").read_text()
    assert REFUSED_LABEL in html and (OVER_LABEL in html) == any(r.status == "infeasible" for r in records)
    runs = tracking.offline_runs(d)
    trial_runs = [r for r in runs if r["job_type"] == "trial"]
    # a W&B run per trained trial, none for a proposal that never trained
    assert sorted(r["config"]["trial"] for r in trial_runs) == sorted(r.number for r in records if r.trained)
    assert all(r["config"]["tier"] in ("s", "m", "l") for r in trial_runs)
    study_run = next(r for r in runs if r["job_type"] == "study")
    rows = tracking.read_table(study_run, "trials")
    cols = rows["columns"]
    by_number = {r.number: r for r in records}
    for row in rows["data"]:
        r = by_number[row[cols.index("number")]]
        assert row[cols.index("status")] == r.status and row[cols.index("state")] == state_text(r)


def test_the_family(study, tmp_path):
    d, records = study
    import json

    out = export.export_family(d, tmp_path / "fam", measure=False)
    fam = json.loads((out / "family.json").read_text())
    order = ["s", "m", "l"]  # smallest tier first
    trained = sorted((m for m in fam["members"] if m["source"] == "trained"), key=lambda m: order.index(m["tier"]))
    assert trained
    accs = [m["accuracy"] for m in trained]
    assert accs == sorted(accs) and len(set(accs)) == len(accs)  # each larger tier more accurate
    by_number = {r.number: r for r in records}
    for m in trained:
        assert by_number[m["trial"]].status == "complete" and by_number[m["trial"]].tier == m["tier"]
    assert "These are untrained architectures" in (out / "family.md").read_text()


def test_a_resume_rebuilds_lost_storage_writes_with_the_same_states(study, tmp_path):
    """The storage lost its last trials (a crash before the writer caught up): a resume rebuilds them from
    trials.jsonl with the same states (a refusal PRUNED with no values, never COMPLETE with accuracy 0), and the
    sampler goes on from there."""
    import shutil

    d, records = study
    copy = tmp_path / d.name
    shutil.copytree(d, copy, ignore=shutil.ignore_patterns("wandb"))
    sd = StudyDir(copy)
    assert sd.existing_storage() == "sqlite"
    url = f"sqlite:///{sd.root / 'study.db'}"
    name = optuna.get_all_study_names(url)[0]
    import sqlite3

    con = sqlite3.connect(sd.root / "study.db")  # cut the storage back to its first 5 trials
    for table in ("trial_values", "trial_params", "trial_user_attributes", "trial_system_attributes",
                  "trial_intermediate_values", "trial_heartbeats"):
        con.execute(f"DELETE FROM {table} WHERE trial_id IN (SELECT trial_id FROM trials WHERE number >= 5)")
    con.execute("DELETE FROM trials WHERE number >= 5")
    con.commit()
    con.close()
    space = copy / "space.yaml"
    s = run_search(SearchOptions(space=str(space), out=tmp_path, trials=18, wandb="disabled"))
    recs = study_records(s.study_dir)
    st = optuna.load_study(study_name=name, storage=url)
    by_number = {r.number: r for r in recs}
    assert len(st.trials) == len(recs) and len([r for r in recs if r.status != "refused"]) == 18
    for t in st.trials:
        r = by_number[t.number]
        want = {"complete": TrialState.COMPLETE, "refused": TrialState.PRUNED, "infeasible": TrialState.PRUNED}
        assert t.state == want[r.status] and t.user_attrs["state"] == state_text(r)
    assert all(by_number[t.number].status == "complete" for t in st.best_trials)
