"""Ray Tune glue: local or joined Ray, our Searcher, ASHA/FIFO, a lean Tuner.

Per-trial overhead is what this module is about. Trials reuse their actors
(no process start or import per trial), Tune's experiment checkpoints, result
loggers and console reporter are off (the study directory records
everything), trials keep the driver's working directory, and the searcher
concurrency is limited so that Tune starts every free slot's trial at once.

On a local Ray that this module started, the trial actors also start on the
worker processes Ray prestarted at ``ray.init``, which import Ray Tune as they
start (:data:`WORKER_PRELOAD`), instead of on new ones. Tune gives each
trainable class a ``runtime_env`` holding a few environment variables, and Ray
does not hand a prestarted worker to an actor with a ``runtime_env``: every
search would wait for fresh worker processes to start and import Ray Tune
(about 2 s on a 2-core machine, see ``benchmarks/bench_orchestration.py``).
Local workers inherit the driver's environment, where :data:`TUNE_ENV`
already holds those variables, so during :func:`run_tune` the trainable
classes are registered without one (:func:`_inherited_actor_env`). A joined
cluster (``--address``) keeps Tune's behaviour: its workers do not share our
environment.
"""

from __future__ import annotations

import os

# Read by Tune when it runs; set before Ray is imported so that the import-time ones apply too.
TUNE_ENV = {
    "RAY_AIR_NEW_OUTPUT": "0",
    "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",
    "TUNE_GLOBAL_CHECKPOINT_S": "86400",
    "TUNE_DISABLE_SIGINT_HANDLER": "1",  # the driver's handler stops the run cleanly and keeps the study resumable
    "TUNE_WARN_THRESHOLD_S": "60",
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "3600",
    "RAY_CHDIR_TO_TRIAL_DIR": "0",
    "RAY_DEDUP_LOGS": "0",
    "PL_DISABLE_FORK": "1",  # what Tune gives its actors (ray-project/ray#28197); inherited by local workers
}


def apply_environment() -> None:
    """Set :data:`TUNE_ENV` where the user has not set the variable."""
    for k, v in TUNE_ENV.items():
        os.environ.setdefault(k, v)


apply_environment()

import contextlib  # noqa: E402
import logging  # noqa: E402
import math  # noqa: E402
import threading  # noqa: E402
import warnings  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import ray  # noqa: E402
from ray import tune  # noqa: E402
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler  # noqa: E402
from ray.tune.search import Searcher  # noqa: E402

from nas.errors import OptionError  # noqa: E402
from nas.search.searcher import Launch, Proposer  # noqa: E402

OBJECT_STORE_BYTES = 200 * 2**20  # trials exchange small dicts only
TRIAL_RETRIES = 2  # Tune restarts of a trial whose worker process died
# Imported by local Ray's workers as they start, before any trial needs them: a trial actor then starts in a
# fraction of a second on a prestarted worker instead of importing Ray Tune (about 1 s) first. Torch is left out:
# Ray may start workers that never run a trial, and each would spend seconds importing it.
WORKER_PRELOAD = ("ray.tune.trainable.function_trainable",)


def start_ray(address: str | None = None, num_cpus: int | None = None, num_gpus: int | None = None) -> bool:
    """Start local Ray (``num_cpus`` CPUs, ``num_gpus`` GPUs, None: what Ray detects; small object store, no
    dashboard) or join ``address``.

    Returns whether this call started Ray (and so should shut it down); an initialised Ray is used as is.
    """
    global _LOCAL
    apply_environment()
    if ray.is_initialized():
        return False
    kw: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.ERROR}
    try:
        if address:
            ray.init(address=address, **kw)
        else:
            ray.init(num_cpus=num_cpus, num_gpus=num_gpus, object_store_memory=OBJECT_STORE_BYTES,
                     _system_config={"preload_python_modules": list(WORKER_PRELOAD)}, **kw)
    except ConnectionError as e:
        raise OptionError("address", f"cannot connect to a Ray cluster at {address!r} ({e})") from None
    _LOCAL = None if address else (_gcs_address(), dict(os.environ))
    quiet_ray()
    return True


