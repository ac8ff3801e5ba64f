"""One meaning per state (issues 25 and 28): trained, over budget, refused for its tier, failed, told the same way
to trials.jsonl, Optuna, the predictor sampler, the plots and the CLI, on a study with family tiers on (tiny.yaml,
as the main job's mixnet.yaml). The proposer runs without Ray; a stand-in trainer answers each launch at once."""

from __future__ import annotations

import json

import optuna
import pytest
from optuna.trial import TrialState

from nas.plots.panels import OVER_LABEL, REFUSED_LABEL, groups, title
from nas.results.record import STATE_WORDS, STATUSES, TrialRecord, state_text
from nas.search import budgets
from nas.search.predictor import measured_trials
from nas.search.samplers import make_sampler
from nas.search.searcher import Proposer, tier_rejected
from nas.search.settings import search_objectives
from nas.space import load_space


def _accuracy(record_macs: int) -> float:
    """The stand-in trainer's accuracy: larger networks a little better (a measurement nobody faked)."""
    return round(0.5 + 0.4 * record_macs / 1e6, 6)


def _search(space, sampler: str = "nsga2", target: int = 10, records=(), study=None, seed: int = 0):
    objs = search_objectives(space, "train")
    study = study or optuna.create_study(directions=[o["direction"] for o in objs],
                                         sampler=make_sampler(sampler, seed, target, space=space, objectives=objs))
    written: list[TrialRecord] = []
    p = Proposer(space, study, objectives=objs, target=target, records=list(records),
                 write=lambda r, durable=True: written.append(r), mirror=lambda t: None, planned_epochs=1, seed=seed)
    while (launch := p.next()) is not None:
        macs = budgets.target_cost(space, launch.genotype).macs
        p.complete(launch.number, {"val_accuracy": _accuracy(macs), "epoch": 1, "final": True,
                                   "history": [{"epoch": 1, "val_accuracy": _accuracy(macs), "train_loss": 1.0}]})
    return p, study, written


@pytest.fixture(scope="module")
def tiered():
    """A 10-trial NSGA-II search of tiny.yaml with its three family tiers and its budgets."""
    space = load_space("tiny.yaml")
    assert len(space.family) == 3
    p, study, written = _search(space)
    assert any(r.status == "refused" for r in written), "tiers on: some proposals are refused for their tier"
    return space, p, study, written


def test_every_record_has_one_of_the_four_states(tiered):
    space, p, study, written = tiered
    assert {r.status for r in written} <= set(STATUSES)
    for r in written:
        if r.status == "refused":
            assert r.violations["tier"] > 0 and all(v <= 0 for m, v in r.violations.items() if m != "tier")
            assert r.epochs == 0 and r.accuracy is None and tier_rejected(r)
            assert state_text(r).startswith("refused for its tier") and "over budget" not in state_text(r)
        elif r.status == "infeasible":
            assert any(v > 0 for m, v in r.violations.items() if m != "tier") and not tier_rejected(r)
            assert state_text(r).startswith("over budget (") and r.accuracy is None
        elif r.status == "complete":
            assert r.accuracy == _accuracy(r.macs) and state_text(r) == "trained"
    # the study holds `target` counted trials; refusals come on top
    assert len([r for r in written if not tier_rejected(r)]) == 10


def test_optuna_holds_no_fake_measurement(tiered):
    """A never-trained proposal is PRUNED with no values and its constraints (what TPE reads), never COMPLETE with
    accuracy 0; study.best_trials (optuna-dashboard's best trials) are trained trials with their real values."""
    space, p, study, written = tiered
    by_number = {r.number: r for r in written}
    trials = study.get_trials(deepcopy=False)
    assert len(trials) == len(written)
    for t in trials:
        r = by_number[t.number]
        assert t.user_attrs["state"] == state_text(r) and t.user_attrs["status"] == r.status
        if r.status in ("refused", "infeasible"):
            assert t.state == TrialState.PRUNED and t.values is None and not t.intermediate_values
            assert sum(v for v in t.constraints.values() if v > 0) > 0
        elif r.status == "complete":
            assert t.state == TrialState.COMPLETE and t.values == [r.accuracy, r.macs]
            assert all(v <= 0 for v in t.constraints.values())
    best = study.best_trials
    assert best and all(by_number[t.number].status == "complete" and t.values[0] > 0 for t in best)
    # the predictor sampler's labels: exactly the measured trials
    assert {t.number for t in measured_trials(study)} == {r.number for r in written if r.status == "complete"}


def test_a_refusal_never_answers_a_later_proposal_of_the_same_architecture(tiered):
    """Resumed with the records: an architecture that was refused is proposed again and trained (or refused
    again), never answered from the refusal; a real result wins (issue 25: de-duplication kept the fake zero)."""
    space, _, _, written = tiered
    refused = next(r for r in written if r.status == "refused")
    records = [r for r in written]
    objs = search_objectives(space, "train")
    study = optuna.create_study(directions=[o["direction"] for o in objs], sampler=optuna.samplers.RandomSampler(1))
    for _ in records:  # the resumed study's storage holds as many trials as the records
        study.tell(study.ask(), state=TrialState.FAIL)
    study.enqueue_trial(space.params_of(refused.to_genotype()))
    counted = len([r for r in records if not tier_rejected(r)])
    p, _, new = _search(space, records=records, study=study, target=counted + 1)
    again = next(r for r in new if r.hash == refused.hash)
    assert again.duplicate_of is None and again.status in ("complete", "refused")
    assert refused.hash not in p.done or p.done[refused.hash].status == "complete"


