"""``nas search``: the study directory, the samplers, Ray Tune, progress and resume.

:func:`run_search` opens (or resumes) ``<out>/<study>/``, rebuilds the
sampler's history from the storage file, and runs the trials: in cost-only
mode (``--objective cost``) in this process, with nothing to train; otherwise
on Ray Tune (:mod:`nas.search.tuning`) with our own searcher, ASHA or FIFO,
reused actors and no Tune checkpoints or loggers (the study directory is the
record). How proposals become trials (budgets, duplicates, pruned trials and
what Optuna is told) is in :mod:`nas.search.searcher`; the files, the storage
mirror and crash repair in :mod:`nas.search.study`.

Choices worth knowing:

* ``--trials N`` is the total number of finished trials the study holds,
  whatever their status: a resumed study runs ``N`` minus what it has.
  Infeasible proposals and duplicates count (they are trials of the Optuna
  study too, as with ``study.optimize(n_trials=N)``) but cost milliseconds.
* Resume: finished trials stay as recorded; interrupted ones (RUNNING in the
  storage) are marked FAIL and their architectures queued again
  (``enqueue_trial``); the sampler is rebuilt on the stored history with its
  seed offset by the number of stored trials, so it does not replay the first
  run's proposals (which would all be duplicates).
* Ctrl-C (or SIGTERM) stops launching, stops the running trials without
  recording them (they re-run on resume) and exits 130; a second Ctrl-C
  aborts at once, and the study still resumes.
* Hypervolume uses a fixed reference point: accuracy 0 and each cost at its
  budget (or, without a budget, the largest cost of a fixed sample of the
  space), stored in ``pareto.json`` and reused on resume.
* ``pareto.json`` is rewritten after every trained trial, and at most every
  :data:`PARETO_MIN_INTERVAL_S` for answered ones (and at the end).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import shutil
import signal
import socket
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial

from nas.errors import InputError
from nas.genotype import from_dict
from nas.search import budgets
from nas.search import pareto as _pareto
from nas.search.objective import run_trial, trial_config
from nas.search.searcher import Launch, Proposer, constraint_metrics, outcome
from nas.search.study import (
    Mirror,
    Reconciled,
    RecordWriter,
    StudyDir,
    StudyLock,
    load_or_create,
    open_storage,
    read_records,
    reconcile,
)

log = logging.getLogger(__name__)

SAMPLERS = ("nsga2", "tpe", "gp", "random")
OBJECTIVE_MODES = ("train", "cost")
PARETO_MIN_INTERVAL_S = 2.0  # pareto.json rewrite interval for answered (untrained) trials
REFERENCE_SAMPLES = 64  # architectures sampled for the hypervolume reference of an unbudgeted cost


@dataclass
class SearchOptions:
    """``nas search`` flags; ``None`` means the space's ``search:``/``tracking:`` value."""

    space: str | Path
    trials: int | None = None
    sampler: str | None = None
    concurrency: int | None = None
    out: Path | None = None
    study: str | None = None
    address: str | None = None
    seed: int | None = None
    wandb: str | None = None
    objective: str = "train"
    storage: str | None = None
    progress: bool = True
    track: bool = True  # W&B runs and plots (nas.tracking); benchmarks switch them off


@dataclass
class SearchSummary:
    study_dir: Path
    records: list[dict[str, Any]]
    front: list[dict[str, Any]]
    hypervolume: float
    objectives: list[dict[str, str]]
    new_trials: int
    wall_s: float
    interrupted: bool = False
    propose_ms: float = 0.0  # mean time to propose, cost and (for answered ones) record an architecture
    counts: dict[str, int] = field(default_factory=dict)


Trainable = Callable[[dict[str, Any]], Any]


def run_search(opts: SearchOptions, *, trainable: Trainable | None = None, console: Any = None) -> SearchSummary:
    """Run (or resume) a search; see the module docstring. ``trainable`` replaces the proxy training."""
    from nas.space import load_space

    t_start = time.perf_counter()
    space = load_space(opts.space)
    settings = _settings(space, opts)
    budgets.validate_budgets(space)
    objectives = _objectives(space, opts.objective)
    _check_address(opts.address)
    name = opts.study or space.name
    if not name or "/" in name or name in (".", ".."):
        raise InputError(f"--study: {name!r} is not a usable study name (one directory name)")
    latency_fn = _latency_fn(space, objectives)  # a bad latency table fails before the study directory exists
    sd = StudyDir(Path(opts.out or "results") / name)
    sd.root.mkdir(parents=True, exist_ok=True)
    lock = StudyLock(sd.root)
    lock.acquire()
    try:
        return _run_locked(space, settings, objectives, sd, name, opts, trainable, console, t_start, latency_fn,
                           lock)
    finally:
        lock.release()


