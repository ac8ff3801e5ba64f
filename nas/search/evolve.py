"""Decision-level evolution for the predictor sampler: variation, NSGA-II selection, batch choice.

Candidates are made by walking the space (``space.suggest``) with a trial-like
object that answers each decision from its parents: so crossover and mutation
happen at the level of the space's decisions, and a conditional decision (one
that exists only at some depth or for some option) is inherited when a parent
has it and drawn at random when none does, without this module knowing the
space's structure. Crossover is uniform over decision *groups* (the name's
first component: ``stem``, ``s2``, ``head``), which keeps a stage's widths,
depth and per-block choices together.

Everything here is a pure function of its inputs and a ``random.Random``, so a
seeded search repeats exactly, in a background thread or not.
"""

from __future__ import annotations

import functools
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nas.results import optuna_compat as compat

# Optuna has no public hypervolume; the project's front code uses the same function (isolated here for this
# module, so an Optuna that moves it breaks one import).

CostFn = Callable[[Any], dict[str, float]]
FeasibleFn = Callable[[Any, dict[str, float]], bool]


@dataclass
class Candidate:
    """An architecture with its decisions (``params``, as Optuna stores them) and exact costs.

    ``choices`` holds the values each decision offered, ``mean``/``std`` the predicted accuracy (or the
    measured one, std 0, for a trained trial)."""

    params: dict[str, Any]
    choices: dict[str, tuple]
    genotype: Any
    costs: dict[str, float]
    mean: float = math.nan
    std: float = 0.0
    number: int | None = None  # the trial that measured it, if any

    @property
    def key(self) -> tuple:
        """The decisions as a hashable value: equal keys, equal architectures (far cheaper than the hash)."""
        k = self.__dict__.get("_key")
        if k is None:
            k = self.__dict__["_key"] = params_key(self.params)
        return k

    @functools.cached_property
    def hash(self) -> str:
        return self.genotype.hash


def params_key(params: dict[str, Any]) -> tuple:
    return tuple(sorted(params.items()))


class Variation:
    """Optuna's ``suggest_categorical``/``suggest_int`` answered from parents, with crossover and mutation.

    ``parents`` are params dicts; each decision group takes its values from one parent chosen at random (the
    other parents fill names it lacks or values it cannot take here), then each decision is redrawn with
    probability ``rate``. With no parents every decision is uniform at random. ``params`` and ``choices``
    record what was answered."""

    def __init__(self, rng: random.Random, parents: Sequence[dict[str, Any]] = (), rate: float = 0.0) -> None:
        self.rng, self.parents, self.rate = rng, list(parents), rate
        self.params: dict[str, Any] = {}
        self.choices: dict[str, tuple] = {}
        self._group: dict[str, int] = {}
        self.inherited_all = True  # every decision came unchanged from a parent (a replay, when one parent)

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        return self._answer(name, tuple(choices))

    def suggest_int(self, name: str, low: int, high: int, step: int = 1) -> int:
        return self._answer(name, tuple(range(low, high + 1, step)))

    def _answer(self, name: str, choices: tuple) -> Any:
        value, found = self._inherit(name, choices)
        if not found:
            self.inherited_all = False
            value = choices[self.rng.randrange(len(choices))]
        elif self.rate and len(choices) > 1 and self.rng.random() < self.rate:
            self.inherited_all = False
            others = [c for c in choices if c != value]
            value = others[self.rng.randrange(len(others))]
        self.params[name] = value
        self.choices[name] = choices
        return value

    def _inherit(self, name: str, choices: tuple) -> tuple[Any, bool]:
        if not self.parents:
            return None, False
        group = name.split(".", 1)[0]
        first = self._group.get(group)
        if first is None:
            first = self._group[group] = self.rng.randrange(len(self.parents))
        for k in range(len(self.parents)):
            p = self.parents[(first + k) % len(self.parents)]
            if name in p and p[name] in choices:
                return p[name], True
        return None, False


def make(space: Any, rng: random.Random, cost_fn: CostFn, parents: Sequence[dict[str, Any]] = (),
         rate: float = 0.0) -> tuple[Candidate, bool]:
    """A candidate from ``parents`` (none: uniform at random), and whether it replays its one parent exactly."""
    v = Variation(rng, parents, rate)
    g = space.suggest(v)
    exact = len(parents) == 1 and v.inherited_all and len(v.params) == len(parents[0])
    return Candidate(v.params, v.choices, g, cost_fn(g)), exact


