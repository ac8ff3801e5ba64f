"""nas search: proposals, budgets, duplicates, persistence, resume, and real searches on Ray Tune."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from nas.errors import InputError, OptionError
from nas.genotype import from_dict
from nas.results.front import front, is_feasible, objective_values
from nas.results.optuna_compat import storage_of
from nas.results.record import TrialRecord, state_text
from nas.results.store import StudyLock
from nas.search import budgets
from nas.search.driver import SearchOptions, run_search
from nas.search.samplers import make_sampler
from nas.search.searcher import Proposer, tier_rejected
from nas.search.settings import search_objectives
from nas.space import find_space_file, load_space

REPO = Path(__file__).resolve().parent.parent


def _records(study_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (study_dir / "trials.jsonl").read_text().splitlines() if line.strip()]


def _storage_trials(study_dir: Path, name: str = "tiny") -> list:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{study_dir / 'study.db'}").get_trials()


def _proposer(space, target: int, cost_only: bool = False, sampler: str = "random"):
    objs = search_objectives(space, "cost" if cost_only else "train")
    study = optuna.create_study(directions=[o["direction"] for o in objs], sampler=make_sampler(sampler, 0, target))
    written: list[dict] = []
    p = Proposer(space, study, objectives=objs, target=target, records=[],
                 write=lambda r, durable=True: written.append(dict(r)), mirror=lambda t: None,
                 cost_only=cost_only, planned_epochs=2)
    return p, study, written


def _variant(tmp_path: Path, **changes) -> Path:
    """tiny.yaml with some sections replaced, written under tmp_path."""
    data = yaml.safe_load(find_space_file("tiny.yaml").read_text())
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = {**data.get(key, {}), **value} if isinstance(value, dict) else value
    p = tmp_path / "tiny_variant.yaml"
    p.write_text(yaml.safe_dump(data))
    return p


# -- the proposer, without Ray ---------------------------------------------------------------------------------


def test_over_budget_architectures_are_answered_without_training():
    space = load_space("tiny.yaml")
    space.budgets.macs = budgets.min_achievable(space)["macs"] * 2.5  # ~80% of the space is over budget
    space.family = {}  # budgets alone (spreading over tiers: test_spread.py)
    p, study, written = _proposer(space, target=200)
    launches = [p.next() for _ in range(5)]
    assert written and all(r["status"] == "infeasible" and r["violations"]["macs"] > 0 for r in written)
    trials = study.get_trials(deepcopy=False)
    for r in written:
        t = trials[r["number"]]
        # never trained: PRUNED with no values (no fake accuracy), its constraints what samplers read
        assert t.state == TrialState.PRUNED and t.values is None and t.user_attrs["state"].startswith("over budget")
        # the list optuna-dashboard shows and samplers read, in constraint_metrics order (macs, params)
        assert t.system_attrs["constraints"] == pytest.approx([r["violations"]["macs"], r["violations"]["params"]])
        assert sum(v for v in t.constraints.values() if v > 0) == pytest.approx(
            sum(v for v in r["violations"].values() if v > 0))  # each violation counted once
    for launch in launches:
        running = trials[launch.number]
        assert running.state == TrialState.RUNNING and max(running.constraints.values()) <= 0
        assert budgets.target_cost(space, launch.genotype).macs <= space.budgets.macs
        assert launch.config["genotype"] == launch.genotype.to_dict()
    assert len(written) + len(launches) == len(trials)


def test_the_storage_sees_answered_trials_once_finished_and_launched_ones_while_running():
    space = load_space("tiny.yaml")
    space.budgets.macs = budgets.min_achievable(space)["macs"] * 2.5
    space.family = {}
    objs = search_objectives(space, "train")
    study = optuna.create_study(directions=[o["direction"] for o in objs], sampler=make_sampler("random", 0, 200))
    mirrored: list[tuple[int, TrialState, dict]] = []
    p = Proposer(space, study, objectives=objs, target=200, records=[], write=lambda r, durable=True: None,
                 mirror=lambda t: mirrored.append((t.number, t.state, dict(t.params))), planned_epochs=1)
    launches = [p.next() for _ in range(3)]
    numbers = [n for n, _, _ in mirrored]
    assert numbers == sorted(numbers)  # the writer creates trials in number order
    launched = {launch.number for launch in launches}
    for n, state, params in mirrored:
        assert params == study.get_trials(deepcopy=False)[n].params  # stored with every parameter
        if n in launched:
            assert state == TrialState.RUNNING  # a resume finds it and re-runs it
        else:
            assert state == TrialState.PRUNED and numbers.count(n) == 1  # over budget: one finished update
    assert launched <= set(numbers) and len(set(numbers)) == len(study.trials)
    p.complete(launches[0].number, {"val_accuracy": 0.5, "epoch": 1, "final": True})
    assert mirrored[-1][:2] == (launches[0].number, TrialState.COMPLETE)


def test_duplicates_are_answered_from_results_and_outcomes_reach_optuna():
    space = load_space("tiny.yaml")
    space.budgets.macs = space.budgets.params = None
    space.family = {}
    p, study, written = _proposer(space, target=8)
    first = p.next()
    hist = [{"epoch": 1, "val_accuracy": 0.5, "train_loss": 2.0}, {"epoch": 2, "val_accuracy": 0.7, "train_loss": 1.0}]
    p.complete(first.number, {"val_accuracy": 0.7, "best_accuracy": 0.7, "epoch": 2, "final": True,
                              "history": hist, "train_s": 3.0, "images_per_s": 100.0, "node": "n"})
    done = written[-1]
    assert done["status"] == "complete" and done["accuracy"] == 0.7 and done["history"] == hist

    # the same architecture again: answered at once, the same values told to Optuna, nothing trained
    study.enqueue_trial(study.get_trials(deepcopy=False)[first.number].params)
    second = p.next()
    dup = written[-1]
    assert dup["duplicate_of"] == first.number and dup["hash"] == first.genotype.hash
    assert dup["accuracy"] == 0.7 and dup["train_s"] is None
    assert study.get_trials(deepcopy=False)[dup["number"]].values == [0.7, done["macs"]]
    assert second.genotype.hash != first.genotype.hash

    # proposed again while still training: waits for that result; a pruned trial is PRUNED in Optuna
    study.enqueue_trial(study.get_trials(deepcopy=False)[second.number].params)
    third = p.next()
    n_written = len(written)
    assert p.n_active == 3
    p.complete(second.number, {"val_accuracy": 0.3, "epoch": 1, "final": False,
                               "history": [{"epoch": 1, "val_accuracy": 0.3, "train_loss": 2.2}]})
    pruned, waited = written[n_written:]
    assert pruned["status"] == waited["status"] == "pruned" and pruned["accuracy"] == 0.3
    assert waited["duplicate_of"] == second.number
    states = {t.number: t.state for t in study.get_trials(deepcopy=False)}
    assert states[second.number] == states[waited["number"]] == TrialState.PRUNED

    # a training error is a failed trial, FAIL in Optuna
    p.complete(third.number, {"error": "RuntimeError: boom", "val_accuracy": 0.0, "epoch": 0, "final": True})
    assert written[-1]["status"] == "failed" and written[-1]["error"] == "RuntimeError: boom"
    assert study.get_trials(deepcopy=False)[third.number].state == TrialState.FAIL

    # the study holds exactly its target
    while (launch := p.next()) is not None:
        p.complete(launch.number, {"val_accuracy": 0.1, "epoch": 2, "final": True})
    assert p.exhausted and len(written) == 8 and p.next() is None
    originals = [r["hash"] for r in written if r["duplicate_of"] is None and r["status"] != "infeasible"]
    assert len(originals) == len(set(originals))


def test_cost_only_search_resumes_and_repairs_the_storage(tmp_path):
    opts = dict(space="tiny.yaml", out=tmp_path, objective="cost", wandb="disabled")
    s = run_search(SearchOptions(trials=25, **opts))
    sd = tmp_path / "tiny"
    recs = _records(sd)
    assert len(recs) == 25 == len(s.records)
    assert {r["status"] for r in recs} <= {"complete", "infeasible"}
    assert all(r["accuracy"] is None and r["epochs"] == 0 for r in recs)
    # complete on its costs, or over budget: never trained, PRUNED with its constraints (no values)
    assert [t.state for t in _storage_trials(sd)] == [TrialState.COMPLETE if r["status"] == "complete"
                                                      else TrialState.PRUNED for r in recs]
    assert s.objectives == [{"metric": "macs", "direction": "minimize"}]
    assert json.loads((sd / "pareto.json").read_text())["n_trials"] == 25

    # a crash left a trial RUNNING in the storage: it is marked FAIL and its architecture runs again
    space = load_space("tiny.yaml")
    known = {r["hash"] for r in recs}
    g = next(g for i in range(1000)
             if (g := space.sample(1000 + i)).hash not in known and budgets.is_feasible(space, g))
    fixed = optuna.trial.FixedTrial(space.params_of(g))
    space.suggest(fixed)
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{sd / 'study.db'}")
    storage, study_id = storage_of(study)
    storage.create_new_trial(study_id, optuna.trial.create_trial(
        state=TrialState.RUNNING, params=fixed.params, distributions=fixed.distributions,
        user_attrs={"hash": g.hash}))
    run_search(SearchOptions(trials=30, **opts))
    recs2 = _records(sd)
    assert recs2[:25] == recs and len(recs2) == 30
    assert g.hash in {r["hash"] for r in recs2[25:]}
    trials = _storage_trials(sd)
    assert trials[25].state == TrialState.FAIL and len(trials) == 31
    assert all(t.state != TrialState.RUNNING for t in trials)

    # a crash lost the storage write of a finished trial: it is rebuilt from its record
    lost = dict(recs2[-1], number=len(trials), hash=None)
    g2 = next(g for i in range(1000) if (g := space.sample(5000 + i)).hash not in {r["hash"] for r in recs2})
    c = budgets.target_cost(space, g2)
    lost.update(hash=g2.hash, genotype=g2.to_dict(), macs=c.macs, params=c.params,
                violations=budgets.violations(space, g2, c),
                status="complete" if budgets.is_feasible(space, g2) else "infeasible")
    with open(sd / "trials.jsonl", "a") as f:
        f.write(json.dumps(lost) + "\n")
    run_search(SearchOptions(trials=33, **opts))
    trials = _storage_trials(sd)
    if lost["status"] == "complete":
        assert trials[lost["number"]].state == TrialState.COMPLETE
        assert trials[lost["number"]].values == [lost["macs"]]
    else:  # over budget: rebuilt as it was told, PRUNED with no values
        assert trials[lost["number"]].state == TrialState.PRUNED and trials[lost["number"]].values is None
    assert trials[lost["number"]].params == space.params_of(g2)
    assert len(_records(sd)) == 33


def test_bad_study_input_is_one_line_and_changes_nothing(tmp_path):
    opts = dict(out=tmp_path, objective="cost", wandb="disabled")
    run_search(SearchOptions(space="tiny.yaml", trials=5, **opts))
    sd = tmp_path / "tiny"
    with open(sd / "trials.jsonl", "a") as f:
        f.write('{"number": 7, "hash": \n')
    before = (sd / "trials.jsonl").read_bytes(), (sd / "study.db").read_bytes()
    with pytest.raises(InputError, match=r"trials.jsonl: line 6: corrupt record"):
        run_search(SearchOptions(space="tiny.yaml", trials=8, **opts))
    assert ((sd / "trials.jsonl").read_bytes(), (sd / "study.db").read_bytes()) == before

    other = _variant(tmp_path, budgets={"params": "50k"})
    with pytest.raises(InputError, match="created with a different space"):
        run_search(SearchOptions(space=other, study="tiny", trials=8, **opts))

    lock = StudyLock(sd)
    lock.acquire()
    try:
        with pytest.raises(InputError, match="another `nas search` is running"):
            run_search(SearchOptions(space="tiny.yaml", trials=8, **opts))
    finally:
        lock.release()
    # a bad option names its field (the CLI prints it as the flag: tests/test_bad_input.py)
    for bad, field, problem in ((dict(sampler="cmaes"), "sampler", "'cmaes' is not one of nsga2, tpe, gp, random"),
                                (dict(objective="loss"), "objective", "'loss' is not one of train, cost"),
                                (dict(study="a/b"), "study", "'a/b' is not a usable study name"),
                                (dict(storage="redis"), "storage", "'redis' is not one of sqlite, journal"),
                                (dict(wandb="maybe"), "wandb", "'maybe' is not one of online, offline, disabled"),
                                (dict(trials=0), "trials", "must be > 0, got 0")):
        with pytest.raises(OptionError, match=f"^{field}: {problem}") as e:
            run_search(SearchOptions(space="tiny.yaml", **{**opts, "trials": 8, **bad}))
        assert e.value.field == field


# -- a crash and a resume (its own Ray, before the module's Ray starts) ---------------------------------


def _wait_for_records(path: Path, n: int, proc: subprocess.Popen, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        have = len(path.read_text().splitlines()) if path.exists() else 0
        if have >= n:
            return have
        assert proc.poll() is None, proc.communicate()[0][-3000:]
        time.sleep(0.3)
    raise AssertionError(f"fewer than {n} records after {timeout} s")


@pytest.mark.slow  # two driver processes and two Ray starts: 45-120 s on 2 cores (the default run resumes in
# test_cost_only_search_resumes_and_repairs_the_storage, and tests/test_faults.py kills a cost-only driver)
def test_sigkill_then_resume_loses_nothing_and_trains_nothing_twice(tmp_path):
    space = _variant(tmp_path, proxy={"subsample": 400}, search={"concurrency": 2, "trials": 6})
    cmd = [sys.executable, "-m", "nas.cli", "search", "--space", str(space), "--out", str(tmp_path),
           "--study", "kill", "--quiet", "--wandb", "disabled"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("RAY_ADDRESS", None)
    trials_file = tmp_path / "kill" / "trials.jsonl"
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        _wait_for_records(trials_file, 2, proc, timeout=240)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        with contextlib.suppress(ProcessLookupError):  # its own Ray processes go too, as with a lost machine
            os.killpg(proc.pid, signal.SIGKILL)
    before = _records(tmp_path / "kill")
    assert 2 <= len(before) < 6
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    after = _records(tmp_path / "kill")
    assert len(after) == 6
    assert after[: len(before)] == before  # nothing finished was lost or rewritten
    trained = [r["hash"] for r in after if r["status"] in ("complete", "pruned") and r["duplicate_of"] is None]
    assert len(trained) == len(set(trained))  # nothing trained twice
    trials = _storage_trials(tmp_path / "kill", "kill")
    assert not [t.number for t in trials if t.state == TrialState.RUNNING]
    assert {r["number"] for r in after} <= {t.number for t in trials}


# -- real searches on Ray Tune ------------------------------------------------------------------------------------


def test_search_end_to_end_on_ray(local_ray, tmp_path):
    s = run_search(SearchOptions(space="tiny.yaml", trials=3, concurrency=2, out=tmp_path,
                                 wandb="disabled"))
    sd = tmp_path / "tiny"
    recs = _records(sd)
    # tiny.yaml has family tiers: proposals refused for their tier come on top of the 3 trials
    assert len([r for r in recs if not tier_rejected(r)]) == 3 and s.new_trials == len(recs)
    space = load_space(sd / "space.yaml")
    trained = [r for r in recs if r["status"] == "complete"]
    assert trained, recs
    for r in trained:
        assert 0.0 <= r["accuracy"] <= 1.0 and r["epochs"] == 1 and len(r["history"]) == 1
        assert r["train_s"] > 0 and r["images_per_s"] > 0 and r["node"] and r["device"] == "cpu"
        g = from_dict(r["genotype"])
        assert g.hash == r["hash"] and budgets.target_cost(space, g).macs == r["macs"]
    trials = _storage_trials(sd)
    assert len(trials) == len(recs) and all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)

    doc = json.loads((sd / "pareto.json").read_text())
    members = doc["front"]
    assert members and doc["n_trials"] == len(recs) and 0 < doc["hypervolume"] <= 1
    objs = doc["objectives"]
    for m in members:
        assert is_feasible(m) and m["macs"] <= space.budgets.macs and m["params"] <= space.budgets.params
        a = objective_values(m, objs)
        for other in members:
            b = objective_values(other, objs)
            assert not (b[0] >= a[0] and b[1] <= a[1] and b != a), "a front member is dominated"
    assert [m["number"] for m in members] == [m["number"] for m in front(recs, objs)]


def test_asha_pruned_trials_are_recorded_and_pruned_in_optuna(local_ray, tmp_path):
    def sleepy(config: dict) -> None:
        """Three fake epochs whose accuracy follows the trial number: ASHA must prune the weak ones.
        (Defined here so that Ray pickles it by value: workers cannot import test modules.)"""
        from ray import tune

        acc = (config["number"] % 7) / 10
        for epoch in range(1, config["epochs"] + 1):
            time.sleep(0.2)
            tune.report({"val_accuracy": acc, "epoch": epoch, "final": epoch == config["epochs"],
                         "history": [{"epoch": e, "val_accuracy": acc, "train_loss": 1.0}
                                     for e in range(1, epoch + 1)]})

    space = _variant(tmp_path, proxy={"epochs": 3},
                     search={"scheduler": "asha", "grace_period": 1, "concurrency": 2, "trials": 10})
    s = run_search(SearchOptions(space=space, out=tmp_path, wandb="disabled"),
                   trainable=sleepy)
    recs = _records(s.study_dir)
    assert len([r for r in recs if not tier_rejected(r)]) == 10
    pruned = [r for r in recs if r["status"] == "pruned"]
    assert pruned, [(r["number"], r["status"], r["epochs"]) for r in recs]
    assert all(r["epochs"] < 3 and r["accuracy"] is not None for r in pruned)
    assert all(r["epochs"] == 3 for r in recs if r["status"] == "complete" and r["duplicate_of"] is None)
    states = {t.number: t.state for t in _storage_trials(s.study_dir, "tiny")}
    assert all(states[r["number"]] == TrialState.PRUNED for r in pruned)


def test_trials_on_local_ray_inherit_the_drivers_environment(local_ray, tmp_path, monkeypatch):
    """On the local Ray that nas starts, Tune's actors carry no runtime_env (so Ray can hand them its prestarted
    workers); the variables Tune would have given them still reach the trials, through the inherited environment,
    and trials keep the driver's working directory."""
    from ray.tune.execution.class_cache import _ActorClassCache

    from nas.search import tuning

    class Probe:
        pass

    with tuning._inherited_actor_env() as inherited:
        opts = _ActorClassCache().get(Probe)._default_options
    assert inherited and not (opts.get("runtime_env") or {}).get("env_vars"), opts
    with monkeypatch.context() as m:
        m.setattr(tuning, "_LOCAL", None)  # e.g. a joined cluster: Tune's own runtime_env is kept
        with tuning._inherited_actor_env() as inherited:
            opts = _ActorClassCache().get(Probe)._default_options
        assert not inherited and opts["runtime_env"]["env_vars"]["PL_DISABLE_FORK"] == "1"

    out = tmp_path / "seen"
    out.mkdir()

    def probe(config: dict) -> None:
        from ray import tune

        keys = ("PL_DISABLE_FORK", "RAY_CHDIR_TO_TRIAL_DIR")
        (out / f"{config['number']}.json").write_text(json.dumps(
            {"cwd": os.getcwd(), "env": {k: os.environ.get(k) for k in keys}}))
        tune.report({"val_accuracy": 0.5, "epoch": 1, "final": True})

    space = _variant(tmp_path, budgets={"macs": None, "params": None}, proxy={"epochs": 1})
    run_search(SearchOptions(space=space, trials=2, concurrency=2, out=tmp_path, wandb="disabled",
                             sampler="random"), trainable=probe)
    seen = [json.loads(p.read_text()) for p in out.iterdir()]
    assert seen and all(s["cwd"] == os.getcwd() for s in seen), seen
    assert all(s["env"] == {"PL_DISABLE_FORK": "1", "RAY_CHDIR_TO_TRIAL_DIR": "0"} for s in seen), seen


