"""Family tiers: limits on the target network's costs, from the space's ``family:`` section or ``--tier-budget``."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from nas.errors import InputError, OptionError
from nas.results.record import COST_METRICS

#: A front architecture is *near* a tier when it uses at least ``1 - NEAR`` of one of its limits.
NEAR = 0.15


@dataclass(frozen=True)
class Tier:
    name: str
    limits: dict[str, float]  # metric -> budget of the target network

    def within(self, costs: dict[str, float | None]) -> bool:
        return all(costs.get(m) is not None and costs[m] <= b for m, b in self.limits.items())

    def near(self, costs: dict[str, float | None], tol: float = NEAR) -> bool:
        return self.within(costs) and any(costs[m] >= (1 - tol) * b for m, b in self.limits.items())

    def distance(self, costs: dict[str, float | None]) -> float:
        return max(abs(math.log(max(costs[m], 1e-12) / b)) if costs.get(m) is not None else math.inf
                   for m, b in self.limits.items())

    def describe(self) -> str:
        return ", ".join(fmt_limit(m, b) for m, b in self.limits.items())


def fmt_limit(metric: str, v: float) -> str:
    if metric == "latency_ms":
        return f"latency <= {v:g} ms"
    return f"{metric} <= {v / 1e6:g}M"


_FIELD = "tier_budget"
_UNITS = {"": 1.0, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9}


def _parse_budget(tier: str, text: str) -> tuple[str, float]:
    """``250e6``/``250M`` (MACs), ``12ms`` (latency), ``params:5M``, ``macs:250M``, ``latency_ms:12``."""
    t = text.strip()
    metric = None
    if ":" in t:
        metric, t = (s.strip() for s in t.split(":", 1))
        if metric not in COST_METRICS:
            raise OptionError(_FIELD, f"{tier}: unknown metric {metric!r} (known: {', '.join(COST_METRICS)})")
    if t.endswith("ms"):
        if metric not in (None, "latency_ms"):
            raise OptionError(_FIELD, f"{tier}: 'ms' is a latency, not {metric}")
        metric, t = "latency_ms", t[:-2]
    unit = t[-1:] if t[-1:] in ("k", "K", "M", "G") else ""
    try:
        v = float(t[: len(t) - len(unit)]) * _UNITS[unit]
    except ValueError:
        raise OptionError(_FIELD, f"{tier}: expected a budget such as 250e6, 250M or 12ms, got {text!r}") from None
    if not v > 0 or not math.isfinite(v):
        raise OptionError(_FIELD, f"{tier}: budget must be a positive number, got {text!r}")
    return metric or "macs", v


def parse_tier_budgets(text: str) -> dict[str, Tier]:
    """``"s=250e6,m=360M,l=12ms"`` -> tiers; ``s=250e6+params:5M`` gives a tier two limits.

    A bad one is an :class:`~nas.errors.OptionError` of the option ``tier_budget``."""
    tiers: dict[str, Tier] = {}
    for item in filter(None, (s.strip() for s in text.split(","))):
        name, sep, rhs = item.partition("=")
        name = name.strip()
        if not sep or not name or not rhs.strip():
            raise OptionError(_FIELD, f"{item!r}: expected NAME=BUDGET, e.g. s=250e6 or m=12ms")
        limits = dict(_parse_budget(name, part) for part in rhs.split("+"))
        tiers[name] = Tier(name, limits)
    if not tiers:
        raise OptionError(_FIELD, f"expected NAME=BUDGET[,NAME=BUDGET...], got {text!r}")
    return tiers


def space_tiers(space: Any) -> dict[str, Tier]:
    tiers = {}
    for name, t in (getattr(space, "family", None) or {}).items():
        limits = {m: float(getattr(t, m)) for m in COST_METRICS if getattr(t, m, None) is not None}
        if limits:
            tiers[name] = Tier(name, limits)
    return tiers


def select_tiers(space: Any, names: Sequence[str] | None = None, budgets: str | None = None,
                 source: str = "<space>") -> list[Tier]:
    """The tiers to export: the space's family, overridden/extended by ``--tier-budget``, filtered by ``--tiers``."""
    tiers = space_tiers(space)
    if budgets:
        tiers.update(parse_tier_budgets(budgets))
    if names:
        missing = [n for n in names if n not in tiers]
        if missing:
            known = ", ".join(tiers) or "none"
            raise InputError(f"{source}: family.{missing[0]}: no such tier (declared: {known}); "
                             f"give its budget with --tier-budget {missing[0]}=250e6")
        tiers = {n: tiers[n] for n in names}
    if not tiers:
        raise InputError(f"{source}: family: no tiers declared; add a family section "
                         "({s: {macs: 250e6}, ...}) or pass --tier-budget s=250e6,m=360e6")
    return list(tiers.values())
