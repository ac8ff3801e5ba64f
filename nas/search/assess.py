"""How well the predictor sampler's model ranks architectures it has not seen (``nas predictor``).

The model is the sampler's own (:class:`nas.search.surrogate.Surrogate` on the
:class:`~nas.search.surrogate.Encoder` features: one column per decision plus the log costs, with the ridge
trend on the costs), fitted on ``n_train`` measured architectures drawn at random and scored on all the
others: Kendall tau, Spearman rho and the overlap of the predicted and the true top ``top`` share. Beside it,
the plain baseline a user would write: gradient boosting on a one-hot encoding of the decisions, without
costs. Measurements are a study's trained trials (``trials.jsonl``: complete, trained here or looked up,
never a refused proposal) or a table's networks (:mod:`nas.tables`); only the points of ``space`` count.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import kendalltau, spearmanr

from nas.errors import InputError
from nas.genotype import Genotype
from nas.search import budgets
from nas.search import evolve as ev
from nas.search.surrogate import Encoder, Surrogate, union_choices

__all__ = ["Measured", "assess", "measured_points", "onehot_baseline"]


@dataclass
class Measured:
    candidate: ev.Candidate
    accuracy: float


def measured_points(space: Any, path: str | Path) -> tuple[list[Measured], str]:
    """The measured architectures of ``path`` that are points of ``space`` (one per network), and what the file
    is (``table`` or ``study``). Refused, over-budget, failed and answered-from-another-trial records are left
    out: they measured nothing."""
    rows, kind = _rows(path)
    cost = _costs(space)
    out: list[Measured] = []
    seen: set[str] = set()
    for g, acc in rows:
        try:
            params = space.params_of(g)
        except InputError:  # not a point of this space
            continue
        c, exact = ev.make(space, random.Random(0), cost, [params])
        if not exact or c.hash in seen:
            continue
        seen.add(c.hash)
        out.append(Measured(c, acc))
    return out, kind


def _rows(path: str | Path) -> tuple[list[tuple[Genotype, float]], str]:
    from nas import tables
    from nas.results.store import read_records

    text = str(path)
    first = ""
    if text not in tables.SHIPPED:
        p = Path(text)
        if not p.is_file():
            raise InputError(f"{text}: no such file (a study's trials.jsonl or a table)")
        if not p.name.endswith(".gz"):
            with open(p, encoding="utf-8", errors="replace") as f:
                first = f.readline()
    if text in tables.SHIPPED or text.endswith(".gz") or '"metrics"' in first:
        t = tables.load(text)
        return [(g, float(m["accuracy"])) for g, m in t.items()], "table"
    rows = []
    for r in read_records(Path(text)):
        if r.status == "complete" and r.duplicate_of is None and r.accuracy is not None and r.epochs > 0 \
                and not any(v > 0 for v in r.violations.values()):
            rows.append((r.to_genotype(), float(r.accuracy)))
    return rows, "study"


def _costs(space: Any) -> ev.CostFn:
    def cost(g: Genotype) -> dict[str, float]:
        c = budgets.target_cost(space, g)
        return {"macs": float(c.macs), "params": float(c.params)}
    return cost


def onehot_baseline(train: Sequence[Measured], test: Sequence[Measured], seed: int) -> np.ndarray:
    """Gradient boosting on a one-hot encoding of the decisions (no costs): the baseline of the benchmarks."""
    from sklearn.ensemble import GradientBoostingRegressor

    names = sorted({(k, repr(v)) for m in train for k, v in m.candidate.params.items()})
    index = {kv: i for i, kv in enumerate(names)}

    def x(ms: Sequence[Measured]) -> np.ndarray:
        out = np.zeros((len(ms), len(names)))
        for r, m in enumerate(ms):
            for k, v in m.candidate.params.items():
                j = index.get((k, repr(v)))
                if j is not None:
                    out[r, j] = 1.0
        return out

    model = GradientBoostingRegressor(random_state=seed).fit(x(train), [m.accuracy for m in train])
    return model.predict(x(test))


def _sampler_model(train: Sequence[Measured], test: Sequence[Measured], seed: int, model: str,
                   score_cache: Any = None) -> np.ndarray:
    from nas.scores.cache import feature_values

    def costs(m: Measured) -> dict[str, float]:
        extra = feature_values(score_cache, m.candidate.genotype) if score_cache is not None else {}
        return {**m.candidate.costs, **extra}

    keys = ("macs", "params", *score_feature_keys(score_cache))
    enc = Encoder(union_choices([m.candidate.choices for m in train]), keys)
    sur = Surrogate(model, seed=seed).fit(enc.matrix([(m.candidate.params, costs(m)) for m in train]),
                                          np.array([m.accuracy for m in train]), trend=enc.cost_columns)
    return sur.predict(enc.matrix([(m.candidate.params, costs(m)) for m in test]))[0]


def score_feature_keys(score_cache: Any) -> tuple[str, ...]:
    """The feature columns of a score cache's single scores (none without a cache)."""
    return tuple(f"score:{n}" for n in score_cache.names) if score_cache is not None else ()


