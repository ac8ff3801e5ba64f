"""Pareto plots of a study on disk: ``pareto.html`` (plotly) and ``pareto.png`` (matplotlib).

Both show the same two panels, proxy accuracy against latency and against
MACs. In each panel the front is the two-objective one of that panel
(non-dominated in accuracy and that cost among feasible, fully trained
trials), drawn as a step line through its members: what a reader of the
figure can check by eye. Pruned trials are greyed (their accuracy is that of
a partial training); trials over a budget were never trained and sit as grey
crosses along the bottom of the panel at their cost; reference architectures
from ``baselines.json`` are black stars with their names.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nas.genotype import from_dict

FRONT_COLOR = "#d62728"
TRIAL_COLOR = "#1f77b4"
GREY = "#9a9a9a"


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


def is_feasible(r: dict) -> bool:
    return r.get("status") == "complete" and not any(v > 0 for v in (r.get("violations") or {}).values())


def front_2d(points: Sequence[tuple[float, float, Any]]) -> list[tuple[float, float, Any]]:
    """Non-dominated ``(cost, accuracy, item)``: lower cost, higher accuracy; ordered by cost."""
    out: list[tuple[float, float, Any]] = []
    for p in sorted(points, key=lambda p: (p[0], -p[1])):
        if not out or p[1] > out[-1][1]:
            out.append(p)
    return out


@dataclass
class _Groups:
    trained: list[dict]  # feasible, complete, with accuracy
    pruned: list[dict]
    infeasible: list[dict]
    baselines: list[dict]


def _groups(records: Sequence[dict], baselines: Sequence[dict]) -> _Groups:
    trained = [r for r in records if is_feasible(r) and r.get("accuracy") is not None]
    pruned = [r for r in records if r.get("status") == "pruned" and r.get("accuracy") is not None]
    infeasible = [r for r in records if r.get("status") == "infeasible"
                  or (r.get("status") == "complete" and not is_feasible(r))]
    return _Groups(trained, pruned, infeasible, [b for b in baselines if b.get("accuracy") is not None])


PRETTY = {"mixnet_s": "MixNet-S", "mixnet_m": "MixNet-M", "mixnet_l": "MixNet-L", "ghostnet_100": "GhostNet 1.0",
          "mobilenetv2_100": "MobileNetV2", "mobilenetv3_large_100": "MobileNetV3-L"}


def display_name(r: dict) -> str:
    name = r.get("name") or ""
    return PRETTY.get(name, name)


def _hover(r: dict) -> str:
    try:
        summary = from_dict(r["genotype"]).summary()
    except Exception:  # a hover is no place to fail a whole plot
        summary = "?"
    lat = latency(r)
    acc = r.get("accuracy")
    name = r.get("name") or f"trial {r.get('number')}"
    return "<br>".join([
        f"<b>{name}</b> ({r.get('status', 'reference')})",
        f"hash {r.get('hash', '')}",
        summary,
        f"params {r['params'] / 1e6:.2f} M, MACs {r['macs'] / 1e6:.1f} M",
        f"latency {'n/a' if lat is None else f'{lat:.2f} ms'}",
        f"accuracy {'not trained' if acc is None else f'{100 * acc:.2f} %'}",
    ])


def _active_panels(records: Sequence[dict], baselines: Sequence[dict]) -> tuple[Panel, ...]:
    """Drop the latency panel when nothing has a latency (no LUT): an empty panel tells nothing."""
    has_lat = any(latency(r) is not None for r in [*records, *baselines])
    return PANELS if has_lat else tuple(p for p in PANELS if p.key != "latency_ms")


def _acc_range(g: _Groups) -> tuple[float, float]:
    accs = [100 * r["accuracy"] for r in [*g.trained, *g.pruned, *g.baselines]]
    if not accs:
        return 0.0, 100.0
    lo, hi = min(accs), max(accs)
    pad = max(1.0, 0.08 * (hi - lo))
    return lo - 2 * pad, hi + pad


LOG_SPREAD = 12.0  # a cost axis spanning more than this ratio is drawn logarithmic (references far off)


@dataclass(frozen=True)
class _Axis:
    lo: float
    hi: float
    log: bool


def _x_axis(g: _Groups, panel: Panel, budget: float | None) -> _Axis | None:
    """Every point (the untrained rug too, which autoscaling ignores) and the budget line when it is close."""
    xs = [v for r in [*g.trained, *g.pruned, *g.infeasible, *g.baselines] if (v := value(r, panel)) is not None]
    if not xs:
        return None
    if budget and budget * panel.factor <= 3 * max(xs):
        xs.append(budget * panel.factor)
    lo, hi = min(xs), max(xs)
    if lo > 0 and hi / lo > LOG_SPREAD:
        pad = (hi / lo) ** 0.05
        return _Axis(lo / pad, hi * pad, True)
    span = (hi - lo) or hi or 1.0
    return _Axis(lo - 0.05 * span, hi + 0.05 * span, False)


def _log_ticks(lo: float, hi: float) -> list[float]:
    """1, 2, 5 x 10^k within ``[lo, hi]``: plotly's own log ticks label 0.5 as a bare "5"."""
    out = []
    for k in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1):
        out += [float(f"{m * 10.0**k:.6g}") for m in (1, 2, 5) if lo <= m * 10.0**k <= hi]
    return out


