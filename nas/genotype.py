"""The genotype: one concrete network, the single currency of nas.

A :class:`Genotype` is a frozen description of a whole network: input
resolution, stem, stages of blocks, head. Searched architectures and the
reference models (MixNet, GhostNet, MobileNet) are all genotypes and are
built by the same builder (``nas.model.build``) and costed by the same
analytic counter (``nas.cost.macs.count``).

Exact layers each field produces (the contract between builder and counter)
--------------------------------------------------------------------------
Convs have no bias and are followed by BatchNorm unless said otherwise.

Stem: ``conv k x k, stride, in_chans -> out`` + BN + act (ACB if ``acb``),
then a 3x3 max-pool with stride 2 when ``pool`` (ShuffleNet).

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
Both depthwise convs are ACBs when ``acb``.

Block ``kind="dws"`` (depthwise separable layer, MobileNetV1): depthwise
MixConv on ``cin`` channels (``kernels``, ``split``, ``stride``,
``dilation``; ACB when ``acb``) + BN + act, then ``proj == "conv"``: 1x1 conv
``cin -> out`` with ``proj_groups`` groups + BN + act, or ``proj == "cw"``
(ChannelNets' depth-wise separable channel-wise conv, DWSCW, only where
``cin == out``): a channel-wise conv of ``DWSCW_WINDOW = 3`` taps, stride 1,
+ BN + act. No residual.

Block ``kind="gm"`` (ChannelNets group module; a group channel-wise module,
GCWM, when ``proj == "cw"``), ``g = max(proj_groups, 2)`` groups: [GCWM: a
group channel-wise conv on ``cin`` channels: ``g`` channel-wise convs of
``cw_window(g) = 4g`` taps, stride ``g``, ``cin / g`` outputs each, no BN]
-> ``dws`` layer ``cin -> out`` (stride, 1x1 conv in ``g`` groups) -> ``dws``
layer ``out -> out`` (1x1 conv in ``g`` groups); the input is added when
``stride == 1 and cin == out``.

Block ``kind="shuffle"`` (ShuffleNet v1 unit), ``mid = block.mid or
make_divisible(out * expand, lcm(exp_groups, proj_groups))`` (ShuffleNet:
``expand = 0.25``): 1x1 conv ``cin -> mid`` in ``exp_groups`` groups + BN +
act -> channel shuffle of ``proj_groups`` groups (when > 1) -> depthwise
MixConv on ``mid`` (stride; ACB when ``acb``) + BN, no act -> 1x1 conv
``mid -> branch`` in ``proj_groups`` groups + BN; stride 1: ``act(x + y)``
when ``cin == out`` (else ``act(y)``), ``branch = out``; stride 2: concat of
a 3x3 average pool (stride 2, padding 1) of the input and ``act(y)``,
``branch = out - cin``.

Block ``kind="skip"`` (identity, as FBNet, ProxylessNAS and SPOS spaces
search depth): nothing at all when ``stride == 1 and cin == out`` (a *no-op*
skip, which the canonical form drops: a stage ``[a, skip, b]`` is the
network ``[a, b]``); else a 1x1 conv ``cin -> out`` with ``stride`` + BN, no
act (NAS-Bench-Macro's identity where the shape changes). No other field of
the spec has an effect.

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from nas.channels import ghost_channels, make_divisible, out_size, split_channels
from nas.errors import InputError
from nas.genotype_check import ACTS, GATES, HEAD_KINDS, KINDS, MAX_BLOCKS, MAX_GROUPS, PROJS, SPLITS, GenotypeError
from nas.genotype_check import check_block as _check_block
from nas.genotype_check import check_genotype as _check_genotype
from nas.genotype_io import blocks_to_list, build_spec, spec_dict
from nas.io import MAX_YAML_BYTES, atomic_write, loads_yaml

__all__ = [
    "ACTS", "GATES", "HEAD_KINDS", "KINDS", "MAX_GROUPS", "PROJS", "SPLITS", "BlockSpec", "Genotype",
    "GenotypeError", "HeadSpec", "StemSpec", "from_dict", "ghost_channels", "load", "loads", "make_divisible",
    "save", "split_channels",
]


@dataclass(frozen=True)
class StemSpec:
    out: int = 16
    kernel: int = 3
    stride: int = 2
    act: str = "relu"
    acb: bool = False
    pool: bool = False

    def out_res(self, r: int) -> int:
        """Side of the stem's output map for an ``r x r`` input (the conv's stride, then the max-pool's 2)."""
        r = out_size(r, self.stride)
        return out_size(r, 2) if self.pool else r


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
        """Channels of the depthwise conv (see the module docstring per kind)."""
        if self.kind in ("dws", "gm", "skip"):
            return cin
        if self.mid is not None:
            return self.mid
        if self.kind == "shuffle":
            return make_divisible(self.out * self.expand, math.lcm(self.exp_groups, self.proj_groups))
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
        _check_genotype(self)

    @property
    def blocks(self) -> tuple[BlockSpec, ...]:
        return tuple(b for stage in self.stages for b in stage)

    def block_inputs(self) -> list[tuple[int, int, BlockSpec]]:
        """``(cin, input_resolution, block)`` for every block in order."""
        out, c, r = [], self.stem.out, self.stem.out_res(self.resolution)
        for b in self.blocks:
            out.append((c, r, b))
            c, r = b.out, out_size(r, b.stride)
        return out

    @property
    def last_channels(self) -> int:
        return self.blocks[-1].out if self.blocks else self.stem.out

    @property
    def last_size(self) -> int:
        """Side of the last feature map at the genotype's own resolution."""
        r = self.stem.out_res(self.resolution)
        for b in self.blocks:
            r = out_size(r, b.stride)
        return r

    # -- serialisation ---------------------------------------------------
    def to_dict(self, *, compact: bool = True) -> dict[str, Any]:
        """Plain-data form; ``compact`` drops defaults and folds repeats."""
        d: dict[str, Any] = {}
        if self.name:
            d["name"] = self.name
        d["resolution"] = self.resolution
        if self.in_chans != 3 or not compact:
            d["in_chans"] = self.in_chans
        d["stem"] = spec_dict(self.stem, compact)
        d["stages"] = [{"blocks": blocks_to_list(s, compact)} for s in self.stages]
        d["head"] = spec_dict(self.head, compact)
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
        Computed once per object (a frozen genotype never changes).
        """
        h = self.__dict__.get("_hash")
        if h is None:
            d: dict[str, Any] = {"resolution": self.resolution}
            if self.in_chans != 3:
                d["in_chans"] = self.in_chans
            specs: dict[int, dict[str, Any]] = {}  # a stage shared by its blocks repeats one spec object
            d["stem"] = spec_dict(self.stem, True)
            d["stages"] = [[specs.get(id(b)) or specs.setdefault(id(b), spec_dict(b, True)) for b in s]
                           for s in self.stages]
            d["head"] = spec_dict(self.head, True)
            h = hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]
            object.__setattr__(self, "_hash", h)
        return h

    def replace(self, **changes: Any) -> Genotype:
        return dataclasses.replace(self, **changes)

    def summary(self) -> str:
        """One short line for tables, plot hovers and W&B, the one notation every command uses.

        ``d12 c40-320 k3/3-5/3-5-7 e3/6 se.25 g2 acb gb3``: depth (blocks), channels after the stem and
        after the last block, the distinct MixConv kernel sets (kernels of one block joined by ``-``, sets by
        ``/``), the distinct expansion ratios, SE ratios, ghost ratios, ``acb`` when any conv has ACB
        branches, ``gb`` and their number for ghost bottlenecks; the parts a network lacks are left out.
        """
        bs = self.blocks
        layers = [b for b in bs if b.kind != "skip"]  # identities have no kernel or expansion of their own

        def distinct(values) -> str:
            return "/".join(dict.fromkeys(f"{v:g}".removeprefix("0") if isinstance(v, float) else str(v)
                                          for v in sorted(values)))

        parts = [f"d{len(bs)}", f"c{self.stem.out}-{self.last_channels}",
                 "k" + "/".join("-".join(map(str, ks)) for ks in sorted({b.kernels for b in layers}, key=lambda
                                                                          ks: (len(ks), ks)))]
        parts.append("e" + distinct(float(b.expand) for b in layers if b.mid is None))
        if any(b.se for b in bs):
            parts.append("se" + distinct(float(b.se) for b in bs if b.se))
        if any(b.ghost > 1 for b in bs):
            parts.append("g" + distinct(b.ghost for b in bs if b.ghost > 1))
        if self.stem.acb or any(b.acb for b in bs):
            parts.append("acb")
        if any(b.kind == "ghost" for b in bs):
            parts.append(f"gb{sum(b.kind == 'ghost' for b in bs)}")
        return " ".join(p for p in parts if p not in ("e", "k"))


# -- loading ---------------------------------------------------------------

_TOP_FIELDS = {"name", "resolution", "in_chans", "stem", "stages", "head"}


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
    kw: dict[str, Any] = {"stages": tuple(_stage(st, f"stages[{si}]") for si, st in enumerate(stages_raw))}
    if "stem" in data:
        kw["stem"] = build_spec(StemSpec, data["stem"], "stem")
    if "head" in data:
        kw["head"] = build_spec(HeadSpec, data["head"], "head")
    for k in ("resolution", "in_chans"):
        if k in data:
            v = data[k]
            if not isinstance(v, int) or isinstance(v, bool):
                raise GenotypeError(f"{k}: expected an integer, got {v!r}")
            kw[k] = v
    if "name" in data:
        kw["name"] = str(data["name"])
    return Genotype(**kw)


def _stage(st: Any, where: str) -> tuple[BlockSpec, ...]:
    """One stage: a list of blocks, or ``{blocks: [...]}``; ``repeat: n`` adds ``n - 1`` stride-1 copies."""
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
        b = build_spec(BlockSpec, bd, bw, skip=("repeat",))
        _check_block(b, bw)
        rep = bd.get("repeat", 1)
        if not isinstance(rep, int) or isinstance(rep, bool) or not 1 <= rep <= MAX_BLOCKS:
            raise GenotypeError(f"{bw}.repeat: expected an integer in 1..{MAX_BLOCKS}, got {rep!r}")
        blocks.append(b)
        blocks.extend([dataclasses.replace(b, stride=1)] * (rep - 1))
    return tuple(blocks)


def loads(text: str, source: str = "<string>") -> Genotype:
    """Parse a genotype from YAML (or JSON) text (read with :func:`nas.io.loads_yaml`)."""
    try:
        data = loads_yaml(text, source)
    except GenotypeError:
        raise
    except InputError as e:
        raise GenotypeError(str(e)) from None
    return from_dict(data, source)


def load(path: str | Path) -> Genotype:
    """Load a genotype YAML (or JSON) file."""
    p = Path(path)
    try:
        if p.stat().st_size > MAX_YAML_BYTES:  # checked before reading: the file may be any size
            raise GenotypeError(f"{p}: {p.stat().st_size:,} bytes is too large for a genotype file")
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise GenotypeError(f"{p}: file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise GenotypeError(f"{p}: cannot read file ({e.__class__.__name__})") from None
    g = loads(text, str(p))
    return g if g.name else g.replace(name=p.stem)


def save(genotype: Genotype, path: str | Path) -> None:
    atomic_write(path, genotype.to_yaml())
