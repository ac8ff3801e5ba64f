"""A synthetic study directory for the export/plot/tracking tests.

Records follow the trials.jsonl format exactly and hold real genotypes with
their real analytic costs (``nas.cost.macs.count``); only the accuracies and
latencies are made up (monotone in MACs plus seeded noise), so these tests do
not have to run a search.
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
import time
from pathlib import Path

from nas.cost.macs import count
from nas.genotype import BlockSpec, Genotype, HeadSpec, StemSpec

NUM_CLASSES = 10  # the synthetic space's target.num_classes
KERNEL_CHOICES = ((3,), (3, 5), (3, 5, 7), (5,))


def small_genotype(rng: random.Random, resolution: int = 32) -> Genotype:
    """A random 3-stage MixConv network, a few MMACs at 32x32: quick to build and export."""
    widths = [rng.choice((8, 16, 24)), rng.choice((16, 24, 32)), rng.choice((24, 32, 48))]
    stages = []
    for i, w in enumerate(widths):
        b = BlockSpec(out=w, stride=2 if i else 1, kernels=rng.choice(KERNEL_CHOICES),
                      expand=rng.choice((1.0, 3.0, 6.0)) if i else 1.0, se=rng.choice((0.0, 0.25)),
                      act=rng.choice(("relu", "swish")))
        stages.append((b,) + (dataclasses.replace(b, stride=1),) * rng.choice((0, 1)))
    return Genotype(stages=tuple(stages), stem=StemSpec(out=16), head=HeadSpec(features=rng.choice((0, 128))),
                    resolution=resolution)


def record(number: int, g: Genotype, rng: random.Random, *, macs_budget: float, status: str | None = None) -> dict:
    cost = count(g, num_classes=NUM_CLASSES)
    over = cost.macs / macs_budget - 1
    if status is None:
        status = "infeasible" if over > 0 else rng.choice(["complete"] * 4 + ["pruned"])
    trained = status in ("complete", "pruned")
    epochs = 0 if not trained else (1 if status == "pruned" else 3)
    acc = None
    history = []
    if trained:
        acc = min(0.99, 0.5 + 0.08 * math.log(cost.macs / 1e6 + 1) + rng.gauss(0, 0.03))
        if status == "pruned":
            acc -= 0.1
        history = [{"epoch": e, "val_accuracy": acc * (e + 1) / epochs, "train_loss": 2.0 / (e + 1)}
                   for e in range(epochs)]
    lat = cost.macs / 1e6 * 0.05 * (1 + rng.gauss(0, 0.05))
    return {
        "number": number, "hash": g.hash, "genotype": g.to_dict(), "status": status,
        "accuracy": acc, "best_accuracy": acc, "macs": cost.macs, "params": cost.params,
        "latency_ms": lat, "latency_ms_measured": None, "epochs": epochs, "train_s": 1.0 if trained else None,
        "images_per_s": 1000.0 if trained else None, "history": history,
        "violations": {"macs": over} if over > 0 else {}, "tier": None, "duplicate_of": None, "error": None,
        "node": "local", "device": "cpu", "seed": 0, "time": time.time(),
    }


SPACE_YAML = """\
name: synth
target: {resolution: 32, num_classes: 10}
stem: {out: [16]}
stages:
  - {name: s1, out: [8, 16, 24], kernels: ["3", "3-5"]}
  - {name: s2, stride: 2, out: [16, 24, 32], expand: [1, 3, 6]}
  - {name: s3, stride: 2, out: [24, 32, 48], expand: [1, 3, 6]}
head: {features: [0, 128]}
budgets: {macs: 1.8e6}
family: {s: {macs: 0.6e6}, m: {macs: 1.0e6}, l: {macs: 1.8e6}}
tracking: {wandb: offline, project: nas-test}
proxy: {epochs: 1, resolution: 16, subsample: 128, batch_size: 64}
"""


def make_study(root: Path, n: int = 24, seed: int = 0, macs_budget: float = 1.8e6, genotypes=None) -> Path:
    """Write ``root/synth`` with ``space.yaml`` and ``trials.jsonl``; returns the study dir."""
    rng = random.Random(seed)
    study = root / "synth"
    study.mkdir(parents=True, exist_ok=True)
    (study / "space.yaml").write_text(SPACE_YAML)
    gs = list(genotypes) if genotypes is not None else [small_genotype(rng) for _ in range(n)]
    records = [record(i, g, rng, macs_budget=macs_budget) for i, g in enumerate(gs)]
    with open(study / "trials.jsonl", "w") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")
    return study
