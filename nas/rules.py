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
* ghost bottleneck (``ghost``): no split, dilation, ACB, groups or
  projection choice (its depthwise convs are plain, its 1x1 convs ghost
  modules); its kernel only where it has a depthwise conv (stride 2, or a
  shortcut conv because the width changes).
* stem: ``acb`` only with a kernel larger than 1x1. Head: ``act`` only with
  a features or hidden conv.

Stage boundaries are part of a genotype, so the same block sequence split
differently between two stride-1 stages is two architectures.

The registry
------------
Each part has an ordered, declarative list of :class:`Option`; each block
kind is a :class:`BlockKind` in :data:`KINDS`. An option may depend on the
block's context (:class:`Context`: input and output channels, stride) and on
options decided before it, and names the fields its predicate reads. From
the lists alone follow the walk that draws an architecture (``pick`` is the
decision source: an Optuna trial, a random draw, a genotype read back), the
exact count (only options that some later predicate reads are enumerated,
the others multiply), the canonical form, the enumeration of distinct blocks
and the latency-table key of a block. A new option is one :class:`Option`
line here; a new kind one :class:`BlockKind` entry.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from nas.channels import cw_groups
from nas.genotype import KINDS as KIND_NAMES
from nas.genotype import BlockSpec, Genotype, HeadSpec, StemSpec


@dataclass(frozen=True)
class Context:
    """Where a block sits: input channels, output channels and the stride of its first layer."""

    cin: int
    out: int
    stride: int


#: A decision source: ``pick(decision name, choices, field) -> one of choices`` (asked only for 2+ choices).
Pick = Callable[[str, tuple, str], Any]


@dataclass(frozen=True)
class Option:
    """One option of a part: the spec ``field`` it sets, and when it is a decision.

    ``when(ctx, *values)`` receives the context and the values of ``reads`` (fields decided earlier, or
    fixed ones such as ``mid``), in that order; ``None`` means always. ``normalize`` maps each choice (and a
    genotype's value) to the value that builds the network, merging choices that become equal; ``name`` is
    then the decision's own name. ``source`` is the attribute of the space's choices (default: ``field``; a
    method is called). ``folded``: the deployed network has no trace of it (ACB branches fold into one conv,
    dropout is off), so latency tables do not tell its values apart.
    A field may be listed twice, with predicates that are never true together.
    """

    field: str
    when: Callable[..., bool] | None = None
    reads: tuple[str, ...] = ()
    name: str | None = None
    normalize: Callable[[Any], Any] | None = None
    source: str | None = None
    folded: bool = False

    @property
    def decision(self) -> str:
        return self.name or self.field


def _choices(space_part: Any, opt: Option) -> tuple:
    """The choices of ``opt`` in a stage (or stem/head) of a search space, normalised and distinct."""
    raw = getattr(space_part, opt.source or opt.field)
    if type(raw) is tuple and opt.normalize is None:  # the common case, first: the walk asks this a lot
        return raw
    if callable(raw):
        raw = raw()
    if not isinstance(raw, tuple):
        raw = (raw,)  # a fixed setting of the space (e.g. se_base): one choice, never a decision
    return _normalized(opt.normalize, raw) if opt.normalize else raw


@lru_cache(maxsize=1024)
def _normalized(normalize: Callable[[Any], Any], raw: tuple) -> tuple:
    return tuple(dict.fromkeys(normalize(v) for v in raw))


