"""How the cost of a search grows with the work: trials, concurrency, proxy epochs; LUT build time vs space size.

    python -m benchmarks.bench_scaling [--quick] [--space tiny.yaml] [--skip-search] [--skip-lut]

1. Search wall time over a small grid (trials x concurrency x proxy epochs)
   on ``tiny.yaml``, each point a fresh study trained on Ray Tune. Ray is
   started once before the grid (its start-up is timed on its own), so the
   figures are the search's own. Same sampler seed everywhere, so the
   points propose the same first architectures.
2. LUT build time as the space grows: ``nas lut build`` (``build_lut``,
   no cache, so every part is measured) on spaces with more and more
   distinct parts, with a cheap measurement setting (1 round of 10 ms
   bursts, 2 calibration networks) and, in full mode, the default one on
   ``tiny.yaml``. Spaces too big to measure here (``mixnet.yaml``: its parts
   are at 224 px) get a measured sample of their parts, and the line says
   the total is extrapolated from it.

The GPU figures (trials/hour with packed trials, AMP, the CUDA latency
table) are ``benchmarks/bench_gpu.py``'s.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import random
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from benchmarks._machine import banner
from benchmarks._spaces import with_length

FULL_GRID = {"trials": (4, 8), "concurrency": (1, 2), "epochs": (1, 2)}
QUICK_GRID = {"trials": (4,), "concurrency": (1, 2), "epochs": (1,)}
CHEAP = {"rounds": 1, "burst_s": 0.01, "networks": 2}  # the cheap LUT measurement setting
DEFAULT = {"rounds": 3, "burst_s": 0.05, "networks": 10}  # build_lut's own defaults


# -- spaces ---------------------------------------------------------------------------------------------------------

def derive_space(base: Path, out_dir: Path, name: str, *, proxy: dict | None = None, search: dict | None = None,
                 stages: dict[int, dict] | None = None) -> Path:
    """A copy of ``base`` named ``name`` with tracking off and these sections updated (``stages`` by index)."""
    doc = yaml.safe_load(Path(base).read_text())
    doc["name"] = name
    doc["proxy"] = with_length({**(doc.get("proxy") or {})}, proxy or {})
    doc["search"] = {**(doc.get("search") or {}), **(search or {})}
    doc["tracking"] = {**(doc.get("tracking") or {}), "wandb": "disabled"}
    for i, changes in (stages or {}).items():
        doc["stages"][i] = {**doc["stages"][i], **changes}
    out_dir.mkdir(parents=True, exist_ok=True)
    p = out_dir / f"{name}.yaml"
    p.write_text(yaml.safe_dump(doc, sort_keys=False))
    return p


# Each step adds choices to tiny.yaml's stages (kernel groups, SE ratios, expansions): about 1600 and 2400
# distinct parts against tiny's 800, at the same resolutions, so build time is compared on part count alone.
WIDER = {
    "tiny_wide": {1: {"groups": [1, 2, 3, 4], "se": [0, 0.25, 0.5]}, 2: {"groups": [1, 2, 3]}},
    "tiny_wider": {1: {"groups": [1, 2, 3, 4], "se": [0, 0.25, 0.5], "expand": [3, 4, 6]},
                   2: {"groups": [1, 2, 3], "se": [0, 0.25, 0.5]}},
}


# -- search scaling -------------------------------------------------------------------------------------------------

@dataclass
class SearchPoint:
    trials: int
    concurrency: int
    epochs: int
    wall_s: float
    trained: int  # trials that ran the proxy (not infeasible, not answered from a duplicate)
    counts: dict[str, int]

    @property
    def per_trained_s(self) -> float:
        return self.wall_s / max(1, self.trained)

    @property
    def trials_per_hour(self) -> float:
        return 3600 * self.trained / max(self.wall_s, 1e-9)


def search_point(base: Path, work: Path, trials: int, concurrency: int, epochs: int, *, seed: int = 0,
                 name: str = "p", extra_search: dict | None = None, extra_proxy: dict | None = None,
                 objective: str = "train") -> SearchPoint:
    """Run one fresh search and time it (Ray, when it is already up, is reused and not timed)."""
    from nas.search.driver import SearchOptions, run_search

    name = f"{name}_t{trials}_c{concurrency}_e{epochs}"
    space = derive_space(base, work / "spaces", name, proxy={"epochs": epochs, **(extra_proxy or {})},
                         search={"trials": trials, "concurrency": concurrency, "seed": seed, "scheduler": "none",
                                 **(extra_search or {})})
    t0 = time.perf_counter()
    s = run_search(SearchOptions(space=space, out=work / "studies", wandb="disabled",
                                 objective=objective))
    wall = time.perf_counter() - t0
    trained = sum(1 for r in s.records if r.get("epochs", 0) > 0 and r.get("duplicate_of") is None)
    return SearchPoint(trials, concurrency, epochs, wall, trained, dict(s.counts))


def start_ray(num_cpus: int | None = None) -> float:
    """Start local Ray for the grid; returns the seconds it took."""
    from nas.search import tuning

    t0 = time.perf_counter()
    tuning.start_ray(None, num_cpus)
    return time.perf_counter() - t0


def stop_ray() -> None:
    import ray

    if ray.is_initialized():
        ray.shutdown()


def search_grid(base: Path, work: Path, grid: dict[str, tuple[int, ...]]) -> list[SearchPoint]:
    points = []
    for epochs in grid["epochs"]:
        for trials in grid["trials"]:
            for conc in grid["concurrency"]:
                p = search_point(base, work, trials, conc, epochs)
                points.append(p)
                print(f"  trials {trials:>2}  concurrency {conc}  epochs {epochs}: {p.wall_s:6.1f} s wall, "
                      f"{p.trained} trained, {p.per_trained_s:5.1f} s per trained trial", flush=True)
    return points


def search_table(points: list[SearchPoint]) -> str:
    base = points[0]
    lines = [f"{'trials':>6} {'conc':>4} {'epochs':>6} {'wall s':>7} {'trained':>7} {'s/trained':>9} "
             f"{'trials/h':>8} {'wall vs first':>13}"]
    for p in points:
        lines.append(f"{p.trials:>6} {p.concurrency:>4} {p.epochs:>6} {p.wall_s:7.1f} {p.trained:>7} "
                     f"{p.per_trained_s:9.1f} {p.trials_per_hour:8.0f} {p.wall_s / base.wall_s:12.2f}x")
    return "\n".join(lines)


# -- LUT scaling ----------------------------------------------------------------------------------------------------

@dataclass
class LutPoint:
    space: str
    parts: int
    seconds: float
    measured_parts: int
    setting: str
    extrapolated: bool = False
    carriers: int = 0  # carrier networks of the whole build (extrapolated points)
    sampled: int = 0  # of them (and of the parts timed alone) measured

    @property
    def ms_per_part(self) -> float:
        return 1e3 * self.seconds / max(1, self.parts)


def lut_point(space_path: Path, target: str, setting: dict[str, Any], label: str) -> LutPoint:
    """Build the space's whole table without a cache and time it."""
    from nas.latency import build_lut
    from nas.space import load_space

    space = load_space(space_path)
    t0 = time.perf_counter()
    _, stats = build_lut(space, target, cache=False, networks=setting["networks"], rounds=setting["rounds"],
                         burst_s=setting["burst_s"])
    return LutPoint(space.name, stats.parts, time.perf_counter() - t0, stats.measured, label)


