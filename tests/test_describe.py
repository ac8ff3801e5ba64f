"""`nas describe`: table, JSON, shipped references, and one-line errors for bad genotypes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from _cli import run_cli

from nas import cli
from nas.cost.macs import REFERENCES, count
from nas.genotype import load

GOOD = """\
name: tiny
resolution: 64
stem: {out: 16}
stages:
- blocks:
  - {out: 24, stride: 2, kernels: [3, 5], expand: 6, se: 0.25}
  - {out: 24, kernels: [3], expand: 3, repeat: 2}
head: {features: 64}
"""




def test_json_for_a_shipped_reference_found_by_name(monkeypatch, capsys, tmp_path):
    monkeypatch.chdir(tmp_path)  # not in the repo root: found among the shipped references
    code, out, _ = run_cli(monkeypatch, capsys, "describe", "mixnet_s.yaml", "--json")
    assert code == 0
    d = json.loads(out)
    g = load(cli.SHIPPED_SPACES / "reference" / "mixnet_s.yaml")
    c = count(g)
    want = (c.params, c.macs, "mixnet_s", 224, g.hash)
    assert (d["params"], d["macs"], d["name"], d["resolution"], d["hash"]) == want
    assert d["macs_paper"] == REFERENCES["mixnet_s"].macs_paper
    assert [s["part"] for s in d["stages"]][0] == "stem" and d["stages"][-1]["part"] == "head"
    assert sum(s["macs"] for s in d["stages"]) == d["macs"]


def test_json_at_another_resolution_and_for_a_user_file(monkeypatch, capsys, tmp_path):
    p = tmp_path / "tiny.yaml"
    p.write_text(GOOD)
    code, out, _ = run_cli(monkeypatch, capsys, "describe", str(p), "--json", "--resolution", "32")
    d = json.loads(out)
    g = load(p)
    assert code == 0 and d["resolution"] == 32 and d["macs"] == count(g, 32).macs and d["params"] == count(g).params
    assert "macs_paper" not in d
    # A user file that borrows a reference's name is not given that reference's published figures.
    p.write_text(GOOD.replace("name: tiny", "name: mixnet_s"))
    _, out, _ = run_cli(monkeypatch, capsys, "describe", str(p), "--json")
    assert "macs_paper" not in json.loads(out)


def test_table(monkeypatch, capsys, tmp_path):
    p = tmp_path / "tiny.yaml"
    p.write_text(GOOD)
    code, out, _ = run_cli(monkeypatch, capsys, "describe", str(p))
    assert code == 0
    for word in ("stem", "stage 0", "head", "total", f"{count(load(p)).params:,}"):
        assert word in out


BAD = [
    ("kernels: [3, 5]", "kernels: [3, 4]", "stages[0].blocks[0].kernels"),  # even kernel
    ("kernels: [3, 5]", "kernels: [3, 5, 7, 9, 11, 3]", "stages[0].blocks[0].kernels"),  # g = 6
    ("kernels: [3, 5]", "kernels: [3, 5], op: mixconv", "stages[0].blocks[0].op"),  # unknown field
    ("expand: 3,", "expand: 3, kind: shufflenet,", "stages[0].blocks[1].kind"),  # unknown op
    ("{out: 24, stride: 2", "{out: -24, stride: 2", "stages[0].blocks[0].out"),  # negative width
    ("stem: {out: 16}", "stem: {out: 16, wide: true}", "stem.wide"),
    ("head: {features: 64}", "head: {features: 64", "line"),  # broken YAML
]


@pytest.mark.parametrize(("old", "new", "field"), BAD)
def test_bad_genotype_exits_2_with_one_line(monkeypatch, capsys, tmp_path, old, new, field):
    p = tmp_path / "bad.yaml"
    assert old in GOOD
    p.write_text(GOOD.replace(old, new))
    code, out, err = run_cli(monkeypatch, capsys, "describe", str(p), "--json")
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and str(p) in lines[0] and field in lines[0], err


def test_missing_file_exits_2(monkeypatch, capsys, tmp_path):
    code, _, err = run_cli(monkeypatch, capsys, "describe", str(tmp_path / "nope.yaml"))
    assert code == 2 and "nope.yaml" in err and len(err.strip().splitlines()) == 1


def test_console_script():
    exe = Path(sys.executable).with_name("nas")
    r = subprocess.run([str(exe), "describe", "ghostnet_100.yaml", "--json"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert abs(d["params"] - REFERENCES["ghostnet_100"].params) <= 0.01 * REFERENCES["ghostnet_100"].params


def test_acb_is_described_at_its_deployed_cost_with_the_training_cost_beside(monkeypatch, capsys, tmp_path):
    p = tmp_path / "acb.yaml"
    p.write_text(GOOD.replace("kernels: [3, 5]", "kernels: [3, 5], acb: true"))
    code, out, _ = run_cli(monkeypatch, capsys, "describe", str(p), "--json")
    d, g = json.loads(out), load(p)
    trained = count(g, deployed=False)
    assert code == 0 and (d["params"], d["macs"]) == (count(g).params, count(g).macs)
    assert (d["params_training"], d["macs_training"]) == (trained.params, trained.macs)
    assert d["params_training"] > d["params"] and d["macs_training"] > d["macs"]
    code, out, _ = run_cli(monkeypatch, capsys, "describe", str(p))
    assert code == 0 and "as trained (ACB branches unfolded)" in out


def test_describe_shows_the_genotype_summary(monkeypatch, capsys):
    """The one architecture notation every command prints (pareto, space sample, plots, W&B)."""
    summary = load(cli.SHIPPED_SPACES / "reference" / "ghostnet_100.yaml").summary()
    code, out, _ = run_cli(monkeypatch, capsys, "describe", "ghostnet_100.yaml", "--json")
    assert code == 0 and json.loads(out)["summary"] == summary
    code, out, _ = run_cli(monkeypatch, capsys, "describe", "ghostnet_100.yaml")
    assert code == 0 and summary in out
