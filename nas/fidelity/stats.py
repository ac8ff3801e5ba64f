"""How well one recipe's accuracies rank architectures as the reference's do, and how noisy each recipe is.

Every function takes an accuracy table of shape (architectures, seeds), rows
in the same architecture order for every recipe. Standard deviations are
sample standard deviations (``ddof=1``) throughout, over seeds within one
architecture and over the architectures' means alike, so the two are on the
same footing. Rank statistics are scipy's: Kendall's tau-b (ties allowed) and
Spearman's rho; both are ``None`` where undefined (fewer than two
architectures, or a recipe that gives every architecture the same accuracy).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import stats as _stats

_EQUAL = 1e-12  # accuracies closer than this are the same accuracy


@dataclass(frozen=True)
class Agreement:
    """A recipe's ranking of the architectures against the reference's."""

    kendall_tau: float | None
    spearman_rho: float | None
    top_k_overlap: float  # share of the reference's top k that the recipe also ranks top k
    k: int


@dataclass(frozen=True)
class Noise:
    """The spread of one architecture over seeds against the spread between architectures."""

    seed_std: float  # mean over architectures of the std over seeds
    seed_abs_diff: float  # mean over architectures of the mean |a - b| over pairs of seeds
    arch_std: float  # std of the architectures' mean accuracies
    noise_ratio: float | None  # seed_std / arch_std (None when the architectures do not differ at all)
    accuracy_min: float  # lowest and highest architecture mean
    accuracy_max: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def top_k(n: int) -> int:
    """How many of ``n`` architectures count as the top: a quarter, at least one."""
    return max(1, n // 4)


def _table(acc: Any) -> np.ndarray:
    a = np.asarray(acc, dtype=float)
    if a.ndim != 2 or a.shape[0] < 1 or a.shape[1] < 1:
        raise ValueError(f"expected a non-empty (architectures, seeds) table, got shape {a.shape}")
    return a


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def _top(means: np.ndarray, k: int) -> set[int]:
    # Stable sort on the negated means: ties keep architecture order, so equal tables give equal sets.
    return set(np.argsort(-means, kind="stable")[:k].tolist())


def agreement(acc: Any, reference: Any, k: int | None = None) -> Agreement:
    """Kendall tau, Spearman rho and top-k overlap of the mean accuracies of ``acc`` against ``reference``."""
    m, r = _table(acc).mean(axis=1), _table(reference).mean(axis=1)
    if m.shape != r.shape:
        raise ValueError(f"{len(m)} architectures against {len(r)} in the reference")
    k = top_k(len(m)) if k is None else k
    tau = rho = None
    if len(m) >= 2:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a constant input: scipy warns and returns nan, reported as None
            tau = _finite(_stats.kendalltau(m, r).statistic)
            rho = _finite(_stats.spearmanr(m, r).statistic)
    overlap = len(_top(m, k) & _top(r, k)) / k
    return Agreement(tau, rho, overlap, k)


def noise(acc: Any) -> Noise:
    """Seed noise against the spread between architectures (see :class:`Noise`); needs at least two seeds."""
    a = _table(acc)
    if a.shape[1] < 2:
        raise ValueError("seed noise needs at least two seeds per architecture")
    seed_std = float(a.std(axis=1, ddof=1).mean())
    i, j = np.triu_indices(a.shape[1], k=1)
    seed_abs_diff = float(np.abs(a[:, i] - a[:, j]).mean(axis=1).mean())
    means = a.mean(axis=1)
    # Equal means can differ in the last bits (float sums); they do not differ.
    arch_std = float(means.std(ddof=1)) if len(means) >= 2 and np.ptp(means) > _EQUAL else 0.0
    ratio = seed_std / arch_std if arch_std > 0 else None
    return Noise(seed_std, seed_abs_diff, arch_std, ratio, float(means.min()), float(means.max()))


def ranks(acc: Any) -> np.ndarray:
    """Rank of each architecture by mean accuracy, 1 = best (ties share the average rank)."""
    return _stats.rankdata(-_table(acc).mean(axis=1))
