"""Proxy trainer.

``TrainConfig`` is also the ``proxy:`` section of a search-space YAML (the
space schema uses it as a pydantic field type, so one definition serves both).

:func:`train` builds the proxy network of a genotype (``nas.proxy``), trains
it on a device-resident data set (``nas.data``) for the recipe's optimizer
steps (``nas.config.schedule``: epochs or steps) and reports to an optional
callback once per epoch, or every ``report_every`` steps of a step recipe;
Ray Tune / ASHA use those reports to stop weak trials.

Repeatability: the seed fixes weight init, dropout, shuffling and
augmentation (``torch.manual_seed`` plus one ``torch.Generator`` on the data's
device). On CPU a run repeats exactly with the same thread count. On CUDA,
cuDNN may pick different kernels between runs, so accuracies can differ in
the last digits; ``torch.use_deterministic_algorithms`` is not switched on
because it rejects ops the proxy networks need and slows them down.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from nas import data as _data
from nas.config import TrainConfig, check_config, schedule
from nas.cost import memory
from nas.errors import InputError
from nas.genotype import Genotype
from nas.proxy import proxy_genotype


class StopTrial(Exception):
    """Raised by a callback to end training early (e.g. ASHA pruned the trial)."""


@dataclass
class TrainResult:
    accuracy: float  # validation top-1 at the last report, in [0, 1]
    best_accuracy: float
    epochs_run: int  # reports made: epochs, or report intervals of a step recipe
    train_s: float  # wall time of the steps and evaluations, model build excluded
    images_per_s: float  # training images per second of training steps
    history: list[dict[str, float]]
    params: int  # parameters of the proxy model (the target's cost is computed elsewhere)
    device: str
    stopped_early: bool = False
    diverged: bool = False  # the training loss became NaN/inf
    test_accuracy: float | None = None  # top-1 on the test split, measured only by train(..., test=True)
    steps_run: int = 0  # optimizer steps taken
    genotype: Genotype | None = field(default=None, repr=False)  # the proxy genotype that was trained
    model: nn.Module | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready metrics (no model, no genotype)."""
        d = asdict(self, dict_factory=lambda kv: {k: v for k, v in kv if k not in ("model", "genotype")})
        return d


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError):
        raise InputError(f"device: unknown device {name!r} (auto, cpu, cuda, cuda:N)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device: {name} requested but CUDA is not available")
    if dev.type not in ("cpu", "cuda"):
        raise InputError(f"device: {name!r} is not supported (auto, cpu, cuda, cuda:N)")
    return dev


def load_data(config: TrainConfig, in_chans: int = 3, device: str | torch.device = "cpu", *,
              test: bool = False) -> _data.ProxyData:
    """The config's data set on ``device`` (cached per process); its test split only with ``test=True``."""
    return _data.load(config.dataset, config.path, resolution=config.resolution, in_chans=in_chans,
                      subsample=config.subsample, val_fraction=config.val_fraction,
                      test_fraction=config.test_fraction, test_seed=config.test_seed, seed=config.data_seed,
                      device=device, test=test)


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Weight decay on conv/linear weights only: BN, biases and other 1-D params are not decayed."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim > 1 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """SGD (Nesterov) or AdamW (``momentum`` is its beta1), fused kernels where this torch has them.

    The fused step is one kernel for all parameters: on CPU it is 4-9x faster
    than the per-parameter loop, which matters for proxy nets of a few hundred
    small tensors.
    """
    if config.optimizer == "sgd":
        cls, kw = torch.optim.SGD, {"momentum": config.momentum, "nesterov": config.momentum > 0}
    else:
        cls, kw = torch.optim.AdamW, {"betas": (config.momentum, 0.999)}
    try:
        return cls(param_groups(model, config.weight_decay), lr=config.lr, fused=True, **kw)
    except (RuntimeError, TypeError, ValueError):  # no fused kernel for this device/dtype/torch version
        return cls(param_groups(model, config.weight_decay), lr=config.lr, **kw)


def lr_factor(step: int, warmup_steps: int, total_steps: int, floor: float = 0.0) -> float:
    """Linear warm-up from ~0 to 1, then cosine decay to ``floor`` at ``total_steps``."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    t = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))


