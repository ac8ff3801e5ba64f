"""The shipped reference genotypes against their published parameter counts and MACs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _cli import run_cli

from nas.cost.macs import REFERENCES, count
from nas.genotype import load
from nas.scaling import scale

REF_DIR = Path(__file__).resolve().parent.parent / "search_spaces" / "reference"
NAMES = sorted(REFERENCES)


def test_every_reference_is_shipped_and_named():
    assert sorted(p.stem for p in REF_DIR.glob("*.yaml")) == NAMES
    for name in NAMES:
        g = load(REF_DIR / f"{name}.yaml")
        assert g.name == name and g.resolution == 224
        assert (REF_DIR / f"{name}.yaml").read_text().startswith("#")  # header citing the source


@pytest.mark.parametrize("name", NAMES)
def test_reference_matches_published_figures(name):
    g = load(REF_DIR / f"{name}.yaml")
    pub = REFERENCES[name]
    c = count(g)
    tol = pub.params_tol
    assert abs(c.params - pub.params) <= tol * pub.params, f"{name}: {c.params:,} params vs {pub.params:,}"
    if pub.macs is None:  # nothing comparable published (ChannelNets: see nas.cost.published)
        assert name.startswith("channelnet")
        return
    assert abs(c.macs - pub.macs) <= 0.02 * pub.macs, f"{name}: {c.macs:,} MACs vs {pub.macs:,}"
    # Papers print conv+linear MACs (GhostNet, MobileNets, ShuffleNet) or more (MixNet counts elementwise ops too).
    assert c.macs <= pub.macs_paper * 1.01


@pytest.mark.parametrize("name", NAMES)
def test_nas_describe_of_every_reference_is_within_the_published_figures(monkeypatch, capsys, tmp_path, name):
    monkeypatch.chdir(tmp_path)  # found by name among the shipped references
    code, out, _ = run_cli(monkeypatch, capsys, "describe", f"{name}.yaml", "--json")
    d, pub = json.loads(out), REFERENCES[name]
    assert code == 0 and d["name"] == name and d["resolution"] == 224
    assert d["params_paper"] == pub.params and d.get("macs_paper") == pub.macs_paper
    assert abs(d["params"] - pub.params) <= pub.params_tol * pub.params
    if pub.macs is not None:
        assert abs(d["macs"] - pub.macs) <= 0.02 * pub.macs


@pytest.mark.parametrize("name", NAMES)
def test_reference_count_matches_built_module(name):
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from nas.model import build

    torch.set_num_threads(1)
    g = load(REF_DIR / f"{name}.yaml")
    model = build(g, 1000).eval()
    assert sum(p.numel() for p in model.parameters()) == count(g, deployed=False).params == count(g).params
    r = 96  # MACs at a reduced input keep the test fast; the layer list is the same as at 224
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        model(torch.randn(1, 3, r, r))
    assert fc.get_total_flops() // 2 == count(g, r).macs


def test_mixnet_l_is_mixnet_m_scaled_by_1_3():
    m, l = load(REF_DIR / "mixnet_m.yaml"), load(REF_DIR / "mixnet_l.yaml")
    scaled = scale(m, 1.3)
    assert scaled == l and scaled.hash == l.hash
    assert l.stem.out == 32 and l.head.features == m.head.features == 1536


def test_mixnet_paper_gap_is_not_conv_macs():
    """The MixNet paper's FLOPs exceed conv+linear MACs; GhostNet, MobileNet and ShuffleNet papers print
    conv+linear MACs (ShuffleNet's 140M is its Table 1 complexity level, rounded: 2% over)."""
    for name in NAMES:
        c, pub = count(load(REF_DIR / f"{name}.yaml")), REFERENCES[name]
        if pub.macs is None or pub.macs_paper is None:
            continue
        gap = (pub.macs_paper - c.macs) / pub.macs_paper
        if name.startswith("mixnet"):
            assert gap > 0.015, f"{name}: {gap:.3f}"
        else:
            assert abs(gap) <= 0.02, f"{name}: {gap:.3f}"


@pytest.mark.parametrize(("width", "name"), [(0.5, "ghostnet_050"), (1.3, "ghostnet_130")])
def test_ghostnet_widths_are_ghostnet_100_scaled_with_the_papers_rounding(width, name):
    g, ref = load(REF_DIR / "ghostnet_100.yaml"), load(REF_DIR / f"{name}.yaml")
    scaled = scale(g, width, divisor=4, scale_head=True)
    assert scaled == ref and scaled.hash == ref.hash
    assert ref.head.features == 4 * round(960 * width / 4) and ref.head.hidden == 1280
    default = count(scale(g, width))  # rounding to 8, head kept: not the paper's network
    assert abs(default.params - REFERENCES[name].params) > 0.02 * REFERENCES[name].params


def test_channelnets_shrink_by_the_papers_steps():
    """v1 -> v2: a 1024 x 1024 1x1 conv becomes a 3-tap channel-wise conv; v2 -> v3: the 1024 x 1000 classifier
    (+ bias) becomes one 25 x 7 x 7 kernel; v1 vs MobileNetV1: six grouped layers for five dense ones, plus the
    32 weights of the two GCWMs' fusion convs."""
    v = [count(load(REF_DIR / f"channelnet_v{i}.yaml")).params for i in (1, 2, 3)]
    mobilenet = count(load(REF_DIR / "mobilenetv1_100.yaml")).params
    assert v[0] - v[1] == 1024 * 1024 - 3
    assert v[1] - v[2] == 1024 * 1000 + 1000 - 25 * 7 * 7
    dense, grouped = 512 * 9 + 2 * 512 + 512 * 512 + 2 * 512, 512 * 9 + 2 * 512 + 512 * 256 + 2 * 512
    assert mobilenet - v[0] == 5 * dense - 6 * grouped - 2 * 2 * 8


@pytest.mark.parametrize("name", NAMES)
def test_every_reference_trains_as_a_proxy_at_reduced_width(name):
    """``nas baselines`` trains every reference at a space's proxy width: the scaled network must stay buildable
    (ShuffleNet's 3 groups make the scaler round its channels to multiples of 24)."""
    from nas.proxy import proxy_genotype

    g = load(REF_DIR / f"{name}.yaml")
    for width in (0.25, 0.5):
        p = proxy_genotype(g, 32, width)
        assert p.resolution == 32 and p.last_size >= 2
        if name.startswith("shufflenet"):
            assert all(b.out % 24 == 0 for b in p.blocks) and p.stem.out % 24 == 0
