"""The interactive figure: ``pareto.html`` (plotly), with plotly.js beside it so that it opens offline.

plotly.js is 99% of a self-contained page (4.8 MB of a 4.8 MB ``pareto.html``), so the page loads it from
``plotly.min.js`` in the same directory, written once per study directory (and again only when the installed
plotly's copy differs): the page stays small, opens from disk without a network, and the study directory
moves or syncs as one piece. A copy of the page alone elsewhere needs ``plotly.min.js`` next to it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nas.io import atomic_write
from nas.plots.panels import (
    FRONT_COLOR,
    GREY,
    OVER_LABEL,
    PRUNED_LABEL,
    REFUSED_COLOR,
    REFUSED_LABEL,
    TRIAL_COLOR,
    acc_range,
    active_panels,
    display_name,
    front_2d,
    groups,
    hover,
    log_ticks,
    note,
    title,
    value,
    x_axis,
)


def figure_html(records: Sequence[dict], baselines: Sequence[dict] = (), *, study: str = "study",
                budgets: dict[str, float] | None = None):
    """The interactive figure (a ``plotly.graph_objects.Figure``)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    g = groups(records, baselines)
    panels = active_panels(records, baselines)
    fig = make_subplots(rows=1, cols=len(panels), shared_yaxes=True, horizontal_spacing=0.05,
                        subplot_titles=[p.title for p in panels])
    lo, hi = acc_range(g)
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
                text=[hover(r) for _, r in pts], hovertemplate="%{text}<extra></extra>", **kw)

    for col, panel in enumerate(panels, start=1):
        fr = front_2d([(value(r, panel), 100 * r["accuracy"], r) for r in g.trained if value(r, panel) is not None])
        on_front = {id(p[2]) for p in fr}
        scatter(g.infeasible, panel, col, y=[floor] * len(g.infeasible), mode="markers",
                name=OVER_LABEL, legendgroup="infeasible", legendrank=4,
                marker=dict(symbol="x-thin", size=9, line=dict(width=1.5, color=GREY), color=GREY))
        scatter(g.refused, panel, col, y=[floor] * len(g.refused), mode="markers",
                name=REFUSED_LABEL, legendgroup="refused", legendrank=5,
                marker=dict(symbol="line-ns", size=10, line=dict(width=1.5, color=REFUSED_COLOR), color=REFUSED_COLOR))
        scatter(g.pruned, panel, col, mode="markers", name=PRUNED_LABEL,
                legendgroup="pruned", legendrank=3,
                marker=dict(size=7, color="#d0d0d0", line=dict(width=0.5, color=GREY)))
        scatter([r for r in g.trained if id(r) not in on_front], panel, col, mode="markers", name="trial",
                legendgroup="trial", legendrank=2,
                marker=dict(size=8, color=TRIAL_COLOR, opacity=0.75, line=dict(width=0.5, color="white")))
        if fr:
            add(col, x=[p[0] for p in fr], y=[p[1] for p in fr], mode="lines+markers", line_shape="hv",
                name="Pareto front", legendgroup="front", legendrank=1, line=dict(color=FRONT_COLOR, width=2.5),
                marker=dict(size=11, color=FRONT_COLOR, line=dict(width=1.2, color="black")),
                text=[hover(p[2]) for p in fr], hovertemplate="%{text}<extra></extra>")
        bl = [(value(b, panel), b) for b in g.baselines if value(b, panel) is not None]
        if bl:
            add(col, x=[x for x, _ in bl], y=[100 * b["accuracy"] for _, b in bl], mode="markers+text",
                name="reference", legendgroup="reference", legendrank=6,
                text=[display_name(b) for _, b in bl], textposition="top center", textfont=dict(size=12),
                customdata=[hover(b) for _, b in bl], hovertemplate="%{customdata}<extra></extra>",
                marker=dict(symbol="star", size=14, color="black"))
        budget = (budgets or {}).get(panel.budget_key)
        xa = x_axis(g, panel, budget)
        log = xa is not None and xa.log
        if xa is not None:  # plotly wants a log axis's range (and annotation x) in log10 units
            fig.update_xaxes(type="log" if log else "linear", row=1, col=col,
                             range=[math.log10(xa.lo), math.log10(xa.hi)] if log else [xa.lo, xa.hi])
            if log:
                ticks = log_ticks(xa.lo, xa.hi)
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
        title=dict(text=title(study, records, g) + (f"<br><sup>{n}</sup>" if (n := note(g)) else ""), x=0.5,
                   font=dict(size=17)),
        legend=dict(orientation="h", yanchor="top", y=-0.14, xanchor="center", x=0.5, itemsizing="constant"),
        height=640,
        hoverlabel=dict(font_size=13, align="left"), margin=dict(l=80, r=30, t=100 if note(g) else 80, b=110),
    )
    return fig


PLOTLY_JS = "plotly.min.js"


def write_html(path: Path, records: Sequence[dict], baselines: Sequence[dict] = (), **kw: Any) -> Path:
    """``pareto.html`` and, beside it, :data:`PLOTLY_JS` (see the module docstring)."""
    path = Path(path)
    fig = figure_html(records, baselines, **kw)
    write_plotly_js(path.parent)
    return atomic_write(path, fig.to_html(include_plotlyjs=PLOTLY_JS, full_html=True, config={"displaylogo": False}))


def write_plotly_js(directory: Path) -> Path:
    """The installed plotly's ``plotly.min.js`` in ``directory``, unless the same file is already there."""
    from plotly.offline import get_plotlyjs

    js = get_plotlyjs().encode()
    p = Path(directory) / PLOTLY_JS
    try:
        with open(p, "rb") as f:
            same = p.stat().st_size == len(js) and f.read(512) == js[:512]  # the head names plotly.js's version
    except OSError:
        same = False
    return p if same else atomic_write(p, js)
