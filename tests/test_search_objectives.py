"""Searches over family tiers (spreading), MnasNet's reward as the objective, latency on every record."""

from __future__ import annotations

import json
import math
from pathlib import Path

import optuna
import pytest
import yaml
from _cli import run_cli

from nas.results.front import front, hypervolume, objective_spec, objective_values, reward
from nas.results.store import study_records
from nas.search.driver import SearchOptions, run_search
from nas.search.samplers import make_sampler
from nas.search.searcher import Proposer, constraint_metrics, tier_rejected
from nas.search.settings import search_objectives
from nas.search.spread import TIER, Band, TierSpread, bands, tier_of
from nas.space import find_space_file, load_space


def _tiny(tmp_path: Path, **changes) -> Path:
    data = yaml.safe_load(find_space_file("tiny.yaml").read_text())
    data.update(changes)
    p = tmp_path / "tiny.yaml"
    p.write_text(yaml.safe_dump(data))
    return p


# -- tiers and their bands ------------------------------------------------------------------------------------


def test_a_band_lies_between_the_previous_tiers_limits_and_its_own():
    tiers = bands(load_space("tiny.yaml"))  # s: 500k, m: 750k, l: 1M MACs
    assert [(b.name, b.limits, b.below) for b in tiers] == [
        ("s", {"macs": 5e5}, {}), ("m", {"macs": 7.5e5}, {"macs": 5e5}), ("l", {"macs": 1e6}, {"macs": 7.5e5})]
    assert [tier_of({"macs": m}, tiers) for m in (1e5, 5e5, 5e5 + 1, 8e5, 1e6, 1e6 + 1)] == \
        ["s", "s", "m", "l", "l", None]
    m = tiers[1]
    assert m.distance({"macs": 6e5}) == 0 and m.distance({"macs": 9e5}) == pytest.approx(0.2)
    assert m.distance({"macs": 4e5}) == pytest.approx(0.2)  # under s's limit: 20% short of leaving it
    two = Band("m", {"macs": 7.5e5, "latency_ms": 20.0}, {"macs": 5e5, "latency_ms": 10.0})
    assert two.contains({"macs": 4e5, "latency_ms": 15.0})  # over one of s's limits is enough
    assert not two.contains({"macs": 4e5, "latency_ms": 9.0}) and not two.contains({"macs": 4e5})


def test_by_need_a_tier_ahead_of_the_others_is_refused_until_the_allowance_runs_out():
    spread = TierSpread(bands(load_space("tiny.yaml")), allowance=2)
    assert spread.rejection({"macs": 4e5}) == 0  # nothing trained yet: every tier is needed
    spread.count("s", +1)
    assert spread.rejection({"macs": 4e5}) > 0 and spread.rejection({"macs": 6e5}) == 0
    assert spread.rejection({"macs": 2e6}) > 0  # above every tier: never needed
    spread.allowance = 0
    assert spread.rejection({"macs": 4e5}) == 0


def test_the_proposer_spreads_trials_over_tiers_and_does_not_count_its_refusals():
    space = load_space("tiny.yaml")
    objs = search_objectives(space, "train")
    study = optuna.create_study(directions=[o["direction"] for o in objs], sampler=make_sampler("random", 0, 6))
    written: list = []
    p = Proposer(space, study, objectives=objs, target=6, records=[], write=lambda r, durable=True: written.append(r),
                 mirror=lambda t: None, planned_epochs=1)
    while (launch := p.next()) is not None:
        p.complete(launch.number, {"val_accuracy": 0.5, "epoch": 1, "final": True})
    trained = [r for r in written if r.trained]
    refused = [r for r in written if tier_rejected(r)]
    assert len(written) - len(refused) == 6 and p.exhausted and refused
    assert {r.tier for r in trained} == {"s", "m", "l"}
    trials = study.get_trials(deepcopy=False)
    tier = constraint_metrics(space).index(TIER)  # constraints are stored as a list, in this order

    def tier_constraint(r):
        values = trials[r.number].constraints  # Optuna 5 reads the list back as {"0": ..., "1": ...}
        return list(values.values())[tier] if isinstance(values, dict) else values[tier]

    for r in refused:
        assert r.status == "refused" and r.epochs == 0
        assert tier_constraint(r) == pytest.approx(r.violations[TIER]) and r.violations[TIER] > 0
    assert all(tier_constraint(r) == 0 for r in trained)
    assert all(r.tier == tier_of({"macs": r.macs}, bands(space)) for r in written)


# -- MnasNet's reward -----------------------------------------------------------------------------------------


def test_reward_values_fronts_and_hypervolume():
    objs = objective_spec([{"metric": "reward", "cost": "latency_ms", "target": 80}])
    assert objs == [{"metric": "reward", "direction": "maximize", "cost": "latency_ms", "target": 80.0, "w": -0.07}]
    assert reward(0.75, 80, 80) == 0.75 and reward(0.75, 160, 80) == pytest.approx(0.75 * 2 ** -0.07)
    assert math.isnan(reward(None, 80, 80)) and math.isnan(reward(0.7, None, 80))
    recs = [{"number": i, "hash": str(i), "status": "complete", "accuracy": a, "latency_ms": lat, "violations": {}}
            for i, (a, lat) in enumerate([(0.70, 40.0), (0.74, 80.0), (0.76, 200.0)])]
    vals = [objective_values(r, objs)[0] for r in recs]
    best = max(range(3), key=vals.__getitem__)
    assert [r["number"] for r in front(recs, objs)] == [best]  # one objective: the front is the best reward
    assert hypervolume(recs, objs, [0.0]) == pytest.approx(vals[best])


