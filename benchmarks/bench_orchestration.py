"""Orchestration overhead: our driver against plain Ray Tune + OptunaSearch, and the cost of a rejected proposal.

Every configuration runs the same trivial trials (sleep 2 s, report once), 20
trials 2 at a time on a local Ray with 2 CPUs. Each run gets a Ray of its own,
started the way that configuration starts it, as every ``nas search``
invocation starts one: ``nas.search.tuning.start_ray`` for ours, a plain
``ray.init(num_cpus=2)`` for plain Ray Tune. Ray's start is not timed, for
any configuration; by default the run starts as soon as ``ray.init``
returns, as in ``nas search``, while Ray is still starting its idle worker
processes (``--settle S`` waits S seconds first). Each configuration first
runs an untimed warm-up (4 short trials) so that no timed run pays the
driver's first imports. Overhead is ``wall / ideal - 1`` with ``ideal =
trained trials * 2 s / 2 workers``, as the mean of ``--rounds`` rounds (order
rotates). "ours" is the whole ``run_search`` call (space, study files, Optuna
storage, records, pareto.json) on a budget-free copy of tiny.yaml with the
random sampler, so all 20 trials are trained; plain Ray Tune runs with its
defaults (its loggers and experiment checkpoints on) and with
``reuse_actors=True``.

Where ours saves its time: Tune gives its trainable actors a ``runtime_env``,
so Ray starts a new worker process for each (about 2 s here, with the import
of Ray Tune); on the local Ray that nas starts, the actors take Ray's
prestarted workers, which import Ray Tune as they start (see
``nas.search.tuning``).

The second part times proposals the cost model rejects (every architecture over
budget): ask, define-by-run suggest, analytic cost, record (grouped fsync),
tell, and the storage mirror's queueing; the mirror thread's SQLite writes
happen in the background and are timed separately. For reference it also times
Optuna's TPE alone on a study of as many parameters as mixnet.yaml has, all
present on every trial: the floor for TPE whatever the space's encoding.

    python -m benchmarks.bench_orchestration [--quick] [--trials 20] [--sleep 2] [--rounds 3] [--settle 0]
                                             [--part all|overhead|proposals]
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from benchmarks._machine import banner

WORKERS = 2


def sleep_trial(config: dict) -> None:
    """The trivial trial: sleep, then report once in the form the driver expects."""
    from ray import tune

    time.sleep(config.get("sleep_s", 2.0))
    tune.report({"val_accuracy": config.get("x", 0.5), "epoch": 1, "final": True})


def plain_tune(trials: int, sleep_s: float, reuse: bool, storage: Path) -> tuple[float, int]:
    import optuna
    from ray import tune
    from ray.tune.search.optuna import OptunaSearch

    optuna.logging.set_verbosity(optuna.logging.WARNING)

    def trial(config: dict) -> None:
        time.sleep(sleep_s)
        tune.report({"val_accuracy": config["x"]})

    t0 = time.perf_counter()
    tuner = tune.Tuner(trial, param_space={"x": tune.uniform(0, 1)},
                       tune_config=tune.TuneConfig(search_alg=OptunaSearch(metric="val_accuracy", mode="max"),
                                                   num_samples=trials, max_concurrent_trials=WORKERS,
                                                   reuse_actors=reuse),
                       run_config=tune.RunConfig(storage_path=str(storage), verbose=0))
    tuner.fit()
    return time.perf_counter() - t0, trials


def ours(trials: int, sleep_s: float, work: Path) -> tuple[float, int]:
    import nas.search.tuning  # noqa: F401 - imports are outside the timing, as for the plain runs
    from nas.search.driver import SearchOptions, run_search

    space = _budget_free_tiny(work, sleep_s)
    t0 = time.perf_counter()
    s = run_search(SearchOptions(space=space, trials=trials, concurrency=WORKERS, sampler="random",
                                 out=work / "ours"),
                   trainable=_with_sleep(sleep_s))
    wall = time.perf_counter() - t0
    trained = sum(1 for r in s.records if r["epochs"] > 0 and r["duplicate_of"] is None)
    return wall, trained


def _with_sleep(sleep_s: float):
    def trainable(config: dict) -> None:
        sleep_trial({**config, "sleep_s": sleep_s, "x": (config["number"] % 10) / 10})

    return trainable


def _budget_free_tiny(work: Path, sleep_s: float) -> Path:
    from nas.space import find_space_file

    data = yaml.safe_load(find_space_file("tiny.yaml").read_text())
    data.pop("budgets", None)
    data.pop("family", None)
    data["name"] = f"bench-{time.time_ns()}"
    p = work / f"{data['name']}.yaml"
    p.write_text(yaml.safe_dump(data))
    return p


def rejected_proposals(space_name: str, sampler: str, n: int, work: Path) -> tuple[float, float]:
    """(ms per over-budget proposal, s to flush the storage mirror afterwards)."""
    import optuna

    from benchmarks._spaces import drop_latency, variant
    from nas.results.store import RecordWriter, StudyDir
    from nas.search.samplers import make_sampler
    from nas.search.searcher import Proposer
    from nas.search.settings import search_objectives
    from nas.search.storage import Mirror
    from nas.space import load_space

    # analytic costs only: a latency budget (mixnet.yaml's) would time each new network's parts on demand, about
    # a second each, which is bench_latency's subject, not the proposal path's
    space = load_space(variant(space_name, work, f"costs-{sampler}", drop_latency))
    space.budgets.macs = 1.0  # nothing is within budget
    objs = search_objectives(space, "train")
    sd = StudyDir(work / f"rej-{space.name}-{sampler}")
    sd.root.mkdir(parents=True)
    mirror = Mirror(sd, "sqlite", "r", [o["direction"] for o in objs], [o["metric"] for o in objs])
    memory = optuna.create_study(directions=[o["direction"] for o in objs], sampler=make_sampler(sampler, 0, n))
    writer = RecordWriter(sd.trials)
    p = Proposer(space, memory, objectives=objs, target=n, records=[], write=writer.append, mirror=mirror.upsert)
    t0 = time.perf_counter()
    assert p.next() is None
    answered = time.perf_counter() - t0
    t1 = time.perf_counter()
    mirror.close()
    writer.close()
    return 1e3 * answered / n, time.perf_counter() - t1


def tpe_alone(n_params: int, history: int, n: int) -> float:
    """ms per ask + suggest + tell of Optuna's TPE (as nas configures it) with no nas code: ``n_params``
    parameters present on every trial, two objectives, one constraint, after ``history`` finished trials.
    The floor under any encoding of a space with that many decisions."""
    import random

    import optuna

    from nas.search.samplers import make_sampler

    study = optuna.create_study(directions=["maximize", "minimize"], sampler=make_sampler("tpe", 0, history + n))
    rng = random.Random(0)

    def propose(k: int) -> float:
        t0 = time.perf_counter()
        for _ in range(k):
            trial = study.ask()
            for i in range(n_params):
                if i % 3 == 0:
                    trial.suggest_int(f"p{i}", 1, 5)
                else:
                    trial.suggest_categorical(f"p{i}", ["a", "b", "c", "d"])
            trial.set_constraint("macs", rng.random() - 0.5)
            study.tell(trial, [rng.random(), rng.random()])
        return 1e3 * (time.perf_counter() - t0) / k

    propose(history)
    return propose(n)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--sleep", type=float, default=2.0)
    ap.add_argument("--rounds", type=int, default=3, help="repeat the three configurations (order rotates)")
    ap.add_argument("--settle", type=float, default=0.0,
                    help="untimed seconds between a Ray start and the run (Ray starts its idle workers)")
    ap.add_argument("--proposals", type=int, default=100, help="rejected proposals per space and sampler")
    ap.add_argument("--part", choices=("all", "overhead", "proposals"), default="all",
                    help="the overhead comparison, the rejected proposals, or both")
    ap.add_argument("--quick", action="store_true", help="8 trials of 1 s, 30 rejected proposals")
    args = ap.parse_args()
    if args.quick:
        args.trials, args.sleep, args.proposals = min(args.trials, 8), min(args.sleep, 1.0), min(args.proposals, 30)
        args.rounds = 1
    banner("orchestration overhead: nas search vs plain Ray Tune + OptunaSearch")
    work = Path(tempfile.mkdtemp(prefix="bench_orch_"))
    if args.part in ("all", "overhead"):
        overhead(args, work)
    if args.part in ("all", "proposals"):
        proposals(args, work)
    shutil.rmtree(work, ignore_errors=True)


def overhead(args: argparse.Namespace, work: Path) -> None:
    """Ours against plain Ray Tune + OptunaSearch on the same trivial trials, ``args.rounds`` rounds."""
    import ray

    # The plain configurations run with Tune's defaults: the environment from before our Tune settings.
    clean_env = dict(os.environ)
    from nas.search import tuning

    ideal_per_trial = args.sleep / WORKERS
    configs = [("plain Ray Tune + OptunaSearch (defaults)",
                lambda n, s: plain_tune(n, s, False, work / "plain")),
               ("plain Ray Tune + OptunaSearch, reuse_actors=True",
                lambda n, s: plain_tune(n, s, True, work / "plain")),
               ("ours (nas search driver)", lambda n, s: ours(n, s, work))]
    results: dict[str, list[float]] = {name: [] for name, _ in configs}

    def run(name: str, fn: Any, n: int, sleep_s: float, settle_s: float) -> tuple[float, int]:
        """``fn`` on a Ray of its own, started as that configuration starts it (untimed, with ``settle_s``)."""
        if name.startswith("plain"):
            os.environ.clear()
            os.environ.update(clean_env)
            ray.init(num_cpus=WORKERS, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
        else:
            tuning.start_ray(None, WORKERS)
        logging.getLogger("ray").setLevel(logging.ERROR)
        try:
            time.sleep(settle_s)
            return fn(n, sleep_s)
        finally:
            ray.shutdown()

    for name, fn in configs:  # warm-up, untimed: imports and first-use costs of each driver
        run(name, fn, min(4, args.trials), 0.1, 0.0)
    for r in range(args.rounds):
        order = configs[r % len(configs):] + configs[: r % len(configs)]
        for name, fn in order:
            wall, trained = run(name, fn, args.trials, args.sleep, args.settle)
            over = wall / (trained * ideal_per_trial) - 1
            results[name].append(over)
            print(f"  round {r + 1}: {name:52s} wall {wall:6.1f} s for {trained} trials "
                  f"(ideal {trained * ideal_per_trial:.0f} s): overhead {100 * over:5.1f}%", flush=True)
    print(f"\n{args.trials} trials of {args.sleep:g} s on {WORKERS} workers, {args.settle:g} s settle, "
          f"mean over {args.rounds} round(s):")
    for name, overs in results.items():
        print(f"  {name:52s} overhead {100 * sum(overs) / len(overs):5.1f}%")
    best_plain = min(sum(v) / len(v) for k, v in results.items() if k.startswith("plain"))
    mine = sum(results[configs[2][0]]) / len(results[configs[2][0]])
    print(f"  goal: ours <= 10% and below the best plain ({100 * best_plain:.1f}%): "
          f"{'met' if mine <= 0.10 and mine < best_plain else 'NOT met'} ({100 * mine:.1f}%)")


def proposals(args: argparse.Namespace, work: Path) -> None:
    """The cost of proposals the cost model rejects, per space and sampler, and TPE's own floor."""
    print(f"\nrejected (over-budget) proposals, {args.proposals} each, answered without Ray (goal < 10 ms):")
    for space_name in ("tiny.yaml", "mixnet.yaml"):
        for sampler in ("nsga2", "tpe", "random"):
            ms, flush_s = rejected_proposals(space_name, sampler, args.proposals, work)
            print(f"  {space_name:12s} {sampler:7s} {ms:6.2f} ms each; SQLite mirror drained "
                  f"{flush_s:5.2f} s after the last answer")
    floor = tpe_alone(105, 100, max(10, args.proposals // 3))
    print(f"  Optuna's TPE alone (no nas code), 105 parameters on every trial, after 100 trials: {floor:6.2f} ms "
          "each (the floor for TPE at mixnet.yaml's size, whatever the encoding)")


if __name__ == "__main__":
    main()
