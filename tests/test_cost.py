"""Analytic cost (nas.cost.macs) against the built module, and genotype round trips."""

from __future__ import annotations

import dataclasses
import json
import random

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from nas.cost.macs import Cost, breakdown, count
from nas.genotype import ACTS, BlockSpec, Genotype, GenotypeError, HeadSpec, StemSpec, from_dict, ghost_channels, loads


def random_block(rng: random.Random, stride: int, cin: int = 16) -> BlockSpec:
    """A valid block drawn from the whole space (channel counts are multiples of 8, so any group count fits)."""
    out = rng.choice([16, 24, 32])
    common = dict(
        out=out, stride=stride, act=rng.choice(ACTS),
        se=rng.choice([0.0, 0.0, 0.25, 0.5]), se_base=rng.choice(["in", "mid"]),
        se_gate=rng.choice(["sigmoid", "hsigmoid"]), se_divisor=rng.choice([1, 4, 8]),
        se_act=rng.choice([None, "relu", "hswish"]), ghost_kernel=rng.choice([1, 3, 5]),
    )
    g = rng.randint(1, 5)
    kernels = tuple(sorted(rng.sample([1, 3, 5, 7, 9, 11], g))) if rng.random() < 0.3 else tuple(range(3, 2 * g + 2, 2))
    depthwise = dict(kernels=kernels, split=rng.choice(["equal", "exponential"]), dilation=rng.choice([1, 1, 2]),
                     acb=rng.random() < 0.3)
    kind = rng.choices(["ghost", "ir", "dws", "gm", "shuffle"], [0.2, 0.4, 0.15, 0.1, 0.15])[0]
    if kind == "ghost":
        return BlockSpec(kind="ghost", kernels=(rng.choice([3, 5]),), ghost=rng.randint(1, 4),
                         expand=rng.choice([1.0, 3.0, 6.0]), acb=rng.random() < 0.3, **common)
    if kind in ("dws", "gm"):
        proj = rng.choice(["conv", "cw"])
        if kind == "dws" and proj == "cw":
            common["out"] = cin  # DWSCW keeps the width
        return BlockSpec(kind=kind, proj=proj, proj_groups=rng.choice([1, 2, 4]), **depthwise, **common)
    if kind == "shuffle":
        if stride == 2:  # the pooled input is concatenated: out = cin + branch
            common["out"] = cin + rng.choice([8, 16, 24])
        return BlockSpec(kind="shuffle", exp_groups=rng.choice([1, 2, 4]), proj_groups=rng.choice([1, 2, 4]),
                         expand=rng.choice([0.5, 1.0]), mid=rng.choice([None, None, 24]), **depthwise, **common)
    ghost = rng.choice([1, 1, 2, 3, 4])
    groups = (1, 1) if ghost > 1 else (rng.choice([1, 2, 4]), rng.choice([1, 2, 4]))
    return BlockSpec(
        expand=rng.choice([1.0, 3.0, 6.0]), mid=rng.choice([None, None, None, 40]),
        exp_groups=groups[0], proj_groups=groups[1], shuffle=rng.random() < 0.5,
        ghost=ghost, proj=rng.choice(["conv", "conv", "cw"]), **depthwise, **common,
    )


def random_genotype(rng: random.Random) -> Genotype:
    stem = StemSpec(out=rng.choice([16, 24]), kernel=rng.choice([1, 3, 5]), stride=rng.choice([1, 2]),
                    act=rng.choice(ACTS), acb=rng.random() < 0.3, pool=rng.random() < 0.2)
    stages, cin = [], stem.out
    for _ in range(rng.randint(1, 4)):
        stage = []
        for i in range(rng.randint(1, 3)):
            b = random_block(rng, rng.choice([1, 2]) if i == 0 else 1, cin)
            stage.append(b)
            cin = b.out
        stages.append(tuple(stage))
    head = HeadSpec(features=rng.choice([0, 32, 48]), hidden=rng.choice([0, 0, 24]), act=rng.choice(ACTS),
                    kind=rng.choice(["fc", "cw"]), dropout=0.0)
    return Genotype(stages=tuple(stages), stem=stem, head=head, resolution=rng.choice([32, 33, 45, 48, 64]))


