"""``nas baselines``: the shipped reference architectures trained and costed as a space's trials are."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from nas.errors import OptionError
from nas.export.files import costing_for_space

REFERENCE_DIR = Path(__file__).resolve().parents[2] / "search_spaces" / "reference"


def reference_files(names: Sequence[str] | None = None) -> list[Path]:
    """The shipped reference genotypes (``search_spaces/reference/*.yaml``), optionally by name."""
    files = sorted(REFERENCE_DIR.glob("*.yaml"))
    if names:
        by_name = {f.stem: f for f in files}
        missing = [n for n in names if n not in by_name]
        if missing:
            raise OptionError("refs", f"{missing[0]!r}: no such reference (shipped: {', '.join(by_name)})")
        files = [by_name[n] for n in names]
    return files


def evaluate_baselines(space: Any, names: Sequence[str] | None = None, *, seeds: int = 1, measure: bool = False,
                       epochs: int | None = None, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Train every reference architecture with the space's proxy recipe and cost it like a trial.

    Costs are those of the reference at the space's target resolution and class count (as every
    trial's); accuracy is the mean over ``seeds`` proxy trainings (seeds ``proxy.seed + i``).
    """
    import dataclasses
    import statistics

    from nas.genotype import load
    from nas.train import train

    costing = costing_for_space(space, measure=measure)
    proxy = dataclasses.replace(space.proxy, epochs=epochs) if epochs else space.proxy
    refs = []
    for f in reference_files(names):
        g = load(f).replace(resolution=space.target.resolution, in_chans=space.target.in_chans)
        costs = costing.costs_or_none(g)
        results = [train(g, dataclasses.replace(proxy, seed=proxy.seed + i)) for i in range(seeds)]
        accs = [r.accuracy for r in results]
        entry = {"name": f.stem, "file": str(f), "hash": g.hash, "genotype": g.to_dict(),
                 "macs": int(costs["macs"]), "params": int(costs["params"]), "latency_ms": costs.get("latency_ms"),
                 "latency_ms_measured": costing.measured(g), "accuracy": statistics.fmean(accs),
                 "accuracy_std": statistics.pstdev(accs) if len(accs) > 1 else 0.0, "accuracies": accs,
                 "best_accuracy": max(r.best_accuracy for r in results), "epochs": results[0].epochs_run,
                 "train_s": sum(r.train_s for r in results), "status": "complete"}
        refs.append(entry)
        if log:
            log(f"{f.stem}: {100 * entry['accuracy']:.2f} % proxy accuracy, {entry['macs'] / 1e6:.1f} M MACs, "
                f"{entry['params'] / 1e6:.2f} M params")
    return {"space": space.name, "target": space.target.model_dump(), "proxy": dataclasses.asdict(proxy),
            "seeds": seeds, "references": refs, "updated": time.time()}