def lut_sample_point(space_path: Path, target: str, setting: dict[str, Any], label: str, sample: int,
                     seed: int = 0) -> LutPoint:
    """Build time of a space too big to measure here, from a measured sample of what its build measures.

    A build on a torch CPU target times every part inside *carrier networks* (``nas.latency.carriers``:
    random networks of the space with the wanted parts spliced in); the carriers of the whole space are
    computed exactly, ``sample`` of them are measured with the build's setting, and the time per carrier
    is scaled to all of them (parts no carrier can hold are timed alone and scaled the same way). The
    calibration's whole networks are measured as a build does (their cost does not grow with the space).
    """
    from nas.cost.parts import parts, space_parts
    from nas.latency import (
        carriers,
        deployed,
        get_target,
        input_shape,
        measure_in_context,
        measure_many,
        measure_parts,
        probe_ms,
    )
    from nas.space import load_space

    space = load_space(space_path)
    tgt = get_target(target)
    nc = space.target.num_classes
    wanted = space_parts(space)
    if tgt.backend == "torch-cpu":
        nets, alone = carriers(wanted, space.sample_many(300, seed=seed + 1, unique=False), nc)
    else:
        nets, alone = [], list(wanted.values())
    rng = random.Random(seed)
    some_nets = rng.sample(nets, min(sample, len(nets)))
    some_alone = rng.sample(alone, min(sample, len(alone)))
    kw = {"rounds": setting["rounds"], "burst_s": setting["burst_s"]}
    unit = probe_ms(seconds=1.0) if tgt.clock == "probe" else None
    total = 0.0
    if some_nets:
        t0 = time.perf_counter()
        measure_in_context(some_nets, tgt, nc, unit_ms=unit, **kw)
        total += (time.perf_counter() - t0) * len(nets) / len(some_nets)
    if some_alone:
        t0 = time.perf_counter()
        measure_parts(some_alone, tgt, unit_ms=unit, **kw)
        total += (time.perf_counter() - t0) * len(alone) / len(some_alone)
    cal = space.sample_many(setting["networks"], seed=seed, unique=False) if setting["networks"] else []
    if cal:  # what nas.latency.calibrate measures, with its own rounds and bursts
        t0 = time.perf_counter()
        measure_many({i: (deployed(g, nc), input_shape(g, tgt)) for i, g in enumerate(cal)}, tgt, rounds=3,
                     burst_s=0.1, unit_ms=unit)
        total += time.perf_counter() - t0
    held = {p.key for g in some_nets for p in parts(g, nc)} & set(wanted) | {p.key for p in some_alone}
    return LutPoint(space.name, len(wanted), total, len(held), label, extrapolated=True,
                    carriers=len(nets), sampled=len(some_nets) + len(some_alone))


