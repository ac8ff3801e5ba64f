"""Conv + BN (+ act) and the asymmetric convolution block (ACNet), with their deploy-time fusion.

Every BatchNorm in the network sits right after a convolution, so at deploy
it folds into that convolution's weight and bias. An ACB (Ding et al., ACNet)
trains ``k x k``, ``1 x k`` and ``k x 1`` branches, each with its own BN, and
sums them; because convolution is linear and the three kernels share their
centre, the folded kernels add into one ``k x k`` kernel. Both foldings are
the same arithmetic, :func:`fuse_branches`, the one place it lives.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nas.ops.act import get_act


def fuse_branches(branches: Sequence[tuple[Tensor, nn.BatchNorm2d]], kernel: int) -> tuple[Tensor, Tensor]:
    """Fold each BN into its conv kernel, zero-pad every kernel to ``kernel x kernel`` and add.

    ``branches`` are ``(conv weight, BN that follows it)`` pairs of convs with
    the same stride, dilation, groups and centred "same" padding; the result
    ``(weight, bias)`` is one ``kernel x kernel`` conv computing the sum of
    the branches in eval mode. One branch is plain conv + BN folding.
    """
    weight: Tensor | None = None
    bias: Tensor | None = None
    for w, bn in branches:
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        w = w * scale.reshape(-1, 1, 1, 1)
        b = bn.bias - bn.running_mean * scale
        ph, pw = (kernel - w.shape[2]) // 2, (kernel - w.shape[3]) // 2
        w = F.pad(w, [pw, pw, ph, ph])
        weight = w if weight is None else weight + w
        bias = b if bias is None else bias + b
    if weight is None or bias is None:
        raise ValueError("fuse_branches needs at least one branch")
    return weight.detach(), bias.detach()


def _same_pad(kernel: int, dilation: int) -> int:
    return (kernel - 1) // 2 * dilation


def deployed_conv(like: nn.Conv2d, weight: Tensor, bias: Tensor) -> nn.Conv2d:
    """A biased conv with ``like``'s geometry (stride, dilation, groups) and the given square kernel."""
    k = weight.shape[-1]
    d = like.dilation[0]
    conv = nn.Conv2d(like.in_channels, like.out_channels, k, like.stride, _same_pad(k, d), d, like.groups,
                     bias=True, device=weight.device, dtype=weight.dtype)
    with torch.no_grad():
        conv.weight.copy_(weight)
        conv.bias.copy_(bias)
    return conv


class ConvBnAct(nn.Module):
    """``k x k`` conv (no bias, "same" padding) + BN + activation (``act=None``: none)."""

    def __init__(self, cin: int, cout: int, kernel: int = 1, stride: int = 1, groups: int = 1,
                 dilation: int = 1, act: str | None = None):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, _same_pad(kernel, dilation), dilation, groups, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.act = get_act(act)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.bn(self.conv(x)))

    def fused(self) -> nn.Sequential:
        """Deploy form: one biased conv + the activation."""
        w, b = fuse_branches([(self.conv.weight, self.bn)], self.conv.kernel_size[0])
        return nn.Sequential(deployed_conv(self.conv, w, b), _clone_act(self.act))


class ACBConv2d(nn.Module):
    """Asymmetric convolution block: ``k x k`` + ``1 x k`` + ``k x 1`` convs, each + BN, summed, then act.

    Training parameters: ``cout * cin/groups * (k*k + 2*k)`` weights + 3 BNs
    (``6 * cout``). Deployed it is exactly one ``k x k`` conv with bias. Use
    :func:`conv_bn` to get a plain :class:`ConvBnAct` for ``k == 1``.
    """

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1,
                 dilation: int = 1, act: str | None = None):
        super().__init__()
        if kernel < 3 or kernel % 2 == 0:
            raise ValueError(f"ACB needs an odd kernel >= 3, got {kernel}")
        p = _same_pad(kernel, dilation)
        self.kernel = kernel
        self.square = nn.Conv2d(cin, cout, kernel, stride, p, dilation, groups, bias=False)
        self.square_bn = nn.BatchNorm2d(cout)
        self.hor = nn.Conv2d(cin, cout, (1, kernel), stride, (0, p), dilation, groups, bias=False)
        self.hor_bn = nn.BatchNorm2d(cout)
        self.ver = nn.Conv2d(cin, cout, (kernel, 1), stride, (p, 0), dilation, groups, bias=False)
        self.ver_bn = nn.BatchNorm2d(cout)
        self.act = get_act(act)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.square_bn(self.square(x)) + self.hor_bn(self.hor(x)) + self.ver_bn(self.ver(x)))

    def fused(self) -> nn.Sequential:
        """Deploy form: the three branches merged into one biased ``k x k`` conv + the activation."""
        w, b = fuse_branches([(self.square.weight, self.square_bn), (self.hor.weight, self.hor_bn),
                              (self.ver.weight, self.ver_bn)], self.kernel)
        return nn.Sequential(deployed_conv(self.square, w, b), _clone_act(self.act))


def conv_bn(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1, dilation: int = 1,
            act: str | None = None, acb: bool = False) -> nn.Module:
    """Conv + BN + act, as an ACB when ``acb`` and ``kernel > 1`` (a 1x1 ACB is just the conv)."""
    cls = ACBConv2d if acb and kernel > 1 else ConvBnAct
    return cls(cin, cout, kernel, stride, groups, dilation, act)


def _clone_act(act: nn.Module) -> nn.Module:
    # Activations here are parameter-free, so a fresh instance of the same type is an exact copy.
    return type(act)()
