"""ImageFolder trees: ``root/<class>/<image>``, or ``train/``, ``val/`` and ``test/`` trees of that shape."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from nas.data.container import Part, Parts
from nas.errors import InputError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".ppm", ".pgm", ".tif", ".tiff"}
_VAL_DIRS = ("val", "valid", "validation")


def _read_image(f: Path, resolution: int) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(f) as im:
            grey = im.mode in ("1", "L", "I", "I;16", "F")
            im = im.convert("L" if grey else "RGB")
            # PIL's bilinear filter is antialiased when shrinking; squash to square as timm's Resize((r, r)) does.
            im = im.resize((resolution, resolution), Image.Resampling.BILINEAR)
            a = np.asarray(im, dtype=np.uint8)
    except (OSError, UnidentifiedImageError, ValueError) as e:
        raise InputError(f"{f}: cannot read image ({e.__class__.__name__})") from None
    return a[None] if a.ndim == 2 else a.transpose(2, 0, 1)


def _scan_tree(root: Path) -> dict[str, list[Path]]:
    classes = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise InputError(f"{root}: no class sub-directories (expected an ImageFolder tree root/<class>/<image>)")
    tree = {}
    for c in classes:
        files = sorted(f for f in c.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise InputError(f"{c}: class directory holds no images")
        tree[c.name] = files
    return tree


def _read_tree(tree: dict[str, list[Path]], names: list[str], resolution: int) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    for label, name in enumerate(names):
        for f in tree.get(name, []):
            xs.append(_read_image(f, resolution))
            ys.append(label)
    chans = {a.shape[0] for a in xs}
    if len(chans) > 1:  # mixed grey and colour files: promote grey ones
        xs = [np.repeat(a, 3, axis=0) if a.shape[0] == 1 else a for a in xs]
    return np.stack(xs), np.asarray(ys, dtype=np.int64)


def imagefolder(path: Path, resolution: int) -> Parts:
    """Images are read at ``resolution`` already: a tree of large photos never sits in memory at full size."""
    if not path.is_dir():
        raise InputError(f"{path}: not a directory (expected an ImageFolder tree)")
    train_root = path / "train" if (path / "train").is_dir() else path
    tree = _scan_tree(train_root)
    names = list(tree)
    arrays = {"train": _read_tree(tree, names, resolution)}
    for split, dirs in (("val", _VAL_DIRS), ("test", ("test",))):
        root = next((path / d for d in dirs if (path / d).is_dir()), None)
        if root is None or train_root == path:  # a flat tree's class folders are not splits
            continue
        sub = _scan_tree(root)
        extra = sorted(set(sub) - set(tree))
        if extra:
            raise InputError(f"{root}: class {extra[0]!r} is not among the training classes")
        arrays[split] = _read_tree(sub, names, resolution)
    chans = max(x.shape[1] for x, _ in arrays.values())
    parts = {k: Part(torch.from_numpy(np.repeat(x, chans, axis=1) if x.shape[1] < chans else x), torch.from_numpy(y))
             for k, (x, y) in arrays.items()}
    return Parts(str(path), parts["train"], len(names), "crop_flip", 255.0, val=parts.get("val"),
                 test=parts.get("test"))