def test_asha_keeps_every_trials_last_epoch_and_weights(local_ray, tmp_path, monkeypatch):
    """ASHA stops every trial inside a report: the pruned ones at a rung, the others at max_t, on their last
    planned epoch. That epoch still reaches the record, the trial's W&B run and the Optuna storage, and a trial
    trained to its end leaves its weights."""
    import torch

    from nas.tracking import StudyTracker, offline_runs

    monkeypatch.delenv("WANDB_MODE", raising=False)
    space = _variant(tmp_path, proxy={"epochs": 2, "subsample": 400},
                     search={"scheduler": "asha", "grace_period": 1, "concurrency": 1, "trials": 3},
                     budgets={"macs": None, "params": None}, tracking={"wandb": "offline"})
    s = run_search(SearchOptions(space=space, out=tmp_path, sampler="random"), listeners=[StudyTracker()])
    recs = _records(s.study_dir)
    trained = [r for r in recs if r["epochs"] > 0 and r["duplicate_of"] is None]
    assert len(trained) == 3 and any(r["status"] == "complete" for r in trained), recs
    runs = {r["config"]["trial"]: r for r in offline_runs(s.study_dir) if r["job_type"] == "trial"}
    stored = {t.number: t for t in _storage_trials(s.study_dir)}
    for r in trained:
        assert [h["epoch"] for h in r["history"]] == list(range(1, r["epochs"] + 1))
        assert r["accuracy"] == r["history"][-1]["val_accuracy"]
        run = runs[r["number"]]
        assert [h["epoch"] for h in run["history"]] == [h["epoch"] for h in r["history"]]  # the last one too
        assert run["history"][-1]["val_accuracy"] == pytest.approx(r["accuracy"])
        assert run["summary"]["accuracy"] == pytest.approx(r["accuracy"])
        assert run["summary"]["best_accuracy"] == pytest.approx(max(h["val_accuracy"] for h in r["history"]))
        assert stored[r["number"]].intermediate_values == pytest.approx(
            {h["epoch"]: h["val_accuracy"] for h in r["history"]})
        weights = s.study_dir / "weights" / f"{r['number']}.pt"
        if r["status"] == "complete":  # trained to its last epoch: its proxy weights are kept for export
            assert r["epochs"] == 2
            state = torch.load(weights, weights_only=True)
            assert state and all(isinstance(v, torch.Tensor) for v in state.values())
        else:
            assert r["status"] == "pruned" and r["epochs"] == 1 and not weights.exists()


