"""The shipped reference genotypes against their published parameter counts and MACs."""

from __future__ import annotations

from pathlib import Path

import pytest

from nas.cost.macs import REFERENCES, count
from nas.genotype import load, scale

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
    assert abs(c.params - pub.params) <= 0.01 * pub.params, f"{name}: {c.params:,} params vs {pub.params:,}"
    assert abs(c.macs - pub.macs) <= 0.02 * pub.macs, f"{name}: {c.macs:,} MACs vs {pub.macs:,}"
    # Papers print conv+linear MACs (GhostNet, MobileNets) or more than that (MixNet counts elementwise ops too).
    assert c.macs <= pub.macs_paper * 1.01


@pytest.mark.parametrize("name", NAMES)
def test_reference_count_matches_built_module(name):
    pytest.importorskip("nas.model")
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from nas.model import build

    torch.set_num_threads(1)
    g = load(REF_DIR / f"{name}.yaml")
    model = build(g, 1000).eval()
    assert sum(p.numel() for p in model.parameters()) == count(g).params
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
    """The MixNet paper's FLOPs exceed conv+linear MACs; GhostNet/MobileNet papers print conv+linear MACs."""
    for name in NAMES:
        c, pub = count(load(REF_DIR / f"{name}.yaml")), REFERENCES[name]
        gap = (pub.macs_paper - c.macs) / pub.macs_paper
        assert (gap > 0.015) == name.startswith("mixnet"), f"{name}: {gap:.3f}"
