"""``nas export-best``'s evaluation step: the members on the test split, each judged against its tier's best
reference.

The references come from the study's ``baselines.json`` (``nas baselines``
with the same proxy recipe: each entry carries its ``test_recipe``); the best
of a tier is the one with the highest mean test accuracy among those whose
target costs fit the tier's limits (:func:`nas.export.matching.best_within`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from nas.config import TrainConfig
from nas.export.final import LEDGER, FinalEval, eval_seeds, recipe_key, run_final, summarize
from nas.export.matching import best_within
from nas.export.members import Member
from nas.export.significance import ALPHA, METHOD, welch
from nas.export.tiers import Tier


def verdict_fields(accs: Sequence[float], refs: Sequence[Mapping[str, Any]], tier: Tier) -> dict[str, Any]:
    """The row fields of a member's test accuracies (``accs``) judged against the best reference of ``tier``."""
    best = best_within(refs, tier)
    if best is None:
        return {"reference": None, "reference_test_accuracy": None, "reference_test_accuracy_std": None,
                "reference_test_seeds": None, "p_value": None, "verdict": None}
    v = welch(accs, best["test_accuracies"])
    return {"reference": best["name"], "reference_test_accuracy": best["test_accuracy"],
            "reference_test_accuracy_std": best["test_accuracy_std"], "reference_test_seeds": best["test_seeds"],
            "p_value": v.p_value, "verdict": v.word}


def evaluate_family(rows: list[dict[str, Any]], members: Sequence[Member], recipe: TrainConfig, study_dir: Path,
                    baselines: Sequence[Mapping[str, Any]], options: FinalEval) -> dict[str, Any]:
    """Train every member on the evaluation seeds (resuming from the study's ledger), add the test figures and
    the verdict to its row (``rows[i]`` is ``members[i]``'s), and return what family.json says about the run."""
    seeds = eval_seeds(recipe, options.seeds)
    key = recipe_key(recipe)
    models = [(f"{m.tier}: {m.genotype.name or m.genotype.hash}", m.genotype) for m in members]
    runs = run_final(models, recipe, seeds, Path(study_dir) / LEDGER, options)
    refs = [b for b in baselines if b.get("test_recipe") == key and b.get("test_accuracies")]
    notes = []
    if not refs:
        why = ("its references were trained with another proxy recipe or before test-split runs existed"
               if baselines else "the study has no baselines.json")
        notes.append(f"no verdicts: {why}; run `nas baselines --space {Path(study_dir) / 'space.yaml'} --study "
                     f"{study_dir}` and export again (the members' runs are kept in {LEDGER}, none is retrained)")
    for row, (name, _) in zip(rows, models, strict=True):
        row.update(summarize(runs[name]))
        row.update(verdict_fields(row["test_accuracies"], refs, Tier(row["tier"], row["limits"])))
    ran = sorted({w for row in rows for w in row.get("test_where") or ()})
    return {"recipe": dataclasses.asdict(recipe), "recipe_key": key, "seeds": seeds, "search_seed": recipe.seed,
            "where": ran,
            "method": METHOD, "alpha": ALPHA, "ledger": LEDGER, "references": len(refs), "notes": notes}
