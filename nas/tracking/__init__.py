"""Study tracking: W&B runs (one per trial plus one study run) and the local Pareto plots.

A search calls :class:`StudyTracker` (a search listener, see
:mod:`nas.search.events`) as trials start, report epochs and finish. W&B
work happens on one background thread fed by a queue, so a slow or failing
W&B never holds up or kills the search: a call only enqueues, the first W&B
error is logged once and switches W&B off for the rest of the study, and
:meth:`StudyTracker.close` waits a bounded time. The plots
(``pareto.html``/``pareto.png``, :mod:`nas.plots`) are written by ``close``
whatever the W&B mode.

W&B layout
----------
* one run per *trained* trial (``job_type="trial"``, grouped by study):
  config = hash, the architecture in one line, its size, the proxy recipe,
  the tier and the genotype as one nested value (``runs.trial_config``);
  per-epoch metrics; costs, status and state in words in the summary. A
  proposal that was never trained (over budget, refused for its tier, a
  duplicate, a cost-only trial) has no run: its row in the study's
  ``trials`` table (status, tier, state) is all there is to show;
* one study run (``job_type="study"``): config = what the study is (space
  name, sampler, seed, scheduler, trials, concurrency, objectives, budgets,
  target, proxy recipe; no local paths); ``hypervolume`` and front size after
  every finished trial, and (at most every ``table_every_s`` seconds and at
  close) the ``trials`` and ``pareto_front`` tables, scatter charts of every
  trial and of the front (accuracy vs MACs, and vs latency when trials have one) and the hypervolume
  history; at close, the two-panel figure of ``pareto.html`` as an
  interactive chart (every trial, the front highlighted, references), the
  page itself and ``pareto.png``;
* every run is tagged with the space, the sampler, the scheduler and
  ``train`` or ``cost-only``.

Offline by default, under ``<study_dir>/wandb`` (``wandb sync`` uploads it
later); ``mode`` is ``online``, ``offline`` or ``disabled``; the environment
variable ``WANDB_MODE=disabled`` also turns it off. Project and entity come
from ``WANDB_PROJECT``/``WANDB_ENTITY`` when set, else the space's
``tracking`` section. Nothing here reads or writes an API key: W&B itself
takes it from its own login or ``WANDB_API_KEY``.

An offline run's data is its ``run-<id>.wandb`` file (protobuf records in a
LevelDB-log-style container); :func:`read_run` (:mod:`nas.tracking.offline`)
reads config, summary and history back without network or account.
"""

from nas.tracking.offline import media_file, offline_runs, read_run, read_table
from nas.tracking.runs import MODES, StudyTracker, flatten_genotype, resolve_mode

__all__ = ["MODES", "StudyTracker", "flatten_genotype", "media_file", "offline_runs", "read_run", "read_table",
           "resolve_mode"]
