"""The search-space schema: pydantic models of every YAML section, and :class:`SearchSpace` itself.

Each block option is a list of choices (a scalar is one fixed choice);
``search_spaces/README.md`` documents every field. Which options are
decisions in which context is :mod:`nas.rules`' business; this module only
says which values a space may list.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from functools import lru_cache
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PrivateAttr, model_validator

from nas.config import COST_METRICS, METRICS, REWARD_W, SAMPLERS, TrainConfig
from nas.errors import InputError
from nas.genotype import Genotype
from nas.genotype_check import GATES, HEAD_KINDS, KINDS, PROJS, SE_BASES, SPLITS
from nas.space.count import count as _count
from nas.space.fields import (
    MAX_CHANNELS,
    MAX_CHOICES,
    MAX_CLASSES,
    MAX_CONCURRENCY,
    MAX_CPUS,
    MAX_DEPTH,
    MAX_DILATION,
    MAX_EPOCHS,
    MAX_RESOLUTION,
    MAX_STAGES,
    MAX_TRIALS,
    Act,
    Channels,
    Choices,
    GroupCount,
    Groups1x1,
    HeadChannels,
    Identifier,
    InRange,
    Kernel,
    KernelSet,
    Latency,
    Positive,
    Quantity,
    Ratio,
    Seed,
    Stride,
    UnitInterval,
)
from nas.space.sources import CodeSource, RandomTrial, ReplayTrial, TrialSource
from nas.space.walk import read, walk


class _Model(BaseModel):
    # strict: YAML already gives typed values, so "16" or true where an int belongs is a mistake worth reporting;
    # no inf or nan anywhere (YAML's .inf): every number of a space is a finite quantity
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


# -- schema ----------------------------------------------------------------------------------------------------


class Target(_Model):
    """The network being searched for. Budgets, cost objectives and family tiers are checked on the genotype
    at this resolution and class count; the proxy (``proxy:``) only decides what is trained."""

    resolution: Positive(int, MAX_RESOLUTION) = 224
    in_chans: Positive(int, MAX_CHANNELS) = 3
    num_classes: Positive(int, MAX_CLASSES) = 1000


class StemChoices(_Model):
    """Choices for the stem conv ``in_chans -> out`` (k x k, stride, BN, act; ACB when ``acb``; a 3x3 stride-2
    max-pool after it when ``pool``, as ShuffleNet)."""

    out: Choices(Channels) = (16,)
    kernel: Choices(Kernel) = (3,)
    stride: Choices(Stride) = (2,)
    act: Choices(Act) = ("relu",)
    acb: Choices(bool) = (False,)
    pool: Choices(bool) = (False,)


class BlockChoices(_Model):
    """Block options of a stage; each list is a choice, a scalar is fixed. See ``nas.genotype`` for the layers."""

    kind: Choices(Literal[KINDS]) = ("ir",)
    groups: Choices(GroupCount) | None = None
    kernels: Choices(KernelSet) | None = None
    split: Choices(Literal[SPLITS]) = ("equal",)
    dilation: Choices(Positive(int, MAX_DILATION)) = (1,)
    expand: Choices(Ratio) = (6.0,)
    bottleneck: Choices(Ratio) = (0.25,)
    act: Choices(Act) = ("relu",)
    acb: Choices(bool) = (False,)
    se: Choices(InRange(0, 4)) = (0.0,)
    se_gate: Choices(Literal[GATES]) = ("sigmoid",)
    se_base: Literal[SE_BASES] = "in"
    se_divisor: Positive(int, MAX_CHANNELS) = 1
    se_act: Act | None = None
    ghost: Choices(InRange(1, 8, int)) = (1,)
    ghost_kernel: Choices(Kernel) = (3,)
    exp_groups: Choices(Groups1x1) = (1,)
    proj_groups: Choices(Groups1x1) = (1,)
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


class OpChoices(BlockChoices):
    """One candidate op of a stage's ``ops`` list (FBNet/ProxylessNAS style): a name and the block options it
    sets; the options it leaves out are the stage's."""

    name: Identifier


class StageSpace(BlockChoices):
    """One stage: a fixed stride (its first block's), width and depth choices, and the block options; or,
    with ``ops``, a list of candidate ops, each block drawing one of them (the decision ``op``)."""

    name: Identifier
    stride: Stride = 1
    out: Choices(Channels)
    repeat: Choices(Positive(int, MAX_DEPTH)) = (1,)
    share: Literal["stage", "block"] = "stage"
    ops: Annotated[list[OpChoices], Field(min_length=1, max_length=MAX_CHOICES)] | None = None

    _ops: tuple[tuple[str, StageSpace], ...] = PrivateAttr(default=())

    @model_validator(mode="after")
    def _variants(self) -> StageSpace:
        if self.ops is None:
            return self
        names = [o.name for o in self.ops]
        dup = next((n for n in names if names.count(n) > 1), None)
        if dup is not None:
            raise ValueError(f"ops: the name {dup!r} is given twice")
        base = {f: getattr(self, f) for f in StageSpace.model_fields if f != "ops"}
        self._ops = tuple((o.name, StageSpace.model_construct(
            **{**base, **{f: getattr(o, f) for f in o.model_fields_set if f != "name"}})) for o in self.ops)
        return self

    def variants(self) -> tuple[tuple[str, StageSpace], ...]:
        """``(name, this stage with the op's options)`` of each op (:func:`nas.rules.variants`); without ``ops``
        the stage itself."""
        return self._ops or (("", self),)


