"""Fidelity: how well a cheap proxy recipe ranks architectures as a longer reference training does.

:func:`run_fidelity` samples N feasible architectures of a space, trains each
under candidate recipes and a reference recipe on several seeds, and reports
per recipe Kendall tau, Spearman rho and top-k overlap against the reference,
the seed noise against the spread between architectures, and the training
seconds per run. A study directory holds ``fidelity.json`` (settings),
``runs.jsonl`` (finished runs; a rerun resumes), ``report.json`` and
``ranks.png``. Users run it on their own data to choose a proxy.
"""

from nas.fidelity.recipes import Recipe, default_recipes
from nas.fidelity.report import FidelityReport, RecipeStats
from nas.fidelity.runner import run_fidelity, train_proxy
from nas.fidelity.stats import Agreement, Noise, agreement, noise, top_k
from nas.fidelity.store import Run

__all__ = ["Agreement", "FidelityReport", "Noise", "Recipe", "RecipeStats", "Run", "agreement", "default_recipes",
           "noise", "run_fidelity", "top_k", "train_proxy"]
