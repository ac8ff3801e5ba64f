"""The genotype's vocabulary and validation: every buildable value, and one error line for any other.

Kept apart from :mod:`nas.genotype` (the dataclasses and their file forms) so
that each stays short; both are torch-free. Checks read the specs' attributes
only, so this module needs no import of the classes it checks.
"""

from __future__ import annotations

from typing import Any

from nas.channels import cw_groups
from nas.errors import InputError

ACTS = ("relu", "relu6", "swish", "hswish")
GATES = ("sigmoid", "hsigmoid")
SPLITS = ("equal", "exponential")
KINDS = ("ir", "ghost", "dws", "gm", "shuffle", "skip")  # block kinds; nas.rules registers the options of each
PROJS = ("conv", "cw")
HEAD_KINDS = ("fc", "cw")
SE_BASES = ("in", "mid")
STRIDES = (1, 2)
MAX_GROUPS = 5  # MixConv groups: group i has kernel 2i+1, so 3x3 .. 11x11
MAX_BLOCKS = 1024  # blocks of a genotype, repeats expanded (a file's `repeat: 1000000000` is no network)
MAX_EXPAND = 64.0
# Far beyond any network; a bound so that every size derived from a genotype stays a finite float (the memory
# estimate refuses what does not fit long before these).
MAX_CHANNELS = 10**8
MAX_RESOLUTION = 10**6


class GenotypeError(InputError):
    """A genotype that cannot be built; the message is one line naming the field."""


def _pos(v: int, where: str, hi: int = MAX_CHANNELS) -> None:
    if not 1 <= v <= hi:
        raise GenotypeError(f"{where}: must be an integer in 1..{hi:,}, got {v}" if v >= 1
                            else f"{where}: must be a positive integer, got {v}")


def _choice(v: Any, allowed: tuple, where: str) -> None:
    if v not in allowed:
        raise GenotypeError(f"{where}: {v!r} is not one of {', '.join(map(str, allowed))}")


def check_kernel(k: int, where: str) -> None:
    if k < 1 or k % 2 == 0 or k > 2 * MAX_GROUPS + 1:
        raise GenotypeError(f"{where}: kernel {k} must be odd and in 1..{2 * MAX_GROUPS + 1}")


def _kernel_ok(k: int) -> bool:
    return 1 <= k <= 2 * MAX_GROUPS + 1 and k % 2 != 0


def _block_ok(b: Any) -> bool:
    """Every check of :func:`check_block` at once, without building the error texts: sampling builds and checks
    tens of thousands of blocks, nearly all valid. (False only sends a block through the detailed checks.)"""
    return (b.out >= 1 and b.kind in KINDS and b.stride in STRIDES and 1 <= len(b.kernels) <= MAX_GROUPS
            and all(_kernel_ok(k) for k in b.kernels) and (b.kind != "ghost" or len(b.kernels) == 1)
            and b.split in SPLITS and b.dilation >= 1 and b.expand > 0 and (b.mid is None or b.mid >= 1)
            and b.exp_groups >= 1 and b.proj_groups >= 1 and 0 <= b.se <= 4 and b.se_base in SE_BASES
            and b.se_gate in GATES and b.se_divisor >= 1 and (b.se_act is None or b.se_act in ACTS)
            and b.act in ACTS and 1 <= b.ghost <= 8 and _kernel_ok(b.ghost_kernel) and b.proj in PROJS
            and not (b.ghost > 1 and (b.exp_groups > 1 or b.proj_groups > 1))
            and not (b.kind == "ghost" and (b.exp_groups > 1 or b.proj_groups > 1 or b.proj != "conv")))


def check_block(b: Any, w: str) -> None:
    """The fields of one block on their own (``w`` names it, e.g. ``stages[1].blocks[0]``)."""
    if _block_ok(b):
        return
    _pos(b.out, f"{w}.out")
    _choice(b.kind, KINDS, f"{w}.kind")
    _choice(b.stride, STRIDES, f"{w}.stride")
    if not 1 <= len(b.kernels) <= MAX_GROUPS:
        raise GenotypeError(f"{w}.kernels: g = {len(b.kernels)} groups; MixConv allows 1..{MAX_GROUPS}")
    for k in b.kernels:
        check_kernel(k, f"{w}.kernels")
    if b.kind == "ghost" and len(b.kernels) != 1:
        raise GenotypeError(f"{w}.kernels: a ghost bottleneck has a single depthwise kernel")
    _choice(b.split, SPLITS, f"{w}.split")
    _pos(b.dilation, f"{w}.dilation", 64)
    if not 0 < b.expand <= MAX_EXPAND:  # also refuses inf and nan
        raise GenotypeError(f"{w}.expand: must be in (0, {MAX_EXPAND:g}], got {b.expand}")
    if b.mid is not None:
        _pos(b.mid, f"{w}.mid")
    _pos(b.exp_groups, f"{w}.exp_groups")
    _pos(b.proj_groups, f"{w}.proj_groups")
    if not 0 <= b.se <= 4:
        raise GenotypeError(f"{w}.se: SE ratio must be in [0, 4], got {b.se}")
    _choice(b.se_base, SE_BASES, f"{w}.se_base")
    _choice(b.se_gate, GATES, f"{w}.se_gate")
    _pos(b.se_divisor, f"{w}.se_divisor")
    if b.se_act is not None:
        _choice(b.se_act, ACTS, f"{w}.se_act")
    _choice(b.act, ACTS, f"{w}.act")
    if not 1 <= b.ghost <= 8:
        raise GenotypeError(f"{w}.ghost: ghost ratio s must be in 1..8, got {b.ghost}")
    check_kernel(b.ghost_kernel, f"{w}.ghost_kernel")
    _choice(b.proj, PROJS, f"{w}.proj")
    if b.kind == "ir" and b.ghost > 1 and (b.exp_groups > 1 or b.proj_groups > 1):
        raise GenotypeError(f"{w}.ghost: ghost modules do not combine with grouped 1x1 convs")
    if b.kind == "ghost" and (b.exp_groups > 1 or b.proj_groups > 1 or b.proj != "conv"):
        raise GenotypeError(f"{w}.kind: a ghost bottleneck uses ghost modules for its 1x1 convs")