def amp_context(device: torch.device, amp: bool):
    """bf16 autocast on CUDA where the GPU has bf16 units (Ampere and later), else fp16 (which needs a
    GradScaler); nothing on CPU. Emulated bf16 (``is_bf16_supported``'s default on older GPUs) would be slower
    than fp32, hence ``including_emulation=False``."""
    if device.type != "cuda" or not amp:
        return nullcontext, None
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported(including_emulation=False) else torch.float16

    def ctx():
        return torch.autocast("cuda", dtype=dtype)

    return ctx, dtype


def recalibrate_bn(model: nn.Module, x: torch.Tensor, batch_size: int, autocast=nullcontext,
                   channels_last: bool = False) -> None:
    """Re-estimate every BatchNorm's running mean/var as the plain average over batches of ``x``.

    A proxy run takes few steps, so BN's exponential running averages trail
    weights that still move fast and evaluation sees stale statistics
    (accuracy near chance while the training loss is low). Averaging fresh
    batch statistics with the final weights ("precise BN", Wu & Johnson 2021)
    removes that lag for the cost of a few forward passes.
    """
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    if not bns:
        return
    momenta = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches below
    model.train()
    batches = list(x.split(batch_size))
    if len(batches) > 1 and len(batches[-1]) < batch_size:
        batches.pop()  # a short last batch would weigh as much as a full one
    with torch.no_grad(), autocast():
        for xb in batches:
            model(xb.contiguous(memory_format=torch.channels_last) if channels_last else xb)
    for m, mom in zip(bns, momenta, strict=True):
        m.momentum = mom


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 512,
             autocast=nullcontext, channels_last: bool = False) -> float:
    """Top-1 accuracy in [0, 1]; one host sync at the end."""
    model.eval()
    correct = torch.zeros((), dtype=torch.int64, device=x.device)
    with torch.inference_mode(), autocast():
        for i in range(0, len(x), batch_size):
            xb = x[i:i + batch_size]
            if channels_last:
                xb = xb.contiguous(memory_format=torch.channels_last)
            correct += (model(xb).argmax(1) == y[i:i + batch_size]).sum()
    return correct.item() / max(1, len(x))


def check_memory(genotype: Genotype, config: TrainConfig, num_classes: int | None = None,
                 source: str | None = None) -> None:
    """Refuse, with one InputError line, a proxy this machine cannot train in memory (:mod:`nas.cost.memory`):
    called before any data is loaded or network built, so nothing half-allocates gigabytes and dies."""
    memory.check(proxy_genotype(genotype, config.resolution, config.width), batch=config.batch_size,
                 num_classes=num_classes or 1000, training=True, what="training its proxy", source=source)


