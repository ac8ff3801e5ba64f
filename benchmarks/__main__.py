"""Run the benchmark suite: every ``benchmarks/bench_*.py``, each in its own process.

    python -m benchmarks [--quick] [--only NAME[,NAME...]] [--list] [--logs DIR]

It runs from any directory once the repository is installed editable
(``pip install -e .`` maps ``benchmarks`` to the checkout), or from the
repository root without that. Each benchmark runs as
``python -m benchmarks.<name> [--quick]`` in the repository root (their
files and results are relative to it), so one crash or a leaked thread pool cannot disturb the
next, and its output is printed live. ``--quick`` is passed only to modules
that accept it (their argument parser declares ``--quick``); a module that
does not is run with no arguments and the summary says so. The summary at
the end lists each benchmark's status and wall time; the exit status is 1 if
any benchmark failed.
"""

from __future__ import annotations

import argparse
import ast
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# The suite's order: cheap building blocks first, the long end-to-end proofs last.
ORDER = ("bench_ops", "bench_latency", "bench_trainer", "bench_data", "bench_orchestration",
         "bench_search_quality", "bench_costonly", "bench_family", "bench_scaling", "bench_gpu")
# Benchmarks that exit with NO_GPU_EXIT where torch sees no CUDA device: skipped, not failed, in the summary.
NEEDS_GPU = ("bench_gpu",)
NO_GPU_EXIT = 2
TAIL_LINES = 3  # output lines kept per benchmark for the summary


@dataclass
class Outcome:
    name: str
    status: str  # ok | failed (rc N) | missing | interrupted | skipped (no GPU)
    seconds: float = 0.0
    quick: bool | None = None  # whether --quick was passed (None: not run)
    tail: tuple[str, ...] = ()


def available() -> list[str]:
    """Benchmark modules present: the suite's order first, then any other ``bench_*.py`` by name."""
    found = {p.stem for p in HERE.glob("bench_*.py")}
    return [n for n in ORDER if n in found] + sorted(found - set(ORDER))


def accepts_quick(name: str) -> bool:
    """Whether the module's source declares a ``--quick`` option (read, not imported: imports are slow)."""
    try:
        tree = ast.parse((HERE / f"{name}.py").read_text())
    except (OSError, SyntaxError):
        return False
    return any(isinstance(node, ast.Constant) and node.value == "--quick" for node in ast.walk(tree))


def select(only: list[str] | None) -> list[str]:
    """The benchmarks to run, in suite order; ``only`` names may drop the ``bench_`` prefix."""
    if not only:
        return list(dict.fromkeys([*ORDER, *available()]))
    wanted = []
    for item in only:
        for n in filter(None, (s.strip() for s in item.split(","))):
            wanted.append(n if n.startswith("bench_") else f"bench_{n}")
    known = set(ORDER) | set(available())
    unknown = [n for n in wanted if n not in known]
    if unknown:
        raise SystemExit(f"--only: unknown benchmark {unknown[0]!r} (known: {', '.join(sorted(known))})")
    return list(dict.fromkeys(wanted))


def run_one(name: str, quick: bool, log_dir: Path | None = None) -> Outcome:
    """Run one benchmark module, echoing its output line by line."""
    if not (HERE / f"{name}.py").is_file():
        return Outcome(name, "missing")
    use_quick = quick and accepts_quick(name)
    cmd = [sys.executable, "-m", f"benchmarks.{name}", *(["--quick"] if use_quick else [])]
    print(f"\n>>> {' '.join(cmd[1:])}", flush=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    log = open(log_dir / f"{name}.log", "w") if log_dir else None  # noqa: SIM115 - closed below
    tail: list[str] = []
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            bufsize=1)
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            sys.stdout.write(line)
            sys.stdout.flush()
            if log:
                log.write(line)
            if line.strip():
                tail = [*tail[-(TAIL_LINES - 1):], line.rstrip()]
        rc = proc.wait()
    except KeyboardInterrupt:
        proc.terminate()
        proc.wait()
        return Outcome(name, "interrupted", time.perf_counter() - t0, use_quick, tuple(tail))
    finally:
        if log:
            log.close()
    status = "ok" if rc == 0 else f"failed (rc {rc})"
    if rc == NO_GPU_EXIT and name in NEEDS_GPU:
        status = "skipped (no GPU)"
    return Outcome(name, status, time.perf_counter() - t0, use_quick, tuple(tail))


def summary(outcomes: list[Outcome], quick: bool) -> str:
    lines = [f"\n== benchmark summary ({'quick' if quick else 'full'} mode) ==",
             f"{'benchmark':<24}{'status':<16}{'time':>9}  mode"]
    for o in outcomes:
        if o.quick is None:
            mode = "-"
        elif quick and not o.quick:
            mode = "full (no --quick option)"
        else:
            mode = "quick" if o.quick else "full"
        t = f"{o.seconds:8.1f}s" if o.quick is not None else f"{'-':>9}"
        lines.append(f"{o.name:<24}{o.status:<16}{t}  {mode}")
    failed = [o for o in outcomes if o.status.startswith("failed")]
    for o in failed:
        lines.append(f"  {o.name}: last output: {' | '.join(o.tail) or '(none)'}")
    total = sum(o.seconds for o in outcomes)
    lines.append(f"{len(outcomes)} benchmarks, {sum(o.status == 'ok' for o in outcomes)} ok, {len(failed)} failed, "
                 f"{sum(o.status == 'missing' for o in outcomes)} missing, "
                 f"{sum(o.status.startswith('skipped') for o in outcomes)} skipped; {total / 60:.1f} min")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="the minimal version of each benchmark (minutes, not hours)")
    ap.add_argument("--only", action="append", metavar="NAME[,NAME]",
                    help="run only these benchmarks (e.g. family or bench_family); repeatable")
    ap.add_argument("--list", action="store_true", help="list the benchmarks and whether they accept --quick")
    ap.add_argument("--logs", type=Path, default=None, help="also write each benchmark's output to DIR/NAME.log")
    args = ap.parse_args(argv)
    if not (ROOT / "search_spaces").is_dir():
        raise SystemExit(f"python -m benchmarks: {ROOT} is not the nas repository checkout the benchmarks run in; "
                         "install it editable (pip install -e .) or run from the repository root")
    names = select(args.only)
    if args.list:
        for n in names:
            present = (HERE / f"{n}.py").is_file()
            print(f"{n:<24}{'' if present else 'missing'}{'--quick' if present and accepts_quick(n) else ''}")
        return 0
    if args.logs:
        args.logs.mkdir(parents=True, exist_ok=True)
    outcomes = []
    for n in names:
        o = run_one(n, args.quick, args.logs)
        outcomes.append(o)
        if o.status == "interrupted":
            break
    print(summary(outcomes, args.quick), flush=True)
    return 0 if all(o.status in ("ok", "missing") or o.status.startswith("skipped") for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
