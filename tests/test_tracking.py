"""W&B tracking (offline, read back from disk) and the front history."""

from __future__ import annotations

import logging

import pytest
from _synth_study import make_study

from nas import tracking
from nas.errors import OptionError
from nas.genotype import from_dict
from nas.results.front import front, front_history, hypervolume
from nas.results.store import study_records
from nas.space import load_space

OBJ = [{"metric": "accuracy", "direction": "maximize"}, {"metric": "macs", "direction": "minimize"}]


def _replay(tracker, records):
    """What the driver does: start, report epochs, finish, for every trial in finishing order."""
    for r in records:
        if r["status"] in ("complete", "pruned"):
            tracker.trial_started(r["number"], from_dict(r["genotype"]))
            for h in r["history"]:
                tracker.trial_epoch(r["number"], h["epoch"], {k: v for k, v in h.items() if k != "epoch"})
        tracker.trial_finished(r)
    tracker.close()


@pytest.fixture()
def study(tmp_path):
    d = make_study(tmp_path, n=10, seed=4, macs_budget=1.2e6)  # some over budget: no W&B run for them
    return d, study_records(d), load_space(d / "space.yaml")


def test_front_history_rises_to_the_final_hypervolume(study):
    _, records, _ = study
    ref = [0.0, 1.8e6]
    hist = front_history(records, OBJ, ref)
    assert [h["number"] for h in hist] == [r["number"] for r in records]
    hvs = [h["hypervolume"] for h in hist]
    assert all(b >= a for a, b in zip(hvs, hvs[1:], strict=False))
    assert hvs[-1] == pytest.approx(hypervolume(records, OBJ, ref)) and hvs[-1] > 0
    for i, h in enumerate(hist):  # each entry is the hypervolume of the trials finished so far
        assert h["hypervolume"] == pytest.approx(hypervolume(records[: i + 1], OBJ, ref))
        assert h["front_size"] == len(front(records[: i + 1], OBJ))


