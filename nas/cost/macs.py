"""Analytic MACs and parameter count of a genotype, without building a module.

The counter walks the exact layer list that ``nas/genotype.py`` documents
(the contract with ``nas.model.build``) and adds up, per layer:

* **MACs**: multiply-accumulates of every convolution and linear layer,
  squeeze-excite convs and the head's features/hidden convs included:
  ``out_h * out_w * out_channels * in_channels / groups * kh * kw`` for a
  conv, ``in * out`` for a linear. This is what papers call "FLOPs" and is
  exactly ``FlopCounterMode`` (which counts 2 per MAC) halved, on a batch of
  one in eval mode. Not counted: BatchNorm (folded into the conv at deploy),
  activations, the SE gate multiply, pooling, residual adds, channel
  shuffle, concat/slice, and biases.
* **params**: ``sum(p.numel() for p in build(g).parameters())``: conv and
  linear weights, their biases where the layer has one, and BatchNorm weight
  and bias (running statistics are buffers, not parameters).

Layers whose cost is less obvious (formulas as ``nas/ops/*`` states them):
ghost modules compute all ``ceil(out/s) * (s-1)`` cheap channels even when
the concat is sliced to ``out``; a group channel-wise conv (``g`` groups,
``g = max(proj_groups, 2)``) is ``g`` channel-wise convs of ``dc = 4g``
taps and stride ``g`` over ``C`` channels (``g * dc`` weights,
``r*r*C*dc`` MACs), the fusion of the inverted residual's ``proj: cw``
(after its grouped 1x1 conv + BN) and of a GCWM (``kind: gm, proj: cw``,
before its layers); DWSCW (``kind: dws, proj: cw``) is a 3-tap channel-wise
conv + BN (``3 + 2C`` params, ``3 r*r C`` MACs); the ShuffleNet unit's
pooled shortcut and channel shuffle cost nothing; the ``cw`` classifier is
one kernel over ``c - num_classes + 1`` channels and the ``size x size``
map it was built for (``size`` from the genotype's resolution, 1 when a
``hidden`` conv pools first), so a model run at another resolution pools to
``size`` first and keeps that cost.

Spatial sizes follow "same" padding: a stride-s layer maps ``r`` to
``ceil(r / s)``.

ACB (ACNet) is counted as deployed by default: ``nas.model.deploy`` folds
each BN into its branch and adds the k x k, 1 x k and k x 1 kernels into one
k x k conv, so the deployed network is exactly the network without ACB, and
``count(g)`` equals ``count`` of ``g`` with every ``acb`` off (MACs and
parameters: the folded conv and its BN counted as a plain conv + BN). That is
what budgets, objectives, family tiers and latency keys use: ACB is free at
inference. ``count(g, deployed=False)`` counts the network as built for
training instead (three branches, a BN each), which is what
``sum(p.numel() for p in build(g).parameters())`` and ``FlopCounterMode`` on
the training module see.

The published figures of the shipped references, and why ours differ where
they do (MixNet's printed FLOPs count elementwise ops too), are in
:mod:`nas.cost.published` and ``search_spaces/reference/README.md``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from nas.channels import DWSCW_WINDOW, cw_groups, cw_window, ghost_channels, out_size, split_channels
from nas.cost.published import REFERENCES, Published
from nas.genotype import BlockSpec, Genotype, GenotypeError, HeadSpec, StemSpec

__all__ = ["REFERENCES", "Cost", "Published", "Row", "breakdown", "count"]


@dataclass(frozen=True)
class Cost:
    macs: int
    params: int


@dataclass(frozen=True)
class Row:
    """One line of :func:`breakdown`: the stem, a stage or the head."""

    part: str
    blocks: int
    out: int
    resolution: int  # spatial size of the part's output feature map (1 for the head)
    macs: int
    params: int


def count(genotype: Genotype, resolution: int | None = None, num_classes: int = 1000, *,
          deployed: bool = True) -> Cost:
    """MACs and parameters of the deployed network of ``genotype`` on a ``resolution`` square input.

    ``resolution=None`` uses the genotype's own resolution. ``deployed=False``: the network as
    ``build(genotype, num_classes)`` makes it for training (ACB branches unfolded).
    """
    r = genotype.resolution if resolution is None else resolution
    macs, params = _stem(genotype.stem, genotype.in_chans, r, deployed)
    r = genotype.stem.out_res(r)
    c = genotype.stem.out
    for stage in genotype.stages:
        for b in stage:
            m, p = _block(b, c, r, deployed)
            macs += m
            params += p
            c, r = b.out, out_size(r, b.stride)
    m, p = _head(genotype.head, c, r, num_classes, _cw_side(genotype))
    return Cost(macs + m, params + p)


def breakdown(genotype: Genotype, resolution: int | None = None, num_classes: int = 1000, *,
              deployed: bool = True) -> list[Row]:
    """Per-part costs: one row for the stem, one per stage, one for the head; they sum to :func:`count`."""
    r = genotype.resolution if resolution is None else resolution
    stem = genotype.stem
    m, p = _stem(stem, genotype.in_chans, r, deployed)
    r = stem.out_res(r)
    c = stem.out
    rows = [Row("stem", 0, c, r, m, p)]
    for i, stage in enumerate(genotype.stages):
        macs = params = 0
        for b in stage:
            m, p = _block(b, c, r, deployed)
            macs += m
            params += p
            c, r = b.out, out_size(r, b.stride)
        rows.append(Row(f"stage {i}", len(stage), c, r, macs, params))
    m, p = _head(genotype.head, c, r, num_classes, _cw_side(genotype))
    out = genotype.head.hidden or genotype.head.features or c
    rows.append(Row("head", 0, out, 1, m, p))
    return rows


# -- layers --------------------------------------------------------------------
# Each returns (macs, params) at output resolution r.

def _cw_side(g: Genotype) -> int:
    """Side of the map a ``cw`` classifier was built for: the last feature map at the genotype's own
    resolution, or 1 after pooling for a ``hidden`` conv."""
    if g.head.kind != "cw" or g.head.hidden:
        return 1
    return g.last_size


def _conv(cin: int, cout: int, k: int, r: int, groups: int = 1, bias: bool = False, bn: bool = True) -> tuple[int, int]:
    w = cout * (cin // groups) * k * k
    return w * r * r, w + (cout if bias else 0) + (2 * cout if bn else 0)


def _acb(cin: int, cout: int, k: int, r: int, groups: int = 1) -> tuple[int, int]:
    """ACNet block: k x k, 1 x k and k x 1 branches, each with its own BN (k == 1 is a plain conv + BN)."""
    if k == 1:
        return _conv(cin, cout, 1, r, groups)
    w = cout * (cin // groups) * (k * k + 2 * k)
    return w * r * r, w + 6 * cout


def _ghost(cin: int, out: int, ratio: int, d: int, r: int) -> tuple[int, int]:
    """Ghost module; the cheap conv computes all ``init * (s - 1)`` channels even when the concat is sliced."""
    if ratio == 1:
        return _conv(cin, out, 1, r)
    init, cheap = ghost_channels(out, ratio)
    w = cin * init + cheap * d * d
    return w * r * r, w + 2 * (init + cheap)


def _mixconv(b: BlockSpec, mid: int, r: int, acb: bool) -> tuple[int, int]:
    """Depthwise MixConv: per group ``c * k * k`` weights; one shared BN, or (``acb``: as trained with ACB)
    per-group branches and BNs."""
    w = bn = 0
    for c, k in zip(split_channels(mid, len(b.kernels), b.split), b.kernels, strict=True):
        if not acb:
            w += c * k * k
        elif k > 1:  # ACB: k x k, 1 x k and k x 1 branches, a BN each
            w += c * (k * k + 2 * k)
            bn += 6 * c
        else:  # a 1x1 ACB group is a plain conv + BN
            w += c
            bn += 2 * c
    return w * r * r, w + (bn if acb else 2 * mid)


def _dw(c: int, k: int, r: int, acb: bool) -> tuple[int, int]:
    """A plain depthwise ``k x k`` conv + BN, or (``acb``: as trained with ACB) its three branches."""
    return _acb(c, c, k, r, c) if acb else _conv(c, c, k, r, c)


def _se(b: BlockSpec, cin: int, mid: int) -> tuple[int, int]:
    rd = b.se_channels(cin)
    return 2 * mid * rd, 2 * mid * rd + rd + mid


def _gcw(channels: int, groups: int, r: int) -> tuple[int, int]:
    """Group channel-wise conv (ChannelNets' fusion layer): ``g`` channel-wise convs of ``dc = cw_window(g)``
    taps and stride ``g`` on ``channels`` channels, ``channels / g`` outputs each; no BN."""
    dc = cw_window(groups)
    return channels * dc * r * r, groups * dc


def _group_channelwise(cin: int, out: int, groups: int, r: int) -> tuple[int, int]:
    """The inverted residual's ``proj: cw``: grouped 1x1 conv + BN, then the group channel-wise fusion."""
    g = cw_groups(groups)
    m, p = _conv(cin, out, 1, r, g)
    mf, pf = _gcw(out, g, r)
    return m + mf, p + pf


@lru_cache(maxsize=65536)
def _block(b: BlockSpec, cin: int, r: int, deployed: bool = True) -> tuple[int, int]:
    """(macs, params) of one block with ``cin`` input channels at input resolution ``r``; ACB branches counted
    only when not ``deployed``."""
    return _BLOCKS[b.kind](b, cin, b.mid_channels(cin), r, out_size(r, b.stride), b.acb and not deployed)


def _ir_block(b: BlockSpec, cin: int, mid: int, r: int, ro: int, acb: bool) -> tuple[int, int]:
    macs = params = 0
    if b.has_expand(cin):
        m, p = _ghost(cin, mid, b.ghost, b.ghost_kernel, r) if b.ghost > 1 else _conv(cin, mid, 1, r, b.exp_groups)
        macs, params = macs + m, params + p
    m, p = _mixconv(b, mid, ro, acb)
    macs, params = macs + m, params + p
    if b.se > 0:
        m, p = _se(b, cin, mid)
        macs, params = macs + m, params + p
    if b.proj == "cw":
        m, p = _group_channelwise(mid, b.out, b.proj_groups, ro)
    elif b.ghost > 1:
        m, p = _ghost(mid, b.out, b.ghost, b.ghost_kernel, ro)
    else:
        m, p = _conv(mid, b.out, 1, ro, b.proj_groups)
    return macs + m, params + p


def _ghost_block(b: BlockSpec, cin: int, mid: int, r: int, ro: int, acb: bool) -> tuple[int, int]:
    k = b.kernels[0]
    macs, params = _ghost(cin, mid, b.ghost, b.ghost_kernel, r)
    if b.stride == 2:
        m, p = _dw(mid, k, ro, acb)
        macs, params = macs + m, params + p
    if b.se > 0:
        m, p = _se(b, cin, mid)
        macs, params = macs + m, params + p
    m, p = _ghost(mid, b.out, b.ghost, b.ghost_kernel, ro)
    macs, params = macs + m, params + p
    if not b.has_residual(cin):
        m1, p1 = _dw(cin, k, ro, acb)
        m2, p2 = _conv(cin, b.out, 1, ro)
        macs, params = macs + m1 + m2, params + p1 + p2
    return macs, params


def _separable(b: BlockSpec, cin: int, out: int, ro: int, acb: bool, groups: int) -> tuple[int, int]:
    """MobileNetV1 layer: depthwise MixConv + BN on ``cin``, then a grouped 1x1 conv + BN, or DWSCW's 3-tap
    channel-wise conv + BN (``proj == "cw"``, ``cin == out``)."""
    m, p = _mixconv(b, cin, ro, acb)
    if b.proj == "cw" and b.kind == "dws":
        return m + out * DWSCW_WINDOW * ro * ro, p + DWSCW_WINDOW + 2 * out
    mc, pc = _conv(cin, out, 1, ro, groups)
    return m + mc, p + pc


def _dws_block(b: BlockSpec, cin: int, mid: int, r: int, ro: int, acb: bool) -> tuple[int, int]:
    return _separable(b, cin, b.out, ro, acb, b.proj_groups)


def _gm_block(b: BlockSpec, cin: int, mid: int, r: int, ro: int, acb: bool) -> tuple[int, int]:
    """ChannelNets group module: [GCWM fusion on the input] + two depthwise separable layers in ``g`` groups."""
    g = cw_groups(b.proj_groups)
    m0, p0 = _gcw(cin, g, r) if b.proj == "cw" else (0, 0)
    m1, p1 = _separable(b, cin, b.out, ro, acb, g)
    m2, p2 = _separable(b, b.out, b.out, ro, acb, g)
    return m0 + m1 + m2, p0 + p1 + p2


def _shuffle_block(b: BlockSpec, cin: int, mid: int, r: int, ro: int, acb: bool) -> tuple[int, int]:
    """ShuffleNet unit: grouped 1x1 + BN, depthwise + BN, grouped 1x1 + BN to ``out`` (stride 1) or to
    ``out - cin`` (stride 2, concatenated with the pooled input)."""
    m1, p1 = _conv(cin, mid, 1, r, b.exp_groups)
    m2, p2 = _mixconv(b, mid, ro, acb)
    m3, p3 = _conv(mid, b.out - cin if b.stride == 2 else b.out, 1, ro, b.proj_groups)
    return m1 + m2 + m3, p1 + p2 + p3


def _skip_block(b: BlockSpec, cin: int, mid: int, r: int, ro: int, acb: bool) -> tuple[int, int]:
    """Identity: nothing where stride and width are kept, else a 1x1 conv with the stride + BN."""
    return (0, 0) if b.has_residual(cin) else _conv(cin, b.out, 1, ro)


#: The counter of each block kind (``nas.rules.KINDS``); ``ro`` is the output resolution.
_BLOCKS = {"ir": _ir_block, "ghost": _ghost_block, "dws": _dws_block, "gm": _gm_block, "shuffle": _shuffle_block,
           "skip": _skip_block}


def _stem(s: StemSpec, in_chans: int, r: int, deployed: bool) -> tuple[int, int]:
    ro = out_size(r, s.stride)  # the max-pool (``pool``) costs nothing
    return _acb(in_chans, s.out, s.kernel, ro) if s.acb and not deployed else _conv(in_chans, s.out, s.kernel, ro)


def _head(h: HeadSpec, c: int, r: int, num_classes: int, size: int) -> tuple[int, int]:
    """The head on a ``c x r x r`` map; ``size`` is the map side at the genotype's own resolution, which
    fixes the kernel of a ``cw`` classifier applied before pooling (other inputs are pooled to it)."""
    macs = params = 0
    if h.features:
        macs, params = _conv(c, h.features, 1, r)
        c = h.features
    if h.hidden:
        m, p = _conv(c, h.hidden, 1, 1, bias=True, bn=False)
        macs, params, c = macs + m, params + p, h.hidden
    if h.kind == "cw":
        m, p = _classifier_cw(c, num_classes, size)
    else:
        m, p = c * num_classes, c * num_classes + num_classes
    return macs + m, params + p


def _classifier_cw(c: int, num_classes: int, size: int) -> tuple[int, int]:
    """ChannelNets convolutional classification layer: one kernel over ``c - num_classes + 1`` channels and
    the whole ``size x size`` map."""
    if c < num_classes:
        raise GenotypeError(f"head.kind: the cw classifier needs at least num_classes={num_classes} "
                            f"channels, got {c}")
    w = (c - num_classes + 1) * size * size
    return num_classes * w, w
