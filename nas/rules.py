"""Block rules: which options a stem, a head or a block takes in its context, written once (torch-free).

Why the rules exist
-------------------
Many option values build the same network. A split scheme means nothing for
a one-kernel MixConv; an SE gate means nothing without SE; a ghost ratio
means nothing where no 1x1 conv exists to replace. If the search drew such
options anyway, two parameter paths would give one network: the sampler
would waste trials on duplicates and ``nas space count`` would count the
same network several times. So an option is a *decision* only where it
changes the network; elsewhere it takes its default, and a genotype with any
other value there is reset to that default by :func:`canonical` (same
network, same costs, same hash once canonical).

The rules, as the option lists below state them:

* inverted residual (``ir``): ``split`` only with more than one kernel;
  ``acb`` only when some kernel is larger than 1x1; the SE gate, base,
  divisor and activation only when ``se > 0``; ``ghost`` only where an
  expand conv or a conv projection exists; ``ghost_kernel`` only with
  ``ghost > 1``; grouped 1x1 convs only without ghost modules, the expand
  groups only with an expand conv; with ``proj: cw`` the group count is the
  decision ``cw_groups`` over ``max(proj_groups, 2)`` (1 and 2 build the
  same module); ``shuffle`` only after a grouped expand or a grouped conv
  projection.
* ghost bottleneck (``ghost``): no split, dilation, groups or projection
  choice (its depthwise convs have one kernel, its 1x1 convs are ghost
  modules); its kernel only where it has a depthwise conv (stride 2, or a
  shortcut conv because the width changes), and ACB on those depthwise
  convs only where that kernel is larger than 1x1.
* depthwise separable layer (``dws``, MobileNetV1), group module (``gm``,
  ChannelNets) and ShuffleNet unit (``shuffle``): the depthwise options of
  an inverted residual (split with several kernels, ACB with a kernel above
  1x1). ``dws``: ``proj: cw`` (DWSCW) only where the layer keeps its width,
  the 1x1 conv's groups only with ``proj: conv``. ``gm``: GM or GCWM
  (``proj``) and the group count (``cw_groups``, 1 and 2 the same module).
  ``shuffle``: both groups, and the bottleneck ratio (``expand``, drawn from
  the stage's ``bottleneck`` choices). None has SE or ghost modules; ``dws``
  and ``gm`` have no ``mid`` or ``expand`` (their depthwise conv sees the
  input).
* stem: ``acb`` only with a kernel larger than 1x1; ``pool`` (max-pool)
  always. Head: ``act`` only with a features or hidden conv.

Stage boundaries are part of a genotype, so the same block sequence split
differently between two stride-1 stages is two architectures.

The registry
------------
Each part has an ordered, declarative list of :class:`Option`; each block
kind is a :class:`BlockKind` in :data:`KINDS`. An option may depend on the
block's context (:class:`Context`: input and output channels, stride) and on
options decided before it, and names the fields its predicate reads. From
the lists alone follow (through :class:`nas.options.Tree`) the walk that
draws an architecture (``pick`` is the decision source: an Optuna trial, a
random draw, a genotype read back), the exact count (only options that some
later predicate reads are enumerated, the others multiply), the canonical
form, the enumeration of distinct blocks and the latency-table key of a
block. A new option is one :class:`Option` line here; a new kind one
:class:`BlockKind` entry.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from nas.channels import cw_groups, cw_window
from nas.genotype import KINDS as KIND_NAMES
from nas.genotype import BlockSpec, Genotype, HeadSpec, StemSpec
from nas.options import Context, Option, Pick, Tree

__all__ = [
    "DWS", "FOLDED", "GHOST", "GM", "HEAD", "IR", "KINDS", "SHUFFLE", "SKIP", "STEM", "BlockKind", "Context", "Option",
    "Pick", "Tree", "block_fields", "blocks", "canonical", "canonical_block", "canonical_stage", "is_noop",
    "op_of", "variants", "count_blocks", "count_head",
    "count_stem", "heads", "stems", "walk_block", "walk_head", "walk_stem",
]


@dataclass(frozen=True)
class BlockKind:
    """A block kind: its option tree and the latency-table key of a canonical block (see :func:`block_fields`)."""

    name: str
    tree: Tree
    key: Callable[[int, BlockSpec, frozenset[str]], dict[str, Any]] | None = None
    # None (kinds added after the shipped tables): every option that is a decision enters the key by name


# -- latency-table keys -----------------------------------------------------------------------------------------
# The bytes of these keys are fixed by the shipped tables (luts/*.json): the encoders below write the options
# known when they were built; an option added later enters the key as ``field: value`` when not at its default.

def _ir_key(cin: int, b: BlockSpec, active: frozenset[str]) -> dict[str, Any]:
    d: dict[str, Any] = {"xp": b.has_expand(cin), "k": list(b.kernels)}
    if "split" in active:
        d["split"] = b.split
    if b.dilation != 1:
        d["dil"] = b.dilation
    if b.ghost > 1:
        d["ghost"] = [b.ghost, b.ghost_kernel]
    if b.exp_groups > 1:
        d["eg"] = b.exp_groups
    if b.proj == "cw":  # "dc": the fusion became the paper's (window 4g, stride g); older cw entries must miss
        d["proj"], d["pg"] = "cw", cw_groups(b.proj_groups)
        d["dc"] = cw_window(d["pg"])
    elif b.proj_groups > 1:
        d["pg"] = b.proj_groups
    if b.shuffle:
        d["shuffle"] = True
    return d


def _ghost_key(cin: int, b: BlockSpec, active: frozenset[str]) -> dict[str, Any]:
    d: dict[str, Any] = {"ghost": [b.ghost, b.ghost_kernel] if b.ghost > 1 else [1]}
    if "kernels" in active:
        d["k"] = list(b.kernels)
    return d


# -- the option lists -------------------------------------------------------------------------------------------

def _has_expand(ctx: Context, expand: float, mid: int | None) -> bool:
    return mid is not None or expand != 1


_SE = (  # SE settings: all but the ratio are decisions (or fixed settings) only when SE is on
    Option("se"),
    Option("se_gate", lambda c, se: se > 0, ("se",)),
    Option("se_base", lambda c, se: se > 0, ("se",)),
    Option("se_divisor", lambda c, se: se > 0, ("se",)),
    Option("se_act", lambda c, se: se > 0, ("se",)),
)

_STRUCTURE = ("out", "stride", "kind", "mid")  # set by the stage or the genotype, never by an option

IR = BlockKind("ir", key=_ir_key, tree=Tree(BlockSpec, structure=_STRUCTURE, options=(
    Option("kernels", source="kernel_sets"),
    Option("split", lambda c, ks: len(ks) > 1, ("kernels",)),
    Option("dilation"),
    Option("acb", lambda c, ks: any(k > 1 for k in ks), ("kernels",), folded=True),
    Option("expand"),
    Option("act"),
    *_SE,
    Option("proj"),
    Option("ghost", lambda c, e, mid, proj: _has_expand(c, e, mid) or proj == "conv", ("expand", "mid", "proj")),
    Option("ghost_kernel", lambda c, g: g > 1, ("ghost",)),
    Option("exp_groups", lambda c, g, e, mid: g == 1 and _has_expand(c, e, mid), ("ghost", "expand", "mid")),
    Option("proj_groups", lambda c, g, proj: g == 1 and proj == "conv", ("ghost", "proj")),
    Option("proj_groups", lambda c, g, proj: g == 1 and proj == "cw", ("ghost", "proj"), name="cw_groups",
           normalize=cw_groups),
    Option("shuffle", lambda c, eg, pg, proj: eg > 1 or (pg > 1 and proj == "conv"),
           ("exp_groups", "proj_groups", "proj")),
)))

def _ghost_dw(ctx: Context) -> bool:
    """Whether a ghost bottleneck has depthwise convs: the strided one, or the shortcut's when shapes change."""
    return ctx.stride == 2 or ctx.cin != ctx.out


