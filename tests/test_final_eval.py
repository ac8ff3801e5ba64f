"""The final evaluation on the test split: Welch verdicts, resumable runs, the test split kept away from the
choice of members, and what family.md / family.json / baselines.json say."""

from __future__ import annotations

import dataclasses
import json
import warnings

import pytest
from _synth_study import make_study
from scipy.stats import ttest_ind
from typer.testing import CliRunner

from nas import data, export
from nas.cli import app
from nas.export import LEDGER, FinalEval, eval_seeds, run_final, welch
from nas.export.significance import BETTER, SAME, UNTESTED, WORSE
from nas.results.store import write_baselines
from nas.space import load_space
from nas.train import TrainConfig

pytestmark = pytest.mark.usefixtures("one_thread")


# -- Welch's t-test ---------------------------------------------------------------------------------------------

def test_welch_verdicts_on_hand_made_accuracies():
    member = [0.90, 0.91, 0.92]
    better = welch(member, [0.80, 0.81, 0.82])
    assert better.word == BETTER and better.p_value < 0.05 and better.diff == pytest.approx(0.10)
    worse = welch(member, [0.95, 0.96, 0.97])
    assert worse.word == WORSE and worse.p_value < 0.05 and worse.diff < 0
    assert welch(member, list(member)) == welch(member, [0.92, 0.90, 0.91])
    assert welch(member, list(member)).word == SAME and welch(member, list(member)).p_value == pytest.approx(1.0)
    noisy = welch(member, [0.85, 0.91, 0.97])  # a difference of 0 within a spread of 6 points
    assert noisy.word == SAME and noisy.p_value > 0.5
    assert welch([0.9], [0.1, 0.2]).word == UNTESTED and welch([0.9], [0.1, 0.2]).p_value is None


def test_welch_is_scipys_unequal_variance_test_and_handles_seeds_without_spread():
    a, b = [0.70, 0.72, 0.74, 0.76], [0.60, 0.70, 0.80]
    v = welch(a, b)
    assert v.p_value == pytest.approx(ttest_ind(a, b, equal_var=False).pvalue)
    assert v.p_value != pytest.approx(ttest_ind(a, b, equal_var=True).pvalue)  # not Student's
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # scipy's precision warnings stay inside
        assert welch([0.9] * 3, [0.9] * 3).word == SAME and welch([0.9] * 3, [0.9] * 3).p_value == 1.0
        assert welch([0.9] * 3, [0.8] * 3).word == BETTER and welch([0.9] * 3, [0.8] * 3).p_value == 0.0
        assert welch([0.9] * 3, [0.80, 0.81, 0.82]).word == BETTER


# -- runs, the ledger, resuming ---------------------------------------------------------------------------------

RECIPE = TrainConfig(resolution=8, epochs=1, subsample=64)


class Fake:
    """A trainer that returns made-up accuracies and remembers what it was asked to train."""

    def __init__(self, fail_after: int | None = None):
        self.calls: list[tuple[str, int]] = []
        self.fail_after = fail_after

    def __call__(self, genotype, config):
        if self.fail_after is not None and len(self.calls) == self.fail_after:
            raise KeyboardInterrupt  # the user stops the evaluation
        self.calls.append((genotype.hash, config.seed))
        return 0.5 + config.seed / 100, 0.6, 1.0


def test_eval_seeds_are_not_the_search_seed():
    assert eval_seeds(TrainConfig(seed=5), 3) == [6, 7, 8]


def test_run_final_resumes_and_never_trains_a_run_twice(tmp_path):
    space = load_space("tiny.yaml")
    ga, gb = space.sample(0), space.sample(1)
    models = [("a", ga), ("b", gb), ("a again", ga.replace(name="other"))]  # one network under two names
    ledger = tmp_path / "study" / LEDGER
    fake = Fake(fail_after=3)
    with pytest.raises(KeyboardInterrupt):
        run_final(models, RECIPE, [1, 2], ledger, FinalEval(train_fn=fake))
    assert fake.calls == [(ga.hash, 1), (gb.hash, 1), (ga.hash, 2)]  # seed-major, one run per network and seed
    assert len(ledger.read_text().splitlines()) == 3

    fake, events = Fake(), []
    runs = run_final(models, RECIPE, [1, 2], ledger, FinalEval(train_fn=fake, progress=events.append))
    assert fake.calls == [(gb.hash, 2)]  # only what the interrupted evaluation left
    assert (events[0].done, events[0].total, events[0].reused, events[0].name) == (0, 1, 3, None)
    assert events[-1].name == "b" and events[-1].seed == 2 and events[-1].test_accuracy == pytest.approx(0.52)
    assert runs["a"] == runs["a again"] and [r.seed for r in runs["b"]] == [1, 2]
    assert [r.test_accuracy for r in runs["b"]] == pytest.approx([0.51, 0.52])

    # A crash cut the last line short: that run alone is trained again, and the note says so.
    ledger.write_text(ledger.read_text()[:-20])
    fake, events = Fake(), []
    run_final(models, RECIPE, [1, 2], ledger, FinalEval(train_fn=fake, progress=events.append))
    assert fake.calls == [(gb.hash, 2)] and "cut short" in events[0].notes[0]

    fake = Fake()
    run_final(models, RECIPE, [1, 2], ledger, FinalEval(train_fn=fake))
    assert fake.calls == []  # all done
    run_final(models, RECIPE, [1, 2, 3], ledger, FinalEval(train_fn=fake))
    assert fake.calls == [(ga.hash, 3), (gb.hash, 3)]  # another seed: its runs only
    fake = Fake()
    run_final(models, dataclasses.replace(RECIPE, epochs=2), [1], ledger, FinalEval(train_fn=fake))
    assert len(fake.calls) == 2  # another recipe is another run
    fake = Fake()
    run_final(models, dataclasses.replace(RECIPE, device="cpu"), [1], ledger, FinalEval(train_fn=fake))
    assert fake.calls == []  # the device is not part of the recipe


