"""The search-space schema: pydantic models of every YAML section, and :class:`SearchSpace` itself.

Each block option is a list of choices (a scalar is one fixed choice);
``search_spaces/README.md`` documents every field. Which options are
decisions in which context is :mod:`nas.rules`' business; this module only
says which values a space may list.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable
from functools import lru_cache
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, PrivateAttr, model_validator

from nas.config import COST_METRICS, METRICS, REWARD_W, SAMPLERS, TrainConfig
from nas.errors import InputError
from nas.genotype import Genotype
from nas.genotype_check import ACTS, GATES, HEAD_KINDS, KINDS, MAX_GROUPS, PROJS, SE_BASES, SPLITS, STRIDES
from nas.space.count import count as _count
from nas.space.errors import show
from nas.space.sources import RandomTrial, ReplayTrial, TrialSource
from nas.space.walk import read, walk

# -- field types -----------------------------------------------------------------------------------------------


def _listify(v: Any) -> Any:
    return tuple(v) if isinstance(v, (list, tuple)) else (v,)


def _distinct(v: tuple) -> tuple:
    if not v:
        raise ValueError("needs at least one choice")
    seen: list = []
    for x in v:
        if x in seen:
            raise ValueError(f"choice {show(x)} is listed twice")
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
        raise ValueError(f"kernel set {show(v)}: expected a list of odd kernels like [3, 5, 7]")
    if len(v) > MAX_GROUPS:
        raise ValueError(f"kernel set {show(v)}: g = {len(v)} groups; MixConv allows 1..{MAX_GROUPS}")
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
        raise ValueError(f"expected a number such as 400e6 or 400M, got {show(v)}")
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
Act = Literal[ACTS]
Stride = Literal[STRIDES]


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
    """Choices for the stem conv ``in_chans -> out`` (k x k, stride, BN, act; ACB when ``acb``; a 3x3 stride-2
    max-pool after it when ``pool``, as ShuffleNet)."""

    out: Choices(PosInt) = (16,)
    kernel: Choices(Kernel) = (3,)
    stride: Choices(Stride) = (2,)
    act: Choices(Act) = ("relu",)
    acb: Choices(bool) = (False,)
    pool: Choices(bool) = (False,)


class BlockChoices(_Model):
    """Block options of a stage; each list is a choice, a scalar is fixed. See ``nas.genotype`` for the layers."""

    kind: Choices(Literal[KINDS]) = ("ir",)
    groups: Choices(Annotated[int, AfterValidator(_group_count)]) | None = None
    kernels: Choices(KernelSet) | None = None
    split: Choices(Literal[SPLITS]) = ("equal",)
    dilation: Choices(PosInt) = (1,)
    expand: Choices(PosFloat) = (6.0,)
    bottleneck: Choices(PosFloat) = (0.25,)
    act: Choices(Act) = ("relu",)
    acb: Choices(bool) = (False,)
    se: Choices(Annotated[float, AfterValidator(_ratio(0, 4))]) = (0.0,)
    se_gate: Choices(Literal[GATES]) = ("sigmoid",)
    se_base: Literal[SE_BASES] = "in"
    se_divisor: PosInt = 1
    se_act: Act | None = None
    ghost: Choices(Annotated[int, AfterValidator(_ratio(1, 8))]) = (1,)
    ghost_kernel: Choices(Kernel) = (3,)
    exp_groups: Choices(PosInt) = (1,)
    proj_groups: Choices(PosInt) = (1,)
    shuffle: Choices(bool) = (False,)
    proj: Choices(Literal[PROJS]) = ("conv",)

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
    stride: Stride = 1
    out: Choices(PosInt)
    repeat: Choices(PosInt) = (1,)
    share: Literal["stage", "block"] = "stage"


class HeadChoices(_Model):
    """Head choices: ``features`` 1x1 conv (0 = none), pool, ``hidden`` conv (0 = none), dropout, classifier."""

    features: Choices(NonNegInt) = (1280,)
    hidden: Choices(NonNegInt) = (0,)
    act: Choices(Act) = ("relu",)
    kind: Choices(Literal[HEAD_KINDS]) = ("fc",)
    dropout: Choices(Annotated[float, AfterValidator(_unit_interval)]) = (0.2,)


class Budgets(_Model):
    """Hard limits on the target network's costs, checked before any training (``None`` = no limit);
    ``latency_ms`` is predicted for ``target`` from the table ``lut`` or this machine's (``nas.latency.cache``)."""

    macs: Quantity | None = None
    params: Quantity | None = None
    latency_ms: PosFloat | None = None
    target: str | None = None
    lut: str | None = None