def test_a_record_written_before_the_refused_status_reads_as_refused(tiered):
    _, _, _, written = tiered
    refused = next(r for r in written if r.status == "refused")
    legacy = json.loads(json.dumps({**refused.to_dict(), "status": "infeasible"}))
    assert TrialRecord.from_dict(legacy).status == "refused"
    over = next((r for r in written if r.status == "infeasible"), None)
    if over is not None:
        assert TrialRecord.from_dict(json.loads(json.dumps(over.to_dict()))).status == "infeasible"


def test_plots_draw_a_refusal_as_refused_not_over_budget(tiered, tmp_path):
    space, _, _, written = tiered
    g = groups(written, [])
    assert {r.number for r in g.refused} == {r.number for r in written if r.status == "refused"}
    assert {r.number for r in g.infeasible} == {r.number for r in written if r.status == "infeasible"}
    assert all(r.violations.get("macs", 0) <= 0 and r.violations.get("params", 0) <= 0 for r in g.refused)
    text = title("tiny", written, g)
    assert f"{len(g.refused)} proposals refused for their tier" in text
    assert text.startswith(f"tiny: {len([r for r in written if not tier_rejected(r)])} trials")
    from nas.plots import figure_html

    fig = figure_html(written, study="tiny", budgets={"macs": 1e6})
    names = {t.name for t in fig.data}
    assert REFUSED_LABEL in names
    assert (OVER_LABEL in names) == bool(g.infeasible)
    refused_hovers = [x for t in fig.data if t.name == REFUSED_LABEL for x in t.text]
    assert refused_hovers and all("refused for its tier" in h and "over budget" not in h for h in refused_hovers)


def test_the_state_words_are_the_cli_words():
    from nas.cli.progress import Tally

    recs = [TrialRecord(number=i, hash=str(i), genotype={}, status=s, violations=v, epochs=e, accuracy=a)
            for i, (s, v, e, a) in enumerate([("complete", {}, 1, 0.5), ("infeasible", {"macs": 0.2}, 0, None),
                                              ("refused", {"tier": 0.1}, 0, None), ("pruned", {}, 1, 0.3)])]
    line = Tally(recs).line(0, 1, 0.5)
    assert "over budget 1" in line and "refused for their tier 1" in line and "trained 2 (1 pruned)" in line
    assert [state_text(r).split(" (")[0] for r in recs] == [STATE_WORDS[r.status] for r in recs]


def test_the_predictor_sampler_learns_only_from_measurements_with_tiers_on():
    """Issue 25: with tiers on, the predictor's model is fitted on trained trials only (no refusal, no over-budget
    proposal), and a study stored before (refusals COMPLETE with accuracy 0 and a tier constraint) gives no label."""
    space = load_space("tiny.yaml")
    objs = search_objectives(space, "train")
    sampler = make_sampler("predictor", 0, 16, space=space, objectives=objs)
    sampler.background = False
    sampler.n_startup, sampler.batch_size = 4, 2
    study = optuna.create_study(directions=[o["direction"] for o in objs], sampler=sampler)
    _, _, written = _search(space, target=16, study=study)
    by_number = {r.number: r for r in written}
    assert any(r.status == "refused" for r in written)
    fitted = {n for fit in sampler.fits for n in fit["numbers"]}
    assert fitted and all(by_number[n].status == "complete" and by_number[n].accuracy > 0 for n in fitted)

    # the old form of a refusal: COMPLETE, accuracy 0, a positive tier constraint -> not a label
    from nas.results.optuna_compat import set_constraints

    old = optuna.create_study(directions=["maximize", "minimize"])
    t = old.ask({"x": optuna.distributions.CategoricalDistribution([1])})
    set_constraints(old, t, [0.0, 0.0, 0.3])
    old.tell(t, [0.0, 1000.0])
    t = old.ask({"x": optuna.distributions.CategoricalDistribution([1])})
    set_constraints(old, t, [0.0, 0.0, 0.0])
    old.tell(t, [0.7, 1000.0])
    assert [t.number for t in measured_trials(old)] == [1]


def test_the_hypervolume_is_printed_with_its_reference_point(tmp_path):
    from _synth_study import make_study
    from typer.testing import CliRunner

    from nas.cli import app
    from nas.cli.tables import hypervolume_text

    objs = [{"metric": "accuracy", "direction": "maximize"}, {"metric": "macs", "direction": "minimize"}]
    assert hypervolume_text(0.3125, objs, [0.0, 1.8e6]) == (
        "hypervolume 0.3125 (reference point: accuracy 0, macs 1.8M; each axis divided by its nonzero reference "
        "value)")
    study = make_study(tmp_path, n=12)
    r = CliRunner().invoke(app, ["pareto", "--study", str(study)], env={"COLUMNS": "200"})
    assert r.exit_code == 0 and "(reference point: accuracy 0, macs 1.8M;" in r.output, r.output