def check_genotype(g: Any) -> None:
    """Every field of a genotype, and the channel counts its blocks need in sequence."""
    if not isinstance(g.stages, tuple) or not g.stages or not all(g.stages):
        raise GenotypeError("stages: expected a non-empty list of non-empty stages")
    if sum(len(s) for s in g.stages) > MAX_BLOCKS:
        raise GenotypeError(f"stages: {sum(len(s) for s in g.stages):,} blocks; a genotype has at most {MAX_BLOCKS:,}")
    _pos(g.resolution, "resolution", MAX_RESOLUTION)
    _pos(g.in_chans, "in_chans")
    s = g.stem
    _pos(s.out, "stem.out")
    check_kernel(s.kernel, "stem.kernel")
    _choice(s.stride, STRIDES, "stem.stride")
    _choice(s.act, ACTS, "stem.act")
    h = g.head
    if not (0 <= h.features <= MAX_CHANNELS and 0 <= h.hidden <= MAX_CHANNELS):
        raise GenotypeError(f"head.features: must be in 0..{MAX_CHANNELS:,}")
    _choice(h.act, ACTS, "head.act")
    _choice(h.kind, HEAD_KINDS, "head.kind")
    if not 0 <= h.dropout < 1:
        raise GenotypeError(f"head.dropout: must be in [0, 1), got {h.dropout}")
    cin = s.out
    for si, stage in enumerate(g.stages):
        for bi, b in enumerate(stage):
            w = f"stages[{si}].blocks[{bi}]"
            check_block(b, w)
            _check_channels(b, cin, w)
            cin = b.out


def _check_channels(b: Any, cin: int, w: str) -> None:
    mid = b.mid_channels(cin)
    if b.kind in ("ir", "shuffle") and b.exp_groups > 1 and (cin % b.exp_groups or mid % b.exp_groups):
        raise GenotypeError(f"{w}.exp_groups: {b.exp_groups} groups do not divide {cin} -> {mid} channels")
    if b.kind == "ir":
        _divides(b.proj_groups, mid, b.out, f"{w}.proj_groups")
        cw = cw_groups(b.proj_groups)
        if b.proj == "cw" and (mid % cw or b.out % cw):
            raise GenotypeError(f"{w}.proj: cw needs {cw} groups to divide {mid} -> {b.out} channels")
    elif b.kind == "dws":
        if b.proj == "cw" and cin != b.out:
            raise GenotypeError(f"{w}.proj: a channel-wise (DWSCW) layer keeps its width, but {cin} -> {b.out}")
        if b.proj == "conv":
            _divides(b.proj_groups, cin, b.out, f"{w}.proj_groups")
    elif b.kind == "gm":
        _divides(cw_groups(b.proj_groups), cin, b.out, f"{w}.proj_groups", "a group module's ")
    elif b.kind == "shuffle":
        branch = b.out - cin if b.stride == 2 else b.out
        if branch < 1:
            raise GenotypeError(f"{w}.out: a stride-2 shuffle unit concatenates its {cin} input channels, "
                                f"so out must exceed {cin}, got {b.out}")
        _divides(b.proj_groups, mid, branch, f"{w}.proj_groups")
    need = min(mid, b.out) if b.kind == "gm" else mid  # a group module's second depthwise conv sees out
    if need < len(b.kernels):
        raise GenotypeError(f"{w}.kernels: {len(b.kernels)} groups need at least as many channels, got {need}")


def _divides(groups: int, cin: int, out: int, where: str, what: str = "") -> None:
    if groups > 1 and (cin % groups or out % groups):
        raise GenotypeError(f"{where}: {what}{groups} groups do not divide {cin} -> {out} channels")