# The local Ray that start_ray started (its GCS address) and the environment its workers inherited.
_LOCAL: tuple[str | None, dict[str, str]] | None = None


def _gcs_address() -> str | None:
    try:
        return ray.get_runtime_context().gcs_address
    except Exception:  # noqa: BLE001 - not initialised, or an API change: then nothing is assumed
        return None


def _workers_inherit(class_cache: Any) -> bool:
    """Ray is the local one start_ray started, and its workers inherited every variable Tune would give them."""
    if _LOCAL is None or _LOCAL[0] is None or not ray.is_initialized() or _gcs_address() != _LOCAL[0]:
        return False
    env = _LOCAL[1]
    wanted = {**class_cache.DEFAULT_ENV_VARS,
              **{k: os.environ[k] for k in class_cache.ENV_VARS_TO_PROPAGATE if k in os.environ}}
    return all(env.get(k) == v for k, v in wanted.items())


@contextlib.contextmanager
def _inherited_actor_env() -> Iterator[bool]:
    """Register Tune's trainable actors without a ``runtime_env`` when the workers inherit ours (see the
    module docstring); yields whether it did. Tune's module layout is private: if it changes, Tune's
    behaviour is kept."""
    try:
        from ray.tune.execution import class_cache
    except ImportError:  # pragma: no cover - a Tune without the module
        class_cache = None
    names = ("DEFAULT_ENV_VARS", "ENV_VARS_TO_PROPAGATE")
    if class_cache is None or not all(hasattr(class_cache, n) for n in names) or not _workers_inherit(class_cache):
        yield False
        return
    saved = {n: getattr(class_cache, n) for n in names}
    class_cache.DEFAULT_ENV_VARS, class_cache.ENV_VARS_TO_PROPAGATE = {}, set()
    try:
        yield True
    finally:
        for n, v in saved.items():
            setattr(class_cache, n, v)


def quiet_ray() -> None:
    for name in ("ray", "ray.tune", "ray.train", "ray.air", "ray.data"):
        logging.getLogger(name).setLevel(logging.ERROR)


class TuneSearcher(Searcher):
    """Hands out the proposer's launches and records their results (see :mod:`nas.search.searcher`).

    Tune's ``ConcurrencyLimiter`` wraps it (``max_concurrent_trials``), which also lets Tune start as many
    trials at once as there are slots. Tune does not checkpoint it: the study directory is the checkpoint.
    """

    def __init__(self, proposer: Proposer, stop: threading.Event,
                 on_launch: Callable[[Launch], None] | None = None,
                 on_epoch: Callable[[int, dict[str, Any]], None] | None = None) -> None:
        super().__init__(metric="val_accuracy", mode="max")
        self.proposer, self.stop = proposer, stop
        self.on_launch, self.on_epoch = on_launch, on_epoch
        self._numbers: dict[str, int] = {}
        self._epochs: dict[str, int] = {}  # the last epoch passed on, per trial

    def set_search_properties(self, metric: Any, mode: Any, config: dict, **spec: Any) -> bool:
        return True

    def suggest(self, trial_id: str) -> dict | str | None:
        if self.stop.is_set():
            return Searcher.FINISHED
        launch = self.proposer.next()
        if launch is None:
            return Searcher.FINISHED if self.proposer.exhausted else None
        self._numbers[trial_id] = launch.number
        if self.on_launch is not None:
            self.on_launch(launch)
        return launch.config

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        number = self._numbers.get(trial_id)
        if number is not None:
            self._epoch(trial_id, number, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        number = self._numbers.pop(trial_id, None)
        if number is None:
            return
        if self.stop.is_set() or (result is None and not error):
            self._epochs.pop(trial_id, None)
            self.proposer.abandon(number)  # interrupted: stays RUNNING in the storage, re-runs on resume
            return
        if result is not None:
            # Tune passes the result its scheduler stops a trial on (ASHA: every pruned trial's last epoch, and
            # the last planned epoch of the others, at max_t) to this call only, not to on_trial_result.
            self._epoch(trial_id, number, result)
        self._epochs.pop(trial_id, None)
        self.proposer.complete(number, result, "the trial's worker process failed" if error else None)

    def _epoch(self, trial_id: str, number: int, result: dict) -> None:
        """Each epoch once, in order: to the trial's Optuna intermediate values, then to the listeners."""
        epoch = int(result.get("epoch") or 0)
        if epoch <= self._epochs.get(trial_id, 0):
            return
        self._epochs[trial_id] = epoch
        self.proposer.report_epoch(number, epoch, result.get("val_accuracy"))
        if self.on_epoch is not None:
            self.on_epoch(number, result)

    def save(self, checkpoint_path: str) -> None:
        return None

    def restore(self, checkpoint_path: str) -> None:
        return None

    def __getstate__(self) -> dict:
        # Tune pickles its configuration for Tuner.restore, which nas does not use.
        return {}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)


