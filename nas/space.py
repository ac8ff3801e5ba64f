"""Search spaces: YAML -> :class:`SearchSpace` (validated), sampling, counting, containment, budgets.

A search space is factorised per stage (MnasNet/MixNet style): every stage has
a fixed stride and chooses its width (``out``), its depth (``repeat``) and its
block options; with ``share: stage`` all blocks of the stage take one choice,
with ``share: block`` each block chooses its own. ``search_spaces/README.md``
documents every field.

Costs are for the target, training is on the proxy
--------------------------------------------------
Every architecture of a space is a :class:`~nas.genotype.Genotype` at
``target.resolution`` with ``target.in_chans`` input channels, and budgets,
cost objectives and family tiers are always checked on that genotype with
``target.num_classes`` classes (``nas.cost.macs.count``). Training is on the
proxy (``proxy:``, a :class:`nas.train.TrainConfig`): ``nas.proxy`` derives a
smaller network at ``proxy.resolution`` and ``proxy.width`` and trains it on
``proxy.dataset``; its size never enters a budget.

Define-by-run sampling
----------------------
:meth:`SearchSpace.suggest` turns an Optuna trial into a genotype with stable
parameter names (``stem.out``, ``s2.repeat``, ``s2.kernels`` or, with
``share: block``, ``s2.b0.kernels``, ...). Choices are JSON scalars (kernel
sets are strings such as ``"3-5-7"``), and evenly spaced integer choices use
``suggest_int`` so samplers can exploit their order. The same walk drives
:meth:`~SearchSpace.sample` (a random source), :meth:`~SearchSpace.from_params`
(replaying stored trial parameters) and :meth:`~SearchSpace.contains` (reading
the decisions back from a genotype).

Distinct architectures
----------------------
An option is only drawn where it changes the network; elsewhere the genotype
gets the field's default (:func:`canonical` states the same rules for any
genotype), so two parameter paths never give the same genotype and
:meth:`~SearchSpace.count` counts genotypes exactly. Not drawn: ``split``
with one kernel; ``acb`` when every kernel is 1x1; ``se_gate`` (and the fixed
``se_base``/``se_divisor``/``se_act``) when ``se == 0``; ``ghost`` for an
inverted residual with neither an expand conv nor a conv projection;
``ghost_kernel`` when ``ghost == 1``; ``exp_groups`` without an expand conv;
groups with ghost modules; ``shuffle`` without a grouped expand or grouped
conv projection; with ``proj: cw`` the group count is drawn as ``cw_groups``
from ``max(proj_groups, 2)`` (1 and 2 build the same module); for ghost
bottlenecks ``split``, ``dilation``, ``acb``, groups and ``proj``, and their
``kernels`` when they have no depthwise conv (stride 1, identity shortcut);
the head's ``act`` without a features or hidden conv; the stem's ``acb`` with
a 1x1 stem. Stage boundaries are part of a genotype, so the same block
sequence split differently between two stride-1 stages counts twice.
"""

from __future__ import annotations

import dataclasses
import math
import random
import re
from collections.abc import Callable, Iterable, Sequence
from functools import cache, lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

import yaml
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, PrivateAttr, ValidationError

from nas.config import EMBEDDED_DATASETS, TrainConfig, check_config
from nas.cost import macs as _macs
from nas.errors import InputError
from nas.genotype import (
    ACTS,
    MAX_GROUPS,
    BlockSpec,
    Genotype,
    HeadSpec,
    StemSpec,
    make_divisible,
)

SHIPPED_SPACES = Path(__file__).resolve().parent.parent / "search_spaces"
COST_METRICS = ("macs", "params", "latency_ms")
METRICS = ("accuracy", *COST_METRICS)

# -- field types -----------------------------------------------------------------------------------------------


def _listify(v: Any) -> Any:
    return tuple(v) if isinstance(v, (list, tuple)) else (v,)


def _distinct(v: tuple) -> tuple:
    if not v:
        raise ValueError("needs at least one choice")
    seen: list = []
    for x in v:
        if x in seen:
            raise ValueError(f"choice {_show(x)} is listed twice")
        seen.append(x)
    return v


def _positive(v: float) -> float:
    if not v > 0:
        raise ValueError(f"must be > 0, got {v}")
    return v


def _kernel(k: int) -> int:
    if k < 1 or k % 2 == 0 or k > 2 * MAX_GROUPS + 1:
        raise ValueError(f"kernel {k} must be odd and in 1..{2 * MAX_GROUPS + 1}")
    return k


def _group_count(g: int) -> int:
    if not 1 <= g <= MAX_GROUPS:
        raise ValueError(f"g = {g}: MixConv uses 1..{MAX_GROUPS} groups (group i has kernel 2i+1: 3, 5, ..., 11)")
    return g


def _kernel_set(v: Any) -> Any:
    """``[3, 5, 7]``, ``"3-5-7"`` or ``3`` -> ``(3, 5, 7)``."""
    if isinstance(v, str):
        try:
            v = [int(p) for p in v.split("-")]
        except ValueError:
            raise ValueError(f"kernel set {v!r}: expected odd kernels like [3, 5, 7] or '3-5-7'") from None
    elif isinstance(v, int) and not isinstance(v, bool):
        v = [v]
    if not isinstance(v, list) or not v or not all(isinstance(k, int) and not isinstance(k, bool) for k in v):
        raise ValueError(f"kernel set {_show(v)}: expected a list of odd kernels like [3, 5, 7]")
    if len(v) > MAX_GROUPS:
        raise ValueError(f"kernel set {_show(v)}: g = {len(v)} groups; MixConv allows 1..{MAX_GROUPS}")
    for k in v:
        _kernel(k)
    return tuple(v)


_SUFFIX = {"": 1, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9}
_QUANTITY = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([kKMG]?)\s*$")


def _quantity(v: Any) -> Any:
    """Numbers as YAML gives them, plus ``"400M"``/``"6M"``/``"1.2G"`` and ``400e6`` (a string in YAML 1.1)."""
    if isinstance(v, str):
        m = _QUANTITY.match(v)
        if not m:
            raise ValueError(f"expected a number such as 400e6 or 400M, got {v!r}")
        return float(m.group(1)) * _SUFFIX[m.group(2)]
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ValueError(f"expected a number such as 400e6 or 400M, got {_show(v)}")
    return float(v)


def _non_negative(v: int) -> int:
    if v < 0:
        raise ValueError(f"must be >= 0, got {v}")
    return v


def _unit_interval(v: float) -> float:
    if not 0 <= v < 1:
        raise ValueError(f"must be in [0, 1), got {v}")
    return v


def _ratio(lo: float, hi: float) -> Callable[[float], float]:
    def check(v: float) -> float:
        if not lo <= v <= hi:
            raise ValueError(f"must be in [{lo:g}, {hi:g}], got {v}")
        return v
    return check