def test_offline_study_run_holds_the_pareto_table(study, monkeypatch):
    d, records, space = study
    monkeypatch.setenv("WANDB_API_KEY", "0123456789abcdef0123456789abcdef01234567")
    monkeypatch.delenv("WANDB_MODE", raising=False)
    (d / "trials.jsonl").unlink()  # the tracker sees the trials as they finish, as in a search
    tracker = tracking.StudyTracker(d, space, "offline")
    _replay(tracker, records)
    runs = tracking.offline_runs(d)
    trial_runs = [r for r in runs if r["job_type"] == "trial"]
    study_runs = [r for r in runs if r["job_type"] == "study"]
    # a run per trained trial; a proposal never trained has its row in the study's table and no run
    assert any(r["status"] == "infeasible" for r in records)
    assert sorted(r["config"]["trial"] for r in trial_runs) == sorted(
        r["number"] for r in records if r["status"] in ("complete", "pruned")) and len(study_runs) == 1
    st = study_runs[0]
    table = tracking.read_table(st, "pareto_front")
    want = front(records, space.objectives)
    assert sorted(row[0] for row in table["data"]) == sorted(r["number"] for r in want)
    assert table["columns"][:5] == ["number", "hash", "status", "on_front", "accuracy"]
    trials = tracking.read_table(st, "trials")
    assert len(trials["data"]) == len(records)
    assert st["summary"]["front"] == [r["number"] for r in want]
    assert st["summary"]["hypervolume"] == pytest.approx(hypervolume(records, space.objectives, [0.0, 1.8e6]))
    assert "charts/accuracy_vs_macs_table" in st["summary"] and "hypervolume_history" in st["summary"]
    # Every trial on the study run's scatter (its table is the trials table), the front highlighted in the
    # two-panel chart, the config says what the study is (the space's name, not a local path), tags
    scatter = tracking.read_table(st, "charts/accuracy_vs_macs_table")
    assert len(scatter["data"]) == len(records) and scatter["columns"] == trials["columns"]
    chart = tracking.read_table(st, "charts/pareto")
    names = {t.get("name") for t in chart["data"]}
    assert {"Pareto front", "trial"} <= names
    drawn = {f"hash {r['hash']}" for t in chart["data"] for text in (t.get("text") or []) for r in records
             if f"hash {r['hash']}" in str(text)}
    assert drawn == {f"hash {r['hash']}" for r in records if r["accuracy"] is not None or r["status"] == "infeasible"}
    page = tracking.media_file(st, "pareto_html").read_text()
    assert "Pareto front" in page and "cdn.plot.ly" in page and len(page) < 500_000
    assert tracking.media_file(st, "pareto_png").stat().st_size > 10_000
    cfg = st["config"]
    assert cfg["space"] == space.name and cfg["space_file"] == "space.yaml" and "/" not in str(cfg["space_file"])
    assert (cfg["sampler"], cfg["seed"], cfg["scheduler"]) == (space.search.sampler, space.search.seed,
                                                               space.search.scheduler)
    assert cfg["proxy"]["epochs"] == space.proxy.epochs and cfg["proxy"]["resolution"] == space.proxy.resolution
    assert cfg["target"]["resolution"] == space.target.resolution
    assert st["tags"] == [space.name, space.search.sampler, space.search.scheduler, "train"]
    assert all(r["tags"] == st["tags"] for r in trial_runs)
    # One trial run: hash, architecture, tier and proxy recipe in its config (the genotype one nested value, not
    # a key per field), per-epoch metrics, costs in the summary.
    rec = next(r for r in records if r["status"] == "complete")
    run = next(r for r in trial_runs if r["config"]["trial"] == rec["number"])
    g = from_dict(rec["genotype"])
    assert run["config"]["hash"] == g.hash and run["config"]["arch"] == g.summary()
    assert run["config"]["proxy"]["epochs"] == space.proxy.epochs and "tier" in run["config"]
    assert from_dict(run["config"]["genotype"]).hash == g.hash and len(run["config"]) < 20
    assert run["summary"]["state"] == "trained"
    over = [r for r in tracking.read_table(st, "trials")["data"] if r[2] == "infeasible"]
    assert over and all(row[-1].startswith("over budget (macs +") for row in over)
    assert [h["val_accuracy"] for h in run["history"] if "val_accuracy" in h] == \
        [h["val_accuracy"] for h in rec["history"]]
    assert run["summary"]["macs"] == rec["macs"] and run["summary"]["status"] == "complete"
    assert (d / "pareto.html").exists() and (d / "pareto.png").exists()
    for p in d.rglob("*"):  # the key W&B may have in the environment never lands in the results
        if p.is_file():
            assert b"0123456789abcdef0123456789abcdef" not in p.read_bytes(), p


def test_tracking_failure_never_stops_the_search(study, monkeypatch, caplog):
    d, records, space = study
    import wandb

    calls = []

    def broken_init(*a, **k):
        calls.append(1)
        raise RuntimeError("no W&B today")

    monkeypatch.setattr(wandb, "init", broken_init)
    tracker = tracking.StudyTracker(d, space, "offline")
    with caplog.at_level(logging.WARNING, logger="nas.tracking"):
        _replay(tracker, records)
    warnings = [r for r in caplog.records if "W&B tracking failed" in r.getMessage()]
    assert len(warnings) == 1 and len(calls) == 1  # logged once, then switched off
    assert (d / "pareto.png").exists()


def test_disabled_mode_writes_only_plots(study, monkeypatch):
    d, records, space = study
    monkeypatch.delenv("WANDB_MODE", raising=False)
    tracker = tracking.StudyTracker(d, space, "disabled")
    _replay(tracker, records)
    assert not (d / "wandb").exists()
    assert (d / "pareto.html").exists() and (d / "pareto.png").exists()


def test_mode_resolution(study, monkeypatch):
    _, _, space = study
    monkeypatch.delenv("WANDB_MODE", raising=False)
    assert tracking.resolve_mode(None, space) == "offline"  # the space's tracking.wandb
    assert tracking.resolve_mode("online", space) == "online"
    with pytest.raises(OptionError, match="^wandb: 'sometimes' is not one of") as e:
        tracking.resolve_mode("sometimes", None)
    assert e.value.field == "wandb"
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert tracking.resolve_mode("online", space) == "disabled"
