"""One refit of the predictor sampler: measurements -> model -> evolution -> ranked proposals (a :class:`Plan`).

:class:`Planner` is pure apart from a cache of the measured architectures: the sampler hands it a snapshot of
the finished trials and calls :meth:`Planner.plan` in a background thread (or in its own, when told to), one
plan at a time. See :mod:`nas.search.predictor` for the loop around it.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nas.errors import InputError
from nas.search import evolve as ev
from nas.search.surrogate import COST_FEATURES, Encoder, Surrogate, tau, union_choices

Finished = tuple[int, dict[str, Any], tuple[float, ...], "float | None"]  # number, params, values, prediction


@dataclass
class Plan:
    """What one refit produced: ranked proposals, the model behind them and what it was trained on."""

    queue: list[ev.Candidate]
    exclude: set[tuple]  # keys of every architecture measured, running or planned when the refit started
    surrogate: Surrogate | None = None
    encoder: Encoder | None = None
    numbers: frozenset[int] = frozenset()  # the trials the model was fitted on
    quality: dict[str, Any] | None = None
    fit: dict[str, Any] = field(default_factory=dict)


def objective(o: Any) -> dict[str, str]:
    """``{"metric", "direction"}`` from a dict or an object with those attributes."""
    metric = o["metric"] if isinstance(o, dict) else o.metric
    direction = (o.get("direction") if isinstance(o, dict) else o.direction) or (
        "maximize" if metric == "accuracy" else "minimize")
    return {"metric": metric, "direction": direction}


@dataclass
class Planner:
    """Fits the accuracy model on the measured architectures, evolves against it and the exact costs, and ranks
    ``size`` proposals by the hypervolume they add to the measured front (optimistic accuracy: mean +
    ``optimism`` x spread)."""

    space: Any
    objectives: list[dict[str, str]]
    cost_fn: ev.CostFn
    feasible_fn: ev.FeasibleFn | None
    seed: int = 0
    model: str = "gradient_boosting"
    n_estimators: int = 200
    population: int = 48
    generations: int = 20
    optimism: float = 1.0
    size: int = 8
    _measured: dict[int, ev.Candidate | None] = field(default_factory=dict, init=False, repr=False)  # by trial

    def __post_init__(self) -> None:
        metrics = [o["metric"] for o in self.objectives]
        unknown = [m for m in metrics if m != "accuracy" and m not in COST_FEATURES]
        if unknown:
            raise InputError(f"{self.space.source}: objectives: the predictor sampler cannot score {unknown[0]!r}")
        self.acc = metrics.index("accuracy") if "accuracy" in metrics else None
        Surrogate(self.model)  # an unknown model name fails now, not in the first refit

    def plan(self, snapshot: list[Finished], running: list[dict[str, Any]], taken: set[tuple],
             prev: Plan | None) -> Plan:
        """A plan from the finished trials (``snapshot``), the parameters of the running ones, the keys already
        handed out and the previous plan (whose model's quality on the new results is measured)."""
        t0 = time.perf_counter()
        rng = random.Random(self.seed * 1_000_003 + len(snapshot))
        measured, exclude = self._measurements(snapshot)
        exclude |= {ev.params_key(p) for p in running} | taken
        plan = Plan(queue=[], exclude=exclude, numbers=frozenset(c.number for c in measured))
        if self.acc is not None and not measured:  # nothing feasible measured yet: proposals stay random
            plan.fit = {"trials": 0, "numbers": [], "fit_s": 0.0, "evolve_s": 0.0, "select_s": 0.0, "candidates": 0,
                        "planned": 0}
            return plan
        if self.acc is not None:
            plan.quality = self._quality(prev, measured, {s[0]: s[3] for s in snapshot if s[3] is not None})
            plan.encoder = Encoder(union_choices([c.choices for c in measured]), self._cost_keys(measured))
            x = plan.encoder.matrix([(c.params, c.costs) for c in measured])
            plan.surrogate = Surrogate(self.model, seed=self.seed, n_estimators=self.n_estimators).fit(
                x, np.array([c.mean for c in measured]), trend=plan.encoder.cost_columns)
        t1 = time.perf_counter()

        def losses_fn(cands: list[ev.Candidate]) -> np.ndarray:
            if plan.surrogate is not None:
                mean, std = plan.surrogate.predict(plan.encoder.matrix([(c.params, c.costs) for c in cands]))
                for c, m, s in zip(cands, mean, std, strict=True):
                    c.mean, c.std = float(m), float(s)
            return self._losses(cands, 0.0)

        evo = ev.Evolution(self.space, self.cost_fn, self.feasible_fn, losses_fn, rng, exclude, size=self.population)
        archive = evo.run(measured, self._losses(measured, 0.0), self.generations)
        t2 = time.perf_counter()
        plan.queue = self._rank(measured, archive, self.size)
        t3 = time.perf_counter()
        plan.fit = {"trials": len(measured), "numbers": sorted(plan.numbers), "fit_s": t1 - t0, "evolve_s": t2 - t1,
                    "select_s": t3 - t2, "candidates": len(archive), "planned": len(plan.queue)}
        return plan

    def _measurements(self, snapshot: list[Finished]) -> tuple[list[ev.Candidate], set[tuple]]:
        """Feasible measured architectures (one per genotype, the first trial), and every finished one's key."""
        out, hashes, keys = [], set(), set()
        for number, params, values, _ in sorted(snapshot, key=lambda s: s[0]):
            if number not in self._measured:
                self._measured[number] = self._replay(number, params)
            c = self._measured[number]
            if c is None:
                continue
            keys.add(c.key)
            if c.hash in hashes:
                continue
            hashes.add(c.hash)
            if self.feasible_fn is not None and not self.feasible_fn(c.genotype, c.costs):
                continue  # told with accuracy 0: not a measurement
            if self.acc is not None:
                acc = values[self.acc] if len(values) > self.acc else math.nan
                if not math.isfinite(acc):
                    continue
                c.mean = float(acc)
            out.append(c)
        return out, keys

    def _replay(self, number: int, params: dict[str, Any]) -> ev.Candidate | None:
        c, exact = ev.make(self.space, random.Random(0), self.cost_fn, [params])
        if not exact:  # parameters from another space or an objective that asks more: not this space's point
            return None
        c.number = number
        return c

    def _quality(self, prev: Plan | None, measured: list[ev.Candidate],
                 predicted: dict[int, float]) -> dict[str, Any] | None:
        """The previous model's tau on the results it had not seen (``tau``, the last batch: few points), and the
        tau of every model-proposed trial's prediction at proposal time (``tau_all``: each made before its
        result was known, so also on unseen trials, and steadier)."""
        if prev is None or prev.surrogate is None:
            return None
        unseen = [c for c in measured if c.number not in prev.numbers]
        if len(unseen) < 2:
            return None
        pred, _ = prev.surrogate.predict(prev.encoder.matrix([(c.params, c.costs) for c in unseen]))
        ahead = [(predicted[c.number], c.mean) for c in measured if c.number in predicted]
        return {"trials": len(prev.numbers), "tau": tau(pred, [c.mean for c in unseen]), "n_eval": len(unseen),
                "tau_all": tau(*zip(*ahead, strict=True)) if ahead else None, "n_all": len(ahead),
                "evaluated": sorted(c.number for c in unseen)}

    def _cost_keys(self, measured: list[ev.Candidate]) -> tuple[str, ...]:
        scores = sorted({k for c in measured for k in c.costs if k.startswith("score:")})  # nas.scores.cache
        return tuple(k for k in (*COST_FEATURES, *scores) if all(c.costs.get(k) is not None for c in measured))

    def _losses(self, cands: Sequence[ev.Candidate], optimism: float) -> np.ndarray:
        out = np.zeros((len(cands), len(self.objectives)))
        for j, o in enumerate(self.objectives):
            sign = -1.0 if o["direction"] == "maximize" else 1.0
            for i, c in enumerate(cands):
                if j == self.acc:
                    v = c.mean + optimism * c.std * (1.0 if sign < 0 else -1.0)
                else:
                    v = c.costs.get(o["metric"])
                    if v is None:
                        raise InputError(f"{self.space.source}: objectives: {o['metric']} has no value "
                                         "(the cost function gives none)")
                out[i, j] = sign * float(v)
        return out

    def _rank(self, measured: list[ev.Candidate], archive: list[ev.Candidate], k: int) -> list[ev.Candidate]:
        """The ``k`` proposals: hypervolume-gain picks first, then the best-ranked of the rest."""
        if not archive:
            return []
        opt, bel = self._losses(archive, self.optimism), self._losses(archive, 0.0)
        front = self._losses(measured, 0.0)
        if len(front):
            front = front[ev.nondominated_ranks(front) == 0]
        picks = ev.select_by_gain(front, opt, bel, self._reference(np.vstack([front, opt, bel])), k)
        if len(picks) < k:
            chosen = set(picks)
            rest = [i for i in ev.survivors(opt, len(opt)) if i not in chosen]
            picks += rest[:k - len(picks)]
        return [archive[i] for i in picks]

    def _reference(self, losses: np.ndarray) -> np.ndarray:
        """The project's reference point where it can be inferred: accuracy 0, each cost a little beyond the
        largest met (candidates fill the space up to the budgets, which the sampler does not see)."""
        hi, lo = losses.max(axis=0), losses.min(axis=0)
        ref = hi + 0.05 * np.maximum(hi - lo, 1e-12)
        for j, o in enumerate(self.objectives):
            if o["direction"] == "maximize" and hi[j] <= 0:
                ref[j] = 0.0
        return ref
