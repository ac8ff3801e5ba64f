"""Proxy fidelity: how well each candidate recipe ranks a space's architectures as a longer reference does.

Samples N feasible architectures of the space, trains each under the
candidate recipes and the reference on every seed (``nas.fidelity``), and
prints per recipe Kendall tau, Spearman rho and top-k overlap against the
reference, seed noise against the spread between architectures (accuracy
points), and training seconds per run; the reference's own row shows its
seed noise and accuracy range (a saturated reference is flagged). The study
directory keeps every finished run: rerun the same command to resume.

Default recipes: the space's proxy, a cheaper one (half the epochs, or half
the width at one epoch) and one of twice the epochs; the reference trains 4x
the proxy's epochs. ``--quick`` trains N=4 architectures, candidates of one
epoch (the proxy's width and half of it) and a 2-epoch reference, on 2 seeds.

    python -m benchmarks.bench_fidelity --quick
    python -m benchmarks.bench_fidelity [--space mixnet.yaml] [-n 20] [--seeds 1,2] [--out DIR]
        [--recipe '{name: e4, epochs: 4}' ...] [--reference '{name: ref, epochs: 16}'] [--data PATH]
        [--ray] [--address ADDR] [--cpus-per-trial 1] [--gpus-per-trial 0] [--threads 1]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

from benchmarks._machine import banner


def _table(rows: list[dict[str, str]]) -> str:
    cols = list(rows[0])
    widths = {c: max(len(c), *(len(r[c]) for r in rows)) for c in cols}
    line = "  ".join(c.ljust(widths[c]) for c in cols)
    out = [line, "  ".join("-" * widths[c] for c in cols)]
    out += ["  ".join(r[c].ljust(widths[c]) for c in cols) for r in rows]
    return "\n".join(out)


def _mapping(text: str, what: str) -> dict:
    from nas.io import loads_yaml

    value = loads_yaml(text, what)
    if not isinstance(value, dict):
        raise SystemExit(f"{what}: expected a mapping such as '{{name: e4, epochs: 4}}', got {text!r}")
    return value


def _quick_recipes(space_path: Path) -> tuple[list[dict], dict]:
    from nas.space import load_space

    width = load_space(space_path).proxy.width
    return ([{"name": "e1", "epochs": 1}, {"name": f"e1-w{width / 2:g}", "epochs": 1, "width": width / 2}],
            {"name": "e2", "epochs": 2})


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.bench_fidelity", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="N=4, one-epoch candidates, a two-epoch reference")
    ap.add_argument("--space", default="tiny.yaml", help="space file (shipped spaces by name)")
    ap.add_argument("-n", type=int, default=None, help="architectures (default 20, 4 with --quick)")
    ap.add_argument("--seeds", default="1,2", help="comma-separated training seeds (at least 2)")
    ap.add_argument("--sample-seed", type=int, default=0, help="seed of the architecture sample")
    ap.add_argument("--recipe", action="append", default=None, metavar="YAML",
                    help="a candidate recipe, e.g. '{name: e4, epochs: 4}' (repeatable; default: see above)")
    ap.add_argument("--reference", default=None, metavar="YAML", help="the reference recipe (default: 4x epochs)")
    ap.add_argument("--data", default=None, help="a local data set (path) or data set name instead of the space's")
    ap.add_argument("--out", type=Path, default=None, help="study directory (default: a temporary one, removed)")
    ap.add_argument("--ray", action="store_true", help="run the trainings as Ray tasks (default: in this process)")
    ap.add_argument("--address", default=None, help="join this Ray cluster (implies --ray)")
    ap.add_argument("--cpus-per-trial", type=float, default=1.0)
    ap.add_argument("--gpus-per-trial", type=float, default=0.0)
    ap.add_argument("--threads", type=int, default=1, help="torch threads of in-process training")
    args = ap.parse_args(argv)

    import torch

    from nas.errors import InputError
    from nas.fidelity import run_fidelity
    from nas.space import find_space_file

    torch.set_num_threads(args.threads)
    banner("proxy fidelity")
    space_path = find_space_file(args.space)
    n = args.n or (4 if args.quick else 20)
    seeds = tuple(int(s) for s in args.seeds.split(",") if s.strip())
    recipes = [_mapping(r, "--recipe") for r in args.recipe] if args.recipe else None
    reference = _mapping(args.reference, "--reference") if args.reference else None
    if args.quick:
        quick_recipes, quick_reference = _quick_recipes(space_path)
        recipes, reference = recipes or quick_recipes, reference or quick_reference
    work = args.out or Path(tempfile.mkdtemp(prefix="bench_fidelity_"))
    print(f"space {space_path.name}, {n} architectures, seeds {list(seeds)}, study {work}", flush=True)
    t0 = time.perf_counter()

    def progress(run, done: int, total: int) -> None:
        print(f"  [{done:>3}/{total}] {run.arch} {run.recipe:<10} seed {run.seed}: {100 * run.accuracy:5.1f}% "
              f"in {run.seconds:5.1f} s", flush=True)

    try:
        rep = run_fidelity(space_path, work, n=n, seeds=seeds, recipes=recipes, reference=reference, data=args.data,
                           sample_seed=args.sample_seed, executor="ray" if args.ray or args.address else "local",
                           address=args.address, cpus_per_trial=args.cpus_per_trial,
                           gpus_per_trial=args.gpus_per_trial, on_run_finished=progress)
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    finally:
        if args.out is None:
            shutil.rmtree(work, ignore_errors=True)
    print(f"\n{len(rep.runs)} runs, {time.perf_counter() - t0:.0f} s wall; top-k with k={rep.k}; "
          "seed std, seed |d| (mean |difference| between two seeds) and arch std in accuracy points")
    print(_table(rep.rows()))
    for note in rep.notes:
        print(f"note: {note}")
    if args.out is not None:
        print(f"written: {', '.join(str(p) for p in rep.paths.values())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