def train(genotype: Genotype, config: TrainConfig | None = None, data: _data.ProxyData | None = None,
          num_classes: int | None = None,
          callback: Callable[[int, dict[str, float]], bool | None] | None = None, *,
          test: bool = False) -> TrainResult:
    """Train the proxy of ``genotype`` and return its validation accuracy and speed.

    ``data`` overrides the config's data set (it must be at the config's
    resolution). ``callback(report, metrics)`` runs after each report's
    evaluation (reports count from 1: epochs, or intervals of ``report_every``
    steps; ``metrics["step"]`` is the steps done); returning True or raising
    :class:`StopTrial` ends training there. Only with ``test=True`` is the
    test split loaded and the final model's accuracy on it measured
    (``TrainResult.test_accuracy``): a search never passes it.
    """
    from nas.model import build

    config = config or TrainConfig()
    check_config(config)
    check_memory(genotype, config, num_classes)
    proxy = proxy_genotype(genotype, config.resolution, config.width)
    device = resolve_device(config.device)
    if data is None:
        data = load_data(config, genotype.in_chans, device, test=test)
    elif test and not data.has_test:
        raise ValueError("train(test=True) needs data loaded with its test split (load_data(config, test=True))")
    data = data.to(device)
    if data.resolution != config.resolution:
        raise InputError(f"proxy.resolution: data is at {data.resolution} px, the config says {config.resolution}")
    num_classes = num_classes or data.num_classes

    torch.manual_seed(config.seed)
    gen = torch.Generator(device=device).manual_seed(config.seed)
    model = build(proxy, num_classes).to(device)
    params = sum(p.numel() for p in model.parameters())
    cuda = device.type == "cuda"
    channels_last = cuda and config.channels_last
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    autocast, amp_dtype = amp_context(device, config.amp)
    # bf16 keeps fp32's exponent range: only fp16 gradients need loss scaling.
    scaler = torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None
    step_model = torch.compile(model) if config.compile else model

    loader = _data.DeviceLoader(data.x_train, data.y_train, config.batch_size, shuffle=True, drop_last=True,
                                augment=data.augment if config.augment else "none", generator=gen)
    opt = make_optimizer(model, config)
    base_lrs = [g["lr"] for g in opt.param_groups]
    plan = schedule(config, len(loader))
    total, warmup = plan.total, plan.warmup
    eval_bs = max(512, config.batch_size)
    # A fixed random subset of un-augmented training images for precise BN.
    bn_bs = loader.batch_size
    bn_idx = torch.randperm(len(data.x_train), generator=gen, device=device)[:config.precise_bn * bn_bs]
    bn_x = data.x_train.index_select(0, bn_idx)

    def batches():  # passes over the training set, reshuffled each time, for as many steps as the recipe takes
        while True:
            yield from loader

    history: list[dict[str, float]] = []
    best, step, train_images, step_s, f = 0.0, 0, 0, 0.0, 1.0
    stopped = diverged = False
    t_start = time.perf_counter()
    stream = batches()
    while step < total:
        step_model.train()
        loss_sum = torch.zeros((), device=device)
        t0 = time.perf_counter()
        n = 0
        while True:
            xb, yb = next(stream)
            f = lr_factor(step, warmup, total, config.min_lr)
            for g, base in zip(opt.param_groups, base_lrs, strict=True):
                g["lr"] = base * f
            if channels_last:
                xb = xb.contiguous(memory_format=torch.channels_last)
            with autocast():
                loss = F.cross_entropy(step_model(xb), yb, label_smoothing=config.label_smoothing)
            opt.zero_grad(set_to_none=True)
            if scaler is None:
                loss.backward()
                opt.step()
            else:
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
            loss_sum += loss.detach()
            step += 1
            n += 1
            if plan.is_report(step):
                break
        train_loss = loss_sum.item() / n  # the interval's one host sync for training
        interval_s = time.perf_counter() - t0
        step_s += interval_s
        train_images += n * loader.batch_size
        # Uncompiled module: BN momentum is switched for recalibration, which a compiled graph would guard on.
        if config.precise_bn:
            recalibrate_bn(model, bn_x, bn_bs, autocast, channels_last)
        acc = evaluate(model, data.x_val, data.y_val, eval_bs, autocast, channels_last)
        best = max(best, acc)
        report = len(history) + 1
        metrics = {"epoch": report, "step": step, "epochs_seen": step / plan.steps_per_epoch,
                   "train_loss": train_loss, "val_accuracy": acc, "lr": config.lr * f, "best_accuracy": best,
                   "epoch_s": interval_s, "images_per_s": n * loader.batch_size / max(interval_s, 1e-9)}
        history.append(metrics)
        diverged = not math.isfinite(train_loss)
        try:
            stopped = bool(callback(report, dict(metrics))) if callback else False
        except StopTrial:
            stopped = True
        if diverged or stopped:
            stopped = stopped or step < total
            break
    train_s = time.perf_counter() - t_start
    test_acc = evaluate(model, data.x_test, data.y_test, eval_bs, autocast, channels_last) if test else None
    return TrainResult(accuracy=history[-1]["val_accuracy"], best_accuracy=best, epochs_run=len(history),
                       train_s=train_s, images_per_s=train_images / max(step_s, 1e-9), history=history,
                       params=params, device=str(device), stopped_early=stopped, diverged=diverged,
                       test_accuracy=test_acc, steps_run=step, genotype=proxy, model=model)


def evaluate_test(model: nn.Module, config: TrainConfig, in_chans: int = 3) -> float:
    """Top-1 accuracy of a proxy model trained under ``config`` on the config's test split.

    For a model trained earlier (saved weights): the split and its normalisation
    are those ``config`` gives, so pass the config it was trained with.
    """
    check_config(config)
    device = next(model.parameters()).device
    data = load_data(config, in_chans, device, test=True)
    autocast, _ = amp_context(device, config.amp)
    return evaluate(model, data.x_test, data.y_test, max(512, config.batch_size), autocast)