def test_the_optuna_storage_holds_epochs_costs_and_constraints(local_ray, tmp_path):
    """What optuna-dashboard reads back: every epoch of trained trials (pruned ones too) as intermediate values,
    costs and the architecture as user attributes, the budget excesses as the ``constraints`` list."""
    def steady(config: dict) -> None:
        from ray import tune

        acc = (config["number"] % 5) / 10
        for epoch in range(1, config["epochs"] + 1):
            tune.report({"val_accuracy": acc + epoch / 100, "epoch": epoch, "final": epoch == config["epochs"],
                         "history": [{"epoch": e, "val_accuracy": acc + e / 100, "train_loss": 1.0}
                                     for e in range(1, epoch + 1)]})

    # No family tiers: every proposal is a counted trial and the constraints are the two budgets.
    space_file = _variant(tmp_path, proxy={"epochs": 3}, family=None,
                          search={"scheduler": "asha", "grace_period": 1, "concurrency": 2, "trials": 12})
    s = run_search(SearchOptions(space=space_file, out=tmp_path, wandb="disabled", sampler="random"),
                   trainable=steady)
    recs = {r["number"]: r for r in _records(s.study_dir)}
    space = load_space(space_file)
    trials = _storage_trials(s.study_dir)
    assert len(trials) == 12 and {r["status"] for r in recs.values()} >= {"pruned", "complete", "infeasible"}
    for t in trials:
        r = recs[t.number]
        g = from_dict(r["genotype"])
        assert t.user_attrs == {"hash": r["hash"], "macs": r["macs"], "params": r["params"],
                                "latency_ms": r["latency_ms"], "arch": g.summary(), "status": r["status"],
                                "state": state_text(r)}
        assert t.system_attrs["constraints"] == pytest.approx([r["violations"]["macs"], r["violations"]["params"]])
        assert t.constraints == {"0": pytest.approx(r["violations"]["macs"]),
                                 "1": pytest.approx(r["violations"]["params"])}
        assert not any(k.startswith("constraints:") for k in t.system_attrs)  # one form: never counted twice
        expected = {h["epoch"]: h["val_accuracy"] for h in r["history"]} if r["duplicate_of"] is None else {}
        assert t.intermediate_values == pytest.approx(expected), (r["status"], r["number"])
        # PRUNED: trained and stopped early, or never trained (over budget): no values either way
        assert (t.state == TrialState.PRUNED) == (r["status"] in ("pruned", "infeasible"))
    assert any(recs[t.number]["status"] == "pruned" and len(t.intermediate_values) in (1, 2) for t in trials)
    assert budgets.violations(space, from_dict(recs[0]["genotype"]))["macs"] == pytest.approx(
        recs[0]["violations"]["macs"])


