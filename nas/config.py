"""``TrainConfig`` (how a proxy network is trained) and the names several layers share.

``TrainConfig`` is also the ``proxy:`` section of a search-space YAML
(``nas.space`` uses it as a pydantic field type, so one definition serves
both). The tuples below are the one list of each name set: the space schema
builds its ``Literal`` types from them, ``nas.data`` loads the data set
formats and ``nas.search`` registers the samplers under these names. Kept free
of torch so that loading and validating a space stays fast; ``nas.train``
re-exports ``TrainConfig``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from pydantic import ConfigDict

from nas.errors import InputError

#: Optuna samplers ``search.sampler`` / ``nas search --sampler`` can name.
SAMPLERS = ("nsga2", "tpe", "gp", "random", "predictor")
#: Costs of the target network that budgets, objectives and family tiers can limit.
COST_METRICS = ("macs", "params", "latency_ms")
#: Everything an objective can name (``reward``: MnasNet's accuracy x (cost / target)^w, ``nas.results.front``).
METRICS = ("accuracy", *COST_METRICS, "reward")
#: MnasNet's reward exponent: a network twice as costly as the target needs about 5% more accuracy to match.
REWARD_W = -0.07
#: Data sets that ship inside the package (``proxy.dataset`` without a path).
EMBEDDED_DATASETS = ("digits", "mnist5k")
#: Data set formats ``nas.data`` loads (``proxy.dataset``; ``auto`` guesses one from the path).
DATASET_FORMATS = (*EMBEDDED_DATASETS, "cifar10", "cifar100", "imagefolder", "npz")


@dataclass
class TrainConfig:
    """How a proxy network is trained. Costs are always those of the target genotype;
    the proxy trains a version at ``resolution`` and ``width`` (see ``nas.proxy``).

    The defaults are the digits recipe measured on 2 CPU cores: 16 px is
    enough for 8x8 digits, width 0.25 keeps the proxy cheap, and many small
    steps (batch 32, 8 epochs = 352 steps) at AdamW lr 0.01 with precise BN
    gave MixNet-S 98.7% (spread 0.8 points over 3 seeds) and MobileNetV2
    98.0% (spread 0.6); larger batches or fewer epochs left MobileNetV2 with
    spreads of 2.5-7.8 points.
    """

    __pydantic_config__ = ConfigDict(extra="forbid", allow_inf_nan=False)

    # Where a trial's accuracy comes from: "train" the proxy below, or "table": looked up in a published table
    # of trained networks (nas.tables; ``table``: a shipped name or a JSONL file), nothing trained. With a table,
    # ``table_run`` "mean" takes the mean over the table's runs, "seed" the run ``seed`` picks (seed mod runs).
    kind: Literal["train", "table"] = "train"
    table: str | None = None
    table_run: Literal["mean", "seed"] = "mean"
    dataset: str = "digits"  # one of DATASET_FORMATS, or auto (guess from path)
    path: str | None = None  # local path for every data set but the embedded ones
    resolution: int = 16  # proxy input resolution (target resolution is the genotype's)
    width: float = 0.25  # proxy width multiplier applied to the target genotype
    epochs: int = 8
    batch_size: int = 32
    optimizer: Literal["sgd", "adamw"] = "adamw"
    lr: float = 1e-2
    weight_decay: float = 0.05
    momentum: float = 0.9  # SGD momentum (Nesterov), AdamW beta1
    label_smoothing: float = 0.1
    warmup_epochs: float = 1.0
    seed: int = 0
    subsample: int | None = None  # keep at most this many training images
    val_fraction: float = 0.2  # validation share of the labelled pool, where the data has no validation split
    augment: bool = True
    amp: bool = True  # bf16/fp16 autocast, used on CUDA only
    channels_last: bool = True  # used on CUDA only
    compile: bool = False  # torch.compile the proxy model
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    data_seed: int = 0  # fixes the validation split and subsample: every trial sees the same images
    # The test split (never trained on, never chosen on; read only by an explicit test evaluation) is carved
    # first, with a seed of its own, where the data has no test split: it stays put whatever the other seeds.
    test_fraction: float = 0.2
    test_seed: int = 0
    min_lr: float = 0.0  # cosine floor, as a fraction of lr
    precise_bn: int = 4  # training batches that re-estimate BN statistics before each evaluation (0 = off)


#: Largest values a proxy recipe may hold (far above any real one; a bound, so that no recipe runs for ever).
MAX_PROXY = {"resolution": 4096, "width": 16.0, "epochs": 10_000, "batch_size": 65_536, "lr": 100.0,
             "weight_decay": 100.0, "warmup_epochs": 10_000.0, "subsample": 10**9, "precise_bn": 10_000}
_SEEDS = ("seed", "data_seed", "test_seed")
MAX_SEED = 2**32 - 1  # numpy's seeds are 32-bit


def check_config(c: TrainConfig) -> None:
    """Reject values no training run can use, with the field name."""
    for name in ("width", "lr", "weight_decay", "momentum", "label_smoothing", "warmup_epochs", "val_fraction",
                 "test_fraction", "min_lr"):
        v = getattr(c, name)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise InputError(f"proxy.{name}: must be a finite number, got {v!r}")
    for name, hi in MAX_PROXY.items():
        v = getattr(c, name)
        if v is not None and v > hi:
            raise InputError(f"proxy.{name}: must be <= {hi:,}, got {v!r}")
    for name in _SEEDS:
        if not 0 <= getattr(c, name) <= MAX_SEED:
            raise InputError(f"proxy.{name}: must be in 0..{MAX_SEED}, got {getattr(c, name)!r}")
    checks = [
        ("resolution", c.resolution >= 4, "must be >= 4"),
        ("width", c.width > 0, "must be > 0"),
        ("epochs", c.epochs >= 1, "must be >= 1"),
        ("batch_size", c.batch_size >= 2, "must be >= 2"),
        ("optimizer", c.optimizer in ("sgd", "adamw"), "must be sgd or adamw"),
        ("lr", c.lr > 0, "must be > 0"),
        ("weight_decay", c.weight_decay >= 0, "must be >= 0"),
        ("momentum", 0 <= c.momentum < 1, "must be in [0, 1)"),
        ("label_smoothing", 0 <= c.label_smoothing < 1, "must be in [0, 1)"),
        ("warmup_epochs", c.warmup_epochs >= 0, "must be >= 0"),
        ("subsample", c.subsample is None or c.subsample >= 2, "must be >= 2"),
        ("val_fraction", 0 < c.val_fraction < 1, "must be in (0, 1)"),
        ("test_fraction", 0 <= c.test_fraction < 1 and c.val_fraction + c.test_fraction < 1,
         "must be in [0, 1) and leave training images beside val_fraction"),
        ("min_lr", 0 <= c.min_lr <= 1, "must be in [0, 1]"),
        ("precise_bn", c.precise_bn >= 0, "must be >= 0"),
    ]
    checks.append(("table", c.kind != "table" or bool(c.table), "a table proxy needs a table (a shipped name or "
                   "a file), e.g. proxy: {kind: table, table: nas-bench-macro}"))
    for name, ok, problem in checks:
        if not ok:
            raise InputError(f"proxy.{name}: {problem}, got {getattr(c, name)!r}")


# -- latency targets ---------------------------------------------------------------------------------------------
# Torch-free so that a space can name its latency target (budgets.target) and be checked without nas.cost.

BACKENDS = ("torch-cpu", "onnxruntime-cpu", "cuda")
CLOCKS = ("probe", "cpu", "wall")


@dataclass(frozen=True)
class Target:
    """Where latency is measured; batch, threads and clock are part of the definition
    (see :mod:`nas.cost.measure` for the clocks)."""

    name: str
    backend: str = "torch-cpu"
    batch: int = 1
    threads: int = 1
    device: str = "cpu"
    clock: str = "probe"

    def __post_init__(self) -> None:
        where = f"target {self.name}"
        if self.backend not in BACKENDS:
            raise InputError(f"{where}: backend: {self.backend!r} is not one of {', '.join(BACKENDS)}")
        if self.clock not in CLOCKS:
            raise InputError(f"{where}: clock: {self.clock!r} is not one of {', '.join(CLOCKS)}")
        if self.batch < 1 or self.threads < 1:
            raise InputError(f"{where}: batch/threads: must be positive integers")
        if self.clock != "wall" and (self.threads != 1 or self.backend == "cuda"):
            raise InputError(f"{where}: clock: {self.clock} time is a latency only for one thread on a CPU backend")


#: The latency target presets by name; ``torch-cpu`` is batch 1 on one thread.
TARGETS: dict[str, Target] = {t.name: t for t in (
    Target("torch-cpu"),
    Target("torch-cpu-b8", batch=8),
    Target("torch-cpu-cputime", clock="cpu"),
    Target("torch-cpu-wall", clock="wall"),
    Target("torch-cpu-t2", threads=2, clock="wall"),
    Target("onnxruntime-cpu", backend="onnxruntime-cpu"),
    Target("cuda", backend="cuda", device="cuda", clock="wall"),
    Target("cuda-b32", backend="cuda", batch=32, device="cuda", clock="wall"),
)}
ALIASES = {"cpu": "torch-cpu", "onnx": "onnxruntime-cpu", "ort": "onnxruntime-cpu", "gpu": "cuda"}
