"""MixConv: a depthwise conv whose channels are split into groups with different kernel sizes (Tan & Le 2019)."""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from nas.channels import split_channels
from nas.ops.acb import ACBConv2d, ConvBnAct, deployed_conv, fuse_branches


class MixConv2d(nn.Module):
    """Depthwise MixConv + BN on ``channels`` channels.

    Group ``i`` gets ``split_channels(channels, len(kernels), split)[i]``
    channels and a ``kernels[i] x kernels[i]`` depthwise conv with "same"
    padding ``(k - 1) // 2 * dilation``. Without ``acb`` the groups are plain
    convs followed by one BN shared by all channels; with ``acb`` every group
    is an ACB (its own three branches and BNs; a 1x1 group is conv + BN). No
    activation. ``deploy`` turns every group into one biased conv.

    The forward is the split -> per-group conv -> concat form, so
    ``FlopCounterMode`` counts each group's own kernel (what the analytic
    counter counts). On CPU the input is moved to channels-last first: oneDNN's
    depthwise kernels are several times faster there than the NCHW path, and
    that pays for the copy (see ``benchmarks/bench_ops.py``). Zero-padding all
    kernels into one dense conv was measured too and is not faster.
    """

    def __init__(self, channels: int, kernels: tuple[int, ...] | list[int], stride: int = 1,
                 split: str = "equal", dilation: int = 1, acb: bool = False):
        super().__init__()
        self.kernels = tuple(kernels)
        self.splits = list(split_channels(channels, len(self.kernels), split))
        convs: list[nn.Module] = []
        for c, k in zip(self.splits, self.kernels, strict=True):
            if acb and k > 1:
                convs.append(ACBConv2d(c, c, k, stride, c, dilation))
            elif acb:
                convs.append(ConvBnAct(c, c, 1, stride, c))
            else:
                convs.append(nn.Conv2d(c, c, k, stride, (k - 1) // 2 * dilation, dilation, c, bias=False))
        self.convs = nn.ModuleList(convs)
        self.bn: nn.Module = nn.Identity() if acb else nn.BatchNorm2d(channels)

    def forward(self, x: Tensor) -> Tensor:
        if x.device.type == "cpu":
            x = x.contiguous(memory_format=torch.channels_last)
        if len(self.splits) == 1:
            return self.bn(self.convs[0](x))
        xs = torch.split(x, self.splits, 1)
        out: list[Tensor] = []
        for i, conv in enumerate(self.convs):  # a loop, not a comprehension: TorchScript needs it
            out.append(conv(xs[i]))
        return self.bn(torch.cat(out, 1))

    def fused(self) -> MixConv2d:
        """Deploy form: the same split, each group one biased conv (BN and ACB branches folded in)."""
        convs: list[nn.Module] = []
        start = 0
        for c, conv in zip(self.splits, self.convs, strict=True):
            if isinstance(conv, nn.Conv2d) and isinstance(self.bn, nn.BatchNorm2d):
                w, b = fuse_branches([(conv.weight, _bn_slice(self.bn, start, start + c))], conv.kernel_size[0])
                convs.append(deployed_conv(conv, w, b))
            elif isinstance(conv, nn.Conv2d):  # already deployed
                convs.append(copy.deepcopy(conv))
            else:
                convs.append(conv.fused()[0])
            start += c
        new = MixConv2d.__new__(MixConv2d)  # skip __init__: no throwaway parameters to build
        nn.Module.__init__(new)
        new.kernels, new.splits = self.kernels, list(self.splits)
        new.convs = nn.ModuleList(convs)
        new.bn = nn.Identity()
        return new.train(self.training)


def _bn_slice(bn: nn.BatchNorm2d, start: int, end: int) -> nn.BatchNorm2d:
    """Channels ``start:end`` of a BatchNorm2d as a BatchNorm2d of their own."""
    out = nn.BatchNorm2d(end - start, eps=bn.eps)
    with torch.no_grad():
        for name in ("weight", "bias", "running_mean", "running_var"):
            getattr(out, name).copy_(getattr(bn, name)[start:end])
    return out