class Tree:
    """The ordered options of one part (the stem, the head or a block kind) and what follows from them.

    Values are plain dicts of the spec's fields. ``structure`` names the fields no option sets and the
    canonical form keeps (a block's ``out``, ``stride``, ``kind``, ``mid``); every other field that is no
    option takes its default, or its value in ``fixed``.
    """

    def __init__(self, spec: type, options: Sequence[Option], fixed: Mapping[str, Any] | None = None,
                 structure: Sequence[str] = ()) -> None:
        self.spec = spec
        self.options = tuple(options)
        self.fixed = dict(fixed or {})
        groups: dict[str, list[Option]] = {}
        for i, opt in enumerate(self.options):
            if opt.field in groups and self.options[i - 1].field != opt.field:
                raise ValueError(f"{opt.field}: the alternatives of one field must be listed together")
            groups.setdefault(opt.field, []).append(opt)
        self.groups = tuple((f, tuple(alts)) for f, alts in groups.items())
        # fields read by the options after group i: the only ones worth telling apart when counting
        self._later = [frozenset(r for _, alts in self.groups[i + 1:] for o in alts for r in o.reads)
                       for i in range(len(self.groups))]
        self.defaults = {f.name: f.default for f in dataclasses.fields(spec)
                         if f.default is not dataclasses.MISSING}
        self.defaults.update(self.fixed)
        fields = {f for f, _ in self.groups}
        self._resets = tuple((f, d) for f, d in self.defaults.items() if f not in fields and f not in structure)

    @staticmethod
    def _active(alts: tuple[Option, ...], ctx: Context | None, v: Mapping[str, Any]) -> Option | None:
        if alts[0].when is None:
            return alts[0]
        for o in alts:
            if o.when is None or o.when(ctx, *[v[r] for r in o.reads]):
                return o
        return None

    def start(self, **given: Any) -> dict[str, Any]:
        return {**self.defaults, **given}

    def walk(self, pick: Pick, part: Any, ctx: Context | None, values: dict[str, Any]) -> dict[str, Any]:
        """Decide every option that is a decision here (``pick`` asked only for 2+ choices)."""
        for f, alts in self.groups:
            opt = alts[0]
            if opt.when is not None:
                opt = self._active(alts, ctx, values)
                if opt is None:
                    continue
            ch = _choices(part, opt)
            values[f] = ch[0] if len(ch) == 1 else pick(opt.decision, ch, f)
        return values

    def count(self, part: Any, ctx: Context | None, start: Mapping[str, Any], skip: frozenset = frozenset()) -> int:
        """Number of distinct value sets :meth:`walk` can give, enumerating only fields read later."""
        states: dict[tuple, int] = {(): 1}
        for i, (f, alts) in enumerate(self.groups):
            if f in skip:
                continue
            keep, new = self._later[i], {}
            for state, n in states.items():
                v = {**start, **dict(state)}
                opt = self._active(alts, ctx, v)
                vals = _choices(part, opt) if opt is not None else (start[f],)
                kept = tuple(p for p in state if p[0] in keep)
                if f in keep:
                    for x in vals:
                        s = (*kept, (f, x))
                        new[s] = new.get(s, 0) + n
                else:
                    new[kept] = new.get(kept, 0) + n * len(vals)
            states = new
        return sum(states.values())

    def enumerate(self, part: Any, ctx: Context | None, start: Mapping[str, Any], pin: frozenset = frozenset(),
                  skip: frozenset = frozenset()) -> Iterator[dict[str, Any]]:
        """Every value set :meth:`walk` can give, in the order of the decisions (the first one outermost);
        ``pin``: fields held at their first choice."""
        def rec(i: int, v: dict[str, Any]) -> Iterator[dict[str, Any]]:  # v: this branch's own copy
            for j in range(i, len(self.groups)):
                f, alts = self.groups[j]
                opt = None if f in skip else self._active(alts, ctx, v)
                if opt is None:
                    continue
                ch = _choices(part, opt)
                if len(ch) > 1 and f not in pin:
                    for x in ch:
                        yield from rec(j + 1, {**v, f: x})
                    return
                v[f] = ch[0]
            yield v
        return rec(0, dict(start))

    def canonical(self, spec: Any, ctx: Context | None) -> tuple[Any, frozenset[str]]:
        """``spec`` with every option that is no decision here at its default, and the fields that are."""
        v = dict(vars(spec))
        changed: dict[str, Any] = {}
        for f, d in self._resets:
            if v[f] != d:
                v[f] = changed[f] = d
        active = set()
        for f, alts in self.groups:
            opt = self._active(alts, ctx, v)
            if opt is None:
                x = self.defaults[f]
            else:
                active.add(f)
                x = v[f] if opt.normalize is None else opt.normalize(v[f])
            if x != v[f]:
                v[f] = changed[f] = x
        return (dataclasses.replace(spec, **changed) if changed else spec), frozenset(active)


@dataclass(frozen=True)
class BlockKind:
    """A block kind: its option tree and the latency-table key of a canonical block (see :func:`block_fields`)."""

    name: str
    tree: Tree
    key: Callable[[int, BlockSpec, frozenset[str]], dict[str, Any]] = field(default=lambda cin, b, active: {})
    # a kind added after the shipped tables may leave ``key`` out: its options enter the key by name


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
    if b.proj == "cw":
        d["proj"], d["pg"] = "cw", cw_groups(b.proj_groups)
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

