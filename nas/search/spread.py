"""Spreading a search's trials over the family's tiers, so that a short search trains a design in each.

A space's ``family:`` lists tiers (``s``, ``m``, ``l``), each a set of limits
on the target network's costs; they are taken smallest first. A tier's *band* is what it
allows and the tier before it does not: within its own limits and over at
least one of the previous tier's (the first tier's band is everything within
its limits). Bands do not overlap, so every architecture belongs to at most
one tier (none when it is over the last tier's limits).

The policy is *by need*: a tier is needed while no other tier has fewer
designs trained or in training (pruned and failed ones do not count). A
proposal in a needed tier is trained. One in a tier that is ahead of the
others, or in none, is answered at once, untrained, as ``refused`` for its
tier (constraint ``tier``: its relative distance to the nearest needed band,
so a sampler that reads constraints learns where the needed bands are; it is
no measurement: PRUNED in Optuna, never a label), and the proposer queues
for the next proposal a random architecture of the space whose estimated
costs lie in the nearest needed band (:func:`draw`: MACs and params exactly,
latency estimated from the latency per MAC of the proposals costed so far;
the queued one is costed exactly like any other when it is proposed).
Rejection alone is not enough: a model-based sampler keeps proposing near
the designs it has seen (NSGA-II's children of the first generation), and on
``tiny.yaml`` (6 trials, 20 seeds) it left a tier untrained in 9 searches of
20 even when allowed 12 refusals; with the queued draws, in none.

Refusals are not counted among the study's ``trials`` (a 10-trial search still
trains about 10 designs), but at most ``trials`` of them are given per search:
after that every proposal is taken as it comes, so a band nothing in the
space reaches cannot stall a search.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from nas.config import COST_METRICS
from nas.genotype import Genotype
from nas.results.record import TIER  # noqa: F401 - the constraint (and violations key) of a tier refusal

#: Random architectures the proposer draws at most when looking for one in a needed band.
DRAWS = 400


@dataclass(frozen=True)
class Band:
    """A tier's band: within ``limits``, and over at least one of ``below`` (the previous tier's limits)."""

    name: str
    limits: dict[str, float]
    below: dict[str, float] = field(default_factory=dict)

    def contains(self, costs: Mapping[str, float | None]) -> bool:
        return _within(costs, self.limits) and not (self.below and _within(costs, self.below))

    def distance(self, costs: Mapping[str, float | None]) -> float:
        """Relative distance from the band (0 inside): over a limit by ``(c - l) / l``, or under every one
        of the previous tier's limits by the smallest ``(l - c) / l``."""
        over = sum(max(0.0, (_v(costs, m) - b) / b) for m, b in self.limits.items())
        under = min(((b - _v(costs, m)) / b for m, b in self.below.items()), default=-1.0)
        return over + (max(under, 1e-9) if self.below and _within(costs, self.below) else 0.0)


def _v(costs: Mapping[str, float | None], metric: str) -> float:
    v = costs.get(metric)
    return math.inf if v is None else float(v)


def _within(costs: Mapping[str, float | None], limits: Mapping[str, float]) -> bool:
    return all(_v(costs, m) <= b for m, b in limits.items())


def bands(space: Any) -> list[Band]:
    """The bands of the space's family tiers, smallest tier first."""
    return ordered_bands([(name, {m: float(getattr(t, m)) for m in COST_METRICS if getattr(t, m, None) is not None})
                          for name, t in (getattr(space, "family", None) or {}).items()])


def ordered_bands(tiers: list[tuple[str, Mapping[str, float]]]) -> list[Band]:
    """Bands of ``(name, limits)`` tiers, smallest first (by MACs, then params, then latency limit)."""
    out: list[Band] = []
    below: dict[str, float] = {}
    for name, limits in sorted(tiers, key=lambda nt: tuple(nt[1].get(m, math.inf) for m in COST_METRICS)):
        out.append(Band(name, dict(limits), dict(below)))
        below = dict(limits)
    return out


def tier_of(costs: Mapping[str, float | None], tiers: list[Band]) -> str | None:
    """The tier whose band holds ``costs``, or None."""
    return next((b.name for b in tiers if b.contains(costs)), None)


class TierSpread:
    """The by-need policy of the module docstring, for one search."""

    def __init__(self, tiers: list[Band], allowance: int) -> None:
        self.tiers = tiers
        self.allowance = allowance  # refusals for the tier still allowed
        self.counts = {b.name: 0 for b in tiers}  # designs trained (complete) or in training, per tier

    @property
    def active(self) -> bool:
        return len(self.tiers) > 1 and self.allowance > 0

    def needed(self) -> list[Band]:
        low = min(self.counts.values())
        return [b for b in self.tiers if self.counts[b.name] == low]

    def rejection(self, costs: Mapping[str, float | None]) -> float:
        """0 when a proposal with these costs is to be trained, else its ``tier`` constraint value (> 0)."""
        if not self.active:
            return 0.0
        tier = tier_of(costs, self.tiers)
        need = self.needed()
        if tier in {b.name for b in need}:
            return 0.0
        return max(min(b.distance(costs) for b in need), 1e-9)

    def count(self, tier: str | None, delta: int) -> None:
        if tier in self.counts:
            self.counts[tier] += delta

    def nearest_needed(self, costs: Mapping[str, float | None]) -> list[Band]:
        """The needed bands, nearest to ``costs`` first."""
        return sorted(self.needed(), key=lambda b: b.distance(costs))


def draw(space: Any, band: Band, estimate: Callable[[Genotype], Mapping[str, float | None] | None],
         rng: random.Random, exclude: set[str], tries: int = DRAWS) -> Genotype | None:
    """A random architecture of the space whose estimated costs (None: over a budget) lie in ``band``; None
    after ``tries`` draws."""
    for _ in range(tries):
        g = space.sample(rng)
        costs = None if g.hash in exclude else estimate(g)
        if costs is not None and band.contains(costs):
            return g
    return None
