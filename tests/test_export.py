"""nas export-best: tier selection, compound scaling, TorchScript/ONNX files, family tables, baselines."""

from __future__ import annotations

import json
import sys
import warnings

import numpy as np
import onnxruntime as ort
import pytest
import torch
from _synth_study import make_study
from typer.testing import CliRunner

from nas import export
from nas.cli import app, main
from nas.cost.macs import REFERENCES, count
from nas.errors import InputError, OptionError
from nas.genotype import from_dict as load_genotype_dict
from nas.genotype import load
from nas.results.store import study_records
from nas.scaling import scale
from nas.space import load_space
from nas.tracking import StudyTracker

REF = export.REFERENCE_DIR


pytestmark = pytest.mark.usefixtures("one_thread")


# -- tiers and the scaler ------------------------------------------------------

def test_parse_tier_budgets():
    t = export.parse_tier_budgets("s=250e6, m=360M,l=12ms,x=params:5M+macs:1G")
    assert t["s"].limits == {"macs": 250e6} and t["m"].limits == {"macs": 360e6}
    assert t["l"].limits == {"latency_ms": 12.0}
    assert t["x"].limits == {"params": 5e6, "macs": 1e9}


@pytest.mark.parametrize("bad", ["s", "s=", "s=abc", "s=-5", "s=flops:3M", "=3M", ","])
def test_parse_tier_budgets_rejects(bad):
    with pytest.raises(OptionError) as e:
        export.parse_tier_budgets(bad)
    assert "\n" not in str(e.value) and e.value.field == "tier_budget" and str(e.value).startswith("tier_budget: ")


def test_scaler_reproduces_mixnet_l_from_mixnet_m():
    """MixNet-L is MixNet-M x 1.3 width: bisection on width to MixNet-L's MACs must land on it."""
    m = load(REF / "mixnet_m.yaml")
    l_ref = count(load(REF / "mixnet_l.yaml"))
    tier = export.Tier("l", {"macs": l_ref.macs})
    g, w = export.scale_to_budget(m, tier, export.Costing().costs)
    got = count(g)
    assert w == pytest.approx(1.3)
    assert got.macs <= l_ref.macs
    assert abs(got.params / l_ref.params - 1) < 0.01
    assert abs(got.params / REFERENCES["mixnet_l"].params - 1) < 0.01  # the published 7.33M


def test_scaler_lands_just_under_budget():
    s = load(REF / "mixnet_s.yaml")
    for budget in (150e6, 300e6):
        g, w = export.scale_to_budget(s, export.Tier("t", {"macs": budget}), export.Costing().costs)
        macs = count(g).macs
        assert macs <= budget
        # The next 8-channel step up would break the budget: no wider network of this shape fits.
        assert count(scale(s, w * 1.03)).macs > budget or scale(s, w * 1.03) == g


def _rec(n, macs, acc, g):
    return {"number": n, "hash": f"h{n}", "genotype": g.to_dict(), "status": "complete", "accuracy": acc,
            "macs": macs, "params": 1000, "latency_ms": None, "violations": {}, "epochs": 1}


def test_choose_member_near_and_scaled():
    g = load(REF / "mixnet_s.yaml")
    fr = [_rec(0, 100e6, 0.5, g), _rec(1, 230e6, 0.6, g), _rec(2, 240e6, 0.65, g)]
    costs = export.Costing().costs
    # 240M is within 15% below 250M: the most accurate front member within the budget.
    m = export.choose_member(fr, export.Tier("s", {"macs": 250e6}), costs)
    assert (m.source, m.trial, m.accuracy) == ("trained", 2, 0.65)
    # Nothing near 400M: the nearest member (trial 2's genotype, MixNet-S) scaled up to just under it.
    m = export.choose_member(fr, export.Tier("l", {"macs": 400e6}), costs)
    assert m.source == "scaled" and m.trial == 2 and m.width > 1 and m.accuracy is None
    assert 0.85 * 400e6 < count(m.genotype).macs <= 400e6


SMALL = """
resolution: 32
stages:
- blocks: [{out: 16, stride: 2, kernels: [3, 5]}, {out: 16, expand: 3}]
- blocks: [{out: 32, stride: 2, kernels: [3, 5, 7], expand: 3}, {out: 32, expand: 6, exp_groups: 2, act: swish}]
- blocks: [{out: 48, stride: 2, kernels: [3, 5], expand: 3, act: swish}]
head: {features: 64, dropout: 0.1}
"""


