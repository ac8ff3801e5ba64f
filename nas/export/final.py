"""Final numbers on images the search never saw: retrain from scratch on several seeds, test once.

The search chose its designs on the validation split with one training seed
(``proxy.seed``), so its accuracies are optimistic twice over. Here every
model (a family member, a reference) is trained again from scratch with the
space's proxy recipe on :func:`eval_seeds` (``proxy.seed + 1``, ``+ 2``, ...:
never the search's seed) and scored on the TEST split, which only
``nas.train.train(..., test=True)`` loads; what was chosen is fixed before any
test image is read.

Resumable: each finished (model, seed) run is one line of
``<study>/final_eval.jsonl`` (:data:`LEDGER`), appended whole, flushed and
fsync'ed (``nas.fidelity.store.RunLog``) before the next is awaited; a run
is keyed by the genotype's hash, the recipe (:func:`recipe_key`: every
``TrainConfig`` field but the seed and the device) and the seed, so a rerun,
``nas baselines`` and ``nas export-best`` of one study never train a run
twice. Progress goes to a callback (:class:`FinalEvent`); nothing prints.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nas.config import TrainConfig
from nas.export.significance import spread
from nas.fidelity.store import RunLog
from nas.genotype import Genotype

LEDGER = "final_eval.jsonl"
#: ``(genotype, config) -> (test accuracy, validation accuracy, training seconds[, where])`` of one run; ``where``
#: (optional) is ``{"device": ..., "threads": ..., "torch": ...}``, what the run's figures depend on besides the
#: recipe and the seed.
TrainFn = Callable[[Genotype, TrainConfig], tuple[Any, ...]]


@dataclass(frozen=True)
class FinalRun:
    """One line of ``final_eval.jsonl``: accuracies in [0, 1], ``seconds`` of training wall time."""

    arch: str  # Genotype.hash
    recipe: str  # recipe_key(config)
    seed: int
    test_accuracy: float
    val_accuracy: float
    seconds: float
    name: str = ""  # the model's name when it was trained, for people reading the file
    # where it ran: on CPU, float sums in a different order (another thread count) give other weights after
    # a few epochs, so two runs of one seed agree exactly only on the same device, threads and torch
    device: str | None = None
    threads: int | None = None
    torch: str | None = None

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.arch, self.recipe, self.seed)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_TYPES = {"arch": str, "recipe": str, "seed": int, "test_accuracy": (int, float), "val_accuracy": (int, float),
          "seconds": (int, float), "name": str}
_OPTIONAL = {"device": str, "threads": int, "torch": str}  # absent from ledgers written before they were kept


def _parse(rec: Any) -> FinalRun:
    if not isinstance(rec, dict):
        raise TypeError("expected a JSON object")
    for key, types in _TYPES.items():
        if not isinstance(rec[key], types) or isinstance(rec[key], bool):
            raise TypeError(f"{key}: wrong type {type(rec[key]).__name__}")
    extra = {k: rec[k] for k, t in _OPTIONAL.items()
             if isinstance(rec.get(k), t) and not isinstance(rec.get(k), bool)}
    return FinalRun(**{k: rec[k] for k in _TYPES}, **extra)


@dataclass(frozen=True)
class FinalEvent:
    """Progress of :func:`run_final`: first with ``name`` None (nothing trained yet), then one per run."""

    done: int  # runs trained so far by this call
    total: int  # runs this call trains (the ledger held the others)
    reused: int  # runs read back from the ledger
    name: str | None = None
    seed: int | None = None
    test_accuracy: float | None = None
    seconds: float | None = None
    notes: tuple[str, ...] = ()  # the ledger's (a torn last line dropped)


Progress = Callable[[FinalEvent], None]


@dataclass
class FinalEval:
    """How ``nas export-best`` and ``nas baselines`` evaluate on the test split."""

    seeds: int = 3
    workers: int = 1  # parallel training processes
    train_fn: TrainFn | None = None  # default: train_and_test (a picklable function when workers > 1)
    progress: Progress | None = None


def train_and_test(genotype: Genotype, config: TrainConfig) -> tuple[float, float, float, dict[str, Any]]:
    """The default trainer: ``nas.train.train(..., test=True)``'s test and validation accuracy, seconds, and
    where it ran (device, torch threads, torch version)."""

    from nas.train import train

    r = train(genotype, config, test=True)
    return float(r.test_accuracy), r.accuracy, r.train_s, where_it_ran(r.device)


def where_it_ran(device: Any) -> dict[str, Any]:
    """What a run's figures depend on besides recipe and seed: device, torch's CPU threads, torch's version."""
    import torch

    return {"device": str(device), "threads": int(torch.get_num_threads()), "torch": torch.__version__}


