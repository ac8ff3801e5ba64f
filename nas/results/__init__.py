"""What a search leaves behind, read and written in one place (no printing, no torch).

* :mod:`~nas.results.record`: :class:`TrialRecord`, one finished trial (one line of ``trials.jsonl``);
* :mod:`~nas.results.store`: the study directory (:class:`StudyDir`), its lock, reading and appending records,
  ``baselines.json``;
* :mod:`~nas.results.front`: the Pareto front, the hypervolume and its history;
* :mod:`~nas.results.pareto`: ``pareto.json`` and the reference point of a study's hypervolume;
* :mod:`~nas.results.book`: the running tally a search keeps (records, counts, front, ``pareto.json``);
* :mod:`~nas.results.optuna_compat`: every use of Optuna's private API in nas.

Search, tracking, plots, export and the CLI all read results through these modules. Submodules are imported on
use, so that reading a record does not import Optuna.
"""
