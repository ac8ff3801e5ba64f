"""The accuracy predictor of the predictor sampler: features of an architecture and a tree ensemble.

Features are one ordinal column per decision (the value itself for numeric
choices, the choice's position for the others, -1 when the decision does not
exist in that architecture: a tree separates "absent" from every value) plus
the logarithms of the exact costs (MACs, parameters, latency when known):
accuracy moves with log-compute far more smoothly than with any one decision.
With the sampler's ``score_features``, training-free scores of the architecture (``score:NAME`` entries of
its costs, :mod:`nas.scores.cache`) are further columns, as values.

The spread of the ensemble's members is the prediction's uncertainty, which
the sampler uses as an optimism bonus. ``MODELS`` lists the regressors. The
sampler's default, ``gradient_boosting``, ranked best on the synthetic
objective of ``benchmarks/bench_predictor.py`` (mixnet.yaml, Kendall tau on 300
held-out architectures after 20 / 50 / 100 training ones, 3 seeds: boosting
0.62 / 0.68 / 0.72, random forest 0.60 / 0.67 / 0.70, extra trees 0.53 / 0.62 /
0.70) and gave the best fronts (hypervolume after 60 trials, 3 seeds: 0.726
against 0.698 for extra trees; random search 0.620), for about 1 s more per
refit. No real trial data was available to confirm the choice.

Boosting's capacity was then measured on ground truth, NAS-Bench-Macro (``nas predictor --records
nas-bench-macro``, Kendall tau on 1,500 unseen networks after 20 / 50 / 100 / 500 training ones, 5 seeds):
learning rate 0.05 with 100 trees per member gave 0.712 / 0.794 / 0.814 / 0.862, below plain gradient boosting
on one-hot decisions at 100 and 500 (0.835, 0.883); learning rate 0.1 (scikit-learn's default) with 200 trees
gives 0.712 / 0.807 / 0.838 / 0.910, above it at every size. That choice was made on this one table (the
only ground truth here); the trend and the features are unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.stats import kendalltau

MODELS = ("extra_trees", "random_forest", "gradient_boosting", "ensemble")
COST_FEATURES = ("macs", "params", "latency_ms")
_ABSENT = -1.0


class Encoder:
    """Decisions and costs -> a fixed-width float matrix, frozen at fit time.

    ``choices`` maps each decision seen in the training set to the values it offers; decisions met later (in
    candidates only) are ignored, since the model could not have learnt anything about them."""

    def __init__(self, choices: dict[str, tuple], cost_keys: Sequence[str] = COST_FEATURES) -> None:
        self.names = sorted(choices)
        self._codes = [_codes(choices[n]) for n in self.names]
        self.cost_keys = tuple(cost_keys)

    @property
    def width(self) -> int:
        return len(self.names) + len(self.cost_keys)

    @property
    def cost_columns(self) -> list[int]:
        return list(range(len(self.names), self.width))

    def matrix(self, items: Sequence[tuple[dict[str, Any], dict[str, float]]]) -> np.ndarray:
        """One row per ``(params, costs)``."""
        out = np.full((len(items), self.width), _ABSENT)
        for r, (params, costs) in enumerate(items):
            for c, (name, codes) in enumerate(zip(self.names, self._codes, strict=True)):
                v = params.get(name, _MISSING)
                if v is not _MISSING:
                    out[r, c] = codes.get(v, _ABSENT)
            base = len(self.names)
            for j, key in enumerate(self.cost_keys):
                v = costs.get(key)
                if v is None:
                    out[r, base + j] = _ABSENT
                elif key.startswith("score:"):  # a training-free score (nas.scores.cache): a value, not a cost
                    out[r, base + j] = float(v)
                else:
                    out[r, base + j] = math.log1p(max(float(v), 0.0))
        return out


_MISSING = object()


def _codes(choices: tuple) -> dict[Any, float]:
    numeric = all(isinstance(c, (int, float)) for c in choices)
    return {c: float(c) if numeric else float(i) for i, c in enumerate(choices)}


def union_choices(choice_maps: Sequence[dict[str, tuple]]) -> dict[str, tuple]:
    """Every decision's choices over several architectures (a decision's choices can depend on its context)."""
    out: dict[str, tuple] = {}
    for cm in choice_maps:
        for name, ch in cm.items():
            have = out.get(name)
            if have is None:
                out[name] = ch
            elif have != ch:
                out[name] = have + tuple(c for c in ch if c not in have)
    return out


class Surrogate:
    """A linear trend in a few columns plus a regression ensemble on what the trend leaves: :meth:`predict`
    gives the mean and the members' spread.

    ``kind``: ``extra_trees`` or ``random_forest`` (spread over the trees), ``gradient_boosting`` (five
    subsampled boosted models), ``ensemble`` (extra trees and boosting averaged).

    The trend (ridge on the standardised ``trend`` columns, the log costs) is there because trees cannot
    extrapolate: the evolution reaches networks cheaper than any measured one, and trees alone predict them
    as good as the cheapest measured, so the first batches chased them (Kendall tau on the 300 cheapest of
    1,400 architectures, trained on others: 0.04-0.10 for trees alone, 0.44-0.60 with the trend)."""

    def __init__(self, kind: str = "extra_trees", seed: int = 0, n_estimators: int = 100) -> None:
        if kind not in MODELS:
            raise ValueError(f"model {kind!r} is not one of {', '.join(MODELS)}")
        self.kind, self.seed, self.n_estimators = kind, seed, n_estimators
        self._members: list[Any] = []
        self._trend: tuple[list[int], np.ndarray, np.ndarray, np.ndarray, float] | None = None

    def fit(self, x: np.ndarray, y: np.ndarray, trend: Sequence[int] = ()) -> Surrogate:
        from sklearn.ensemble import ExtraTreesRegressor, GradientBoostingRegressor, RandomForestRegressor

        x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
        self._trend = _ridge(x, y, list(trend)) if len(trend) else None
        y = y - self._trend_of(x)
        members: list[Any] = []
        if self.kind in ("extra_trees", "ensemble"):
            members.append(ExtraTreesRegressor(n_estimators=self.n_estimators, max_features=1.0,
                                               random_state=self.seed, n_jobs=1))
        if self.kind == "random_forest":
            members.append(RandomForestRegressor(n_estimators=self.n_estimators, max_features=1.0,
                                                 random_state=self.seed, n_jobs=1))
        if self.kind in ("gradient_boosting", "ensemble"):
            n = 5 if self.kind == "gradient_boosting" else 1
            members += [GradientBoostingRegressor(n_estimators=self.n_estimators, learning_rate=0.1, max_depth=3,
                                                  subsample=0.8, random_state=self.seed + k) for k in range(n)]
        for m in members:
            m.fit(x, y)
        self._members = members
        return self

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(mean, std) per row."""
        x = np.asarray(x, dtype=float)
        if not len(x):
            return np.zeros(0), np.zeros(0)
        base = self._trend_of(x)
        if self.kind in ("extra_trees", "random_forest"):
            per = _per_tree(self._members[0], x)
            return base + per.mean(axis=0), per.std(axis=0)
        per = np.stack([m.predict(x) for m in self._members])
        if self.kind == "ensemble":
            spread = np.sqrt(_per_tree(self._members[0], x).var(axis=0) + per.var(axis=0))
            return base + per.mean(axis=0), spread
        return base + per.mean(axis=0), per.std(axis=0)

    def _trend_of(self, x: np.ndarray) -> np.ndarray:
        if self._trend is None:
            return np.zeros(len(x))
        cols, mu, sd, w, b = self._trend
        return ((x[:, cols] - mu) / sd) @ w + b


