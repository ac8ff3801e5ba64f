"""Screening (``search.screen`` K): of every K trainable proposals of a tier, only the best-scoring is trained.

The proposer (:mod:`nas.search.searcher`) hands each trainable proposal to :class:`Pools`; once a tier's pool
holds K candidates, :meth:`Pools.rank` scores them with a training-free score (:func:`nas.scores.best_of`, on
the proxy network each would train) and the proposer trains the best one and records the others
``screened`` (never trained, never a measurement).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from nas.genotype import Genotype


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Torch on one thread meanwhile: beside training trials, a second thread only fights them (10x slower
    here)."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


class Pools:
    """The candidates of each tier waiting to be screened, and the scorer that ranks them."""

    def __init__(self, space: Any, k: int, score: str = "default", scorer: Any = None,
                 records: Sequence[Any] = ()) -> None:
        self.space, self.k, self.score, self._scorer = space, max(1, int(k)), score, scorer
        self._pools: dict[str | None, list[tuple[Any, Genotype, Any]]] = {}
        self.seconds = 0.0  # time spent scoring
        self.n_scored = sum(1 for r in records if (r.get("screen") or {}).get("value") is not None)

    def holds(self, tier: str | None, g: Genotype) -> bool:
        """Whether the same network is a candidate of ``tier`` already."""
        return any(h.hash == g.hash for _, h, _ in self._pools.get(tier, ()))

    def duplicate_info(self) -> dict[str, Any]:
        return {"score": self.score, "candidates": self.k, "duplicate": True}

    def add(self, tier: str | None, trial: Any, g: Genotype, record: Any) -> list[tuple[Any, Genotype, Any]] | None:
        """Pool a candidate; the whole pool (taken out) once it holds K, else None."""
        pool = self._pools.setdefault(tier, [])
        pool.append((trial, g, record))
        return self._pools.pop(tier) if len(pool) >= self.k else None

    def rank(self, genotypes: Sequence[Genotype]) -> tuple[list[int], list[dict[str, Any]]]:
        """The candidates' indices from the best-scoring down (ties: the earliest first), and each one's screening
        record (score, value, pool size)."""
        from nas.scores import Scorer, best_of

        if self._scorer is None:
            # one initialisation: on NAS-Bench-Macro the first seed alone ranks as the 3-seed mean does (RESULTS.md)
            self._scorer = Scorer.for_space(self.space, seeds=(0,))
        t0 = time.perf_counter()
        with one_thread():
            _, values = best_of(list(genotypes), self.score, self._scorer)
        took = time.perf_counter() - t0
        self.seconds += took
        self.n_scored += len(genotypes)
        finite = np.where(np.isfinite(values), values, -np.inf)
        order = [int(i) for i in np.argsort(-finite, kind="stable")]
        return order, [{"score": self.score, "value": float(v), "candidates": len(genotypes),
                        "seconds": took / len(genotypes)} for v in values]
