"""The network ops: one module per paper idea (see DESIGN.md, "The blocks")."""

from nas.ops.acb import ACBConv2d, ConvBnAct, conv_bn, fuse_branches
from nas.ops.act import get_act
from nas.ops.adapter import block_from_spec, head_from_spec, stem_from_spec
from nas.ops.block import Head, InvertedResidual
from nas.ops.channelwise import ChannelShuffle, ChannelWiseClassifier, ChannelWiseConv, GroupChannelWise
from nas.ops.ghost import GhostBottleneck, GhostModule
from nas.ops.mixconv import MixConv2d
from nas.ops.se import SqueezeExcite

__all__ = [
    "ACBConv2d", "ChannelShuffle", "ChannelWiseClassifier", "ChannelWiseConv", "ConvBnAct", "GhostBottleneck",
    "GhostModule", "GroupChannelWise", "Head", "InvertedResidual", "MixConv2d", "SqueezeExcite", "block_from_spec",
    "conv_bn", "fuse_branches", "get_act", "head_from_spec", "stem_from_spec",
]
