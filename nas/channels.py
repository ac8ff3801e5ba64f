"""Channel and feature-map arithmetic, the one copy every layer uses (torch-free).

Builder (``nas.ops``), analytic counter (``nas.cost``), search space and
genotype must agree to the channel on these numbers, so each rule is written
once, here: divisible rounding (MobileNet/timm), the MixConv split of a
depthwise conv's channels, the ghost module's primary/cheap channels and the
side of a "same"-padded strided feature map.
"""

from __future__ import annotations

import math


def make_divisible(v: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round ``v`` to a multiple of ``divisor`` as the MobileNet/timm code does (never below 90% of ``v``)."""
    min_value = min_value or divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


def split_channels(channels: int, groups: int, split: str = "equal") -> tuple[int, ...]:
    """Channels per MixConv group.

    ``equal``: ``channels // groups`` each, the remainder to the first group
    (timm ``_split_channels``). ``exponential``: group i gets
    ``channels / 2**(i+1)``, the last group takes the rest (MixConv paper):
    64 ch, 4 groups -> (32, 16, 8, 8); 24 ch, 3 groups -> (12, 6, 6).
    """
    if groups == 1:
        return (channels,)
    if split == "equal":
        sizes = [channels // groups] * groups
        sizes[0] += channels - sum(sizes)
    elif split == "exponential":
        sizes = [channels // 2 ** (i + 1) for i in range(groups - 1)]
        sizes.append(channels - sum(sizes))
    else:
        raise ValueError(f"unknown split {split!r}")
    return tuple(sizes)


def ghost_channels(out: int, ratio: int) -> tuple[int, int]:
    """(primary, cheap) channel counts of a ghost module producing ``out`` with ratio ``s``: the primary conv
    makes ``ceil(out / s)``, the cheap depthwise ops ``(s - 1)`` times as many (the concat is sliced to ``out``)."""
    init = math.ceil(out / ratio)
    return init, init * (ratio - 1)


def ceil_div(a: int, b: int) -> int:
    """``ceil(a / b)`` for non-negative integers, without floats."""
    return -(-a // b)


def out_size(r: int, stride: int) -> int:
    """Side of the feature map a "same"-padded layer of ``stride`` makes from an ``r x r`` input."""
    return ceil_div(r, stride)


def cw_groups(proj_groups: int) -> int:
    """Groups of the ChannelNets group channel-wise project for ``proj_groups``: it needs at least two,
    so 1 and 2 build the same module."""
    return max(proj_groups, 2)