# -- the family's evaluation ------------------------------------------------------------------------------------

def test_the_test_split_is_loaded_only_by_the_evaluation_never_to_choose_members(tmp_path, monkeypatch):
    study = make_study(tmp_path, n=24)
    loads, phase = [], ["choice"]
    real_load = data.load

    def spy_load(*args, **kwargs):
        loads.append((phase[0], bool(kwargs.get("test"))))
        return real_load(*args, **kwargs)

    def progress(event):
        phase[0] = "evaluation"

    monkeypatch.setattr(data, "load", spy_load)
    chosen = json.loads((export.export_family(study, tmp_path / "plain", measure=False) / "family.json").read_text())
    assert loads == []  # choosing and exporting the members reads no image at all
    out = export.export_family(study, tmp_path / "fam", measure=False,
                               final=FinalEval(seeds=2, progress=progress))
    fam = json.loads((out / "family.json").read_text())
    assert [m["hash"] for m in fam["members"]] == [m["hash"] for m in chosen["members"]]  # the same choice
    assert loads and all(p == "evaluation" and test for p, test in loads)  # test loads in the evaluation only
    for m in fam["members"]:
        assert m["test_seeds"] == [1, 2] and len(m["test_accuracies"]) == 2
        assert all(0 <= a <= 1 for a in m["test_accuracies"])


def _by_name(members_acc, refs_acc):
    """A trainer whose test accuracy per seed depends on whether it trains a member (by tier) or a reference."""
    def train(genotype, config):
        i = config.seed - 1
        if genotype.name.startswith("synth-"):
            return members_acc[genotype.name[-1]][i], 0.5, 1.0
        return refs_acc[i], 0.4, 1.0
    return train


def test_family_tables_carry_test_mean_std_seeds_and_the_welch_verdict(tmp_path):
    study = make_study(tmp_path, n=24)
    space = load_space(study / "space.yaml")
    refs_acc = [0.50, 0.52, 0.54]
    baselines = export.evaluate_baselines(space, ["mixnet_s", "mobilenetv2_100"], ledger=study / LEDGER,
                                          tiers=export.select_tiers(space),
                                          final=FinalEval(seeds=3, train_fn=_by_name({}, refs_acc)))
    write_baselines(study, baselines)
    members_acc = {"s": [0.90, 0.91, 0.92], "m": [0.20, 0.21, 0.22], "l": refs_acc}
    out = export.export_family(study, tmp_path / "fam", measure=False,
                               final=FinalEval(seeds=3, train_fn=_by_name(members_acc, refs_acc)))
    fam = json.loads((out / "family.json").read_text())
    by_tier = {m["tier"]: m for m in fam["members"]}
    assert {t: m["verdict"] for t, m in by_tier.items()} == {"s": BETTER, "m": WORSE, "l": SAME}
    s = by_tier["s"]
    assert s["test_accuracy"] == pytest.approx(0.91) and s["test_accuracy_std"] == pytest.approx(0.01)
    assert s["test_seeds"] == [1, 2, 3] and s["p_value"] < 0.05 and s["reference_test_seeds"] == [1, 2, 3]
    assert s["reference"] in ("mixnet_s x0.2", "mobilenetv2_100 x0.138")  # scaled to the s budget: they fit it
    assert fam["final"]["seeds"] == [1, 2, 3] and fam["final"]["search_seed"] == 0 and fam["final"]["alpha"] == 0.05
    assert fam["final"]["notes"] == []
    md = (out / "family.md").read_text()
    assert "verdict (Welch's t-test, two-sided, alpha 0.05)" in md
    row = next(line for line in md.splitlines() if line.startswith("| s | 91.00 |"))
    assert "| 1.00 | 1, 2, 3 |" in row and "| 52.00 ± 2.00 |" in row and row.endswith("| better |")
    assert "| l | 52.00 | 2.00 | 1, 2, 3 |" in md and "no significant difference |" in md
    # The references in family.md: scaled per tier, with their test figures.
    assert "| mixnet_s x0.2 | s |" in md and "| 52.00 | 2.00 | 1, 2, 3 |" in md

    # Exporting again trains nothing: every run is in the study's ledger.
    def refuse(genotype, config):
        raise AssertionError("retrained a run")
    export.export_family(study, tmp_path / "fam", measure=False, final=FinalEval(seeds=3, train_fn=refuse))
    assert json.loads((out / "family.json").read_text())["members"] == fam["members"]


