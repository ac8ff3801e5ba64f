"""The Pareto front and the hypervolume of trial records (:class:`~nas.results.record.TrialRecord` or the
plain JSON objects of ``trials.jsonl``).

Objectives are ``(metric, direction)`` pairs, given either as the space's
``Objective`` models or as ``{"metric": ..., "direction": ...}`` dicts. A
``reward`` objective (MnasNet's ``accuracy x (cost / target)^w``, with its
``cost``, ``target`` and ``w``) is computed from a record's accuracy and cost
here, in :func:`objective_values`; records never store it. With one
objective the front is the best trial (ties kept), and the hypervolume its
value over a reference of 0.

Hypervolume is computed in normalised coordinates so that figures are
comparable between studies and readable without units: every objective is
turned into a loss (accuracy -> ``-accuracy``) and divided by its reference
value (1 when that is 0), so with the usual reference point (accuracy 0,
each cost at its budget) the dominated share of the box ``[0, 1] x [0,
budget] x ...`` is a number in ``[0, 1]``. Optuna's exact WFG algorithm does
the computing (:mod:`nas.results.optuna_compat`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from nas.config import REWARD_W
from nas.results import optuna_compat

Record = Mapping[str, Any]  # a TrialRecord or a trials.jsonl object


#: What a ``reward`` objective adds to ``{"metric", "direction"}``: its cost, target and exponent.
REWARD_KEYS = ("cost", "target", "w")


def objective_spec(objectives: Iterable[Any]) -> list[dict[str, Any]]:
    """Plain ``[{"metric", "direction"}]`` from models or dicts (direction defaults as the space does); a
    ``reward`` objective also keeps ``cost``, ``target`` and ``w``."""
    out: list[dict[str, Any]] = []
    for o in objectives:
        get = o.get if isinstance(o, dict) else lambda k, o=o: getattr(o, k, None)
        metric = get("metric")
        direction = get("direction") or ("maximize" if metric in ("accuracy", "reward") else "minimize")
        spec: dict[str, Any] = {"metric": metric, "direction": direction}
        if metric == "reward":
            w = get("w")
            spec.update(cost=get("cost"), target=float(get("target")), w=REWARD_W if w is None else float(w))
        out.append(spec)
    return out


def reward(accuracy: float | None, cost: float | None, target: float, w: float = REWARD_W) -> float:
    """MnasNet's reward ``accuracy * (cost / target) ** w`` (``nan`` without an accuracy or a positive cost)."""
    if accuracy is None or cost is None or not cost > 0:
        return float("nan")
    return float(accuracy) * (float(cost) / target) ** w


def objective_values(record: Record, objectives: Iterable[Any]) -> tuple[float, ...]:
    """The record's values of the objectives, in their order and raw units (``nan`` where missing)."""
    vals = []
    for o in objective_spec(objectives):
        if o["metric"] == "reward":
            vals.append(reward(record.get("accuracy"), record.get(o["cost"]), o["target"], o["w"]))
            continue
        v = record.get(o["metric"])
        vals.append(float("nan") if v is None else float(v))
    return tuple(vals)


def is_feasible(record: Record) -> bool:
    """Trained to the end and within every budget."""
    return record.get("status") == "complete" and all(v <= 0 for v in (record.get("violations") or {}).values())


def _losses(records: Sequence[Record], objectives: Sequence[dict[str, str]]) -> np.ndarray:
    vals = np.array([objective_values(r, objectives) for r in records], dtype=float).reshape(len(records), -1)
    signs = np.array([-1.0 if o["direction"] == "maximize" else 1.0 for o in objectives])
    return vals * signs


def _candidates(records: Iterable[Record], objectives: Sequence[dict[str, str]]) -> list[Record]:
    """Feasible records with every objective value, one per architecture (the original, not its duplicates)."""
    best: dict[str, Record] = {}
    for r in records:
        if not is_feasible(r) or any(math.isnan(v) for v in objective_values(r, objectives)):
            continue
        h = r.get("hash") or str(r.get("number"))
        if h not in best or (best[h].get("duplicate_of") is not None and r.get("duplicate_of") is None):
            best[h] = r
    return sorted(best.values(), key=lambda r: r.get("number", 0))