@pytest.mark.parametrize(("objective", "problem"), [
    ({"metric": "reward", "cost": "macs"}, r"objectives\[0\]: a reward needs cost and target"),
    ({"metric": "macs", "w": -0.1}, r"objectives\[0\]: cost, target and w belong to a reward objective"),
    ({"metric": "reward", "cost": "macs", "target": "1M", "w": 0.5}, r"objectives\[0\]\.w: must be in \[-1, 0\]"),
    ({"metric": "reward", "cost": "macs", "target": "1M", "direction": "minimize"},
     r"objectives\[0\]\.direction: reward can only be maximized"),
])
def test_a_bad_reward_objective_is_one_line_naming_the_field(tmp_path, objective, problem):
    from nas.errors import InputError

    with pytest.raises(InputError, match=problem):
        load_space(_tiny(tmp_path, objectives=[objective]))
    latency_reward = [{"metric": "reward", "cost": "latency_ms", "target": 80}]
    with pytest.raises(InputError, match=r"budgets\.target: latency_ms is used but no latency target"):
        load_space(_tiny(tmp_path, objectives=latency_reward))
    space = load_space(_tiny(tmp_path, objectives=latency_reward, budgets={"target": "torch-cpu"}))
    assert objective_spec(space.objectives)[0]["w"] == -0.07


def _trainer():
    """One fake epoch whose accuracy grows with the network's MACs, so a reward has a trade-off to make.
    (A closure: Ray pickles it by value, workers cannot import test modules.)"""
    def train(config: dict) -> None:
        from ray import tune

        from nas.cost.macs import count
        from nas.genotype import from_dict

        acc = min(0.99, 0.3 + count(from_dict(config["genotype"])).macs / 2e6)
        tune.report({"val_accuracy": acc, "best_accuracy": acc, "epoch": config["epochs"], "final": True,
                     "train_loss": 1.0, "history": [{"epoch": 1, "val_accuracy": acc, "train_loss": 1.0}]})
    return train


def test_a_tpe_search_on_one_reward_objective(local_ray, tmp_path, monkeypatch, capsys):
    space = _tiny(tmp_path, objectives=[{"metric": "reward", "cost": "macs", "target": "600k", "w": -0.5}],
                  family={})
    s = run_search(SearchOptions(space=space, trials=6, concurrency=2, sampler="tpe", out=tmp_path,
                                 wandb="disabled"), trainable=_trainer())
    recs = study_records(s.study_dir)
    assert len(recs) == 6 and all(r.accuracy is not None and r.macs for r in recs if r.status == "complete")
    objs = s.objectives
    assert [o["metric"] for o in objs] == ["reward"]
    rewards = {r.number: objective_values(r, objs)[0] for r in recs if r.status == "complete"}
    best = max(rewards.values())
    assert [objective_values(m, objs)[0] for m in s.front] == [best] and s.hypervolume == pytest.approx(best)
    storage = optuna.load_study(study_name="tiny", storage=f"sqlite:///{s.study_dir / 'study.db'}")
    for t in storage.get_trials():
        if t.number in rewards:
            assert t.values == [pytest.approx(rewards[t.number])]
    doc = json.loads((s.study_dir / "pareto.json").read_text())
    assert doc["objectives"] == objs and doc["hypervolume"] == pytest.approx(best)
    code, out, _ = run_cli(monkeypatch, capsys, "pareto", "--study", str(s.study_dir))
    assert code == 0 and "reward" in out and f"{best:.4f}" in out


def test_a_search_over_tiers_trains_each_tier_and_costs_latency_for_every_trial(local_ray, tmp_path, monkeypatch):
    """tiny.yaml's three MACs tiers (s <= 500k, m <= 750k, l <= 1M), a latency budget timed on demand."""
    monkeypatch.setenv("NAS_CACHE_DIR", str(tmp_path / "cache"))
    data = yaml.safe_load(find_space_file("tiny.yaml").read_text())
    space = _tiny(tmp_path, budgets={**data["budgets"], "latency_ms": 1000.0, "target": "torch-cpu"})
    s = run_search(SearchOptions(space=space, trials=6, concurrency=2, out=tmp_path, wandb="disabled"),
                   trainable=_trainer())
    recs = study_records(s.study_dir)
    counted = [r for r in recs if not tier_rejected(r)]
    assert len(counted) == 6
    assert all(r.latency_ms is not None and r.latency_ms > 0 for r in recs)
    assert all(m["latency_ms"] > 0 for m in s.front)
    trained = {r.tier for r in recs if r.trained and r.status == "complete"}
    assert trained == {"s", "m", "l"}, [(r.number, r.tier, r.status) for r in recs]
    assert s.latency_timing.parts > 0 and s.latency_timing.seconds > 0


# -- timing latency with the local trials paused -------------------------------------------------------------


def _state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]


def test_local_ray_workers_are_paused_while_parts_are_timed_and_continued_after():
    import subprocess
    import time

    from nas.search.quiet import local_trial_processes, trials_paused

    worker = subprocess.Popen(["bash", "-c", "exec -a ray::ImplicitFunc.train sleep 60"])
    agent = subprocess.Popen(["bash", "-c", "exec -a ray::DashboardAgent sleep 60"])
    try:
        for _ in range(100):  # until exec has renamed them
            if local_trial_processes() == [worker.pid]:
                break
            time.sleep(0.05)
        assert local_trial_processes() == [worker.pid]
        with pytest.raises(RuntimeError), trials_paused():
            assert _state(worker.pid) == "T" and _state(agent.pid) != "T"
            raise RuntimeError("a timing that fails")
        assert _state(worker.pid) != "T"  # continued, also after the failure
    finally:
        worker.kill()
        agent.kill()
