"""The sampler registry: ``search.sampler`` (or ``--sampler``) names a factory of an Optuna sampler.

A factory takes one :class:`SamplerContext` (the kind, the seed, the study's size and concurrency, and the
space, objectives and cost function for samplers that look at architectures themselves) and returns an
``optuna.samplers.BaseSampler``. Budgets reach every sampler as trial constraints (the ``constraints`` list).
Register a new one with :func:`register_sampler`; its name must also be allowed by the space schema's
``search.sampler``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import optuna

from nas.errors import OptionError

if TYPE_CHECKING:
    from nas.cost.macs import Cost
    from nas.genotype import Genotype


@dataclass(frozen=True)
class SamplerContext:
    """What a sampler factory may use."""

    kind: str
    seed: int
    trials: int  # total trials the study should hold
    concurrency: int = 1  # trials trained at once
    space: Any = None  # the SearchSpace
    objectives: Sequence[dict[str, str]] = ()
    cost_fn: Callable[[Genotype], Cost] | None = None  # the target network's analytic cost
    score_cache: Any = None  # nas.scores.cache.ScoreCache: training-free score features (predictor sampler)

    @property
    def startup_trials(self) -> int:
        """Random trials before a model-based sampler starts modelling."""
        return max(4, min(10, self.trials // 5))


SamplerFactory = Callable[[SamplerContext], optuna.samplers.BaseSampler]
_REGISTRY: dict[str, SamplerFactory] = {}


def register_sampler(name: str) -> Callable[[SamplerFactory], SamplerFactory]:
    """Decorator: ``@register_sampler("name")`` on a factory ``(SamplerContext) -> BaseSampler``."""
    def add(factory: SamplerFactory) -> SamplerFactory:
        _REGISTRY[name] = factory
        return factory

    return add


def sampler_names() -> tuple[str, ...]:
    return tuple(_REGISTRY)


def make_sampler(kind: str, seed: int, trials: int, concurrency: int = 1,
                 **context: Any) -> optuna.samplers.BaseSampler:
    """The Optuna sampler registered as ``kind`` (``context``: the other :class:`SamplerContext` fields)."""
    factory = _REGISTRY.get(kind)
    if factory is None:
        raise OptionError("sampler", f"{kind!r} is not one of {', '.join(_REGISTRY)}")
    quiet_optuna()
    return factory(SamplerContext(kind, seed, trials, concurrency, **context))


def quiet_optuna() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def population_size(trials: int) -> int:
    """NSGA-II population: about a quarter of the budget, so a search sees several generations."""
    return max(4, min(50, trials // 4))


@register_sampler("nsga2")
def _nsga2(ctx: SamplerContext) -> optuna.samplers.BaseSampler:
    return optuna.samplers.NSGAIISampler(population_size=population_size(ctx.trials), seed=ctx.seed)


@register_sampler("tpe")
def _tpe(ctx: SamplerContext) -> optuna.samplers.BaseSampler:
    # group: conditional parameters (per-block choices exist only at some depths) get their own models
    return optuna.samplers.TPESampler(seed=ctx.seed, multivariate=True, group=True,
                                      constant_liar=ctx.concurrency > 1, n_startup_trials=ctx.startup_trials)


@register_sampler("gp")
def _gp(ctx: SamplerContext) -> optuna.samplers.BaseSampler:
    return optuna.samplers.GPSampler(seed=ctx.seed, n_startup_trials=ctx.startup_trials)


@register_sampler("random")
def _random(ctx: SamplerContext) -> optuna.samplers.BaseSampler:
    return optuna.samplers.RandomSampler(seed=ctx.seed)


@register_sampler("predictor")
def _predictor(ctx: SamplerContext) -> optuna.samplers.BaseSampler:
    # imported on use: it brings scikit-learn and the evolutionary search
    from nas.search.predictor import from_context

    return from_context(ctx)
