"""Ghost module and ghost bottleneck (Han et al., GhostNet)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from nas.channels import ghost_channels
from nas.ops.acb import ConvBnAct, conv_bn


class GhostModule(nn.Module):
    """``out`` channels from a primary 1x1 conv and cheap depthwise ops.

    Primary: 1x1 conv ``cin -> init = ceil(out / s)`` + BN (+ act). Cheap:
    depthwise-multiplier ``d x d`` conv ``init -> init * (s - 1)`` + BN
    (+ act). Concat, slice to ``out``. Params ``cin*init + 2*init +
    cheap*d*d + 2*cheap`` with ``cheap = init*(s-1)``; MACs per pixel
    ``cin*init + cheap*d*d`` (the sliced-off channels are still computed).
    ``s == 1`` is a plain 1x1 conv + BN (+ act).
    """

    def __init__(self, cin: int, out: int, ratio: int = 2, kernel: int = 3, act: str | None = "relu"):
        super().__init__()
        self.out = out
        init, cheap = ghost_channels(out, ratio)
        self.primary = ConvBnAct(cin, init, 1, act=act)
        self.cheap: nn.Module = ConvBnAct(init, cheap, kernel, groups=init, act=act) if ratio > 1 else nn.Identity()
        self.ratio = ratio

    def forward(self, x: Tensor) -> Tensor:
        x = self.primary(x)
        if self.ratio == 1:
            return x
        return torch.cat([x, self.cheap(x)], 1)[:, : self.out]


class GhostBottleneck(nn.Module):
    """GhostNet bottleneck (``kind="ghost"``), exactly as ``nas/genotype.py`` describes.

    ghost ``cin -> mid`` (act) -> depthwise ``kernel`` conv + BN only when
    ``stride == 2`` -> SE (``se_layer(mid)``) -> ghost ``mid -> out`` (no act),
    plus the shortcut: identity when ``stride == 1 and cin == out``, else
    depthwise ``kernel`` conv (stride) + BN + 1x1 conv ``cin -> out`` + BN.
    With ``acb`` both depthwise convs train as ACBs (deploy folds each into
    one ``kernel x kernel`` conv); the ghost modules' cheap ops stay plain.
    """

    def __init__(self, cin: int, mid: int, out: int, kernel: int = 3, *, stride: int = 1, act: str = "relu",
                 ghost: int = 2, ghost_kernel: int = 3, se_layer: Callable[[int], nn.Module] | None = None,
                 acb: bool = False):
        super().__init__()
        self.ghost1 = GhostModule(cin, mid, ghost, ghost_kernel, act)
        self.dw: nn.Module = conv_bn(mid, mid, kernel, stride, groups=mid, acb=acb) if stride == 2 else nn.Identity()
        self.se: nn.Module = se_layer(mid) if se_layer is not None else nn.Identity()
        self.ghost2 = GhostModule(mid, out, ghost, ghost_kernel, None)
        if stride == 1 and cin == out:
            self.shortcut: nn.Module = nn.Identity()
        else:
            self.shortcut = nn.Sequential(conv_bn(cin, cin, kernel, stride, groups=cin, acb=acb),
                                          ConvBnAct(cin, out, 1))

    def forward(self, x: Tensor) -> Tensor:
        return self.ghost2(self.se(self.dw(self.ghost1(x)))) + self.shortcut(x)