def random_feasible(space: Any, rng: random.Random, cost_fn: CostFn, feasible_fn: FeasibleFn | None,
                    exclude: set[tuple], draws: int = 200) -> Candidate | None:
    """A uniform random candidate within the budgets whose key is not in ``exclude`` (None after ``draws``
    misses)."""
    for _ in range(draws):
        c, _ = make(space, rng, cost_fn)
        if c.key not in exclude and (feasible_fn is None or feasible_fn(c.genotype, c.costs)):
            return c
    return None


def spread_pick(pool: Sequence[Candidate], existing: Sequence[dict[str, Any]]) -> int:
    """Index of the pool member farthest (min Hamming distance over decisions) from ``existing``: a greedy
    maximin design, so the first trials cover the decisions rather than cluster."""
    if not existing:
        return 0
    best, best_d = 0, -1
    for i, c in enumerate(pool):
        d = min(_hamming(c.params, e) for e in existing)
        if d > best_d:
            best, best_d = i, d
    return best


def _hamming(a: dict[str, Any], b: dict[str, Any]) -> int:
    return sum(1 for k in a.keys() | b.keys() if a.get(k, _MISSING) != b.get(k, _MISSING))


_MISSING = object()


# -- NSGA-II ------------------------------------------------------------------------------------------------------


def nondominated_ranks(losses: np.ndarray) -> np.ndarray:
    """Pareto rank of each row (0 = non-dominated), all objectives minimised."""
    n = len(losses)
    if n == 0:
        return np.zeros(0, dtype=int)
    le = np.all(losses[:, None, :] <= losses[None, :, :], axis=2)
    lt = np.any(losses[:, None, :] < losses[None, :, :], axis=2)
    dominates = le & lt  # [i, j]: i dominates j
    count = dominates.sum(axis=0)
    ranks = np.full(n, -1, dtype=int)
    rank = 0
    current = np.flatnonzero(count == 0)
    while current.size:
        ranks[current] = rank
        count = count - dominates[current].sum(axis=0)
        count[ranks >= 0] = -1
        current = np.flatnonzero(count == 0)
        rank += 1
    return ranks


def crowding(losses: np.ndarray) -> np.ndarray:
    """NSGA-II crowding distance within one front (extremes infinite)."""
    n, m = losses.shape
    dist = np.zeros(n)
    if n <= 2:
        return np.full(n, np.inf)
    for j in range(m):
        order = np.argsort(losses[:, j], kind="stable")
        col = losses[order, j]
        span = col[-1] - col[0]
        dist[order[0]] = dist[order[-1]] = np.inf
        if span > 0:
            dist[order[1:-1]] += (col[2:] - col[:-2]) / span
    return dist


def _order(losses: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rank, crowding) of each row."""
    ranks = nondominated_ranks(losses)
    crowd = np.zeros(len(losses))
    for r in np.unique(ranks):
        idx = np.flatnonzero(ranks == r)
        crowd[idx] = crowding(losses[idx])
    return ranks, crowd


def survivors(losses: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` rows NSGA-II keeps: by rank, then by crowding distance."""
    ranks, crowd = _order(losses)
    return np.lexsort((-crowd, ranks))[:k]