def test_records_carry_the_predictor_samplers_note():
    """With ``--sampler predictor`` every record carries the sampler's note on its proposal (source, and once a
    model has been fitted its predicted accuracy and its latest Kendall tau), as the trial's user attribute does."""
    from nas.search.predictor import ATTR, PredictorSampler

    space = load_space("tiny.yaml")
    space.family = {}
    objs = search_objectives(space, "train")
    sampler = PredictorSampler(space, objs, n_startup=3, batch_size=2, population=12, generations=3,
                               model="extra_trees", n_estimators=10, background=False)
    study = optuna.create_study(directions=[o["direction"] for o in objs], sampler=sampler)
    written: list[dict] = []
    p = Proposer(space, study, objectives=objs, target=12, records=[],
                 write=lambda r, durable=True: written.append(dict(r)), mirror=lambda t: None, planned_epochs=1)
    for _ in range(12):
        launch = p.next()
        if launch is None:
            break
        p.complete(launch.number, {"val_accuracy": (launch.number * 7 % 10) / 10, "epoch": 1, "final": True})
    assert written
    for r in written:
        assert r["predictor"] == study.trials[r["number"]].user_attrs[ATTR]
    sources = [r["predictor"]["source"] for r in written]
    assert "model" in sources and any("tau" in r["predictor"] for r in written), sources
    assert TrialRecord.from_dict(written[-1]).predictor == written[-1]["predictor"]  # the file round trip
