"""Network blocks: the inverted residual (``kind="ir"``), the head, and ``make_block`` for any ``BlockSpec``.

Layer lists follow the docstring of ``nas/genotype.py`` exactly, which the
analytic counter ``nas/cost/macs.py`` follows too.
"""

from __future__ import annotations

from torch import Tensor, nn

from nas.genotype import BlockSpec, HeadSpec
from nas.ops.acb import ConvBnAct
from nas.ops.act import get_act
from nas.ops.channelwise import ChannelShuffle, ChannelWiseClassifier, GroupChannelWise
from nas.ops.ghost import GhostBottleneck, GhostModule
from nas.ops.mixconv import MixConv2d
from nas.ops.se import SqueezeExcite


class InvertedResidual(nn.Module):
    """expand -> [shuffle] -> MixConv (+BN or ACB) -> act -> [SE] -> project (linear) -> [shuffle] (+ input).

    expand: 1x1 conv ``cin -> mid`` (``exp_groups``) + BN + act, or a ghost
    module when ``ghost > 1``, absent when ``has_expand`` is false. project:
    1x1 conv ``mid -> out`` (``proj_groups``) + BN, a ghost module without act
    when ``ghost > 1``, or a group channel-wise module with
    ``max(proj_groups, 2)`` groups when ``proj == "cw"``. Shuffles follow
    grouped convs when ``shuffle``.
    """

    def __init__(self, cin: int, spec: BlockSpec):
        super().__init__()
        mid, act = spec.mid_channels(cin), spec.act
        ident = nn.Identity
        self.expand: nn.Module = ident()
        if spec.has_expand(cin):
            self.expand = (GhostModule(cin, mid, spec.ghost, spec.ghost_kernel, act) if spec.ghost > 1
                           else ConvBnAct(cin, mid, 1, groups=spec.exp_groups, act=act))
        grouped_exp = spec.shuffle and spec.exp_groups > 1 and spec.has_expand(cin)
        self.exp_shuffle: nn.Module = ChannelShuffle(spec.exp_groups) if grouped_exp else ident()
        self.dw = MixConv2d(mid, spec.kernels, spec.stride, spec.split, spec.dilation, spec.acb)
        self.act = get_act(act)
        self.se: nn.Module = (SqueezeExcite(mid, spec.se_channels(cin), spec.se_act or act, spec.se_gate)
                              if spec.se > 0 else ident())
        if spec.proj == "cw":
            self.project: nn.Module = GroupChannelWise(mid, spec.out, max(spec.proj_groups, 2))
        elif spec.ghost > 1:
            self.project = GhostModule(mid, spec.out, spec.ghost, spec.ghost_kernel, None)
        else:
            self.project = ConvBnAct(mid, spec.out, 1, groups=spec.proj_groups)
        grouped_proj = spec.shuffle and spec.proj_groups > 1 and spec.proj == "conv"
        self.proj_shuffle: nn.Module = ChannelShuffle(spec.proj_groups) if grouped_proj else ident()
        self.residual = spec.has_residual(cin)

    def forward(self, x: Tensor) -> Tensor:
        y = self.se(self.act(self.dw(self.exp_shuffle(self.expand(x)))))
        y = self.proj_shuffle(self.project(y))
        return x + y if self.residual else y


def make_block(cin: int, spec: BlockSpec) -> nn.Module:
    """The module for one ``BlockSpec`` with ``cin`` input channels."""
    return GhostBottleneck(cin, spec) if spec.kind == "ghost" else InvertedResidual(cin, spec)


class Head(nn.Module):
    """[1x1 conv + BN + act] -> pool -> [1x1 conv with bias + act] -> dropout -> classifier.

    ``kind="fc"``: linear with bias on the pooled features. ``kind="cw"``:
    the ChannelNets convolutional classification layer, which replaces pool +
    fc: it sees the ``size x size`` map (``size`` = side of the last feature
    map at the genotype's resolution) when ``hidden == 0``, and the pooled
    ``1 x 1`` map after the hidden conv otherwise.
    """

    def __init__(self, cin: int, spec: HeadSpec, num_classes: int, size: int):
        super().__init__()
        c = spec.features or cin
        self.features: nn.Module = ConvBnAct(cin, c, 1, act=spec.act) if spec.features else nn.Identity()
        pool = spec.kind == "fc" or spec.hidden > 0
        self.pool: nn.Module = nn.AdaptiveAvgPool2d(1) if pool else nn.Identity()
        self.hidden: nn.Module = nn.Identity()
        if spec.hidden:
            self.hidden = nn.Sequential(nn.Conv2d(c, spec.hidden, 1, bias=True), get_act(spec.act))
            c = spec.hidden
        self.dropout = nn.Dropout(spec.dropout)
        if spec.kind == "cw":
            self.classifier: nn.Module = ChannelWiseClassifier(c, num_classes, 1 if pool else size)
        else:
            self.classifier = nn.Sequential(nn.Flatten(1), nn.Linear(c, num_classes))

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.dropout(self.hidden(self.pool(self.features(x)))))
