"""Train / validation / test: where each image goes, decided once per data set and seed.

The test split is carved first, from the whole labelled pool, with its own
seed (``test_seed``), so it is the same whatever ``data_seed`` or the training
seed; validation is carved next from what is left, with ``data_seed``. Both are
stratified by class where every class has enough images for it. Sizes are
``ceil(fraction * pool)``, as scikit-learn rounds a fractional ``test_size``.
Splits the data defines itself (CIFAR's test batch, an ImageFolder ``val/`` or
``test/`` tree, ``x_val``/``x_test`` arrays in a ``.npz``) are kept as given.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from nas.data.container import Part, Parts
from nas.errors import InputError


@dataclass
class Splits:
    train: Part
    val: Part
    test: Part | None  # None: the data has no test split (test_fraction 0 and none in the files)


def check_labels(name: str, x: np.ndarray, y: np.ndarray, what: str = "") -> np.ndarray:
    """``y`` as int64, after checking it labels ``x`` one to one with non-negative integers."""
    y = np.asarray(y)
    if y.ndim != 1:
        raise InputError(f"{name}: {what}labels must be a 1-D array, got shape {y.shape}")
    if len(y) != len(x):
        raise InputError(f"{name}: {what}{len(x)} images but {len(y)} labels")
    if len(y) == 0:
        raise InputError(f"{name}: {what}no images")
    if not np.issubdtype(y.dtype, np.integer):
        raise InputError(f"{name}: {what}labels must be integers, got {y.dtype}")
    if y.min() < 0:
        raise InputError(f"{name}: {what}labels must be >= 0, got {y.min()}")
    return y.astype(np.int64)


def carve(y: np.ndarray, n_out: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (kept, carved) indices, ``n_out`` of them carved; stratified when every class can give one."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(y))
    counts = np.bincount(y)
    classes = int((counts > 0).sum())
    fits = counts[counts > 0].min() >= 2 and min(n_out, len(y) - n_out) >= classes
    keep, out = train_test_split(idx, test_size=n_out, random_state=seed, stratify=y if fits else None)
    return np.sort(keep), np.sort(out)


def split(parts: Parts, *, val_fraction: float, test_fraction: float, test_seed: int, seed: int) -> Splits:
    """The three splits of ``parts``: test first (``test_seed``), then validation (``seed``)."""
    pool, test, val = parts.train, parts.test, parts.val
    n = len(pool)
    n_test = math.ceil(test_fraction * n) if test is None else 0
    n_val = math.ceil(val_fraction * n) if val is None else 0
    if n - n_test - n_val < 1:
        raise InputError(f"{parts.name}: {n} images are too few for val_fraction {val_fraction} and "
                         f"test_fraction {test_fraction}")
    if n_test:
        keep, out = carve(pool.y.numpy(), n_test, test_seed)
        pool, test = pool.take(keep), pool.take(out)
    if n_val:
        keep, out = carve(pool.y.numpy(), n_val, seed)
        pool, val = pool.take(keep), pool.take(out)
    return Splits(pool, val, test)
