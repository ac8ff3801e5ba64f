"""The proxy network: a target genotype made small enough to train in minutes.

A proxy keeps the target's blocks (kernels, SE, ghost, ACB, ...) and changes
only the input resolution, the width multiplier and, at small resolutions, the
earliest strides. Costs (MACs, params, latency) are always computed on the
target genotype; :func:`proxy_genotype` only decides which network is trained.
"""

from __future__ import annotations

import dataclasses

from nas.genotype import Genotype
from nas.scaling import scale

MIN_FEATURE = 2  # smallest side of the last feature map a proxy may have


def proxy_genotype(genotype: Genotype, resolution: int | None = None, width: float = 1.0, *,
                   min_feature: int = MIN_FEATURE) -> Genotype:
    """The genotype at the proxy's ``resolution`` and ``width`` multiplier.

    Width scales every block and the stem as ``nas.scaling.scale`` does
    (multiples of 8); the head keeps its features, as timm's MobileNet/MixNet
    do below width 1.0. When the last feature map would be smaller than
    ``min_feature`` x ``min_feature``, stride-2 layers become stride 1 in
    network order, stem first (the CIFAR variants of MobileNet drop the stem
    and first-stage strides the same way), so small inputs still leave some
    spatial extent for the deep blocks.
    """
    g = genotype if width == 1.0 else scale(genotype, width)
    if resolution is not None:
        g = g.replace(resolution=int(resolution))
    return reduce_strides(g, min_feature)


def final_size(g: Genotype) -> int:
    """Side of the last feature map (ceil division per stride, as 'same' padding gives)."""
    return g.last_size


def reduce_strides(g: Genotype, min_feature: int = MIN_FEATURE) -> Genotype:
    """Set stride-2 layers to 1, stem first (its max-pool, then its conv) then blocks in order, until the last
    map is >= ``min_feature``."""
    if g.resolution < min_feature:
        return g
    stem = g.stem
    stages = [list(s) for s in g.stages]
    positions = [(si, bi) for si, s in enumerate(stages) for bi, b in enumerate(s) if b.stride == 2]

    def current() -> Genotype:
        return dataclasses.replace(g, stem=stem, stages=tuple(tuple(s) for s in stages))

    if final_size(g) >= min_feature:
        return g
    if stem.pool:  # the stem's max-pool halves the map too: it goes first
        stem = dataclasses.replace(stem, pool=False)
    if stem.stride == 2 and final_size(current()) < min_feature:
        stem = dataclasses.replace(stem, stride=1)
    for si, bi in positions:
        if final_size(current()) >= min_feature:
            break
        stages[si][bi] = dataclasses.replace(stages[si][bi], stride=1)
    return current()
