"""Does every architecture a proxy recipe trains learn? Accuracy floor, median and seed spread per recipe.

    python -m benchmarks.bench_recipe [--space mixnet.yaml] [--n 8] [--seeds 1,2,3] [--data digits]
        [--recipe '{name: s240, steps: 240}' ...] [--only HASH,...] [--threads 1] [--log FILE.jsonl]
        [--report-only] [--quick]
    python -m benchmarks.bench_recipe --time [--recipe ...] [--n 2]    # seconds per run on 1 and 2 threads

Samples ``--n`` feasible architectures of the space (``nas space sample --feasible``, seed
``--sample-seed``) and trains each under every recipe (``TrainConfig`` overrides of the space's proxy;
default: the space's own proxy) on every seed, on the space's data or ``--data``. Per recipe it prints
the lowest single run, the median run, the architectures' mean accuracies (lowest, median, highest),
the worst spread of one architecture over its seeds (max - min), and the seed noise against the
spread between architectures as ``nas fidelity`` measures them (``nas.fidelity.stats.noise``), with
the wall seconds per run (model build, steps and evaluations). The goal line checks issue 26's bar:
every run >= 90%, median >= 95%, every architecture's spread over the seeds <= 2 points.

Every run is appended to ``--log`` (JSON lines) as it finishes; a rerun with the same file skips the
runs it holds, so a study can be stopped and continued and ``--report-only`` prints it again.
``--time`` trains the first ``--n`` architectures once per recipe on 1 and on 2 torch threads and
prints seconds per run (the main job trains 2 trials at a time, 1 thread each, on 2 cores).
``--quick`` (2 architectures, 2 seeds, 8 steps on 256 images) only checks that the script runs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch

from benchmarks._machine import banner

GOAL_FLOOR, GOAL_MEDIAN, GOAL_SPREAD = 0.90, 0.95, 0.02


def _parse_recipe(text: str) -> dict:
    from nas.io import loads_yaml

    value = loads_yaml(text, "--recipe")
    if not isinstance(value, dict) or "name" not in value:
        raise SystemExit(f"--recipe: expected a mapping with a name, e.g. '{{name: s240, steps: 240}}', got {text!r}")
    return value


def _config(base, recipe: dict, data: str | None, seed: int):
    from nas.config import check_config, with_overrides
    from nas.fidelity.recipes import data_overrides

    cfg = with_overrides(base, **data_overrides(data), **{k: v for k, v in recipe.items() if k != "name"},
                         seed=seed, device="cpu")
    check_config(cfg)
    return cfg


def _archs(space, n: int, sample_seed: int):
    from nas.search.budgets import is_feasible

    return space.sample_many(n, seed=sample_seed, feasible=partial(is_feasible, space))


def _read_log(path: Path | None) -> list[dict]:
    if path is None or not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _key(r: dict) -> tuple:
    return (r["data"], r["recipe"], r["arch"], r["seed"])


def run_study(space, archs, recipes: list[dict], seeds: list[int], data: str | None, log: Path | None,
              threads: int) -> list[dict]:
    from nas.train import train

    torch.set_num_threads(threads)
    done = {_key(r): r for r in _read_log(log)}
    data_name = data or space.proxy.dataset
    todo = [(rec, s, g) for rec in recipes for s in seeds for g in archs
            if (data_name, rec["name"], g.hash, s) not in done]
    print(f"{len(todo)} runs to do ({len(done)} in the log), {threads} thread(s)", flush=True)
    for i, (rec, seed, g) in enumerate(todo, 1):
        cfg = _config(space.proxy, rec, data, seed)
        t0, c0 = time.perf_counter(), time.process_time()
        r = train(g, cfg)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        row = {"data": data_name, "recipe": rec["name"], "overrides": {k: v for k, v in rec.items() if k != "name"},
               "arch": g.hash, "seed": seed, "accuracy": r.accuracy, "best_accuracy": r.best_accuracy,
               "steps": r.steps_run, "train_s": r.train_s, "wall_s": wall, "cpu_s": cpu, "threads": threads,
               "load1": _load(), "curve": [round(h["val_accuracy"], 4) for h in r.history]}
        done[_key(row)] = row
        if log is not None:
            with log.open("a") as f:
                f.write(json.dumps(row) + "\n")
        print(f"[{i}/{len(todo)}] {data_name} {rec['name']} seed {seed} {g.hash[:8]}: {100 * r.accuracy:5.1f}% "
              f"({r.steps_run} steps, {wall:.0f} s wall, {cpu:.0f} s CPU, load {row['load1']:.1f}) curve "
              + " ".join(f"{100 * a:.0f}" for a in row["curve"]), flush=True)
    return list(done.values())


def _load() -> float:
    try:
        import os

        return os.getloadavg()[0]
    except OSError:
        return float("nan")


def _complete(rows: list[dict], archs: list[str], seeds: list[int]):
    """Per (data, recipe): its runs by (arch, seed) and the architectures run on every seed (at least 2)."""
    by: dict[tuple, dict] = {}
    for r in rows:
        by.setdefault((r["data"], r["recipe"]), {})[(r["arch"], r["seed"])] = r
    for (data, recipe), runs in by.items():
        have = [a for a in archs if all((a, s) in runs for s in seeds)]
        if len(have) >= 2:
            yield data, recipe, runs, have


def summarize(rows: list[dict], archs: list[str], seeds: list[int]) -> list[dict]:
    """Per (data, recipe) with every (arch, seed) run: the figures of the module docstring."""
    from nas.fidelity.stats import noise

    out = []
    for data, recipe, runs, have in _complete(rows, archs, seeds):
        acc = np.array([[runs[(a, s)]["accuracy"] for s in seeds] for a in have])
        nz = noise(acc)
        spreads = acc.max(axis=1) - acc.min(axis=1)
        means = acc.mean(axis=1)
        walls = [runs[(a, s)]["wall_s"] for a in have for s in seeds]
        cpus = [runs[(a, s)].get("cpu_s", float("nan")) for a in have for s in seeds]
        any_run = runs[(have[0], seeds[0])]
        out.append({"data": data, "recipe": recipe, "overrides": any_run["overrides"], "archs": len(have),
                    "seeds": len(seeds), "steps": any_run["steps"], "run_min": float(acc.min()),
                    "run_median": float(np.median(acc)), "mean_min": float(means.min()),
                    "mean_median": float(np.median(means)), "mean_max": float(means.max()),
                    "spread_max": float(spreads.max()), "spread_median": float(np.median(spreads)),
                    "seed_std": nz.seed_std, "arch_std": nz.arch_std, "noise_ratio": nz.noise_ratio,
                    "s_per_run": statistics.mean(walls), "cpu_s_per_run": statistics.mean(cpus),
                    "goal": bool(acc.min() >= GOAL_FLOOR and np.median(acc) >= GOAL_MEDIAN
                                 and spreads.max() <= GOAL_SPREAD + 1e-9)})
    return out


def by_report(rows: list[dict], archs: list[str], seeds: list[int]) -> list[dict]:
    """The same figures at each report of the runs (accuracy after 1/4, 2/4, ... of a step recipe's steps):
    a curve within one schedule, so the early points have not had the learning rate's decay."""
    from nas.fidelity.stats import noise

    out = []
    for data, recipe, runs, have in _complete(rows, archs, seeds):
        steps = runs[(have[0], seeds[0])]["steps"]
        n = min(len(runs[(a, s)]["curve"]) for a in have for s in seeds)
        for i in range(n):
            acc = np.array([[runs[(a, s)]["curve"][i] for s in seeds] for a in have])
            nz = noise(acc)
            spreads = acc.max(axis=1) - acc.min(axis=1)
            out.append({"data": data, "recipe": recipe, "report": i + 1,
                        "step": round(steps * (i + 1) / n) if i + 1 < n else steps, "run_min": float(acc.min()),
                        "run_median": float(np.median(acc)), "spread_max": float(spreads.max()),
                        "seed_std": nz.seed_std, "arch_std": nz.arch_std, "noise_ratio": nz.noise_ratio})
    return out


def print_table(summary: list[dict]) -> None:
    cols = ("data", "recipe", "steps", "runs", "min run", "median", "arch means", "worst spread", "seed std",
            "arch std", "noise/spread", "s/run", "CPU s/run", "goal")
    print(" | ".join(cols))
    for s in summary:
        nr = "-" if s["noise_ratio"] is None else f"{s['noise_ratio']:.2f}"
        print(" | ".join([s["data"], s["recipe"], str(s["steps"]), f"{s['archs']}x{s['seeds']}",
                          f"{100 * s['run_min']:.1f}", f"{100 * s['run_median']:.1f}",
                          f"{100 * s['mean_min']:.1f}/{100 * s['mean_median']:.1f}/{100 * s['mean_max']:.1f}",
                          f"{100 * s['spread_max']:.1f}", f"{100 * s['seed_std']:.2f}", f"{100 * s['arch_std']:.2f}",
                          nr, f"{s['s_per_run']:.0f}", f"{s['cpu_s_per_run']:.0f}", "yes" if s["goal"] else "no"]))
    for s in summary:
        print(f"  {s['recipe']}: {json.dumps(s['overrides'])}")


def time_runs(space, archs, recipes: list[dict], data: str | None) -> None:
    from nas.train import train

    for rec in recipes:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            walls = []
            for g in archs:
                t0 = time.perf_counter()
                r = train(g, _config(space.proxy, rec, data, 1))
                walls.append(time.perf_counter() - t0)
                print(f"  {rec['name']} {threads} thread(s) {g.hash[:8]}: {walls[-1]:.1f} s "
                      f"({r.steps_run} steps, {100 * r.accuracy:.1f}%, load {_load():.1f})", flush=True)
            print(f"{rec['name']}: {statistics.mean(walls):.1f} s per run on {threads} thread(s) "
                  f"(mean of {len(walls)})", flush=True)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--space", default="mixnet.yaml")
    ap.add_argument("--n", type=int, default=8, help="feasible architectures sampled")
    ap.add_argument("--sample-seed", type=int, default=0)
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--data", default=None, help="a built-in data set name or a local path (default: the space's)")
    ap.add_argument("--recipe", action="append", default=None, metavar="YAML",
                    help="TrainConfig overrides with a name, e.g. '{name: s240, steps: 240}' (repeatable)")
    ap.add_argument("--only", default=None, help="comma-separated hash prefixes: train only these of the sample")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--log", type=Path, default=None, help="JSON lines of finished runs (resumed on rerun)")
    ap.add_argument("--report-only", action="store_true", help="print the summary of --log, train nothing")
    ap.add_argument("--time", action="store_true", help="seconds per run on 1 and 2 threads, no study")
    ap.add_argument("--quick", action="store_true", help="2 architectures, 2 seeds, 8 steps on 256 images")
    args = ap.parse_args(argv)

    from nas.cli.common import resolve_path
    from nas.space import load_space

    space = load_space(resolve_path(args.space))
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    recipes = [_parse_recipe(r) for r in args.recipe] if args.recipe else [{"name": "proxy"}]
    if args.quick:
        args.n, seeds = 2, seeds[:2]
        recipes = [{**r, "steps": 8, "epochs": None, "report_every": None, "warmup_epochs": None, "subsample": 256}
                   for r in recipes]
    banner("bench_recipe: does every trained architecture learn?")
    print(f"space {space.source}, proxy {json.dumps({k: v for k, v in vars(space.proxy).items() if v is not None})}")
    print(f"load average at start: {_load():.2f}")
    archs = _archs(space, args.n, args.sample_seed)
    if args.only:
        keep = [p.strip() for p in args.only.split(",") if p.strip()]
        archs = [g for g in archs if any(g.hash.startswith(p) for p in keep)]
    print(f"{len(archs)} feasible architectures (sample seed {args.sample_seed}): "
          + " ".join(g.hash[:8] for g in archs), flush=True)
    if args.time:
        time_runs(space, archs, recipes, args.data)
        return
    if args.report_only:
        rows = _read_log(args.log)
    else:
        rows = run_study(space, archs, recipes, seeds, args.data, args.log, args.threads)
    names = {r["name"] for r in recipes}
    rows = [r for r in rows if args.report_only or r["recipe"] in names]
    print(f"\ngoal: every run >= {100 * GOAL_FLOOR:.0f}%, median >= {100 * GOAL_MEDIAN:.0f}%, "
          f"one architecture's spread over {len(seeds)} seeds <= {100 * GOAL_SPREAD:.0f} points")
    hashes = [g.hash for g in archs]
    print_table(summarize(rows, hashes, seeds))
    print("\nat each report (the same runs, before the end of their schedule):")
    print("data | recipe | report | ~step | min run | median | worst spread | seed std | arch std | noise/spread")
    for r in by_report(rows, hashes, seeds):
        nr = "-" if r["noise_ratio"] is None else f"{r['noise_ratio']:.2f}"
        print(f"{r['data']} | {r['recipe']} | {r['report']} | {r['step']} | {100 * r['run_min']:.1f} | "
              f"{100 * r['run_median']:.1f} | {100 * r['spread_max']:.1f} | {100 * r['seed_std']:.2f} | "
              f"{100 * r['arch_std']:.2f} | {nr}")


if __name__ == "__main__":
    main()
