"""Helpers shared by the op tests: torch's own parameter and MAC counts, and BatchNorms away from the identity."""

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def macs(m: nn.Module, x: torch.Tensor) -> int:
    """``FlopCounterMode`` MACs (half its FLOPs) of ``m(x)``."""
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        m(x)
    return fc.get_total_flops() // 2


def randomize_bn(m: nn.Module, seed: int = 0) -> nn.Module:
    """Random BN statistics and affine params, so fusion is tested away from the identity."""
    g = torch.Generator().manual_seed(seed)
    for bn in m.modules():
        if isinstance(bn, nn.BatchNorm2d):
            n = bn.num_features
            with torch.no_grad():
                bn.running_mean.copy_(torch.randn(n, generator=g) * 0.5)
                bn.running_var.copy_(torch.rand(n, generator=g) * 1.5 + 0.5)
                bn.weight.copy_(torch.rand(n, generator=g) + 0.5)
                bn.bias.copy_(torch.randn(n, generator=g) * 0.5)
    return m


def close(a: torch.Tensor, b: torch.Tensor, tol: float = 1e-4) -> None:
    """``a`` equals ``b`` within ``tol`` relative to ``b``'s largest magnitude (at least 1)."""
    scale = max(1.0, b.abs().max().item())
    assert (a - b).abs().max().item() <= tol * scale
