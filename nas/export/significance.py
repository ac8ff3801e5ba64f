"""Is a model's test accuracy over seeds different from another's? Welch's t-test, two-sided.

Seeds of one recipe give each model a small sample of accuracies (3 by
default) whose spreads differ between architectures, so the test is Welch's
(``scipy.stats.ttest_ind(equal_var=False)``), not Student's. The verdict is
one of :data:`VERDICTS`: ``better`` / ``worse`` when the two-sided p-value is
below :data:`ALPHA`, else ``no significant difference``; ``untested`` when
either side has fewer than two seeds (no spread to judge by).
"""

from __future__ import annotations

import math
import statistics
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

ALPHA = 0.05
BETTER, WORSE, SAME, UNTESTED = "better", "worse", "no significant difference", "untested"
VERDICTS = (BETTER, WORSE, SAME, UNTESTED)
#: How every table states the test it reports.
METHOD = f"Welch's t-test, two-sided, alpha {ALPHA:g}"


@dataclass(frozen=True)
class Verdict:
    word: str  # one of VERDICTS
    p_value: float | None  # None when untested
    diff: float  # mean of the first sample minus mean of the second, as fractions

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def spread(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (n - 1; 0 for one value)."""
    if not values:
        raise ValueError("no values")
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def welch(a: Sequence[float], b: Sequence[float], alpha: float = ALPHA) -> Verdict:
    """Welch's two-sided t-test of ``a`` against ``b`` and its verdict for ``a``."""
    from scipy.stats import ttest_ind

    diff = statistics.fmean(a) - statistics.fmean(b) if a and b else math.nan
    if len(a) < 2 or len(b) < 2 or math.isnan(diff):
        return Verdict(UNTESTED, None, diff)
    if max(a) == min(a) and max(b) == min(b):
        # No spread on either side: the t statistic is 0/0 or infinite, which scipy reports as nan with a
        # precision warning. Its limit is p = 1 for equal constants and p = 0 for different ones.
        p = 1.0 if diff == 0 else 0.0
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # one constant side: scipy warns, the result holds
            p = float(ttest_ind(a, b, equal_var=False).pvalue)
    if p < alpha:
        return Verdict(BETTER if diff > 0 else WORSE, p, diff)
    return Verdict(SAME, p, diff)
