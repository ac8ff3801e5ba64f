"""Run a fidelity study: sample, train every (architecture, recipe, seed) not yet done, report.

Runs execute in this process (``executor="local"``) or as Ray tasks
(``executor="ray"``), on a local Ray this call starts or on the cluster at
``address``, each task holding ``cpus_per_trial`` CPUs (and torch as many
threads) and ``gpus_per_trial`` GPUs. Plain tasks rather than Tune trials:
the work is a fixed list known up front, with no searcher or scheduler to
consult, and the driver records each run the moment its task returns.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from nas.config import TrainConfig
from nas.errors import InputError
from nas.fidelity import report as _report
from nas.fidelity.recipes import Recipe, data_overrides, resolve_recipes
from nas.fidelity.store import RUNS_FILE, Run, RunLog, file_sha256, open_settings
from nas.genotype import Genotype, from_dict

TrainFn = Callable[[Genotype, TrainConfig], tuple[float, float]]
OnRunFinished = Callable[[Run, int, int], None]
EXECUTORS = ("ray", "local")


def train_proxy(genotype: Genotype, config: TrainConfig) -> tuple[float, float]:
    """The default ``train_fn``: ``nas.train.train``'s final validation accuracy and training seconds."""
    from nas.train import train

    result = train(genotype, config)
    return result.accuracy, result.train_s


@dataclasses.dataclass(frozen=True)
class _Job:
    genotype: Genotype
    recipe: Recipe
    seed: int

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.genotype.hash, self.recipe.name, self.seed)


def _sample(space: Any, n: int, seed: int) -> list[Genotype]:
    # The one call of the space's sampler (it may be renamed).
    from functools import partial

    from nas.search.budgets import is_feasible

    return space.sample_many(n, seed=seed, feasible=partial(is_feasible, space))


def run_fidelity(space_path: str | Path, out_dir: str | Path, n: int = 20, seeds: Sequence[int] = (1, 2), *,
                 recipes: Sequence[Recipe | Mapping[str, Any]] | None = None,
                 reference: Recipe | Mapping[str, Any] | None = None, data: str | Path | None = None,
                 sample_seed: int = 0, executor: str = "ray", address: str | None = None,
                 cpus_per_trial: float = 1, gpus_per_trial: float = 0,
                 on_run_finished: OnRunFinished | None = None,
                 train_fn: TrainFn | None = None) -> _report.FidelityReport:
    """Train ``n`` feasible architectures of a space under each recipe and the reference, on every seed, and
    compare the recipes' rankings with the reference's (see :mod:`nas.fidelity`).

    ``recipes`` / ``reference``: mappings such as ``{"name": "e4", "epochs": 4}`` overriding the space's proxy
    (defaults: :func:`nas.fidelity.recipes.default_recipes`). ``data`` replaces the proxy's data set: a path
    (its format detected) or a data set name. Finished runs are in ``out_dir/runs.jsonl``; a rerun with the
    same settings trains only the missing ones, one with other settings is an ``InputError``.
    ``on_run_finished(run, done, total)`` is called after each run is recorded. ``train_fn(genotype, config)
    -> (accuracy, seconds)`` replaces the trainer (it must be picklable for Ray).
    Writes ``out_dir/report.json`` and ``out_dir/ranks.png`` and returns the report.
    """
    from nas.space import load_space

    if executor not in EXECUTORS:
        raise InputError(f"executor: {executor!r} is not one of {', '.join(EXECUTORS)}")
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise InputError(f"n: at least 2 architectures are needed to rank them, got {n!r}")
    seeds = _check_seeds(seeds)
    if cpus_per_trial <= 0 or gpus_per_trial < 0:
        raise InputError("cpus_per_trial: must be > 0 (and gpus_per_trial >= 0)")
    space_path = Path(space_path)
    space = load_space(space_path)
    base = dataclasses.replace(space.proxy, **data_overrides(data))
    candidates, ref = resolve_recipes(base, recipes, reference)
    settings = {"space": str(space_path), "space_sha256": file_sha256(space_path), "n": n, "seeds": list(seeds),
                "sample_seed": int(sample_seed), "data": data_overrides(data),
                "recipes": [r.to_dict() for r in candidates], "reference": ref.to_dict()}
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(f"{out}: cannot create the output directory ({e.strerror})") from None
    genotypes = open_settings(out, settings, lambda: _sample(space, n, int(sample_seed)))
    all_recipes = [*candidates, ref]
    hashes = {g.hash for g in genotypes}
    names = {r.name for r in all_recipes}
    log = RunLog(out / RUNS_FILE, valid=lambda r: r.arch in hashes and r.recipe in names and r.seed in seeds)
    jobs = [_Job(g, r, s) for s in seeds for r in all_recipes for g in genotypes]
    todo = [j for j in jobs if j.key not in log.runs]
    train_fn = train_fn or train_proxy
    done = len(jobs) - len(todo)
    results = (_run_local(todo, base, train_fn) if executor == "local"
               else _run_ray(todo, base, train_fn, address, cpus_per_trial, gpus_per_trial))
    try:
        for job, (accuracy, seconds) in results:
            run = Run(job.genotype.hash, job.recipe.name, job.seed, float(accuracy), float(seconds))
            log.append(run)
            done += 1
            if on_run_finished is not None:
                on_run_finished(run, done, len(jobs))
    finally:
        results.close()  # a Ray run cancels its unfinished tasks and stops the Ray it started
        log.close()
    rep = _report.build(settings, genotypes, candidates, ref, seeds, log.runs, log.notes)
    paths = {"json": _report.write_json(rep, out / _report.REPORT_FILE),
             "png": _report.write_plot(rep, out / _report.PLOT_FILE)}
    return dataclasses.replace(rep, paths=paths)


