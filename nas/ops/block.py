"""Network blocks: the inverted residual (``kind="ir"``) and the head, from plain ints and names.

Layer lists follow the docstring of ``nas/genotype.py`` exactly, which the
analytic counter ``nas/cost/macs.py`` follows too; ``nas.ops.adapter`` turns
a genotype's specs into these arguments.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torch import Tensor, nn

from nas.channels import cw_groups
from nas.ops.acb import ConvBnAct
from nas.ops.act import get_act
from nas.ops.channelwise import ChannelShuffle, ChannelWiseClassifier, GroupChannelWise
from nas.ops.ghost import GhostModule
from nas.ops.mixconv import MixConv2d


class InvertedResidual(nn.Module):
    """expand -> [shuffle] -> MixConv (+BN or ACB) -> act -> [SE] -> project (linear) -> [shuffle] (+ input).

    expand (when ``expand``): 1x1 conv ``cin -> mid`` in ``exp_groups`` groups
    + BN + act, or a ghost module when ``ghost > 1``. project: 1x1 conv
    ``mid -> out`` in ``proj_groups`` groups + BN, a ghost module without
    act when ``ghost > 1``, or a group channel-wise module with
    ``max(proj_groups, 2)`` groups when ``proj == "cw"``. Shuffles follow
    grouped convs when ``shuffle``. ``se_layer(mid)`` makes the SE module.
    The input is added when ``stride == 1 and cin == out``.
    """

    def __init__(self, cin: int, mid: int, out: int, kernels: Sequence[int], *, stride: int = 1,
                 split: str = "equal", dilation: int = 1, act: str = "relu", acb: bool = False, expand: bool = True,
                 exp_groups: int = 1, proj_groups: int = 1, shuffle: bool = False,
                 se_layer: Callable[[int], nn.Module] | None = None, ghost: int = 1, ghost_kernel: int = 3,
                 proj: str = "conv"):
        super().__init__()
        ident = nn.Identity
        self.expand: nn.Module = ident()
        if expand:
            self.expand = (GhostModule(cin, mid, ghost, ghost_kernel, act) if ghost > 1
                           else ConvBnAct(cin, mid, 1, groups=exp_groups, act=act))
        grouped_exp = shuffle and exp_groups > 1 and expand
        self.exp_shuffle: nn.Module = ChannelShuffle(exp_groups) if grouped_exp else ident()
        self.dw = MixConv2d(mid, kernels, stride, split, dilation, acb)
        self.act = get_act(act)
        self.se: nn.Module = se_layer(mid) if se_layer is not None else ident()
        if proj == "cw":
            self.project: nn.Module = GroupChannelWise(mid, out, cw_groups(proj_groups))
        elif ghost > 1:
            self.project = GhostModule(mid, out, ghost, ghost_kernel, None)
        else:
            self.project = ConvBnAct(mid, out, 1, groups=proj_groups)
        grouped_proj = shuffle and proj_groups > 1 and proj == "conv"
        self.proj_shuffle: nn.Module = ChannelShuffle(proj_groups) if grouped_proj else ident()
        self.residual = stride == 1 and cin == out

    def forward(self, x: Tensor) -> Tensor:
        y = self.se(self.act(self.dw(self.exp_shuffle(self.expand(x)))))
        y = self.proj_shuffle(self.project(y))
        return x + y if self.residual else y


class Head(nn.Module):
    """[1x1 conv + BN + act] -> pool -> [1x1 conv with bias + act] -> dropout -> classifier.

    ``features``/``hidden`` of 0 leave that conv out. ``kind="fc"``: linear
    with bias on the pooled features. ``kind="cw"``: the ChannelNets
    convolutional classification layer, which replaces pool + fc: it sees the
    ``size x size`` map (``size`` = side of the last feature map at the
    genotype's resolution) when ``hidden == 0``, and the pooled ``1 x 1`` map
    after the hidden conv otherwise.
    """

    def __init__(self, cin: int, num_classes: int, *, features: int = 0, hidden: int = 0, act: str = "relu",
                 kind: str = "fc", dropout: float = 0.0, size: int = 1):
        super().__init__()
        c = features or cin
        self.features: nn.Module = ConvBnAct(cin, c, 1, act=act) if features else nn.Identity()
        pool = kind == "fc" or hidden > 0
        self.pool: nn.Module = nn.AdaptiveAvgPool2d(1) if pool else nn.Identity()
        self.hidden: nn.Module = nn.Identity()
        if hidden:
            self.hidden = nn.Sequential(nn.Conv2d(c, hidden, 1, bias=True), get_act(act))
            c = hidden
        self.dropout = nn.Dropout(dropout)
        if kind == "cw":
            self.classifier: nn.Module = ChannelWiseClassifier(c, num_classes, 1 if pool else size)
        else:
            self.classifier = nn.Sequential(nn.Flatten(1), nn.Linear(c, num_classes))

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.dropout(self.hidden(self.pool(self.features(x)))))
