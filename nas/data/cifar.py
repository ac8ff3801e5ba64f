"""CIFAR-10/100 in their python pickle format: the training batches, and the test batch as the test split."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch

from nas.data.container import Part, Parts
from nas.data.splits import check_labels
from nas.errors import InputError


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays, lists, dicts and strings only: a data file must not run code."""

    _ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
                ("numpy._core.multiarray", "scalar"), ("_codecs", "encode")}

    def find_class(self, module: str, name: str):  # noqa: ANN201 - pickle API
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a data file")


def _unpickle(p: Path) -> dict:
    if not p.is_file():
        raise InputError(f"{p}: file not found")
    try:
        with p.open("rb") as f:
            d = _ArrayUnpickler(f, encoding="bytes").load()
    except Exception as e:  # any corrupt or foreign file: pickle raises many types
        raise InputError(f"{p}: not a CIFAR python pickle ({e.__class__.__name__}: {e})") from None
    if not isinstance(d, dict):
        raise InputError(f"{p}: not a CIFAR python pickle (top level is {type(d).__name__}, expected dict)")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in d.items()}


def cifar_dir(p: Path) -> Path:
    """The directory the archive extracts to, given it or its parent."""
    for sub in ("cifar-10-batches-py", "cifar-100-python"):
        if (p / sub).is_dir():
            return p / sub
    return p


def _part(p: Path, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    d = _unpickle(p)
    if "data" not in d:
        raise InputError(f"{p}: data: key missing")
    if label_key not in d:
        raise InputError(f"{p}: {label_key}: key missing")
    x = np.asarray(d["data"])
    if x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != 3 * 32 * 32:
        raise InputError(f"{p}: data: expected uint8 rows of 3072 values, got {x.dtype} {x.shape}")
    y = check_labels(str(p), x, np.asarray(d[label_key]))
    return x.reshape(-1, 3, 32, 32), y


def cifar(path: Path, fmt: str) -> Parts:
    root = cifar_dir(path)
    if not root.is_dir():
        raise InputError(f"{path}: not a directory (expected a CIFAR python-format directory)")
    if fmt == "cifar10":
        train_files = [root / f"data_batch_{i}" for i in range(1, 6)]
        if not any(f.is_file() for f in train_files):
            raise InputError(f"{root}: no data_batch_1..5 files (not CIFAR-10 python format)")
        train_files = [f for f in train_files if f.is_file()]
        test_file, meta_file, label_key, names_key, default_classes = (
            root / "test_batch", root / "batches.meta", "labels", "label_names", 10)
    else:
        train_files = [root / "train"]
        test_file, meta_file, label_key, names_key, default_classes = (
            root / "test", root / "meta", "fine_labels", "fine_label_names", 100)
    parts = [_part(f, label_key) for f in train_files]
    x, y = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    xt, yt = _part(test_file, label_key)
    num_classes = default_classes
    if meta_file.is_file():
        names = _unpickle(meta_file).get(names_key)
        if not isinstance(names, list) or not names:
            raise InputError(f"{meta_file}: {names_key}: expected a list of class names")
        num_classes = len(names)
    top = int(max(y.max(), yt.max()))
    if top >= num_classes:
        raise InputError(f"{root}: label {top} out of range for {num_classes} classes")
    return Parts(fmt, Part(torch.from_numpy(x), torch.from_numpy(y)), num_classes, "crop_flip", 255.0,
                 test=Part(torch.from_numpy(xt), torch.from_numpy(yt)))