def _check_seeds(seeds: Sequence[int]) -> tuple[int, ...]:
    if isinstance(seeds, (str, bytes)) or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise InputError(f"seeds: expected a list of integers, got {seeds!r}")
    out = tuple(dict.fromkeys(int(s) for s in seeds))
    if len(out) < 2:
        raise InputError(f"seeds: at least 2 distinct seeds are needed to measure seed noise, got {list(seeds)}")
    return out


def _run_local(jobs: Sequence[_Job], base: TrainConfig, train_fn: TrainFn) -> Iterator[tuple[_Job, tuple]]:
    for job in jobs:
        yield job, train_fn(job.genotype, job.recipe.config(base, job.seed))


def _remote_run(genotype: dict[str, Any], config: dict[str, Any], train_fn: TrainFn,
                threads: int) -> tuple[float, float]:
    """A Ray task: plain data in and out (it may run on another machine)."""
    import torch

    torch.set_num_threads(threads)
    return train_fn(from_dict(genotype, "fidelity run"), TrainConfig(**config))


def _run_ray(jobs: Sequence[_Job], base: TrainConfig, train_fn: TrainFn, address: str | None,
             cpus_per_trial: float, gpus_per_trial: float) -> Iterator[tuple[_Job, tuple]]:
    if not jobs:
        return
    import ray

    from nas.search.tuning import start_ray

    started = start_ray(address)
    try:
        task = ray.remote(num_cpus=cpus_per_trial, num_gpus=gpus_per_trial)(_remote_run)
        fn_ref = ray.put(train_fn)
        threads = max(1, int(cpus_per_trial))
        pending = {}
        for job in jobs:
            config = dataclasses.asdict(job.recipe.config(base, job.seed))
            pending[task.remote(job.genotype.to_dict(), config, fn_ref, threads)] = job
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                for ref in ready:
                    job = pending.pop(ref)
                    yield job, _get(ray, ref)
        finally:
            for ref in pending:  # interrupted or failed: what has not finished is trained again on resume
                ray.cancel(ref)
    finally:
        if started:
            ray.shutdown()


def _get(ray: Any, ref: Any) -> tuple[float, float]:
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as e:
        cause = getattr(e, "cause", None)
        if isinstance(cause, InputError):
            raise InputError(str(cause)) from None  # one line, as if it had happened here
        raise