def front(records: Iterable[Record], objectives: Iterable[Any]) -> list[Record]:
    """Feasible non-dominated records (the objects given), one per architecture, sorted by the first cost
    objective."""
    objs = objective_spec(objectives)
    cands = _candidates(records, objs)
    if not cands:
        return []
    on_front = optuna_compat.pareto_mask(_losses(cands, objs))
    members = [r for r, keep in zip(cands, on_front, strict=True) if keep]
    key = next((i for i, o in enumerate(objs) if o["direction"] == "minimize"), 0)
    return sorted(members, key=lambda r: objective_values(r, objs)[key])


def default_reference_point(records: Iterable[Record], objectives: Iterable[Any]) -> list[float]:
    """0 for maximised objectives; the worst feasible value for minimised ones (data-dependent: pass a fixed
    reference, e.g. the budgets, to compare hypervolumes across time or studies)."""
    objs = objective_spec(objectives)
    cands = _candidates(records, objs)
    ref = []
    for i, o in enumerate(objs):
        if o["direction"] == "maximize":
            ref.append(0.0)
        else:
            vals = [objective_values(r, objs)[i] for r in cands]
            ref.append(max(vals) if vals else 1.0)
    return ref


def hypervolume(records: Iterable[Record], objectives: Iterable[Any],
                reference_point: Sequence[float] | None = None) -> float:
    """Normalised hypervolume of the feasible front (see the module docstring); 0 when the front is empty."""
    objs = objective_spec(objectives)
    records = list(records)
    members = front(records, objs)
    if not members:
        return 0.0
    ref = list(reference_point) if reference_point is not None else default_reference_point(records, objs)
    if len(ref) != len(objs):
        raise ValueError(f"reference point has {len(ref)} values for {len(objs)} objectives")
    signs = np.array([-1.0 if o["direction"] == "maximize" else 1.0 for o in objs])
    ref_loss = np.array(ref, dtype=float) * signs
    scale = np.array([abs(v) if v != 0 else 1.0 for v in ref], dtype=float)
    losses = (_losses(members, objs) - ref_loss) / scale
    # Points on or beyond the reference contribute nothing; WFG wants them strictly inside.
    inside = np.all(losses < 0, axis=1)
    if not inside.any():
        return 0.0
    return optuna_compat.hypervolume(losses[inside], np.zeros(len(objs)))


def front_history(records: Sequence[Record], objectives: Iterable[Any],
                  reference_point: Sequence[float] | None = None) -> list[dict[str, Any]]:
    """``{"number", "hypervolume", "front_size"}`` after each finished trial, ``records`` in finishing order.

    One reference point serves the whole history (by default the one :func:`default_reference_point` picks
    for all the records), so the curve never falls and its values compare across trials.
    """
    objs = objective_spec(objectives)
    records = list(records)
    ref = list(reference_point) if reference_point is not None else default_reference_point(records, objs)
    out: list[dict[str, Any]] = []
    hv, size = 0.0, 0
    for i, r in enumerate(records):
        # Only a feasible trial with every objective value can change the front.
        if is_feasible(r) and not any(math.isnan(v) for v in objective_values(r, objs)):
            seen = records[: i + 1]
            hv, size = hypervolume(seen, objs, ref), len(front(seen, objs))
        out.append({"number": r.get("number"), "hypervolume": hv, "front_size": size})
    return out


def sig3(v: float) -> str:
    """Three significant digits, never in exponent form: 239, 4.13, 0.0345 (how fronts are tabulated)."""
    return f"{v:.0f}" if abs(v) >= 100 else f"{v:.3g}" if abs(v) >= 1e-3 else f"{v:.2e}"