def eval_seeds(proxy: TrainConfig, n: int) -> list[int]:
    """``n`` training seeds that are not the search's (``proxy.seed``)."""
    return [proxy.seed + 1 + i for i in range(n)]


def recipe_key(config: TrainConfig) -> str:
    """What a run's result depends on besides the architecture and the seed, as 12 hex digits."""
    fields = {k: v for k, v in dataclasses.asdict(config).items() if k not in ("seed", "device")}
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:12]


def run_final(models: Sequence[tuple[str, Genotype]], recipe: TrainConfig, seeds: Sequence[int], ledger: Path,
              options: FinalEval | None = None) -> dict[str, list[FinalRun]]:
    """Every model's run on every seed (by name, in seed order): those in ``ledger`` read back, the rest
    trained seed-major (an interrupted evaluation has whole seeds) and appended as they finish."""
    opts = options or FinalEval()
    key = recipe_key(recipe)
    ledger = Path(ledger)
    ledger.parent.mkdir(parents=True, exist_ok=True)
    log = RunLog(ledger, parse=_parse)
    try:
        jobs, planned = [], set()
        for s in seeds:
            for name, g in models:
                k = (g.hash, key, s)
                if k not in log.runs and k not in planned:  # one genotype under two names trains once
                    planned.add(k)
                    jobs.append((name, g, s))
        reused = len({(g.hash, s) for _, g in models for s in seeds}) - len(jobs)
        emit = opts.progress or (lambda e: None)
        emit(FinalEvent(0, len(jobs), reused, notes=tuple(log.notes)))
        for done, ((name, g, s), result) in enumerate(_execute(jobs, recipe, opts), 1):
            test, val, secs = result[:3]
            where = result[3] if len(result) > 3 and isinstance(result[3], dict) else {}
            log.append(FinalRun(g.hash, key, s, float(test), float(val), float(secs), name,
                                **{k: where.get(k) for k in _OPTIONAL}))
            emit(FinalEvent(done, len(jobs), reused, name, s, float(test), float(secs)))
    finally:
        log.close()
    return {name: [log.runs[(g.hash, key, s)] for s in seeds] for name, g in models}


def _init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def _execute(jobs: list[tuple[str, Genotype, int]], recipe: TrainConfig,
             opts: FinalEval) -> Iterator[tuple[tuple[str, Genotype, int], tuple[float, float, float]]]:
    """(job, result) as each training finishes, in this process or in ``opts.workers`` spawned ones."""
    fn = opts.train_fn or train_and_test
    if opts.workers <= 1 or len(jobs) <= 1:
        for job in jobs:
            yield job, fn(job[1], dataclasses.replace(recipe, seed=job[2]))
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    threads = max(1, (os.cpu_count() or 1) // opts.workers)
    ctx = multiprocessing.get_context("spawn")  # a forked torch with live thread pools can deadlock
    with ProcessPoolExecutor(max_workers=opts.workers, mp_context=ctx, initializer=_init_worker,
                             initargs=(threads,)) as pool:
        futures = {pool.submit(fn, job[1], dataclasses.replace(recipe, seed=job[2])): job for job in jobs}
        for f in as_completed(futures):
            yield futures[f], f.result()


def summarize(runs: Sequence[FinalRun]) -> dict[str, Any]:
    """The JSON fields of a model's test-split figures (accuracies as fractions, std over seeds with n - 1)."""
    test = [r.test_accuracy for r in runs]
    val = [r.val_accuracy for r in runs]
    mean, std = spread(test)
    vmean, vstd = spread(val)
    return {"test_accuracy": mean, "test_accuracy_std": std, "test_accuracies": test,
            "test_seeds": [r.seed for r in runs], "val_accuracy": vmean, "val_accuracy_std": vstd,
            "val_accuracies": val, "test_train_s": sum(r.seconds for r in runs),
            "test_where": sorted({where(r) for r in runs})}


def where(run: FinalRun) -> str:
    """``cpu, 1 thread, torch 2.5.1`` (``unrecorded`` for a run of a ledger written before this was kept)."""
    if run.device is None and run.threads is None:
        return "unrecorded"
    threads = f"{run.threads} thread{'s' if run.threads != 1 else ''}" if run.threads is not None else "threads ?"
    return f"{run.device or '?'}, {threads}, torch {run.torch or '?'}"
