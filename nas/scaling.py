"""Compound scaling of a genotype (EfficientNet/MixNet): every width times a factor, every stage's depth too."""

from __future__ import annotations

import dataclasses
import math

from nas.channels import make_divisible
from nas.genotype import Genotype


def scale(g: Genotype, width: float = 1.0, depth: float = 1.0, *, divisor: int = 8,
          scale_head: bool = False) -> Genotype:
    """Compound-scale a genotype (EfficientNet/MixNet style).

    Every block's ``out`` and ``mid`` and the stem are ``make_divisible(c * width,
    divisor)``; each stage's depth becomes ``ceil(n * depth)`` by repeating its
    last block. MixNet-L is MixNet-M at ``width=1.3`` with the head kept, as in
    the reference implementation; GhostNet 0.5x and 1.3x round to 4 and scale
    the head's features conv (``divisor=4, scale_head=True``). When a grouped
    conv's group count does not divide ``divisor`` (ShuffleNet's 3 groups),
    channels round to the least common multiple instead, so the scaled
    network's groups still divide its channels.
    """
    groups = {gr for b in g.blocks for gr in (b.exp_groups, b.proj_groups)}
    unit = math.lcm(divisor, *groups)

    def w(c: int) -> int:
        return c if width == 1.0 else make_divisible(c * width, unit)

    stages = []
    for stage in g.stages:
        blocks = [dataclasses.replace(b, out=w(b.out), mid=None if b.mid is None else w(b.mid))
                  for b in stage]
        n = math.ceil(len(blocks) * depth)
        while len(blocks) < n:
            blocks.append(dataclasses.replace(blocks[-1], stride=1))
        stages.append(tuple(blocks[:n]))
    head = g.head
    if scale_head:
        head = dataclasses.replace(head, features=w(head.features) if head.features else 0)
    return dataclasses.replace(g, stages=tuple(stages), stem=dataclasses.replace(g.stem, out=w(g.stem.out)),
                               head=head)