@dataclass
class _Settings:
    sampler: str
    trials: int
    concurrency: int
    seed: int
    storage: str
    wandb: str
    cpus_per_trial: float
    gpus_per_trial: float
    scheduler: str
    grace_period: int


def _settings(space: Any, opts: SearchOptions) -> _Settings:
    s = space.search
    sampler = opts.sampler or s.sampler
    if sampler not in SAMPLERS:
        raise InputError(f"--sampler: {sampler!r} is not one of {', '.join(SAMPLERS)}")
    if opts.objective not in OBJECTIVE_MODES:
        raise InputError(f"--objective: {opts.objective!r} is not one of {', '.join(OBJECTIVE_MODES)}")
    for flag, v in (("--trials", opts.trials), ("--concurrency", opts.concurrency)):
        if v is not None and v < 1:
            raise InputError(f"{flag}: must be >= 1, got {v}")
    storage = opts.storage or s.storage
    if storage not in ("sqlite", "journal"):
        raise InputError(f"--storage: {storage!r} is not one of sqlite, journal")
    wandb = opts.wandb or space.tracking.wandb
    if wandb not in ("online", "offline", "disabled"):
        raise InputError(f"--wandb: {wandb!r} is not one of online, offline, disabled")
    return _Settings(sampler=sampler, trials=opts.trials or s.trials, concurrency=opts.concurrency or s.concurrency,
                     seed=s.seed if opts.seed is None else opts.seed, storage=storage, wandb=wandb,
                     cpus_per_trial=s.cpus_per_trial, gpus_per_trial=s.gpus_per_trial, scheduler=s.scheduler,
                     grace_period=s.grace_period)


def _objectives(space: Any, mode: str) -> list[dict[str, str]]:
    objs = _pareto.objective_spec(space.objectives)
    if mode == "cost":
        objs = [o for o in objs if o["metric"] != "accuracy"] or [{"metric": "macs", "direction": "minimize"}]
    return objs


