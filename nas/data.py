"""Proxy data sets, held on the training device as tensors.

Every loader returns a :class:`ProxyData`: float32 NCHW images already resized
to the proxy resolution and normalised with the training set's per-channel
mean/std, int64 labels, and the kind of augmentation that suits the data.
Small data sets fit in (GPU) memory, so :class:`DeviceLoader` shuffles and
augments on the device and yields batches by indexing: no worker processes,
no host-to-device copy per step.

Sources: scikit-learn's handwritten digits (shipped with scikit-learn, no
download), CIFAR-10/100 in their python pickle format, ImageFolder trees
(one sub-directory per class) and ``.npz`` files with ``x``/``y``. Anything
wrong with a path raises ``InputError("<path>: <problem>")``.
"""

from __future__ import annotations

import functools
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from nas.config import DATASET_FORMATS
from nas.errors import InputError

FORMATS = DATASET_FORMATS  # the one list, torch-free so that space validation can read it
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".ppm", ".pgm", ".tif", ".tiff"}
_RESIZE_CHUNK = 4096  # images resized at a time, so upsampling CIFAR does not need all of it in float at once


@dataclass(frozen=True)
class ProxyData:
    """A data set ready for training: normalised float32 NCHW tensors on one device.

    ``augment`` is ``"crop_flip"`` (random crop with padding + horizontal flip,
    natural images), ``"translate"`` (random shift only: flipping a digit makes
    another symbol) or ``"none"``.
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    num_classes: int
    augment: str = "crop_flip"

    @property
    def resolution(self) -> int:
        return int(self.x_train.shape[-1])

    @property
    def in_chans(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def device(self) -> torch.device:
        return self.x_train.device

    def to(self, device: str | torch.device) -> ProxyData:
        device = torch.device(device)
        if self.x_train.device == device:
            return self
        return ProxyData(self.name, self.x_train.to(device), self.y_train.to(device), self.x_val.to(device),
                         self.y_val.to(device), self.num_classes, self.augment)


# -- public entry point ----------------------------------------------------------

def load(dataset: str = "digits", path: str | Path | None = None, *, resolution: int = 32, in_chans: int = 3,
         subsample: int | None = None, val_fraction: float = 0.2, seed: int = 0,
         device: str | torch.device = "cpu") -> ProxyData:
    """Load, resize, normalise and place a data set on ``device``.

    Results are cached per process (keyed by every argument), so trials that
    run one after another in the same worker load the data once. ``seed``
    fixes the validation split and the subsample, not the training run: all
    trials of a study see the same images.
    """
    if dataset == "auto":
        dataset = detect_format(path)
    if dataset not in FORMATS:
        raise InputError(f"dataset: unknown data set {dataset!r} (known: {', '.join(FORMATS)})")
    if dataset != "digits":
        if path is None:
            raise InputError(f"dataset: {dataset} needs a local path")
        path = str(Path(path).expanduser().resolve())
    else:
        path = None
    if resolution < 4:
        raise InputError(f"resolution: must be >= 4, got {resolution}")
    if not 0 < val_fraction < 1:
        raise InputError(f"val_fraction: must be in (0, 1), got {val_fraction}")
    if subsample is not None and subsample < 1:
        raise InputError(f"subsample: must be a positive integer, got {subsample}")
    return _load_cached(dataset, path, int(resolution), int(in_chans), subsample, float(val_fraction), int(seed),
                        str(torch.device(device)))


def detect_format(path: str | Path | None) -> str:
    """Guess the format of a local data set path (``digits`` when there is none)."""
    if path is None or str(path) == "digits":
        return "digits"
    p = Path(path).expanduser()
    if not p.exists():
        raise InputError(f"{p}: no such file or directory")
    if p.is_file():
        if p.suffix == ".npz":
            return "npz"
        raise InputError(f"{p}: cannot tell the data format (expected a .npz file or a directory)")
    p = _cifar_dir(p)
    if (p / "data_batch_1").is_file():
        return "cifar10"
    if (p / "train").is_file():
        return "cifar100"
    return "imagefolder"


def clear_cache() -> None:
    _load_cached.cache_clear()


@functools.lru_cache(maxsize=4)
def _load_cached(dataset: str, path: str | None, resolution: int, in_chans: int, subsample: int | None,
                 val_fraction: float, seed: int, device: str) -> ProxyData:
    loader = {"digits": _digits, "cifar10": _cifar, "cifar100": _cifar, "imagefolder": _imagefolder,
              "npz": _npz}[dataset]
    kwargs = {"resolution": resolution, "val_fraction": val_fraction, "seed": seed}
    if dataset in ("cifar10", "cifar100"):
        kwargs["fmt"] = dataset
    raw = loader(Path(path) if path else None, **kwargs)
    return _finish(raw, resolution, in_chans, subsample, seed, device)


# -- raw arrays -> ProxyData -----------------------------------------------------------

@dataclass
class _Raw:
    """Unnormalised images (uint8 0..255 or float), NCHW, any size, before the common steps."""

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    num_classes: int
    augment: str
    scale: float  # divide by this to get [0, 1]


def _finish(raw: _Raw, resolution: int, in_chans: int, subsample: int | None, seed: int, device: str) -> ProxyData:
    x, y = raw.x_train, raw.y_train
    if subsample is not None and subsample < len(y):
        g = torch.Generator().manual_seed(seed + 1)
        keep = torch.randperm(len(y), generator=g)[:subsample].sort().values
        x, y = x[keep], y[keep]
    x = _resize(x, resolution, raw.scale)
    xv = _resize(raw.x_val, resolution, raw.scale)
    c = x.shape[1]
    if c != in_chans:
        if c != 1:
            raise InputError(f"{raw.name}: images have {c} channels, the genotype expects in_chans={in_chans}")
        # Grey images feed a colour stem by replication, as ImageNet-pretrained models are fed MNIST.
        x, xv = x.expand(-1, in_chans, -1, -1), xv.expand(-1, in_chans, -1, -1)
    mean = x.mean(dim=(0, 2, 3), keepdim=True)
    std = x.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-6)
    x, xv = ((x - mean) / std).contiguous(), ((xv - mean) / std).contiguous()
    return ProxyData(raw.name, x.to(device), y.to(device), xv.to(device), raw.y_val.to(device), raw.num_classes,
                     raw.augment)


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


def _check_labels(name: str, x: np.ndarray, y: np.ndarray, what: str = "") -> np.ndarray:
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


def _split(n: int, y: np.ndarray, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded stratified train/val indices (random when a class is too small to stratify)."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(n)
    counts = np.bincount(y)
    classes = int((counts > 0).sum())
    fits = counts[counts > 0].min() >= 2 and min(val_fraction, 1 - val_fraction) * n >= classes
    stratify = y if fits else None
    tr, va = train_test_split(idx, test_size=val_fraction, random_state=seed, stratify=stratify)
    return np.sort(tr), np.sort(va)


# -- digits ---------------------------------------------------------------------------

def _digits(path: None, *, resolution: int, val_fraction: float, seed: int) -> _Raw:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.from_numpy(d.images.astype(np.float32)).unsqueeze(1)  # N,1,8,8 in 0..16
    y = d.target.astype(np.int64)
    tr, va = _split(len(y), y, val_fraction, seed)
    yt = torch.from_numpy(y)
    return _Raw("digits", x[tr], yt[tr], x[va], yt[va], 10, "translate", 16.0)


# -- CIFAR (python pickle format) -------------------------------------------------------

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


def _cifar_dir(p: Path) -> Path:
    # Accept the directory the archive extracts to or its parent.
    for sub in ("cifar-10-batches-py", "cifar-100-python"):
        if (p / sub).is_dir():
            return p / sub
    return p


def _cifar_part(p: Path, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    d = _unpickle(p)
    if "data" not in d:
        raise InputError(f"{p}: data: key missing")
    if label_key not in d:
        raise InputError(f"{p}: {label_key}: key missing")
    x = np.asarray(d["data"])
    if x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != 3 * 32 * 32:
        raise InputError(f"{p}: data: expected uint8 rows of 3072 values, got {x.dtype} {x.shape}")
    y = _check_labels(str(p), x, np.asarray(d[label_key]))
    return x.reshape(-1, 3, 32, 32), y


def _cifar(path: Path, *, fmt: str, resolution: int, val_fraction: float, seed: int) -> _Raw:
    root = _cifar_dir(path)
    if not root.is_dir():
        raise InputError(f"{path}: not a directory (expected a CIFAR python-format directory)")
    if fmt == "cifar10":
        train_files = [root / f"data_batch_{i}" for i in range(1, 6)]
        missing = [f.name for f in train_files if not f.is_file()]
        if len(missing) == 5:
            raise InputError(f"{root}: no data_batch_1..5 files (not CIFAR-10 python format)")
        train_files = [f for f in train_files if f.is_file()]
        test_file, meta_file, label_key, names_key, default_classes = (
            root / "test_batch", root / "batches.meta", "labels", "label_names", 10)
    else:
        train_files = [root / "train"]
        test_file, meta_file, label_key, names_key, default_classes = (
            root / "test", root / "meta", "fine_labels", "fine_label_names", 100)
    parts = [_cifar_part(f, label_key) for f in train_files]
    x, y = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    xv, yv = _cifar_part(test_file, label_key)
    num_classes = default_classes
    if meta_file.is_file():
        names = _unpickle(meta_file).get(names_key)
        if not isinstance(names, list) or not names:
            raise InputError(f"{meta_file}: {names_key}: expected a list of class names")
        num_classes = len(names)
    top = int(max(y.max(), yv.max()))
    if top >= num_classes:
        raise InputError(f"{root}: label {top} out of range for {num_classes} classes")
    return _Raw(fmt, torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(xv), torch.from_numpy(yv),
                num_classes, "crop_flip", 255.0)


# -- ImageFolder -----------------------------------------------------------------------

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


def _imagefolder(path: Path, *, resolution: int, val_fraction: float, seed: int) -> _Raw:
    if not path.is_dir():
        raise InputError(f"{path}: not a directory (expected an ImageFolder tree)")
    train_root = path / "train" if (path / "train").is_dir() else path
    val_root = next((path / v for v in ("val", "valid", "validation") if (path / v).is_dir()), None)
    tree = _scan_tree(train_root)
    names = list(tree)
    x, y = _read_tree(tree, names, resolution)
    if val_root is not None:
        vtree = _scan_tree(val_root)
        extra = sorted(set(vtree) - set(tree))
        if extra:
            raise InputError(f"{val_root}: class {extra[0]!r} is not among the training classes")
        xv, yv = _read_tree(vtree, names, resolution)
        if xv.shape[1] != x.shape[1]:
            c = max(x.shape[1], xv.shape[1])
            x, xv = (np.repeat(a, c, axis=1) if a.shape[1] == 1 else a for a in (x, xv))
    else:
        tr, va = _split(len(y), y, val_fraction, seed)
        x, xv, y, yv = x[tr], x[va], y[tr], y[va]
    return _Raw(str(path), torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(xv), torch.from_numpy(yv),
                len(names), "crop_flip", 255.0)


# -- .npz ------------------------------------------------------------------------------------

def _npz_images(name: str, x: np.ndarray) -> tuple[torch.Tensor, float]:
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


def _npz(path: Path, *, resolution: int, val_fraction: float, seed: int) -> _Raw:
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except Exception as e:  # zipfile/format errors come in many types
        raise InputError(f"{path}: not a readable .npz file ({e.__class__.__name__})") from None
    for k in ("x", "y"):
        if k not in arrays:
            raise InputError(f"{path}: {k}: array missing (expected x, y and optionally x_val, y_val)")
    if ("x_val" in arrays) != ("y_val" in arrays):
        raise InputError(f"{path}: x_val/y_val: give both or neither")
    x, scale = _npz_images(f"{path}: x", arrays["x"])
    y = _check_labels(str(path), x, arrays["y"], "y: ")
    if "x_val" in arrays:
        xv, vscale = _npz_images(f"{path}: x_val", arrays["x_val"])
        yv = _check_labels(str(path), xv, arrays["y_val"], "y_val: ")
        if vscale != scale or xv.shape[1] != x.shape[1]:
            raise InputError(f"{path}: x_val: dtype/channels differ from x")
    else:
        tr, va = _split(len(y), y, val_fraction, seed)
        x, xv, y, yv = x[torch.from_numpy(tr)], x[torch.from_numpy(va)], y[tr], y[va]
    num_classes = int(max(y.max(), yv.max())) + 1
    if num_classes < 2:
        raise InputError(f"{path}: y: need at least 2 classes")
    return _Raw(str(path), x, torch.from_numpy(y), xv, torch.from_numpy(yv), num_classes, "crop_flip", scale)


# -- device loader ---------------------------------------------------------------------------

def augment_batch(x: torch.Tensor, pad: int, flip: bool, generator: torch.Generator | None = None) -> torch.Tensor:
    """Random crop with ``pad`` pixels of edge padding, and a horizontal flip, per image, on x's device.

    Done as two gathers with shifted, clamped indices, so no padded copy is made
    (clamping is replicate padding: the border colour, which for digits is the
    background).
    """
    b, c, h, w = x.shape
    dev = x.device
    shift = torch.randint(-pad, pad + 1, (2, b, 1), generator=generator, device=dev)
    iy = (torch.arange(h, device=dev) + shift[0]).clamp_(0, h - 1)
    ix = (torch.arange(w, device=dev) + shift[1]).clamp_(0, w - 1)
    if flip:
        mirror = torch.rand(b, 1, generator=generator, device=dev) < 0.5
        ix = torch.where(mirror, w - 1 - ix, ix)
    x = x.gather(2, iy[:, None, :, None].expand(b, c, h, w))
    return x.gather(3, ix[:, None, None, :].expand(b, c, h, w))


class DeviceLoader:
    """Batches from tensors that already live on the training device.

    Shuffling and augmentation use ``generator`` (a ``torch.Generator`` on the
    same device) so a run is repeatable from its seed.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, *, shuffle: bool = False,
                 drop_last: bool = False, augment: str = "none", generator: torch.Generator | None = None) -> None:
        if len(x) != len(y):
            raise ValueError(f"{len(x)} images but {len(y)} labels")
        self.x, self.y = x, y
        # Never a batch of one in training: BatchNorm cannot normalise it.
        self.batch_size = max(1, min(batch_size, len(x)))
        self.shuffle, self.drop_last, self.generator = shuffle, drop_last, generator
        res = x.shape[-1]
        self._pad = {"crop_flip": max(1, res // 8), "translate": max(1, res // 8), "none": 0}[augment]
        self._flip = augment == "crop_flip"

    def __len__(self) -> int:
        n, b = len(self.x), self.batch_size
        return n // b if self.drop_last else -(-n // b)

    def __iter__(self):
        n, b = len(self.x), self.batch_size
        order = torch.randperm(n, generator=self.generator, device=self.x.device) if self.shuffle else None
        for i in range(len(self)):
            if order is None:
                xb, yb = self.x[i * b:(i + 1) * b], self.y[i * b:(i + 1) * b]
            else:
                idx = order[i * b:(i + 1) * b]
                xb, yb = self.x.index_select(0, idx), self.y.index_select(0, idx)
            if self._pad:
                xb = augment_batch(xb, self._pad, self._flip, self.generator)
            yield xb, yb