# A ghost bottleneck's 1x1 convs are ghost modules and its depthwise convs single-kernel: no split, dilation,
# groups, shuffle or projection choice (those fields stay at their defaults); ACB where it has a k x k dw conv.
GHOST = BlockKind("ghost", key=_ghost_key, tree=Tree(BlockSpec, structure=_STRUCTURE, options=(
    Option("kernels", _ghost_dw, source="kernel_sets"),
    Option("acb", lambda c, ks: _ghost_dw(c) and ks[0] > 1, ("kernels",), folded=True),
    Option("expand"),
    Option("act"),
    *_SE,
    Option("ghost"),
    Option("ghost_kernel", lambda c, g: g > 1, ("ghost",)),
)))

_DEPTHWISE = (  # a depthwise MixConv's options, in the kinds that have one besides the inverted residual
    Option("kernels", source="kernel_sets"),
    Option("split", lambda c, ks: len(ks) > 1, ("kernels",)),
    Option("dilation"),
    Option("acb", lambda c, ks: any(k > 1 for k in ks), ("kernels",), folded=True),
)
_NO_MID = ("out", "stride", "kind")  # kinds whose depthwise conv sees the block input: no mid, no expand

# MobileNetV1's depthwise separable layer; ``proj: cw`` (DWSCW) only where the layer keeps its width.
DWS = BlockKind("dws", tree=Tree(BlockSpec, structure=_NO_MID, options=(
    *_DEPTHWISE,
    Option("act"),
    Option("proj", lambda c: c.cin == c.out),
    Option("proj_groups", lambda c, proj: proj == "conv", ("proj",)),
)))

