"""Rich tables the commands print."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from rich.markup import escape
from rich.table import Table

from nas.results.front import objective_spec, objective_values, sig3


def front_table(members: Sequence[Mapping[str, Any]], objectives: Iterable[Any], title: str | None = None) -> Table:
    """Front members: trial, objectives in readable units (bold), costs, genotype summary."""
    from nas.genotype import from_dict

    objs = objective_spec(objectives)
    table = Table(title=title, header_style="bold")
    rewards = [o for o in objs if o["metric"] == "reward"]  # computed from accuracy and a cost, not recorded
    for name in ("trial", "hash", *(["reward"] * len(rewards)), "acc.\n(%)", "MACs\n(M)", "params\n(M)",
                 "latency\n(ms)", "epochs"):
        table.add_column(name, justify="left" if name == "hash" else "right", no_wrap=True)
    table.add_column("architecture", overflow="fold", min_width=12)
    bold = {o["metric"] for o in objs}

    def cell(metric: str, text: str) -> str:
        return f"[bold]{text}[/bold]" if metric in bold else text

    for r in members:
        lat = r.get("latency_ms")
        try:
            summary = from_dict(r["genotype"]).summary()
        except Exception:  # a stored genotype this version cannot read still gets its row
            summary = "?"
        acc = r.get("accuracy")
        table.add_row(str(r.get("number")), str(r.get("hash", ""))[:8],  # short form; --json has it whole
                      *(cell("reward", f"{v:.4f}") for v in objective_values(r, rewards)),
                      cell("accuracy", "n/a" if acc is None else f"{100 * acc:.2f}"),
                      cell("macs", sig3(r["macs"] / 1e6)), cell("params", sig3(r["params"] / 1e6)),
                      cell("latency_ms", "n/a" if lat is None else sig3(lat)), str(r.get("epochs", "")),
                      escape(summary))
    return table