def _run_locked(space: Any, st: _Settings, objectives: list[dict[str, str]], sd: StudyDir, name: str,
                opts: SearchOptions, trainable: Trainable | None, console: Any, t_start: float,
                latency_fn: Callable | None, lock: StudyLock) -> SearchSummary:
    _keep_space(space, sd)
    records = read_records(sd.trials)
    kind = sd.existing_storage() or st.storage
    if opts.storage and kind != opts.storage:
        raise InputError(f"--storage: the study already uses {kind} ({sd.storage_file(kind)})")
    _quiet_optuna()
    directions, metrics = [o["direction"] for o in objectives], [o["metric"] for o in objectives]
    if sd.existing_storage() is not None or records:
        persistent = load_or_create(open_storage(sd, kind), name, directions, metrics, sd.storage_file(kind))
        rec = reconcile(persistent, records, lambda r: outcome(r, objectives),
                        lambda r: _rebuild(space, r, objectives))
    else:  # a new study: the storage writer creates it, in parallel with the rest of the start
        rec = Reconciled(trials=[])
    sampler = make_sampler(st.sampler, st.seed + len(rec.trials), st.trials, st.concurrency)
    memory = optuna.create_study(directions=[o["direction"] for o in objectives], sampler=sampler)
    memory.set_metric_names([o["metric"] for o in objectives])
    memory.add_trials(rec.trials)
    mirror = Mirror(sd, kind, name, directions, metrics, pass_fds=(lock.fd,))
    writer = book = tracker = proposer = None
    interrupted = False
    try:
        for params in rec.requeue:
            memory.enqueue_trial(params)
            mirror.upsert(memory.get_trials(deepcopy=False)[-1])
        ref = (_pareto.read_reference_point(sd.root, len(objectives))
               or reference_point(space, objectives, latency_fn))
        book = _Book(sd, name, objectives, ref, records, st.trials, console if opts.progress else None)
        tracker = _Tracker(sd.root, space, st.wandb if opts.track else None)
        writer = RecordWriter(sd.trials)
        proposer = Proposer(
            space, memory, objectives=objectives, target=st.trials, records=records, write=writer.append,
            mirror=mirror.upsert, emit=lambda r: (book.add(r), tracker.call("trial_finished", r)),
            latency_fn=latency_fn, cost_only=opts.objective == "cost", planned_epochs=int(space.proxy.epochs),
            make_config=lambda n, g: trial_config(n, g, space.proxy, space.target.num_classes,
                                                  math.ceil(st.cpus_per_trial), weights_dir=sd.root / "weights"),
            seed=int(space.proxy.seed))
        book.start(rec)
        if proposer.exhausted:
            pass
        elif opts.objective == "cost":
            with _signals() as stop:
                proposer.stop = stop
                proposer.answer_all()
                interrupted = stop.is_set()
        else:
            interrupted = _train(space, st, sd, proposer, trainable or run_trial, opts.address, tracker, book)
    finally:
        propagating = sys.exc_info()[0] is not None
        if book is not None:
            book.stop()
        if writer is not None:
            writer.close()
        if mirror.pending() and book is not None:
            book.say(f"saving {mirror.pending()} trial updates to {sd.storage_file(kind).name} ...")
        try:
            mirror.close()
        except RuntimeError:
            if not propagating:
                raise
            log.warning("the storage mirror failed too; trials.jsonl is complete and the next run repairs it")
        if book is not None:
            book.write_pareto(force=True)
        if tracker is not None:
            tracker.close()
    return SearchSummary(study_dir=sd.root, records=book.records, front=book.front, hypervolume=book.hv,
                         objectives=objectives, new_trials=len(book.records) - len(records),
                         wall_s=time.perf_counter() - t_start, interrupted=interrupted,
                         propose_ms=1e3 * proposer.propose_s / max(1, proposer.n_proposed), counts=book.counts)


def _check_address(address: str | None) -> None:
    """Fail fast on a ``HOST:PORT`` where nothing listens (Ray would retry for minutes)."""
    if not address or address == "auto" or "://" in address:
        return
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise InputError(f"--address: {address!r} is not auto, HOST:PORT or ray://HOST:PORT")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as e:
        raise InputError(f"--address: no Ray cluster answers at {address} ({e.strerror or e})") from None


# -- the space copy --------------------------------------------------------------------------------------------


def _keep_space(space: Any, sd: StudyDir) -> None:
    """Copy the space file into the study; resuming with a different space is refused."""
    from nas.space import load_space

    exclude = {"name", "description", "search", "tracking"}
    if sd.space.exists():
        kept = load_space(sd.space)
        if kept.model_dump(exclude=exclude) != space.model_dump(exclude=exclude):
            raise InputError(f"{space.source}: the study {sd.root} was created with a different space "
                             f"({sd.space}); use another --study, or the same space (search: and tracking: "
                             "may differ)")
        return
    tmp = sd.space.with_suffix(".yaml.tmp")
    shutil.copyfile(space.source, tmp)
    os.replace(tmp, sd.space)


# -- samplers ----------------------------------------------------------------------------------------------------


