"""Budgets: the target network's costs, their limits, and the latency predictor the search applies.

The search, the CLI, export and tracking reach costs and budgets through these functions only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nas.cost.macs import Cost
    from nas.genotype import Genotype


def target_cost(space: Any, genotype: Genotype) -> Cost:
    """MACs and params of the target network (``target.resolution``, ``target.num_classes``)."""
    return space.cost(genotype)


def violations(space: Any, genotype: Genotype, cost: Cost | None = None, latency_ms: float | None = None,
               latency_fn: Callable[[Genotype], float] | None = None) -> dict[str, float]:
    """Relative excess per budget, ``(value - budget) / budget``: ``<= 0`` is within budget."""
    return space.violations(genotype, cost, latency_ms=latency_ms, latency_fn=latency_fn)


def is_feasible(space: Any, genotype: Genotype, cost: Cost | None = None, latency_ms: float | None = None) -> bool:
    return space.is_feasible(genotype, cost, latency_ms)


def latency_predictor(space: Any) -> Callable[[Genotype], float]:
    """Predicted latency (ms) of the target network, from the space's LUT or target."""
    return space.latency_fn()


def min_achievable(space: Any) -> dict[str, int]:
    """Smallest MACs and params any architecture of the space has."""
    return space.min_achievable()


def cheapest(space: Any, metric: str = "macs") -> Genotype:
    """An architecture of the space with the smallest ``metric`` (``macs`` or ``params``)."""
    return space.cheapest(metric)


def validate_budgets(space: Any) -> None:
    """Reject a budget or family tier no architecture can meet, before any search starts."""
    space.validate_budgets()
