"""The one entry point: a named or local data set -> :class:`ProxyData` on a device, cached per process."""

from __future__ import annotations

import functools
from pathlib import Path

import torch
import torch.nn.functional as F

from nas.config import DATASET_FORMATS, EMBEDDED_DATASETS
from nas.data import embedded
from nas.data.cifar import cifar, cifar_dir
from nas.data.container import Parts, ProxyData
from nas.data.imagefolder import imagefolder
from nas.data.npz import npz
from nas.data.splits import Splits, split
from nas.errors import InputError

_RESIZE_CHUNK = 4096  # images resized at a time, so upsampling CIFAR does not need all of it in float at once


def load(dataset: str = "digits", path: str | Path | None = None, *, resolution: int = 32, in_chans: int = 3,
         subsample: int | None = None, val_fraction: float = 0.2, test_fraction: float = 0.2, test_seed: int = 0,
         seed: int = 0, device: str | torch.device = "cpu", test: bool = False) -> ProxyData:
    """Load, split, resize, normalise and place a data set on ``device``.

    Results are cached per process (keyed by every argument), so trials that
    run one after another in the same worker load the data once. ``seed``
    fixes the validation split and the subsample, not the training run: all
    trials of a study see the same images. ``test_seed`` fixes the test split
    (``nas.data.splits``), whose tensors are in the result only with ``test=True``.
    """
    if dataset == "auto":
        dataset = detect_format(path)
    if dataset not in DATASET_FORMATS:
        raise InputError(f"dataset: unknown data set {dataset!r} (known: {', '.join(DATASET_FORMATS)})")
    if dataset in EMBEDDED_DATASETS:
        path = None
    else:
        if path is None:
            raise InputError(f"dataset: {dataset} needs a local path")
        path = str(Path(path).expanduser().resolve())
    if resolution < 4:
        raise InputError(f"resolution: must be >= 4, got {resolution}")
    if not 0 < val_fraction < 1:
        raise InputError(f"val_fraction: must be in (0, 1), got {val_fraction}")
    if not 0 <= test_fraction < 1 or val_fraction + test_fraction >= 1:
        raise InputError(f"test_fraction: must be in [0, 1) with val_fraction + test_fraction < 1, got {test_fraction}")
    if subsample is not None and subsample < 1:
        raise InputError(f"subsample: must be a positive integer, got {subsample}")
    return _load_cached(dataset, path, int(resolution), int(in_chans), subsample, float(val_fraction),
                        float(test_fraction), int(test_seed), int(seed), str(torch.device(device)), bool(test))


def detect_format(path: str | Path | None) -> str:
    """Guess the format of a local data set path (an embedded data set's name, or ``digits`` when there is none)."""
    if path is None:
        return "digits"
    if str(path) in EMBEDDED_DATASETS:
        return str(path)
    p = Path(path).expanduser()
    if not p.exists():
        raise InputError(f"{p}: no such file or directory")
    if p.is_file():
        if p.suffix == ".npz":
            return "npz"
        raise InputError(f"{p}: cannot tell the data format (expected a .npz file or a directory)")
    p = cifar_dir(p)
    if (p / "data_batch_1").is_file():
        return "cifar10"
    if (p / "train").is_file():
        return "cifar100"
    return "imagefolder"


def clear_cache() -> None:
    _load_cached.cache_clear()


def _read(dataset: str, path: Path | None, resolution: int) -> Parts:
    if dataset in EMBEDDED_DATASETS:
        return getattr(embedded, dataset)()
    if dataset in ("cifar10", "cifar100"):
        return cifar(path, dataset)
    if dataset == "imagefolder":
        return imagefolder(path, resolution)
    return npz(path)


@functools.lru_cache(maxsize=4)
def _load_cached(dataset: str, path: str | None, resolution: int, in_chans: int, subsample: int | None,
                 val_fraction: float, test_fraction: float, test_seed: int, seed: int, device: str,
                 test: bool) -> ProxyData:
    parts = _read(dataset, Path(path) if path else None, resolution)
    splits = split(parts, val_fraction=val_fraction, test_fraction=test_fraction, test_seed=test_seed, seed=seed)
    if test and splits.test is None:
        raise InputError(f"{parts.name}: no test split (test_fraction is 0 and the data defines none)")
    return _finish(parts, splits, resolution, in_chans, subsample, seed, device, test)


def _finish(parts: Parts, s: Splits, resolution: int, in_chans: int, subsample: int | None, seed: int, device: str,
            test: bool) -> ProxyData:
    train = s.train
    if subsample is not None and subsample < len(train):
        g = torch.Generator().manual_seed(seed + 1)
        train = train.take(torch.randperm(len(train), generator=g)[:subsample].sort().values)
    held_out = [s.val, s.test] if test else [s.val]
    xs = [_resize(p.x, resolution, parts.scale) for p in (train, *held_out)]
    c = xs[0].shape[1]
    if c != in_chans:
        if c != 1:
            raise InputError(f"{parts.name}: images have {c} channels, the genotype expects in_chans={in_chans}")
        # Grey images feed a colour stem by replication, as ImageNet-pretrained models are fed MNIST.
        xs = [x.expand(-1, in_chans, -1, -1) for x in xs]
    # Statistics of the training images alone: held-out images must not inform the preprocessing.
    mean = xs[0].mean(dim=(0, 2, 3), keepdim=True)
    std = xs[0].std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-6)
    xs = [((x - mean) / std).contiguous().to(device) for x in xs]
    ys = [p.y.to(device) for p in (train, *held_out)]
    extra = {"x_test": xs[2], "y_test": ys[2]} if test else {}
    return ProxyData(parts.name, xs[0], ys[0], xs[1], ys[1], parts.num_classes, parts.augment, **extra)


def _resize(x: torch.Tensor, resolution: int, scale: float) -> torch.Tensor:
    out = []
    for chunk in x.split(_RESIZE_CHUNK):
        chunk = chunk.float() / scale
        if chunk.shape[-2:] != (resolution, resolution):
            down = chunk.shape[-1] > resolution or chunk.shape[-2] > resolution
            chunk = F.interpolate(chunk, size=(resolution, resolution), mode="bilinear", align_corners=False,
                                  antialias=down)
        out.append(chunk)
    return torch.cat(out)