def test_choose_member_prefers_a_trained_member_over_a_coarse_scaling():
    """On a small network one width step jumps far: 627K MACs scaled under 500K lands at 213K, further from
    the budget than a trained front member at 396K, which is then the member."""
    from nas.genotype import loads

    big = loads(SMALL)
    costs = export.Costing(num_classes=10).costs
    assert costs(big)["macs"] == 627456
    fr = [_rec(1, 396e3, 0.48, big), _rec(0, 627456, 0.51, big)]
    m = export.choose_member(fr, export.Tier("s", {"macs": 500e3}), costs)
    assert (m.source, m.trial) == ("trained", 1)
    m = export.choose_member(fr[1:], export.Tier("s", {"macs": 500e3}), costs)  # nothing trained within budget
    assert m.source == "scaled" and costs(m.genotype)["macs"] <= 500e3


def test_each_tier_takes_the_best_design_trained_in_its_band_and_scales_only_where_none():
    """Bands s <= 250M < m <= 360M < l <= 400M: s takes its band's most accurate trained design; m's best (66%) is
    less accurate than s's member (70%), so a trained m would be beaten by a smaller tier: m is s's member scaled
    up, and says so; l has no trained design and is scaled too. With an m design more accurate than s, m takes it
    and l is m's member compound-scaled, as MixNet-L is MixNet-M x 1.3."""
    s_net, m_net = load(REF / "mixnet_s.yaml"), load(REF / "mixnet_m.yaml")
    recs = [_rec(0, count(s_net).macs, 0.70, s_net), _rec(1, count(m_net).macs, 0.66, m_net),
            _rec(2, 200e6, 0.60, s_net), {**_rec(3, 300e6, 0.9, m_net), "status": "pruned"},
            {**_rec(4, 300e6, 0.95, m_net), "duplicate_of": 1}]
    tiers = [export.Tier("s", {"macs": 250e6}), export.Tier("m", {"macs": 360e6}), export.Tier("l", {"macs": 400e6})]
    costs = export.Costing().costs
    s, m, ll = export.tier_members(recs, None, tiers, costs)
    assert (s.source, s.trial, s.accuracy) == ("trained", 0, 0.70)
    assert (m.source, m.trial, m.accuracy) == ("scaled", 0, None) and 250e6 < count(m.genotype).macs <= 360e6
    assert "no trained design in its band is more accurate than tier s's member (70.0%" in m.notes[0]
    assert (ll.source, ll.trial, ll.accuracy) == ("scaled", 0, None) and ll.width > 1
    assert 360e6 < count(ll.genotype).macs <= 400e6
    # exported alone, m keeps its band and the family's order: still not the less accurate m design
    (alone,) = export.tier_members(recs, None, tiers[1:2], costs, all_tiers=tiers)
    assert alone.source == "scaled" and alone.trial == 0

    recs[1] = _rec(1, count(m_net).macs, 0.75, m_net)
    s, m, ll = export.tier_members(recs, None, tiers, costs)
    assert (s.trial, m.source, m.trial, m.accuracy) == (0, "trained", 1, 0.75)
    assert (ll.source, ll.trial) == ("scaled", 1) and 360e6 < count(ll.genotype).macs <= 400e6


# -- exporting a study ------------------------------------------------------------

