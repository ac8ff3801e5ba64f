"""What ``nas export-best`` and ``nas baselines`` show of a test-split evaluation: its progress and its table."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from rich import box
from rich.table import Table

from nas.cli.common import err_console
from nas.results.front import sig3


@contextmanager
def final_progress(what: str) -> Iterator[Any]:
    """A progress bar on stderr for ``nas.export.final.run_final``; yields the callback to pass it. The bar
    appears with the first event, so a command that fails on its input before any training prints only the error."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    cols = (TextColumn(f"[bold]{what}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            TextColumn("{task.fields[last]}"))
    prog = Progress(*cols, console=err_console)
    task = prog.add_task(what, total=None, last="")

    def on_event(e: Any) -> None:
        prog.start()
        for note in e.notes:
            prog.console.print(f"note: {note}", markup=False, highlight=False)
        if e.name is None:
            prog.update(task, total=e.total, last=f"{e.reused} run(s) already done, {e.total} to train")
            return
        prog.update(task, completed=e.done, total=e.total,
                    last=f"{e.name} seed {e.seed}: {100 * e.test_accuracy:.2f}% test in {e.seconds:.0f} s")

    try:
        yield on_event
    finally:
        prog.stop()


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