class HeadChoices(_Model):
    """Head choices: ``features`` 1x1 conv (0 = none), pool, ``hidden`` conv (0 = none), dropout, classifier."""

    features: Choices(HeadChannels) = (1280,)
    hidden: Choices(HeadChannels) = (0,)
    act: Choices(Act) = ("relu",)
    kind: Choices(Literal[HEAD_KINDS]) = ("fc",)
    dropout: Choices(UnitInterval) = (0.2,)


class Budgets(_Model):
    """Hard limits on the target network's costs, checked before any training (``None`` = no limit);
    ``latency_ms`` is predicted for ``target`` from the table ``lut`` or this machine's (``nas.latency.cache``)."""

    macs: Quantity | None = None
    params: Quantity | None = None
    latency_ms: Latency | None = None
    target: str | None = None
    lut: str | None = None
    unit_ms: Latency | None = None  # the probe unit the latency limits were derived with (`nas lut budgets`)


class Objective(_Model):
    """One objective; ``direction`` defaults to maximize for accuracy and reward, minimize for costs. ``reward``:
    MnasNet's ``accuracy x (cost / target) ^ w`` (``nas.results.front.reward``; ``w`` default -0.07)."""

    metric: Literal[METRICS]
    direction: Literal["maximize", "minimize"] | None = None
    cost: Literal[COST_METRICS] | None = None
    target: Quantity | None = None
    w: InRange(-1, 0) | None = None

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
    trials: Positive(int, MAX_TRIALS) = 10
    # None: chosen from the Ray cluster when the search starts (nas.search.resources); 0 GPUs: train on CPU.
    concurrency: Positive(int, MAX_CONCURRENCY) | None = None
    cpus_per_trial: Positive(float, MAX_CPUS) = 1.0
    gpus_per_trial: InRange(0, 64) | None = None
    scheduler: Literal["asha", "none"] = "asha"
    grace_period: Positive(int, MAX_EPOCHS) = 1
    seed: Seed = 0
    storage: Literal["sqlite", "journal"] = "sqlite"
    # screening: each trained trial is the best of ``screen`` trainable proposals of its tier under the
    # training-free score ``screen_score`` (nas.scores; ``default`` or a single score's name); 1 = off
    screen: Positive(int, MAX_TRIALS) = 1
    screen_score: str = "default"
    # the predictor sampler only: these training-free scores' values (a score name, e.g. ``default``, or a list of
    # single scores) are features of its accuracy model; every architecture it considers is scored once
    # (the study's scores.jsonl keeps them)
    score_features: str | list[str] | None = None


class Tracking(_Model):
    wandb: Literal["online", "offline", "disabled"] = "offline"
    project: str = "nas"
    entity: str | None = None


class Tier(_Model):
    """A family member for ``nas export-best``: the best architecture within these limits."""

    macs: Quantity | None = None
    params: Quantity | None = None
    latency_ms: Latency | None = None


class SearchSpace(_Model):
    """A validated search space (use :func:`nas.space.load_space`): sampling, reading back and counting.

    Costs and budgets are applied by the search (:mod:`nas.search.budgets`), which needs :mod:`nas.cost`."""

    name: str = ""
    description: str = ""
    target: Target = Field(default_factory=Target,
                           description="the network searched for: budgets and costs are computed on it")
    stem: StemChoices = Field(default_factory=StemChoices)
    stages: Annotated[list[StageSpace], Field(min_length=1, max_length=MAX_STAGES)]
    head: HeadChoices = Field(default_factory=HeadChoices)
    budgets: Budgets = Field(default_factory=Budgets)
    objectives: Annotated[list[Annotated[Objective, BeforeValidator(_objective)]], Field(min_length=1)] = Field(
        default_factory=_default_objectives)
    proxy: TrainConfig = Field(default_factory=TrainConfig,
                               description="how candidates are trained (a smaller version of the target)")
    search: SearchSettings = Field(default_factory=SearchSettings)
    tracking: Tracking = Field(default_factory=Tracking)
    family: Annotated[dict[Identifier, Tier], Field(max_length=MAX_CHOICES)] = Field(
        default_factory=dict)

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

    def from_code(self, code: str) -> Genotype:
        """The genotype of a published table's code (:class:`nas.space.sources.CodeSource`)."""
        src = CodeSource(code, self.source)
        g = walk(self, src)
        if src.i != len(src.symbols):
            raise InputError(f"{self.source}: code {code!r}: {len(src.symbols)} symbols, the space takes {src.i} "
                             "decisions")
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
