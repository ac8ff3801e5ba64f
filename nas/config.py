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
METRICS = ("accuracy", *COST_METRICS, "reward", "score")
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

    Length: ``epochs`` (passes over the training images) or ``steps``
    (optimizer steps), never both; neither is ``DEFAULT_EPOCHS`` epochs. A step
    recipe does the same work whatever the data set's size; an epoch recipe
    reports once per epoch, a step recipe every ``report_every`` steps
    (default: ``DEFAULT_REPORTS`` reports). Those reports are what Ray Tune's
    schedulers (ASHA) see as iterations. Warm-up is ``warmup``, a share of the
    steps (default ``DEFAULT_WARMUP``), or, for an epoch recipe,
    ``warmup_epochs``. :func:`schedule` turns a config into step counts.
    """

    __pydantic_config__ = ConfigDict(extra="forbid", allow_inf_nan=False)

    # Where a trial's accuracy comes from: "train" the proxy below, or "table": looked up in a published table
    # of trained networks (nas.tables; ``table``: a shipped name or a JSONL file), nothing trained. With a table,
    # ``table_run`` "mean" takes the mean over the table's runs, "seed" the run ``seed`` picks (seed mod runs).
    # "score": a training-free score of the untrained proxy network (nas.scores; ``score``: a single score's name)
    # is the trial's objective in place of accuracy, recorded and shown as a score, never as an accuracy.
    kind: Literal["train", "table", "score"] = "train"
    table: str | None = None
    table_run: Literal["mean", "seed"] = "mean"
    score: str | None = None
    dataset: str = "digits"  # one of DATASET_FORMATS, or auto (guess from path)
    path: str | None = None  # local path for every data set but the embedded ones
    resolution: int = 16  # proxy input resolution (target resolution is the genotype's)
    width: float = 0.25  # proxy width multiplier applied to the target genotype
    epochs: int | None = None  # recipe length in epochs (or give steps; neither: DEFAULT_EPOCHS)
    steps: int | None = None  # recipe length in optimizer steps
    report_every: int | None = None  # steps between reports of a step recipe (default: DEFAULT_REPORTS reports)
    batch_size: int = 32
    optimizer: Literal["sgd", "adamw"] = "adamw"
    lr: float = 1e-2
    weight_decay: float = 0.05
    momentum: float = 0.9  # SGD momentum (Nesterov), AdamW beta1
    label_smoothing: float = 0.1
    warmup: float | None = None  # linear warm-up, share of the steps (default DEFAULT_WARMUP)
    warmup_epochs: float | None = None  # or warm-up in epochs (epoch recipes only)
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


#: The length of a recipe that names neither epochs nor steps.
DEFAULT_EPOCHS = 8
#: Reports of a step recipe that does not set report_every (ASHA's rungs fall on them).
DEFAULT_REPORTS = 4
#: Warm-up share of the steps when neither warmup nor warmup_epochs is given (one epoch of the 8-epoch default).
DEFAULT_WARMUP = 0.125
#: Largest values a proxy recipe may hold (far above any real one; a bound, so that no recipe runs for ever).
MAX_PROXY = {"resolution": 4096, "width": 16.0, "epochs": 10_000, "steps": 10**7, "report_every": 10**7,
             "batch_size": 65_536, "lr": 100.0, "weight_decay": 100.0, "warmup_epochs": 10_000.0,
             "subsample": 10**9, "precise_bn": 10_000}
_LENGTH = ("epochs", "steps")
_SEEDS = ("seed", "data_seed", "test_seed")
MAX_SEED = 2**32 - 1  # numpy's seeds are 32-bit


def check_config(c: TrainConfig) -> None:
    """Reject values no training run can use, with the field name."""
    if c.epochs is not None and c.steps is not None:
        raise InputError(f"proxy.steps: give the length as epochs or as steps, not both (epochs {c.epochs!r}, "
                         f"steps {c.steps!r})")
    if c.warmup is not None and c.warmup_epochs is not None:
        raise InputError(f"proxy.warmup_epochs: give warm-up as warmup (a share of the steps) or as "
                         f"warmup_epochs, not both (warmup {c.warmup!r}, warmup_epochs {c.warmup_epochs!r})")
    if c.steps is not None and c.warmup_epochs is not None:
        raise InputError(f"proxy.warmup_epochs: a step recipe gives warm-up as warmup, a share of the steps "
                         f"(e.g. warmup: 0.1), got warmup_epochs {c.warmup_epochs!r}")
    if c.report_every is not None and c.steps is None:
        raise InputError(f"proxy.report_every: only a step recipe (steps) sets a report interval; an epoch "
                         f"recipe reports once per epoch, got report_every {c.report_every!r}")
    for name in ("width", "lr", "weight_decay", "momentum", "label_smoothing", "warmup", "warmup_epochs",
                 "val_fraction", "test_fraction", "min_lr"):
        v = getattr(c, name)
        if v is None and name in ("warmup", "warmup_epochs"):
            continue
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise InputError(f"proxy.{name}: must be a finite number, got {v!r}")
    for name, hi in MAX_PROXY.items():
        v = getattr(c, name)
        if v is not None and v > hi:
            raise InputError(f"proxy.{name}: must be <= {hi:,}, got {v!r}")
    for name in (*_LENGTH, "report_every", "batch_size", "resolution", "precise_bn"):
        v = getattr(c, name)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int)):
            raise InputError(f"proxy.{name}: must be an integer, got {v!r}")
    for name in _SEEDS:
        if not 0 <= getattr(c, name) <= MAX_SEED:
            raise InputError(f"proxy.{name}: must be in 0..{MAX_SEED}, got {getattr(c, name)!r}")
    checks = [
        ("resolution", c.resolution >= 4, "must be >= 4"),
        ("width", c.width > 0, "must be > 0"),
        ("epochs", c.epochs is None or c.epochs >= 1, "must be >= 1"),
        ("steps", c.steps is None or c.steps >= 1, "must be >= 1"),
        ("report_every", c.report_every is None or c.report_every >= 1, "must be >= 1"),
        ("batch_size", c.batch_size >= 2, "must be >= 2"),
        ("optimizer", c.optimizer in ("sgd", "adamw"), "must be sgd or adamw"),
        ("lr", c.lr > 0, "must be > 0"),
        ("weight_decay", c.weight_decay >= 0, "must be >= 0"),
        ("momentum", 0 <= c.momentum < 1, "must be in [0, 1)"),
        ("label_smoothing", 0 <= c.label_smoothing < 1, "must be in [0, 1)"),
        ("warmup", c.warmup is None or 0 <= c.warmup <= 1, "must be a share of the steps in [0, 1]"),
        ("warmup_epochs", c.warmup_epochs is None or c.warmup_epochs >= 0, "must be >= 0"),
        ("subsample", c.subsample is None or c.subsample >= 2, "must be >= 2"),
        ("val_fraction", 0 < c.val_fraction < 1, "must be in (0, 1)"),
        ("test_fraction", 0 <= c.test_fraction < 1 and c.val_fraction + c.test_fraction < 1,
         "must be in [0, 1) and leave training images beside val_fraction"),
        ("min_lr", 0 <= c.min_lr <= 1, "must be in [0, 1]"),
        ("precise_bn", c.precise_bn >= 0, "must be >= 0"),
    ]
    checks.append(("score", c.kind != "score" or bool(c.score), "a score proxy needs a score's name, e.g. proxy: "
                   "{kind: score, score: naswot}"))
    checks.append(("table", c.kind != "table" or bool(c.table), "a table proxy needs a table (a shipped name or "
                   "a file), e.g. proxy: {kind: table, table: nas-bench-macro}"))
    for name, ok, problem in checks:
        if not ok:
            raise InputError(f"proxy.{name}: {problem}, got {getattr(c, name)!r}")


@dataclass(frozen=True)
class Schedule:
    """A recipe in optimizer steps, once the training set's size is known (:func:`schedule`)."""

    total: int  # optimizer steps
    warmup: int  # of which linear warm-up
    report_every: int  # steps between reports (the last report is at ``total`` whatever the interval)
    steps_per_epoch: int  # full batches per pass over the training images (drop_last)

    @property
    def reports(self) -> int:
        return -(-self.total // self.report_every)

    def is_report(self, step: int) -> bool:
        """Whether a report follows ``step`` steps done (counting from 1)."""
        return step % self.report_every == 0 or step == self.total


def planned_reports(c: TrainConfig) -> int:
    """How many reports a run of ``c`` makes (known before the data is: Ray Tune's ``max_t``)."""
    if c.steps is None:
        return c.epochs if c.epochs is not None else DEFAULT_EPOCHS
    return -(-c.steps // report_interval(c))


def report_interval(c: TrainConfig) -> int | None:
    """Steps between reports of a step recipe (``None`` for an epoch recipe: once per epoch)."""
    if c.steps is None:
        return None
    return c.report_every if c.report_every is not None else -(-c.steps // DEFAULT_REPORTS)


def schedule(c: TrainConfig, steps_per_epoch: int) -> Schedule:
    """The steps of ``c`` for a training set of ``steps_per_epoch`` full batches."""
    if steps_per_epoch < 1:
        raise InputError(f"proxy.batch_size: {c.batch_size} is more than the training images (no full batch)")
    if c.steps is None:
        total = steps_per_epoch * (c.epochs if c.epochs is not None else DEFAULT_EPOCHS)
        every = steps_per_epoch
    else:
        total = c.steps
        every = report_interval(c)
    if c.warmup_epochs is not None:
        warm = round(c.warmup_epochs * steps_per_epoch)
    else:
        warm = round((DEFAULT_WARMUP if c.warmup is None else c.warmup) * total)
    return Schedule(total=total, warmup=min(total, warm), report_every=min(every, total),
                    steps_per_epoch=steps_per_epoch)


def length_text(c: TrainConfig) -> str:
    """The recipe's length as a user wrote it: ``4 epochs``, ``300 steps``."""
    if c.steps is not None:
        return f"{c.steps} steps"
    e = c.epochs if c.epochs is not None else DEFAULT_EPOCHS
    return f"{e} epoch{'s' * (e != 1)}"


def with_overrides(c: TrainConfig, **overrides) -> TrainConfig:
    """``dataclasses.replace`` where a length given (epochs or steps) replaces the other: ``epochs`` drops a
    step recipe's ``report_every``, ``steps`` drops an epoch recipe's ``warmup_epochs`` (``warmup``, a share,
    carries over). Giving both lengths is left to :func:`check_config` to refuse."""
    import dataclasses

    kw = dict(overrides)
    if kw.get("epochs") is not None and "steps" not in kw:
        kw["steps"] = None
        kw.setdefault("report_every", None)
    if kw.get("steps") is not None and "epochs" not in kw:
        kw["epochs"] = None
        kw.setdefault("warmup_epochs", None)
    return dataclasses.replace(c, **kw)


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
