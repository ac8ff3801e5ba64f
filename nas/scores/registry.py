"""Scores by name: a genotype's training-free score on the proxy network its trial would train.

A :class:`Scorer` holds what a score is computed on: the proxy's resolution and width (``nas.proxy``), the
class count, the initialisation seeds and the input (a synthetic Gaussian batch unless one is given). For each
seed it builds the proxy network with that seed's initialisation, makes that seed's input, runs the measure,
and averages the values over seeds; each score is timed (build, input and measure, all seeds).

``params``, ``macs`` and ``depth`` are the baselines: ``nas.cost.macs.count`` of the *target* genotype and its
number of blocks (identities not counted), no network built.
A combination (``default`` and any list of names) ranks a population by the average of its members' ranks
(:func:`rank_average`): it is a statement about a set of networks, so a combination has no value for one
network alone.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from nas.errors import InputError
from nas.genotype import Genotype
from nas.scores import measures

#: Synthetic batch size of the batch scores (NASWOT, gradient norm, SNIP) and Zen.
BATCH = 64
SEEDS: tuple[int, ...] = (0, 1, 2)


@dataclass(frozen=True)
class Score:
    """One measure: ``kind`` is ``"cost"`` (target genotype, analytic, no seeds), ``"data-free"`` (synthetic input
    by construction) or ``"batch"`` (one batch of inputs and labels; synthetic unless one is given)."""

    name: str
    kind: str
    description: str


SCORES: dict[str, Score] = {s.name: s for s in (
    Score("synflow", "data-free", "log sum |w dR/dw|, positive weights, no BN, float64 all-ones input"),
    Score("zen", "data-free", "Zen-score: log E|f(x)-f(x+0.01e)| before pooling + BN variance rescale"),
    Score("naswot", "batch", "log|det K| of the binary pre-activation codes (NASWOT)"),
    Score("grad_norm", "batch", "sum of the weights' gradient norms of one batch's cross-entropy"),
    Score("snip", "batch", "sum |w dL/dw| (SNIP) of one batch's cross-entropy"),
    Score("params", "cost", "parameters of the target genotype (nas.cost.macs.count)"),
    Score("macs", "cost", "MACs of the target genotype (nas.cost.macs.count)"),
    Score("depth", "cost", "blocks of the target genotype that are not identities (kind skip)"),
)}

#: Combinations: rank averages of several scores. ``default`` is the shipped default: NASWOT (how many distinct
#: activation patterns the untrained network gives a batch) with depth (blocks that are not identities). Chosen
#: on NAS-Bench-Macro, the one table measured here, after seeing that NASWOT alone ranks shallow networks too
#: high there: over 1,000 of its networks tau 0.745 against NASWOT's 0.697 and depth's 0.670 (chosen on half of
#: them, 0.761 on the other half). In a space of fixed depth the depth column is constant and the default ranks
#: as NASWOT does. benchmarks/RESULTS.md, "Training-free scores on NAS-Bench-Macro", has every alternative.
COMBINATIONS: dict[str, tuple[str, ...]] = {
    "default": ("naswot", "depth"),
}


def depth(genotype: Genotype) -> int:
    """The network's depth in blocks: every block but the identities (``kind: skip``, a layer that is skipped)."""
    return sum(1 for b in genotype.blocks if b.kind != "skip")


def components(name: str | Sequence[str], where: str = "score") -> tuple[str, ...]:
    """The single scores a score name (or a list of names: their rank average) needs; unknown names refused."""
    names = [name] if isinstance(name, str) else list(name)
    if not names:
        raise InputError(f"{where}: expected a score name or a non-empty list of names")
    out: list[str] = []
    for n in names:
        if not isinstance(n, str):
            raise InputError(f"{where}: expected score names, got {n!r}")
        if n in COMBINATIONS and isinstance(name, str):
            out += COMBINATIONS[n]
        elif n in SCORES:
            out.append(n)
        else:
            raise InputError(f"{where}: unknown score {n!r} (known: {', '.join([*SCORES, *COMBINATIONS])})")
    return tuple(dict.fromkeys(out))


def rank_average(values: Mapping[str, Sequence[float]]) -> np.ndarray:
    """Per network, the mean over scores of its rank by that score (1 = lowest; ties share their average rank;
    a non-finite value ranks lowest). Higher is better, as for every score."""
    from scipy.stats import rankdata

    cols = []
    for v in values.values():
        a = np.asarray(v, dtype=float)
        cols.append(rankdata(np.where(np.isfinite(a), a, -np.inf)))
    if not cols:
        raise ValueError("rank_average needs at least one score")
    return np.mean(cols, axis=0)


@dataclass(frozen=True)
class Result:
    """A score of one network: its value (mean over seeds), the value per seed and the seconds it took."""

    name: str
    value: float
    per_seed: tuple[float, ...]
    seconds: float


