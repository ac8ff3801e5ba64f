"""The network ops: one module per paper idea (see DESIGN.md, "The blocks")."""

from nas.ops.acb import ACBConv2d, ConvBnAct, conv_bn, fuse_branches
from nas.ops.act import get_act
from nas.ops.adapter import block_from_spec, head_from_spec, stem_from_spec
from nas.ops.block import Head, InvertedResidual
from nas.ops.channelwise import (
    ChannelShuffle,
    ChannelWiseBnAct,
    ChannelWiseClassifier,
    ChannelWiseConv,
    GroupChannelWise,
    group_channel_wise,
)
from nas.ops.ghost import GhostBottleneck, GhostModule
from nas.ops.mixconv import MixConv2d
from nas.ops.se import SqueezeExcite
from nas.ops.separable import DepthwiseSeparable, GroupModule
from nas.ops.shuffle import ShuffleUnit

__all__ = [
    "ACBConv2d", "ChannelShuffle", "ChannelWiseBnAct", "ChannelWiseClassifier", "ChannelWiseConv", "ConvBnAct",
    "DepthwiseSeparable", "GhostBottleneck", "GhostModule", "GroupChannelWise", "GroupModule", "Head",
    "InvertedResidual", "MixConv2d", "ShuffleUnit", "SqueezeExcite", "block_from_spec", "conv_bn", "fuse_branches",
    "get_act", "group_channel_wise", "head_from_spec", "stem_from_spec",
]