_RIDGE = 1.0  # on standardised columns: with 8 points and two collinear log costs, a plain fit swings wildly


def _ridge(x: np.ndarray, y: np.ndarray, cols: list[int]) -> tuple[list[int], np.ndarray, np.ndarray, np.ndarray,
                                                                    float]:
    z = x[:, cols]
    mu, sd = z.mean(axis=0), z.std(axis=0)
    sd = np.where(sd > 0, sd, 1.0)
    z = (z - mu) / sd
    b = float(y.mean())
    w = np.linalg.solve(z.T @ z + _RIDGE * np.eye(len(cols)), z.T @ (y - b))
    return cols, mu, sd, w, b


def _per_tree(forest: Any, x: np.ndarray) -> np.ndarray:
    """Every tree's prediction, ``(n_trees, n_rows)``, straight from the fitted ``tree_`` structures (each
    estimator's ``predict`` re-validates the input, a hundred times per call: that dominated the evolution)."""
    x32 = np.ascontiguousarray(x, dtype=np.float32)
    return np.stack([t.tree_.predict(x32).reshape(len(x32), -1)[:, 0] for t in forest.estimators_])


def tau(predicted: Sequence[float], measured: Sequence[float]) -> float | None:
    """Kendall tau between predicted and measured values; None when fewer than two or either side constant."""
    if len(predicted) < 2:
        return None
    t = kendalltau(predicted, measured).statistic
    return None if t is None or math.isnan(t) else float(t)
