"""The genotype: one concrete network, the single currency of nas.

A :class:`Genotype` is a frozen description of a whole network: input
resolution, stem, stages of blocks, head. Searched architectures and the
reference models (MixNet, GhostNet, MobileNet) are all genotypes and are
built by the same builder (``nas.model.build``) and costed by the same
analytic counter (``nas.cost.macs.count``).

Exact layers each field produces (the contract between builder and counter)
--------------------------------------------------------------------------
Convs have no bias and are followed by BatchNorm unless said otherwise.

Stem: ``conv k x k, stride, in_chans -> out`` + BN + act (ACB if ``acb``).

Block ``kind="ir"`` (inverted residual, MobileNetV2/MixNet), input ``cin``:

* ``mid = block.mid or make_divisible(cin * expand, 8)``; ``expand == 1``
  (and no ``mid``) means no expand conv at all (MobileNet's first "ds" block,
  ``mid = cin``).
* expand: 1x1 conv ``cin -> mid`` with ``exp_groups`` groups + BN + act;
  a ghost module with ratio ``ghost`` when ``ghost > 1``; channel shuffle
  after it when ``shuffle`` and ``exp_groups > 1``.
* depthwise MixConv on ``mid`` channels: one group per kernel in
  ``kernels``, channels split by ``split``, ``stride``, ``dilation``; each
  group a plain depthwise conv + (shared) BN, or ACB branches when ``acb``;
  then act.
* squeeze-excite when ``se > 0``: reduced channels
  ``rd = _round(base * se, se_divisor)`` with ``base = cin`` (``se_base="in"``,
  MixNet/EfficientNet) or ``mid`` (``"mid"``, MobileNetV3/GhostNet);
  ``_round`` is ``round`` when ``se_divisor == 1`` else ``make_divisible``;
  conv1x1 ``mid -> rd`` with bias, ``se_act`` (block act when None),
  conv1x1 ``rd -> mid`` with bias, gate ``se_gate``.
* project: 1x1 conv ``mid -> out`` with ``proj_groups`` groups + BN, no act
  (a ghost module without act when ``ghost > 1``; a ChannelNets group
  channel-wise module when ``proj == "cw"``); channel shuffle after a
  grouped project when ``shuffle``.
* residual when ``stride == 1 and cin == out``.

Block ``kind="ghost"`` (GhostNet bottleneck): ghost module ``cin -> mid``
(ratio ``ghost``, with act) -> depthwise ``kernels[0]`` conv + BN (no act)
only when ``stride == 2`` -> SE -> ghost module ``mid -> out`` without act;
shortcut identity when ``stride == 1 and cin == out``, else depthwise
``kernels[0]`` conv stride ``stride`` + BN + 1x1 conv ``cin -> out`` + BN.

Ghost module (ratio s, cheap kernel d): primary 1x1 conv
``cin -> ceil(out/s)`` + BN (+ act), cheap depthwise-multiplier d x d conv
``ceil(out/s) -> ceil(out/s) * (s-1)`` + BN (+ act), concat, slice to ``out``.
``s == 1`` is a plain 1x1 conv + BN (+ act).

Head: ``features > 0``: 1x1 conv ``c -> features`` + BN + act; global average
pool; ``hidden > 0``: 1x1 conv ``-> hidden`` with bias + act (MobileNetV3 /
GhostNet efficient last stage); dropout; classifier ``kind="fc"`` (linear
with bias) or ``kind="cw"`` (ChannelNets convolutional classification layer).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from nas.errors import InputError

ACTS = ("relu", "relu6", "swish", "hswish")
GATES = ("sigmoid", "hsigmoid")
SPLITS = ("equal", "exponential")
KINDS = ("ir", "ghost")
PROJS = ("conv", "cw")
HEAD_KINDS = ("fc", "cw")
MAX_GROUPS = 5


class GenotypeError(InputError):
    """A genotype that cannot be built; the message is one line naming the field."""


def make_divisible(v: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round ``v`` to a multiple of ``divisor`` as the MobileNet/timm code does."""
    min_value = min_value or divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


