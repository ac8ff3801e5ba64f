"""What both figures show: the panels, the groups of points, the axes and the hover text.

Points are trial records (:class:`~nas.results.record.TrialRecord`) and reference architectures (the
``baselines.json`` entries), read alike as mappings.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from nas.genotype import from_dict
from nas.results.front import is_feasible
from nas.results.record import is_trial, state_text

FRONT_COLOR = "#d62728"
TRIAL_COLOR = "#1f77b4"
GREY = "#9a9a9a"
REFUSED_COLOR = "#8c6bb1"  # refused for the tier: not grey like over budget, a different state
PRUNED_LABEL = "stopped early (partial training)"


@dataclass(frozen=True)
class Panel:
    key: str  # record field
    label: str  # axis title, with unit
    title: str
    factor: float  # record value * factor = plotted value
    budget_key: str  # violation / budget name in the space


PANELS = (
    Panel("latency_ms", "Latency (ms)", "Accuracy vs latency", 1.0, "latency_ms"),
    Panel("macs", "MACs (M)", "Accuracy vs MACs", 1e-6, "macs"),
)


def latency(r: dict) -> float | None:
    """Predicted latency, else measured: the one number a plot can place a trial at."""
    v = r.get("latency_ms")
    return v if v is not None else r.get("latency_ms_measured")


def value(r: dict, panel: Panel) -> float | None:
    v = latency(r) if panel.key == "latency_ms" else r.get(panel.key)
    return None if v is None else v * panel.factor


def front_2d(points: Sequence[tuple[float, float, Any]]) -> list[tuple[float, float, Any]]:
    """Non-dominated ``(cost, accuracy, item)``: lower cost, higher accuracy; ordered by cost."""
    out: list[tuple[float, float, Any]] = []
    for p in sorted(points, key=lambda p: (p[0], -p[1])):
        if not out or p[1] > out[-1][1]:
            out.append(p)
    return out


@dataclass
class Groups:
    trained: list[dict]  # feasible, complete, with accuracy
    pruned: list[dict]
    infeasible: list[dict]  # over a budget, never trained
    refused: list[dict]  # refused for their tier (spreading over the family's tiers), never trained, within budget
    baselines: list[dict]  # with ``short`` set on those trained for fewer epochs than the trials
    trial_epochs: int | None = None  # the epochs of the fully trained trials


def groups(records: Sequence[dict], baselines: Sequence[dict]) -> Groups:
    trained = [r for r in records if is_feasible(r) and r.get("accuracy") is not None]
    pruned = [r for r in records if r.get("status") == "pruned" and r.get("accuracy") is not None]
    refused = [r for r in records if _refused(r)]
    infeasible = [r for r in records if not _refused(r) and (r.get("status") == "infeasible"
                  or (r.get("status") == "complete" and not is_feasible(r)))]
    epochs = max((r.get("epochs") or 0 for r in trained if not r.get("duplicate_of")), default=0) or None
    refs = [{**b, "short": bool(epochs and b.get("epochs") and b["epochs"] < epochs)}
            for b in baselines if b.get("accuracy") is not None]
    return Groups(trained, pruned, infeasible, refused, refs, epochs)


def _refused(r: dict) -> bool:
    # "refused", or a record written before that status existed: "infeasible" for the tier alone
    v = r.get("violations") or {}
    return r.get("status") == "refused" or (r.get("status") == "infeasible" and v.get("tier", 0) > 0
                                            and all(x <= 0 for m, x in v.items() if m != "tier"))


#: The legend labels of the two kinds of untrained proposals, the words of ``nas.results.record.STATE_WORDS``.
OVER_LABEL = "over budget (not trained)"
REFUSED_LABEL = "refused for its tier (not trained)"


PRETTY = {"mixnet_s": "MixNet-S", "mixnet_m": "MixNet-M", "mixnet_l": "MixNet-L", "ghostnet_100": "GhostNet 1.0",
          "mobilenetv2_100": "MobileNetV2", "mobilenetv3_large_100": "MobileNetV3-L"}


def display_name(r: dict) -> str:
    """A reference's name as printed; ``(2 ep)`` after one trained for fewer epochs than the trials."""
    name = r.get("name") or ""
    if r.get("tier") is not None and r.get("reference") in PRETTY:  # scaled to a tier's budget by `nas baselines`
        name = f"{PRETTY[r['reference']]} x{r.get('width', 1.0):g}"
    return PRETTY.get(name, name) + (f" ({r['epochs']} ep)" if r.get("short") else "")