def lut_table(points: list[LutPoint]) -> str:
    lines = [f"{'space':<14} {'parts':>6} {'build s':>9} {'ms/part':>8}  setting"]
    for p in points:
        how = (f"extrapolated: {p.sampled} of {p.carriers} carrier networks measured ({p.measured_parts} parts)"
               if p.extrapolated else "measured")
        lines.append(f"{p.space:<14} {p.parts:>6} {p.seconds:9.1f} {p.ms_per_part:8.1f}  {p.setting}, {how}")
    return "\n".join(lines)


# -- main -----------------------------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="minimal subset: 2 search points, one LUT build")
    ap.add_argument("--space", default="tiny.yaml", help="space of the search grid and the LUT series")
    ap.add_argument("--target", default="torch-cpu", help="latency target of the LUT series")
    ap.add_argument("--skip-search", action="store_true")
    ap.add_argument("--skip-lut", action="store_true")
    ap.add_argument("--keep", type=Path, default=None, help="keep the studies and spaces here (default: temp dir)")
    args = ap.parse_args(argv)
    run(args)


def run(args: argparse.Namespace) -> dict[str, Any]:
    from nas.cli import resolve_path

    banner("bench_scaling: search and LUT cost as the work grows")
    if args.quick:
        print("QUICK MODE: 2 search points and one LUT build; run without --quick for the whole grid.")
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench_scaling_"))
    base = Path(resolve_path(args.space))
    result: dict[str, Any] = {"quick": bool(args.quick)}
    try:
        if not args.skip_search:
            grid = QUICK_GRID if args.quick else FULL_GRID
            print(f"\n-- search wall time ({base.name}, scheduler none, same seed; grid "
                  f"{' x '.join(f'{k} {list(v)}' for k, v in grid.items())}) --", flush=True)
            ray_s = start_ray(max(grid["concurrency"]))
            print(f"Ray start: {ray_s:.1f} s (once, not in the figures below)", flush=True)
            try:
                points = search_grid(base, work, grid)
            finally:
                stop_ray()
            print(search_table(points))
            result["search"] = [dataclasses.asdict(p) for p in points]
        if not args.skip_lut:
            print(f"\n-- LUT build time vs space size (target {args.target}, no cache) --", flush=True)
            cheap = (f"cheap ({CHEAP['rounds']} round, {1e3 * CHEAP['burst_s']:g} ms bursts, "
                     f"{CHEAP['networks']} cal. nets)")
            points_l = [lut_point(base, args.target, CHEAP, cheap)]
            print(f"  {points_l[-1].space}: {points_l[-1].parts} parts in {points_l[-1].seconds:.1f} s", flush=True)
            if not args.quick:
                for name, stages in WIDER.items():
                    p = derive_space(base, work / "spaces", name, stages=stages)
                    points_l.append(lut_point(p, args.target, CHEAP, cheap))
                    print(f"  {name}: {points_l[-1].parts} parts in {points_l[-1].seconds:.1f} s", flush=True)
                points_l.append(lut_point(resolve_path("cifar.yaml"), args.target, CHEAP, cheap))
                print(f"  cifar: {points_l[-1].parts} parts in {points_l[-1].seconds:.1f} s", flush=True)
                points_l.append(lut_sample_point(resolve_path("mixnet.yaml"), args.target, CHEAP, cheap, 30))
                print(f"  mixnet: ~{points_l[-1].seconds:.0f} s (extrapolated)", flush=True)
                default = (f"default ({DEFAULT['rounds']} rounds, {1e3 * DEFAULT['burst_s']:g} ms bursts, "
                           f"{DEFAULT['networks']} cal. nets)")
                points_l.append(lut_point(base, args.target, DEFAULT, default))
            print(lut_table(points_l))
            result["lut"] = [dataclasses.asdict(p) for p in points_l]
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    return result


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
