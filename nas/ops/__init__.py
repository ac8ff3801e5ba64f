"""The network ops: one module per paper idea (see DESIGN.md, "The blocks")."""

from nas.ops.acb import ACBConv2d, ConvBnAct, conv_bn, fuse_branches
from nas.ops.act import get_act
from nas.ops.block import Head, InvertedResidual, make_block
from nas.ops.channelwise import ChannelShuffle, ChannelWiseClassifier, ChannelWiseConv, GroupChannelWise
from nas.ops.ghost import GhostBottleneck, GhostModule
from nas.ops.mixconv import MixConv2d
from nas.ops.se import SqueezeExcite

__all__ = [
    "ACBConv2d", "ChannelShuffle", "ChannelWiseClassifier", "ChannelWiseConv", "ConvBnAct", "GhostBottleneck",
    "GhostModule", "GroupChannelWise", "Head", "InvertedResidual", "MixConv2d", "SqueezeExcite", "conv_bn",
    "fuse_branches", "get_act", "make_block",
]
