"""Which embedded data set can rank architectures: seed noise against the spread between architectures.

    python -m benchmarks.bench_data [--quick] [--space mixnet.yaml] [--datasets digits,mnist5k] [--archs 4]
                                    [--seeds 2] [--ref-factor 3] [--ref-seeds 1] [--threads 1] [--out FILE]

Samples ``--archs`` feasible architectures of the space and trains each, on
every data set, with the space's own ``proxy:`` recipe (only the data set
changes) on ``--seeds`` seeds, and with a longer reference (``--ref-factor``
times the epochs). Prints per data set: validation accuracy per architecture,
seed noise (mean |difference| between an architecture's seeds), the spread
between architectures (standard deviation and range of their means), whether
the reference stays below the ceiling, Kendall tau of the short recipe's mean
against the reference, and the CPU seconds per run. Validation accuracy, as the
search sees it; the test split is not touched.

Every finished run is written to ``--out`` (JSON), and a rerun with the same
file skips the runs it holds, so a long run can be stopped and continued.
``--quick`` (2 architectures, 1 epoch, 256 training images) only checks that
the script runs; its figures rank nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time
from pathlib import Path

import torch

from benchmarks._machine import banner

ROOT = Path(__file__).resolve().parent.parent
CEILING = 0.98  # a reference above this cannot separate good architectures from each other


def _unit(proxy) -> str:  # noqa: ANN001
    """The proxy's length field: a step recipe's lengths below are steps, an epoch recipe's epochs."""
    return "steps" if proxy.steps is not None else "epochs"


def _n(proxy) -> int:  # noqa: ANN001
    return proxy.steps if proxy.steps is not None else proxy.epochs


def _key(ds: str, arch: str, epochs: int, seed: int) -> str:
    return f"{ds}/{arch}/{epochs}/{seed}"


def _runs(args: argparse.Namespace, archs: list, proxy) -> list[tuple[str, object, int, int]]:  # noqa: ANN001
    """Every short run before any reference run: a run stopped early still has the seed-noise figures."""
    ref_epochs = _n(proxy) * args.ref_factor
    short = [(ds, g, _n(proxy), proxy.seed + s) for ds in args.datasets for g in archs for s in range(args.seeds)]
    ref = [(ds, g, ref_epochs, proxy.seed + s) for ds in args.datasets for g in archs for s in range(args.ref_seeds)]
    return short + ref


def train_all(args: argparse.Namespace) -> tuple[list, dict, object]:
    from nas.config import with_overrides
    from nas.io import atomic_write_json
    from nas.space import load_space
    from nas.train import train

    space = load_space(ROOT / "search_spaces" / args.space if not Path(args.space).exists() else args.space)
    proxy = dataclasses.replace(space.proxy, device="cpu")
    if args.quick:
        proxy = with_overrides(proxy, epochs=1, subsample=256)
    archs = space.sample_many(args.archs, seed=args.sample_seed, feasible=True)
    done: dict[str, dict] = {}
    out = Path(args.out) if args.out else None
    if out and out.is_file():
        done = {r["key"]: r for r in json.loads(out.read_text())["runs"]}
    for ds, g, epochs, seed in _runs(args, archs, proxy):
        key = _key(ds, g.hash[:8], epochs, seed)
        if key in done:
            continue
        cfg = with_overrides(proxy, dataset=ds, path=None, seed=seed, **{_unit(proxy): epochs})
        cpu0, wall0 = time.process_time(), time.perf_counter()
        r = train(g, cfg)
        done[key] = {"key": key, "dataset": ds, "arch": g.hash[:8], "epochs": epochs, "seed": seed,
                     "accuracy": r.accuracy, "cpu_s": time.process_time() - cpu0,
                     "wall_s": time.perf_counter() - wall0, "diverged": r.diverged}
        print(f"  {key}: {r.accuracy:.2%}  {done[key]['cpu_s']:.0f} CPU s", flush=True)
        if out:
            atomic_write_json(out, {"space": args.space, "proxy": dataclasses.asdict(proxy),
                                    "runs": list(done.values())})
    return archs, done, proxy


