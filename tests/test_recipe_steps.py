"""A proxy recipe in optimizer steps: the same run as its epochs, warm-up as a share, reports per interval."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from nas.config import (
    DEFAULT_EPOCHS,
    DEFAULT_REPORTS,
    DEFAULT_WARMUP,
    check_config,
    length_text,
    planned_reports,
    schedule,
    with_overrides,
)
from nas.errors import InputError
from nas.genotype import loads
from nas.train import TrainConfig, lr_factor, train

NET = loads("""
name: wee
resolution: 16
stem: {out: 8, stride: 2}
stages:
- blocks: [{out: 8, stride: 2, expand: 1}]
- blocks: [{out: 16, stride: 2, expand: 3, kernels: [3, 5]}]
head: {features: 32}
""")
# 256 images, batch 32: 8 full batches (steps) per epoch
FAST = TrainConfig(resolution=16, width=1.0, epochs=1, subsample=256, batch_size=32, lr=0.01, device="cpu",
                   precise_bn=1)
SPE = 8

pytestmark = pytest.mark.usefixtures("one_thread")


def test_steps_are_the_same_run_as_epochs():
    by_epochs = train(NET, dataclasses.replace(FAST, epochs=2, warmup=0.25))
    by_steps = train(NET, with_overrides(FAST, steps=2 * SPE, report_every=SPE, warmup=0.25))
    assert by_steps.steps_run == by_epochs.steps_run == 2 * SPE
    for a, b in zip(by_epochs.history, by_steps.history, strict=True):
        assert a["step"] == b["step"] and a["train_loss"] == b["train_loss"] and a["lr"] == b["lr"]
        assert a["val_accuracy"] == b["val_accuracy"]
    assert all(torch.equal(p, q) for p, q in zip(by_epochs.model.state_dict().values(),
                                                 by_steps.model.state_dict().values(), strict=True))


def test_steps_not_a_whole_number_of_epochs_cross_passes():
    r = train(NET, with_overrides(FAST, steps=SPE + 3, report_every=5))
    assert r.steps_run == SPE + 3
    assert [h["step"] for h in r.history] == [5, 10, 11]  # the last report comes at the last step
    assert [h["epoch"] for h in r.history] == [1, 2, 3]
    assert r.history[-1]["epochs_seen"] == pytest.approx((SPE + 3) / SPE)


def test_reports_per_interval_reach_the_callback():
    seen = []
    cfg = with_overrides(FAST, steps=10, report_every=4)
    r = train(NET, cfg, callback=lambda report, m: seen.append((report, m["step"])))
    assert seen == [(1, 4), (2, 8), (3, 10)] and r.epochs_run == 3 == planned_reports(cfg)
    stopped = train(NET, cfg, callback=lambda report, m: report == 2)
    assert stopped.stopped_early and stopped.steps_run == 8 and stopped.epochs_run == 2


def test_default_report_interval_and_lengths():
    assert planned_reports(with_overrides(FAST, steps=10)) == DEFAULT_REPORTS == 4  # every 3 steps: 3, 6, 9, 10
    assert schedule(with_overrides(FAST, steps=10), SPE).report_every == 3
    assert planned_reports(with_overrides(FAST, steps=2)) == 2  # never more reports than steps
    assert planned_reports(FAST) == 1 and planned_reports(dataclasses.replace(FAST, epochs=None)) == DEFAULT_EPOCHS
    assert schedule(dataclasses.replace(FAST, epochs=None), SPE).total == DEFAULT_EPOCHS * SPE
    assert length_text(with_overrides(FAST, steps=300)) == "300 steps" and length_text(FAST) == "1 epoch"


def test_warmup_is_a_share_of_the_steps():
    assert schedule(with_overrides(FAST, steps=200, warmup=0.1), SPE).warmup == 20
    assert schedule(with_overrides(FAST, steps=200), SPE).warmup == round(DEFAULT_WARMUP * 200)
    assert schedule(dataclasses.replace(FAST, epochs=4, warmup=0.25), SPE).warmup == SPE  # 1 of 4 epochs
    assert schedule(dataclasses.replace(FAST, epochs=4, warmup_epochs=1.5), SPE).warmup == 12
    assert schedule(with_overrides(FAST, steps=10, warmup=0.0), SPE).warmup == 0
    assert schedule(with_overrides(FAST, steps=10, warmup=1.0), SPE).warmup == 10


def test_warmup_share_drives_the_learning_rate():
    # 16 steps, warm-up 0.5 -> 8 steps: the first report (step 4) is mid-warm-up, the second at its peak
    cfg = with_overrides(FAST, steps=16, report_every=4, warmup=0.5, lr=0.02)
    r = train(NET, cfg)
    assert r.history[0]["lr"] == pytest.approx(0.02 * lr_factor(3, 8, 16)) == pytest.approx(0.02 * 4 / 8)
    assert r.history[1]["lr"] == pytest.approx(0.02)
    assert r.history[-1]["lr"] < r.history[2]["lr"] < 0.02


@pytest.mark.parametrize("change, field", [
    ({"epochs": 2, "steps": 16}, "proxy.steps"),
    ({"epochs": None, "steps": 0}, "proxy.steps"),
    ({"epochs": 2, "report_every": 4}, "proxy.report_every"),
    ({"epochs": None, "steps": 16, "warmup_epochs": 1.0}, "proxy.warmup_epochs"),
    ({"warmup": 0.1, "warmup_epochs": 1.0}, "proxy.warmup_epochs"),
    ({"warmup": -0.1}, "proxy.warmup"),
    ({"epochs": None, "steps": 16, "report_every": 0}, "proxy.report_every"),
])
def test_bad_lengths_are_refused_with_the_field(change, field):
    with pytest.raises(InputError, match=f"^{field}: "):
        check_config(dataclasses.replace(FAST, **change))


def test_no_full_batch_is_one_line():
    with pytest.raises(InputError, match="^proxy.batch_size: 32 is more than the training images"):
        schedule(with_overrides(FAST, steps=4), 0)


def test_overrides_swap_the_length():
    steps = with_overrides(FAST, steps=300, report_every=50)
    assert (steps.epochs, steps.steps) == (None, 300)
    back = with_overrides(steps, epochs=3)
    assert (back.epochs, back.steps, back.report_every) == (3, None, None)
    check_config(back)
    assert with_overrides(dataclasses.replace(FAST, warmup_epochs=1.0), steps=10).warmup_epochs is None


def test_fidelity_recipes_on_a_step_proxy():
    from nas.fidelity.recipes import default_recipes, parse_recipe

    base = with_overrides(FAST, steps=200, report_every=50)
    candidates, ref = default_recipes(base)
    assert [c.name for c in candidates] == ["proxy", "s100", "s400"] and ref.overrides["steps"] == 800
    r = parse_recipe({"name": "e2", "epochs": 2}, "recipes[0]", base)
    cfg = r.config(base, seed=1)
    assert (cfg.epochs, cfg.steps, cfg.report_every, cfg.seed) == (2, None, None, 1)
    with pytest.raises(InputError, match=r"^recipes\[0\]\.steps: give the length"):
        parse_recipe({"name": "x", "epochs": 2, "steps": 5}, "recipes[0]", base)


def test_search_trials_report_as_the_recipe_plans():
    from nas.search.objective import trial_config
    from nas.search.tuning import scheduler_for

    cfg = with_overrides(FAST, steps=300, report_every=100)
    assert trial_config(0, NET, cfg, 10, 1)["epochs"] == 3
    asha = scheduler_for("asha", planned_reports(cfg), 1)
    assert asha._max_t == 3
