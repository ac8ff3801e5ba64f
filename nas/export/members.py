"""The member of each tier: a family in which each larger tier is more accurate than every smaller one.

:func:`tier_members` is what ``nas export-best`` uses. A tier's band is what
it allows and the tier below it does not (:mod:`nas.search.spread`, the same
bands the search spreads its trials over). Tiers are taken smallest first;
per tier:

1. the most accurate design the study trained to the end whose costs lie in
   the band (feasible, not a duplicate) *and* whose proxy accuracy on the
   selection (validation) split is above every smaller tier's trained
   member: ``trained``. A larger member that a smaller one beats on every
   axis is no family (issue 28: M 28.6% under S 60.3%), so such a design is
   passed over and the tier says why (``Member.notes``);
2. with a latency limit and a measuring function, the candidate's latency is
   measured on this machine and must lie under ``limit x (1 - margin)``
   (:data:`LATENCY_MARGIN`: timings move by a few percent between runs, so a
   member measured right at its limit misses it on the next); one that
   misses is replaced by the next most accurate qualifying design (up to
   :data:`RECHOOSE` measured), and when none is within, the first is kept
   and flagged in its notes;
3. otherwise (no trained design in the band, or none more accurate than the
   tiers below) the trained member of the nearest tier (the one below
   first) compound-scaled in width to just under the tier's limits, as
   MixNet-L is MixNet-M x 1.3 (:func:`scale_to_budget`): ``scaled``, never
   trained, with a note saying that no trained design qualified;
4. when no tier has a trained member, or scaling it cannot reach the tier,
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
MeasureFn = Callable[[Genotype], "float | None"]

#: A member's measured latency must lie under its tier's limit by this fraction (see the module docstring).
LATENCY_MARGIN = 0.02
#: Candidates of a tier measured at most before the most accurate one is kept and flagged.
RECHOOSE = 3


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
    notes: list[str] = field(default_factory=list)  # why it was chosen over others, or what it misses


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


def _pct(acc: float | None) -> str:
    return "n/a" if acc is None else f"{100 * acc:.1f}%"


def _latency_miss(tier: Tier, g: Genotype, measure_fn: MeasureFn | None, margin: float) -> float | None:
    """The measured latency when it is not under the tier's latency limit with the margin, else None."""
    limit = tier.limits.get("latency_ms")
    if limit is None or measure_fn is None:
        return None
    ms = measure_fn(g)
    return ms if ms is not None and ms > limit * (1 - margin) else None


def _pick(tier: Tier, ranked: Sequence[TrialRecord], measure_fn: MeasureFn | None,
          margin: float) -> tuple[TrialRecord | None, list[str]]:
    """The most accurate of ``ranked`` whose measured latency is within the tier's limit (see step 2)."""
    notes: list[str] = []
    misses: list[tuple[TrialRecord, float]] = []
    for r in ranked[:RECHOOSE]:
        ms = _latency_miss(tier, r.to_genotype(), measure_fn, margin)
        if ms is None:
            if misses:
                notes.append("re-chosen: " + "; ".join(
                    f"trial {x.number} measured {ms_:.2f} ms, over {tier.limits['latency_ms']:g} ms - "
                    f"{100 * margin:g}%" for x, ms_ in misses))
            return r, notes
        misses.append((r, ms))
    if not misses:
        return None, notes
    r, ms = misses[0]
    notes.append(f"FLAG: measured latency {ms:.2f} ms is not under its limit {tier.limits['latency_ms']:g} ms "
                 f"- {100 * margin:g}% (and no other of the {len(misses)} most accurate designs of the band is)")
    return r, notes


def tier_members(records: Sequence[Mapping[str, Any]], space: Any, tiers: Sequence[Tier], cost_fn: CostFn, *,
                 all_tiers: Sequence[Tier] | None = None, near: float = NEAR, measure_fn: MeasureFn | None = None,
                 margin: float = LATENCY_MARGIN) -> list[Member]:
    """Every tier's member (see the module docstring). ``all_tiers`` (default ``tiers``) define the bands, so a
    tier exported alone keeps the band it has in the whole family (and must beat the smaller tiers' members).
    ``measure_fn`` measures a genotype's latency (ms) for tiers with a latency limit; it is called only for the
    tiers exported."""
    everything = list(all_tiers or tiers)
    by_name = {t.name: t for t in everything}
    bands = ordered_bands([(t.name, t.limits) for t in everything])
    order = [b.name for b in bands]
    wanted = {t.name for t in tiers}
    trained = [as_record(r) for r in records if is_feasible(r) and r.get("duplicate_of") is None
               and r.get("accuracy") is not None and (r.get("epochs") or 0) > 0]
    best: dict[str, TrialRecord] = {}
    notes: dict[str, list[str]] = {b.name: [] for b in bands}
    floor: tuple[str, float] | None = None  # the most accurate smaller tier's member so far
    for b in bands:
        inside = sorted((r for r in trained if b.contains(_record_costs(r))),
                        key=lambda r: (-(r.accuracy or 0.0), r.macs))
        ranked = [r for r in inside if floor is None or (r.accuracy or 0.0) > floor[1]]
        if inside and not ranked:
            assert floor is not None
            notes[b.name].append(f"no trained design in its band is more accurate than tier {floor[0]}'s member "
                                 f"({_pct(floor[1])}; the band's best: trial {inside[0].number}, "
                                 f"{_pct(inside[0].accuracy)}), so a trained member would be beaten by a smaller one")
        elif not inside:
            notes[b.name].append("no design was trained in its band")
        pick, why = _pick(by_name[b.name], ranked, measure_fn if b.name in wanted else None, margin)
        notes[b.name] += why
        if pick is not None:
            best[b.name] = pick
            if floor is None or (pick.accuracy or 0.0) > floor[1]:
                floor = (b.name, pick.accuracy or 0.0)
    members = []
    for t in tiers:
        if t.name in best:
            m = _trained(t, best[t.name])
        else:
            i = order.index(t.name)
            donors = sorted((n for n in best), key=lambda n: (abs(order.index(n) - i), order.index(n) > i))
            try:
                m = _scaled(t, best[donors[0]], cost_fn)
                notes[t.name].append(f"scaled from tier {donors[0]}'s member instead (not trained)")
            except (IndexError, InputError):  # no member to scale, or none that reaches the tier
                m = choose_member(study_front(records, space, t), t, cost_fn, near=near)
        m.notes = list(notes.get(t.name, []))
        members.append(m)
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
