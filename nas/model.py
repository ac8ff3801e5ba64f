"""Genotype -> ``nn.Module`` (:func:`build`) and the fused inference model (:func:`deploy`).

The built network is ``stem -> stages[i][j] -> head``, every layer exactly as
the docstring of ``nas/genotype.py`` lists it, so its parameter count and
``FlopCounterMode`` MACs equal ``nas.cost.macs.count``. :func:`deploy`
returns a copy in eval mode with every BatchNorm folded into its conv and
every ACB merged into one conv; it scripts, traces and exports to ONNX.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from nas.cost import memory
from nas.genotype import Genotype, GenotypeError
from nas.ops.adapter import block_from_spec, head_from_spec, stem_from_spec


class Net(nn.Module):
    """A network built from a genotype; ``stages[i][j]`` is block ``j`` of stage ``i``."""

    def __init__(self, genotype: Genotype, num_classes: int = 1000):
        super().__init__()
        g = genotype
        self.genotype = g
        self.stem = stem_from_spec(g.in_chans, g.stem)
        stages, c = [], g.stem.out
        for stage in g.stages:
            blocks = []
            for spec in stage:
                blocks.append(block_from_spec(c, spec))
                c = spec.out
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.ModuleList(stages)
        self.head = head_from_spec(c, g.head, num_classes, g.last_size)

    def forward(self, x: Tensor) -> Tensor:
        if x.device.type == "cpu":
            # oneDNN runs depthwise/grouped convs much faster channels-last; 10-25% per training step here.
            x = x.contiguous(memory_format=torch.channels_last)
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        return self.head(x)


def build(genotype: Genotype, num_classes: int = 1000) -> Net:
    """The training-mode network of ``genotype`` (BN and ACB branches unfused)."""
    h = genotype.head
    c = h.hidden or h.features or genotype.last_channels
    if h.kind == "cw" and c < num_classes:
        where = f"{genotype.name}: " if genotype.name else ""
        raise GenotypeError(f"{where}head.kind: the cw classifier needs at least num_classes={num_classes} "
                            f"input channels, got {c}")
    # Nothing is allocated for a network that cannot even run one image here (a genotype from elsewhere may ask
    # for 10^6 channels): refused with one line naming its largest part.
    memory.check(genotype, batch=1, num_classes=num_classes, what="building and running it")
    net = Net(genotype, num_classes)
    _init_weights(net)
    return net


def deploy(module: nn.Module, *, inplace: bool = False) -> nn.Module:
    """A fused copy of ``module`` in eval mode; ``module`` itself is left untouched (unless ``inplace``: then
    ``module`` is fused and returned, which saves the copy for a network built only to be deployed).

    Every op that has a ``fused()`` method (conv + BN, ACB, MixConv) is
    replaced by its deploy form; the outputs equal ``module.eval()``'s.
    """
    return _fuse((module if inplace else copy.deepcopy(module)).eval())


def _fuse(m: nn.Module) -> nn.Module:
    fused = getattr(m, "fused", None)
    if callable(fused):
        return fused().eval()
    for name, child in m.named_children():
        setattr(m, name, _fuse(child))
    return m


def _init_weights(net: nn.Module) -> None:
    # MobileNet/EfficientNet initialisation (as timm's): He fan-out for convs, small normal for the classifier.
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.zeros_(m.bias)