def split_channels(channels: int, groups: int, split: str = "equal") -> tuple[int, ...]:
    """Channels per MixConv group.

    ``equal``: ``channels // groups`` each, the remainder to the first group
    (timm ``_split_channels``). ``exponential``: group i gets
    ``channels / 2**(i+1)``, the last group takes the rest (MixConv paper):
    64 ch, 4 groups -> (32, 16, 8, 8); 24 ch, 3 groups -> (12, 6, 6).
    """
    if groups == 1:
        return (channels,)
    if split == "equal":
        sizes = [channels // groups] * groups
        sizes[0] += channels - sum(sizes)
    elif split == "exponential":
        sizes = [channels // 2 ** (i + 1) for i in range(groups - 1)]
        sizes.append(channels - sum(sizes))
    else:
        raise ValueError(f"unknown split {split!r}")
    return tuple(sizes)


@dataclass(frozen=True)
class StemSpec:
    out: int = 16
    kernel: int = 3
    stride: int = 2
    act: str = "relu"
    acb: bool = False


@dataclass(frozen=True)
class BlockSpec:
    out: int
    kind: str = "ir"
    stride: int = 1
    kernels: tuple[int, ...] = (3,)
    split: str = "equal"
    dilation: int = 1
    expand: float = 1.0
    mid: int | None = None
    exp_groups: int = 1
    proj_groups: int = 1
    shuffle: bool = False
    se: float = 0.0
    se_base: str = "in"
    se_gate: str = "sigmoid"
    se_divisor: int = 1
    se_act: str | None = None
    act: str = "relu"
    ghost: int = 1
    ghost_kernel: int = 3
    acb: bool = False
    proj: str = "conv"

    @property
    def groups(self) -> int:
        """MixConv group count g (number of kernels)."""
        return len(self.kernels)

    def mid_channels(self, cin: int) -> int:
        if self.mid is not None:
            return self.mid
        if self.kind == "ir" and self.expand == 1:
            return cin
        return make_divisible(cin * self.expand, 8)

    def has_expand(self, cin: int) -> bool:
        return self.kind == "ghost" or self.mid is not None or self.expand != 1

    def se_channels(self, cin: int) -> int:
        base = cin if self.se_base == "in" else self.mid_channels(cin)
        v = base * self.se
        return max(1, round(v)) if self.se_divisor == 1 else make_divisible(v, self.se_divisor)

    def has_residual(self, cin: int) -> bool:
        return self.stride == 1 and cin == self.out


@dataclass(frozen=True)
class HeadSpec:
    features: int = 1280
    hidden: int = 0
    act: str = "relu"
    kind: str = "fc"
    dropout: float = 0.2


@dataclass(frozen=True)
class Genotype:
    stages: tuple[tuple[BlockSpec, ...], ...]
    stem: StemSpec = field(default_factory=StemSpec)
    head: HeadSpec = field(default_factory=HeadSpec)
    resolution: int = 224
    in_chans: int = 3
    name: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        _validate(self)

    @property
    def blocks(self) -> tuple[BlockSpec, ...]:
        return tuple(b for stage in self.stages for b in stage)

    def block_inputs(self) -> list[tuple[int, int, BlockSpec]]:
        """``(cin, input_resolution, block)`` for every block in order."""
        out, c, r = [], self.stem.out, _down(self.resolution, self.stem.stride)
        for b in self.blocks:
            out.append((c, r, b))
            c, r = b.out, _down(r, b.stride)
        return out

    @property
    def last_channels(self) -> int:
        return self.blocks[-1].out if self.blocks else self.stem.out

    # -- serialisation ---------------------------------------------------
    def to_dict(self, *, compact: bool = True) -> dict[str, Any]:
        """Plain-data form; ``compact`` drops defaults and folds repeats."""
        d: dict[str, Any] = {}
        if self.name:
            d["name"] = self.name
        d["resolution"] = self.resolution
        if self.in_chans != 3 or not compact:
            d["in_chans"] = self.in_chans
        d["stem"] = _spec_dict(self.stem, compact)
        d["stages"] = [{"blocks": _blocks_to_list(s, compact)} for s in self.stages]
        d["head"] = _spec_dict(self.head, compact)
        return d

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=None, width=120)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @property
    def hash(self) -> str:
        """Stable 16-hex-digit hash of the network (name excluded).

        Computed from the compact canonical form with repeats expanded, so key
        order, omitted defaults, ``repeat:`` sugar and ``6`` vs ``6.0`` do not
        change it, and adding a new field with a default keeps old hashes.
        """
        h = self.__dict__.get("_hash")
        if h is None:
            d = self.to_dict()
            d.pop("name", None)
            d["stages"] = [[_spec_dict(b, True) for b in s] for s in self.stages]
            h = hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]
            object.__setattr__(self, "_hash", h)
        return h

    def replace(self, **changes: Any) -> Genotype:
        return dataclasses.replace(self, **changes)

    def summary(self) -> str:
        """One line for tables and plot hovers."""
        ks = ",".join("".join(str(k) for k in b.kernels) for b in self.blocks)
        return f"{len(self.blocks)} blocks, out {self.last_channels}, k[{ks}]"