# A ghost bottleneck's depthwise convs are plain and its 1x1 convs ghost modules: no split, dilation, ACB,
# groups, shuffle or projection choice (those fields stay at their defaults).
GHOST = BlockKind("ghost", key=_ghost_key, tree=Tree(BlockSpec, structure=_STRUCTURE, options=(
    Option("kernels", lambda c: c.stride == 2 or c.cin != c.out, source="kernel_sets"),
    Option("expand"),
    Option("act"),
    *_SE,
    Option("ghost"),
    Option("ghost_kernel", lambda c, g: g > 1, ("ghost",)),
)))

STEM = Tree(StemSpec, (
    Option("out"), Option("kernel"), Option("stride"), Option("act"),
    Option("acb", lambda c, k: k > 1, ("kernel",), folded=True),
))

HEAD = Tree(HeadSpec, (
    Option("features"), Option("hidden"),
    Option("act", lambda c, f, h: bool(f or h), ("features", "hidden")),
    Option("kind"), Option("dropout", folded=True),
))


#: The block kinds, by ``BlockSpec.kind``.
KINDS: dict[str, BlockKind] = {k.name: k for k in (IR, GHOST)}
assert tuple(KINDS) == KIND_NAMES, "nas.genotype.KINDS and the registry must name the same kinds"

_ENCODED = frozenset({"kernels", "split", "dilation", "expand", "act", "se", "se_gate", "se_base", "se_divisor",
                      "se_act", "ghost", "ghost_kernel", "exp_groups", "proj_groups", "shuffle", "proj"})
# per kind, the options a later issue adds: they enter the key by name
_UNENCODED = {name: tuple(dict.fromkeys(o.field for o in k.tree.options if o.field not in _ENCODED and not o.folded))
              for name, k in KINDS.items()}
#: Options deploy folds away; a latency table never tells them apart.
FOLDED = frozenset(o.field for t in (STEM, HEAD, *(k.tree for k in KINDS.values())) for o in t.options if o.folded)


# -- derived: walk, count, enumeration, canonical form, keys ----------------------------------------------------

def walk_block(pick: Pick, stage: Any, cin: int, out: int, stride: int) -> BlockSpec:
    """One block of ``stage`` (a space's block choices) drawn from ``pick``: its kind, then the options that
    are decisions in this context."""
    kind = stage.kind[0] if len(stage.kind) == 1 else pick("kind", stage.kind, "kind")
    tree = KINDS[kind].tree
    values = tree.walk(pick, stage, Context(cin, out, stride), tree.start(out=out, stride=stride, kind=kind))
    return BlockSpec(**values)


def walk_stem(pick: Pick, stem: Any) -> StemSpec:
    return StemSpec(**STEM.walk(pick, stem, None, STEM.start()))


def walk_head(pick: Pick, head: Any) -> HeadSpec:
    return HeadSpec(**HEAD.walk(pick, head, None, HEAD.start()))


def count_blocks(stage: Any, cin: int, out: int, stride: int) -> int:
    """Number of distinct blocks :func:`walk_block` can draw in this context."""
    ctx = Context(cin, out, stride)
    return sum(KINDS[k].tree.count(stage, ctx, KINDS[k].tree.start(out=out, stride=stride, kind=k))
               for k in stage.kind)


def count_stem(stem: Any) -> int:
    """Stems of one width (the width is counted with the stages it feeds)."""
    return STEM.count(stem, None, STEM.start(), skip=frozenset({"out"}))


def count_head(head: Any) -> int:
    return HEAD.count(head, None, HEAD.start())


def blocks(stage: Any, cin: int, out: int, stride: int, pin: frozenset = frozenset()) -> Iterator[BlockSpec]:
    """Every distinct block :func:`walk_block` can draw in this context (``pin``: fields at their first choice),
    in decision order."""
    ctx = Context(cin, out, stride)
    for k in stage.kind:
        tree = KINDS[k].tree
        for values in tree.enumerate(stage, ctx, tree.start(out=out, stride=stride, kind=k), pin):
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


def canonical(genotype: Genotype) -> Genotype:
    """The genotype with every option that has no effect reset to its default (same network, same costs)."""
    stem = STEM.canonical(genotype.stem, None)[0]
    head = HEAD.canonical(genotype.head, None)[0]
    stages, cin = [], stem.out
    for stage in genotype.stages:
        out = []
        for b in stage:
            out.append(canonical_block(b, cin))
            cin = b.out
        stages.append(tuple(out))
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
    d.update(kind.key(cin, c, active))
    for f in _UNENCODED[c.kind]:
        v = getattr(c, f)
        if f in active and v != kind.tree.defaults[f]:
            d[f] = list(v) if isinstance(v, tuple) else v
    return d
