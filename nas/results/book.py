"""The running tally of a search: its records, status counts, front, hypervolume and ``pareto.json``."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from nas.results.front import front, hypervolume, is_feasible
from nas.results.pareto import write_pareto_json
from nas.results.record import TrialRecord
from nas.results.store import StudyDir

#: ``pareto.json`` is rewritten after every trained trial, and at most this often (s) for answered ones.
PARETO_MIN_INTERVAL_S = 2.0
COUNTED = ("complete", "pruned", "infeasible", "refused", "screened", "failed", "duplicate")


class StudyBook:
    """Keeps a study's records, counts, front, hypervolume and ``pareto.json`` up to date as trials finish.

    Listeners of a search read it (``info.book`` in :class:`nas.search.events.SearchInfo`); only the driver
    adds to it.
    """

    def __init__(self, sd: StudyDir, name: str, objectives: list[dict[str, str]], reference: list[float],
                 records: Sequence[TrialRecord]) -> None:
        self.sd, self.name, self.objectives, self.reference = sd, name, objectives, reference
        self.records: list[TrialRecord] = list(records)
        self.counts = dict.fromkeys(COUNTED, 0)
        for r in self.records:
            self._count(r)
        self.front: list[Any] = front(self.records, objectives)
        self.hypervolume = hypervolume(self.records, objectives, reference)
        self._written = 0.0

    def _count(self, r: TrialRecord) -> None:
        self.counts[r.status] += 1
        self.counts["duplicate"] += r.duplicate_of is not None

    def add(self, record: TrialRecord) -> None:
        self.records.append(record)
        self._count(record)
        if is_feasible(record) and record.duplicate_of is None:
            # front(all records) == front(old front + the new record): no need to look at every record again
            new_front = front([*self.front, record], self.objectives)
            if any(m is record for m in new_front):
                self.front = new_front
                self.hypervolume = hypervolume(self.front, self.objectives, self.reference)
        self.write_pareto(force=record.trained)

    def write_pareto(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._written >= PARETO_MIN_INTERVAL_S:
            write_pareto_json(self.sd.root, self.records, self.objectives, self.reference, study=self.name)
            self._written = now
