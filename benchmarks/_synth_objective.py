"""A synthetic accuracy with a known dependence on the genotype, for sampler tests and benchmarks.

accuracy = an S-curve in log MACs (more compute helps, less and less; far below the space's usual cost a network
           falls towards 15%)
         + a fixed random function of the decisions: one weight per (decision, value) and one per value pair of
           neighbouring decisions (so the best choice of one decision depends on the next: not separable)
         + small Gaussian noise.

The decision part spans about as much as the compute part over the front, so a sampler that only chases cheap
or big networks does not win: it has to learn which decisions pay. Everything is seeded: the same seed gives
the same function and the same noise for the same trial number.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from typing import Any

import optuna

from nas.cost.macs import count


class SyntheticAccuracy:
    def __init__(self, space: Any, seed: int = 0, noise: float = 0.005) -> None:
        self.space, self.seed, self.noise = space, seed, noise
        self._w: dict[tuple, float] = {}
        rng = random.Random(seed)
        logs = sorted(math.log(self.costs(space.sample(rng))["macs"]) for _ in range(200))
        self._lo, self._hi = logs[10], logs[-10]  # 5% and 95% of random architectures' log MACs

    def costs(self, g: Any) -> dict[str, float]:
        c = count(g, resolution=self.space.target.resolution, num_classes=self.space.target.num_classes)
        return {"macs": c.macs, "params": c.params}

    def _weight(self, *key: Any) -> float:
        w = self._w.get(key)
        if w is None:
            w = self._w[key] = random.Random(f"{self.seed}|{key!r}").gauss(0.0, 1.0)
        return w

    def clean(self, params: dict[str, Any], macs: float) -> float:
        """The noiseless accuracy of an architecture."""
        names = sorted(params)
        lin = sum(self._weight(n, params[n]) for n in names) / math.sqrt(len(names))
        quad = sum(self._weight(a, params[a], b, params[b]) for a, b in zip(names, names[1:], strict=False))
        quad /= math.sqrt(max(1, len(names) - 1))
        x = (math.log(macs) - self._lo) / (self._hi - self._lo)
        compute = 0.15 + 0.8 / (1.0 + math.exp(-3.0 * (x + 0.3)))
        return compute + 0.05 * math.tanh(lin) + 0.03 * math.tanh(quad)

    def __call__(self, params: dict[str, Any], macs: float, number: int) -> float:
        noise = random.Random(f"noise|{self.seed}|{number}").gauss(0.0, self.noise)
        return min(1.0, max(0.0, self.clean(params, macs) + noise))


def objective(space: Any, synth: SyntheticAccuracy, budgets: dict[str, float]) -> Callable[[optuna.Trial], tuple]:
    """An Optuna objective ``(accuracy, macs)``: an architecture over a budget scores accuracy 0 and reports its
    excess as a constraint, as the search's proposer does."""

    def run(trial: optuna.Trial) -> tuple[float, float]:
        g = space.suggest(trial)
        costs = synth.costs(g)
        over = {m: costs[m] / b - 1.0 for m, b in budgets.items()}
        for m, v in over.items():
            trial.set_constraint(m, float(max(v, 0.0)))
        acc = 0.0 if any(v > 0 for v in over.values()) else synth(trial.params, costs["macs"], trial.number)
        return acc, float(costs["macs"])

    return run


def feasible(budgets: dict[str, float]) -> Callable[[Any, dict[str, float]], bool]:
    return lambda g, costs: all(costs[m] <= b for m, b in budgets.items())


def hypervolume_2d(points: list[tuple[float, float]], macs_ref: float) -> float:
    """Area dominated by ``(accuracy, macs)`` points (accuracy up, MACs down) within accuracy >= 0 and
    MACs <= ``macs_ref``, with MACs scaled by ``macs_ref`` (the project's normalised hypervolume)."""
    pts = sorted((m / macs_ref, a) for a, m in points if m < macs_ref and a > 0)
    area, best = 0.0, 0.0
    for i, (m, a) in enumerate(pts):
        best = max(best, a)
        nxt = pts[i + 1][0] if i + 1 < len(pts) else 1.0
        area += best * (nxt - m)
    return area
