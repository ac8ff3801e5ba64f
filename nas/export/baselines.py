"""``nas baselines``: the shipped reference architectures trained, tested and costed as a space's trials are.

Each reference is taken at the space's target resolution and class count and,
when tiers are given, width-scaled to each tier's budget
(:mod:`nas.export.matching`); otherwise as given. Every variant is trained
from scratch with the space's proxy recipe on the evaluation seeds and scored
on the test split (:mod:`nas.export.final`, resumable through the study's
``final_eval.jsonl``); its validation accuracy, from the same runs, is what
the Pareto plots show beside the trials.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nas.config import planned_reports, with_overrides
from nas.export.files import costing_for_space
from nas.export.final import FinalEval, eval_seeds, recipe_key, run_final, summarize
from nas.export.matching import REFERENCE_DIR, Reference, analytic_costs, reference_genotypes, scale_references
from nas.export.significance import METHOD
from nas.export.tiers import Tier

__all__ = ["evaluate_baselines", "plan_references"]


def plan_references(space: Any, names: Sequence[str] | None = None, tiers: Sequence[Tier] | None = None,
                    costing: Any = None) -> tuple[list[Reference], list[str]]:
    """The reference variants to train: each reference scaled to each tier's budget, or (no tiers) as given;
    and a note for each that cannot reach a tier."""
    refs = reference_genotypes(space, names)
    if not tiers:
        return [Reference(n, g) for n, g in refs.items()], []
    plan, notes = [], []
    for t in tiers:
        # Latency is predicted (and maybe timed) only for a tier that limits it: bisection costs many networks.
        cost_fn = costing.costs if costing is not None and "latency_ms" in t.limits else analytic_costs(
            space.target.num_classes)
        scaled, missed = scale_references(refs, t, cost_fn)
        plan += scaled
        notes += missed
    return plan, notes


def evaluate_baselines(space: Any, names: Sequence[str] | None = None, *, ledger: Path,
                       tiers: Sequence[Tier] | None = None, final: FinalEval | None = None, measure: bool = False,
                       epochs: int | None = None) -> dict[str, Any]:
    """Train every reference variant (:func:`plan_references`) on the evaluation seeds and cost it like a trial.

    Costs are those of the variant at the space's target resolution and class count (as every trial's);
    ``accuracy`` is the mean validation accuracy and ``test_accuracy`` the mean test accuracy over the seeds
    (``proxy.seed + 1 + i``), with their standard deviations and the per-seed values.
    """
    opts = final or FinalEval()
    costing = costing_for_space(space, measure=measure)
    proxy = with_overrides(space.proxy, epochs=epochs) if epochs else space.proxy
    plan, notes = plan_references(space, names, tiers, costing)
    seeds = eval_seeds(proxy, opts.seeds)
    label = {id(r): r.name if r.tier is None else f"{r.tier}: {r.name}" for r in plan}
    runs = run_final([(label[id(r)], r.genotype) for r in plan], proxy, seeds, ledger, opts)
    limits = {t.name: dict(t.limits) for t in tiers or ()}
    key = recipe_key(proxy)
    refs = []
    for r in plan:
        s = summarize(runs[label[id(r)]])
        costs = costing.costs_or_none(r.genotype)
        refs.append({"name": r.name, "reference": r.reference, "tier": r.tier, "limits": limits.get(r.tier),
                     "width": r.width, "file": str(REFERENCE_DIR / f"{r.reference}.yaml"), "hash": r.genotype.hash,
                     "genotype": r.genotype.to_dict(), "macs": int(costs["macs"]), "params": int(costs["params"]),
                     "latency_ms": costs.get("latency_ms"), "latency_ms_measured": costing.measured(r.genotype),
                     "accuracy": s.pop("val_accuracy"), "accuracy_std": s.pop("val_accuracy_std"),
                     "accuracies": s.pop("val_accuracies"), "epochs": planned_reports(proxy),
                     "train_s": s.pop("test_train_s"),
                     "status": "complete", "test_recipe": key, **s})
    return {"space": space.name, "target": space.target.model_dump(), "proxy": dataclasses.asdict(proxy),
            "test_recipe": key, "seeds": len(seeds), "test_seeds": seeds, "tiers": limits or None,
            "method": METHOD, "references": refs, "notes": notes, "updated": time.time()}
