"""The papers' cheap pointwise ops: ChannelNets' channel-wise convs (GCW, GCWM, GM, DWSCW, CCL), MobileNetV1's
depthwise separable layer and the ShuffleNet v1 unit: connectivity, shapes, the papers' parameter formulas,
FlopCounterMode and deploy."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from _ops import macs as _macs
from _ops import params as _params
from _ops import randomize_bn as _randomize_bn
from torch import nn

from nas.channels import cw_padding, cw_window
from nas.model import deploy
from nas.ops import (
    ACBConv2d,
    ChannelWiseBnAct,
    ChannelWiseClassifier,
    DepthwiseSeparable,
    GroupModule,
    ShuffleUnit,
    group_channel_wise,
)

torch.set_num_threads(1)


def _assert_deploys(m: nn.Module, x: torch.Tensor) -> None:
    m = _randomize_bn(m).eval()
    fused = deploy(m)
    assert not any(isinstance(k, (nn.BatchNorm2d, ACBConv2d)) for k in fused.modules())
    with torch.no_grad():
        ref, out = m(x), fused(x)
    assert (out - ref).abs().max().item() <= 1e-4 * max(1.0, ref.abs().max().item())
    assert _macs(fused, x[:1]) == _macs(m, x[:1]) or any(isinstance(k, ACBConv2d) for k in m.modules())


def _connectivity(op: nn.Module, channels: int) -> torch.Tensor:
    """``M[i, o]``: the weight with which output channel ``o`` reads input channel ``i`` (a linear op, pointwise
    in space: one one-hot input channel per batch item)."""
    with torch.no_grad():
        return op(torch.eye(channels).reshape(channels, channels, 1, 1))[:, :, 0, 0]


# -- channel-wise convolutions ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("channels", "groups"), [(8, 2), (12, 2), (12, 3), (16, 4), (24, 3)])
def test_group_channel_wise_conv_reads_exactly_its_windows_and_every_group_covers_all_inputs(channels, groups):
    op = group_channel_wise(groups)
    dc, p = cw_window(groups), cw_padding(groups)
    assert dc >= groups  # the paper's condition for covering all inputs
    with torch.no_grad():  # tap t of conv i gets the weight 1 + t + 100 i: every connection is identifiable
        w = torch.arange(dc, dtype=torch.float32) + 1
        op.conv.weight.copy_((w + 100 * torch.arange(groups).reshape(-1, 1)).reshape(groups, 1, dc, 1, 1))
    m = _connectivity(op, channels)
    per_group = channels // groups
    assert m.shape == (channels, channels)  # C inputs -> g groups of C / g outputs
    for i in range(groups):
        for j in range(per_group):
            window = {j * groups - p + t: 1 + t + 100 * i for t in range(dc) if 0 <= j * groups - p + t < channels}
            col = m[:, i * per_group + j]
            assert {k: int(v) for k, v in enumerate(col.tolist()) if v} == window
        assert (m[:, i * per_group:(i + 1) * per_group].abs().sum(1) > 0).all()  # group i covers all inputs
    assert _params(op) == groups * dc  # g channel-wise convs of dc taps
    x = torch.randn(1, channels, 5, 5)
    assert _macs(op, x) == channels * dc * 25


def test_gcwm_adds_the_papers_32_parameters_to_channelnet_v1():
    """ChannelNet-v1's two GCWMs (g = 2, 512 channels) hold 2 x g x dc = 32 weights more than two GMs."""
    gm, gcwm = GroupModule(512, 512, groups=2), GroupModule(512, 512, groups=2, fuse=True)
    assert 2 * (_params(gcwm) - _params(gm)) == 32
    # a GM: two depthwise separable layers with 2-group 1x1 convs: 2 x (9C + 2C + C * C / g + 2C)
    assert _params(gm) == 2 * (9 * 512 + 2 * 512 + 512 * 256 + 2 * 512)


@pytest.mark.parametrize("act", ["relu", None])
def test_dwscw_is_a_three_tap_channel_wise_conv(act):
    c = 20
    op = ChannelWiseBnAct(c, act=act)
    assert _params(op) == 3 + 2 * c  # the paper's dc = 3 taps, plus the BN
    with torch.no_grad():
        op.cw.conv.weight.copy_(torch.tensor([1.0, 2.0, 3.0]).reshape(1, 1, 3, 1, 1))
    m = _connectivity(op.cw, c)
    for o in range(c):  # stride 1, one output per channel, reading channels o-1, o, o+1
        assert {k: int(v) for k, v in enumerate(m[:, o].tolist()) if v} == {
            o + t - 1: t + 1 for t in range(3) if 0 <= o + t - 1 < c}
    x = torch.randn(2, c, 6, 6)
    assert _macs(op, x[:1]) == 3 * c * 36
    _assert_deploys(op, x)


