"""The hand-designed references at a family tier's budget: width-scaled to it, or as given.

A family member is compared with references of the same budget. Each shipped
reference (``search_spaces/reference/``, at the space's target resolution and
input channels) is compound-scaled in width to the widest network within the
tier's limits (:func:`nas.export.members.scale_to_budget`, the scaler that
fills a tier without a trained design), so every tier has one variant of each
reference that fits. ``nas baselines``, ``nas export-best`` and
``benchmarks/bench_family.py`` all match references this way.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nas.errors import InputError, OptionError
from nas.export.members import scale_to_budget
from nas.export.tiers import Tier
from nas.genotype import Genotype

CostFn = Callable[[Genotype], dict[str, float]]
REFERENCE_DIR = Path(__file__).resolve().parents[2] / "search_spaces" / "reference"


def reference_files(names: Sequence[str] | None = None) -> list[Path]:
    """The shipped reference genotypes (``search_spaces/reference/*.yaml``), optionally by name."""
    files = sorted(REFERENCE_DIR.glob("*.yaml"))
    if names:
        by_name = {f.stem: f for f in files}
        missing = [n for n in names if n not in by_name]
        if missing:
            raise OptionError("refs", f"{missing[0]!r}: no such reference (shipped: {', '.join(by_name)})")
        files = [by_name[n] for n in names]
    return files


@dataclass(frozen=True)
class Reference:
    """A shipped reference as trained: as given (``tier`` None, width 1) or scaled to a tier's budget."""

    reference: str  # the shipped name, e.g. mixnet_s
    genotype: Genotype
    width: float = 1.0
    tier: str | None = None

    @property
    def name(self) -> str:
        return self.reference if self.tier is None else f"{self.reference} x{self.width:g}"


def reference_genotypes(space: Any, names: Sequence[str] | None = None) -> dict[str, Genotype]:
    """The shipped references (all, or ``names``) at the space's target resolution and input channels."""
    from nas.genotype import load

    t = space.target
    return {f.stem: load(f).replace(resolution=t.resolution, in_chans=t.in_chans) for f in reference_files(names)}


def analytic_costs(num_classes: int) -> CostFn:
    """MACs and parameters of the target network: all a tier without a latency limit needs to match."""
    from nas.cost.macs import count

    def costs(g: Genotype) -> dict[str, float]:
        c = count(g, num_classes=num_classes)
        return {"macs": c.macs, "params": c.params}

    return costs


def scale_references(refs: Mapping[str, Genotype], tier: Tier, cost_fn: CostFn) -> tuple[list[Reference], list[str]]:
    """Every reference scaled to the widest variant within ``tier``'s limits; a note for each that cannot be."""
    out, notes = [], []
    for name, g in refs.items():
        try:
            sg, w = scale_to_budget(g, tier, cost_fn)
        except InputError:
            notes.append(f"tier {tier.name}: {name} cannot be scaled to {tier.describe()}; skipped")
            continue
        out.append(Reference(name, sg.replace(name=f"{name}_x{w:g}"), w, tier.name))
    return out, notes


def best_within(entries: Sequence[Mapping[str, Any]], tier: Tier) -> Mapping[str, Any] | None:
    """The reference entry (``baselines.json``) with the highest mean test accuracy among those whose target
    costs fit ``tier``'s limits: the best hand-designed network of the member's budget."""
    fits = [e for e in entries if e.get("test_accuracies") and tier.within({m: e.get(m) for m in tier.limits})]
    return max(fits, key=lambda e: e["test_accuracy"], default=None)