def num_classes(rng: random.Random, g: Genotype) -> int:
    """A class count the head can take (a cw classifier needs at least that many channels)."""
    c = g.head.hidden or g.head.features or g.last_channels
    return rng.choice([n for n in (10, 100, 1000) if g.head.kind == "fc" or n <= c])


def measured(g: Genotype, num_classes: int, deployed: bool = False) -> Cost:
    """Parameters and MACs of the built module (``deployed``: of its fused copy), counted by torch itself."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from nas.model import build, deploy

    torch.manual_seed(0)
    model = build(g, num_classes).eval()
    if deployed:
        model = deploy(model)
    x = torch.randn(1, g.in_chans, g.resolution, g.resolution)
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        model(x)
    return Cost(macs=fc.get_total_flops() // 2, params=sum(p.numel() for p in model.parameters()))


def without_acb(g: Genotype) -> Genotype:
    return g.replace(stem=dataclasses.replace(g.stem, acb=False),
                     stages=tuple(tuple(dataclasses.replace(b, acb=False) for b in s) for s in g.stages))


def test_count_matches_built_module_on_random_genotypes():
    import torch

    torch.set_num_threads(1)
    rng = random.Random(1234)
    for i in range(50):
        g = random_genotype(rng)
        nc = num_classes(rng, g)
        want, got = measured(g, nc), count(g, num_classes=nc, deployed=False)  # the training-time module
        assert got.params == want.params, f"#{i} params {got.params} != {want.params}: {g.to_json()}"
        assert got.macs == want.macs, f"#{i} MACs {got.macs} vs {want.macs}: {g.to_json()}"


def test_acb_is_counted_at_its_deployed_cost():
    """ACB folds into one k x k conv: the default count is the deployed network's, equal to the same genotype
    without ACB, and to FlopCounterMode on the deployed module; only ``deployed=False`` sees the branches."""
    import torch

    torch.set_num_threads(1)
    rng = random.Random(99)
    seen = 0
    while seen < 25:
        g = random_genotype(rng)
        if not (g.stem.acb or any(b.acb for b in g.blocks)):
            continue
        seen += 1
        nc = num_classes(rng, g)
        plain = without_acb(g)
        got = count(g, num_classes=nc)
        assert got == count(plain, num_classes=nc) == measured(plain, nc)
        assert got.macs == measured(g, nc, deployed=True).macs, g.to_json()
        train = count(g, num_classes=nc, deployed=False)
        assert train.params >= got.params and train.macs >= got.macs
    # ghost bottlenecks with ACB on their depthwise convs (stride 2 and the shortcut's) are in the mix
    ghost = BlockSpec(out=24, kind="ghost", stride=2, kernels=(5,), expand=3.0, ghost=2, acb=True)
    g = _one_block(ghost)
    assert count(g, deployed=False).params - count(g).params == (24 * 10 + 4 * 24) + (8 * 10 + 4 * 8)
    assert count(g) == count(without_acb(g)) and count(g).macs == measured(g, 1000, deployed=True).macs


def test_count_covers_every_option():
    """The generator really exercises each contract feature (else the test above proves little)."""
    rng = random.Random(1234)
    gs = [random_genotype(rng) for _ in range(50)]
    blocks = [b for g in gs for b in g.blocks]
    assert {len(b.kernels) for b in blocks if b.kind == "ir"} == {1, 2, 3, 4, 5}
    assert {b.ghost for b in blocks} == {1, 2, 3, 4}
    assert {b.kind for b in blocks} == {"ir", "ghost", "dws", "gm", "shuffle"}
    assert {(b.kind, b.proj) for b in blocks if b.kind in ("dws", "gm")} == {
        (k, p) for k in ("dws", "gm") for p in ("conv", "cw")}  # DWSCW, GM, GCWM and the plain MobileNet layer
    assert {b.stride for b in blocks if b.kind == "shuffle"} == {1, 2} and any(g.stem.pool for g in gs)
    assert any(b.acb for b in blocks if b.kind in ("dws", "gm", "shuffle", "ghost"))
    assert {b.split for b in blocks} == {"equal", "exponential"}
    assert {b.proj for b in blocks} == {"conv", "cw"}
    assert {(b.se_base, b.se_divisor) for b in blocks if b.se} >= {("in", 1), ("mid", 4), ("mid", 8)}
    assert any(b.acb for b in blocks) and any(b.shuffle and b.exp_groups > 1 for b in blocks)
    assert any(b.stride == 2 and b.kind == "ghost" for b in blocks)
    assert {(g.head.kind, bool(g.head.features), bool(g.head.hidden)) for g in gs} >= {
        ("fc", True, True), ("fc", False, False), ("cw", True, False), ("cw", False, True)}


def test_breakdown_sums_to_count_and_resolution_argument():
    rng = random.Random(7)
    for _ in range(30):
        g = random_genotype(rng)
        rows = breakdown(g, num_classes=10)
        c = count(g, num_classes=10)
        assert [r.part for r in rows] == ["stem", *(f"stage {i}" for i in range(len(g.stages))), "head"]
        assert sum(r.macs for r in rows) == c.macs and sum(r.params for r in rows) == c.params
        big = count(g, 96, num_classes=10)
        assert big.params == c.params and big.macs > c.macs
        if g.head.kind == "fc" or g.head.hidden:
            assert big == count(g.replace(resolution=96), num_classes=10)
        else:  # the cw classifier keeps the kernel it was built with; the model pools to it first
            assert big.params != count(g.replace(resolution=96), num_classes=10).params


def test_cw_classifier_needs_enough_channels():
    g = _one_block(BlockSpec(out=8)).replace(head=HeadSpec(features=0, kind="cw"))
    assert count(g, num_classes=8).params == count(g, num_classes=1).params - 7 * 16 * 16
    with pytest.raises(GenotypeError, match="head.kind"):
        count(g, num_classes=9)


def test_hand_computed_mobilenet_block():
    # 16 -> expand 6 (96) -> dw 3x3 stride 2 -> project 24, at 32x32 input (16x16 after the dw conv).
    b = BlockSpec(out=24, stride=2, kernels=(3,), expand=6.0)
    g = Genotype(stages=((b,),), stem=StemSpec(out=16, stride=1), head=HeadSpec(features=0), resolution=32)
    stem = (3 * 16 * 9 * 32 * 32, 3 * 16 * 9 + 32)
    expand = (16 * 96 * 32 * 32, 16 * 96 + 192)
    dw = (96 * 9 * 16 * 16, 96 * 9 + 192)
    proj = (96 * 24 * 16 * 16, 96 * 24 + 48)
    fc = (24 * 10, 24 * 10 + 10)
    parts = [stem, expand, dw, proj, fc]
    assert count(g, num_classes=10) == Cost(sum(m for m, _ in parts), sum(p for _, p in parts))


def test_hand_computed_ghost_and_mixconv_details():
    # Ghost module out=5, s=3: primary 2 channels, cheap 2*2=4 channels computed, sliced to 5.
    assert ghost_channels(5, 3) == (2, 4)
    base = dict(out=8, kernels=(3,), mid=8, proj_groups=1)
    plain = count(_one_block(BlockSpec(**base)))
    ghost = count(_one_block(BlockSpec(**{**base, "mid": 5, "ghost": 3, "ghost_kernel": 3})))
    r = 16
    expand = (8 * 2 + 4 * 9) * r * r, 8 * 2 + 4 * 9 + 2 * 6  # primary 8->2, cheap 2->4 (3x3 depthwise)
    dw = 5 * 9 * r * r, 5 * 9 + 10
    proj = (5 * 3 + 6 * 9) * r * r, 5 * 3 + 6 * 9 + 2 * 9  # primary 5->3, cheap 3->6, sliced to 8
    stem_fc = count(_one_block(BlockSpec(**base))).params - (8 * 8 + 16 + 8 * 9 + 16 + 8 * 8 + 16)
    assert ghost.params == stem_fc + expand[1] + dw[1] + proj[1]
    assert ghost.macs - plain.macs == (expand[0] + dw[0] + proj[0]) - (8 * 8 + 8 * 9 + 8 * 8) * r * r
    # Exponential split of 64 channels into kernels 3,5,7,9 -> 32,16,8,8; ACB adds 2k per kernel tap row.
    mix = BlockSpec(out=8, kernels=(3, 5, 7, 9), split="exponential", mid=64)
    mix_acb = dataclasses.replace(mix, acb=True)
    dw_mix = (32 * 9 + 16 * 25 + 8 * 49 + 8 * 81)
    dw_acb = (32 * 15 + 16 * 35 + 8 * 63 + 8 * 99)
    trained = count(_one_block(mix_acb), deployed=False)
    assert trained.macs - count(_one_block(mix)).macs == (dw_acb - dw_mix) * r * r
    assert trained.params - count(_one_block(mix)).params == (dw_acb - dw_mix) + 6 * 64 - 2 * 64
    assert count(_one_block(mix_acb)) == count(_one_block(mix))  # deployed: ACB folded away


def _one_block(b: BlockSpec) -> Genotype:
    return Genotype(stages=((b,),), stem=StemSpec(out=8, stride=1), head=HeadSpec(features=0), resolution=16)


# -- genotype round trip and hash stability -------------------------------------

def _shuffled(obj, rng: random.Random):
    if isinstance(obj, dict):
        items = list(obj.items())
        rng.shuffle(items)
        return {k: _shuffled(v, rng) for k, v in items}
    if isinstance(obj, list):
        return [_shuffled(v, rng) for v in obj]
    return obj


def _expand_repeats(d: dict) -> dict:
    stages = []
    for stage in d["stages"]:
        blocks = []
        for b in stage["blocks"]:
            b = dict(b)
            n = b.pop("repeat", 1)
            blocks.append(b)
            blocks.extend([{**b, "stride": 1}] * (n - 1))
        stages.append({"blocks": blocks})
    return {**d, "stages": stages}


@settings(max_examples=60, deadline=None)
@given(st.randoms(use_true_random=False))
def test_round_trip_and_hash_stability(rng):
    g = random_genotype(rng)
    assert loads(g.to_yaml()) == g and loads(g.to_yaml()).hash == g.hash
    assert from_dict(json.loads(g.to_json())) == g and from_dict(json.loads(g.to_json())).hash == g.hash
    d = g.to_dict()
    assert from_dict(_shuffled(d, rng)).hash == g.hash  # key order
    assert from_dict(_expand_repeats(d)).hash == g.hash  # repeat sugar
    assert from_dict(g.to_dict(compact=False)).hash == g.hash  # defaults spelt out
    text = yaml.safe_dump(_shuffled(d, rng), sort_keys=False)
    assert loads(text) == g and count(loads(text), num_classes=10) == count(g, num_classes=10)
    assert g.replace(name="other").hash == g.hash


def test_hash_changes_with_the_network():
    rng = random.Random(3)
    g = random_genotype(rng)
    b = g.stages[0][0]
    changed = g.replace(stages=((dataclasses.replace(b, out=b.out + 8), *g.stages[0][1:]), *g.stages[1:]))
    assert changed.hash != g.hash and g.replace(resolution=g.resolution + 1).hash != g.hash
