"""Depthwise separable layers (MobileNetV1, ``kind="dws"``) and ChannelNets' group modules (``kind="gm"``).

Layer lists follow the docstring of ``nas/genotype.py``, which the analytic
counter ``nas/cost/macs.py`` follows too.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from nas.ops.acb import ConvBnAct
from nas.ops.act import get_act
from nas.ops.channelwise import ChannelWiseBnAct, group_channel_wise
from nas.ops.mixconv import MixConv2d


class DepthwiseSeparable(nn.Module):
    """MobileNetV1 layer: depthwise MixConv + BN -> act -> 1x1 conv + BN -> act (no residual).

    ``proj="conv"``: the 1x1 conv ``cin -> out`` in ``proj_groups`` groups.
    ``proj="cw"``: ChannelNets' depth-wise separable channel-wise conv
    (DWSCW): a 3-tap channel-wise conv with stride 1 replaces the 1x1 conv
    (``cin == out``). ``acb``: the depthwise groups train as ACBs.
    """

    def __init__(self, cin: int, out: int, kernels: Sequence[int] = (3,), *, stride: int = 1, split: str = "equal",
                 dilation: int = 1, act: str = "relu", acb: bool = False, proj: str = "conv", proj_groups: int = 1):
        super().__init__()
        self.dw = MixConv2d(cin, tuple(kernels), stride, split, dilation, acb)
        self.act = get_act(act)
        if proj == "cw":
            if cin != out:
                raise ValueError(f"a channel-wise (DWSCW) layer keeps its width, got {cin} -> {out}")
            self.pw: nn.Module = ChannelWiseBnAct(out, act=act)
        else:
            self.pw = ConvBnAct(cin, out, 1, groups=proj_groups, act=act)

    def forward(self, x: Tensor) -> Tensor:
        return self.pw(self.act(self.dw(x)))


class GroupModule(nn.Module):
    """ChannelNets group module (GM), or group channel-wise module (GCWM) with ``fuse``.

    [GCWM: group channel-wise conv on ``cin`` channels, ``groups`` groups] ->
    depthwise separable layer ``cin -> out`` (stride, 1x1 conv in ``groups``
    groups) -> depthwise separable layer ``out -> out`` (1x1 conv in
    ``groups`` groups), plus the input when ``stride == 1 and cin == out``
    (the paper's skip connection). Grouped 1x1 convs keep the groups apart;
    the GCWM's fusion in front gives every group features of all input
    channels (ChannelNet-v1 has two GCWMs before a GM, ``groups = 2``).
    """

    def __init__(self, cin: int, out: int, kernels: Sequence[int] = (3,), *, groups: int = 2, fuse: bool = False,
                 stride: int = 1, split: str = "equal", dilation: int = 1, act: str = "relu", acb: bool = False):
        super().__init__()
        if groups < 2 or cin % groups or out % groups:
            raise ValueError(f"group module: {groups} groups must be >= 2 and divide {cin} -> {out}")
        self.fuse: nn.Module = group_channel_wise(groups) if fuse else nn.Identity()
        common = dict(split=split, dilation=dilation, act=act, acb=acb, proj_groups=groups)
        self.layers = nn.Sequential(DepthwiseSeparable(cin, out, kernels, stride=stride, **common),
                                    DepthwiseSeparable(out, out, kernels, **common))
        self.residual = stride == 1 and cin == out

    def forward(self, x: Tensor) -> Tensor:
        y = self.layers(self.fuse(x))
        return x + y if self.residual else y