def test_without_baselines_the_members_are_tested_and_the_note_says_how_to_get_verdicts(tmp_path):
    study = make_study(tmp_path, n=24)
    out = export.export_family(study, tmp_path / "fam", ["s"], measure=False,
                               final=FinalEval(seeds=2, train_fn=_by_name({"s": [0.8, 0.9]}, [])))
    fam = json.loads((out / "family.json").read_text())
    assert fam["members"][0]["verdict"] is None and fam["members"][0]["test_accuracy"] == pytest.approx(0.85)
    assert "nas baselines" in fam["final"]["notes"][0]
    assert "no references (see the note)" in (out / "family.md").read_text()


def test_export_best_cli_evaluates_a_trained_study_by_default(tmp_path):
    study = make_study(tmp_path, n=24)
    r = CliRunner().invoke(app, ["export-best", "--study", str(study), "--tiers", "s", "--no-measure", "--seeds", "2",
                                 "--out", str(tmp_path / "fam")])
    assert r.exit_code == 0, r.output
    assert "## Test split (final evaluation)" in r.output and "seeds 1, 2" in r.output
    assert len((study / LEDGER).read_text().splitlines()) == 2
    r = CliRunner().invoke(app, ["export-best", "--study", str(study), "--tiers", "s", "--no-measure", "--no-eval",
                                 "--out", str(tmp_path / "plain")])
    assert r.exit_code == 0 and "Test split" not in r.output
    records = export.read_study(study)[1]
    assert export.study_was_trained(records)  # what the CLI asks before its default evaluation
    assert not export.study_was_trained([dataclasses.replace(r, epochs=0, accuracy=None) for r in records])


def test_baselines_cli_scales_references_to_each_tier_and_tests_them(tmp_path):
    study = make_study(tmp_path, n=8)
    r = CliRunner().invoke(app, ["baselines", "--space", str(study / "space.yaml"), "--study", str(study),
                                 "--refs", "mobilenetv2_100", "--tiers", "s,l", "--seeds", "2"])
    assert r.exit_code == 0, r.output
    doc = json.loads((study / "baselines.json").read_text())
    assert [b["name"] for b in doc["references"]] == ["mobilenetv2_100 x0.138", "mobilenetv2_100 x0.44"]
    space = load_space(study / "space.yaml")
    for b, tier in zip(doc["references"], ("s", "l"), strict=True):
        assert b["tier"] == tier and b["macs"] <= space.family[tier].macs and b["reference"] == "mobilenetv2_100"
        assert b["test_seeds"] == [1, 2] and len(b["test_accuracies"]) == 2 and len(b["accuracies"]) == 2
        assert b["test_recipe"] == doc["test_recipe"]
    assert "test split: mean ± std" in r.output and "mobilenetv2_100 x0.138" in r.output and "1,2" in r.output
    assert len((study / LEDGER).read_text().splitlines()) == 4


def _test_table(md: str) -> list[str]:
    lines = md.splitlines()
    i = lines.index("## Test split (final evaluation)")
    return [ln for ln in lines[i:] if ln.startswith("| ") or ln.startswith("Trained on:")]


def test_export_best_twice_with_the_same_seeds_gives_the_same_figures(tmp_path):
    """Two evaluations of the same members, seeds and split give the same test accuracies: read back from the
    ledger, and trained again from scratch (same device, threads, torch: each run records them)."""
    import torch

    study = make_study(tmp_path, n=24)
    a = export.export_family(study, tmp_path / "a", ["s", "l"], measure=False, final=FinalEval(seeds=2))
    runs = [json.loads(line) for line in (study / LEDGER).read_text().splitlines()]
    assert len(runs) == 4 and all(r["device"] == "cpu" and r["threads"] == 1 and r["torch"] == torch.__version__
                                  for r in runs)
    first = _test_table((a / "family.md").read_text())
    assert any(ln.startswith("Trained on: cpu, 1 thread, torch ") for ln in first)
    (study / LEDGER).rename(tmp_path / "first.jsonl")  # the second evaluation trains every run again
    b = export.export_family(study, tmp_path / "b", ["s", "l"], measure=False, final=FinalEval(seeds=2))
    assert _test_table((b / "family.md").read_text()) == first
    again = [json.loads(line) for line in (study / LEDGER).read_text().splitlines()]
    assert [r["test_accuracy"] for r in again] == [r["test_accuracy"] for r in runs]
    r = CliRunner().invoke(app, ["export-best", "--study", str(study), "--tiers", "s,l", "--no-measure", "--seeds",
                                 "2", "--out", str(tmp_path / "c")])
    assert r.exit_code == 0, r.output
    assert _test_table((tmp_path / "c" / "family.md").read_text()) == first
    assert "export: choosing the members of s, l" in r.output and "export: tier s:" in r.output  # its steps
    assert len((study / LEDGER).read_text().splitlines()) == 4  # nothing trained a third time
