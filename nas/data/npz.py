"""``.npz`` arrays: ``x``/``y``, and optionally ``x_val``/``y_val`` and ``x_test``/``y_test``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from nas.data.container import Part, Parts
from nas.data.splits import check_labels
from nas.errors import InputError


def _images(name: str, x: np.ndarray) -> tuple[torch.Tensor, float]:
    """uint8 NHWC / NHW (0..255) or float NCHW / NHW (used as given) -> NCHW tensor and its scale."""
    if x.ndim == 3:
        x = x[:, None] if x.dtype != np.uint8 else x[..., None]
    if x.ndim != 4:
        raise InputError(f"{name}: images must be 3-D or 4-D (NHWC uint8 or NCHW float), got shape {x.shape}")
    if x.dtype == np.uint8:
        if x.shape[-1] not in (1, 3, 4):
            raise InputError(f"{name}: uint8 images must be NHWC with 1, 3 or 4 channels, got shape {x.shape}")
        return torch.from_numpy(np.ascontiguousarray(x[..., :3].transpose(0, 3, 1, 2))), 255.0
    if np.issubdtype(x.dtype, np.floating):
        if x.shape[1] not in (1, 3):
            raise InputError(f"{name}: float images must be NCHW with 1 or 3 channels, got shape {x.shape}")
        if not np.isfinite(x).all():
            raise InputError(f"{name}: images contain NaN or inf")
        return torch.from_numpy(x.astype(np.float32)), 1.0
    raise InputError(f"{name}: images must be uint8 (NHWC) or float (NCHW), got {x.dtype}")


def npz(path: Path) -> Parts:
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except Exception as e:  # zipfile/format errors come in many types
        raise InputError(f"{path}: not a readable .npz file ({e.__class__.__name__})") from None
    for k in ("x", "y"):
        if k not in arrays:
            raise InputError(f"{path}: {k}: array missing (expected x, y and optionally x_val, y_val, x_test, y_test)")
    x, scale = _images(f"{path}: x", arrays["x"])
    parts = {"": Part(x, torch.from_numpy(check_labels(str(path), x, arrays["y"], "y: ")))}
    for suffix in ("_val", "_test"):
        if (f"x{suffix}" in arrays) != (f"y{suffix}" in arrays):
            raise InputError(f"{path}: x{suffix}/y{suffix}: give both or neither")
        if f"x{suffix}" not in arrays:
            continue
        xs, s = _images(f"{path}: x{suffix}", arrays[f"x{suffix}"])
        ys = check_labels(str(path), xs, arrays[f"y{suffix}"], f"y{suffix}: ")
        if s != scale or xs.shape[1] != x.shape[1]:
            raise InputError(f"{path}: x{suffix}: dtype/channels differ from x")
        parts[suffix] = Part(xs, torch.from_numpy(ys))
    num_classes = max(int(p.y.max()) for p in parts.values()) + 1
    if num_classes < 2:
        raise InputError(f"{path}: y: need at least 2 classes")
    return Parts(str(path), parts[""], num_classes, "crop_flip", scale, val=parts.get("_val"),
                 test=parts.get("_test"))