# ChannelNets' group module (GM); with ``proj: cw`` its group channel-wise module (GCWM). 1 and 2 groups build
# the same module (a group module has at least two).
GM = BlockKind("gm", tree=Tree(BlockSpec, structure=_NO_MID, options=(
    *_DEPTHWISE,
    Option("act"),
    Option("proj"),
    Option("proj_groups", name="cw_groups", normalize=cw_groups),
)))

# The ShuffleNet v1 unit: its shuffle is part of it, its projection a grouped 1x1 conv. Its ``expand`` is the
# bottleneck's share of the output (ShuffleNet: 1/4), drawn from the stage's ``bottleneck`` choices, not from
# ``expand`` (the other kinds' multiple of the input).
SHUFFLE = BlockKind("shuffle", tree=Tree(BlockSpec, structure=_STRUCTURE, options=(
    *_DEPTHWISE,
    Option("expand", source="bottleneck", name="bottleneck"),
    Option("act"),
    Option("exp_groups"),
    Option("proj_groups"),
)))

# Identity (FBNet, ProxylessNAS and SPOS spaces search depth with it): no options. Where the block keeps the shape
# it is nothing at all (a *no-op*, dropped by the canonical form); where it changes it, a 1x1 conv + BN.
SKIP = BlockKind("skip", tree=Tree(BlockSpec, structure=_NO_MID, options=()))

STEM = Tree(StemSpec, (
    Option("out"), Option("kernel"), Option("stride"), Option("act"),
    Option("acb", lambda c, k: k > 1, ("kernel",), folded=True),
    Option("pool"),
))

HEAD = Tree(HeadSpec, (
    Option("features"), Option("hidden"),
    Option("act", lambda c, f, h: bool(f or h), ("features", "hidden")),
    Option("kind"), Option("dropout", folded=True),
))


#: The block kinds, by ``BlockSpec.kind``.
KINDS: dict[str, BlockKind] = {k.name: k for k in (IR, GHOST, DWS, GM, SHUFFLE, SKIP)}
assert tuple(KINDS) == KIND_NAMES, "nas.genotype.KINDS and the registry must name the same kinds"

