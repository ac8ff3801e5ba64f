"""Rich tables the commands print."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from rich import box
from rich.console import Console, Group, RenderableType
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from nas.results.front import objective_spec, objective_values, sig3


def arch_summary(genotype: Mapping[str, Any]) -> str:
    """The one-line summary (:meth:`nas.genotype.Genotype.summary`) of a stored genotype, ``?`` if unreadable."""
    from nas.genotype import from_dict

    try:
        return from_dict(genotype).summary()
    except Exception:  # a stored genotype this version cannot read still gets its row
        return "?"


def front_table(members: Sequence[Mapping[str, Any]], objectives: Iterable[Any], title: str | None = None,
                width: int | None = None) -> RenderableType:
    """Front members: trial, rewards (when an objective is one), objectives in readable units (bold), costs,
    architecture summary. ``width``: the console's (see :func:`arch_table`)."""
    objs = objective_spec(objectives)
    rewards = [o for o in objs if o["metric"] == "reward"]  # computed from accuracy and a cost, not recorded
    scored = any(o["metric"] == "score" for o in objs)  # a training-free score in place of accuracy
    bold = {o["metric"] for o in objs}

    def cell(metric: str, text: str) -> str:
        return f"[bold]{text}[/bold]" if metric in bold else text

    rows = []
    for r in members:
        lat, acc = r.get("latency_ms"), r.get("accuracy")
        rows.append(([str(r.get("number")), str(r.get("hash", ""))[:8],  # short form; --json has it whole
                      *(cell("reward", f"{v:.4f}") for v in objective_values(r, rewards)),
                      *([cell("score", f"{r.get('score'):.4g}")] if scored else
                        [cell("accuracy", "n/a" if acc is None else f"{100 * acc:.2f}")]),
                      cell("macs", sig3(r["macs"] / 1e6)), cell("params", sig3(r["params"] / 1e6)),
                      cell("latency_ms", "n/a" if lat is None else sig3(lat)), str(r.get("epochs", ""))],
                     arch_summary(r["genotype"])))
    columns = ["trial", "hash", *(["reward"] * len(rewards)), "score" if scored else "acc. %", "MACs M", "params M",
               "lat. ms", "ep."]
    return arch_table(columns, rows, title, width)


def arch_table(columns: Sequence[str], rows: Sequence[tuple[Sequence[str], str]], title: str | None = None,
               width: int | None = None, left: Sequence[str] = ("hash",)) -> RenderableType:
    """A table of ``(cells, architecture summary)`` rows whose every row stays on one line at ``width``.

    The summaries are its last column when they fit; otherwise they are listed under the table, each after
    its row's first cell (no width: always the column). ``left``: the columns aligned left (numbers right)."""
    def make(arch: bool) -> Table:
        table = Table(title=title, header_style="bold", box=box.SIMPLE_HEAD, pad_edge=False)
        for name in [*columns, "architecture"][:len(columns) + arch]:
            table.add_column(name, justify="left" if name in (*left, "architecture") else "right", no_wrap=True)
        for cells, summary in rows:
            table.add_row(*cells, *[escape(summary)][:arch])
        return table

    if width is None or Console(width=10_000).measure(make(True)).maximum <= width:
        return make(True)
    key = max([len(columns[0]), *(len(c[0]) for c, _ in rows)])
    align = "<" if columns[0] in left else ">"
    lines = [Text(f"{c[0]:{align}{key}}  {s}", no_wrap=True, overflow="ellipsis") for c, s in rows]
    return Group(make(False), Text(f"{columns[0]:{align}{key}}  architecture", style="bold"), *lines)


def hypervolume_text(hv: float, objectives: Iterable[Any], reference: Sequence[float] | None) -> str:
    """``hypervolume 0.312 (reference point: accuracy 0, macs 1M; axes divided by the reference's nonzero
    values)``: a hypervolume means nothing without the point it is measured from."""
    if reference is None:
        return f"hypervolume {hv:.4g}"
    objs = objective_spec(objectives)
    point = ", ".join(f"{o['metric']} {_ref_value(o['metric'], v)}" for o, v in zip(objs, reference, strict=False))
    return f"hypervolume {hv:.4g} (reference point: {point}; each axis divided by its nonzero reference value)"


def _ref_value(metric: str, v: float) -> str:
    if metric in ("macs", "params") and abs(v) >= 1e3:
        return f"{sig3(v / 1e6)}M"
    if metric == "latency_ms":
        return f"{sig3(v)} ms"
    return f"{v:g}"
