"""Ops that mix information across channel groups: channel shuffle (ShuffleNet) and channel-wise convs (ChannelNets).

A channel-wise convolution (Gao et al., ChannelNets) is a 1-D convolution
sliding along the channel axis, its weights shared over all pixels: output
channel ``j`` is ``sum_t w[t] * x[j * stride + t * dilation]``. It is run as a
``Conv3d`` with one input channel over the ``(C, H, W)`` volume, so its cost
is independent of the number of input channels. ``FlopCounterMode`` counts it
as that Conv3d: ``prod(output volume) * convs * prod(kernel)`` MACs.

Cost formulas (the analytic counter ``nas/cost/macs.py`` must use these):

* :class:`GroupChannelWise` ``(cin, out, g)``, the project layer for
  ``proj == "cw"`` with ``g = max(proj_groups, 2)``, on an ``r x r`` map:
  params ``out * cin / g + 2 * out + g * g``;
  MACs ``r * r * out * (cin / g + g)``.
* :class:`ChannelWiseClassifier` ``(c, num_classes, h)``, the ``head.kind ==
  "cw"`` classifier, ``dc = c - num_classes + 1``, ``h`` the side of the
  map entering it (``1`` when ``head.hidden > 0``, which pools first):
  params ``dc * h * h``; MACs ``num_classes * dc * h * h``.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from nas.ops.acb import ConvBnAct


class ChannelShuffle(nn.Module):
    """Interleave ``groups`` channel groups so the next grouped conv sees all of them (ShuffleNet)."""

    def __init__(self, groups: int):
        super().__init__()
        self.groups = groups

    def forward(self, x: Tensor) -> Tensor:
        n, c, h, w = x.shape
        return x.reshape(n, self.groups, c // self.groups, h, w).transpose(1, 2).reshape(n, c, h, w)


class ChannelWiseConv(nn.Module):
    """``convs`` channel-wise convs of ``kernel`` taps (stride, dilation, padding along channels), no bias.

    ``spatial`` extends the kernel over ``spatial x spatial`` pixels ("valid"),
    which is the convolutional classification layer. Input ``(N, C, H, W)``;
    output ``(N, convs * D, H', W')`` with ``D = (C + 2*padding -
    dilation*(kernel-1) - 1) // stride + 1``, conv ``i`` giving channels
    ``i*D .. (i+1)*D - 1``. Params ``convs * kernel * spatial**2``.
    """

    def __init__(self, kernel: int, convs: int = 1, stride: int = 1, dilation: int = 1, padding: int = 0,
                 spatial: int = 1):
        super().__init__()
        self.conv = nn.Conv3d(1, convs, (kernel, spatial, spatial), (stride, 1, 1), (padding, 0, 0),
                              (dilation, 1, 1), bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x.unsqueeze(1)).flatten(1, 2)


class GroupChannelWise(nn.Module):
    """Group channel-wise module: grouped 1x1 conv + BN, then a group channel-wise fusion (no BN, no act).

    The grouped conv maps ``cin -> out`` in ``g`` groups (``g >= 2`` divides
    both). A grouped conv alone keeps the groups apart; the fusion is ``g``
    channel-wise convs, each of ``g`` taps with dilation ``out / g``, so tap
    ``t`` of output position ``j`` reads channel ``j`` of group ``t``: every
    output channel sees every group (ChannelNets' condition, met with the
    fewest taps). Each fusion conv yields ``out / g`` channels, ``out`` in
    all, with only ``g * g`` weights. It replaces MobileNet's dense project
    conv; like it, it is linear. Deploy folds the BN into the grouped conv.
    """

    def __init__(self, cin: int, out: int, groups: int):
        super().__init__()
        if groups < 2 or cin % groups or out % groups:
            raise ValueError(f"group channel-wise module: {groups} groups must be >= 2 and divide {cin} -> {out}")
        self.conv = ConvBnAct(cin, out, 1, groups=groups)
        self.fuse = ChannelWiseConv(groups, convs=groups, dilation=out // groups)

    def forward(self, x: Tensor) -> Tensor:
        return self.fuse(self.conv(x))


class ChannelWiseClassifier(nn.Module):
    """Convolutional classification layer (ChannelNets-v3): one 3-D conv replaces global pool + fc.

    The kernel spans ``dc = channels - num_classes + 1`` channels and the
    whole ``size x size`` map ("valid"), so it outputs exactly
    ``num_classes`` values; ``size`` is the side of the map entering the
    classifier at the genotype's resolution. A map of another size is first
    average-pooled to ``size x size`` so any input resolution works.
    Params ``dc * size**2``; MACs ``num_classes * dc * size**2``.
    """

    def __init__(self, channels: int, num_classes: int, size: int = 1):
        super().__init__()
        if channels < num_classes:
            raise ValueError(f"cw classifier needs at least num_classes={num_classes} channels, got {channels}")
        self.size = size
        self.cw = ChannelWiseConv(channels - num_classes + 1, spatial=size)

    def forward(self, x: Tensor) -> Tensor:
        # A no-op at the built resolution; unconditional so traced/exported graphs stay shape-generic.
        x = F.adaptive_avg_pool2d(x, self.size)
        return self.cw(x).flatten(1)
