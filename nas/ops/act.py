"""Activations by name, as genotypes spell them."""

from __future__ import annotations

from torch import nn

_ACTS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "relu6": nn.ReLU6,
    "swish": nn.SiLU,
    "hswish": nn.Hardswish,
    "sigmoid": nn.Sigmoid,
    "hsigmoid": nn.Hardsigmoid,  # relu6(x + 3) / 6, the MobileNetV3/GhostNet gate
}


def get_act(name: str | None) -> nn.Module:
    """A fresh activation module; ``None`` gives ``nn.Identity`` (a linear layer)."""
    if name is None:
        return nn.Identity()
    try:
        return _ACTS[name]()
    except KeyError:
        raise ValueError(f"unknown activation {name!r} (known: {', '.join(_ACTS)})") from None
