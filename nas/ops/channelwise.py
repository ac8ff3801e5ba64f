"""Ops that mix information across channel groups: channel shuffle (ShuffleNet) and channel-wise convs (ChannelNets).

A channel-wise convolution (Gao et al., ChannelNets) is a 1-D convolution
sliding along the channel axis with window ``dc`` and stride ``s``, its
weights shared over all pixels: output channel ``j`` of conv ``i`` is
``sum_t w_i[t] * x[j * s + t - p]`` (``p`` zero channels padded on each end).
It is run as a ``Conv3d`` with one input channel over the ``(C, H, W)``
volume, so its cost does not grow with the input channels: ``FlopCounterMode``
counts ``prod(output volume) * dc`` MACs, and it has ``dc`` weights per conv.

The paper's three uses, and their costs (``nas/cost/macs.py`` uses these):

* group channel-wise convolution (:func:`group_channel_wise`), the fusion
  layer of grouped convs: ``g`` channel-wise convs of window
  ``dc = cw_window(g) = 4g`` and stride ``g`` on ``C`` channels, ``C / g``
  outputs each, concatenated: ``g * dc`` params, ``C * dc`` MACs per pixel.
  Since ``dc >= g``, the outputs of every conv read all inputs.
* depth-wise separable channel-wise convolution (DWSCW,
  :class:`ChannelWiseBnAct`): a channel-wise conv of ``dc = 3``, stride 1,
  replaces the 1x1 conv after a depthwise conv (``C -> C``): ``3 + 2C``
  params with its BN, ``3C`` MACs per pixel.
* convolutional classification layer (:class:`ChannelWiseClassifier`):
  one 3-D kernel of ``dc x h x h`` with ``dc = C - classes + 1``.

:class:`GroupChannelWise` (``proj: cw`` of an inverted residual) is a
grouped 1x1 conv + BN followed by the group channel-wise fusion:
``out * cin / g + 2 * out + g * dc`` params, ``out * (cin / g + dc)`` MACs
per pixel.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nas.channels import DWSCW_WINDOW, cw_padding, cw_window
from nas.ops.acb import ConvBnAct
from nas.ops.act import get_act


class ChannelShuffle(nn.Module):
    """Interleave ``groups`` channel groups so the next grouped conv sees all of them (ShuffleNet)."""

    def __init__(self, groups: int):
        super().__init__()
        self.groups = groups

    def forward(self, x: Tensor) -> Tensor:
        n, c, h, w = x.shape
        return x.reshape(n, self.groups, c // self.groups, h, w).transpose(1, 2).reshape(n, c, h, w)


class ChannelWiseConv(nn.Module):
    """``convs`` channel-wise convs of ``window`` taps, ``stride`` and ``padding`` along channels, no bias.

    ``spatial`` extends the kernel over ``spatial x spatial`` pixels ("valid"),
    which is the convolutional classification layer. Input ``(N, C, H, W)``;
    output ``(N, convs * D, H', W')`` with ``D = (C + 2 * padding - window) //
    stride + 1``, conv ``i`` giving channels ``i*D .. (i+1)*D - 1``. Params
    ``convs * window * spatial**2``.
    """

    def __init__(self, window: int, convs: int = 1, stride: int = 1, padding: int = 0, spatial: int = 1):
        super().__init__()
        self.conv = nn.Conv3d(1, convs, (window, spatial, spatial), (stride, 1, 1), (padding, 0, 0), bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x.unsqueeze(1)).flatten(1, 2)


def group_channel_wise(groups: int) -> ChannelWiseConv:
    """The group channel-wise convolution of ``groups`` groups on any multiple of ``groups`` channels: ``g``
    convs of window ``cw_window(g)``, stride ``g``, ``C / g`` outputs each (group ``i`` = conv ``i``)."""
    if groups < 2:
        raise ValueError(f"a group channel-wise conv needs at least 2 groups, got {groups}")
    return ChannelWiseConv(cw_window(groups), convs=groups, stride=groups, padding=cw_padding(groups))


class GroupChannelWise(nn.Module):
    """Grouped 1x1 conv + BN, then a group channel-wise fusion (no BN, no act): ``proj: cw`` of an inverted residual.

    The grouped conv maps ``cin -> out`` in ``g`` groups (``g >= 2`` divides
    both); a grouped conv alone keeps the groups apart, and the fusion's
    ``g`` outputs groups each read every channel of every group (ChannelNets'
    fusion layer, :func:`group_channel_wise`). It replaces MobileNet's dense
    project conv; like it, it is linear. Deploy folds the BN into the grouped
    conv.
    """

    def __init__(self, cin: int, out: int, groups: int):
        super().__init__()
        if groups < 2 or cin % groups or out % groups:
            raise ValueError(f"group channel-wise module: {groups} groups must be >= 2 and divide {cin} -> {out}")
        self.conv = ConvBnAct(cin, out, 1, groups=groups)
        self.fuse = group_channel_wise(groups)

    def forward(self, x: Tensor) -> Tensor:
        return self.fuse(self.conv(x))


class ChannelWiseBnAct(nn.Module):
    """DWSCW's channel-wise layer: a ``window``-tap channel-wise conv (stride 1, one output per channel) + BN + act.

    ChannelNets-v2 puts it where MobileNet has the 1x1 conv of a depthwise
    separable layer (``C -> C``), saving ``C * C - 3`` weights. The BN has a
    scale per channel while the taps are shared, so deploy cannot fold it
    into the conv: it becomes a per-channel affine (no MACs counted, like BN).
    """

    def __init__(self, channels: int, window: int = DWSCW_WINDOW, act: str | None = None):
        super().__init__()
        self.cw = ChannelWiseConv(window, padding=(window - 1) // 2)
        self.bn = nn.BatchNorm2d(channels)
        self.act = get_act(act)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.bn(self.cw(x)))

    def fused(self) -> nn.Sequential:
        """Deploy form: the channel-wise conv, the BN as a per-channel scale and shift, the activation."""
        bn = self.bn
        scale = (bn.weight / torch.sqrt(bn.running_var + bn.eps)).detach()
        shift = (bn.bias - bn.running_mean * scale).detach()
        return nn.Sequential(copy.deepcopy(self.cw), ChannelAffine(scale, shift), type(self.act)())


class ChannelAffine(nn.Module):
    """``x * scale[c] + shift[c]``: a BatchNorm in eval mode that no conv can absorb."""

    def __init__(self, scale: Tensor, shift: Tensor):
        super().__init__()
        self.register_buffer("scale", scale.reshape(-1, 1, 1).clone())
        self.register_buffer("shift", shift.reshape(-1, 1, 1).clone())

    def forward(self, x: Tensor) -> Tensor:
        return x * self.scale + self.shift


class ChannelWiseClassifier(nn.Module):
    """Convolutional classification layer (ChannelNets-v3): one 3-D conv replaces global pool + fc.

    The kernel spans ``dc = channels - num_classes + 1`` channels and the
    whole ``size x size`` map ("valid"), so it outputs exactly
    ``num_classes`` values; ``size`` is the side of the map entering the
    classifier at the genotype's resolution (ChannelNet-v3: 1024 channels,
    7 x 7, 1000 classes: a 25 x 7 x 7 kernel, 1,225 weights instead of
    1,025,000). A map of another size is first average-pooled to
    ``size x size`` so any input resolution works. Params ``dc * size**2``;
    MACs ``num_classes * dc * size**2``.
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
