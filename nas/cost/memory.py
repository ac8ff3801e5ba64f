"""How much memory a network needs, from the genotype alone, checked before any network is built (torch-free).

A genotype from elsewhere can ask for anything: 10^6 stem channels make
``build`` allocate gigabytes of weights and the first forward pass hundreds
more, and the process dies half-way (or a Ray worker is killed for memory).
:func:`estimate` adds up, from the same layer list the MAC counter walks,

* the weights: the training-time parameters (ACB branches unfolded), 4 bytes
  each, times the copies that exist at once (training: weight, gradient and
  two AdamW moments; inference: the module, its fused copy and an exported
  one);
* the activations: every feature map a layer writes (conv, BN and
  activation outputs), 4 bytes per element per image. Training keeps them
  all for the backward pass; inference needs the largest part's input and
  output at once.

It is an estimate (within a factor of about two of what torch allocates on
CPU), meant to refuse what cannot fit, not to pack jobs. :func:`check`
compares it with :func:`memory_limit`: ``NAS_MEMORY_LIMIT`` when set (``8G``,
``512M``, bytes), else 80 % of the smallest of the machine's memory, its
cgroup limit and the process's address-space limit.
"""

from __future__ import annotations

import os
import re
import resource
from dataclasses import dataclass
from pathlib import Path

from nas.channels import out_size
from nas.cost.macs import count
from nas.errors import InputError
from nas.genotype import Genotype

BYTES = 4  # float32
# Feature maps per layer output: conv, BN and activation outputs, plus (training) what autograd keeps besides
# (MixConv's per-group outputs before their concat, SE products, residual sums); measured on MixNet-S, within 5 %.
_MAPS = {True: 4, False: 3}
_COPIES = {True: 4, False: 3}  # weight copies at once: training (weight, grad, 2 AdamW moments) / inference
LIMIT_ENV = "NAS_MEMORY_LIMIT"
SHARE = 0.8  # of the machine's memory, when no limit is given
_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


@dataclass(frozen=True)
class Memory:
    """Bytes a network needs: ``weights`` (all copies) and ``activations``; ``largest`` names the part whose
    feature maps are the largest (``stem``, ``stages[1].blocks[0]``, ``head``)."""

    weights: int
    activations: int
    largest: str

    @property
    def total(self) -> int:
        return self.weights + self.activations


def estimate(g: Genotype, *, batch: int, num_classes: int = 1000, resolution: int | None = None,
             training: bool = False) -> Memory:
    """Memory to train (``training``) or run ``g`` on ``batch`` images of ``resolution`` (default: its own)."""
    r = g.resolution if resolution is None else resolution
    params = count(g, r, num_classes, deployed=False).params
    parts = list(_feature_maps(g, r, num_classes, _MAPS[training]))
    name, _, _ = max(parts, key=lambda p: p[2])
    if training:
        elems = sum(written for _, _, written in parts)
    else:
        elems = max(read + written for _, read, written in parts)
    return Memory(weights=params * BYTES * _COPIES[training], activations=elems * batch * BYTES, largest=name)


def _feature_maps(g: Genotype, r: int, num_classes: int, maps: int):
    """``(part, elements it reads, elements it writes)`` per image, for the stem, every block and the head."""
    s = g.stem
    r1 = s.out_res(r)
    yield "stem", g.in_chans * r * r, maps * s.out * out_size(r, s.stride) ** 2 + s.out * r1 * r1
    c, r = s.out, r1
    for si, stage in enumerate(g.stages):
        for bi, b in enumerate(stage):
            mid, r2 = b.mid_channels(c), out_size(r, b.stride)
            branches = 3 if b.acb else 1  # ACB: the 1xk and kx1 branches write maps of their own
            written = (maps * mid * r * r if b.has_expand(c) else 0) + maps * branches * mid * r2 * r2 \
                + maps * b.out * r2 * r2
            yield f"stages[{si}].blocks[{bi}]", c * r * r, written
            c, r = b.out, r2
    h = g.head
    feats = h.hidden or h.features or c
    yield "head", c * r * r, maps * (h.features or c) * r * r + maps * feats + num_classes


def memory_limit() -> tuple[int, str]:
    """The most bytes one network may need, and where that limit comes from (for the error line)."""
    given = os.environ.get(LIMIT_ENV, "").strip()
    if given:
        return parse_bytes(given, LIMIT_ENV), LIMIT_ENV
    total, what = _machine_memory()
    return int(total * SHARE), f"{100 * SHARE:.0f} % of {what}, {fmt_bytes(total)}; {LIMIT_ENV} sets another"


def parse_bytes(text: str, where: str) -> int:
    """``8G``, ``512M``, ``1.5e9``: bytes (binary units)."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([KMGT]?)i?B?\s*", text, flags=re.IGNORECASE)
    if not m:
        raise InputError(f"{where}: {text!r} is not a memory size such as 8G, 512M or 2000000000")
    value = float(m.group(1)) * _UNITS[m.group(2).upper()]
    if not 0 < value < 2**62:
        raise InputError(f"{where}: {text!r} is not a positive memory size")
    return int(value)


def _machine_memory() -> tuple[int, str]:
    found = [(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"), "this machine's memory")]
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(path).read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 2**60:
            found.append((int(text), "the cgroup's memory limit"))
    for lim in (resource.RLIMIT_AS, resource.RLIMIT_DATA):
        soft = resource.getrlimit(lim)[0]
        if soft != resource.RLIM_INFINITY and soft > 0:
            found.append((soft, "the process's memory limit (ulimit)"))
    return min(found)


def fmt_bytes(n: float) -> str:
    for unit, div in (("TB", 2**40), ("GB", 2**30), ("MB", 2**20), ("kB", 2**10)):
        if n >= div:
            return f"{n / div:.3g} {unit}" if n / div < 1e4 else f"{n / div:.3e} {unit}"
    return f"{n:.0f} B"


def check(g: Genotype, *, batch: int, num_classes: int = 1000, resolution: int | None = None,
          training: bool = False, what: str | None = None, source: str | None = None) -> Memory:
    """:func:`estimate`, refused with one InputError line naming ``source`` (default: the genotype's name) and
    the largest part when above :func:`memory_limit`."""
    need = estimate(g, batch=batch, num_classes=num_classes, resolution=resolution, training=training)
    limit, how = memory_limit()
    if need.total > limit:
        r = g.resolution if resolution is None else resolution
        doing = what or ("training it" if training else "running it")
        raise InputError(f"{source or g.name or 'genotype'}: {need.largest}: {doing} needs about "
                         f"{fmt_bytes(need.total)} of memory (feature maps {fmt_bytes(need.activations)} at "
                         f"{r}x{r}, batch {batch}; weights {fmt_bytes(need.weights)}), more than the limit of "
                         f"{fmt_bytes(limit)} ({how})")
    return need
