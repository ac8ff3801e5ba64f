"""Squeeze-and-excitation (Hu et al.), as MixNet/EfficientNet and MobileNetV3/GhostNet use it."""

from __future__ import annotations

from torch import Tensor, nn

from nas.ops.act import get_act


class SqueezeExcite(nn.Module):
    """Global average pool -> 1x1 conv ``channels -> rd`` (bias) -> act -> 1x1 conv ``rd -> channels`` (bias) -> gate.

    ``rd`` comes from ``BlockSpec.se_channels(cin)`` (ratio of the block input
    or of the mid channels, rounded as the genotype says). Params
    ``2 * channels * rd + rd + channels``; MACs ``2 * channels * rd`` (1x1 map).
    """

    def __init__(self, channels: int, rd: int, act: str = "relu", gate: str = "sigmoid"):
        super().__init__()
        self.reduce = nn.Conv2d(channels, rd, 1, bias=True)
        self.act = get_act(act)
        self.expand = nn.Conv2d(rd, channels, 1, bias=True)
        self.gate = get_act(gate)

    def forward(self, x: Tensor) -> Tensor:
        s = x.mean((2, 3), keepdim=True)
        return x * self.gate(self.expand(self.act(self.reduce(s))))
