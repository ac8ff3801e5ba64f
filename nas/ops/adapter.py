"""The one place a genotype's specs become op arguments (the ops themselves take plain ints and names).

Each block kind of :data:`nas.rules.KINDS` has a builder here; derived
channel counts (``mid``, SE reduction) come from the spec's own methods, so
builder, analytic counter and latency keys agree on them.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from torch import nn

from nas.channels import cw_groups
from nas.genotype import BlockSpec, HeadSpec, StemSpec
from nas.ops.acb import conv_bn
from nas.ops.block import Head, InvertedResidual
from nas.ops.ghost import GhostBottleneck
from nas.ops.se import SqueezeExcite
from nas.ops.separable import DepthwiseSeparable, GroupModule
from nas.ops.shuffle import ShuffleUnit


def _se_layer(cin: int, spec: BlockSpec) -> Callable[[int], nn.Module] | None:
    if spec.se <= 0:
        return None
    return partial(SqueezeExcite, rd=spec.se_channels(cin), act=spec.se_act or spec.act, gate=spec.se_gate)


def _inverted_residual(cin: int, spec: BlockSpec) -> nn.Module:
    return InvertedResidual(cin, spec.mid_channels(cin), spec.out, spec.kernels, stride=spec.stride, split=spec.split,
                            dilation=spec.dilation, act=spec.act, acb=spec.acb, expand=spec.has_expand(cin),
                            exp_groups=spec.exp_groups, proj_groups=spec.proj_groups, shuffle=spec.shuffle,
                            se_layer=_se_layer(cin, spec), ghost=spec.ghost, ghost_kernel=spec.ghost_kernel,
                            proj=spec.proj)


def _ghost_bottleneck(cin: int, spec: BlockSpec) -> nn.Module:
    return GhostBottleneck(cin, spec.mid_channels(cin), spec.out, spec.kernels[0], stride=spec.stride, act=spec.act,
                           ghost=spec.ghost, ghost_kernel=spec.ghost_kernel, se_layer=_se_layer(cin, spec),
                           acb=spec.acb)


def _depthwise(spec: BlockSpec) -> dict:
    """The depthwise (MixConv) arguments every kind but the ghost bottleneck shares."""
    return dict(stride=spec.stride, split=spec.split, dilation=spec.dilation, act=spec.act, acb=spec.acb)


def _separable(cin: int, spec: BlockSpec) -> nn.Module:
    return DepthwiseSeparable(cin, spec.out, spec.kernels, proj=spec.proj, proj_groups=spec.proj_groups,
                              **_depthwise(spec))


def _group_module(cin: int, spec: BlockSpec) -> nn.Module:
    return GroupModule(cin, spec.out, spec.kernels, groups=cw_groups(spec.proj_groups), fuse=spec.proj == "cw",
                       **_depthwise(spec))


def _shuffle_unit(cin: int, spec: BlockSpec) -> nn.Module:
    return ShuffleUnit(cin, spec.mid_channels(cin), spec.out, spec.kernels, exp_groups=spec.exp_groups,
                       proj_groups=spec.proj_groups, **_depthwise(spec))


def _skip(cin: int, spec: BlockSpec) -> nn.Module:
    # FBNet/SPOS identity: nothing where the shape is kept, else the cheapest match (1x1 conv with the stride + BN)
    if spec.has_residual(cin):
        return nn.Identity()
    return conv_bn(cin, spec.out, 1, spec.stride)


#: The builder of each block kind (``BlockSpec.kind``).
BUILDERS: dict[str, Callable[[int, BlockSpec], nn.Module]] = {
    "ir": _inverted_residual, "ghost": _ghost_bottleneck, "dws": _separable, "gm": _group_module,
    "shuffle": _shuffle_unit, "skip": _skip,
}


def block_from_spec(cin: int, spec: BlockSpec) -> nn.Module:
    """The module of one block with ``cin`` input channels."""
    return BUILDERS[spec.kind](cin, spec)


def stem_from_spec(in_chans: int, spec: StemSpec, deployed: bool = False) -> nn.Module:
    """The stem conv (and max-pool); ``deployed`` leaves out the ACB branches (which deploy folds away anyway)."""
    conv = conv_bn(in_chans, spec.out, spec.kernel, spec.stride, act=spec.act, acb=spec.acb and not deployed)
    return nn.Sequential(conv, nn.MaxPool2d(3, 2, 1)) if spec.pool else conv


def head_from_spec(cin: int, spec: HeadSpec, num_classes: int, size: int) -> nn.Module:
    """The head on a ``cin``-channel map whose side is ``size`` at the genotype's resolution."""
    return Head(cin, num_classes, features=spec.features, hidden=spec.hidden, act=spec.act, kind=spec.kind,
                dropout=spec.dropout, size=size)
