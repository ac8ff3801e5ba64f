"""Pareto analysis of study records (one ``trials.jsonl`` object each).

Objectives are ``(metric, direction)`` pairs, given either as the space's
``Objective`` models or as ``{"metric": ..., "direction": ...}`` dicts.

Hypervolume is computed in normalised coordinates so that figures are
comparable between studies and readable without units: every objective is
turned into a loss (accuracy -> ``-accuracy``) and divided by its reference
value (1 when that is 0), so with the usual reference point (accuracy 0,
each cost at its budget) the dominated share of the box ``[0, 1] x [0,
budget] x ...`` is a number in ``[0, 1]``. Optuna's exact WFG algorithm does
the computing.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from optuna._hypervolume import compute_hypervolume
from optuna.study._multi_objective import _is_pareto_front

PARETO_FILE = "pareto.json"


def objective_spec(objectives: Iterable[Any]) -> list[dict[str, str]]:
    """Plain ``[{"metric", "direction"}]`` from models or dicts (direction defaults as the space does)."""
    out = []
    for o in objectives:
        metric = o["metric"] if isinstance(o, dict) else o.metric
        direction = (o.get("direction") if isinstance(o, dict) else o.direction) or (
            "maximize" if metric == "accuracy" else "minimize")
        out.append({"metric": metric, "direction": direction})
    return out


def objective_values(record: dict[str, Any], objectives: Iterable[Any]) -> tuple[float, ...]:
    """The record's values of the objectives, in their order and raw units (``nan`` where missing)."""
    vals = []
    for o in objective_spec(objectives):
        v = record.get(o["metric"])
        vals.append(float("nan") if v is None else float(v))
    return tuple(vals)


def is_feasible(record: dict[str, Any]) -> bool:
    """Trained to the end and within every budget."""
    return record.get("status") == "complete" and all(v <= 0 for v in (record.get("violations") or {}).values())


def _losses(records: Sequence[dict[str, Any]], objectives: Sequence[dict[str, str]]) -> np.ndarray:
    vals = np.array([objective_values(r, objectives) for r in records], dtype=float).reshape(len(records), -1)
    signs = np.array([-1.0 if o["direction"] == "maximize" else 1.0 for o in objectives])
    return vals * signs


def _candidates(records: Iterable[dict[str, Any]], objectives: Sequence[dict[str, str]]) -> list[dict[str, Any]]:
    """Feasible records with every objective value, one per architecture (the original, not its duplicates)."""
    best: dict[str, dict[str, Any]] = {}
    for r in records:
        if not is_feasible(r) or any(math.isnan(v) for v in objective_values(r, objectives)):
            continue
        h = r.get("hash") or str(r.get("number"))
        if h not in best or (best[h].get("duplicate_of") is not None and r.get("duplicate_of") is None):
            best[h] = r
    return sorted(best.values(), key=lambda r: r.get("number", 0))


def front(records: Iterable[dict[str, Any]], objectives: Iterable[Any]) -> list[dict[str, Any]]:
    """Feasible non-dominated records, one per architecture, sorted by the first cost objective."""
    objs = objective_spec(objectives)
    cands = _candidates(records, objs)
    if not cands:
        return []
    on_front = _is_pareto_front(_losses(cands, objs), assume_unique_lexsorted=False)
    members = [r for r, keep in zip(cands, on_front, strict=True) if keep]
    key = next((i for i, o in enumerate(objs) if o["direction"] == "minimize"), 0)
    return sorted(members, key=lambda r: objective_values(r, objs)[key])


def default_reference_point(records: Iterable[dict[str, Any]], objectives: Iterable[Any]) -> list[float]:
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


def hypervolume(records: Iterable[dict[str, Any]], objectives: Iterable[Any],
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
    return float(compute_hypervolume(losses[inside], np.zeros(len(objs)), assume_pareto=True))


def pareto_document(study: str, records: Sequence[dict[str, Any]], objectives: Iterable[Any],
                    reference_point: Sequence[float] | None = None) -> dict[str, Any]:
    objs = objective_spec(objectives)
    ref = list(reference_point) if reference_point is not None else default_reference_point(records, objs)
    return {"study": study, "objectives": objs, "front": front(records, objs),
            "hypervolume": hypervolume(records, objs, ref), "reference_point": ref,
            "n_trials": len(records), "updated": time.time()}


def write_pareto_json(study_dir: str | Path, records: Sequence[dict[str, Any]], objectives: Iterable[Any],
                      reference_point: Sequence[float] | None = None, study: str | None = None) -> dict[str, Any]:
    """Rewrite ``study_dir/pareto.json`` atomically (temp file + ``os.replace``); returns the document.

    Not fsync'ed: the file is derived from ``trials.jsonl`` (which is) and rewritten by every search run.
    """
    study_dir = Path(study_dir)
    doc = pareto_document(study or study_dir.name, records, objectives, reference_point)
    tmp = study_dir / f".{PARETO_FILE}.tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=1)
    os.replace(tmp, study_dir / PARETO_FILE)
    return doc


def read_reference_point(study_dir: str | Path, n_objectives: int) -> list[float] | None:
    """The reference point an earlier run stored in ``pareto.json`` (so hypervolumes stay comparable)."""
    try:
        ref = json.loads((Path(study_dir) / PARETO_FILE).read_text()).get("reference_point")
    except (OSError, ValueError, AttributeError):
        return None
    if isinstance(ref, list) and len(ref) == n_objectives and all(isinstance(v, (int, float)) for v in ref):
        return [float(v) for v in ref]
    return None


# -- front history and table (issue 8) ---------------------------------------------

def front_history(records: Sequence[dict[str, Any]], objectives: Iterable[Any],
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


def front_table(members: Sequence[dict[str, Any]], objectives: Iterable[Any], title: str | None = None):
    """A ``rich.table.Table`` of front members: trial, objectives in readable units, costs, genotype summary."""
    from rich.markup import escape
    from rich.table import Table

    from nas.genotype import from_dict

    objs = objective_spec(objectives)
    table = Table(title=title, header_style="bold")
    for name in ("trial", "hash", "acc.\n(%)", "MACs\n(M)", "params\n(M)", "latency\n(ms)", "epochs"):
        table.add_column(name, justify="left" if name == "hash" else "right", no_wrap=True)
    table.add_column("architecture", overflow="fold", min_width=12)
    bold = {o["metric"] for o in objs}

    def cell(metric: str, text: str) -> str:
        return f"[bold]{text}[/bold]" if metric in bold else text

    for r in members:
        lat = r.get("latency_ms")
        try:
            summary = from_dict(r["genotype"]).summary()
        except Exception:  # a stored genotype this version cannot read still gets its row
            summary = "?"
        acc = r.get("accuracy")
        table.add_row(str(r.get("number")), str(r.get("hash", ""))[:8],  # short form; --json has it whole
                      cell("accuracy", "n/a" if acc is None else f"{100 * acc:.2f}"),
                      cell("macs", sig3(r["macs"] / 1e6)), cell("params", sig3(r["params"] / 1e6)),
                      cell("latency_ms", "n/a" if lat is None else sig3(lat)), str(r.get("epochs", "")),
                      escape(summary))
    return table


def sig3(v: float) -> str:
    """Three significant digits, never in exponent form: 239, 4.13, 0.0345."""
    return f"{v:.0f}" if abs(v) >= 100 else f"{v:.3g}" if abs(v) >= 1e-3 else f"{v:.2e}"