class InterruptStopper(tune.Stopper):
    """Stops every trial once ``event`` is set (Ctrl-C / SIGTERM in the driver)."""

    def __init__(self, event: threading.Event) -> None:
        self.event = event

    def __call__(self, trial_id: str, result: dict) -> bool:
        return False

    def stop_all(self) -> bool:
        return self.event.is_set()

    def __getstate__(self) -> dict:  # see TuneSearcher.__getstate__
        return {}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)


ASHA_REDUCTION = 2  # half the trials go on at each rung: searches of tens of trials still complete several


def scheduler_for(kind: str, epochs: int, grace_period: int) -> Any:
    """ASHA on validation accuracy per epoch (``training_iteration``), or FIFO (also when there is one epoch)."""
    if kind == "asha" and epochs > 1:
        return ASHAScheduler(time_attr="training_iteration", metric="val_accuracy", mode="max", max_t=epochs,
                             grace_period=min(grace_period, epochs), reduction_factor=ASHA_REDUCTION)
    return FIFOScheduler()


def run_tune(proposer: Proposer, trainable: Callable[[dict], Any], *, storage: Path, concurrency: int,
             cpus_per_trial: float, gpus_per_trial: float, scheduler: Any, stop: threading.Event,
             on_launch: Callable[[Launch], None] | None = None,
             on_epoch: Callable[[int, dict[str, Any]], None] | None = None) -> None:
    """Train the proposer's launches until it is exhausted or ``stop`` is set. Ray must be initialised."""
    apply_environment()
    quiet_ray()
    searcher = TuneSearcher(proposer, stop, on_launch, on_epoch)
    tuner = tune.Tuner(
        tune.with_resources(trainable, {"cpu": cpus_per_trial, "gpu": gpus_per_trial}),
        tune_config=tune.TuneConfig(search_alg=searcher, scheduler=scheduler, num_samples=-1, reuse_actors=True,
                                    max_concurrent_trials=concurrency,
                                    trial_name_creator=_trial_name, trial_dirname_creator=_trial_name),
        run_config=tune.RunConfig(
            name="tune", storage_path=str(storage.resolve()), verbose=0, log_to_file=False,
            stop=InterruptStopper(stop), callbacks=[],
            checkpoint_config=tune.CheckpointConfig(checkpoint_frequency=0, checkpoint_at_end=False),
            failure_config=tune.FailureConfig(max_failures=TRIAL_RETRIES)),
    )
    with warnings.catch_warnings(), _inherited_actor_env():
        warnings.simplefilter("ignore")
        tuner.fit()


def local_cpus(concurrency: int | None, cpus_per_trial: float) -> int | None:
    """CPUs of a local Ray for a fixed concurrency; None (all of the machine's) when the concurrency is chosen
    from what Ray finds."""
    return None if concurrency is None else max(1, math.ceil(concurrency * cpus_per_trial))


def _trial_name(trial: Any) -> str:
    return f"trial_{trial.config.get('number', trial.trial_id)}"