def load_baselines(study_dir: Path) -> list[dict]:
    p = Path(study_dir) / "baselines.json"
    if not p.exists():
        return []
    return list(json.loads(p.read_text()).get("references", []))


def _title(study: str, records: Sequence[dict], g: _Groups) -> str:
    return (f"{study}: {len(records)} trials ({len(g.trained)} trained, {len(g.pruned)} pruned, "
            f"{len(g.infeasible)} over budget)")


# -- plotly ------------------------------------------------------------------

def figure_html(records: Sequence[dict], baselines: Sequence[dict] = (), *, study: str = "study",
                budgets: dict[str, float] | None = None):
    """The interactive figure (a ``plotly.graph_objects.Figure``)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    g = _groups(records, baselines)
    panels = _active_panels(records, baselines)
    fig = make_subplots(rows=1, cols=len(panels), shared_yaxes=True, horizontal_spacing=0.05,
                        subplot_titles=[p.title for p in panels])
    lo, hi = _acc_range(g)
    floor = lo + 0.035 * (hi - lo)  # the same height as the PNG's rug of untrained trials

    shown: set[str] = set()

    def add(col: int, **kw: Any) -> None:
        # One legend entry per kind, from whichever panel first has it.
        group = kw["legendgroup"]
        fig.add_trace(go.Scatter(showlegend=group not in shown, **kw), row=1, col=col)
        shown.add(group)

    def scatter(rs, panel, col, **kw):
        pts = [(value(r, panel), r) for r in rs if value(r, panel) is not None]
        if pts:
            y = kw.pop("y", None)
            add(col, x=[x for x, _ in pts], y=y if y is not None else [100 * r["accuracy"] for _, r in pts],
                text=[_hover(r) for _, r in pts], hovertemplate="%{text}<extra></extra>", **kw)

    for col, panel in enumerate(panels, start=1):
        fr = front_2d([(value(r, panel), 100 * r["accuracy"], r) for r in g.trained if value(r, panel) is not None])
        on_front = {id(p[2]) for p in fr}
        scatter(g.infeasible, panel, col, y=[floor] * len(g.infeasible), mode="markers",
                name="over budget (not trained)", legendgroup="infeasible", legendrank=4,
                marker=dict(symbol="x-thin", size=9, line=dict(width=1.5, color=GREY), color=GREY))
        scatter(g.pruned, panel, col, mode="markers", name="pruned early (partial training)",
                legendgroup="pruned", legendrank=3,
                marker=dict(size=7, color="#d0d0d0", line=dict(width=0.5, color=GREY)))
        scatter([r for r in g.trained if id(r) not in on_front], panel, col, mode="markers", name="trial",
                legendgroup="trial", legendrank=2,
                marker=dict(size=8, color=TRIAL_COLOR, opacity=0.75, line=dict(width=0.5, color="white")))
        if fr:
            add(col, x=[p[0] for p in fr], y=[p[1] for p in fr], mode="lines+markers", line_shape="hv",
                name="Pareto front", legendgroup="front", legendrank=1, line=dict(color=FRONT_COLOR, width=2.5),
                marker=dict(size=11, color=FRONT_COLOR, line=dict(width=1.2, color="black")),
                text=[_hover(p[2]) for p in fr], hovertemplate="%{text}<extra></extra>")
        bl = [(value(b, panel), b) for b in g.baselines if value(b, panel) is not None]
        if bl:
            add(col, x=[x for x, _ in bl], y=[100 * b["accuracy"] for _, b in bl], mode="markers+text",
                name="reference", legendgroup="reference", legendrank=5,
                text=[display_name(b) for _, b in bl], textposition="top center", textfont=dict(size=12),
                customdata=[_hover(b) for _, b in bl], hovertemplate="%{customdata}<extra></extra>",
                marker=dict(symbol="star", size=14, color="black"))
        budget = (budgets or {}).get(panel.budget_key)
        xa = _x_axis(g, panel, budget)
        log = xa is not None and xa.log
        if xa is not None:  # plotly wants a log axis's range (and annotation x) in log10 units
            fig.update_xaxes(type="log" if log else "linear", row=1, col=col,
                             range=[math.log10(xa.lo), math.log10(xa.hi)] if log else [xa.lo, xa.hi])
            if log:
                ticks = _log_ticks(xa.lo, xa.hi)
                fig.update_xaxes(tickvals=ticks, ticktext=[f"{v:g}" for v in ticks], row=1, col=col)
        if budget:
            bx = budget * panel.factor
            fig.add_vline(x=bx, line=dict(color="#666666", dash="dash", width=2), row=1, col=col)
            fig.add_annotation(x=math.log10(bx) if log else bx, y=1, yref="y domain", text="budget", showarrow=False,
                               xanchor="left", yanchor="top", xshift=4, row=1, col=col)
        fig.update_xaxes(title_text=panel.label, row=1, col=col, showgrid=True, gridcolor="#e6e6e6",
                         ticks="outside", showline=True, linecolor="black", mirror=True)
    fig.update_yaxes(title_text="Proxy top-1 accuracy (%)", row=1, col=1)
    fig.update_yaxes(range=[lo, hi], showgrid=True, gridcolor="#e6e6e6", ticks="outside", showline=True,
                     linecolor="black", mirror=True)
    fig.update_layout(
        template="simple_white", font=dict(size=15, family="DejaVu Sans, Arial, sans-serif"),
        title=dict(text=_title(study, records, g), x=0.5, font=dict(size=17)),
        legend=dict(orientation="h", yanchor="top", y=-0.14, xanchor="center", x=0.5, itemsizing="constant"),
        height=640,
        hoverlabel=dict(font_size=13, align="left"), margin=dict(l=80, r=30, t=80, b=110),
    )
    return fig


def write_html(path: Path, records: Sequence[dict], baselines: Sequence[dict] = (), **kw: Any) -> Path:
    fig = figure_html(records, baselines, **kw)
    # Embedded plotly.js: the page must open offline (a cluster node, a laptop on a plane).
    fig.write_html(str(path), include_plotlyjs=True, full_html=True, config={"displaylogo": False})
    return Path(path)


# -- matplotlib --------------------------------------------------------------

def write_png(path: Path, records: Sequence[dict], baselines: Sequence[dict] = (), *, study: str = "study",
              budgets: dict[str, float] | None = None, dpi: int = 200) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker
    from matplotlib.transforms import blended_transform_factory

    g = _groups(records, baselines)
    panels = _active_panels(records, baselines)
    lo, hi = _acc_range(g)
    rc = {"font.size": 12, "axes.labelsize": 13, "axes.titlesize": 13, "legend.fontsize": 11,
          "xtick.labelsize": 11, "ytick.labelsize": 11, "font.family": "DejaVu Sans"}
    with plt.rc_context(rc):
        fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels) + 0.6, 4.6), sharey=True,
                                 squeeze=False, layout="constrained")
        labels: list[list[Any]] = []
        for ax, panel in zip(axes[0], panels, strict=True):
            def xy(rs, panel=panel):
                pts = [(value(r, panel), 100 * r["accuracy"]) for r in rs if value(r, panel) is not None]
                return [p[0] for p in pts], [p[1] for p in pts]

            xs = [value(r, panel) for r in g.infeasible if value(r, panel) is not None]
            if xs:
                bottom = blended_transform_factory(ax.transData, ax.transAxes)
                ax.scatter(xs, [0.035] * len(xs), transform=bottom, marker="x", s=28, color=GREY, linewidths=1.2,
                           label="over budget (not trained)", zorder=2, clip_on=False)
            x, y = xy(g.pruned)
            if x:
                ax.scatter(x, y, s=22, color="#d4d4d4", edgecolors=GREY, linewidths=0.5,
                           label="pruned early (partial training)", zorder=2)
            fr = front_2d([(value(r, panel), 100 * r["accuracy"], r) for r in g.trained
                           if value(r, panel) is not None])
            on_front = {id(p[2]) for p in fr}
            x, y = xy([r for r in g.trained if id(r) not in on_front])
            if x:
                ax.scatter(x, y, s=26, color=TRIAL_COLOR, alpha=0.7, edgecolors="white", linewidths=0.4,
                           label="trial", zorder=3)
            if fr:
                ax.plot([p[0] for p in fr], [p[1] for p in fr], drawstyle="steps-post", color=FRONT_COLOR, lw=2,
                        marker="o", ms=7.5, mfc=FRONT_COLOR, mec="black", mew=0.8, zorder=5, label="Pareto front")
            x, y = xy(g.baselines)
            if x:
                ax.scatter(x, y, s=150, marker="*", color="black", zorder=6, label="reference")
                names = [display_name(b) for b in g.baselines if value(b, panel) is not None]
                labels.append([ax.annotate(name, (xi, yi), textcoords="offset points", xytext=(0, -9), ha="center",
                                           va="top", fontsize=10, zorder=3.5,
                                           bbox=dict(boxstyle="round,pad=0.1", fc="white", ec="none", alpha=0.7))
                               for xi, yi, name in zip(x, y, names, strict=True)])
            budget = (budgets or {}).get(panel.budget_key)
            if budget:
                ax.axvline(budget * panel.factor, color=GREY, ls="--", lw=1.2, zorder=1)
                ax.annotate("budget", (budget * panel.factor, 0.98), xycoords=("data", "axes fraction"),
                            xytext=(4, 0), textcoords="offset points", va="top", fontsize=10, color="#555555")
            ax.set_xlabel(panel.label)
            ax.set_title(panel.title)
            ax.grid(True, color="#e6e6e6", lw=0.8, zorder=0)
            ax.set_axisbelow(True)
            ax.set_ylim(lo, hi)
            xa = _x_axis(g, panel, budget)
            if xa is not None:
                if xa.log:
                    ax.set_xscale("log")
                    ax.xaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
                    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
                    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
                ax.set_xlim(xa.lo, xa.hi)
        axes[0][0].set_ylabel("Proxy top-1 accuracy (%)")
        fig.canvas.draw()  # final positions, so the labels can be checked for overlaps
        for ax, texts in zip(axes[0], labels, strict=False):
            _untangle(ax, texts)
        entries: dict[str, Any] = {}  # one legend entry per kind, from whichever panel first has it
        for ax in axes[0]:
            for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
                entries.setdefault(lab, h)
        labels_ = sorted(entries, key=_LEGEND_ORDER.index)
        if labels_:  # none in a cost-only study (no accuracies to plot); an empty legend is an error
            fig.legend([entries[k] for k in labels_], labels_, loc="outside lower center",
                       ncol=len(labels_) if len(panels) > 1 else min(len(labels_), 3), frameon=False)
        fig.suptitle(_title(study, records, g), fontsize=12)
        fig.savefig(path, dpi=dpi)
        plt.close(fig)
    return Path(path)


_LABEL_SPOTS = (((0, -9), "center", "top"), ((0, 9), "center", "bottom"), ((6, -6), "left", "top"),
                ((-6, -6), "right", "top"), ((6, 6), "left", "bottom"), ((-6, 6), "right", "bottom"),
                ((10, 0), "left", "center"), ((-10, 0), "right", "center"))


def _untangle(ax: Any, texts: list[Any]) -> None:
    """Place each reference label at the first spot around its star that stays inside the axes and clear
    of the stars and of the labels already placed (under the star when that is free)."""
    from matplotlib.transforms import Bbox

    r = ax.figure.canvas.get_renderer()
    box = ax.get_window_extent(r)
    stars = [ax.transData.transform(t.xy) for t in texts]
    placed = [Bbox.from_extents(x - 7, y - 7, x + 7, y + 7) for x, y in stars]
    for t in texts:
        for xytext, ha, va in _LABEL_SPOTS:
            t.set_position(xytext)
            t.set_ha(ha)
            t.set_va(va)
            e = t.get_window_extent(r)
            inside = box.x0 <= e.x0 and e.x1 <= box.x1 and box.y0 <= e.y0 and e.y1 <= box.y1
            if inside and not any(e.overlaps(p) for p in placed):
                break
        else:
            t.set_position(_LABEL_SPOTS[0][0])
            t.set_ha(_LABEL_SPOTS[0][1])
            t.set_va(_LABEL_SPOTS[0][2])
        placed.append(t.get_window_extent(r))


_LEGEND_ORDER = ["Pareto front", "trial", "pruned early (partial training)", "over budget (not trained)", "reference"]


# -- both --------------------------------------------------------------------

def read_records(study_dir: Path) -> list[dict]:
    """Finished trials of a study (``trials.jsonl``); a torn last line (an append in progress, or a crash
    mid-write) is skipped, any other line that is not a record is an InputError naming the file and line."""
    from nas.search.study import read_records as read_trials

    return read_trials(Path(study_dir) / "trials.jsonl", skip_torn_tail=True)


def write_plots(study_dir: Path, records: Sequence[dict] | None = None, baselines: Sequence[dict] | None = None,
                budgets: dict[str, float] | None = None) -> tuple[Path, Path]:
    """Write ``pareto.html`` and ``pareto.png`` into ``study_dir``."""
    study_dir = Path(study_dir)
    records = read_records(study_dir) if records is None else list(records)
    baselines = load_baselines(study_dir) if baselines is None else list(baselines)
    kw = dict(study=study_dir.name, budgets=budgets)
    return (write_html(study_dir / "pareto.html", records, baselines, **kw),
            write_png(study_dir / "pareto.png", records, baselines, **kw))