def test_re_exporting_removes_old_tiers_and_proxy_weights_load_in_one_call(tmp_path):
    """An earlier export's tiers that the family no longer has are removed (other files are left alone); a
    member's proxy weights load with nas.export.load_proxy, whatever head size they were trained with."""
    from nas.model import build
    from nas.proxy import proxy_genotype

    study = make_study(tmp_path, n=24)
    space = load_space(study / "space.yaml")
    (study / "weights").mkdir()
    heads = {}
    for r in study_records(study):  # proxy weights as a trial leaves them: 10 classes (digits) or, as older
        if r["status"] == "complete":  # studies did, a 1000-way head
            heads[r["number"]] = 10 if r["number"] % 2 else 1000
            proxy = proxy_genotype(load_genotype_dict(r["genotype"]), space.proxy.resolution, space.proxy.width)
            torch.save(build(proxy, heads[r["number"]]).state_dict(), study / "weights" / f"{r['number']}.pt")
    out = tmp_path / "fam"
    export.export_family(study, out, tier_budgets="xs=0.12e6", measure=False)
    assert (out / "xs").is_dir()
    (out / "notes.txt").write_text("mine")
    (out / "mine").mkdir()
    (out / "mine" / "genotype.yaml").write_text("x")
    (out / "mine" / "train.log").write_text("a user's file: not a member folder")
    export.export_family(study, out, measure=False)
    fam = json.loads((out / "family.json").read_text())
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["l", "m", "mine", "s"]
    assert (out / "notes.txt").read_text() == "mine" and fam["removed"] == ["xs"]
    assert "Removed the folders of an earlier export's tiers: xs." in (out / "family.md").read_text()
    loaded = 0
    for m in fam["members"]:
        d = out / m["tier"]
        if m["source"] != "trained":
            assert not (d / "proxy_weights.pt").exists() and not (d / "proxy.json").exists()
            with pytest.raises(InputError, match="proxy.json: missing"):
                export.load_proxy(d)
            continue
        net = export.load_proxy(d)
        with torch.inference_mode():
            y = net(torch.zeros(1, 3, space.proxy.resolution, space.proxy.resolution))
        assert y.shape == (1, heads[m["trial"]]) and not net.training
        loaded += 1
    assert loaded



def _check_onnx_against_torchscript(d):
    g = load(d / "genotype.yaml")
    x = torch.randn(3, g.in_chans, g.resolution, g.resolution)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript's notice; the file must still load
        ts = torch.jit.load(str(d / "model.ts"))
    with torch.inference_mode():
        want = ts(x).numpy()
    got = ort.InferenceSession(str(d / "model.onnx"), providers=["CPUExecutionProvider"]).run(
        None, {"input": x.numpy()})[0]
    assert got.shape == want.shape
    assert np.abs(want).max() > 1e-2  # logits of a real size, so the tolerance below means something
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-4)


def test_export_family_from_synthetic_study(tmp_path):
    study = make_study(tmp_path, n=24)
    (study / "weights").mkdir()
    records = study_records(study)
    for r in records:  # the study kept proxy weights for every trained trial
        if r["status"] == "complete":
            torch.save({"w": torch.ones(1) * r["number"]}, study / "weights" / f"{r['number']}.pt")
    (study / "baselines.json").write_text(json.dumps({"references": [
        {"name": "mixnet_s", "macs": 900_000, "params": 50_000, "latency_ms": None, "accuracy": 0.5}]}))
    out = export.export_family(study, tmp_path / "fam", tier_budgets="xs=0.12e6", measure=False)
    fam = json.loads((out / "family.json").read_text())
    assert [m["tier"] for m in fam["members"]] == ["s", "m", "l", "xs"]
    by_number = {r["number"]: r for r in records}
    for m in fam["members"]:
        d = out / m["tier"]
        assert {"genotype.yaml", "model.ts", "model.onnx"} <= {p.name for p in d.iterdir()}
        assert m["macs"] <= m["limits"]["macs"] and m["onnx_max_abs_diff"] <= 1e-4
        g = load(d / "genotype.yaml")
        assert count(g, num_classes=10).macs == m["macs"]
        assert g.name == f"synth-{m['tier']}"
        if m["source"] == "trained":
            rec = by_number[m["trial"]]
            assert rec["hash"] == g.hash and m["accuracy"] == rec["accuracy"] and rec["status"] == "complete"
            assert torch.load(d / "proxy_weights.pt", weights_only=True)["w"].item() == m["trial"]
        else:
            assert m["weights"] is None and not (d / "proxy_weights.pt").exists()
    xs = fam["members"][-1]  # below every trained design: the nearest front member scaled down
    assert xs["source"] == "scaled" and xs["width"] < 1
    _check_onnx_against_torchscript(out / "s")
    md = (out / "family.md").read_text()
    assert "| s |" in md and "not trained" in md and "mixnet_s" in md