def hover(r: dict) -> str:
    try:
        summary = from_dict(r["genotype"]).summary()
    except Exception:  # a hover is no place to fail a whole plot
        summary = "?"
    lat = latency(r)
    acc = r.get("accuracy")
    name = r.get("name") or f"trial {r.get('number')}"
    return "<br>".join([
        f"<b>{name}</b> ({state_text(r) if r.get('status') else 'reference'})",
        f"hash {r.get('hash', '')}",
        summary,
        f"params {r['params'] / 1e6:.2f} M, MACs {r['macs'] / 1e6:.1f} M",
        f"latency {'n/a' if lat is None else f'{lat:.2f} ms'}",
        f"accuracy {'not trained' if acc is None else f'{100 * acc:.2f} %'}",
    ])


def active_panels(records: Sequence[dict], baselines: Sequence[dict]) -> tuple[Panel, ...]:
    """Drop the latency panel when nothing has a latency (no LUT): an empty panel tells nothing."""
    has_lat = any(latency(r) is not None for r in [*records, *baselines])
    return PANELS if has_lat else tuple(p for p in PANELS if p.key != "latency_ms")


def acc_range(g: Groups) -> tuple[float, float]:
    accs = [100 * r["accuracy"] for r in [*g.trained, *g.pruned, *g.baselines]]
    if not accs:
        return 0.0, 100.0
    lo, hi = min(accs), max(accs)
    pad = max(1.0, 0.08 * (hi - lo))
    return lo - 2 * pad, hi + pad


LOG_SPREAD = 12.0  # a cost axis spanning more than this ratio is drawn logarithmic (references far off)


@dataclass(frozen=True)
class Axis:
    lo: float
    hi: float
    log: bool


def x_axis(g: Groups, panel: Panel, budget: float | None) -> Axis | None:
    """Every point (the untrained rug too, which autoscaling ignores) and the budget line when it is close."""
    points = [*g.trained, *g.pruned, *g.infeasible, *g.refused, *g.baselines]
    xs = [v for r in points if (v := value(r, panel)) is not None]
    if not xs:
        return None
    if budget and budget * panel.factor <= 3 * max(xs):
        xs.append(budget * panel.factor)
    lo, hi = min(xs), max(xs)
    if lo > 0 and hi / lo > LOG_SPREAD:
        pad = (hi / lo) ** 0.05
        return Axis(lo / pad, hi * pad, True)
    span = (hi - lo) or hi or 1.0
    return Axis(lo - 0.05 * span, hi + 0.05 * span, False)


def log_ticks(lo: float, hi: float) -> list[float]:
    """1, 2, 5 x 10^k within ``[lo, hi]``: plotly's own log ticks label 0.5 as a bare "5"."""
    out = []
    for k in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1):
        out += [float(f"{m * 10.0**k:.6g}") for m in (1, 2, 5) if lo <= m * 10.0**k <= hi]
    return out


def title(study: str, records: Sequence[dict], g: Groups) -> str:
    # pruned trials are trained ones stopped early: counted among the trained, as the progress line does; refusals
    # and screened-out proposals are not among the study's trials, nor over-budget ones of a search that screens
    # (nas.search.searcher.uncounted)
    screened = sum(1 for r in records if r.get("status") == "screened")
    counted = sum(is_trial(r, screened > 0) for r in records)
    text = (f"{study}: {counted} trials, {len(g.trained) + len(g.pruned)} trained ({len(g.pruned)} stopped "
            f"early), {len(g.infeasible)} over budget")
    text += f"; {screened} screened out by a training-free score" if screened else ""
    return text + (f"; {len(g.refused)} proposals refused for their tier" if g.refused else "")


def note(g: Groups) -> str:
    """The caveat under the title when references were trained for fewer epochs than the trials (else empty):
    their accuracy is lower for that alone, so the figure says so instead of drawing them as equals."""
    if not any(b["short"] for b in g.baselines):
        return ""
    return f"references marked (n ep) were trained for n epochs, the trials for {g.trial_epochs}: not comparable"