class Objective(_Model):
    """One objective; ``direction`` defaults to maximize for accuracy and reward, minimize for costs. ``reward``:
    MnasNet's ``accuracy x (cost / target) ^ w`` (``nas.results.front.reward``; ``w`` default -0.07)."""

    metric: Literal[METRICS]
    direction: Literal["maximize", "minimize"] | None = None
    cost: Literal[COST_METRICS] | None = None
    target: Quantity | None = None
    w: Annotated[float, AfterValidator(_ratio(-1, 0))] | None = None

    @model_validator(mode="after")
    def _reward_fields(self) -> Objective:
        if self.metric == "reward" and (self.cost is None or self.target is None):
            raise ValueError("a reward needs cost and target, e.g. {metric: reward, cost: latency_ms, target: 80}")
        if self.metric != "reward" and (self.cost, self.target, self.w) != (None, None, None):
            raise ValueError(f"cost, target and w belong to a reward objective, not to {self.metric}")
        self.w = REWARD_W if self.metric == "reward" and self.w is None else self.w
        return self


def _objective(v: Any) -> Any:
    return {"metric": v} if isinstance(v, str) else v


def _default_objectives() -> list[Objective]:
    return [Objective(metric="accuracy", direction="maximize"), Objective(metric="macs", direction="minimize")]


class SearchSettings(_Model):
    """How the search runs (``nas search``); command-line flags override these."""

    sampler: Literal[SAMPLERS] = "nsga2"
    trials: PosInt = 10
    # None: chosen from the Ray cluster when the search starts (nas.search.resources); 0 GPUs: train on CPU.
    concurrency: PosInt | None = None
    cpus_per_trial: PosFloat = 1.0
    gpus_per_trial: Annotated[float, AfterValidator(_ratio(0, 64))] | None = None
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
    """A validated search space (use :func:`nas.space.load_space`): sampling, reading back and counting.

    Costs and budgets are applied by the search (:mod:`nas.search.budgets`), which needs :mod:`nas.cost`."""

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
    _memo: dict[str, Any] = PrivateAttr(default_factory=dict)

    @property
    def source(self) -> str:
        """The file this space was loaded from (used in error messages)."""
        return self._source

    def memo(self, key: str, compute: Callable[[], Any]) -> Any:
        """``compute()``, once per space object: for what higher layers derive from a loaded space (e.g. the
        cheapest architectures, :func:`nas.search.budgets.cheapest`)."""
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]

    # -- sampling --------------------------------------------------------------------------------------------

    def suggest(self, trial: Any) -> Genotype:
        """Define-by-run: draw every decision from an Optuna trial (any sampler, any storage)."""
        return walk(self, TrialSource(trial))

    def sample(self, rng: random.Random | int | None = None) -> Genotype:
        """One architecture drawn uniformly per decision (the same walk as :meth:`suggest`)."""
        if not isinstance(rng, random.Random):
            rng = random.Random(rng)
        return walk(self, TrialSource(RandomTrial(rng)))

    def sample_many(self, n: int, seed: int = 0, feasible: Callable[[Genotype], bool] | None = None,
                    unique: bool = True, max_draws: int | None = None) -> list[Genotype]:
        """``n`` architectures (distinct when ``unique``; only those ``feasible`` accepts, when given, e.g.
        ``functools.partial(nas.search.budgets.is_feasible, space)``).

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
            if feasible is not None and not feasible(g):
                continue
            seen.add(g.hash)
            out.append(g)
        if len(out) < n:
            on = feasible is not None
            what = " ".join(w for w, used in (("distinct", unique), ("feasible", on)) if used) or "valid"
            raise InputError(f"{self.source}: {'budgets' if on else 'stages'}: only {len(out)} {what} "
                             f"architectures found in {draws} draws, {n} asked for")
        return out

    def from_params(self, params: dict[str, Any]) -> Genotype:
        """The genotype of stored trial parameters (Optuna ``trial.params``); used on resume."""
        src = TrialSource(ReplayTrial(params, self.source))
        g = walk(self, src)
        unused = sorted(set(params) - src.trial.used)
        if unused:
            raise InputError(f"{self.source}: params: {unused[0]!r} is not a decision of this space "
                             "(was the space changed since the study started?)")
        return g

    def params_of(self, genotype: Genotype) -> dict[str, Any]:
        """The parameters that :meth:`suggest` draws for ``genotype`` (for ``study.enqueue_trial``).

        Raises :class:`InputError` with the reason when the genotype is not a point of this space."""
        reason, params = read(self, genotype)
        if reason:
            raise InputError(f"{self.source}: {reason}")
        return params

    def contains(self, genotype: Genotype) -> bool:
        """Whether ``genotype`` is a point of this space (:meth:`why_not` tells why not)."""
        return read(self, genotype)[0] is None

    def why_not(self, genotype: Genotype) -> str | None:
        """``None`` when ``genotype`` is in the space, else the first field that puts it outside."""
        return read(self, genotype)[0]

    # -- size ------------------------------------------------------------------------------------------------

    def count(self) -> int:
        """Exact number of distinct architectures (genotypes) in the space."""
        return _count(self)

    def log10_count(self) -> float:
        return math.log10(self.count())
