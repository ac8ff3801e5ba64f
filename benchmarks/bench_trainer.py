"""Proxy trainer throughput against a bare hand-written torch loop, and the default digits recipe.

    python -m benchmarks.bench_trainer [--arch mixnet_s.yaml] [--width 0.25] [--resolution 16]
                                       [--epochs 3] [--repeats 4] [--subsample 640]
                                       [--seeds 3] [--threads N] [--skip-accuracy]

Part 1 trains the same proxy model on the same device-resident data with the
same batch size, optimizer (AdamW, BN/bias without decay) and loss, once with
``nas.train.train`` and once with a plain loop (randperm, index, forward,
backward, step), alternating runs so machine noise hits both alike. Speed is
training images per second of the step loop, best epoch after the first
(warm-up); the trainer's end-to-end figure also counts its per-epoch
precise-BN and evaluation. On CUDA both use the trainer's AMP dtype and
channels_last. Part 2 trains the shipped architecture with the default
recipe (``TrainConfig()``) on digits over several seeds and prints accuracy
and wall time.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time

import torch
import torch.nn.functional as F

from benchmarks._machine import banner
from nas import data as nas_data
from nas.cli import resolve_path
from nas.config import DEFAULT_WARMUP, length_text
from nas.genotype import load
from nas.model import build
from nas.proxy import proxy_genotype
from nas.train import TrainConfig, amp_context, make_optimizer, resolve_device, train


def bare_loop(genotype, cfg: TrainConfig, d: nas_data.ProxyData, augment: bool) -> list[float]:
    """Images/s per epoch of the plainest loop that does the same work per step."""
    dev = d.device
    torch.manual_seed(cfg.seed)
    model = build(proxy_genotype(genotype, cfg.resolution, cfg.width), d.num_classes).to(dev)
    cl = dev.type == "cuda" and cfg.channels_last
    if cl:
        model = model.to(memory_format=torch.channels_last)
    autocast, amp_dtype = amp_context(dev, cfg.amp)
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)
    opt = make_optimizer(model, cfg)
    gen = torch.Generator(device=dev).manual_seed(cfg.seed)
    x, y, bs = d.x_train, d.y_train, cfg.batch_size
    pad = max(1, cfg.resolution // 8)
    rates = []
    model.train()
    for _ in range(cfg.epochs):
        t0 = time.perf_counter()
        perm = torch.randperm(len(x), generator=gen, device=dev)
        steps = len(x) // bs
        for i in range(steps):
            idx = perm[i * bs:(i + 1) * bs]
            xb, yb = x[idx], y[idx]
            if augment:
                xb = nas_data.augment_batch(xb, pad, d.augment == "crop_flip", gen)
            if cl:
                xb = xb.contiguous(memory_format=torch.channels_last)
            with autocast():
                loss = F.cross_entropy(model(xb), yb, label_smoothing=cfg.label_smoothing)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        rates.append(steps * bs / (time.perf_counter() - t0))
    return rates


def _steady(rates: list[float]) -> float:
    # Best epoch after the first (warm-up): load from other processes only ever slows an epoch down.
    return max(rates[1:] if len(rates) > 1 else rates)


def throughput(g, cfg: TrainConfig, repeats: int) -> None:
    dev = resolve_device(cfg.device)
    d = nas_data.load(cfg.dataset, cfg.path, resolution=cfg.resolution, in_chans=g.in_chans,
                      subsample=cfg.subsample, device=dev)
    amp = amp_context(dev, cfg.amp)[1]
    print(f"\n-- throughput: {g.name} proxy width {cfg.width} at {cfg.resolution} px, batch {cfg.batch_size}, "
          f"{cfg.epochs} epochs x {repeats} pairs, {len(d.y_train)} images, device {dev}"
          f"{f', AMP {amp}, channels_last' if amp else ''}")
    print(f"{'augmentation':>13} {'bare img/s':>11} {'train() img/s':>14} {'ratio':>6} {'train() end-to-end':>19}")
    for augment in (False, True):
        c = dataclasses.replace(cfg, augment=augment)
        bare, ours, e2e, ratios = [], [], [], []
        for rep in range(repeats):
            # Alternate which loop runs first so drifting machine load favours neither.
            for which in ((0, 1) if rep % 2 == 0 else (1, 0)):
                if which == 0:
                    bare.append(_steady(bare_loop(g, c, d, augment)))
                else:
                    r = train(g, c, data=d)
                    ours.append(_steady([h["images_per_s"] for h in r.history]))
                    e2e.append(r.epochs_run * (len(d.y_train) // c.batch_size) * c.batch_size / r.train_s)
            ratios.append(ours[-1] / bare[-1])
        print(f"{'on' if augment else 'off':>13} {statistics.median(bare):>11,.0f} {statistics.median(ours):>14,.0f} "
              f"{statistics.median(ratios):>6.3f} {statistics.median(e2e):>15,.0f} img/s")
    print(f"(medians over {repeats} back-to-back pairs; ratio = median of per-pair train()/bare; goal >= 0.95)")


def _warmup(cfg: TrainConfig) -> str:
    if cfg.warmup_epochs is not None:
        return f"{cfg.warmup_epochs:g} epochs"
    return f"{cfg.warmup if cfg.warmup is not None else DEFAULT_WARMUP:g} of the steps"


def accuracy(g, cfg: TrainConfig, seeds: int) -> None:
    print(f"\n-- default recipe on digits: {g.name} proxy width {cfg.width}, {cfg.resolution} px, {length_text(cfg)}, "
          f"batch {cfg.batch_size}, {cfg.optimizer} lr {cfg.lr}, warm-up {_warmup(cfg)}, "
          f"label smoothing {cfg.label_smoothing}, {torch.get_num_threads()} threads")
    accs = []
    for seed in range(seeds):
        t0 = time.perf_counter()
        r = train(g, dataclasses.replace(cfg, seed=seed))
        accs.append(r.accuracy)
        per_epoch = ", ".join(f"{h['val_accuracy']:.1%}" for h in r.history)
        print(f"seed {seed}: val accuracy {r.accuracy:.2%} (per epoch {per_epoch}), "
              f"{time.perf_counter() - t0:.1f} s wall, "
              f"{r.images_per_s:,.0f} img/s, proxy {r.params:,} params")
    spread = max(accs) - min(accs)
    print(f"mean {statistics.mean(accs):.2%}, min {min(accs):.2%}, spread {spread:.2%} over {seeds} seeds; "
          f">= 95% on every seed: {min(accs) >= 0.95}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="mixnet_s.yaml")
    ap.add_argument("--width", type=float, default=None, help="proxy width (default: the recipe's)")
    ap.add_argument("--resolution", type=int, default=None, help="proxy resolution (default: the recipe's)")
    ap.add_argument("--epochs", type=int, default=3, help="epochs per throughput run")
    ap.add_argument("--repeats", type=int, default=4)
    ap.add_argument("--subsample", type=int, default=640, help="training images per throughput epoch")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--skip-accuracy", action="store_true")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    ap.add_argument("--quick", action="store_true",
                    help="throughput only: 2 epochs, 1 repeat, width 0.5 unless given, no accuracy part")
    args = ap.parse_args()
    if args.quick:
        args.epochs, args.repeats, args.skip_accuracy = min(args.epochs, 2), 1, True
        args.width = 0.5 if args.width is None else args.width
    if args.threads:
        torch.set_num_threads(args.threads)
    banner("proxy trainer vs bare torch loop")
    g = load(resolve_path(args.arch))
    base = TrainConfig(device=args.device)
    if args.width is not None:
        base = dataclasses.replace(base, width=args.width)
    if args.resolution is not None:
        base = dataclasses.replace(base, resolution=args.resolution)
    throughput(g, dataclasses.replace(base, epochs=args.epochs, subsample=args.subsample), args.repeats)
    if not args.skip_accuracy:
        accuracy(g, base, args.seeds)


if __name__ == "__main__":
    main()