def _down(r: int, stride: int) -> int:
    # Same arithmetic as a "same"-padded conv: ceil(r / stride).
    return -(-r // stride)


def _norm(v: Any) -> Any:
    if isinstance(v, float) and v.is_integer():
        return int(v)
    if isinstance(v, tuple):
        return list(v)
    return v


def _spec_dict(spec: Any, compact: bool) -> dict[str, Any]:
    out = {}
    for f in fields(spec):
        if f.name == "name":
            continue
        v = getattr(spec, f.name)
        default = f.default if f.default is not dataclasses.MISSING else None
        if compact and f.default is not dataclasses.MISSING and v == default:
            continue
        out[f.name] = _norm(v)
    return out


def _blocks_to_list(blocks: tuple[BlockSpec, ...], compact: bool) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    prev: BlockSpec | None = None
    for b in blocks:
        if compact and prev is not None and b.stride == 1 and b == dataclasses.replace(prev, stride=1):
            items[-1]["repeat"] = items[-1].get("repeat", 1) + 1
        else:
            items.append(_spec_dict(b, compact))
        prev = b
    return items


# -- loading ---------------------------------------------------------------

_BLOCK_FIELDS = {f.name: f for f in fields(BlockSpec)}
_STEM_FIELDS = {f.name: f for f in fields(StemSpec)}
_HEAD_FIELDS = {f.name: f for f in fields(HeadSpec)}
_TOP_FIELDS = {"name", "resolution", "in_chans", "stem", "stages", "head"}


def _type_check(value: Any, f: dataclasses.Field, where: str) -> Any:
    t = str(f.type)
    if t.startswith("tuple"):
        if isinstance(value, int) and not isinstance(value, bool):
            value = [value]
        if not isinstance(value, (list, tuple)) or not value:
            raise GenotypeError(f"{where}: expected a non-empty list of ints, got {value!r}")
        for v in value:
            if not isinstance(v, int) or isinstance(v, bool):
                raise GenotypeError(f"{where}: expected ints, got {v!r}")
        return tuple(value)
    if t == "bool":
        if not isinstance(value, bool):
            raise GenotypeError(f"{where}: expected true/false, got {value!r}")
        return value
    if t.startswith("int"):
        if value is None and "None" in t:
            return None
        if not isinstance(value, int) or isinstance(value, bool):
            raise GenotypeError(f"{where}: expected an integer, got {value!r}")
        return value
    if t == "float":
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise GenotypeError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if t.startswith("str"):
        if value is None and "None" in t:
            return None
        if not isinstance(value, str):
            raise GenotypeError(f"{where}: expected a string, got {value!r}")
        return value
    return value


def _build_spec(cls: type, known: dict[str, dataclasses.Field], data: Any, where: str,
                skip: tuple[str, ...] = ()) -> Any:
    if not isinstance(data, dict):
        raise GenotypeError(f"{where}: expected a mapping, got {type(data).__name__}")
    kwargs = {}
    for k, v in data.items():
        if k in skip:
            continue
        if k not in known:
            raise GenotypeError(f"{where}.{k}: unknown field (known: {', '.join(sorted(known))})")
        kwargs[k] = _type_check(v, known[k], f"{where}.{k}")
    missing = [n for n, f in known.items() if f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING and n not in kwargs]
    if missing:
        raise GenotypeError(f"{where}.{missing[0]}: required field missing")
    return cls(**kwargs)


def from_dict(data: Any, source: str = "<genotype>") -> Genotype:
    """Build and validate a genotype; errors are ``GenotypeError('source: field: problem')``."""
    try:
        return _from_dict(data)
    except GenotypeError as e:
        raise GenotypeError(f"{source}: {e}") from None


def _from_dict(data: Any) -> Genotype:
    if not isinstance(data, dict):
        raise GenotypeError(f"top level: expected a mapping, got {type(data).__name__}")
    for k in data:
        if k not in _TOP_FIELDS:
            raise GenotypeError(f"{k}: unknown field (known: {', '.join(sorted(_TOP_FIELDS))})")
    if "stages" not in data:
        raise GenotypeError("stages: required field missing")
    stages_raw = data["stages"]
    if not isinstance(stages_raw, list) or not stages_raw:
        raise GenotypeError("stages: expected a non-empty list of stages")
    stages = []
    for si, st in enumerate(stages_raw):
        where = f"stages[{si}]"
        if isinstance(st, dict):
            extra = set(st) - {"blocks", "name"}
            if extra:
                raise GenotypeError(f"{where}.{sorted(extra)[0]}: unknown field (known: blocks, name)")
            st = st.get("blocks")
            where += ".blocks"
        if not isinstance(st, list) or not st:
            raise GenotypeError(f"{where}: expected a non-empty list of blocks")
        blocks: list[BlockSpec] = []
        for bi, bd in enumerate(st):
            bw = f"{where}[{bi}]"
            b = _build_spec(BlockSpec, _BLOCK_FIELDS, bd, bw, skip=("repeat",))
            _check_block(b, bw)
            rep = bd.get("repeat", 1)
            if not isinstance(rep, int) or isinstance(rep, bool) or rep < 1:
                raise GenotypeError(f"{bw}.repeat: expected a positive integer, got {rep!r}")
            blocks.append(b)
            blocks.extend([dataclasses.replace(b, stride=1)] * (rep - 1))
        stages.append(tuple(blocks))
    kw: dict[str, Any] = {"stages": tuple(stages)}
    if "stem" in data:
        kw["stem"] = _build_spec(StemSpec, _STEM_FIELDS, data["stem"], "stem")
    if "head" in data:
        kw["head"] = _build_spec(HeadSpec, _HEAD_FIELDS, data["head"], "head")
    for k in ("resolution", "in_chans"):
        if k in data:
            v = data[k]
            if not isinstance(v, int) or isinstance(v, bool):
                raise GenotypeError(f"{k}: expected an integer, got {v!r}")
            kw[k] = v
    if "name" in data:
        kw["name"] = str(data["name"])
    return Genotype(**kw)


def loads(text: str, source: str = "<string>") -> Genotype:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "YAML"
        raise GenotypeError(f"{source}: {where}: invalid YAML ({getattr(e, 'problem', e)})") from None
    return from_dict(data, source)


def load(path: str | Path) -> Genotype:
    """Load a genotype YAML (or JSON) file."""
    p = Path(path)
    try:
        text = p.read_text()
    except FileNotFoundError:
        raise GenotypeError(f"{p}: file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise GenotypeError(f"{p}: cannot read file ({e.__class__.__name__})") from None
    g = loads(text, str(p))
    return g if g.name else g.replace(name=p.stem)


def save(genotype: Genotype, path: str | Path) -> None:
    Path(path).write_text(genotype.to_yaml())


# -- validation -------------------------------------------------------------

def _pos(v: int, where: str) -> None:
    if v < 1:
        raise GenotypeError(f"{where}: must be a positive integer, got {v}")


def _choice(v: Any, allowed: tuple, where: str) -> None:
    if v not in allowed:
        raise GenotypeError(f"{where}: {v!r} is not one of {', '.join(map(str, allowed))}")


def _check_kernel(k: int, where: str) -> None:
    if k < 1 or k % 2 == 0 or k > 2 * MAX_GROUPS + 1:
        raise GenotypeError(f"{where}: kernel {k} must be odd and in 1..{2 * MAX_GROUPS + 1}")


def _check_block(b: BlockSpec, w: str) -> None:
    _pos(b.out, f"{w}.out")
    _choice(b.kind, KINDS, f"{w}.kind")
    _choice(b.stride, (1, 2), f"{w}.stride")
    if not 1 <= len(b.kernels) <= MAX_GROUPS:
        raise GenotypeError(f"{w}.kernels: g = {len(b.kernels)} groups; MixConv allows 1..{MAX_GROUPS}")
    for k in b.kernels:
        _check_kernel(k, f"{w}.kernels")
    if b.kind == "ghost" and len(b.kernels) != 1:
        raise GenotypeError(f"{w}.kernels: a ghost bottleneck has a single depthwise kernel")
    _choice(b.split, SPLITS, f"{w}.split")
    _pos(b.dilation, f"{w}.dilation")
    if not b.expand > 0:
        raise GenotypeError(f"{w}.expand: must be > 0, got {b.expand}")
    if b.mid is not None:
        _pos(b.mid, f"{w}.mid")
    _pos(b.exp_groups, f"{w}.exp_groups")
    _pos(b.proj_groups, f"{w}.proj_groups")
    if not 0 <= b.se <= 4:
        raise GenotypeError(f"{w}.se: SE ratio must be in [0, 4], got {b.se}")
    _choice(b.se_base, ("in", "mid"), f"{w}.se_base")
    _choice(b.se_gate, GATES, f"{w}.se_gate")
    _pos(b.se_divisor, f"{w}.se_divisor")
    if b.se_act is not None:
        _choice(b.se_act, ACTS, f"{w}.se_act")
    _choice(b.act, ACTS, f"{w}.act")
    if not 1 <= b.ghost <= 8:
        raise GenotypeError(f"{w}.ghost: ghost ratio s must be in 1..8, got {b.ghost}")
    _check_kernel(b.ghost_kernel, f"{w}.ghost_kernel")
    _choice(b.proj, PROJS, f"{w}.proj")
    if b.ghost > 1 and (b.exp_groups > 1 or b.proj_groups > 1):
        raise GenotypeError(f"{w}.ghost: ghost modules do not combine with grouped 1x1 convs")
    if b.kind == "ghost" and (b.exp_groups > 1 or b.proj_groups > 1 or b.proj != "conv"):
        raise GenotypeError(f"{w}.kind: a ghost bottleneck uses ghost modules for its 1x1 convs")


def _validate(g: Genotype) -> None:
    if not isinstance(g.stages, tuple) or not g.stages or not all(g.stages):
        raise GenotypeError("stages: expected a non-empty list of non-empty stages")
    _pos(g.resolution, "resolution")
    _pos(g.in_chans, "in_chans")
    s = g.stem
    _pos(s.out, "stem.out")
    _check_kernel(s.kernel, "stem.kernel")
    _choice(s.stride, (1, 2), "stem.stride")
    _choice(s.act, ACTS, "stem.act")
    h = g.head
    if h.features < 0 or h.hidden < 0:
        raise GenotypeError("head.features: must be >= 0")
    _choice(h.act, ACTS, "head.act")
    _choice(h.kind, HEAD_KINDS, "head.kind")
    if not 0 <= h.dropout < 1:
        raise GenotypeError(f"head.dropout: must be in [0, 1), got {h.dropout}")
    cin = s.out
    for si, stage in enumerate(g.stages):
        for bi, b in enumerate(stage):
            w = f"stages[{si}].blocks[{bi}]"
            _check_block(b, w)
            mid = b.mid_channels(cin)
            if b.exp_groups > 1 and (cin % b.exp_groups or mid % b.exp_groups):
                raise GenotypeError(f"{w}.exp_groups: {b.exp_groups} groups do not divide {cin} -> {mid} channels")
            if b.proj_groups > 1 and (mid % b.proj_groups or b.out % b.proj_groups):
                raise GenotypeError(f"{w}.proj_groups: {b.proj_groups} groups do not divide {mid} -> {b.out} channels")
            cw_groups = max(b.proj_groups, 2)  # the group channel-wise module needs >= 2 groups
            if b.proj == "cw" and (mid % cw_groups or b.out % cw_groups):
                raise GenotypeError(f"{w}.proj: cw needs {cw_groups} groups to divide {mid} -> {b.out} channels")
            if mid < len(b.kernels):
                raise GenotypeError(f"{w}.kernels: {len(b.kernels)} groups need at least as many channels, got {mid}")
            if b.split == "exponential" and mid < 2 ** (len(b.kernels) - 1):
                raise GenotypeError(f"{w}.split: {mid} channels too few for an exponential split into {len(b.kernels)}")
            cin = b.out


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def ghost_channels(out: int, ratio: int) -> tuple[int, int]:
    """(primary, cheap) channel counts of a ghost module producing ``out``."""
    init = math.ceil(out / ratio)
    return init, init * (ratio - 1)


# -- scaling ------------------------------------------------------------------

def scale(g: Genotype, width: float = 1.0, depth: float = 1.0, *, divisor: int = 8,
          scale_head: bool = False) -> Genotype:
    """Compound-scale a genotype (EfficientNet/MixNet style).

    Every block's ``out`` and ``mid`` and the stem are ``make_divisible(c * width,
    divisor)``; each stage's depth becomes ``ceil(n * depth)`` by repeating its
    last block. MixNet-L is MixNet-M at ``width=1.3`` with the head kept, as in
    the reference implementation.
    """
    def w(c: int) -> int:
        return c if width == 1.0 else make_divisible(c * width, divisor)

    stages = []
    for stage in g.stages:
        blocks = [dataclasses.replace(b, out=w(b.out), mid=None if b.mid is None else w(b.mid))
                  for b in stage]
        n = math.ceil(len(blocks) * depth)
        while len(blocks) < n:
            blocks.append(dataclasses.replace(blocks[-1], stride=1))
        stages.append(tuple(blocks[:n]))
    head = g.head
    if scale_head:
        head = dataclasses.replace(head, features=w(head.features) if head.features else 0)
    return dataclasses.replace(g, stages=tuple(stages), stem=dataclasses.replace(g.stem, out=w(g.stem.out)),
                               head=head)
