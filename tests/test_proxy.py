"""Proxy networks: width, resolution and the early strides reduced at small inputs."""

from __future__ import annotations

import pytest
import torch

from nas.genotype import loads, make_divisible
from nas.proxy import final_size, proxy_genotype

FOUR_DOWN = loads("""
name: four_down
resolution: 224
stem: {out: 16, stride: 2}
stages:
- blocks: [{out: 16}]
- blocks: [{out: 24, stride: 2, expand: 3}, {out: 24, expand: 3}]
- blocks: [{out: 40, stride: 2, expand: 3, kernels: [3, 5]}]
- blocks: [{out: 80, stride: 2, expand: 3, se: 0.25}, {out: 96, expand: 3}]
- blocks: [{out: 160, stride: 2, expand: 6}]
head: {features: 320}
""")


def _strides(g):
    return [g.stem.stride] + [b.stride for b in g.blocks]


@pytest.mark.parametrize("resolution, strides, side", [
    (224, [2, 1, 2, 1, 2, 2, 1, 2], 7),  # the target: untouched
    (64, [2, 1, 2, 1, 2, 2, 1, 2], 2),   # 64 / 32 = 2 already
    (32, [1, 1, 2, 1, 2, 2, 1, 2], 2),   # stem first
    (16, [1, 1, 1, 1, 2, 2, 1, 2], 2),   # then the first stride-2 block
    (8, [1, 1, 1, 1, 1, 2, 1, 2], 2),
    (3, [1, 1, 1, 1, 1, 1, 1, 2], 2),    # ceil(3 / 2) = 2
])
def test_strides_reduced_in_order_until_two_by_two(resolution, strides, side):
    p = proxy_genotype(FOUR_DOWN, resolution)
    assert p.resolution == resolution
    assert _strides(p) == strides
    assert final_size(p) == side
    # a network's last map side, by hand: ceil-halve once per stride 2
    r = resolution
    for s in strides:
        r = -(-r // s)
    assert r == side


def test_width_scales_blocks_and_stem_but_keeps_head_and_kernels():
    p = proxy_genotype(FOUR_DOWN, 224, 0.5)
    assert [b.out for b in p.blocks] == [make_divisible(b.out * 0.5) for b in FOUR_DOWN.blocks]
    assert p.stem.out == make_divisible(16 * 0.5)
    assert p.head == FOUR_DOWN.head
    assert [(b.kernels, b.expand, b.se, b.stride) for b in p.blocks] == \
           [(b.kernels, b.expand, b.se, b.stride) for b in FOUR_DOWN.blocks]
    assert proxy_genotype(FOUR_DOWN) == FOUR_DOWN  # nothing asked, nothing changed


def test_proxy_builds_and_keeps_spatial_extent():
    from nas.model import build

    p = proxy_genotype(FOUR_DOWN, 16, 0.25)
    net = build(p, 10).eval()
    sizes = []
    net.stages[-1].register_forward_hook(lambda m, i, o: sizes.append(o.shape[-1]))
    with torch.no_grad():
        out = net(torch.randn(2, 3, 16, 16))
    assert out.shape == (2, 10) and sizes == [2]


def test_reference_proxies_stay_at_least_two_by_two():
    from nas.cli import resolve_path
    from nas.genotype import load

    for name in ("mixnet_s", "mobilenetv2_100", "ghostnet_100"):
        path = resolve_path(f"{name}.yaml")
        if not path.exists():
            pytest.skip(f"{name}.yaml not shipped")
        g = load(path)
        for r in (8, 16, 24, 32):
            p = proxy_genotype(g, r, 0.25)
            assert final_size(p) >= 2
            # the fewest strides removed: putting back the last one removed would drop below 2x2
            removed = [i for i, (a, b) in enumerate(zip(_strides(g), _strides(p), strict=True)) if a != b]
            if removed:
                back = _strides(p)
                back[removed[-1]] = 2
                side = r
                for s in back:
                    side = -(-side // s)
                assert side < 2
