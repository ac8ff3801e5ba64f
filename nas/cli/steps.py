"""Progress of a command that trains or measures many things one by one (``nas fidelity``, the test-split
evaluation of ``nas export-best`` and ``nas baselines``): a bar on a terminal, one flushed line per finished
step anywhere else (a pipe, a job log), where a live bar would show nothing until the end."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


class Steps:
    """``update(done, total, last)`` after each step; ``note(text)`` for a line above the bar."""

    def __init__(self, what: str, console: Console, *, disable: bool = False) -> None:
        self.what, self.console, self.disable = what, console, disable
        self.live = console.is_terminal and not disable
        cols = (TextColumn(f"[bold]{what}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                TextColumn("{task.fields[last]}"))
        self._prog: Progress | None = Progress(*cols, console=console) if self.live else None
        self._task = self._prog.add_task(what, total=None, last="") if self._prog else None
        self._started = False

    def start(self) -> None:
        if self._prog is not None and not self._started:
            self._prog.start()
            self._started = True

    def stop(self) -> None:
        if self._prog is not None and self._started:
            self._prog.stop()
            self._started = False

    def __enter__(self) -> Steps:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def update(self, done: int | None, total: int | None, last: str) -> None:
        if self._prog is not None:
            self.start()
            self._prog.update(self._task, completed=done or 0, total=total, last=last)
        elif not self.disable:
            count = f" {done}/{total}" if done is not None and total else ""
            self.console.print(f"{self.what}{count}: {last}", markup=False, highlight=False, soft_wrap=True)
            self.console.file.flush()

    def note(self, text: str) -> None:
        if not self.disable:
            self.console.print(f"note: {text}", markup=False, highlight=False, soft_wrap=True)
