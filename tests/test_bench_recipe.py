"""bench_recipe's figures on known runs, and a derived space's length override (no training)."""

from __future__ import annotations

import pytest

from benchmarks import bench_recipe as br
from benchmarks._spaces import with_length


def _rows(recipe: str, table: dict[str, list[float]]) -> list[dict]:
    return [{"data": "digits", "recipe": recipe, "overrides": {"steps": 10}, "arch": a, "seed": s + 1,
             "accuracy": acc, "steps": 10, "wall_s": 2.0, "cpu_s": 1.5}
            for a, accs in table.items() for s, acc in enumerate(accs)]


def test_summary_figures_and_goal():
    good = _rows("good", {"a": [0.96, 0.97, 0.965], "b": [0.95, 0.955, 0.96], "c": [0.99, 0.985, 0.98]})
    bad = _rows("bad", {"a": [0.96, 0.99, 0.97], "b": [0.89, 0.95, 0.96], "c": [0.99, 0.985, 0.98]})
    summary = {s["recipe"]: s for s in br.summarize(good + bad, ["a", "b", "c"], [1, 2, 3])}
    g, b = summary["good"], summary["bad"]
    assert g["goal"] and not b["goal"]
    assert g["run_min"] == pytest.approx(0.95) and g["run_median"] == pytest.approx(0.965)
    assert g["spread_max"] == pytest.approx(0.01) and b["spread_max"] == pytest.approx(0.07)
    assert g["mean_min"] == pytest.approx(0.955) and g["mean_max"] == pytest.approx(0.985)
    assert g["s_per_run"] == 2.0 and g["cpu_s_per_run"] == 1.5 and g["archs"] == 3 and g["seeds"] == 3
    assert 0 < g["seed_std"] < g["arch_std"]


def test_summary_skips_recipes_with_missing_runs():
    rows = _rows("part", {"a": [0.9, 0.9, 0.9], "b": [0.9, 0.9]})
    assert br.summarize(rows, ["a", "b"], [1, 2, 3]) == []  # one complete architecture ranks nothing


def test_a_length_override_replaces_the_other_length():
    steps = {"dataset": "digits", "steps": 200, "report_every": 50, "warmup": 0.1}
    assert with_length(steps, {"epochs": 2}) == {"dataset": "digits", "epochs": 2, "warmup": 0.1}
    epochs = {"epochs": 4, "warmup_epochs": 1.0}
    assert with_length(epochs, {"steps": 100}) == {"steps": 100}
    assert with_length(epochs, {"subsample": 64}) == {"epochs": 4, "warmup_epochs": 1.0, "subsample": 64}


def test_figures_at_each_report_come_from_the_curves():
    rows = _rows("r", {"a": [0.96, 0.97], "b": [0.95, 0.96]})
    for r in rows:
        r["curve"] = [r["accuracy"] - 0.5, r["accuracy"]]
    at = br.by_report(rows, ["a", "b"], [1, 2])
    assert [(x["report"], x["step"]) for x in at] == [(1, 5), (2, 10)]
    assert at[0]["run_min"] == pytest.approx(0.45) and at[1]["run_median"] == pytest.approx(0.96)
    assert at[1]["spread_max"] == pytest.approx(0.01)
