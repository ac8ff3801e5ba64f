"""``nas search``: open (or resume) a study, propose, train on Ray Tune, keep the results; never prints.

:func:`run_search` resolves the options (:mod:`nas.search.settings`), locks
``<out>/<study>/``, rebuilds the sampler's history from the storage file
(:mod:`nas.search.resume`), and runs the trials: in cost-only mode
(``objective="cost"``) in this process, with nothing to train; otherwise on
Ray Tune (:mod:`nas.search.tuning`) with our own searcher, ASHA or FIFO,
reused actors and no Tune checkpoints or loggers (the study directory is the
record). How proposals become trials (budgets, duplicates, pruned trials and
what Optuna is told) is in :mod:`nas.search.searcher`; the Optuna storage and
its mirror in :mod:`nas.search.storage`; what the study directory holds in
:mod:`nas.results`. Whoever wants to watch (the CLI's progress view, the W&B
tracker) passes listeners (:mod:`nas.search.events`).

Choices worth knowing:

* Where trials run: Ray is started (or joined) before the study directory
  is touched; settings the space and the flags leave unset (GPUs per trial,
  concurrency) are chosen from its nodes, a request no local node can hold
  is refused (:mod:`nas.search.resources`), and each run is appended to
  ``runs.json``. A trial picks its device from what Ray gave it and reports
  it (:mod:`nas.search.devices`); a mismatch is told to the listeners once.
* ``trials`` is the total number of finished trials the study holds,
  whatever their status: a resumed study runs ``N`` minus what it has.
  Infeasible proposals and duplicates count (they are trials of the Optuna
  study too, as with ``study.optimize(n_trials=N)``) but cost milliseconds.
* Resume: finished trials stay as recorded; interrupted ones (RUNNING in the
  storage) are marked FAIL and their architectures queued again
  (``enqueue_trial``); the sampler is rebuilt on the stored history with its
  seed offset by the number of stored trials, so it does not replay the first
  run's proposals (which would all be duplicates).
* Ctrl-C (or SIGTERM) stops launching, stops the running trials without
  recording them (they re-run on resume) and returns ``interrupted``; a second
  Ctrl-C aborts at once (KeyboardInterrupt), and the study still resumes.
* Hypervolume uses a fixed reference point: accuracy 0 and each cost at its
  budget (or, without a budget, the largest cost of a fixed sample of the
  space), stored in ``pareto.json`` and reused on resume.
* ``pareto.json`` is rewritten after every trained trial, and at most every
  :data:`nas.results.book.PARETO_MIN_INTERVAL_S` for answered ones (and at the end).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna

from nas.config import planned_reports
from nas.errors import InputError, OptionError
from nas.io import require_free_space
from nas.results.book import StudyBook
from nas.results.pareto import read_reference_point
from nas.results.store import RecordWriter, StudyLock, read_records, repair_torn_tail
from nas.search import budgets, resources
from nas.search.events import Listeners, SearchInfo, SearchListener, SearchSummary
from nas.search.objective import run_trial, trial_config
from nas.search.quiet import trials_paused
from nas.search.resume import RESUME_SLACK, Reconciled, keep_space, reconcile
from nas.search.samplers import make_sampler, quiet_optuna
from nas.search.searcher import Launch, Proposer
from nas.search.settings import SearchOptions, SearchRun, prepare, reference_point
from nas.search.signals import Interrupts, interrupts
from nas.search.storage import Mirror, load_or_create, open_storage
from nas.tables import accuracy_of

__all__ = ["SearchOptions", "SearchSummary", "run_search"]

log = logging.getLogger(__name__)

Trainable = Callable[[dict[str, Any]], Any]
WRITER_EXIT_S = 60.0  # longest wait for the storage writer to exit once everything is stored


def run_search(opts: SearchOptions, listeners: Iterable[SearchListener] = (),
               trainable: Trainable | None = None) -> SearchSummary:
    """Run (or resume) a search; see the module docstring. ``trainable`` replaces the proxy training."""
    t_start = time.perf_counter()
    run = prepare(opts)
    ray_started = False
    summary: SearchSummary | None = None
    with interrupts() as guard:
        try:
            if run.in_process:
                placement = resources.cost_only(run.settings)
            else:
                placement, ray_started = _start_ray(run)
                guard.install()  # ray.init replaced the SIGTERM handler with one that skips every finally
            run = dataclasses.replace(run, settings=placement.settings)
            require_free_space(run.sd.root)  # a full disk is said so, before a half-created study
            run.sd.root.mkdir(parents=True, exist_ok=True)
            lock = StudyLock(run.sd.root)
            lock.acquire()
            if hasattr(run.latency_fn, "keep_in"):  # the study keeps the latency entries it used (nas.latency.cache)
                from nas.latency.cache import STUDY_TABLE

                run.latency_fn.keep_in(run.sd.root / STUDY_TABLE)
            try:
                summary = _run_locked(run, placement, Listeners(listeners), trainable or run_trial, lock, t_start,
                                      guard)
            finally:
                lock.release()
        finally:
            if ray_started:
                import ray

                with guard.shielded():  # a second Ctrl-C here would leave Ray's processes running
                    ray.shutdown()
        if summary is not None:
            summary.interrupted = summary.interrupted or guard.interrupted  # also a signal after the last trial
        return summary


def _start_ray(run: SearchRun) -> tuple[resources.Placement, bool]:
    """Start or join Ray, then choose what the settings leave to the cluster; an impossible request on a local
    Ray fails here, before the study directory is touched (Ray would wait for the missing node for ever)."""
    from nas.search import tuning

    st = run.settings
    started = tuning.start_ray(run.opts.address, tuning.local_cpus(st.concurrency, st.cpus_per_trial))
    try:
        return resources.place(st, run.space.proxy, resources.ray_cluster(local=not run.opts.address)), started
    except BaseException:
        if started:
            tuning.ray.shutdown()
        raise


@dataclass
class _Study:
    """The two copies of the Optuna study (see :mod:`nas.search.storage`) and what resuming found."""

    memory: optuna.Study
    mirror: Mirror
    kind: str
    reconciled: Reconciled


def _open_study(run: SearchRun, records: list[Any], lock: StudyLock) -> _Study:
    sd, st = run.sd, run.settings
    kind = sd.existing_storage() or st.storage
    if run.opts.storage and kind != run.opts.storage:
        raise OptionError("storage", f"the study already uses {kind} ({sd.storage_file(kind)})")
    quiet_optuna()
    directions, metrics = [o["direction"] for o in run.objectives], [o["metric"] for o in run.objectives]
    if sd.existing_storage() is not None or records:
        storage = open_storage(sd, kind)
        try:
            persistent = load_or_create(storage, run.name, directions, metrics, sd.storage_file(kind))
            rec = reconcile(persistent, records, run.space, run.objectives, sd,
                            slack=RESUME_SLACK + 2 * (st.concurrency or 0))
        except InputError:
            engine = getattr(storage, "engine", None)  # SQLite: closing removes the -wal/-shm files it opened
            if engine is not None:
                engine.dispose()
            raise
    else:  # a new study: the storage writer creates it, in parallel with the rest of the start
        rec = Reconciled(trials=[])
    score_cache = None
    if st.score_features is not None:  # the predictor sampler's score features, kept in the study folder
        from nas.scores import Scorer
        from nas.scores.cache import ScoreCache

        score_cache = ScoreCache(Scorer.for_space(run.space, seeds=(0,)), st.score_features, sd.root / "scores.jsonl")
    sampler = make_sampler(st.sampler, (st.seed + len(rec.trials)) % 2**32, st.trials, st.concurrency, space=run.space,
                           objectives=run.objectives, cost_fn=lambda g: budgets.target_cost(run.space, g),
                           score_cache=score_cache)
    memory = optuna.create_study(directions=directions, sampler=sampler)
    memory.set_metric_names(metrics)
    memory.add_trials(rec.trials)
    mirror = Mirror(sd, kind, run.name, directions, metrics, pass_fds=(lock.fd,))
    return _Study(memory, mirror, kind, rec)


def _run_locked(run: SearchRun, placement: resources.Placement, listeners: Listeners, trainable: Trainable,
                lock: StudyLock, t_start: float, guard: Interrupts) -> SearchSummary:
    earlier = resources.read_runs(run.sd.root)
    keep_space(run.space, run.sd)
    records = read_records(run.sd.trials, skip_torn_tail=True)
    study = _open_study(run, records, lock)  # refuses a storage that disagrees with the records: nothing changed
    torn = repair_torn_tail(run.sd.trials)  # a crash or a full disk mid-append: that trial simply runs again
    writer = book = proposer = None
    interrupted = False
    try:
        for params in study.reconciled.requeue:
            study.memory.enqueue_trial(params)
            study.mirror.upsert(study.memory.get_trials(deepcopy=False)[-1])
        ref = (read_reference_point(run.sd.root, len(run.objectives))
               or reference_point(run.space, run.objectives, run.latency_fn))
        book = StudyBook(run.sd, run.name, run.objectives, ref, records)
        writer = RecordWriter(run.sd.trials)
        proposer = _proposer(run, placement, study.memory, records, writer, study.mirror,
                             lambda r: (book.add(r), listeners.trial_finished(r)))
        # Recorded once the study is known to resume: a refused run leaves no trace.
        runs = resources.record_run(run.sd.root, resources.run_entry(
            placement, run.opts.objective, run.opts.address, run.opts.execution_overrides()), earlier)
        if torn:
            listeners.message(torn)
        listeners.search_started(SearchInfo(
            study=run.name, study_dir=run.sd.root, space=run.space, settings=run.settings, wandb=run.wandb,
            objectives=run.objectives, cost_only=run.cost_only, book=book,
            requeued=study.reconciled.abandoned, repaired=study.reconciled.repaired, runs=runs))
        _tell_placement(listeners, placement, runs)
        proposer.stop = guard.stop
        if proposer.exhausted or guard.interrupted:
            pass
        elif run.cost_only:
            proposer.answer_all()
        elif run.looked_up:
            _look_up(run, proposer, listeners, guard.stop)
        elif run.scored:
            _score(run, proposer, listeners, guard.stop)
        else:
            _train(run, proposer, trainable, listeners, guard.stop)
        interrupted = guard.interrupted
    finally:
        propagating = sys.exc_info()[0] is not None
        if writer is not None:
            writer.close()
        store = run.sd.storage_file(study.kind).name
        if study.mirror.pending():
            listeners.message(f"saving {study.mirror.pending()} trial updates to {store} ...")
        try:
            study.mirror.close(progress=lambda left: listeners.message(f"saving to {store}: {left} updates left"))
        except RuntimeError:
            if not propagating:
                raise
            log.warning("the storage mirror failed too; trials.jsonl is complete and the next run repairs it")
        summary = None
        if book is not None:
            book.write_pareto(force=True)
            summary = SearchSummary(
                study_dir=run.sd.root, records=book.records, front=book.front, hypervolume=book.hypervolume,
                objectives=run.objectives, new_trials=len(book.records) - len(records),
                wall_s=time.perf_counter() - t_start, interrupted=interrupted,
                propose_ms=1e3 * proposer.propose_s / max(1, proposer.n_proposed) if proposer else 0.0,
                counts=dict(book.counts), latency_timing=getattr(run.latency_fn, "stats", None))
            listeners.search_finished(summary)
        study.mirror.wait(WRITER_EXIT_S)  # its exit overlapped the listeners' last work (plots, W&B)
    return summary


def _tell_placement(listeners: Listeners, placement: resources.Placement, runs: list[dict[str, Any]]) -> None:
    if len(runs) > 1:
        n = len(runs) - 1
        listeners.message(f"this study ran {n} time{'s' if n > 1 else ''} before; the last: "
                          f"{resources.describe_run(runs[-2])}")
    if placement.cluster is not None:
        listeners.message(placement.describe())
    if placement.warning:
        listeners.message(placement.warning)


def _proposer(run: SearchRun, placement: resources.Placement, memory: optuna.Study, records: list[Any],
              writer: RecordWriter, mirror: Mirror, emit: Callable) -> Proposer:
    space, st = run.space, run.settings
    gpus_auto = "gpus_per_trial" in placement.auto

    def make_config(n: int, g: Any) -> dict[str, Any]:
        # the proxy's head has the data's classes (num_classes None: the data set's), not the target's 1000
        config = trial_config(n, g, space.proxy, None, math.ceil(st.cpus_per_trial),
                              weights_dir=run.sd.weights)
        return {**config, "gpus": st.gpus_per_trial, "gpus_auto": gpus_auto}  # the trial's device (devices.py)

    return Proposer(space, memory, objectives=run.objectives, target=st.trials, records=records,
                    write=writer.append, mirror=mirror.upsert, emit=emit, latency_fn=run.latency_fn,
                    cost_only=run.cost_only, planned_epochs=1 if run.looked_up else planned_reports(space.proxy),
                    make_config=make_config, seed=int(space.proxy.seed),
                    refuse=None if run.in_process else _too_big(space),
                    screen=1 if run.cost_only else st.screen, screen_score=st.screen_score)


def _evaluate_in_process(proposer: Proposer, listeners: Listeners, stop: threading.Event,
                         evaluate: Callable[[Any], dict[str, Any]]) -> None:
    """Answer every launch in this process with ``evaluate(genotype)`` (a final report), until the study is done
    or ``stop`` is set. An ``InputError`` (e.g. a network a table lacks) stops the search with one line; that trial
    re-runs on resume. An evaluation takes milliseconds: a sampler that refits in the background (the predictor)
    would otherwise propose at random while its model is fitted, so each proposal waits for the fit under way."""
    wait = getattr(proposer.study.sampler, "wait", None)
    while not stop.is_set():
        if wait is not None:
            wait()
        launch = proposer.next()
        if launch is None:
            break
        listeners.trial_started(launch.number, launch.genotype)
        try:
            result = evaluate(launch.genotype)
        except InputError:
            proposer.abandon(launch.number)
            raise
        proposer.complete(launch.number, {"epoch": 1, "final": True, **result})


def _look_up(run: SearchRun, proposer: Proposer, listeners: Listeners, stop: threading.Event) -> None:
    """Table evaluation: each launch's accuracy is the table's (the mean over its runs, or with ``table_run:
    seed`` the run the proxy's seed picks), recorded with the table it came from."""
    from nas.tables import load

    proxy = run.space.proxy
    table = load(proxy.table)
    name = Path(table.source).name.split(".")[0]
    run_index = int(proxy.seed) if proxy.table_run == "seed" else None

    def evaluate(g: Any) -> dict[str, Any]:
        metrics = table.lookup(g)
        n_runs = len(metrics.get("runs") or [])
        acc = accuracy_of(metrics, run_index)
        which = "mean" if run_index is None or not n_runs else f"run {run_index % n_runs + 1} of {n_runs}"
        return {"val_accuracy": acc, "best_accuracy": acc, "evaluator": f"table:{name} ({which})"}

    _evaluate_in_process(proposer, listeners, stop, evaluate)


def _score(run: SearchRun, proposer: Proposer, listeners: Listeners, stop: threading.Event) -> None:
    """Training-free mode: each launch's objective is a single score of its untrained proxy network
    (``proxy.score``, averaged over nas.scores' initialisation seeds), recorded as ``score``, never as accuracy."""
    from nas.scores import Scorer

    name = run.space.proxy.score
    scorer = Scorer.for_space(run.space)

    def evaluate(g: Any) -> dict[str, Any]:
        r = scorer.score(g, name)
        return {"score": r.value, "train_s": r.seconds,
                "evaluator": f"score:{name} ({len(r.per_seed)} initialisations)"}

    _evaluate_in_process(proposer, listeners, stop, evaluate)


def _too_big(space: Any) -> Callable[[Any], str | None]:
    """Why an architecture's proxy cannot be trained in this machine's memory, or None: such a proposal is
    answered (``failed``, with the reason) instead of a trial that would be killed half-way."""
    from nas.cost.memory import check
    from nas.errors import InputError
    from nas.proxy import proxy_genotype

    proxy = space.proxy

    def problem(g: Any) -> str | None:
        try:
            check(proxy_genotype(g, proxy.resolution, proxy.width), batch=proxy.batch_size,
                  num_classes=space.target.num_classes, training=True, what="training its proxy", source="not trained")
        except InputError as e:
            return str(e)
        return None

    return problem


# -- training on Ray Tune ------------------------------------------------------------------------------------------


def _train(run: SearchRun, proposer: Proposer, trainable: Trainable, listeners: Listeners,
           stop: threading.Event) -> None:
    """Train the proposer's launches on Ray Tune until they are done or ``stop`` is set."""
    from nas.search import tuning

    st = run.settings
    warned: set[str] = set()
    proposer.prefetch(st.concurrency)  # the first proposals' latency parts are timed before Ray loads the machine
    if getattr(run.latency_fn, "measures", False):
        run.latency_fn.quiet = trials_paused  # later ones with the local trials paused (nas.search.quiet)
    try:
        def on_launch(launch: Launch) -> None:
            listeners.trial_started(launch.number, launch.genotype)

        def on_epoch(number: int, result: dict[str, Any]) -> None:
            warning = result.get("device_warning")
            if warning and warning not in warned:  # once per search: every trial's device is in its record
                warned.add(warning)
                listeners.message(f"trial {number} on {result.get('node') or 'a Ray node'}: {warning}")
            listeners.trial_epoch(number, int(result.get("epoch", 0)),
                                  {k: result[k] for k in ("val_accuracy", "train_loss", "best_accuracy")
                                   if result.get(k) is not None})

        tuning.run_tune(proposer, trainable, storage=run.sd.ray, concurrency=st.concurrency,
                        cpus_per_trial=st.cpus_per_trial, gpus_per_trial=st.gpus_per_trial,
                        scheduler=tuning.scheduler_for(st.scheduler, planned_reports(run.space.proxy),
                                                     st.grace_period),
                        stop=stop, on_launch=on_launch, on_epoch=on_epoch)
    finally:
        for number in list(proposer.active):
            proposer.abandon(number)
