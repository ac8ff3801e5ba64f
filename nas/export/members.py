"""The member of each tier: the most accurate design trained in its band, or the nearest tier's member scaled.

:func:`tier_members` is what ``nas export-best`` uses. A tier's band is what
it allows and the tier below it does not (:mod:`nas.search.spread`, the same
bands the search spreads its trials over). Per tier:

1. the most accurate design the study trained to the end whose costs lie in
   the band (feasible, not a duplicate): ``trained``, so every trained member
   is a point of the space and members of different tiers are different
   designs;
2. otherwise the trained member of the nearest tier (the one below first)
   compound-scaled in width to just under the tier's limits, as MixNet-L is
   MixNet-M x 1.3 (:func:`scale_to_budget`): ``scaled``, never trained;
3. when no tier has a trained member, or scaling it cannot reach the tier,
   :func:`choose_member` over the study's front.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from nas.errors import InputError
from nas.export.tiers import NEAR, Tier
from nas.genotype import Genotype
from nas.results.front import front, is_feasible
from nas.results.pareto import study_objectives
from nas.results.record import TrialRecord, as_record
from nas.scaling import scale
from nas.search.spread import ordered_bands

CostFn = Callable[[Genotype], dict[str, float]]


@dataclass
class Member:
    tier: str
    genotype: Genotype
    source: str  # "trained" | "scaled" | "arch"
    trial: int | None = None  # the trial it is (trained) or was scaled from (scaled)
    width: float = 1.0
    accuracy: float | None = None  # proxy accuracy; None for a scaled member (never trained)
    limits: dict[str, float] = field(default_factory=dict)
    record: TrialRecord | None = None  # the trial it is or was scaled from


def _record_costs(r: TrialRecord) -> dict[str, float | None]:
    return {"macs": r.macs, "params": r.params, "latency_ms": r.latency_ms}


def scale_to_budget(g: Genotype, tier: Tier, cost_fn: CostFn, *, lo: float = 0.05, hi: float = 1.0,
                    iters: int = 40) -> tuple[Genotype, float]:
    """The widest ``scale(g, w)`` meeting every limit of ``tier`` (bisection on ``w``).

    Costs are step functions of ``w`` (channels round to multiples of 8) and
    grow with it, so the largest feasible ``w`` gives the network whose cost
    lands just under the budget.
    """
    def ok(w: float) -> bool:
        return tier.within(cost_fn(scale(g, w)))

    if not ok(lo):
        raise InputError(f"family.{tier.name}: {tier.describe()} is below even {g.name or 'the nearest member'} "
                         f"scaled to width {lo}")
    while ok(hi):
        lo, hi = hi, hi * 2
        if hi > 16:
            raise InputError(f"family.{tier.name}: {tier.describe()} is above the nearest member scaled 16x")
    for _ in range(iters):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if ok(mid) else (lo, mid)
    return _round_width(g, lo)


def _round_width(g: Genotype, w: float, iters: int = 30) -> tuple[Genotype, float]:
    """The roundest multiplier giving the same network as ``w``: 1.3, not 1.3317, for MixNet-L."""
    target = scale(g, w)
    if target == g:
        return g, 1.0
    lo, hi = 0.0, w  # smallest multiplier still giving ``target`` lies in (lo, hi]
    for _ in range(iters):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if scale(g, mid) == target else (mid, hi)
    for digits in (1, 2, 3, 4):
        # ``hi`` may sit a hair above a boundary the round number is exactly on (MixNet-L: 120 x 1.3 = 156 -> 160).
        for r in (round(hi, digits), math.ceil(hi * 10**digits) / 10**digits):
            if r <= w and scale(g, r) == target:
                return target, r
    return target, w


def choose_member(front: Sequence[Mapping[str, Any]], tier: Tier, cost_fn: CostFn, *,
                  near: float = NEAR) -> Member:
    """The tier's member from ``front`` (feasible non-dominated trial records); see :mod:`nas.export`."""
    if not front:
        raise InputError(f"family.{tier.name}: the study has no feasible trained architecture to choose from")
    records = [as_record(r) for r in front]
    inside = [r for r in records if tier.within(_record_costs(r))]
    if any(tier.near(_record_costs(r), near) for r in inside):
        return _trained(tier, _most_accurate(inside))
    nearest = min(records, key=lambda r: (tier.distance(_record_costs(r)), -(r.accuracy or 0.0)))
    g = nearest.to_genotype()
    scaled, w = scale_to_budget(g, tier, cost_fn)
    if scaled == g:  # the channel rounding leaves no width between this network and the budget
        return _trained(tier, nearest)
    if inside:
        # Channels round to multiples of 8, so on a small network one width step can jump far below the
        # budget; a trained member within the budget that is at least as close to it is the better choice.
        best = _most_accurate(inside)
        if tier.distance(_record_costs(best)) <= tier.distance(cost_fn(scaled)):
            return _trained(tier, best)
    return Member(tier.name, scaled.replace(name=tier.name), "scaled", nearest.number, w, None,
                  dict(tier.limits), nearest)