@dataclass
class Evolution:
    """NSGA-II over decisions: ``losses_fn`` scores new candidates (and sets their predictions), every child is
    feasible and new (its key not in ``exclude``); :attr:`archive` keeps every new candidate met, for the final
    choice."""

    space: Any
    cost_fn: CostFn
    feasible_fn: FeasibleFn | None
    losses_fn: Callable[[list[Candidate]], np.ndarray]
    rng: random.Random
    exclude: set[tuple]
    size: int = 48
    crossover: float = 0.9
    rate: float | None = None  # per-decision mutation probability; None: about 1.5 decisions per child
    archive: list[Candidate] = field(default_factory=list)

    def run(self, seeds: list[Candidate], seed_losses: np.ndarray, generations: int) -> list[Candidate]:
        """Evolve from ``seeds`` (measured or otherwise scored, with ``seed_losses``), topped up at random."""
        pop, losses = list(seeds), np.asarray(seed_losses, dtype=float)
        fill = []
        while len(pop) + len(fill) < self.size:
            c = random_feasible(self.space, self.rng, self.cost_fn, self.feasible_fn, self._seen(pop, fill))
            if c is None:
                break
            fill.append(c)
        if fill:
            pop += fill
            losses = np.vstack([losses, self._score(fill)]) if len(seeds) else self._score(fill)
        if not pop:
            return self.archive
        keep = survivors(losses, self.size)
        pop, losses = [pop[i] for i in keep], losses[keep]
        for _ in range(generations):
            children = self._children(pop, losses)
            if not children:
                break
            pop += children
            losses = np.vstack([losses, self._score(children)])
            keep = survivors(losses, self.size)
            pop, losses = [pop[i] for i in keep], losses[keep]
        return self.archive

    def _seen(self, *groups: list[Candidate]) -> set[tuple]:
        return self.exclude | {c.key for g in groups for c in g} | {c.key for c in self.archive}

    def _score(self, cands: list[Candidate]) -> np.ndarray:
        self.archive.extend(cands)
        return np.asarray(self.losses_fn(cands), dtype=float).reshape(len(cands), -1)

    def _children(self, pop: list[Candidate], losses: np.ndarray) -> list[Candidate]:
        ranks, crowd = _order(losses)
        seen = self._seen(pop)
        out: list[Candidate] = []
        n_dec = max(1, int(np.mean([len(c.params) for c in pop])))
        rate = self.rate if self.rate is not None else min(0.5, 1.5 / n_dec)
        for _ in range(3 * self.size):
            if len(out) >= self.size:
                break
            a = self._tournament(ranks, crowd)
            parents = [pop[a].params]
            if self.rng.random() < self.crossover and len(pop) > 1:
                parents.append(pop[self._tournament(ranks, crowd)].params)
            c, _ = make(self.space, self.rng, self.cost_fn, parents, rate)
            if c.key in seen or (self.feasible_fn is not None and not self.feasible_fn(c.genotype, c.costs)):
                continue
            seen.add(c.key)
            out.append(c)
        return out

    def _tournament(self, ranks: np.ndarray, crowd: np.ndarray) -> int:
        i, j = self.rng.randrange(len(ranks)), self.rng.randrange(len(ranks))
        if ranks[i] != ranks[j]:
            return i if ranks[i] < ranks[j] else j
        return i if crowd[i] >= crowd[j] else j


# -- choosing a batch ----------------------------------------------------------------------------------------------


def hypervolume(losses: np.ndarray, reference: np.ndarray) -> float:
    """Hypervolume dominated by ``losses`` (minimised) up to ``reference``; points outside count nothing."""
    reference = np.asarray(reference, dtype=float)
    losses = np.asarray(losses, dtype=float).reshape(-1, len(reference))
    inside = losses[np.all(losses < reference, axis=1)]
    if not len(inside):
        return 0.0
    if len(reference) == 2:  # the staircase, in numpy: the greedy batch choice calls this thousands of times
        pts = inside[np.argsort(inside[:, 0], kind="stable")]
        widths = np.diff(np.append(pts[:, 0], reference[0]))
        return float(np.sum(widths * (reference[1] - np.minimum.accumulate(pts[:, 1]))))
    return compat.hypervolume(inside[compat.pareto_mask(inside)], reference)


def select_by_gain(front: np.ndarray, optimistic: np.ndarray, believed: np.ndarray, reference: np.ndarray,
                   k: int, pool_size: int = 128) -> list[int]:
    """Greedy batch of up to ``k`` candidate rows, each the largest hypervolume gain (up to ``reference``) over the
    measured ``front`` plus the rows already chosen: a row is scored by its ``optimistic`` losses and, once chosen,
    added at its ``believed`` ones, so a batch spreads along the front instead of piling onto one uncertain spot.
    Stops when nothing gains. Only the ``pool_size`` best-ranked rows that the front does not dominate compete."""
    reference = np.asarray(reference, dtype=float)
    current = np.asarray(front, dtype=float).reshape(-1, len(reference))
    pool = [i for i in range(len(optimistic))
            if not len(current) or not np.any(np.all(current <= optimistic[i], axis=1))]
    if len(pool) > pool_size:
        pool = [pool[i] for i in survivors(optimistic[pool], pool_size)]
    chosen: list[int] = []
    base = hypervolume(current, reference)
    for _ in range(k):
        best, gain = -1, 0.0
        for i in pool:
            g = hypervolume(np.vstack([current, optimistic[i]]), reference) - base
            if g > gain + 1e-15:
                best, gain = i, g
        if best < 0:
            break
        chosen.append(best)
        pool.remove(best)
        current = np.vstack([current, believed[best]])
        base = hypervolume(current, reference)
    return chosen
