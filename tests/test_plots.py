"""Pareto plots on disk: pareto.html (plotly, offline) and pareto.png (matplotlib)."""

from __future__ import annotations

import dataclasses
import json
import random
import re
import sys

import matplotlib.image as mpimg
import pytest
from _synth_study import make_study
from typer.testing import CliRunner

from nas import plots
from nas.cli import app, main
from nas.results.front import is_feasible
from nas.results.store import study_records


def _brute_front(points):
    """(cost, acc) pairs not dominated by any other: the definition, quadratically."""
    out = []
    for c, a in points:
        if not any((c2 <= c and a2 >= a) and (c2 < c or a2 > a) for c2, a2 in points):
            out.append((c, a))
    return sorted(set(out))


def test_front_2d_matches_definition():
    rng = random.Random(3)
    for _ in range(50):
        pts = [(rng.randint(0, 20), rng.randint(0, 20)) for _ in range(rng.randint(1, 30))]
        got = [(c, a) for c, a, _ in plots.front_2d([(c, a, None) for c, a in pts])]
        assert got == _brute_front(pts)


@pytest.fixture()
def study(tmp_path):
    d = make_study(tmp_path, n=30, seed=1)
    records = study_records(d)
    refs = [{"name": "mixnet_s", "macs": 1_000_000, "params": 50_000, "latency_ms": 55.0, "accuracy": 0.61,
             "genotype": records[0]["genotype"], "hash": "ref"}]
    (d / "baselines.json").write_text(json.dumps({"references": refs}))
    return d


def test_write_plots_html_and_png(study):
    html, png = plots.write_plots(study, budgets={"macs": 1.8e6})
    text = html.read_text()
    # plotly.js is beside the page, loaded by a relative path (the page works offline, no CDN), once per study
    assert len(text) < 200_000 and re.findall(r"<script[^>]*\ssrc=\"([^\"]+)\"", text) == ["plotly.min.js"]
    js = study / "plotly.min.js"
    assert js.stat().st_size > 3_000_000 and b"plotly.js" in js.read_bytes()[:300]
    mtime = js.stat().st_mtime_ns
    plots.write_plots(study, budgets={"macs": 1.8e6})
    assert js.stat().st_mtime_ns == mtime  # the same plotly.js is not written again
    records = study_records(study)
    trained = [r for r in records if is_feasible(r) and r["accuracy"] is not None]
    macs_front = plots.front_2d([(r["macs"], r["accuracy"], r) for r in trained])
    for _, _, r in macs_front:  # every front member's hover (hash, summary) is on the page
        assert r["hash"] in text
    for name in ("Pareto front", "over budget (not trained)", "stopped early (partial training)", "MixNet-S",
                 "MACs (M)", "Latency (ms)", "Proxy top-1 accuracy (%)"):
        assert name in text
    img = mpimg.imread(png)
    assert img.shape[0] > 600 and img.shape[1] > 1.8 * img.shape[0]  # two panels side by side, print resolution


def test_latency_panel_dropped_without_latency(tmp_path):
    d = make_study(tmp_path, n=12, seed=2)
    records = [dataclasses.replace(r, latency_ms=None) for r in study_records(d)]
    fig = plots.figure_html(records, study="x")
    assert fig.layout.xaxis.title.text == "MACs (M)" and "xaxis2" not in fig.layout.to_plotly_json()
    png = plots.write_png(tmp_path / "p.png", records)
    img = mpimg.imread(png)
    assert img.shape[1] < 1.8 * img.shape[0]  # one panel


def test_cli_plot(study):
    r = CliRunner().invoke(app, ["plot", "--study", str(study)])
    assert r.exit_code == 0, r.output
    assert (study / "pareto.html").stat().st_size > 0 and (study / "pareto.png").stat().st_size > 0


def test_cli_plot_not_a_study(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["nas", "plot", "--study", str(tmp_path / "missing")])
    with pytest.raises(SystemExit) as e:
        main()
    assert e.value.code == 2
    assert "trials.jsonl" in capsys.readouterr().err
    assert not (tmp_path / "missing").exists()


def test_far_references_switch_to_a_log_axis(study):
    records = study_records(study)
    refs = [{"name": "mixnet_m", "macs": 340_000_000, "params": 5_000_000, "latency_ms": None, "accuracy": 0.7}]
    fig = plots.figure_html(records, refs, study="x")
    axes = {k: v for k, v in fig.layout.to_plotly_json().items() if k.startswith("xaxis")}
    macs_axis = next(a for a in axes.values() if a.get("title", {}).get("text") == "MACs (M)")
    assert macs_axis["type"] == "log" and "MixNet-M" in fig.to_json()
    assert plots.figure_html(records, study="x").layout.xaxis2.type == "linear"  # trials alone: linear


def _edges_blank(png) -> bool:
    img = mpimg.imread(png)[..., :3]
    edges = [img[:3], img[-3:], img[:, :3], img[:, -3:]]
    return all(float(e.min()) > 0.98 for e in edges)  # white: nothing runs off the canvas


def test_the_legend_is_whole_and_short_trained_references_are_labelled(study, tmp_path):
    """One panel (no latency) with references: every legend entry fits on the canvas; a reference trained for
    fewer epochs than the trials says so on the figure."""
    records = [dataclasses.replace(r, latency_ms=None) for r in study_records(study)]
    epochs = max(r["epochs"] for r in records)
    refs = [{"name": "mixnet_s", "macs": 1_000_000, "params": 50_000, "latency_ms": None, "accuracy": 0.61,
             "epochs": epochs - 2}, {"name": "ghostnet_100", "macs": 800_000, "params": 40_000, "accuracy": 0.58,
                                     "epochs": epochs}]
    png = plots.write_png(tmp_path / "one.png", records, refs, study="s", budgets={"macs": 1.8e6})
    assert _edges_blank(png)
    fig = plots.figure_html(records, refs, study="s")
    page = fig.to_json()
    assert f"MixNet-S ({epochs - 2} ep)" in page and "GhostNet 1.0 (" not in page
    assert f"trials for {epochs}: not comparable" in fig.layout.title.text
    assert "not comparable" not in plots.figure_html(records, refs[1:], study="s").layout.title.text


def test_titles_name_the_study_not_its_directory(study):
    (study / "pareto.json").write_text(json.dumps({"study": "mixnet-run", "front": []}))
    html, _ = plots.write_plots(study)
    assert "mixnet-run: 30 trials" in html.read_text()
    assert plots.study_name(study.parent) == study.parent.name  # no pareto.json: the directory's name