@dataclass(frozen=True)
class Scorer:
    """What scores are computed on: the proxy network at ``resolution`` and ``width`` (``nas.proxy``) with
    ``num_classes`` outputs, ``seeds`` initialisations, and ``batch`` (``(x, y)`` tensors) or, when ``None``,
    each seed's synthetic batch of ``batch_size`` Gaussian images and uniform labels."""

    resolution: int
    width: float = 1.0
    num_classes: int = 10
    in_chans: int = 3
    seeds: tuple[int, ...] = SEEDS
    batch_size: int = BATCH
    batch: Any = None

    @classmethod
    def for_space(cls, space: Any, **overrides: Any) -> Scorer:
        """The scorer of the proxy network a trial of ``space`` would train: the proxy's resolution and width
        (``nas.proxy``), the target's classes and input channels. A table space (``proxy: {kind: table}``) trains
        nothing, and its proxy settings still say what a cheap version of its networks is."""
        p, t = space.proxy, space.target
        kw = {"resolution": p.resolution, "width": p.width, "num_classes": t.num_classes, "in_chans": t.in_chans}
        return cls(**{**kw, **overrides})

    def score(self, genotype: Genotype, name: str) -> Result:
        """One single score (not a combination) of ``genotype``."""
        return self.scores(genotype, (name,))[name]

    def scores(self, genotype: Genotype, names: Sequence[str]) -> dict[str, Result]:
        """Several single scores of ``genotype``. Per seed the proxy network is built once; NASWOT, gradient norm
        and SNIP share one forward and backward pass, and each of them is charged that whole pass (plus the
        build) in its ``seconds``, so a score's time is what it would cost alone."""
        for n in names:
            if n not in SCORES:
                raise InputError(f"score: unknown single score {n!r} (known: {', '.join(SCORES)})")
        names = list(dict.fromkeys(names))
        out: dict[str, Result] = {}
        cost = [n for n in names if SCORES[n].kind == "cost"]
        if cost:
            from nas.cost.macs import count

            t0 = time.perf_counter()
            c = count(genotype, num_classes=self.num_classes)
            dt = time.perf_counter() - t0
            for n in cost:
                v = float({"params": c.params, "macs": c.macs, "depth": depth(genotype)}[n])
                out[n] = Result(n, v, (v,), dt)
        nets = [n for n in names if SCORES[n].kind != "cost"]
        if not nets:
            return out
        vals: dict[str, list[float]] = {n: [] for n in nets}
        secs = dict.fromkeys(nets, 0.0)
        for seed in self.seeds:
            for n, (v, dt) in self._one(genotype, nets, seed).items():
                vals[n].append(v)
                secs[n] += dt
        for n in nets:
            finite = [v for v in vals[n] if math.isfinite(v)]
            value = float(np.mean(finite)) if len(finite) == len(vals[n]) else float("-inf")
            out[n] = Result(n, value, tuple(vals[n]), secs[n])
        return {n: out[n] for n in names}

    def _one(self, genotype: Genotype, names: Sequence[str], seed: int) -> dict[str, tuple[float, float]]:
        import torch

        from nas.model import build
        from nas.proxy import proxy_genotype

        t0 = time.perf_counter()
        proxy = proxy_genotype(genotype, self.resolution, self.width)
        torch.manual_seed(seed)
        net = build(proxy, self.num_classes)
        if self.batch is not None:
            x, y = self.batch
        else:
            gen = torch.Generator().manual_seed(10_000 + seed)
            x = torch.randn((self.batch_size, self.in_chans, self.resolution, self.resolution), generator=gen)
            y = torch.randint(0, self.num_classes, (self.batch_size,), generator=gen)
        built = time.perf_counter() - t0
        out: dict[str, tuple[float, float]] = {}
        batch = [n for n in names if n in measures.BATCH_MEASURES]
        if batch:
            t0 = time.perf_counter()
            got = measures.batch_measures(net, x, y, batch)
            dt = time.perf_counter() - t0
            out.update({n: (got[n], built + dt) for n in batch})
        if "synflow" in names:
            t0 = time.perf_counter()
            v = measures.synflow(net, tuple(x.shape[1:]))
            out["synflow"] = (v, built + time.perf_counter() - t0)
        if "zen" in names:
            t0 = time.perf_counter()
            gen = torch.Generator().manual_seed(20_000 + seed)
            torch.manual_seed(30_000 + seed)  # the Gaussian re-initialisation
            v = measures.zen(net, x, net.head.pool, generator=gen)
            out["zen"] = (v, built + time.perf_counter() - t0)
        return out


def best_of(genotypes: Sequence[Genotype], name: str | Sequence[str], scorer: Scorer) -> tuple[int, np.ndarray]:
    """Screening: the index of the best-scoring of ``genotypes`` under score ``name`` (a single score: its
    value; a combination: the rank average among these candidates), and every candidate's value. Ties go to
    the earliest candidate."""
    if not genotypes:
        raise ValueError("best_of needs at least one candidate")
    names = components(name)
    res = [scorer.scores(g, names) for g in genotypes]
    cols = {n: np.array([r[n].value for r in res], dtype=float) for n in names}
    values = cols[names[0]] if len(names) == 1 else rank_average(cols)
    finite = np.where(np.isfinite(values), values, -np.inf)
    return int(np.argmax(finite)), values