def _scores(pred: np.ndarray, true: np.ndarray, top: float) -> dict[str, float]:
    k = max(1, int(round(top * len(true))))
    top_true = set(np.argsort(-true, kind="stable")[:k])
    top_pred = set(np.argsort(-pred, kind="stable")[:k])
    tau = kendalltau(pred, true).statistic
    rho = spearmanr(pred, true).statistic
    return {"kendall_tau": _num(tau), "spearman": _num(rho), "top_overlap": len(top_true & top_pred) / k}


def _num(v: Any) -> float:
    return float(v) if v is not None and math.isfinite(float(v)) else float("nan")


def assess(points: Sequence[Measured], n_train: int, seeds: Sequence[int] = (0,), *, model: str = "gradient_boosting",
           top: float = 0.05, max_test: int | None = None, baseline: bool = True,
           score_cache: Any = None) -> dict[str, Any]:
    """Fit on ``n_train`` random points per seed, score on the rest (at most ``max_test`` of them); the mean over
    seeds and each seed's figures, for the sampler's model and (``baseline``) the one-hot baseline.
    ``score_cache`` (:class:`nas.scores.cache.ScoreCache`): its training-free scores are features of the model
    too, as the sampler's ``score_features`` option makes them."""
    if n_train < 2:
        raise InputError(f"--train: {n_train} training points; the model needs at least 2")
    if len(points) < n_train + 2:
        raise InputError(f"--train: {n_train} training points asked for, but only {len(points)} measured points of "
                         "the space are in the file (the rest are the test set: at least 2)")
    per_seed = []
    for seed in seeds:
        order = list(range(len(points)))
        random.Random(seed).shuffle(order)
        train = [points[i] for i in order[:n_train]]
        test = [points[i] for i in order[n_train:]][:max_test] if max_test else [points[i] for i in order[n_train:]]
        true = np.array([m.accuracy for m in test])
        row = {"seed": seed, **_scores(_sampler_model(train, test, seed, model, score_cache), true, top)}
        if baseline:
            row["baseline"] = _scores(onehot_baseline(train, test, seed), true, top)
        per_seed.append(row)
    n_test = min(len(points) - n_train, max_test or len(points))
    out: dict[str, Any] = {"model": model, "n_train": n_train, "n_test": n_test, "seeds": list(seeds),
                           "top": top, "score_features": list(score_feature_keys(score_cache))}
    for key in ("kendall_tau", "spearman", "top_overlap"):
        out[key] = float(np.mean([r[key] for r in per_seed]))
    if baseline:
        out["baseline"] = {"model": "gradient boosting on one-hot decisions", **{
            key: float(np.mean([r["baseline"][key] for r in per_seed]))
            for key in ("kendall_tau", "spearman", "top_overlap")}}
    out["per_seed"] = per_seed
    return out
