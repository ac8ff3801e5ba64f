"""The outcome of a fidelity study: statistics per recipe, table rows, ``report.json`` and ``ranks.png``."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nas.fidelity import stats
from nas.fidelity.recipes import Recipe
from nas.fidelity.store import SCHEMA, Run
from nas.genotype import Genotype
from nas.io import atomic_write, atomic_write_json

REPORT_FILE = "report.json"
PLOT_FILE = "ranks.png"


@dataclass(frozen=True)
class RecipeStats:
    """One recipe against the reference (the reference's own entry agrees with itself: tau 1)."""

    recipe: str
    overrides: Mapping[str, Any]
    agreement: stats.Agreement
    noise: stats.Noise
    seconds_per_run: float  # mean training wall seconds of one (architecture, seed) run
    means: tuple[float, ...]  # mean accuracy per architecture, in the study's architecture order

    def to_dict(self) -> dict[str, Any]:
        a = self.agreement
        return {"recipe": self.recipe, "overrides": dict(self.overrides), "kendall_tau": a.kendall_tau,
                "spearman_rho": a.spearman_rho, "top_k_overlap": a.top_k_overlap, **self.noise.to_dict(),
                "seconds_per_run": self.seconds_per_run, "means": list(self.means)}


@dataclass(frozen=True)
class FidelityReport:
    """Statistics of a finished study; ``saturated`` when the reference's spread between architectures is
    not above its own seed noise (it cannot rank them, so no recipe's agreement with it means much)."""

    settings: Mapping[str, Any]
    architectures: tuple[Genotype, ...]
    runs: tuple[Run, ...]
    recipes: tuple[RecipeStats, ...]
    reference: RecipeStats
    k: int
    saturated: bool
    notes: tuple[str, ...] = ()
    paths: Mapping[str, Path] = field(default_factory=dict)  # report.json, ranks.png once written

    def to_dict(self) -> dict[str, Any]:
        """The JSON document: settings, architectures, every run and the statistics."""
        return {"schema": SCHEMA, "settings": dict(self.settings), "k": self.k, "saturated": self.saturated,
                "reference": self.reference.to_dict(), "recipes": [r.to_dict() for r in self.recipes],
                "architectures": [{"hash": g.hash, "genotype": g.to_dict()} for g in self.architectures],
                "runs": [r.to_dict() for r in self.runs], "notes": list(self.notes)}

    def rows(self) -> list[dict[str, str]]:
        """One row per candidate recipe, then the reference's: column name -> formatted cell."""
        return [_row(r, self.k) for r in (*self.recipes, self.reference)]


def _fmt(x: float | None, spec: str) -> str:
    return "-" if x is None else format(x, spec)


def _row(r: RecipeStats, k: int) -> dict[str, str]:
    a, n = r.agreement, r.noise
    changes = ", ".join(f"{key}={v}" for key, v in r.overrides.items()) or "(space's proxy)"
    return {"recipe": r.recipe, "changes": changes, "tau": _fmt(a.kendall_tau, ".2f"),
            "rho": _fmt(a.spearman_rho, ".2f"), f"top-{k}": _fmt(a.top_k_overlap, ".2f"),
            "seed std": _fmt(100 * n.seed_std, ".2f"), "seed |d|": _fmt(100 * n.seed_abs_diff, ".2f"),
            "arch std": _fmt(100 * n.arch_std, ".2f"), "noise/spread": _fmt(n.noise_ratio, ".2f"),
            "acc %": f"{100 * n.accuracy_min:.1f}-{100 * n.accuracy_max:.1f}",
            "s/run": _fmt(r.seconds_per_run, ".1f")}


def build(settings: Mapping[str, Any], architectures: Sequence[Genotype], candidates: Sequence[Recipe],
          reference: Recipe, seeds: Sequence[int], runs: Mapping[tuple[str, str, int], Run],
          notes: Sequence[str] = ()) -> FidelityReport:
    """The statistics of a study whose every (architecture, recipe, seed) run is in ``runs``."""
    hashes = [g.hash for g in architectures]

    def table(recipe: str) -> np.ndarray:
        return np.array([[runs[(h, recipe, s)].accuracy for s in seeds] for h in hashes])

    def seconds(recipe: str) -> float:
        return float(np.mean([runs[(h, recipe, s)].seconds for h in hashes for s in seeds]))

    ref = table(reference.name)
    k = stats.top_k(len(hashes))

    def entry(recipe: Recipe) -> RecipeStats:
        acc = table(recipe.name)
        return RecipeStats(recipe.name, dict(recipe.overrides), stats.agreement(acc, ref, k), stats.noise(acc),
                           seconds(recipe.name), tuple(float(m) for m in acc.mean(axis=1)))

    reference_stats = entry(reference)
    saturated = reference_stats.noise.arch_std <= reference_stats.noise.seed_std  # both 0: all equal
    notes = list(notes)
    if saturated:
        n = reference_stats.noise
        notes.append(f"reference {reference.name!r} is saturated: its spread between architectures "
                     f"({100 * n.arch_std:.2f} points) is below its seed noise ({100 * n.seed_std:.2f} points), "
                     "so it cannot rank them; use harder data or a harder reference")
    order = [(h, r.name, s) for s in seeds for r in (*candidates, reference) for h in hashes]
    return FidelityReport(settings=dict(settings), architectures=tuple(architectures),
                          runs=tuple(runs[key] for key in order), recipes=tuple(entry(r) for r in candidates),
                          reference=reference_stats, k=k, saturated=saturated, notes=tuple(notes))


def write_json(report: FidelityReport, path: Path) -> Path:
    return atomic_write_json(path, report.to_dict())


def write_plot(report: FidelityReport, path: Path, dpi: int = 110) -> Path:
    """Rank-vs-rank scatter, one panel per candidate recipe: reference rank on x, the recipe's on y (1 = best)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    ref_ranks = stats.ranks(np.array(report.reference.means)[:, None])
    n = len(report.architectures)
    panels = len(report.recipes)
    cols = min(panels, 3)
    rows = -(-panels // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 3.6 * rows), squeeze=False)
    for ax, r in zip(axes.flat, report.recipes, strict=False):
        ys = stats.ranks(np.array(r.means)[:, None])
        ax.plot([1, n], [1, n], color="0.8", lw=1, zorder=0)
        ax.scatter(ref_ranks, ys, s=22, color="tab:blue")
        tau = r.agreement.kendall_tau
        ax.set_title(f"{r.recipe}: tau {'-' if tau is None else f'{tau:.2f}'}", fontsize=10)
        ax.set_xlabel(f"rank under {report.reference.recipe}")
        ax.set_ylabel(f"rank under {r.recipe}")
        ax.set_xlim(0.5, n + 0.5)
        ax.set_ylim(0.5, n + 0.5)
        ax.set_aspect("equal")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    for ax in list(axes.flat)[panels:]:
        ax.axis("off")
    fig.suptitle(f"ranks of {n} architectures (1 = best)" + (" - reference saturated" if report.saturated else ""),
                 fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    return atomic_write(path, buf.getvalue())
