"""Activations by name, as genotypes spell them (the names are ``nas.genotype.ACTS`` and ``GATES``)."""

from __future__ import annotations

from torch import nn

from nas.genotype import ACTS, GATES

_ACTS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "relu6": nn.ReLU6,
    "swish": nn.SiLU,
    "hswish": nn.Hardswish,
    "sigmoid": nn.Sigmoid,
    "hsigmoid": nn.Hardsigmoid,  # relu6(x + 3) / 6, the MobileNetV3/GhostNet gate
}
assert tuple(_ACTS) == (*ACTS, *GATES), "every activation and gate a genotype can name has a module here"


def get_act(name: str | None) -> nn.Module:
    """A fresh activation module; ``None`` gives ``nn.Identity`` (a linear layer)."""
    if name is None:
        return nn.Identity()
    try:
        return _ACTS[name]()
    except KeyError:
        raise ValueError(f"unknown activation {name!r} (known: {', '.join(_ACTS)})") from None
