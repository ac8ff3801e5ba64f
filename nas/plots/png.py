"""The print figure: ``pareto.png`` (matplotlib)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nas.io import atomic_open
from nas.plots import panels as pn


def write_png(path: Path, records: Sequence[dict], baselines: Sequence[dict] = (), *, study: str = "study",
              budgets: dict[str, float] | None = None, dpi: int = 200) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker
    from matplotlib.transforms import blended_transform_factory

    g = pn.groups(records, baselines)
    panels = pn.active_panels(records, baselines)
    lo, hi = pn.acc_range(g)
    rc = {"font.size": 12, "axes.labelsize": 13, "axes.titlesize": 13, "legend.fontsize": 11,
          "xtick.labelsize": 11, "ytick.labelsize": 11, "font.family": "DejaVu Sans"}
    with plt.rc_context(rc):
        fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels) + 0.6, 4.6), sharey=True,
                                 squeeze=False, layout="constrained")
        labels: list[list[Any]] = []
        for ax, panel in zip(axes[0], panels, strict=True):
            def xy(rs, panel=panel):
                pts = [(pn.value(r, panel), 100 * r["accuracy"]) for r in rs if pn.value(r, panel) is not None]
                return [p[0] for p in pts], [p[1] for p in pts]

            bottom = blended_transform_factory(ax.transData, ax.transAxes)
            xs = [pn.value(r, panel) for r in g.infeasible if pn.value(r, panel) is not None]
            if xs:
                ax.scatter(xs, [0.035] * len(xs), transform=bottom, marker="x", s=28, color=pn.GREY, linewidths=1.2,
                           label=pn.OVER_LABEL, zorder=2, clip_on=False)
            xs = [pn.value(r, panel) for r in g.refused if pn.value(r, panel) is not None]
            if xs:
                ax.scatter(xs, [0.035] * len(xs), transform=bottom, marker="|", s=60, color=pn.REFUSED_COLOR,
                           linewidths=1.2, label=pn.REFUSED_LABEL, zorder=2, clip_on=False)
            x, y = xy(g.pruned)
            if x:
                ax.scatter(x, y, s=22, color="#d4d4d4", edgecolors=pn.GREY, linewidths=0.5,
                           label=pn.PRUNED_LABEL, zorder=2)
            fr = pn.front_2d([(pn.value(r, panel), 100 * r["accuracy"], r) for r in g.trained
                              if pn.value(r, panel) is not None])
            on_front = {id(p[2]) for p in fr}
            x, y = xy([r for r in g.trained if id(r) not in on_front])
            if x:
                ax.scatter(x, y, s=26, color=pn.TRIAL_COLOR, alpha=0.7, edgecolors="white", linewidths=0.4,
                           label="trial", zorder=3)
            if fr:
                ax.plot([p[0] for p in fr], [p[1] for p in fr], drawstyle="steps-post", color=pn.FRONT_COLOR, lw=2,
                        marker="o", ms=7.5, mfc=pn.FRONT_COLOR, mec="black", mew=0.8, zorder=5, label="Pareto front")
            x, y = xy(g.baselines)
            if x:
                ax.scatter(x, y, s=150, marker="*", color="black", zorder=6, label="reference")
                names = [pn.display_name(b) for b in g.baselines if pn.value(b, panel) is not None]
                labels.append([ax.annotate(name, (xi, yi), textcoords="offset points", xytext=(0, -9), ha="center",
                                           va="top", fontsize=10, zorder=3.5,
                                           bbox=dict(boxstyle="round,pad=0.1", fc="white", ec="none", alpha=0.7))
                               for xi, yi, name in zip(x, y, names, strict=True)])
            budget = (budgets or {}).get(panel.budget_key)
            if budget:
                ax.axvline(budget * panel.factor, color=pn.GREY, ls="--", lw=1.2, zorder=1)
                ax.annotate("budget", (budget * panel.factor, 0.98), xycoords=("data", "axes fraction"),
                            xytext=(4, 0), textcoords="offset points", va="top", fontsize=10, color="#555555")
            ax.set_xlabel(panel.label)
            ax.set_title(panel.title)
            ax.grid(True, color="#e6e6e6", lw=0.8, zorder=0)
            ax.set_axisbelow(True)
            ax.set_ylim(lo, hi)
            xa = pn.x_axis(g, panel, budget)
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
                       ncol=len(labels_) if len(panels) > 1 else 2, frameon=False)
        note = pn.note(g)
        fig.suptitle(pn.title(study, records, g) + (f"\n{note}" if note else ""), fontsize=12)
        with atomic_open(path, "wb") as f:
            # "tight": the saved canvas grows to hold the whole legend (one panel is narrower than its entries)
            fig.savefig(f, dpi=dpi, format="png", bbox_inches="tight", pad_inches=0.08)
        plt.close(fig)
    return Path(path)


_LABEL_SPOTS = (((0, -9), "center", "top"), ((0, 9), "center", "bottom"), ((6, -6), "left", "top"),
                ((-6, -6), "right", "top"), ((6, 6), "left", "bottom"), ((-6, 6), "right", "bottom"),
                ((10, 0), "left", "center"), ((-10, 0), "right", "center"))


def _untangle(ax: Any, texts: list[Any]) -> None:
    """Place each reference label at the first spot around its star that stays inside the axes and clear
    of the stars, the labels already placed and the other markers (under the star when that is free)."""
    from matplotlib.transforms import Bbox

    r = ax.figure.canvas.get_renderer()
    box = ax.get_window_extent(r)
    stars = [ax.transData.transform(t.xy) for t in texts]
    placed = [Bbox.from_extents(x - 7, y - 7, x + 7, y + 7) for x, y in stars]
    points = [xy for c in ax.collections for xy in c.get_offset_transform().transform(c.get_offsets())]
    points += [xy for line in ax.lines if line.get_marker() not in (None, "None", "")
               for xy in ax.transData.transform(line.get_xydata())]
    placed += [Bbox.from_extents(x - 4, y - 4, x + 4, y + 4) for x, y in points]
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


_LEGEND_ORDER = ["Pareto front", "trial", pn.PRUNED_LABEL, pn.OVER_LABEL, pn.REFUSED_LABEL, "reference"]