_ENCODED = frozenset({"kernels", "split", "dilation", "expand", "act", "se", "se_gate", "se_base", "se_divisor",
                      "se_act", "ghost", "ghost_kernel", "exp_groups", "proj_groups", "shuffle", "proj"})
# per kind, the options its key leaves to their names: those a later issue added to a kind with a key, and every
# one of a kind without a key (but ``act`` and ``expand``, which the common fields already say)
_UNENCODED = {name: tuple(dict.fromkeys(
    o.field for o in k.tree.options
    if not o.folded and (o.field not in _ENCODED if k.key else o.field not in ("act", "expand"))))
    for name, k in KINDS.items()}
#: Options deploy folds away; a latency table never tells them apart.
FOLDED = frozenset(o.field for t in (STEM, HEAD, *(k.tree for k in KINDS.values())) for o in t.options if o.folded)


# -- derived: walk, count, enumeration, canonical form, keys ----------------------------------------------------

def variants(stage: Any) -> tuple[tuple[str, Any], ...]:
    """A stage's candidate ops as ``(name, block choices)``: its ``ops`` list (FBNet/ProxylessNAS style, e.g.
    identity / k3 e3 / k5 e6), or the stage's own choices as the one candidate ``""``."""
    ops = getattr(stage, "variants", None)
    return ops() if callable(ops) else (("", stage),)


def walk_block(pick: Pick, stage: Any, cin: int, out: int, stride: int) -> BlockSpec:
    """One block of ``stage`` (a space's block choices) drawn from ``pick``: its op (where the stage lists
    ``ops``), its kind, then the options that are decisions in this context."""
    ops = variants(stage)
    if len(ops) > 1:
        stage = dict(ops)[pick("op", tuple(n for n, _ in ops), lambda b: op_of(ops, b, cin))]
    else:
        stage = ops[0][1]
    kind = stage.kind[0] if len(stage.kind) == 1 else pick("kind", stage.kind, "kind")
    tree = KINDS[kind].tree
    values = tree.walk(pick, stage, Context(cin, out, stride), tree.start(out=out, stride=stride, kind=kind))
    return BlockSpec(**values)


class _Miss(Exception):
    pass


def op_of(ops: tuple[tuple[str, Any], ...], b: BlockSpec, cin: int) -> str | None:
    """The name of the op among ``ops`` that draws block ``b`` (with ``cin`` inputs), or None."""
    want = canonical_block(b, cin)

    def pick(name: str, choices: Any, f: Any) -> Any:
        v = getattr(b, f)
        if v not in choices:
            raise _Miss
        return v

    for name, choices in ops:
        try:
            got = walk_block(pick, choices, cin, b.out, b.stride)
        except _Miss:
            continue
        if got == want:
            return name
    return None


def walk_stem(pick: Pick, stem: Any) -> StemSpec:
    return StemSpec(**STEM.walk(pick, stem, None, STEM.start()))


def walk_head(pick: Pick, head: Any) -> HeadSpec:
    return HeadSpec(**HEAD.walk(pick, head, None, HEAD.start()))


def count_blocks(stage: Any, cin: int, out: int, stride: int) -> int:
    """Number of distinct blocks :func:`walk_block` can draw in this context."""
    return sum(count_kind(v, k, out, stride, Context(cin, out, stride)) for _, v in variants(stage) for k in v.kind)


def count_kind(stage: Any, kind: str, out: int, stride: int, ctx: Any, skip: frozenset = frozenset()) -> int:
    """Number of distinct blocks of one kind in context ``ctx`` (a :class:`Context`, or a stand-in with the same
    fields, e.g. one that notes which of them the predicates read); ``skip``: fields not told apart."""
    tree = KINDS[kind].tree
    return tree.count(stage, ctx, tree.start(out=out, stride=stride, kind=kind), skip=skip)


def count_stem(stem: Any) -> int:
    """Stems of one width (the width is counted with the stages it feeds)."""
    return STEM.count(stem, None, STEM.start(), skip=frozenset({"out"}))