def summarise(args: argparse.Namespace, archs: list, done: dict, proxy) -> dict:  # noqa: ANN001
    from scipy.stats import kendalltau

    from nas.cost.macs import count

    ref_epochs = _n(proxy) * args.ref_factor
    summary = {}
    for ds in args.datasets:
        u = _unit(proxy)
        print(f"\n{ds}: {_n(proxy)} {u} x {args.seeds} seeds, reference {ref_epochs} {u} x {args.ref_seeds}")
        print(f"{'arch':8} {'MMACs':>6} " + " ".join(f"{'seed ' + str(proxy.seed + s):>8}" for s in range(args.seeds))
              + f" {'mean':>7} {'|diff|':>7} {'ref':>7}")
        means, refs, diffs, cpu_short, cpu_ref = [], [], [], [], []
        for g in archs:
            a = g.hash[:8]
            short = [done[_key(ds, a, _n(proxy), proxy.seed + s)] for s in range(args.seeds)]
            ref = [done[_key(ds, a, ref_epochs, proxy.seed + s)] for s in range(args.ref_seeds)]
            accs = [r["accuracy"] for r in short]
            means.append(statistics.fmean(accs))
            refs.append(statistics.fmean(r["accuracy"] for r in ref))
            diffs.append(max(accs) - min(accs))
            cpu_short += [r["cpu_s"] for r in short]
            cpu_ref += [r["cpu_s"] for r in ref]
            print(f"{a:8} {count(g).macs / 1e6:6.0f} " + " ".join(f"{x:8.2%}" for x in accs)
                  + f" {means[-1]:7.2%} {diffs[-1]:7.2%} {refs[-1]:7.2%}")
        tau = kendalltau(means, refs).statistic if len(archs) > 1 else float("nan")
        s = {"seed_noise": statistics.fmean(diffs), "between_std": statistics.pstdev(means),
             "between_range": max(means) - min(means), "ref_min": min(refs), "ref_max": max(refs),
             "ref_range": max(refs) - min(refs), "kendall_tau": tau, "cpu_s_short": statistics.fmean(cpu_short),
             "cpu_s_ref": statistics.fmean(cpu_ref)}
        summary[ds] = s
        print(f"seed noise (mean |seed diff|) {s['seed_noise']:.2%}; "
              f"between architectures: std {s['between_std']:.2%}, range {s['between_range']:.2%}")
        print(f"reference {s['ref_min']:.2%}..{s['ref_max']:.2%} (range {s['ref_range']:.2%}; "
              f"{'below' if s['ref_max'] < CEILING else 'AT'} the {CEILING:.0%} ceiling); "
              f"Kendall tau short mean vs reference {tau:+.2f}")
        print(f"CPU s per run: {s['cpu_s_short']:.0f} ({_n(proxy)} {u}), {s['cpu_s_ref']:.0f} ({ref_epochs})")
    return summary


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="2 architectures, 1 epoch, 256 images: a smoke run")
    ap.add_argument("--space", default="mixnet.yaml")
    ap.add_argument("--datasets", default="digits,mnist5k", help="comma-separated embedded data sets")
    ap.add_argument("--archs", type=int, default=4)
    ap.add_argument("--sample-seed", type=int, default=0)
    ap.add_argument("--seeds", type=int, default=2, help="seeds of the short (space's) recipe")
    ap.add_argument("--ref-factor", type=int, default=3, help="reference epochs = this x the recipe's epochs")
    ap.add_argument("--ref-seeds", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=None, help="JSON file of finished runs (resumes from it)")
    args = ap.parse_args(argv)
    args.datasets = [d.strip() for d in args.datasets.split(",") if d.strip()]
    if args.quick:
        args.archs, args.ref_factor = min(args.archs, 2), 2
    torch.set_num_threads(args.threads)
    banner("bench_data: embedded data sets, seed noise vs architecture spread")
    archs, done, proxy = train_all(args)
    summarise(args, archs, done, proxy)
    if args.quick:
        print("QUICK MODE: 1 epoch on 256 images ranks nothing; run without --quick.")


if __name__ == "__main__":
    main()