def test_export_best_cli_bad_tier_writes_nothing(tmp_path, monkeypatch, capsys):
    study = make_study(tmp_path, n=6)
    monkeypatch.setattr(sys, "argv", ["nas", "export-best", "--study", str(study), "--tiers", "s,xl",
                                      "--out", str(tmp_path / "out")])
    with pytest.raises(SystemExit) as e:
        main()
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "family.xl" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_latency_tier_needs_a_lut(tmp_path):
    study = make_study(tmp_path, n=4)
    with pytest.raises(InputError, match="budgets.target: a latency tier needs a latency target"):
        export.export_family(study, tmp_path / "out", ["fast"], "fast=5ms", measure=False)
    assert not (tmp_path / "out").exists()


def test_export_best_arch_cli(tmp_path):
    arch = tmp_path / "a.yaml"
    arch.write_text(load(REF / "mixnet_s.yaml").replace(resolution=64, name="small_s").to_yaml())
    r = CliRunner().invoke(app, ["export-best", "--arch", str(arch), "--out", str(tmp_path / "x"), "--no-measure",
                                 "--num-classes", "10"])
    assert r.exit_code == 0, r.output
    _check_onnx_against_torchscript(tmp_path / "x" / "small_s")
    fam = json.loads((tmp_path / "x" / "family.json").read_text())
    assert fam["members"][0]["params"] == count(load(arch), num_classes=10).params


@pytest.mark.slow
def test_export_full_mixnet_s_at_224(tmp_path):
    d = export.export_arch(load(REF / "mixnet_s.yaml"), tmp_path, measure=True)
    _check_onnx_against_torchscript(d)
    row = json.loads((tmp_path / "family.json").read_text())["members"][0]
    assert row["params"] == count(load(REF / "mixnet_s.yaml")).params and row["latency_ms_measured"] > 0


# -- baselines -------------------------------------------------------------------

def test_baselines_cli(tmp_path):
    study = make_study(tmp_path, n=8)
    r = CliRunner().invoke(app, ["baselines", "--space", str(study / "space.yaml"), "--study", str(study),
                                 "--refs", "mobilenetv2_100", "--as-given", "--seeds", "2"])
    assert r.exit_code == 0, r.output
    data = json.loads((study / "baselines.json").read_text())
    assert [b["name"] for b in data["references"]] == ["mobilenetv2_100"]
    b = data["references"][0]
    # Costs of the reference at the space's target (32 px, 10 classes), as every trial is costed.
    c = count(load(REF / "mobilenetv2_100.yaml").replace(resolution=32), num_classes=10)
    assert (b["macs"], b["params"]) == (c.macs, c.params) and b["tier"] is None and b["width"] == 1.0
    assert 0 <= b["accuracy"] <= 1 and b["epochs"] == 1 and data["proxy"]["resolution"] == 16
    assert b["test_seeds"] == [1, 2] and 0 <= b["test_accuracy"] <= 1 and len(b["accuracies"]) == 2
    assert "MobileNetV2" in (study / "pareto.html").read_text()  # the plots were redrawn with the reference


def test_baselines_bad_reference_name(tmp_path, monkeypatch, capsys):
    study = make_study(tmp_path, n=3)
    monkeypatch.setattr(sys, "argv", ["nas", "baselines", "--space", str(study / "space.yaml"), "--study", str(study),
                                      "--refs", "resnet50"])
    with pytest.raises(SystemExit) as e:
        main()
    assert e.value.code == 2 and "resnet50" in capsys.readouterr().err
    assert not (study / "baselines.json").exists()


# -- a real (tiny) study ----------------------------------------------------------------

