"""``pareto.json`` and the reference point of a study's hypervolume.

The reference point is fixed per study: a search stores it in ``pareto.json``
(accuracy 0 and each cost at its budget, or a sampled bound without one) and
every later reader (``nas pareto``, the W&B study run) reuses it, so that
hypervolumes of one study compare across time and commands.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from nas.config import METRICS
from nas.io import atomic_write_json
from nas.results.front import default_reference_point, front, hypervolume, objective_spec
from nas.results.record import COST_METRICS

PARETO_FILE = "pareto.json"


def pareto_document(study: str, records: Sequence[Mapping[str, Any]], objectives: Iterable[Any],
                    reference_point: Sequence[float] | None = None) -> dict[str, Any]:
    """What ``pareto.json`` holds: objectives, the front (records as JSON objects), hypervolume, reference."""
    objs = objective_spec(objectives)
    ref = list(reference_point) if reference_point is not None else default_reference_point(records, objs)
    return {"study": study, "objectives": objs, "front": [dict(r) for r in front(records, objs)],
            "hypervolume": hypervolume(records, objs, ref), "reference_point": ref,
            "n_trials": len(records), "updated": time.time()}


def write_pareto_json(study_dir: str | Path, records: Sequence[Mapping[str, Any]], objectives: Iterable[Any],
                      reference_point: Sequence[float] | None = None, study: str | None = None) -> dict[str, Any]:
    """Rewrite ``study_dir/pareto.json`` atomically; returns the document.

    Not fsync'ed: the file is derived from ``trials.jsonl`` (which is) and rewritten by every search run.
    """
    study_dir = Path(study_dir)
    doc = pareto_document(study or study_dir.name, records, objectives, reference_point)
    atomic_write_json(study_dir / PARETO_FILE, doc, indent=1)
    return doc


def _stored(study_dir: str | Path, key: str) -> Any:
    """A field of the study's ``pareto.json`` (derived, rewritten by every run: anything odd there is None)."""
    try:
        return json.loads((Path(study_dir) / PARETO_FILE).read_text(encoding="utf-8")).get(key)
    except (OSError, ValueError, AttributeError, RecursionError):
        return None


def read_reference_point(study_dir: str | Path, n_objectives: int) -> list[float] | None:
    """The reference point an earlier run stored in ``pareto.json`` (so hypervolumes stay comparable)."""
    ref = _stored(study_dir, "reference_point")
    if (isinstance(ref, list) and len(ref) == n_objectives
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in ref)):
        return [float(v) for v in ref]
    return None


def stored_objectives(study_dir: str | Path) -> list[dict[str, str]] | None:
    """The objectives the study's own search used (``pareto.json``): a cost-only study has no accuracy, whatever
    its space says. None when the file is missing or does not hold a valid list."""
    objs = _stored(study_dir, "objectives")
    if not isinstance(objs, list) or not objs:
        return None
    try:
        spec = objective_spec(objs)
    except (ValueError, TypeError, KeyError, AttributeError):
        return None
    ok = all(o.get("metric") in METRICS and o.get("direction") in ("maximize", "minimize") for o in spec)
    return spec if ok and len({o["metric"] for o in spec}) == len(spec) else None


def study_objectives(space: Any) -> list[dict[str, str]]:
    """The objectives of a study's space (accuracy and MACs for a study without its space copy)."""
    return (objective_spec(getattr(space, "objectives", None) or [])
            or [{"metric": "accuracy", "direction": "maximize"}, {"metric": "macs", "direction": "minimize"}])


def space_budgets(space: Any) -> dict[str, float]:
    """The cost budgets a space sets, ``{metric: limit}`` (none for a study without its space copy)."""
    b = getattr(space, "budgets", None)
    return {m: float(v) for m in COST_METRICS if (v := getattr(b, m, None)) is not None}


def study_reference_point(study_dir: Path, objectives: list[dict[str, str]], budgets: dict[str, float],
                          records: Sequence[Mapping[str, Any]]) -> list[float]:
    """The hypervolume reference: pareto.json's (what the search reports), else the budgets, else the data's."""
    ref = read_reference_point(study_dir, len(objectives))
    if ref is not None:
        return ref
    if all(o["direction"] == "maximize" or o["metric"] in budgets for o in objectives):
        return [0.0 if o["direction"] == "maximize" else budgets[o["metric"]] for o in objectives]
    return default_reference_point(records, objectives)
