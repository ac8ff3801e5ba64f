"""Tests of the network ops in nas/ops: shapes, splits, parameter/MAC formulas and ACB/BN fusion."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from _ops import close as _close
from _ops import macs as _macs
from _ops import params as _params
from _ops import randomize_bn as _randomize_bn
from torch import nn

from nas.genotype import BlockSpec, ghost_channels, split_channels
from nas.ops import (
    ACBConv2d,
    ChannelShuffle,
    ChannelWiseClassifier,
    ChannelWiseConv,
    ConvBnAct,
    GhostModule,
    GroupChannelWise,
    MixConv2d,
    SqueezeExcite,
    conv_bn,
    fuse_branches,
    get_act,
)

torch.set_num_threads(1)


# -- activations ---------------------------------------------------------------

@pytest.mark.parametrize(("name", "ref"), [
    ("relu", F.relu), ("relu6", F.relu6), ("swish", F.silu), ("hswish", F.hardswish),
    ("sigmoid", torch.sigmoid), ("hsigmoid", lambda x: F.relu6(x + 3) / 6),
])
def test_get_act(name, ref):
    x = torch.linspace(-8, 8, 101)
    torch.testing.assert_close(get_act(name)(x), ref(x))


def test_get_act_none_and_unknown():
    assert isinstance(get_act(None), nn.Identity)
    with pytest.raises(ValueError, match="gelu"):
        get_act("gelu")


# -- MixConv -------------------------------------------------------------------

@pytest.mark.parametrize(("channels", "groups", "split", "expected"), [
    (64, 4, "equal", (16, 16, 16, 16)),
    (64, 4, "exponential", (32, 16, 8, 8)),
    (24, 3, "exponential", (12, 6, 6)),
    (26, 4, "equal", (8, 6, 6, 6)),  # the remainder goes to the first group, as timm does
    (40, 1, "exponential", (40,)),
])
def test_split_channels(channels, groups, split, expected):
    assert split_channels(channels, groups, split) == expected
    op = MixConv2d(channels, [2 * i + 3 for i in range(groups)], split=split)
    assert tuple(op.splits) == expected
    assert [c.weight.shape[0] for c in op.convs] == list(expected)


def _naive_mixconv(op: MixConv2d, x: torch.Tensor, stride: int, dilation: int) -> torch.Tensor:
    xs = torch.split(x, op.splits, 1)
    ys = [F.conv2d(xi, c.weight, None, stride, (c.weight.shape[-1] - 1) // 2 * dilation, dilation, c.weight.shape[0])
          for xi, c in zip(xs, op.convs, strict=True)]
    return op.bn(torch.cat(ys, 1))


@pytest.mark.parametrize("groups", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("split", ["equal", "exponential"])
@pytest.mark.parametrize("stride", [1, 2])
def test_mixconv_shapes_and_values(groups, split, stride):
    torch.manual_seed(groups)
    c, side = 40, 9
    kernels = [2 * i + 3 for i in range(groups)]
    op = _randomize_bn(MixConv2d(c, kernels, stride, split)).eval()
    x = torch.randn(2, c, side, side)
    y = op(x)
    assert y.shape == (2, c, math.ceil(side / stride), math.ceil(side / stride))
    _close(y, _naive_mixconv(op, x, stride, 1), 1e-5)
    # Each group's own kernel is what FlopCounterMode counts (the analytic counter counts the same).
    r = math.ceil(side / stride)
    assert _macs(op, x[:1]) == sum(ci * k * k * r * r for ci, k in zip(split_channels(c, groups, split), kernels,
                                                                         strict=True))
    assert _params(op) == sum(ci * k * k for ci, k in zip(op.splits, kernels, strict=True)) + 2 * c


def test_mixconv_dilation_and_backward():
    op = MixConv2d(12, [3, 5], dilation=2)
    x = torch.randn(2, 12, 10, 10, requires_grad=True)
    y = op(x)
    assert y.shape == x.shape
    y.square().sum().backward()
    assert x.grad is not None and all(c.weight.grad is not None for c in op.convs)
    op.eval()
    _close(op(x), _naive_mixconv(op, x, 1, 2), 1e-5)


def test_mixconv_channels_last_input_gives_same_result():
    op = _randomize_bn(MixConv2d(24, [3, 5, 7])).eval()
    x = torch.randn(2, 24, 8, 8)
    _close(op(x.contiguous(memory_format=torch.channels_last)), op(x), 1e-6)


# -- ACB and BN fusion -----------------------------------------------------------

def test_fuse_branches_single_branch_is_bn_folding():
    conv, bn = nn.Conv2d(4, 6, 3, padding=1, bias=False), nn.BatchNorm2d(6)
    _randomize_bn(bn).eval()
    w, b = fuse_branches([(conv.weight, bn)], 3)
    x = torch.randn(2, 4, 5, 5)
    _close(F.conv2d(x, w, b, padding=1), bn(conv(x)), 1e-5)


def test_fuse_branches_pads_into_the_centre():
    bn = nn.BatchNorm2d(1).eval()  # identity BN
    hor = torch.arange(1.0, 6.0).reshape(1, 1, 1, 5)
    ver = torch.arange(1.0, 6.0).reshape(1, 1, 5, 1)
    w, b = fuse_branches([(hor, bn), (ver, bn)], 5)
    expected = torch.zeros(5, 5)
    expected[2, :] += torch.arange(1.0, 6.0)
    expected[:, 2] += torch.arange(1.0, 6.0)
    torch.testing.assert_close(w[0, 0], expected / math.sqrt(1 + bn.eps))
    assert b.abs().max() == 0


@pytest.mark.parametrize("k", [3, 5, 7, 9, 11])
@pytest.mark.parametrize("mode", ["dense", "depthwise"])
def test_acb_fusion(k, mode):
    torch.manual_seed(k)
    cin, cout, groups, stride = (3, 8, 1, 2) if mode == "dense" else (8, 8, 8, 1)
    acb = _randomize_bn(ACBConv2d(cin, cout, k, stride, groups, act="relu"), seed=k).eval()
    # Training-mode parameters: three convs and three BNs.
    assert _params(acb) == cout * cin // groups * (k * k + 2 * k) + 6 * cout
    fused = acb.fused().eval()
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fused.modules())
    convs = [m for m in fused.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 1 and convs[0].kernel_size == (k, k) and convs[0].groups == groups
    x = torch.randn(2, cin, 13, 13)
    with torch.no_grad():
        _close(fused(x), acb(x))


@pytest.mark.parametrize("k", [3, 5, 7, 9, 11])
def test_acb_fusion_inside_mixconv(k):
    torch.manual_seed(k)
    kernels = [1, 3, k] if k > 3 else [3, 1]
    op = _randomize_bn(MixConv2d(24, kernels, stride=2, split="exponential", acb=True), seed=k).eval()
    x = torch.randn(2, 24, 11, 11)
    fused = op.fused()
    assert not any(isinstance(m, (nn.BatchNorm2d, ACBConv2d)) for m in fused.modules())
    with torch.no_grad():
        _close(fused(x), op(x))


def test_mixconv_fusion_with_dilation():
    op = _randomize_bn(MixConv2d(16, [3, 5], dilation=2)).eval()
    x = torch.randn(2, 16, 12, 12)
    with torch.no_grad():
        _close(op.fused()(x), op(x))


def test_conv_bn_factory_and_fusion():
    assert isinstance(conv_bn(8, 8, 1, acb=True), ConvBnAct)  # a 1x1 ACB is just the conv
    assert isinstance(conv_bn(8, 8, 3, acb=True), ACBConv2d)
    cba = _randomize_bn(ConvBnAct(4, 8, 3, 2, act="hswish")).eval()
    x = torch.randn(2, 4, 9, 9)
    with torch.no_grad():
        _close(cba.fused()(x), cba(x))


# -- Ghost module ------------------------------------------------------------------

@pytest.mark.parametrize("ratio", [1, 2, 3, 4])
@pytest.mark.parametrize("act", ["relu", None])
def test_ghost_module(ratio, act):
    cin, out, d = 6, 10, 3
    m = GhostModule(cin, out, ratio, d, act)
    y = m(torch.randn(2, cin, 7, 7))
    assert y.shape == (2, out, 7, 7)
    init, cheap = ghost_channels(out, ratio)
    assert init == math.ceil(out / ratio) and cheap == init * (ratio - 1)
    assert _params(m) == cin * init + 2 * init + cheap * d * d + 2 * cheap
    assert _macs(m, torch.randn(1, cin, 7, 7)) == (cin * init + cheap * d * d) * 49
    if act is None:
        assert (y < 0).any()  # linear ghost module (the project of a bottleneck)


def test_ghost_module_fuses():
    m = _randomize_bn(GhostModule(6, 10, 3, 3, "relu")).eval()
    from nas.model import deploy

    x = torch.randn(2, 6, 7, 7)
    with torch.no_grad():
        _close(deploy(m)(x), m(x))


# -- squeeze-excite ------------------------------------------------------------------

@pytest.mark.parametrize("se_base", ["in", "mid"])
@pytest.mark.parametrize("gate", ["sigmoid", "hsigmoid"])
def test_se(se_base, gate):
    cin, mid = 16, 96
    spec = BlockSpec(out=16, expand=6, se=0.25, se_base=se_base, se_gate=gate, se_divisor=8 if se_base == "mid" else 1)
    rd = spec.se_channels(cin)
    assert rd == (4 if se_base == "in" else 24)
    se = SqueezeExcite(mid, rd, "relu", gate)
    assert _params(se) == 2 * mid * rd + rd + mid
    x = torch.randn(2, mid, 5, 5)
    assert _macs(se, x[:1]) == 2 * mid * rd
    s = x.mean((2, 3), keepdim=True)
    z = se.expand(F.relu(se.reduce(s)))
    expected = x * (torch.sigmoid(z) if gate == "sigmoid" else F.relu6(z + 3) / 6)
    torch.testing.assert_close(se(x), expected)


# -- shuffle and channel-wise ops -------------------------------------------------------

def test_channel_shuffle_interleaves_groups():
    x = torch.arange(6.0).reshape(1, 6, 1, 1)
    y = ChannelShuffle(2)(x).flatten().tolist()
    assert y == [0, 3, 1, 4, 2, 5]
    y3 = ChannelShuffle(3)(x).flatten().tolist()
    assert y3 == [0, 2, 4, 1, 3, 5]


def test_channel_wise_conv_is_a_1d_conv_along_channels():
    torch.manual_seed(0)
    cw = ChannelWiseConv(3, stride=2, padding=1)
    x = torch.randn(2, 9, 4, 5)
    y = cw(x)
    w = cw.conv.weight.flatten()
    # 1-D conv over the channel axis, the same taps at every pixel.
    seq = x.permute(0, 2, 3, 1).reshape(-1, 1, 9)
    ref = F.conv1d(seq, w.reshape(1, 1, 3), stride=2, padding=1).reshape(2, 4, 5, -1).permute(0, 3, 1, 2)
    torch.testing.assert_close(y, ref)
    assert _params(cw) == 3


@pytest.mark.parametrize(("cin", "out", "groups"), [(24, 16, 2), (48, 24, 4), (30, 12, 3)])
def test_group_channel_wise(cin, out, groups):
    torch.manual_seed(0)
    m = GroupChannelWise(cin, out, groups).eval()
    r = 5
    x = torch.randn(1, cin, r, r)
    assert m(x).shape == (1, out, r, r)
    dc = 4 * groups  # the fusion's window (ChannelNets' code: 4g taps, stride g)
    assert _params(m) == out * cin // groups + 2 * out + groups * dc
    assert _macs(m, x) == r * r * out * (cin // groups + dc)
    # The outputs of every fusion conv (one output group each) together depend on every input channel.
    jac = torch.autograd.functional.jacobian(lambda t: m(t)[0, :, 2, 2], x)[:, 0, :, 2, 2]
    per_group = jac.abs().reshape(groups, out // groups, cin).sum(1)
    assert (per_group > 0).all()


def test_group_channel_wise_rejects_bad_groups():
    with pytest.raises(ValueError, match="groups"):
        GroupChannelWise(24, 15, 2)
    with pytest.raises(ValueError, match="groups"):
        GroupChannelWise(24, 16, 1)


@pytest.mark.parametrize("size", [1, 4])
def test_channel_wise_classifier(size):
    c, classes = 40, 10
    m = ChannelWiseClassifier(c, classes, size)
    dc = c - classes + 1
    x = torch.randn(2, c, size, size)
    assert m(x).shape == (2, classes)
    assert _params(m) == dc * size * size
    assert _macs(m, x[:1]) == classes * dc * size * size
    # Another resolution is pooled to the built size first.
    assert m(torch.randn(2, c, 2 * size, 2 * size)).shape == (2, classes)
    with pytest.raises(ValueError, match="num_classes"):
        ChannelWiseClassifier(8, 10)


@pytest.mark.parametrize(("stride", "cin", "out", "k"), [(2, 16, 24, 3), (1, 16, 24, 5), (2, 16, 16, 5)])
def test_ghost_bottleneck_acb_deploys_to_the_eval_network(stride, cin, out, k):
    from nas.model import deploy
    from nas.ops import GhostBottleneck

    torch.manual_seed(k)
    m = _randomize_bn(GhostBottleneck(cin, 48, out, k, stride=stride, ghost=2, acb=True), seed=k).eval()
    assert sum(isinstance(x, ACBConv2d) for x in m.modules()) == (2 if stride == 2 else 1)
    fused = deploy(m)
    assert not any(isinstance(x, (nn.BatchNorm2d, ACBConv2d)) for x in fused.modules())
    x = torch.randn(2, cin, 11, 11)
    with torch.no_grad():
        _close(fused(x), m(x))
