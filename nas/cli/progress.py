"""The progress view of ``nas search``: a rich progress bar fed as a search listener."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from nas.search.events import SearchInfo, SearchListener, SearchSummary


class ProgressView(SearchListener):
    """Trials finished out of the study's target, what is running, the status counts, the front and hypervolume."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._progress: Progress | None = None
        self._task: Any = None
        self._book: Any = None
        self._running = 0

    def search_started(self, info: SearchInfo) -> None:
        self._book = info.book
        if info.resumed:
            self.message(f"resuming {info.study_dir}: {len(info.book.records)} trials recorded, {info.requeued} "
                         f"interrupted re-queued, {info.repaired} repaired from trials.jsonl")
        self._progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(bar_width=20),
                                  MofNCompleteColumn(), TextColumn("{task.fields[stats]}"), TimeElapsedColumn(),
                                  console=self.console, transient=False)
        self._task = self._progress.add_task(info.study, total=info.settings.trials,
                                             completed=len(info.book.records), stats=self._stats())
        self._progress.start()

    def trial_started(self, number: int, genotype: Any) -> None:
        self._running += 1
        self._show()

    def trial_finished(self, record: Any) -> None:
        if record.trained and self._running > 0:
            self._running -= 1
        self._show()

    def message(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False)

    def search_finished(self, summary: SearchSummary) -> None:
        if self._progress is not None:
            self._show()
            self._progress.stop()
            self._progress = None

    def _stats(self) -> str:
        c, b = self._book.counts, self._book
        feasible = c["complete"] + c["pruned"] + c["failed"]
        return (f"run {self._running} feasible {feasible} pruned {c['pruned']} failed {c['failed']} "
                f"infeasible {c['infeasible']} dup {c['duplicate']} | front {len(b.front)} HV {b.hypervolume:.3f}")

    def _show(self) -> None:
        if self._progress is not None:
            self._progress.update(self._task, completed=len(self._book.records), stats=self._stats())


class QuietView(SearchListener):
    """``--quiet``: no bar and no table, but what the search has to say (the storage still being saved after a
    long run, a repaired study) as plain lines on stderr."""

    def __init__(self, console: Console) -> None:
        self.console = console

    def message(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False)