def count_head(head: Any) -> int:
    return HEAD.count(head, None, HEAD.start())


def blocks(stage: Any, cin: int, out: int, stride: int, pin: frozenset = frozenset()) -> Iterator[BlockSpec]:
    """Every distinct block :func:`walk_block` can draw in this context (``pin``: fields at their first choice),
    in decision order."""
    ctx = Context(cin, out, stride)
    for _, v in variants(stage):
        for k in v.kind:
            tree = KINDS[k].tree
            for values in tree.enumerate(v, ctx, tree.start(out=out, stride=stride, kind=k), pin):
                yield BlockSpec(**values)


def stems(stem: Any, pin: frozenset = frozenset()) -> Iterator[dict[str, Any]]:
    """Every stem setting but the width (``out``), which the caller chooses."""
    return STEM.enumerate(stem, None, STEM.start(), pin, skip=frozenset({"out"}))


def heads(head: Any, pin: frozenset = frozenset()) -> Iterator[HeadSpec]:
    return (HeadSpec(**v) for v in HEAD.enumerate(head, None, HEAD.start(), pin))


@lru_cache(maxsize=65536)
def _canonical(b: BlockSpec, cin: int) -> tuple[BlockSpec, frozenset[str]]:
    return KINDS[b.kind].tree.canonical(b, Context(cin, b.out, b.stride))


def canonical_block(b: BlockSpec, cin: int) -> BlockSpec:
    """``b`` with every option that has no effect with ``cin`` input channels at its default (same module)."""
    return _canonical(b, cin)[0]


def is_noop(b: BlockSpec, cin: int) -> bool:
    """Whether ``b`` is an identity that keeps the shape: no layer at all."""
    return b.kind == "skip" and b.has_residual(cin)


def canonical_stage(blocks: tuple[BlockSpec, ...], cin: int) -> tuple[BlockSpec, ...]:
    """A stage's blocks without their no-op identities (``[a, skip, b]`` is the network ``[a, b]``, as is
    ``[a, b, skip]``); a stage of nothing but no-ops keeps one, since a genotype's stages are never empty."""
    kept, c = [], cin
    for b in blocks:
        if not is_noop(b, c):
            kept.append(b)
        c = b.out
    return tuple(kept) if kept else blocks[:1]


def canonical(genotype: Genotype) -> Genotype:
    """The genotype with every option that has no effect reset to its default and every no-op identity
    dropped (same network, same costs, same hash)."""
    stem = STEM.canonical(genotype.stem, None)[0]
    head = HEAD.canonical(genotype.head, None)[0]
    stages, cin = [], stem.out
    for stage in genotype.stages:
        out, c = [], cin
        for b in stage:
            out.append(canonical_block(b, c))
            c = b.out
        stages.append(canonical_stage(tuple(out), cin))
        cin = c
    return dataclasses.replace(genotype, stem=stem, head=head, stages=tuple(stages))


def block_fields(cin: int, b: BlockSpec) -> dict[str, Any]:
    """The fields of a block that change its deployed computation, normalised: the latency-table key.

    Options without effect are dropped (the canonical form), ``expand``/``mid`` become the ``mid`` channels
    (and, for an inverted residual, whether an expand conv exists), SE becomes its reduced channels, gate and
    activation; folded options (``acb``) are absent because deploy turns them into a plain conv.
    """
    c, active = _canonical(b, cin)
    kind = KINDS[c.kind]
    d: dict[str, Any] = {"kind": c.kind, "out": c.out, "stride": c.stride, "act": c.act, "mid": c.mid_channels(cin)}
    if c.se > 0:
        d["se"] = [c.se_channels(cin), c.se_gate, c.se_act or c.act]
    if kind.key is not None:
        d.update(kind.key(cin, c, active))
    for f in _UNENCODED[c.kind]:
        v = getattr(c, f)
        if f in active and (kind.key is None or v != kind.tree.defaults[f]):
            d[f] = list(v) if isinstance(v, tuple) else v
    return d
