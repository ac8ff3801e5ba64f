"""Training-free scores: judge an architecture from its untrained proxy network in well under a second.

:mod:`nas.scores.measures` holds the measures (synflow, Zen-score, NASWOT, gradient norm, SNIP) as functions
of a built network and a batch; :mod:`nas.scores.registry` names them, adds parameters and MACs as baselines
and rank-average combinations (``default``), and computes a score of a genotype on the proxy network its trial
would train (:class:`Scorer`), averaged over initialisation seeds and timed; :func:`best_of` picks the
best-scoring of K proposals (screening).
"""

from nas.scores.registry import COMBINATIONS, SCORES, Result, Score, Scorer, best_of, components, rank_average

__all__ = ["COMBINATIONS", "SCORES", "Result", "Score", "Scorer", "best_of", "components", "rank_average"]
