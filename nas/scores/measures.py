"""The training-free measures themselves: each a function of a built network and, where needed, one batch.

Every function leaves ``net``'s weights as it found them (the ones that change weights work on a copy) and
returns a float where larger means "predicted better". They follow the reference code of their papers:

* :func:`synflow`: Tanaka et al. 2020 (SynFlow), as Abdelfattah et al. 2021 ("Zero-Cost Proxies for
  Lightweight NAS", SamsungLabs/zero-cost-nas ``synflow``) compute it for ranking: every parameter made
  positive, BatchNorm left out (their ``bn=False``: the network is built without it; here every BN is replaced
  by an identity in a copy), one all-ones input in float64, ``R = sum(net(1))``, score ``sum |w * dR/dw|`` over
  conv and linear weights. Reported as ``log`` of that sum: the sum is a product over layers and reaches
  10^100 on deep networks; the log keeps ranks and makes averages over seeds meaningful.
* :func:`zen`: Lin et al., Zen-NAS, ICCV 2021 (idstcv/ZenNAS ``compute_zen_score``): Gaussian weights (convs and
  linears N(0, 1), BN weight 1 and bias 0), train-mode BN, ``log E|f(x) - f(x + 0.01 e)|`` on the feature map
  before global pooling plus ``sum log sqrt(mean(var))`` over every BN's batch variances (the BN rescaling).
  The reference reads ``running_var`` after one forward at momentum 0.1; here each BN's momentum is 1 in the
  copy, so ``running_var`` is the batch variance the paper's formula names.
* :func:`naswot`: Mellor et al., "Neural Architecture Search without Training", ICML 2021
  (BayesWatch/nas-without-training, the second version): binary codes ``c = [x > 0]`` at the input of every
  activation (ReLU, ReLU6, SiLU/swish, Hardswish: the sign of the pre-activation is the unit's linear region
  for ReLU and ReLU6, and the side of the bend for the smooth ones), kernel ``K = c c^T + (1-c)(1-c)^T``
  summed over activations, score ``log|det K|``. It is independent of labels and of the batch's order.
* :func:`grad_norm`: Abdelfattah et al. 2021 ``grad_norm``: ``sum ||dL/dw||_2`` over conv and linear weights
  of the cross-entropy of one batch.
* :func:`snip`: Lee et al. 2019 as Abdelfattah et al. 2021 compute it: ``sum |w * dL/dw|`` over the same
  weights.

The network is in train mode for every measure (BN on batch statistics) as in the reference code, with dropout
off (its random mask is noise unrelated to the architecture).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

#: The activation modules whose pre-activation signs NASWOT codes (SE gates are not activations of a layer).
ACTIVATIONS: tuple[type[nn.Module], ...] = (nn.ReLU, nn.ReLU6, nn.SiLU, nn.Hardswish)
_WEIGHTED = (nn.Conv2d, nn.Linear)


def _train(net: nn.Module) -> nn.Module:
    """Train mode (BN on batch statistics) with dropout off: its random mask would add noise unrelated to the
    architecture to every score."""
    net.train()
    for m in net.modules():
        if isinstance(m, nn.modules.dropout._DropoutNd):
            m.eval()
    return net


def _layers(net: nn.Module) -> list[nn.Module]:
    return [m for m in net.modules() if isinstance(m, _WEIGHTED)]


def _without_bn(net: nn.Module) -> nn.Module:
    """A copy of ``net`` with every BatchNorm replaced by an identity."""
    net = copy.deepcopy(net)
    for parent in list(net.modules()):
        for name, child in parent.named_children():
            if isinstance(child, nn.modules.batchnorm._BatchNorm):
                setattr(parent, name, nn.Identity())
    return net


def synflow(net: nn.Module, shape: tuple[int, ...]) -> float:
    """``log sum |w * dR/dw|`` with ``R = sum(net(1))``: positive weights, no BN, float64, ``shape = (C, H, W)``.

    Data-free by construction: the input is all ones, whatever data the network is meant for.
    """
    net = _train(_without_bn(net).double())
    with torch.no_grad():
        for p in net.state_dict().values():
            if p.is_floating_point():
                p.abs_()
    net.zero_grad(set_to_none=True)
    x = torch.ones((1, *shape), dtype=torch.float64)
    net(x).sum().backward()
    with torch.no_grad():
        total = sum(float((m.weight * m.weight.grad).abs().sum()) for m in _layers(net) if m.weight.grad is not None)
    return math.log(total) if total > 0 else float("-inf")


def _gaussian_init(net: nn.Module) -> None:
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, _WEIGHTED):
                nn.init.normal_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.modules.batchnorm._BatchNorm):
                if m.weight is not None:
                    nn.init.ones_(m.weight)
                    nn.init.zeros_(m.bias)
                m.momentum = 1.0  # running_var := this batch's variance
                m.reset_running_stats()


def zen(net: nn.Module, x: Tensor, features: nn.Module, mixup_gamma: float = 1e-2,
        generator: torch.Generator | None = None) -> float:
    """Zen-score of ``net`` (re-initialised Gaussian, in a copy) on input ``x`` (Gaussian in the paper).

    ``features`` is the module whose *input* is the pre-pooling feature map (the head's pool); it must be a
    submodule of ``net``.
    """
    path = next(n for n, m in net.named_modules() if m is features)
    net = _train(copy.deepcopy(net))
    target = net.get_submodule(path)
    _gaussian_init(net)
    seen: list[Tensor] = []
    hook = target.register_forward_pre_hook(lambda _m, args: seen.append(args[0]))
    try:
        with torch.no_grad():
            noise = torch.randn(x.shape, generator=generator, dtype=x.dtype)
            net(x)
            net(x + mixup_gamma * noise)
            bn = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
            log_bn = sum(0.5 * math.log(float(m.running_var.mean())) for m in bn)  # of the last pass, as ZenNAS
    finally:
        hook.remove()
    clean, mixed = seen
    delta = float((clean - mixed).abs().flatten(1).sum(1).mean())
    return (math.log(delta) if delta > 0 else float("-inf")) + log_bn


BATCH_MEASURES = ("naswot", "grad_norm", "snip")


def batch_measures(net: nn.Module, x: Tensor, y: Tensor, want: Sequence[str] = BATCH_MEASURES) -> dict[str, float]:
    """NASWOT, gradient norm and SNIP (those named in ``want``) from one forward pass of ``(x, y)`` in train mode
    and, for the gradient ones, one backward pass of its cross-entropy; the three see the same network, batch
    and BN statistics as when each is computed alone."""
    unknown = set(want) - set(BATCH_MEASURES)
    if unknown:
        raise ValueError(f"not a batch measure: {sorted(unknown)}")
    b = x.shape[0]
    k = torch.zeros(b, b, dtype=torch.float64)

    def hook(_m: nn.Module, args: tuple[Tensor, ...]) -> None:
        c = (args[0].detach().reshape(b, -1) > 0).double()
        k.add_(c @ c.T + (1 - c) @ (1 - c).T)

    grads = "grad_norm" in want or "snip" in want
    hooks = [m.register_forward_pre_hook(hook) for m in net.modules() if isinstance(m, ACTIVATIONS)] \
        if "naswot" in want else []
    was_training = net.training
    out: dict[str, float] = {}
    try:
        _train(net)
        net.zero_grad(set_to_none=True)
        with torch.set_grad_enabled(grads):
            logits = net(x)
        for h in hooks:
            h.remove()
        hooks = []
        if "naswot" in want:
            out["naswot"] = float(torch.linalg.slogdet(k)[1])
        if grads:
            nn.functional.cross_entropy(logits, y).backward()
            with torch.no_grad():
                layers = [m for m in _layers(net) if m.weight.grad is not None]
                if "grad_norm" in want:
                    out["grad_norm"] = float(sum(float(m.weight.grad.norm()) for m in layers))
                if "snip" in want:
                    out["snip"] = float(sum(float((m.weight * m.weight.grad).abs().sum()) for m in layers))
    finally:
        for h in hooks:
            h.remove()
        net.zero_grad(set_to_none=True)
        net.train(was_training)  # dropout too
    return out


def naswot_kernel(net: nn.Module, x: Tensor) -> Tensor:
    """``K = sum over activations of c c^T + (1 - c)(1 - c)^T``, ``c`` the batch's binary pre-activation codes."""
    b = x.shape[0]
    k = torch.zeros(b, b, dtype=torch.float64)

    def hook(_m: nn.Module, args: tuple[Tensor, ...]) -> None:
        c = (args[0].detach().reshape(b, -1) > 0).double()
        k.add_(c @ c.T + (1 - c) @ (1 - c).T)

    hooks = [m.register_forward_pre_hook(hook) for m in net.modules() if isinstance(m, ACTIVATIONS)]
    was_training = net.training
    try:
        _train(net)
        with torch.no_grad():
            net(x)
    finally:
        for h in hooks:
            h.remove()
        net.train(was_training)  # dropout too
    return k


def naswot(net: nn.Module, x: Tensor) -> float:
    """``log|det K|`` of :func:`naswot_kernel` (``-inf`` when two inputs share every code)."""
    return float(torch.linalg.slogdet(naswot_kernel(net, x))[1])


def grad_norm(net: nn.Module, x: Tensor, y: Tensor) -> float:
    """``sum ||dL/dw||_2`` over conv and linear weights, ``L`` the cross-entropy of ``(x, y)``."""
    return batch_measures(net, x, y, ("grad_norm",))["grad_norm"]


def snip(net: nn.Module, x: Tensor, y: Tensor) -> float:
    """``sum |w * dL/dw|`` over conv and linear weights (SNIP's connection sensitivity, summed)."""
    return batch_measures(net, x, y, ("snip",))["snip"]