def test_ccl_replaces_channelnet_v3s_classifier_with_a_25x7x7_kernel():
    m = ChannelWiseClassifier(1024, 1000, 7)
    assert _params(m) == 7 * 7 * 25  # 1,225 weights for the 1024 x 1000 (+ 1000) of the fully connected layer
    x = torch.randn(1, 1024, 7, 7)
    assert m(x).shape == (1, 1000) and _macs(m, x) == 1000 * 25 * 49
    # class n reads channels n .. n + 24 of the whole 7 x 7 map
    with torch.no_grad():
        m.cw.conv.weight.zero_()
        m.cw.conv.weight[0, 0, 0] = 1.0
    x = torch.zeros(1, 1024, 7, 7)
    x[0, 5] = 1.0
    assert m(x)[0, 5].item() == pytest.approx(49.0) and m(x).abs().sum().item() == pytest.approx(49.0)


# -- MobileNetV1 and ChannelNets modules ---------------------------------------------------------------------------

@pytest.mark.parametrize(("cin", "out", "stride", "proj", "groups", "kernels"), [
    (16, 32, 2, "conv", 1, (3,)), (24, 24, 1, "conv", 4, (3, 5)), (24, 24, 1, "cw", 1, (3,)),
    (24, 24, 2, "cw", 1, (3, 5, 7)),
])
def test_depthwise_separable_layer(cin, out, stride, proj, groups, kernels):
    op = DepthwiseSeparable(cin, out, kernels, stride=stride, proj=proj, proj_groups=groups, act="relu6")
    x = torch.randn(2, cin, 9, 9)
    y = op(x)
    r = math.ceil(9 / stride)
    assert y.shape == (2, out, r, r) and (y >= 0).all() and (y <= 6).all()  # BN + act after the pointwise too
    dw = sum(c * k * k for c, k in zip(op.dw.splits, kernels, strict=True))
    pw = 3 if proj == "cw" else out * cin // groups
    assert _params(op) == dw + 2 * cin + pw + 2 * out
    assert _macs(op, x[:1]) == (dw + (3 * out if proj == "cw" else pw)) * r * r
    _assert_deploys(op, x)


def test_dwscw_needs_an_unchanged_width():
    with pytest.raises(ValueError, match="keeps its width"):
        DepthwiseSeparable(16, 32, proj="cw")


@pytest.mark.parametrize(("cin", "out", "stride", "fuse"), [(16, 16, 1, False), (16, 16, 1, True), (16, 24, 2, True)])
def test_group_module(cin, out, stride, fuse):
    op = GroupModule(cin, out, (3,), groups=2, fuse=fuse, stride=stride)
    x = torch.randn(2, cin, 8, 8)
    y = op(x)
    assert y.shape == (2, out, 8 // stride, 8 // stride)
    assert op.residual == (stride == 1 and cin == out)
    with torch.no_grad():  # the skip connection: the module adds its input to its layers' output
        body = op.layers(op.fuse(x))
        torch.testing.assert_close(y, body + x if op.residual else body)
    _assert_deploys(op, x)


# -- ShuffleNet unit ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("cin", "out", "stride", "eg", "pg"), [
    (240, 240, 1, 3, 3), (24, 240, 2, 1, 3), (240, 480, 2, 3, 3), (32, 64, 2, 2, 4), (32, 48, 1, 2, 2),
])
def test_shuffle_unit_shapes_and_layers(cin, out, stride, eg, pg):
    mid = out // 4
    op = ShuffleUnit(cin, mid, out, stride=stride, exp_groups=eg, proj_groups=pg).eval()
    _randomize_bn(op)
    x = torch.randn(2, cin, 14, 14)
    y = op(x)
    r = 14 // stride
    assert y.shape == (2, out, r, r)
    branch = out - cin if stride == 2 else out
    with torch.no_grad():
        z = op.project(op.dw(op.shuffle(op.expand(x))))  # no activation between the depthwise conv and project
        assert (op.dw(op.shuffle(op.expand(x))) < 0).any()  # BN only: negative values reach the projection
        if stride == 2:  # concatenation with the 3x3 average-pooled input
            torch.testing.assert_close(y[:, :cin], F.avg_pool2d(x, 3, 2, 1))
            torch.testing.assert_close(y[:, cin:], F.relu(z))
        elif cin == out:
            torch.testing.assert_close(y, F.relu(x + z))
        else:
            torch.testing.assert_close(y, F.relu(z))
    assert z.shape[1] == branch
    assert _params(op) == cin * mid // eg + 2 * mid + 9 * mid + 2 * mid + mid * branch // pg + 2 * branch
    assert _macs(op, x[:1]) == cin * mid // eg * 14 * 14 + (9 * mid + mid * branch // pg) * r * r
    _assert_deploys(op, x)


def test_shuffle_unit_shuffles_between_the_grouped_convs():
    op = ShuffleUnit(12, 12, 12, exp_groups=3, proj_groups=3)
    x = torch.arange(12.0).reshape(1, 12, 1, 1)
    assert op.shuffle(x).flatten().tolist() == [0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11]
    with pytest.raises(ValueError, match="out > cin"):
        ShuffleUnit(24, 8, 24, stride=2)
