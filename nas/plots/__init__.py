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
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from nas.plots.html import figure_html, write_html
from nas.plots.panels import PANELS, Panel, display_name, front_2d, latency, value
from nas.plots.png import write_png
from nas.results.store import load_baselines, study_records

__all__ = ["PANELS", "Panel", "display_name", "figure_html", "front_2d", "latency", "study_name", "value",
           "write_html", "write_plots", "write_png"]


def write_plots(study_dir: Path, records: Sequence[Mapping[str, Any]] | None = None,
                baselines: Sequence[dict] | None = None, budgets: dict[str, float] | None = None,
                study: str | None = None) -> tuple[Path, Path]:
    """Write ``pareto.html`` (with ``plotly.min.js`` beside it) and ``pareto.png`` into ``study_dir``.

    ``study``: the name in the titles (default: the study's, from ``pareto.json``, else the directory's)."""
    study_dir = Path(study_dir)
    records = study_records(study_dir) if records is None else list(records)
    baselines = load_baselines(study_dir) if baselines is None else list(baselines)
    kw = dict(study=study or study_name(study_dir), budgets=budgets)
    return (write_html(study_dir / "pareto.html", records, baselines, **kw),
            write_png(study_dir / "pareto.png", records, baselines, **kw))


def study_name(study_dir: Path) -> str:
    """The study's name as its search recorded it in ``pareto.json``; the directory's name without one."""
    try:
        name = json.loads((Path(study_dir) / "pareto.json").read_text()).get("study")
    except (OSError, ValueError, AttributeError):
        name = None
    return name if isinstance(name, str) and name else Path(study_dir).name
