"""The ShuffleNet v1 unit (Zhang et al. 2018, Fig. 2 b/c), ``kind="shuffle"``."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from nas.ops.acb import ConvBnAct
from nas.ops.act import get_act
from nas.ops.channelwise import ChannelShuffle
from nas.ops.mixconv import MixConv2d


class ShuffleUnit(nn.Module):
    """Grouped 1x1 + BN + act -> channel shuffle -> depthwise + BN (no act) -> grouped 1x1 + BN -> merge.

    The first 1x1 conv maps ``cin -> mid`` in ``exp_groups`` groups
    (ShuffleNet leaves the very first unit's ungrouped), the shuffle and the
    second 1x1 conv use ``proj_groups`` groups. Stride 1: ``act(x + y)``
    (``act(y)`` when ``cin != out``). Stride 2: the input through a 3x3
    average pool (stride 2, padding 1) concatenated with ``act(y)``, so the
    branch makes ``out - cin`` channels. The depthwise conv is a MixConv
    (``kernels``; ShuffleNet's is one 3x3), an ACB per group with ``acb``.
    """

    def __init__(self, cin: int, mid: int, out: int, kernels: Sequence[int] = (3,), *, stride: int = 1,
                 split: str = "equal", dilation: int = 1, act: str = "relu", acb: bool = False, exp_groups: int = 1,
                 proj_groups: int = 1):
        super().__init__()
        self.concat = stride == 2
        branch = out - cin if self.concat else out
        if branch < 1:
            raise ValueError(f"a stride-2 shuffle unit needs out > cin, got {cin} -> {out}")
        self.expand = ConvBnAct(cin, mid, 1, groups=exp_groups, act=act)
        self.shuffle: nn.Module = ChannelShuffle(proj_groups) if proj_groups > 1 else nn.Identity()
        self.dw = MixConv2d(mid, tuple(kernels), stride, split, dilation, acb)
        self.project = ConvBnAct(mid, branch, 1, groups=proj_groups)
        self.act = get_act(act)
        self.pool: nn.Module = nn.AvgPool2d(3, 2, 1) if self.concat else nn.Identity()
        self.residual = stride == 1 and cin == out

    def forward(self, x: Tensor) -> Tensor:
        y = self.project(self.dw(self.shuffle(self.expand(x))))
        if self.concat:
            return torch.cat([self.pool(x), self.act(y)], 1)
        return self.act(x + y) if self.residual else self.act(y)