def _quiet_optuna() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def population_size(trials: int) -> int:
    """NSGA-II population: about a quarter of the budget, so a search sees several generations."""
    return max(4, min(50, trials // 4))


def make_sampler(kind: str, seed: int, trials: int, concurrency: int = 1) -> optuna.samplers.BaseSampler:
    """The Optuna sampler for ``--sampler``; budgets reach it as trial constraints (``set_constraint``)."""
    _quiet_optuna()
    startup = max(4, min(10, trials // 5))
    if kind == "nsga2":
        return optuna.samplers.NSGAIISampler(population_size=population_size(trials), seed=seed)
    if kind == "tpe":
        # group: conditional parameters (per-block choices exist only at some depths) get their own models
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True,
                                          constant_liar=concurrency > 1, n_startup_trials=startup)
    if kind == "gp":
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=startup)
    if kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise InputError(f"--sampler: {kind!r} is not one of {', '.join(SAMPLERS)}")


# -- costs ------------------------------------------------------------------------------------------------------


def _latency_fn(space: Any, objectives: list[dict[str, str]]) -> Callable | None:
    """The latency predictor when the space names a target/LUT; required when latency is budgeted or an objective."""
    b = space.budgets
    needed = b.latency_ms is not None or any(o["metric"] == "latency_ms" for o in objectives)
    if not (needed or b.target or b.lut):
        return None
    try:
        return budgets.latency_predictor(space)
    except InputError:
        if needed:
            raise
        log.warning("latency prediction unavailable; latency_ms is not recorded")
        return None


def reference_point(space: Any, objectives: list[dict[str, str]], latency_fn: Callable | None = None) -> list[float]:
    """Hypervolume reference: accuracy 0; each cost at its budget, or else the largest of a fixed sample
    of the space (deterministic, so hypervolumes of one space compare across runs)."""
    ref: list[float] = []
    sample = None
    for o in objectives:
        m = o["metric"]
        if o["direction"] == "maximize":
            ref.append(0.0)
            continue
        budget = getattr(space.budgets, m, None)
        if budget is not None:
            ref.append(float(budget))
            continue
        if sample is None:
            sample = [space.sample(i) for i in range(REFERENCE_SAMPLES)]
        if m == "latency_ms":
            vals = [latency_fn(g) for g in sample] if latency_fn else [1.0]
        else:
            vals = [getattr(budgets.target_cost(space, g), m) for g in sample]
        ref.append(float(max(vals)))
    return ref


def _rebuild(space: Any, record: dict[str, Any], objectives: list[dict[str, str]]) -> FrozenTrial:
    """A finished Optuna trial for a record whose trial never reached the storage (a crash lost the write)."""
    g = from_dict(record["genotype"], f"trials.jsonl: trial {record['number']}")
    params = space.params_of(g)
    fixed = optuna.trial.FixedTrial(params, number=record["number"])
    space.suggest(fixed)
    state, values = outcome(record, objectives)
    violations = record.get("violations") or {}
    system = {f"constraints:{m}": float(violations.get(m, 0.0)) for m in constraint_metrics(space)}
    return optuna.trial.create_trial(state=state, values=values, params=params, distributions=fixed.distributions,
                                     user_attrs={"hash": record["hash"]}, system_attrs=system)


# -- training on Ray Tune ------------------------------------------------------------------------------------------


def _train(space: Any, st: _Settings, sd: StudyDir, proposer: Proposer, trainable: Trainable,
           address: str | None, tracker: _Tracker, book: _Book) -> bool:
    """Train the proposer's launches on Ray Tune; returns whether the run was interrupted."""
    from nas.search import tuning

    started = tuning.start_ray(address, tuning.local_cpus(st.concurrency, st.cpus_per_trial))
    try:
        def on_launch(launch: Launch) -> None:
            tracker.call("trial_started", launch.number, launch.genotype)
            book.launched(launch.number)

        def on_epoch(number: int, result: dict[str, Any]) -> None:
            tracker.call("trial_epoch", number, int(result.get("epoch", 0)),
                         {k: result[k] for k in ("val_accuracy", "train_loss", "best_accuracy")
                          if result.get(k) is not None})

        with _signals() as stop:
            proposer.stop = stop
            tuning.run_tune(proposer, trainable, storage=sd.ray, concurrency=st.concurrency,
                            cpus_per_trial=st.cpus_per_trial, gpus_per_trial=st.gpus_per_trial,
                            scheduler=tuning.scheduler_for(st.scheduler, int(space.proxy.epochs), st.grace_period),
                            stop=stop, on_launch=on_launch, on_epoch=on_epoch)
            return stop.is_set()
    finally:
        for number in list(proposer.active):
            proposer.abandon(number)
        if started:
            tuning.ray.shutdown()


@contextlib.contextmanager
def _signals() -> Iterator[threading.Event]:
    """First Ctrl-C (or SIGTERM): stop launching, stop running trials, keep the study resumable.
    A second Ctrl-C aborts at once (the study still resumes: that is what trials.jsonl is for)."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handler(signum: int, frame: Any) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


# -- tracking -----------------------------------------------------------------------------------------------------


class _Tracker:
    """``nas.tracking.StudyTracker`` when installed; a tracking failure is logged once and never stops a search."""

    def __init__(self, root: Path, space: Any, mode: str | None) -> None:
        self._t = None
        if mode is None:
            return
        try:
            from nas.tracking import StudyTracker
        except ImportError:
            return
        try:
            self._t = StudyTracker(root, space, mode=mode)
        except Exception as e:  # noqa: BLE001
            self._disable(e)

    def call(self, method: str, *args: Any) -> None:
        if self._t is None:
            return
        try:
            getattr(self._t, method)(*args)
        except Exception as e:  # noqa: BLE001
            self._disable(e)

    def close(self) -> None:
        self.call("close")
        self._t = None

    def _disable(self, e: Exception) -> None:
        log.warning("tracking disabled after an error: %s: %s", e.__class__.__name__, e)
        self._t = None


# -- records, pareto.json and progress -------------------------------------------------------------------------------


class _Book:
    """Keeps the study's records, front, hypervolume, pareto.json and the progress display up to date."""

    def __init__(self, sd: StudyDir, name: str, objectives: list[dict[str, str]], ref: list[float],
                 records: list[dict[str, Any]], total: int, console: Any) -> None:
        self.sd, self.name, self.objectives, self.ref = sd, name, objectives, ref
        self.records = list(records)
        self.total = total
        self.counts = {s: 0 for s in ("complete", "pruned", "infeasible", "failed", "duplicate")}
        for r in self.records:
            self._count(r)
        self.front = _pareto.front(self.records, objectives)
        self.hv = _pareto.hypervolume(self.records, objectives, ref)
        self._written = 0.0
        self._console = console
        self._progress = None
        self._task = None
        self._running = 0

    def _count(self, r: dict[str, Any]) -> None:
        self.counts[r["status"]] += 1
        self.counts["duplicate"] += r.get("duplicate_of") is not None

    def add(self, record: dict[str, Any]) -> None:
        self.records.append(record)
        self._count(record)
        trained = record["status"] in ("complete", "pruned", "failed") and record.get("duplicate_of") is None
        trained = trained and record["epochs"] > 0
        if trained and self._running > 0:
            self._running -= 1
        if _pareto.is_feasible(record) and record.get("duplicate_of") is None:
            # front(all records) == front(old front + the new record): no need to look at every record again
            new_front = _pareto.front([*self.front, record], self.objectives)
            if any(m is record for m in new_front):
                self.front = new_front
                self.hv = _pareto.hypervolume(self.front, self.objectives, self.ref)
        self.write_pareto(force=trained)
        self._show()

    def launched(self, number: int) -> None:
        self._running += 1
        self._show()

    def write_pareto(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._written >= PARETO_MIN_INTERVAL_S:
            _pareto.write_pareto_json(self.sd.root, self.records, self.objectives, self.ref, study=self.name)
            self._written = now

    # -- display --------------------------------------------------------------------------------------------------

    def start(self, rec: Any) -> None:
        if self._console is None:
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        if rec.abandoned or rec.repaired or self.records:
            self.say(f"resuming {self.sd.root}: {len(self.records)} trials recorded, {rec.abandoned} interrupted "
                     f"re-queued, {rec.repaired} repaired from trials.jsonl")
        self._progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(bar_width=20), MofNCompleteColumn(),
                                  TextColumn("{task.fields[stats]}"), TimeElapsedColumn(), console=self._console,
                                  transient=False)
        self._task = self._progress.add_task(self.name, total=self.total, completed=len(self.records),
                                             stats=self._stats())
        self._progress.start()

    def _stats(self) -> str:
        c = self.counts
        feasible = c["complete"] + c["pruned"] + c["failed"]
        return (f"run {self._running} feasible {feasible} pruned {c['pruned']} failed {c['failed']} "
                f"infeasible {c['infeasible']} dup {c['duplicate']} | front {len(self.front)} HV {self.hv:.3f}")

    def _show(self) -> None:
        if self._progress is not None:
            self._progress.update(self._task, completed=len(self.records), stats=self._stats())

    def say(self, text: str) -> None:
        if self._console is not None:
            self._console.print(text, markup=False, highlight=False)

    def stop(self) -> None:
        if self._progress is not None:
            self._show()
            self._progress.stop()
            self._progress = None
