"""The progress view of ``nas search``, a search listener: a live bar on a terminal, flushed log lines elsewhere.

On a terminal: one line with the study, the bar, finished/target trials and the elapsed time (it fits 80
columns), and under it the tally (``trained 10 (6 pruned) | over budget 3 | ...``) and the front.

Anywhere else (a pipe, ``| tee``, SLURM and Kubernetes logs), where a live bar shows nothing until the end:
one line per finished trial, flushed as it finishes, and a heartbeat line when nothing was printed for
``heartbeat_s`` seconds (long trials), saying what runs and its last epoch.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from nas.results.front import sig3
from nas.results.record import STATE_WORDS, is_trial, state_text
from nas.search.events import SearchInfo, SearchListener, SearchSummary
from nas.search.searcher import tier_rejected

HEARTBEAT_S = 60.0


class Tally:
    """What the progress line counts, kept as trials finish (the book's own counts mix trained and answered)."""

    def __init__(self, records: Iterable[Any] = (), screening: bool = False) -> None:
        self.screening = screening  # over-budget proposals are not the study's trials then (nas.search.searcher)
        self.finished = self.trained = self.pruned = self.failed = self.over = self.dup = self.costed = 0
        self.looked = 0  # accuracy looked up in a published table (nas.tables), nothing trained
        self.score_only = 0  # a training-free score in place of accuracy (proxy kind score), nothing trained
        self.tier = 0  # proposals turned away to spread trials over the family's tiers (not counted trials)
        self.screened = self.scored = 0  # proposals judged by a training-free score, and those screened out
        for r in records:
            self.add(r)

    def add(self, r: Any) -> None:
        self.scored += (r.get("screen") or {}).get("value") is not None
        if r.get("status") == "screened":
            self.screened += 1
            return
        if tier_rejected(r):
            self.tier += 1
            return
        self.over += r.status == "infeasible"
        if not is_trial(r, self.screening):
            return
        self.finished += 1
        self.dup += r.duplicate_of is not None
        if r.trained and (r.get("evaluator") or "").startswith("score:"):
            self.score_only += 1
        elif r.trained and (r.get("evaluator") or "").startswith("table:"):
            self.looked += 1
        elif r.trained:
            self.trained += 1
            self.pruned += r.status == "pruned"
            self.failed += r.status == "failed"
        elif r.duplicate_of is None and r.status == "complete":
            self.costed += 1  # cost-only mode: complete on its costs, never trained

    def line(self, running: int, front_size: int, hypervolume: float) -> str:
        """``trained 10 (6 pruned) | over budget 3 | dup 1 | running 2 | front 4, HV 0.312``: pruned and failed
        trials are trained ones stopped early or broken, so they read as a part of the trained count."""
        sub = ", ".join(f"{n} {w}" for n, w in ((self.pruned, "pruned"), (self.failed, "failed")) if n)
        parts = [f"costed {self.costed}" if self.costed and not self.trained else
                 f"looked up {self.looked}" if self.looked and not self.trained else
                 f"scored without training {self.score_only}" if self.score_only and not self.trained else
                 f"trained {self.trained}" + (f" ({sub})" if sub else "")]
        if self.scored:  # screening: proposals judged by a training-free score before the best was trained
            parts.insert(0, f"scored {self.scored}")
        parts += [f"{w} {n}" for w, n in (("screened out", self.screened), ("over budget", self.over),
                                          ("dup", self.dup), ("refused for their tier", self.tier)) if n]
        if running:
            parts.append(f"running {running}")
        parts.append(f"front {front_size}, HV {hypervolume:.3f}")
        return " | ".join(parts)


class ProgressView(SearchListener):
    """Trials finished out of the study's target, what is running, the tally, the front and hypervolume."""

    def __init__(self, console: Console, heartbeat_s: float = HEARTBEAT_S) -> None:
        self.console = console
        self.heartbeat_s = heartbeat_s
        self.live = console.is_terminal
        self._progress: Progress | None = None
        self._task: Any = None
        self._book: Any = None
        self._tally = Tally()
        self._target = 0
        self._running: dict[int, str] = {}  # trial -> its last epoch, for the heartbeat
        self._lock = threading.Lock()
        self._t0 = time.monotonic()
        self._last_line = self._t0
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None

    # -- the listener ------------------------------------------------------------------------------------------

    def search_started(self, info: SearchInfo) -> None:
        self._book, self._target = info.book, info.settings.trials
        self._tally = Tally(info.book.records, screening=getattr(info.settings, "screen", 1) > 1)
        self._t0 = self._last_line = time.monotonic()
        if info.resumed:
            self.message(f"resuming {info.study_dir}: {len(info.book.records)} trials recorded, {info.requeued} "
                         f"interrupted re-queued, {info.repaired} repaired from trials.jsonl")
        if self.live:
            self._progress = _TallyProgress(self, TextColumn("[bold]{task.description}"), BarColumn(bar_width=None),
                                            MofNCompleteColumn(), TimeElapsedColumn(), console=self.console,
                                            transient=False, expand=True)
            self._task = self._progress.add_task(info.study, total=self._target, completed=len(info.book.records))
            self._progress.start()
            return
        self._print(f"search {info.study}: {len(info.book.records)} of {self._target} trials finished; "
                    f"one line per finished trial, a heartbeat every {self.heartbeat_s:.0f} s ({info.study_dir})")
        if self.heartbeat_s > 0:
            self._beat = threading.Thread(target=self._heartbeat, name="nas-progress-heartbeat", daemon=True)
            self._beat.start()

    def trial_started(self, number: int, genotype: Any) -> None:
        with self._lock:
            self._running[number] = "starting"
        self._show()

    def trial_epoch(self, number: int, epoch: int, metrics: dict[str, float]) -> None:
        acc = metrics.get("val_accuracy")
        with self._lock:
            if number in self._running:
                self._running[number] = f"epoch {epoch}" + ("" if acc is None else f" {100 * acc:.1f}%")

    def trial_finished(self, record: Any) -> None:
        with self._lock:
            self._running.pop(record.number, None)
            self._tally.add(record)
        if self.live:
            self._show()
        else:
            self._print(self._trial_line(record))

    def message(self, text: str) -> None:
        if self._progress is not None:
            self._progress.console.print(text, markup=False, highlight=False)
        else:
            self._print(text)

    def search_finished(self, summary: SearchSummary) -> None:
        if self._progress is not None:
            self._show()
        elif not self.live:
            self._print(f"{self._clock()} done: {self._status()}")
        self.close()

    def close(self) -> None:
        """Stop the heartbeat and the bar; also for a search that ended in an error (no ``search_finished``)."""
        self._stop.set()
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
        if self._beat is not None and self._beat is not threading.current_thread():
            self._beat.join(timeout=10)
            self._beat = None

    # -- drawing ------------------------------------------------------------------------------------------------

    def _status(self) -> str:
        with self._lock:
            return self._tally.line(len(self._running), len(self._book.front), self._book.hypervolume)

    def _show(self) -> None:
        if self._progress is not None:
            self._progress.update(self._task, completed=self._tally.finished)

    def _clock(self) -> str:
        s = int(time.monotonic() - self._t0)
        return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"

    def _trial_line(self, r: Any) -> str:
        w = len(str(self._target))
        what = state_text(r) if r.status != "refused" else STATE_WORDS["refused"]
        what += "" if r.duplicate_of is None else f", same as trial {r.duplicate_of}"
        acc = "" if r.accuracy is None else f" acc {100 * r.accuracy:.2f}%"
        lat = "" if r.latency_ms is None else f" {sig3(r.latency_ms)} ms"
        epochs = f" {r.epochs} ep" if r.trained else ""
        return (f"{self._clock()} [{self._tally.finished:>{w}}/{self._target}] trial {r.number} {what}{acc}{epochs}: "
                f"{sig3(r.macs / 1e6)}M MACs {sig3(r.params / 1e6)}M params{lat} | {self._status()}")

    def _print(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False, soft_wrap=True)  # rich flushes after each print
        self._last_line = time.monotonic()

    def _heartbeat(self) -> None:
        while not self._stop.wait(min(self.heartbeat_s, 5.0)):
            if time.monotonic() - self._last_line < self.heartbeat_s:
                continue
            with self._lock:
                running = ", ".join(f"trial {n} {s}" for n, s in sorted(self._running.items())) or "nothing running"
            self._print(f"{self._clock()} [{self._tally.finished}/{self._target}] {running} | {self._status()}")


class _TallyProgress(Progress):
    """The bar line, then the tally on a line of its own: at 80 columns the bar, n/N and the time keep room."""

    def __init__(self, view: ProgressView, *columns: Any, **kw: Any) -> None:
        self._view = view  # before Progress.__init__, which may already draw
        super().__init__(*columns, **kw)

    def get_renderables(self) -> Iterable[RenderableType]:
        yield Group(self.make_tasks_table(self.tasks), self._view._status())


class QuietView(SearchListener):
    """``--quiet``: no bar and no table, but what the search has to say (the storage still being saved after a
    long run, a repaired study) as plain lines on stderr."""

    def __init__(self, console: Console) -> None:
        self.console = console

    def message(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False)
