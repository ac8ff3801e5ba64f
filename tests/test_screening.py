"""Screening (issue 26): each trained trial is the best-scoring of K trainable proposals of its tier; the others are
recorded 'screened' (never trained, never a measurement); a score is never an accuracy. The proposer runs without
Ray, with a stand-in scorer whose values the test knows, and with the real training-free scorer once."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from nas.plots.panels import groups
from nas.results.front import front
from nas.results.record import TrialRecord, state_text
from nas.scores.registry import Result
from nas.search import budgets
from nas.search.samplers import make_sampler
from nas.search.searcher import Proposer
from nas.search.settings import search_objectives
from nas.space import load_space


class MacsScorer:
    """A stand-in scorer: the score of a network is its MACs (so the test knows which candidate must win)."""

    def __init__(self, space):
        self.space, self.calls = space, 0

    def scores(self, g, names):
        self.calls += 1
        v = float(budgets.target_cost(self.space, g).macs)
        return {n: Result(n, v, (v,), 0.0) for n in names}


def _search(space, screen: int, scorer=None, target: int = 6, score: str = "macs"):
    objs = search_objectives(space, "train")
    study = optuna.create_study(directions=[o["direction"] for o in objs],
                                sampler=make_sampler("random", 0, target, space=space, objectives=objs))
    written: list[TrialRecord] = []
    launched = []
    p = Proposer(space, study, objectives=objs, target=target, records=[], write=lambda r, durable=True:
                 written.append(r), mirror=lambda t: None, planned_epochs=1, seed=0, screen=screen,
                 screen_score=score, scorer=scorer)
    while (launch := p.next()) is not None:
        launched.append(launch)
        p.complete(launch.number, {"val_accuracy": 0.9, "epoch": 1, "final": True,
                                   "history": [{"epoch": 1, "val_accuracy": 0.9, "train_loss": 1.0}]})
    return p, study, written, launched


@pytest.fixture(scope="module")
def screened():
    space = load_space("tiny.yaml")
    scorer = MacsScorer(space)
    return (space, scorer, *_search(space, screen=4, scorer=scorer))


def test_each_trained_trial_is_the_highest_scoring_of_its_candidates(screened):
    space, scorer, p, study, written, launched = screened
    trained = [r for r in written if r.status == "complete" and r.duplicate_of is None]
    assert len(trained) == len(launched) >= 1
    for r in trained:
        pool = [x for x in written if x.screen and x.screen.get("chosen") == r.number and x.number != r.number
                and not x.screen.get("duplicate")]
        assert r.screen["candidates"] == 4 and len(pool) == 3  # the three screened out, plus the chosen one
        assert all(x.tier == r.tier for x in pool)  # candidates of one tier
        assert r.screen["value"] == max(x.screen["value"] for x in [r, *pool]) == r.macs
    assert p.pools.n_scored == 4 * len(trained) and scorer.calls == p.pools.n_scored


def test_a_screened_proposal_is_never_a_measurement(screened):
    space, scorer, p, study, written, launched = screened
    out = [r for r in written if r.status == "screened"]
    assert out
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    for r in out:
        assert r.accuracy is None and r.epochs == 0 and not r.trained
        assert state_text(r).startswith("screened out")
        assert trials[r.number].state == TrialState.PRUNED and trials[r.number].values is None
    assert {t.number for t in study.best_trials} <= {r.number for r in written if r.status == "complete"}
    assert not {r.number for r in out} & {r["number"] for r in front(written, search_objectives(space, "train"))}
    g = groups([r.to_dict() for r in written], [])
    drawn = {r["number"] for part in (g.trained, g.pruned, g.infeasible, g.refused) for r in part}
    assert not drawn & {r.number for r in out}
    # not counted among the study's trials: when screening, the study's trials are the trained ones
    assert p.n_finished == len([r for r in written if r.status not in ("screened", "refused", "infeasible")])


def test_the_real_scorer_screens_a_search(tmp_path):
    space = load_space("tiny.yaml")
    p, study, written, launched = _search(space, screen=3, target=2, score="naswot")
    chosen = [r for r in written if r.status == "complete"]
    assert chosen and all(r.screen["score"] == "naswot" and r.screen["candidates"] == 3 for r in chosen)
    assert all(r.accuracy == 0.9 for r in chosen)  # the accuracy is the trained one, the score stays apart


def test_an_unknown_screen_score_is_one_line(tmp_path):
    from nas.errors import InputError
    from nas.search.settings import SearchOptions, prepare

    space = tmp_path / "s.yaml"
    from pathlib import Path

    text = Path(load_space("tiny.yaml").source).read_text()
    space.write_text(text.replace("search: {", "search: {screen: 4, screen_score: nope, "))
    with pytest.raises(InputError, match="search.screen_score"):
        prepare(SearchOptions(space=space, out=tmp_path / "r"))


def test_a_score_search_records_a_score_never_an_accuracy(tmp_path, monkeypatch, capsys):
    """proxy: {kind: score}: the objective is the score, in trials.jsonl as ``score``, in Optuna as the value of
    the objective named score; no accuracy anywhere, nothing drawn as accuracy."""
    import json

    from nas.results.store import read_records
    from tests._cli import run_cli

    root = Path(__file__).resolve().parents[1]
    space = tmp_path / "s.yaml"
    space.write_text((root / "search_spaces" / "nasbench_macro.yaml").read_text().replace(
        "proxy: {kind: table, table: nas-bench-macro}", "proxy: {kind: score, score: synflow}"))
    code, out, err = run_cli(monkeypatch, capsys, "search", "--space", str(space), "--trials", "3", "--out",
                             str(tmp_path / "r"), "--wandb", "disabled")
    assert code == 0, err
    assert "scored without training" in out
    records = read_records(tmp_path / "r" / "nasbench_macro" / "trials.jsonl")
    done = [r for r in records if r.duplicate_of is None]
    assert done and all(r.accuracy is None and r.score is not None and r.evaluator.startswith("score:synflow")
                        for r in done)
    assert not groups([r.to_dict() for r in records], []).trained  # nothing plotted as an accuracy
    study = optuna.load_study(study_name="nasbench_macro",
                              storage=f"sqlite:///{tmp_path / 'r' / 'nasbench_macro' / 'study.db'}")
    assert study.metric_names[0] == "score"
    for t in study.get_trials(states=(TrialState.COMPLETE,)):
        assert t.values[0] == pytest.approx(next(r.score for r in records if r.number == t.number))
    pareto = json.loads((tmp_path / "r" / "nasbench_macro" / "pareto.json").read_text())
    assert pareto["objectives"][0]["metric"] == "score"


class SkewedLatency:
    """A latency predictor whose figure is far from the search's per-MAC estimate for every other network: such
    a candidate, estimated in one tier, is timed in another."""

    def __init__(self, space):
        self.space, self.timed = space, []

    def cached(self, g):
        return None

    def __call__(self, g):
        self.timed.append(g.hash)
        macs = budgets.target_cost(self.space, g).macs
        return macs / 1e5 + (4.0 if int(g.hash[:2], 16) % 2 else 0.0)


def test_a_candidate_timed_outside_its_tier_is_not_trained_for_it(tmp_path):
    text = Path(load_space("tiny.yaml").source).read_text()
    text = text.replace("budgets: {macs: 1M, params: 60k}",
                        "budgets: {macs: 1M, params: 60k, latency_ms: 14, target: torch-cpu}")
    text = text.replace("s: {macs: 500k}", "s: {latency_ms: 6}").replace("m: {macs: 750k}", "m: {latency_ms: 9}")
    text = text.replace("l: {macs: 1M}", "l: {latency_ms: 14}")
    (tmp_path / "lat.yaml").write_text(text)
    space = load_space(tmp_path / "lat.yaml")
    objs = search_objectives(space, "train")
    study = optuna.create_study(directions=[o["direction"] for o in objs],
                                sampler=make_sampler("random", 0, 6, space=space, objectives=objs))
    written: list[TrialRecord] = []
    lat = SkewedLatency(space)
    p = Proposer(space, study, objectives=objs, target=6, records=[], write=lambda r, durable=True: written.append(r),
                 mirror=lambda t: None, planned_epochs=1, seed=0, screen=4, screen_score="macs",
                 scorer=MacsScorer(space), latency_fn=lat)
    while (launch := p.next()) is not None:
        p.complete(launch.number, {"val_accuracy": 0.9, "epoch": 1, "final": True,
                                   "history": [{"epoch": 1, "val_accuracy": 0.9, "train_loss": 1.0}]})
    moved = [r for r in written if (r.screen or {}).get("moved")]
    assert moved, "the skewed predictor should move some timed candidate out of its pool's tier"
    for r in moved:
        assert r.status == "screened" and r.tier != r.screen["pool_tier"] and r.latency_ms is not None
        assert "falls in tier" in state_text(r)
    trained = [r for r in written if r.status == "complete" and r.screen]
    assert trained
    for r in trained:
        mates = [x for x in written if (x.screen or {}).get("chosen") == r.number and x.number != r.number]
        assert all(x.tier == r.tier for x in mates)  # trained for the tier whose pool it won
        assert r.latency_ms == lat(r.to_genotype())  # timed, not estimated
        # every better-scoring candidate of its pool was tried and turned out outside the tier or the budget
        better = [x for x in written if x.screen and x.screen.get("value", -1) > r.screen["value"]
                  and (x.screen.get("chosen") == r.number)]
        assert not better
