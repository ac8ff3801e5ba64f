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
    """Channels per MixConv group, from the smallest kernel to the largest; any ``channels >= groups`` works.

    ``equal``: ``channels // groups`` each, the remainder to the first group (timm ``_split_channels``):
    64 ch, 4 groups -> (16, 16, 16, 16). ``exponential`` (MixConv paper): group i gets ``channels / 2**(i+1)``
    and the last group as much as the one before it, rounded down, the remainder to the first group:
    64 ch, 4 groups -> (32, 16, 8, 8); 30 ch -> (17, 7, 3, 3). Shares are non-increasing and at least one
    channel each: when ``channels < 2**(groups-1)`` the small groups get one channel and the first group
    gives up what they need (8 ch, 5 groups -> (3, 2, 1, 1, 1)).
    """
    if groups < 1 or channels < groups:
        raise ValueError(f"{channels} channels cannot be split into {groups} groups of at least one channel")
    if groups == 1:
        return (channels,)
    if split == "equal":
        sizes = [channels // groups] * groups
    elif split == "exponential":
        sizes = [max(1, channels >> min(i + 1, groups - 1)) for i in range(groups)]
        while sum(sizes) > channels:  # only when the one-channel floor lifted the small groups
            sizes[0] -= 1
            sizes.sort(reverse=True)
    else:
        raise ValueError(f"unknown split {split!r}")
    sizes[0] += channels - sum(sizes)
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


def cw_window(groups: int) -> int:
    """Window ``dc`` of the ChannelNets group channel-wise convolution with ``groups`` groups.

    Each of the ``g`` channel-wise convs slides a window of ``dc >= g`` channels with stride ``g``, so its
    ``C / g`` outputs together read every input channel (the paper's condition). ``dc = 4g`` is the
    authors' code (``conv_group_block``: a ``(4 * group, 1, 1)`` kernel, stride ``group``): in
    ChannelNet-v1 (g = 2) each fusion layer has ``g * dc = 16`` weights, 32 for its two GCWMs."""
    return 4 * groups


def cw_padding(groups: int) -> int:
    """Zero padding on each end of the channel axis for :func:`cw_window`: ``2g - 1`` gives exactly
    ``C / g`` windows for ``C`` channels (``C`` a multiple of ``g``)."""
    return 2 * groups - 1


#: Window of the channel-wise conv that replaces the 1x1 conv in ChannelNets' depth-wise separable
#: channel-wise convolution (DWSCW): stride 1, ``dc = 3``, one output per input channel.
DWSCW_WINDOW = 3
