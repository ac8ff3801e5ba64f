"""What ``nas export-best`` and ``nas baselines`` show of a test-split evaluation: its progress and its table."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from rich import box
from rich.table import Table

from nas.cli.common import err_console
from nas.cli.steps import Steps
from nas.results.front import sig3


@contextmanager
def final_progress(what: str) -> Iterator[Any]:
    """A progress bar on stderr for ``nas.export.final.run_final``; yields the callback to pass it. The bar
    appears with the first event, so a command that fails on its input before any training prints only the error."""
    steps = Steps(what, err_console)

    def on_event(e: Any) -> None:
        for note in e.notes:
            steps.note(note)
        if e.name is None:
            steps.update(0, e.total, f"{e.reused} run(s) already done, {e.total} to train")
            return
        steps.update(e.done, e.total,
                     f"{e.name} seed {e.seed}: {100 * e.test_accuracy:.2f}% test in {e.seconds:.0f} s")

    try:
        yield on_event
    finally:
        steps.stop()


def _pct(mean: float | None, std: float | None = None) -> str:
    if mean is None:
        return "n/a"
    return f"{100 * mean:.2f}" if std is None else f"{100 * mean:.2f} ± {100 * std:.2f}"


def references_table(refs: Sequence[Mapping[str, Any]], title: str) -> Table:
    """The references of ``baselines.json`` with their validation and test accuracy (%, test: mean ± std)."""
    table = Table(title=title, header_style="bold", box=box.SIMPLE_HEAD, pad_edge=False)
    for col in ("reference", "tier", "MACs M", "val. acc.", "test acc.", "seeds"):
        table.add_column(col, justify="left" if col in ("reference", "tier", "seeds") else "right", no_wrap=True)
    for r in refs:
        table.add_row(r["name"], r.get("tier") or "as given", sig3(r["macs"] / 1e6), _pct(r.get("accuracy")),
                      _pct(r.get("test_accuracy"), r.get("test_accuracy_std")),
                      ",".join(map(str, r.get("test_seeds") or ())))
    return table