def _most_accurate(records: Sequence[TrialRecord]) -> TrialRecord:
    return max(records, key=lambda r: (r.accuracy or 0.0, -r.macs))


def _trained(tier: Tier, r: TrialRecord) -> Member:
    """A trained architecture as the tier's member, as trained."""
    return Member(tier.name, r.to_genotype().replace(name=tier.name), "trained", r.number, 1.0, r.accuracy,
                  dict(tier.limits), r)


def _scaled(tier: Tier, r: TrialRecord, cost_fn: CostFn) -> Member:
    g, w = scale_to_budget(r.to_genotype(), tier, cost_fn)
    return Member(tier.name, g.replace(name=tier.name), "scaled", r.number, w, None, dict(tier.limits), r)


def tier_members(records: Sequence[Mapping[str, Any]], space: Any, tiers: Sequence[Tier], cost_fn: CostFn, *,
                 all_tiers: Sequence[Tier] | None = None, near: float = NEAR) -> list[Member]:
    """Every tier's member (see the module docstring). ``all_tiers`` (default ``tiers``) define the bands, so a
    tier exported alone keeps the band it has in the whole family."""
    bands = ordered_bands([(t.name, t.limits) for t in (all_tiers or tiers)])
    order = [b.name for b in bands]
    trained = [as_record(r) for r in records if is_feasible(r) and r.get("duplicate_of") is None
               and r.get("accuracy") is not None and (r.get("epochs") or 0) > 0]
    best: dict[str, TrialRecord] = {}
    for b in bands:
        inside = [r for r in trained if b.contains(_record_costs(r))]
        if inside:
            best[b.name] = _most_accurate(inside)
    members = []
    for t in tiers:
        if t.name in best:
            members.append(_trained(t, best[t.name]))
            continue
        i = order.index(t.name)
        donors = sorted((n for n in best), key=lambda n: (abs(order.index(n) - i), order.index(n) > i))
        try:
            members.append(_scaled(t, best[donors[0]], cost_fn))
        except (IndexError, InputError):  # no member to scale, or none that reaches the tier
            members.append(choose_member(study_front(records, space, t), t, cost_fn, near=near))
    return members


def study_front(records: Sequence[Mapping[str, Any]], space: Any, tier: Tier) -> list[Any]:
    """Front of the study's objectives plus the tier's cost metrics (so the tier's cost is traded off too)."""
    objectives = study_objectives(space)
    have = {o["metric"] for o in objectives}
    objectives += [{"metric": m, "direction": "minimize"} for m in tier.limits if m not in have]
    if "accuracy" not in have:
        objectives.insert(0, {"metric": "accuracy", "direction": "maximize"})
    usable = [r for r in records if r.get("accuracy") is not None
              and all(r.get(m) is not None for m in tier.limits)]
    return front(usable, objectives)