def test_export_from_a_real_tiny_study(tmp_path):
    """Search tiny.yaml for real (2 one-epoch trials on digits, W&B offline), then export its family."""
    from nas.search.driver import SearchOptions, run_search

    summary = run_search(SearchOptions(space="tiny.yaml", trials=2, out=tmp_path, wandb="offline"),
                         listeners=[StudyTracker()])
    study = summary.study_dir
    assert (study / "pareto.png").exists() and (study / "pareto.html").exists()  # written by StudyTracker.close
    out = export.export_family(study, measure=True)
    fam = json.loads((out / "family.json").read_text())
    assert [m["tier"] for m in fam["members"]] == ["s", "m", "l"]  # tiny.yaml's family section
    recs = {r.number: r for r in summary.records}
    # The search spread its two trials over two tiers; a larger tier's trained member is the more accurate
    trained = [m for m in fam["members"] if m["source"] == "trained"]
    assert trained and len({m["hash"] for m in trained}) == len(trained)
    assert [m["accuracy"] for m in trained] == sorted(m["accuracy"] for m in trained)
    md = (out / "family.md").read_text()
    assert "These are untrained architectures, not trained models." in md
    for m in fam["members"]:
        d = out / m["tier"]
        assert {"genotype.yaml", "model.ts", "model.onnx"} <= {p.name for p in d.iterdir()}
        assert m["onnx_max_abs_diff"] <= 1e-4 and m["latency_ms_measured"] > 0
        assert m["macs"] <= m["limits"]["macs"]
        assert m["source"] in ("trained", "scaled")
        if m["source"] == "trained":
            assert m["hash"] == recs[m["trial"]]["hash"] and m["accuracy"] == recs[m["trial"]]["accuracy"]
            # the trained proxy's weights, kept by the trial, travel with the member and load safely
            assert m["weights"] == "proxy_weights.pt"
            state = torch.load(d / "proxy_weights.pt", weights_only=True)
            assert state and all(isinstance(v, torch.Tensor) for v in state.values())
            # ... in one documented call, as the proxy the accuracy was measured on (digits: 10 classes)
            net = export.load_proxy(d)
            info = json.loads((d / "proxy.json").read_text())
            with torch.inference_mode():
                y = net(torch.zeros(2, 3, info["resolution"], info["resolution"]))
            assert y.shape == (2, 10) and info["num_classes"] == 10 and info["dataset"] == "digits"
            # a trained member is a point of the study's space, named after the study
            r = CliRunner().invoke(app, ["space", "contains", str(study / "space.yaml"), str(d / "genotype.yaml")])
            assert r.exit_code == 0 and f"yes: tiny-{m['tier']}" in r.output, r.output
        else:
            assert m["trial"] in {t["trial"] for t in trained} and m["accuracy"] is None
        assert load(d / "genotype.yaml").name == f"tiny-{m['tier']}"
    _check_onnx_against_torchscript(out / fam["members"][0]["tier"])
    md = (out / "family.md").read_text()
    assert "| s |" in md and "trained: trial" in md


def test_export_best_train_trains_the_members_at_target_size_on_the_users_data(tmp_path):
    """`--train --data digits`: each member trained at its target size (32 px, width 1.0) with the proxy recipe,
    its head sized to the data's 10 classes, into <tier>/trained/ with loadable weights, TorchScript and ONNX."""
    from nas.model import build

    study = make_study(tmp_path, n=24)
    out = tmp_path / "fam"
    r = CliRunner().invoke(app, ["export-best", "--study", str(study), "--tiers", "s", "--no-measure", "--no-eval",
                                 "--train", "--data", "digits", "--train-epochs", "1", "--out", str(out)])
    assert r.exit_code == 0, r.output
    d = out / "s" / "trained"
    info = json.loads((d / "train.json").read_text())
    assert info["data"] == "digits" and info["epochs"] == 1 and info["num_classes"] == 10
    assert info["recipe"]["resolution"] == 32 and info["recipe"]["width"] == 1.0 and 0 <= info["val_accuracy"] <= 1
    assert info["onnx_max_abs_diff"] <= 1e-4 and info["threads"] >= 1
    g = load(out / "s" / "genotype.yaml")
    net = build(g, num_classes=10)
    net.load_state_dict(torch.load(d / "weights.pt", weights_only=True))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ts = torch.jit.load(str(d / "model.ts"))
    x = torch.randn(2, 3, 32, 32)
    with torch.inference_mode():
        assert ts(x).shape == (2, 10)
        assert torch.allclose(ts(x), net.eval()(x), atol=1e-4)  # the fused trained network is the trained one
    md = (out / "family.md").read_text()
    assert "## Trained on your data (`--train`)" in md and "| s | digits | 10 | 1 |" in md
    bad = CliRunner().invoke(app, ["export-best", "--study", str(study), "--train"])
    assert isinstance(bad.exception, InputError) and "--train: needs --data" in str(bad.exception)  # main(): exit 2