def _identifier(v: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", v):
        raise ValueError(f"{v!r} must be an identifier (letters, digits, _), it names Optuna parameters")
    return v


PosInt = Annotated[int, AfterValidator(_positive)]
NonNegInt = Annotated[int, AfterValidator(_non_negative)]
PosFloat = Annotated[float, AfterValidator(_positive)]
Quantity = Annotated[float, BeforeValidator(_quantity), AfterValidator(_positive)]
Kernel = Annotated[int, AfterValidator(_kernel)]
KernelSet = Annotated[tuple[int, ...], BeforeValidator(_kernel_set)]
Act = Literal["relu", "relu6", "swish", "hswish"]
assert set(get_args(Act)) == set(ACTS)


def Choices(t: Any) -> Any:  # noqa: N802 - reads as a type in the schema
    """A list of distinct choices; a scalar means a single (fixed) choice."""
    # tuples: hashable, so the sampling plans are cached per choice tuple
    return Annotated[tuple[t, ...], BeforeValidator(_listify), AfterValidator(_distinct)]


class _Model(BaseModel):
    # strict: YAML already gives typed values, so "16" or true where an int belongs is a mistake worth reporting
    model_config = ConfigDict(extra="forbid", strict=True)


# -- schema ----------------------------------------------------------------------------------------------------


class Target(_Model):
    """The network being searched for. Budgets, cost objectives and family tiers are checked on the genotype
    at this resolution and class count; the proxy (``proxy:``) only decides what is trained."""

    resolution: PosInt = 224
    in_chans: PosInt = 3
    num_classes: PosInt = 1000


class StemChoices(_Model):
    """Choices for the stem conv ``in_chans -> out`` (k x k, stride, BN, act; ACB when ``acb``)."""

    out: Choices(PosInt) = (16,)
    kernel: Choices(Kernel) = (3,)
    stride: Choices(Literal[1, 2]) = (2,)
    act: Choices(Act) = ("relu",)
    acb: Choices(bool) = (False,)


class BlockChoices(_Model):
    """Block options of a stage; each list is a choice, a scalar is fixed. See ``nas.genotype`` for the layers."""

    kind: Choices(Literal["ir", "ghost"]) = ("ir",)
    groups: Choices(Annotated[int, AfterValidator(_group_count)]) | None = None
    kernels: Choices(KernelSet) | None = None
    split: Choices(Literal["equal", "exponential"]) = ("equal",)
    dilation: Choices(PosInt) = (1,)
    expand: Choices(PosFloat) = (6.0,)
    act: Choices(Act) = ("relu",)
    acb: Choices(bool) = (False,)
    se: Choices(Annotated[float, AfterValidator(_ratio(0, 4))]) = (0.0,)
    se_gate: Choices(Literal["sigmoid", "hsigmoid"]) = ("sigmoid",)
    se_base: Literal["in", "mid"] = "in"
    se_divisor: PosInt = 1
    se_act: Act | None = None
    ghost: Choices(Annotated[int, AfterValidator(_ratio(1, 8))]) = (1,)
    ghost_kernel: Choices(Kernel) = (3,)
    exp_groups: Choices(PosInt) = (1,)
    proj_groups: Choices(PosInt) = (1,)
    shuffle: Choices(bool) = (False,)
    proj: Choices(Literal["conv", "cw"]) = ("conv",)

    def kernel_sets(self) -> tuple[tuple[int, ...], ...]:
        """The depthwise kernel sets: explicit ``kernels`` or, from ``groups``, ``(3, 5, ..., 2g+1)``."""
        if self.kernels is not None:
            return tuple(self.kernels)
        return _group_kernels(self.groups or (1,))


@lru_cache(maxsize=256)
def _group_kernels(groups: tuple[int, ...]) -> tuple[tuple[int, ...], ...]:
    return tuple(tuple(2 * i + 3 for i in range(g)) for g in groups)


class StageSpace(BlockChoices):
    """One stage: a fixed stride (its first block's), width and depth choices, and the block options."""

    name: Annotated[str, AfterValidator(_identifier)]
    stride: Literal[1, 2] = 1
    out: Choices(PosInt)
    repeat: Choices(PosInt) = (1,)
    share: Literal["stage", "block"] = "stage"


class HeadChoices(_Model):
    """Head choices: ``features`` 1x1 conv (0 = none), pool, ``hidden`` conv (0 = none), dropout, classifier."""

    features: Choices(NonNegInt) = (1280,)
    hidden: Choices(NonNegInt) = (0,)
    act: Choices(Act) = ("relu",)
    kind: Choices(Literal["fc", "cw"]) = ("fc",)
    dropout: Choices(Annotated[float, AfterValidator(_unit_interval)]) = (0.2,)


class Budgets(_Model):
    """Hard limits on the target network's costs, checked before any training (``None`` = no limit).

    ``latency_ms`` is predicted from the latency LUT of ``target`` (file ``lut``; ``nas lut build``)."""

    macs: Quantity | None = None
    params: Quantity | None = None
    latency_ms: PosFloat | None = None
    target: str | None = None
    lut: str | None = None


class Objective(_Model):
    """One objective; ``direction`` defaults to maximize for accuracy and minimize for costs."""

    metric: Literal["accuracy", "macs", "params", "latency_ms"]
    direction: Literal["maximize", "minimize"] | None = None


def _objective(v: Any) -> Any:
    return {"metric": v} if isinstance(v, str) else v


def _default_objectives() -> list[Objective]:
    return [Objective(metric="accuracy", direction="maximize"), Objective(metric="macs", direction="minimize")]


class SearchSettings(_Model):
    """How the search runs (``nas search``); command-line flags override these."""

    sampler: Literal["nsga2", "tpe", "gp", "random"] = "nsga2"
    trials: PosInt = 10
    concurrency: PosInt = 1
    cpus_per_trial: PosFloat = 1.0
    gpus_per_trial: Annotated[float, AfterValidator(_ratio(0, 64))] = 0.0
    scheduler: Literal["asha", "none"] = "asha"
    grace_period: PosInt = 1
    seed: int = 0
    storage: Literal["sqlite", "journal"] = "sqlite"


class Tracking(_Model):
    wandb: Literal["online", "offline", "disabled"] = "offline"
    project: str = "nas"
    entity: str | None = None


class Tier(_Model):
    """A family member for ``nas export-best``: the best architecture within these limits."""

    macs: Quantity | None = None
    params: Quantity | None = None
    latency_ms: PosFloat | None = None


class SearchSpace(_Model):
    """A validated search space. Use :func:`load_space`; the methods below sample, count and check it."""

    name: str = ""
    description: str = ""
    target: Target = Field(default_factory=Target,
                           description="the network searched for: budgets and costs are computed on it")
    stem: StemChoices = Field(default_factory=StemChoices)
    stages: Annotated[list[StageSpace], Field(min_length=1)]
    head: HeadChoices = Field(default_factory=HeadChoices)
    budgets: Budgets = Field(default_factory=Budgets)
    objectives: Annotated[list[Annotated[Objective, BeforeValidator(_objective)]], Field(min_length=1)] = Field(
        default_factory=_default_objectives)
    proxy: TrainConfig = Field(default_factory=TrainConfig,
                               description="how candidates are trained (a smaller version of the target)")
    search: SearchSettings = Field(default_factory=SearchSettings)
    tracking: Tracking = Field(default_factory=Tracking)
    family: dict[Annotated[str, AfterValidator(_identifier)], Tier] = Field(default_factory=dict)

    _source: str = PrivateAttr(default="<space>")
    _cheapest: dict[str, Genotype] | None = PrivateAttr(default=None)

    @property
    def source(self) -> str:
        """The file this space was loaded from (used in error messages)."""
        return self._source

    # -- sampling --------------------------------------------------------------------------------------------

    def suggest(self, trial: Any) -> Genotype:
        """Define-by-run: draw every decision from an Optuna trial (any sampler, any storage)."""
        return self._walk(_TrialSource(trial))

    def sample(self, rng: random.Random | int | None = None) -> Genotype:
        """One architecture drawn uniformly per decision (the same walk as :meth:`suggest`)."""
        if not isinstance(rng, random.Random):
            rng = random.Random(rng)
        return self._walk(_TrialSource(_RandomTrial(rng)))

    def sample_many(self, n: int, seed: int = 0, feasible: bool = False, unique: bool = True,
                    max_draws: int | None = None) -> list[Genotype]:
        """``n`` architectures (distinct when ``unique``; within budget when ``feasible``).

        Rejection sampling: raises :class:`InputError` when ``max_draws`` (default ``200 * n + 1000``)
        draws do not give ``n``, e.g. a budget almost nothing meets or a space smaller than ``n``.
        """
        rng = random.Random(seed)
        out: list[Genotype] = []
        seen: set[str] = set()
        draws = 0
        limit = max_draws if max_draws is not None else 200 * n + 1000
        while len(out) < n and draws < limit:
            draws += 1
            g = self.sample(rng)
            if unique and g.hash in seen:
                continue
            if feasible and not self.is_feasible(g):
                continue
            seen.add(g.hash)
            out.append(g)
        if len(out) < n:
            what = " ".join(w for w, on in (("distinct", unique), ("feasible", feasible)) if on) or "valid"
            raise InputError(f"{self.source}: {'budgets' if feasible else 'stages'}: only {len(out)} {what} "
                             f"architectures found in {draws} draws, {n} asked for")
        return out

    def from_params(self, params: dict[str, Any]) -> Genotype:
        """The genotype of stored trial parameters (Optuna ``trial.params``); used on resume."""
        src = _TrialSource(_ReplayTrial(params, self.source))
        g = self._walk(src)
        unused = sorted(set(params) - src.trial.used)
        if unused:
            raise InputError(f"{self.source}: params: {unused[0]!r} is not a decision of this space "
                             "(was the space changed since the study started?)")
        return g

    def params_of(self, genotype: Genotype) -> dict[str, Any]:
        """The parameters that :meth:`suggest` draws for ``genotype`` (for ``study.enqueue_trial``).

        Raises :class:`InputError` with the reason when the genotype is not a point of this space."""
        reason, params = self._read(genotype)
        if reason:
            raise InputError(f"{self.source}: {reason}")
        return params

    def contains(self, genotype: Genotype) -> bool:
        """Whether ``genotype`` is a point of this space (:meth:`why_not` tells why not)."""
        return self._read(genotype)[0] is None

    def why_not(self, genotype: Genotype) -> str | None:
        """``None`` when ``genotype`` is in the space, else the first field that puts it outside."""
        return self._read(genotype)[0]

    # -- size ------------------------------------------------------------------------------------------------

    def count(self) -> int:
        """Exact number of distinct architectures (genotypes) in the space."""
        return _count(self)

    def log10_count(self) -> float:
        return math.log10(self.count())

    # -- costs and budgets -----------------------------------------------------------------------------------

    def cost(self, genotype: Genotype) -> _macs.Cost:
        """MACs and params of the target network (``target.resolution``, ``target.num_classes``)."""
        return _macs.count(genotype, resolution=self.target.resolution, num_classes=self.target.num_classes)

    def violations(self, genotype: Genotype, cost: _macs.Cost | None = None, latency_ms: float | None = None,
                   latency_fn: Callable[[Genotype], float] | None = None) -> dict[str, float]:
        """Relative excess per budget, ``(value - budget) / budget``: ``<= 0`` is within budget.

        These are Optuna constraint values (Optuna 5: ``trial.set_constraint(name, value)`` for each item;
        NSGA-II, TPE and GP then prefer feasible trials). ``latency_ms`` (or
        ``latency_fn``, or else ``nas.cost.latency``) is needed only when ``budgets.latency_ms`` is set.
        """
        b = self.budgets
        out: dict[str, float] = {}
        if b.macs is not None or b.params is not None:
            cost = cost or self.cost(genotype)
            if b.macs is not None:
                out["macs"] = (cost.macs - b.macs) / b.macs
            if b.params is not None:
                out["params"] = (cost.params - b.params) / b.params
        if b.latency_ms is not None:
            if latency_ms is None:
                latency_ms = (latency_fn or self.latency_fn())(genotype)
            out["latency_ms"] = (latency_ms - b.latency_ms) / b.latency_ms
        return out

    def is_feasible(self, genotype: Genotype, cost: _macs.Cost | None = None, latency_ms: float | None = None) -> bool:
        return all(v <= 0 for v in self.violations(genotype, cost, latency_ms).values())

    def latency_fn(self) -> Callable[[Genotype], float]:
        """Predicted latency (ms) of the target network: the LUT ``budgets.lut`` (a path as given, else
        beside the space file, else among the shipped ``luts/``) or else this machine's LUT cache for
        ``budgets.target`` (``nas lut build``)."""
        from nas.cost import latency as _latency

        b = self.budgets
        if not (b.lut or b.target):
            raise InputError(f"{self.source}: budgets.target: latency needs a target or a LUT file")
        lut = _latency.find_table(b.lut, near=Path(self.source).parent) if b.lut else None
        return _latency.predictor(b.target, lut, num_classes=self.target.num_classes)

    def min_achievable(self) -> dict[str, int]:
        """Smallest MACs and params any architecture of the space has (exact; see :meth:`cheapest`)."""
        return {m: getattr(self.cost(self.cheapest(m)), m) for m in ("macs", "params")}

    def cheapest(self, metric: str = "macs") -> Genotype:
        """An architecture of the space with the smallest ``metric`` (``macs`` or ``params``)."""
        if metric not in ("macs", "params"):
            raise ValueError(f"metric must be macs or params, got {metric!r}")
        if self._cheapest is None:
            self._cheapest = _cheapest(self)
        return self._cheapest[metric]

    def validate_budgets(self) -> None:
        """Reject a budget or family tier no architecture can meet, before any search starts.

        One line naming the field and the smallest achievable value. MACs and params are checked one at a
        time (exactly); latency budgets are checked per architecture during the search.
        """
        limits = [(f"{where}.{m}", m, getattr(lim, m))
                  for where, lim in [("budgets", self.budgets), *((f"family.{k}", t) for k, t in self.family.items())]
                  for m in ("macs", "params") if getattr(lim, m) is not None]
        if not limits:
            return
        # Usually a few architectures already show every limit can be met; the exact minimum costs more.
        probes = [self._walk(_SmallestSource()), *(self.sample(i) for i in range(16))]
        costs = [self.cost(g) for g in probes]
        if all(limit >= min(getattr(c, m) for c in costs) for _, m, limit in limits):
            return
        mins = self.min_achievable()
        for where, m, limit in limits:
            if limit < mins[m]:
                unit = " MACs" if m == "macs" else " parameters"
                raise InputError(f"{self.source}: {where}: no architecture in this space meets "
                                 f"{fmt_count(limit)}{unit}; the smallest achievable is {fmt_count(mins[m])}")

    # -- the walk ----------------------------------------------------------------------------------------------

    def _walk(self, src: _Source) -> Genotype:
        st = self.stem
        s_out = _choose(src, "stem.out", st.out, _stem_of, "out")
        s_kernel = _choose(src, "stem.kernel", st.kernel, _stem_of, "kernel")
        s_stride = _choose(src, "stem.stride", st.stride, _stem_of, "stride")
        s_act = _choose(src, "stem.act", st.act, _stem_of, "act")
        s_acb = _choose(src, "stem.acb", st.acb, _stem_of, "acb") if s_kernel > 1 else False
        stem = StemSpec(out=s_out, kernel=s_kernel, stride=s_stride, act=s_act, acb=s_acb)
        stages = []
        cin = s_out
        for si, stage in enumerate(self.stages):
            def first_of(g: Genotype, si: int = si) -> BlockSpec:
                return g.stages[si][0]

            out = _choose(src, f"{stage.name}.out", stage.out, first_of, "out")
            depth = _choose(src, f"{stage.name}.repeat", stage.repeat, lambda g, si=si: len(g.stages[si]))
            if stage.share == "stage":
                first = _walk_block(src, stage.name, stage, cin, out, stage.stride, first_of)
                rest = _canonical_block(dataclasses.replace(first, stride=1), out)
                blocks = (first,) + (rest,) * (depth - 1)
            else:
                blocks, c = [], cin
                for bi in range(depth):
                    blocks.append(_walk_block(src, f"{stage.name}.b{bi}", stage, c, out,
                                              stage.stride if bi == 0 else 1,
                                              lambda g, si=si, bi=bi: g.stages[si][bi]))
                    c = out
                blocks = tuple(blocks)
            stages.append(blocks)
            cin = out
        hd = self.head
        features = _choose(src, "head.features", hd.features, _head_of, "features")
        hidden = _choose(src, "head.hidden", hd.hidden, _head_of, "hidden")
        act = _choose(src, "head.act", hd.act, _head_of, "act") if features or hidden else HeadSpec.act
        kind = _choose(src, "head.kind", hd.kind, _head_of, "kind")
        dropout = _choose(src, "head.dropout", hd.dropout, _head_of, "dropout")
        head = HeadSpec(features=features, hidden=hidden, act=act, kind=kind, dropout=dropout)
        return Genotype(stages=tuple(stages), stem=stem, head=head, resolution=self.target.resolution,
                        in_chans=self.target.in_chans)

    def _read(self, genotype: Genotype) -> tuple[str | None, dict[str, Any]]:
        """(reason or None, params): walk the space taking each decision from ``genotype``."""
        t = self.target
        if genotype.resolution != t.resolution:
            return f"resolution: {genotype.resolution} but the space's target.resolution is {t.resolution}", {}
        if genotype.in_chans != t.in_chans:
            return f"in_chans: {genotype.in_chans} but the space's target.in_chans is {t.in_chans}", {}
        if len(genotype.stages) != len(self.stages):
            return f"stages: {len(genotype.stages)} stages but the space has {len(self.stages)}", {}
        for si, (stage, blocks) in enumerate(zip(self.stages, genotype.stages, strict=True)):
            strides = [b.stride for b in blocks]
            if strides != [stage.stride] + [1] * (len(blocks) - 1):
                return (f"stages[{si}]: block strides {strides}, but stage {stage.name} has stride {stage.stride} "
                        "on its first block only"), {}
            if any(b.out != blocks[0].out for b in blocks):
                return f"stages[{si}]: blocks of one stage must share their width (out)", {}
        try:
            g = canonical(genotype)
        except InputError as e:
            return str(e), {}
        src = _ReadSource(g)
        try:
            rebuilt = self._walk(src)
        except _Outside as e:
            return str(e), {}
        diff = _first_difference(rebuilt, g)
        if diff:
            return diff, {}
        return None, src.params


def _choose(src: _Source, name: str, choices: Sequence[Any], actual: Callable[[Genotype], Any],
            field: str | None = None) -> Any:
    return choices[0] if len(choices) == 1 else src.pick(name, choices, actual, field)


def _stem_of(g: Genotype) -> StemSpec:
    return g.stem


def _head_of(g: Genotype) -> HeadSpec:
    return g.head


# -- decision sources ------------------------------------------------------------------------------------------


class _Source:
    """Where decisions come from. ``actual(g)`` (then ``.field`` when given) is the decision's value in a
    genotype ``g``; only the reading source uses it."""

    def pick(self, name: str, choices: Sequence[Any], actual: Callable[[Genotype], Any],
             field: str | None = None) -> Any:
        raise NotImplementedError


def _enc(v: Any) -> Any:
    return "-".join(map(str, v)) if isinstance(v, tuple) else v


def _int_range(choices: tuple) -> tuple[int, int, int] | None:
    """(low, high, step) when the choices are >= 3 evenly spaced ints (so suggest_int keeps their order)."""
    if len(choices) < 3 or not all(type(c) is int for c in choices):
        return None
    s = sorted(choices)
    step = s[1] - s[0]
    if step <= 0 or any(b - a != step for a, b in zip(s, s[1:], strict=False)):
        return None
    return s[0], s[-1], step


class _TrialSource(_Source):
    """Decisions from anything with Optuna's ``suggest_categorical``/``suggest_int``."""

    def __init__(self, trial: Any) -> None:
        self.trial = trial

    def pick(self, name: str, choices: Sequence[Any], actual: Callable[[Genotype], Any],
             field: str | None = None) -> Any:
        rng, encoded, decode = _plan(choices, type(choices[0]))
        if rng is not None:
            return self.trial.suggest_int(name, rng[0], rng[1], step=rng[2])
        return decode[self.trial.suggest_categorical(name, encoded)]


@lru_cache(maxsize=4096)
def _plan(choices: tuple, kind: type) -> tuple[tuple[int, int, int] | None, list[Any], dict[Any, Any]]:
    """How a choice tuple is asked of a trial: an int range, or categorical (encoded choices, decoder).

    ``kind`` is part of the cache key because ``(2, 3) == (2.0, 3.0)``: repeats and expansions must not
    share a plan."""
    decode = {_enc(c): c for c in choices}
    return _int_range(choices), list(decode), decode


class _RandomTrial:
    """The Optuna trial interface backed by ``random.Random``: one uniform draw per decision."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        return choices[int(self.rng.random() * len(choices))]

    def suggest_int(self, name: str, low: int, high: int, step: int = 1) -> int:
        return low + step * int(self.rng.random() * ((high - low) // step + 1))


class _ReplayTrial:
    """The Optuna trial interface answering from stored parameters."""

    def __init__(self, params: dict[str, Any], source: str) -> None:
        self.params, self.source, self.used = params, source, set()

    def _get(self, name: str) -> Any:
        if name not in self.params:
            raise InputError(f"{self.source}: params: decision {name!r} is missing")
        self.used.add(name)
        return self.params[name]

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        v = self._get(name)
        if v not in choices or isinstance(v, bool) != any(isinstance(c, bool) and c == v for c in choices):
            raise InputError(f"{self.source}: params: {name} = {v!r} is not one of {list(choices)}")
        return v

    def suggest_int(self, name: str, low: int, high: int, step: int = 1) -> int:
        v = self._get(name)
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        if type(v) is not int or not low <= v <= high or (v - low) % step:
            raise InputError(f"{self.source}: params: {name} = {v!r} is not in {low}..{high} step {step}")
        return v


class _Outside(Exception):
    """The genotype read by :class:`_ReadSource` takes a value the space does not offer."""


class _ReadSource(_Source):
    """Decisions read back from a (canonical) genotype, recording them as Optuna params."""

    def __init__(self, genotype: Genotype) -> None:
        self.g = genotype
        self.params: dict[str, Any] = {}

    def pick(self, name: str, choices: Sequence[Any], actual: Callable[[Genotype], Any],
             field: str | None = None) -> Any:
        v = actual(self.g)
        if field is not None:
            v = getattr(v, field)
        for c in choices:
            if c == v and isinstance(c, bool) == isinstance(v, bool):
                self.params[name] = _enc(c)
                return c
        shown = ", ".join(_show(c) for c in choices)
        raise _Outside(f"{name}: {_show(v)} is not among the choices ({shown})")


# -- one block ---------------------------------------------------------------------------------------------------

_DEFAULT = BlockSpec(out=1)


def _walk_block(src: _Source, p: str, st: BlockChoices, cin: int, out: int, stride: int,
                actual: Callable[[Genotype], BlockSpec]) -> BlockSpec:
    """Draw one block's options, only those that change the network in this context (see the module
    docstring); :func:`_count_block` counts the same tree and :func:`_canonical_block` states the same rules."""
    def pick(name: str, choices: Sequence[Any], field: str | None = None) -> Any:
        # a fixed option is no decision (and no Optuna parameter); contains() still compares it at the end
        return choices[0] if len(choices) == 1 else src.pick(f"{p}.{name}", choices, actual, field or name)

    kw: dict[str, Any] = {"out": out, "stride": stride}
    kind = kw["kind"] = pick("kind", st.kind)
    ir = kind == "ir"
    kernels = _DEFAULT.kernels
    if ir or stride == 2 or cin != out:  # a ghost bottleneck has a depthwise conv only then
        kernels = kw["kernels"] = pick("kernels", st.kernel_sets())
    if ir:  # MixConv options; a ghost bottleneck's depthwise convs are plain
        if len(kernels) > 1:
            kw["split"] = pick("split", st.split)
        kw["dilation"] = pick("dilation", st.dilation)
        if any(k > 1 for k in kernels):
            kw["acb"] = pick("acb", st.acb)
    expand = kw["expand"] = pick("expand", st.expand)
    kw["act"] = pick("act", st.act)
    se = kw["se"] = pick("se", st.se)
    if se > 0:
        kw["se_gate"] = pick("se_gate", st.se_gate)
        kw.update(se_base=st.se_base, se_divisor=st.se_divisor, se_act=st.se_act)
    has_expand = not ir or expand != 1
    proj = kw["proj"] = pick("proj", st.proj) if ir else "conv"
    ghost = kw["ghost"] = pick("ghost", st.ghost) if has_expand or proj == "conv" else 1
    if ghost > 1:
        kw["ghost_kernel"] = pick("ghost_kernel", st.ghost_kernel)
    elif ir:  # grouped 1x1 convs (ghost modules take no groups)
        eg = kw["exp_groups"] = pick("exp_groups", st.exp_groups) if has_expand else 1
        if proj == "conv":
            pg = kw["proj_groups"] = pick("proj_groups", st.proj_groups)
        else:  # the channel-wise module uses max(proj_groups, 2) groups: 1 and 2 are one network
            pg = kw["proj_groups"] = pick("cw_groups", _cw_groups(st.proj_groups), "proj_groups")
        if eg > 1 or (pg > 1 and proj == "conv"):
            kw["shuffle"] = pick("shuffle", st.shuffle)
    return BlockSpec(**kw)


@lru_cache(maxsize=256)
def _cw_groups(proj_groups: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(dict.fromkeys(max(g, 2) for g in proj_groups))


def _count_block(st: BlockChoices, cin: int, out: int, stride: int) -> int:
    """Number of distinct blocks :func:`_walk_block` can draw in this context."""
    total = 0
    for kind in st.kind:
        ir = kind == "ir"
        if ir:  # kernels x split x acb (acb only when a kernel > 1) x dilation
            k = len(st.dilation) * sum((len(st.split) if len(ks) > 1 else 1)
                                       * (len(st.acb) if any(x > 1 for x in ks) else 1)
                                       for ks in st.kernel_sets())
        else:
            k = len(st.kernel_sets()) if stride == 2 or cin != out else 1
        se = sum(len(st.se_gate) if s > 0 else 1 for s in st.se)
        tail = 0
        for e in st.expand:
            has_expand = not ir or e != 1
            for proj in (st.proj if ir else ("conv",)):
                for gh in (st.ghost if has_expand or proj == "conv" else (1,)):
                    if gh > 1:
                        tail += len(st.ghost_kernel)
                    elif not ir:
                        tail += 1
                    else:
                        pgs = st.proj_groups if proj == "conv" else _cw_groups(st.proj_groups)
                        tail += sum(len(st.shuffle) if eg > 1 or (pg > 1 and proj == "conv") else 1
                                    for eg in (st.exp_groups if has_expand else (1,)) for pg in pgs)
        total += k * len(st.act) * se * tail
    return total


def _canonical_block(b: BlockSpec, cin: int) -> BlockSpec:
    """``b`` with every option that has no effect in this context reset to its default (same module)."""
    d = _DEFAULT
    kw: dict[str, Any] = {}
    ir = b.kind == "ir"
    kernels = b.kernels
    if not ir:
        kw.update(split=d.split, dilation=d.dilation, acb=False)
        if b.stride == 1 and cin == b.out:
            kw["kernels"] = d.kernels
    else:
        if len(kernels) == 1:
            kw["split"] = d.split
        if all(k == 1 for k in kernels):
            kw["acb"] = False
    if b.se == 0:
        kw.update(se_gate=d.se_gate, se_base=d.se_base, se_divisor=d.se_divisor, se_act=d.se_act)
    has_expand = b.has_expand(cin)
    ghost = b.ghost
    if ir and not has_expand and b.proj != "conv":
        ghost = kw["ghost"] = 1
    if ghost == 1:
        kw["ghost_kernel"] = d.ghost_kernel
    eg, pg = b.exp_groups, b.proj_groups
    if not has_expand:
        eg = kw["exp_groups"] = 1
    if ir and b.proj == "cw" and ghost == 1:
        pg = kw["proj_groups"] = max(pg, 2)
    if eg == 1 and not (pg > 1 and b.proj == "conv"):
        kw["shuffle"] = False
    changed = {k: v for k, v in kw.items() if getattr(b, k) != v}
    return dataclasses.replace(b, **changed) if changed else b


def canonical(genotype: Genotype) -> Genotype:
    """The genotype with every option that has no effect reset to its default (same network, same costs)."""
    stem = genotype.stem
    if stem.kernel == 1 and stem.acb:
        stem = dataclasses.replace(stem, acb=False)
    head = genotype.head
    if not head.features and not head.hidden and head.act != HeadSpec.act:
        head = dataclasses.replace(head, act=HeadSpec.act)
    stages, cin = [], stem.out
    for stage in genotype.stages:
        blocks = []
        for b in stage:
            blocks.append(_canonical_block(b, cin))
            cin = b.out
        stages.append(tuple(blocks))
    return dataclasses.replace(genotype, stem=stem, head=head, stages=tuple(stages))


def _first_difference(a: Genotype, b: Genotype) -> str | None:
    """Where ``b`` (the genotype asked about) differs from ``a`` (the space's reading of it)."""
    for part in ("stem", "head"):
        for f in dataclasses.fields(getattr(a, part)):
            va, vb = getattr(getattr(a, part), f.name), getattr(getattr(b, part), f.name)
            if va != vb:
                return f"{part}.{f.name}: {_show(vb)}, but the space has {_show(va)} here"
    for si, (sa, sb) in enumerate(zip(a.stages, b.stages, strict=True)):
        for bi, (ba, bb) in enumerate(zip(sa, sb, strict=True)):
            for f in dataclasses.fields(BlockSpec):
                va, vb = getattr(ba, f.name), getattr(bb, f.name)
                if va != vb:
                    return f"stages[{si}].blocks[{bi}].{f.name}: {_show(vb)}, but the space has {_show(va)} here"
    return None


# -- counting ---------------------------------------------------------------------------------------------------


def _count(space: SearchSpace) -> int:
    n_stages = len(space.stages)

    @cache
    def rest(i: int, cin: int) -> int:
        if i == n_stages:
            return 1
        st = space.stages[i]
        total = 0
        for out in st.out:
            if st.share == "stage":
                per_depth = _count_block(st, cin, out, st.stride)
                n = per_depth * len(st.repeat)
            else:
                first, later = _count_block(st, cin, out, st.stride), _count_block(st, out, out, 1)
                n = sum(first * later ** (r - 1) for r in st.repeat)
            total += n * rest(i + 1, out)
        return total

    s = space.stem
    stem_other = len(s.stride) * len(s.act) * sum(len(s.acb) if k > 1 else 1 for k in s.kernel)
    h = space.head
    head = sum(len(h.act) if (f or hd) else 1 for f in h.features for hd in h.hidden) * len(h.kind) * len(h.dropout)
    return stem_other * head * sum(rest(0, c) for c in s.out)


# -- cheapest architecture -----------------------------------------------------------------------------------------

# Options that change no MAC and no parameter: fixed to their first choice while searching the cheapest network.
_COST_FREE = {"act", "se_gate", "shuffle", "dropout"}


class _EnumSource(_Source):
    """Walks every path of a decision tree, one path per run (depth-first odometer)."""

    def __init__(self) -> None:
        self.path: list[list[int]] = []  # [index, n] per decision
        self.pos = 0

    def pick(self, name: str, choices: Sequence[Any], actual: Callable[[Genotype], Any],
             field: str | None = None) -> Any:
        if len(choices) == 1 or name.rsplit(".", 1)[-1] in _COST_FREE:
            return choices[0]
        if self.pos == len(self.path):
            self.path.append([0, len(choices)])
        i = self.path[self.pos][0]
        self.pos += 1
        return choices[i]

    def next(self) -> bool:
        """Advance to the next path; False when all were walked."""
        self.pos = 0
        while self.path and self.path[-1][0] + 1 == self.path[-1][1]:
            self.path.pop()
        if not self.path:
            return False
        self.path[-1][0] += 1
        return True


class _SmallestSource(_Source):
    """The smallest number (or fewest kernels) of every choice: a cheap architecture, not always the cheapest."""

    def pick(self, name: str, choices: Sequence[Any], actual: Callable[[Genotype], Any],
             field: str | None = None) -> Any:
        return min(choices, key=_size)


def _size(c: Any) -> Any:
    if isinstance(c, tuple):
        return (len(c), sum(c))
    return (c, 0) if isinstance(c, (int, float)) else (0, 0)


def _enumerate(walk: Callable[[_Source], Any]) -> Iterable[Any]:
    src = _EnumSource()
    while True:
        yield walk(src)
        if not src.next():
            return


def _part_cost(stem: StemSpec, blocks: tuple[BlockSpec, ...], head: HeadSpec, resolution: int, in_chans: int,
               num_classes: int, part: int) -> tuple[int, int]:
    g = Genotype(stages=(blocks,), stem=stem, head=head, resolution=resolution, in_chans=in_chans)
    row = _macs.breakdown(g, num_classes=num_classes)[part]
    return row.macs, row.params


def _cheapest(space: SearchSpace) -> dict[str, Genotype]:
    """The architectures with the fewest MACs and with the fewest params, exactly, by dynamic programming:
    costs add up over stem, blocks and head, and a block's cost depends only on its options, its input
    channels and its input resolution (so each block is minimised over its options in its context)."""
    t = space.target
    dummy_head = HeadSpec(features=0, dropout=0.0)

    def down(r: int, s: int) -> int:
        return -(-r // s)

    @cache
    def block_cost(b: BlockSpec, cin: int, r: int) -> tuple[int, int]:
        return _part_cost(StemSpec(out=cin, kernel=1, stride=1), (b,), dummy_head, r, 1, 1, 1)

    @cache
    def leaves(i: int, cin: int, out: int, stride: int) -> tuple[BlockSpec, ...]:
        st = space.stages[i]
        return tuple(_enumerate(lambda s: _walk_block(s, "x", st, cin, out, stride, _no_actual)))

    @cache
    def stage_options(key: int, i: int, cin: int, out: int, r: int) -> list[tuple[int, BlockSpec, BlockSpec]]:
        """Per depth choice: (cost, first block, later block) of the cheapest stage."""
        st = space.stages[i]
        r1 = down(r, st.stride)
        if st.share == "stage":
            best: dict[int, tuple[int, BlockSpec, BlockSpec]] = {}
            for b in leaves(i, cin, out, st.stride):
                later = _canonical_block(dataclasses.replace(b, stride=1), out)
                c0, c1 = block_cost(b, cin, r)[key], block_cost(later, out, r1)[key]
                for d in st.repeat:
                    c = c0 + (d - 1) * c1
                    if d not in best or c < best[d][0]:
                        best[d] = (c, b, later)
            return [best[d] for d in st.repeat]
        first = min(leaves(i, cin, out, st.stride), key=lambda b: block_cost(b, cin, r)[key])
        later = min(leaves(i, out, out, 1), key=lambda b: block_cost(b, out, r1)[key])
        c0, c1 = block_cost(first, cin, r)[key], block_cost(later, out, r1)[key]
        return [(c0 + (d - 1) * c1, first, later) for d in st.repeat]

    @cache
    def head_best(key: int, cin: int, r: int) -> tuple[int, HeadSpec]:
        def walk(s: _Source) -> HeadSpec:
            h = space.head
            f = s.pick("head.features", h.features, _no_actual)
            hd = s.pick("head.hidden", h.hidden, _no_actual)
            return HeadSpec(features=f, hidden=hd, kind=s.pick("head.kind", h.kind, _no_actual),
                            dropout=h.dropout[0], act=h.act[0])

        stem, probe = StemSpec(out=cin, kernel=1, stride=1), BlockSpec(out=cin, expand=1.0)
        costs = ((_part_cost(stem, (probe,), h, r, 1, t.num_classes, -1)[key], h) for h in _enumerate(walk))
        return min(costs, key=lambda x: x[0])

    @cache
    def rest(key: int, i: int, cin: int, r: int) -> tuple[int, tuple, HeadSpec]:
        """(cost, stages, head) of the cheapest network from stage ``i`` on."""
        if i == len(space.stages):
            c, h = head_best(key, cin, r)
            return c, (), h
        st = space.stages[i]
        best: tuple[int, tuple, HeadSpec] | None = None
        for out in st.out:
            tail_cost, tail, head = rest(key, i + 1, out, down(r, st.stride))
            for d, (c, first, later) in zip(st.repeat, stage_options(key, i, cin, out, r), strict=True):
                if best is None or c + tail_cost < best[0]:
                    best = (c + tail_cost, ((first,) + (later,) * (d - 1),) + tail, head)
        assert best is not None
        return best

    s = space.stem
    found: dict[str, Genotype] = {}
    for key, metric in enumerate(("macs", "params")):
        best_g: tuple[int, Genotype] | None = None
        for k in s.kernel:
            for stride in s.stride:
                for acb in (s.acb if k > 1 else (False,)):
                    for out in s.out:
                        stem = StemSpec(out=out, kernel=k, stride=stride, act=s.act[0], acb=acb)
                        probe = BlockSpec(out=out, expand=1.0)
                        c_stem = _part_cost(stem, (probe,), dummy_head, t.resolution, t.in_chans, 1, 0)[key]
                        c_rest, stages, head = rest(key, 0, out, down(t.resolution, stride))
                        if best_g is None or c_stem + c_rest < best_g[0]:
                            g = Genotype(stages=stages, stem=stem, head=head, resolution=t.resolution,
                                         in_chans=t.in_chans)
                            best_g = (c_stem + c_rest, g)
        assert best_g is not None
        found[metric] = best_g[1]
    return found


def _no_actual(g: Genotype) -> Any:
    raise AssertionError("not a reading walk")


# -- loading -------------------------------------------------------------------------------------------------------


def find_space_file(path: str | Path) -> Path:
    """A path as the user typed it; if it does not exist, the shipped ``search_spaces/`` (then its
    ``reference/``) are searched, also with ``.yaml`` added. A file in the working directory always wins."""
    p = Path(path)
    if p.exists():
        return p
    names = [p] if p.suffix else [p, p.with_suffix(".yaml")]
    if not p.is_absolute():
        for base in (SHIPPED_SPACES, SHIPPED_SPACES / "reference"):
            for n in names:
                if (base / n).exists():
                    return base / n
    return p


def shipped_spaces() -> list[Path]:
    """The search-space YAML files shipped in ``search_spaces/``."""
    return sorted(SHIPPED_SPACES.glob("*.yaml"))


class _UniqueKeyLoader(yaml.SafeLoader):
    """Safe loader that rejects a key given twice in one mapping (PyYAML silently keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen and key != "<<":
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: Path) -> Any:
    """Read a YAML file; every problem is one :class:`InputError` line ``file: where: problem``."""
    if not path.exists():
        raise InputError(f"{path}: file not found")
    if path.is_dir():
        raise InputError(f"{path}: is a directory, not a YAML file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a text file (invalid UTF-8)") from None
    except OSError as e:
        raise InputError(f"{path}: cannot read file ({e.strerror or e.__class__.__name__})") from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "YAML"
        problem = " ".join(str(getattr(e, "problem", None) or e).split())
        raise InputError(f"{path}: {where}: invalid YAML ({problem})") from None
    if data is None:
        raise InputError(f"{path}: top level: empty file (a search space needs at least `stages:`)")
    return data


def load_space(path: str | Path) -> SearchSpace:
    """Load and validate a search-space YAML (paths resolved as :func:`find_space_file` does).

    Raises :class:`InputError` ``"file: field.path: problem"`` on any bad input.
    """
    p = find_space_file(path)
    return space_from_dict(read_yaml(p), str(p), default_name=p.stem)


def space_from_dict(data: Any, source: str = "<space>", default_name: str = "space") -> SearchSpace:
    """Validate plain data as a search space; errors name ``source`` and the field path."""
    if not isinstance(data, dict):
        raise InputError(f"{source}: top level: expected a mapping of sections (stages, stem, head, budgets, ...), "
                         f"got {_type_name(data)}")
    try:
        space = SearchSpace.model_validate(data)
    except ValidationError as e:
        raise InputError(f"{source}: {format_validation_error(e)}") from None
    space._source = source
    if not space.name:
        space.name = default_name
    _check(space)
    return space


def _check(space: SearchSpace) -> None:
    """Rules across fields that the field types cannot express; each error names its field."""
    src = space.source

    def fail(where: str, problem: str) -> None:
        raise InputError(f"{src}: {where}: {problem}")

    seen: dict[str, int] = {}
    for i, st in enumerate(space.stages):
        if st.name in ("stem", "head"):
            fail(f"stages[{i}].name", f"{st.name!r} is reserved (it prefixes the {st.name}'s parameters)")
        if st.name in seen:
            fail(f"stages[{i}].name", f"duplicate stage name {st.name!r} (also stages[{seen[st.name]}])")
        seen[st.name] = i
        if st.groups is not None and st.kernels is not None:
            fail(f"stages[{i}].kernels", "give either groups or kernels, not both")
        if "ghost" in st.kind and any(len(ks) > 1 for ks in st.kernel_sets()):
            fail(f"stages[{i}].{'kernels' if st.kernels is not None else 'groups'}",
                 "a ghost bottleneck (kind ghost) has one depthwise kernel; use single-kernel choices")
    try:
        check_config(space.proxy)
    except InputError as e:
        raise InputError(f"{src}: {e}") from None
    _check_proxy_data(space, fail)
    _check_channels(space, fail)
    metrics = [o.metric for o in space.objectives]
    for i, o in enumerate(space.objectives):
        if metrics.index(o.metric) != i:
            fail(f"objectives[{i}].metric", f"{o.metric} is listed twice")
        want = "maximize" if o.metric == "accuracy" else "minimize"
        if o.direction is None:
            o.direction = want
        elif o.direction != want:
            fail(f"objectives[{i}].direction", f"{o.metric} can only be {want}d")
    b = space.budgets
    uses_latency = (b.latency_ms is not None or "latency_ms" in metrics
                    or any(t.latency_ms is not None for t in space.family.values()))
    if uses_latency and not (b.target or b.lut):
        fail("budgets.target", "latency_ms is used but no latency target is named (e.g. target: torch-cpu, "
             "with a LUT from `nas lut build`)")
    if b.target:
        from nas.cost import latency as _latency

        known = _latency.TARGETS
        if _latency.ALIASES.get(b.target, b.target) not in known:
            fail("budgets.target", f"unknown latency target {b.target!r} (known: {', '.join(known)})")
    for name, tier in space.family.items():
        if tier.macs is None and tier.params is None and tier.latency_ms is None:
            fail(f"family.{name}", "a tier needs at least one limit (macs, params or latency_ms)")
        for m in COST_METRICS:
            v, limit = getattr(tier, m), getattr(b, m)
            if v is not None and limit is not None and v > limit:
                fail(f"family.{name}.{m}", f"{fmt_count(v)} exceeds budgets.{m} ({fmt_count(limit)})")


def _check_proxy_data(space: SearchSpace, fail: Callable[[str, str], None]) -> None:
    from nas import data as _data

    p = space.proxy
    formats = (*getattr(_data, "FORMATS", ()), "auto")
    if len(formats) > 1 and p.dataset not in formats:
        fail("proxy.dataset", f"{p.dataset!r} is not one of {', '.join(formats)}")
    if p.dataset not in EMBEDDED_DATASETS and not p.path:
        fail("proxy.path", f"dataset {p.dataset} needs a local path (built in: {', '.join(EMBEDDED_DATASETS)})")


def _check_channels(space: SearchSpace, fail: Callable[[str, str], None]) -> None:
    """Every point of the space must be a buildable genotype, at the target width and at the proxy width:
    grouped 1x1 convs divide their channels, MixConv groups get at least one channel each, and a
    channel-wise classifier sees at least ``num_classes`` channels."""
    width = space.proxy.width

    def widths(c: int) -> list[tuple[int, str]]:
        out = [(c, "")]
        if width != 1.0:
            out.append((make_divisible(c * width, 8), f" (at the proxy width {width:g})"))
        return out

    prev = set(space.stem.out)
    for i, st in enumerate(space.stages):
        cins = prev | (set(st.out) if max(st.repeat) > 1 else set())
        max_g = max(len(ks) for ks in st.kernel_sets())
        exponential = "exponential" in st.split and max_g > 1
        conv_groups = [g for g in st.proj_groups if g > 1] if "conv" in st.proj else []
        cw_groups = list(_cw_groups(st.proj_groups)) if "cw" in st.proj else []
        for cin0, out0, kind, e in ((c, o, k, e) for c in sorted(cins) for o in st.out for k in st.kind
                                    for e in st.expand):
            for (cin, note), (out, _) in zip(widths(cin0), widths(out0), strict=True):
                mid = cin if kind == "ir" and e == 1 else make_divisible(cin * e, 8)
                if kind == "ir" and mid < max_g:
                    fail(f"stages[{i}].groups", f"{max_g} kernel groups need {max_g} channels, "
                         f"expand {e:g} of {cin} gives {mid}{note}")
                if kind == "ir" and exponential and mid < 2 ** (max_g - 1):
                    fail(f"stages[{i}].split", f"an exponential split into {max_g} groups needs "
                         f"{2 ** (max_g - 1)} channels, expand {e:g} of {cin} gives {mid}{note}")
                if kind == "ghost":
                    continue
                for eg in (st.exp_groups if e != 1 else ()):
                    if eg > 1 and (cin % eg or mid % eg):
                        fail(f"stages[{i}].exp_groups", f"{eg} groups do not divide {cin} -> {mid} channels "
                             f"(expand {e:g}){note}")
                for field, groups in (("proj_groups", conv_groups), ("proj", cw_groups)):
                    for pg in groups:
                        if mid % pg or out % pg:
                            what = "channel-wise projection" if field == "proj" else "grouped projection"
                            fail(f"stages[{i}].{field}", f"a {what} with {pg} groups does not divide "
                                 f"{mid} -> {out} channels{note}")
        prev = set(st.out)
    h = space.head
    if "cw" in h.kind:
        n = space.target.num_classes
        narrowest = min(hd or f or min(prev) for f in h.features for hd in h.hidden)
        if narrowest < n:
            fail("head.kind", f"the channel-wise classifier needs at least num_classes={n} channels, "
                 f"but the head can end with {narrowest}")


# -- error formatting -------------------------------------------------------------------------------------------


def format_validation_error(e: ValidationError) -> str:
    """The first error as ``field.path: problem``, plus ``(and N more)``."""
    errs = e.errors(include_url=False)
    err = errs[0]
    loc = _loc(err["loc"])
    kind = err["type"]
    msg = str(err["msg"])
    if kind in ("extra_forbidden", "unexpected_keyword_argument"):
        known = _known_fields(err["loc"][:-1])
        msg = "unknown field" + (f" (known: {', '.join(known)})" if known else "")
    elif kind in ("missing", "missing_argument"):
        msg = "required field missing"
    else:
        msg = msg.removeprefix("Value error, ").removeprefix("Assertion failed, ")
        inp = err.get("input")
        if kind.endswith("_type") or kind.endswith("_parsing") or kind in ("literal_error", "enum"):
            msg = f"{msg}, got {_show(inp)}"
    more = f" (and {len(errs) - 1} more)" if len(errs) > 1 else ""
    return f"{loc or 'top level'}: {msg}{more}"


def _loc(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif "[" in str(part) or str(part).startswith("function-"):
            continue  # pydantic's validator tags, not fields
        else:
            out += f".{part}" if out else str(part)
    return out


def _known_fields(loc: tuple) -> list[str]:
    t: Any = SearchSpace
    for part in loc:
        t = _unwrap(t)
        if isinstance(part, int) or t is None:
            continue
        if isinstance(t, type) and issubclass(t, BaseModel):
            f = t.model_fields.get(part)
            t = f.annotation if f else None
        elif isinstance(t, type) and dataclasses.is_dataclass(t):
            fs = {f.name: f.type for f in dataclasses.fields(t)}
            t = fs.get(part)
        elif get_origin(t) is dict:
            t = get_args(t)[1]
        else:
            return []
    t = _unwrap(t)
    if isinstance(t, type) and issubclass(t, BaseModel):
        return list(t.model_fields)
    if isinstance(t, type) and dataclasses.is_dataclass(t):
        return [f.name for f in dataclasses.fields(t)]
    return []


def _unwrap(t: Any) -> Any:
    """Strip Annotated/Optional/list wrappers to reach a model class."""
    while True:
        origin = get_origin(t)
        if origin is Annotated or origin in (list, tuple):
            t = get_args(t)[0]
        elif origin is not None and origin is not dict and type(None) in get_args(t):
            t = next(a for a in get_args(t) if a is not type(None))
        else:
            return t


def _type_name(v: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", int: "an integer",
            float: "a number", type(None): "nothing"}.get(type(v), type(v).__name__)


def _show(v: Any) -> str:
    if isinstance(v, tuple):
        return "[" + ", ".join(map(str, v)) + "]"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    s = repr(v)
    return s if len(s) <= 60 else s[:57] + "..."


def fmt_count(v: float) -> str:
    """12.3M, 1.2G, 950k: the way papers write MACs and parameter counts."""
    v = float(v)
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= div:
            return f"{v / div:.3g}{suffix}" if v / div < 100 else f"{v / div:.0f}{suffix}"
    return f"{v:g}"
