"""What a search tells its listeners: the W&B tracker, the CLI's progress view, a notebook's own.

The driver never prints. It calls every listener at these points, in this order per trial:

* ``search_started(info)`` once the study is open (``info.book`` is the running tally it keeps up to date);
* ``trial_started(number, genotype)`` when a trial is handed to Ray Tune for training;
* ``trial_epoch(number, epoch, metrics)`` after each reported epoch (``val_accuracy``, ``train_loss``,
  ``best_accuracy`` where known);
* ``trial_finished(record)`` for every finished trial, trained or answered, after it is recorded;
* ``message(text)`` for what a person watching would want to know (e.g. storage updates still to be saved);
* ``search_finished(summary)`` at the end, also when the search stops on an error or an interrupt.

A listener that raises is switched off for the rest of the search with one logged warning; it never stops a
search. :class:`SearchListener` is the protocol with every method a no-op, to subclass.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nas.genotype import Genotype
    from nas.results.book import StudyBook
    from nas.results.record import TrialRecord

log = logging.getLogger(__name__)


@dataclass
class SearchInfo:
    """A search as it starts."""

    study: str
    study_dir: Path
    space: Any  # the SearchSpace
    settings: Any  # the space's search settings, the caller's overrides merged, automatic values chosen
    wandb: str  # W&B mode: online | offline | disabled
    objectives: list[dict[str, str]]
    cost_only: bool
    book: StudyBook  # records, counts, front and hypervolume, kept up to date by the driver
    requeued: int = 0  # trials a crash or Ctrl-C interrupted, queued again
    repaired: int = 0  # storage trials completed from trials.jsonl
    runs: list[dict[str, Any]] = field(default_factory=list)  # every run of the study (runs.json), this one last

    @property
    def resumed(self) -> bool:
        return bool(self.requeued or self.repaired or self.book.records)


@dataclass
class SearchSummary:
    """A search as it ends (``run_search`` returns it)."""

    study_dir: Path
    records: list[TrialRecord]
    front: list[Any]
    hypervolume: float
    objectives: list[dict[str, str]]
    new_trials: int
    wall_s: float
    interrupted: bool = False
    propose_ms: float = 0.0  # mean time to propose, cost and (for answered ones) record an architecture
    counts: dict[str, int] = field(default_factory=dict)
    latency_timing: Any = None  # nas.latency.TimingStats: latency parts timed on demand (None: nothing to time)


class SearchListener:
    """The listener protocol; every method does nothing here."""

    def search_started(self, info: SearchInfo) -> None:
        pass

    def trial_started(self, number: int, genotype: Genotype) -> None:
        pass

    def trial_epoch(self, number: int, epoch: int, metrics: dict[str, float]) -> None:
        pass

    def trial_finished(self, record: TrialRecord) -> None:
        pass

    def message(self, text: str) -> None:
        pass

    def search_finished(self, summary: SearchSummary) -> None:
        pass


class Listeners(SearchListener):
    """Calls each listener in turn; one that raises is disabled with a warning and the others go on."""

    def __init__(self, listeners: Iterable[SearchListener] = ()) -> None:
        self._live = list(listeners)

    def _each(self, call: Callable[[SearchListener], None]) -> None:
        for listener in list(self._live):
            try:
                call(listener)
            except Exception as e:  # noqa: BLE001 - a listener must never stop a search
                self._live.remove(listener)
                log.warning("%s disabled after an error: %s: %s", type(listener).__name__, e.__class__.__name__, e)

    def search_started(self, info: SearchInfo) -> None:
        self._each(lambda li: li.search_started(info))

    def trial_started(self, number: int, genotype: Genotype) -> None:
        self._each(lambda li: li.trial_started(number, genotype))

    def trial_epoch(self, number: int, epoch: int, metrics: dict[str, float]) -> None:
        self._each(lambda li: li.trial_epoch(number, epoch, metrics))

    def trial_finished(self, record: TrialRecord) -> None:
        self._each(lambda li: li.trial_finished(record))

    def message(self, text: str) -> None:
        self._each(lambda li: li.message(text))

    def search_finished(self, summary: SearchSummary) -> None:
        self._each(lambda li: li.search_finished(summary))
