"""Proxy data sets: digits, CIFAR pickles, ImageFolder and .npz written here, the device loader."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from nas import data
from nas.errors import InputError


@pytest.fixture(autouse=True)
def _fresh_cache():
    data.clear_cache()
    yield
    data.clear_cache()


def _write_cifar10(root, n_per_batch=12, batches=2, seed=0):
    rng = np.random.default_rng(seed)
    root.mkdir()
    for name in [f"data_batch_{i}" for i in range(1, batches + 1)] + ["test_batch"]:
        d = {b"data": rng.integers(0, 256, (n_per_batch, 3072), dtype=np.uint8),
             b"labels": [int(v) for v in rng.integers(0, 10, n_per_batch)], b"batch_label": name.encode()}
        (root / name).write_bytes(pickle.dumps(d))
    (root / "batches.meta").write_bytes(pickle.dumps({b"label_names": [f"c{i}".encode() for i in range(10)]}))
    return root


def test_digits_split_resolution_and_normalisation():
    d = data.load("digits", resolution=16, in_chans=3)
    assert d.x_train.shape[1:] == (3, 16, 16) and d.x_val.shape[1:] == (3, 16, 16)
    assert len(d.y_train) + len(d.y_val) == 1797
    assert len(d.y_val) == pytest.approx(0.2 * 1797, abs=1)
    assert d.num_classes == 10 and d.augment == "translate"
    # stratified: every class in the validation split, roughly in proportion
    counts = torch.bincount(d.y_val, minlength=10)
    assert counts.min() >= 30
    assert d.x_train.mean().abs() < 1e-4 and (d.x_train.std() - 1).abs() < 1e-2
    # grey replicated to the genotype's three input channels
    assert torch.equal(d.x_train[:, 0], d.x_train[:, 2])


def test_digits_split_is_seeded_and_cached():
    a = data.load("digits", resolution=8, seed=0)
    assert data.load("digits", resolution=8, seed=0) is a
    b = data.load("digits", resolution=8, seed=1)
    assert not torch.equal(a.y_val, b.y_val)
    data.clear_cache()
    assert torch.equal(data.load("digits", resolution=8, seed=0).x_val, a.x_val)


def test_subsample_keeps_at_most_n_training_images():
    d = data.load("digits", resolution=8, subsample=100)
    assert len(d.y_train) == 100 and len(d.y_val) == 360


def test_cifar10_pickles(tmp_path):
    root = _write_cifar10(tmp_path / "cifar-10-batches-py")
    assert data.detect_format(tmp_path) == "cifar10"
    d = data.load("cifar10", tmp_path, resolution=16)
    assert d.x_train.shape == (24, 3, 16, 16) and d.x_val.shape == (12, 3, 16, 16)
    assert d.num_classes == 10 and d.augment == "crop_flip"
    raw = pickle.loads((root / "data_batch_1").read_bytes())
    assert d.y_train[:12].tolist() == raw[b"labels"]
    # at the native 32 px the first pixel is exactly the file's first red byte, normalised
    d32 = data.load("cifar10", root, resolution=32)
    first = torch.cat([torch.from_numpy(pickle.loads((root / f"data_batch_{i}").read_bytes())[b"data"])
                       for i in (1, 2)]).float().view(-1, 3, 32, 32) / 255
    mean, std = first.mean(dim=(0, 2, 3)), first.std(dim=(0, 2, 3))
    assert torch.allclose(d32.x_train[0, :, 0, 0], (first[0, :, 0, 0] - mean) / std, atol=1e-5)


def test_cifar100_pickles(tmp_path):
    rng = np.random.default_rng(1)
    for name, n in (("train", 20), ("test", 8)):
        d = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
             b"fine_labels": rng.integers(0, 100, n).tolist(), b"coarse_labels": rng.integers(0, 20, n).tolist()}
        (tmp_path / name).write_bytes(pickle.dumps(d))
    (tmp_path / "meta").write_bytes(pickle.dumps({b"fine_label_names": [b"x"] * 100}))
    assert data.detect_format(tmp_path) == "cifar100"
    d = data.load("cifar100", tmp_path, resolution=8)
    assert d.num_classes == 100 and len(d.y_train) == 20 and len(d.y_val) == 8


@pytest.mark.parametrize("problem", ["missing", "labels", "shape", "garbage", "code"])
def test_cifar_bad_inputs(tmp_path, problem):
    root = _write_cifar10(tmp_path / "c")
    f = root / "data_batch_1"
    if problem == "missing":
        for p in root.glob("data_batch_*"):
            p.unlink()
    elif problem == "labels":
        d = pickle.loads(f.read_bytes())
        d[b"labels"] = d[b"labels"][:-1]
        f.write_bytes(pickle.dumps(d))
    elif problem == "shape":
        f.write_bytes(pickle.dumps({b"data": np.zeros((12, 100), np.uint8), b"labels": [0] * 12}))
    elif problem == "garbage":
        f.write_bytes(b"not a pickle at all")
    else:  # a pickle that would run code must not be loaded
        f.write_bytes(pickle.dumps(print))
    with pytest.raises(InputError) as e:
        data.load("cifar10", root, resolution=8)
    msg = str(e.value)
    assert "\n" not in msg and str(root) in msg


def test_cifar_label_out_of_range(tmp_path):
    root = _write_cifar10(tmp_path / "c")
    (root / "batches.meta").write_bytes(pickle.dumps({b"label_names": [b"a", b"b"]}))
    with pytest.raises(InputError, match="out of range"):
        data.load("cifar10", root, resolution=8)


def _write_images(root, classes, n, size=(10, 12), mode="RGB"):
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(n):
            shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
            Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(root / c / f"{i}.png")


def test_imagefolder_with_val_tree(tmp_path):
    _write_images(tmp_path / "train", ["cat", "dog", "emu"], 4)
    _write_images(tmp_path / "val", ["cat", "emu"], 2)
    assert data.detect_format(tmp_path) == "imagefolder"
    d = data.load("imagefolder", tmp_path, resolution=8)
    assert d.x_train.shape == (12, 3, 8, 8) and d.num_classes == 3
    assert d.y_train.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert d.y_val.tolist() == [0, 0, 2, 2]  # labels follow the training classes, not the val tree's order


def test_imagefolder_split_and_grey_images(tmp_path):
    _write_images(tmp_path, ["a", "b"], 10, mode="L")
    d = data.load("imagefolder", tmp_path, resolution=8, val_fraction=0.2, in_chans=3)
    assert len(d.y_train) == 16 and len(d.y_val) == 4
    assert torch.bincount(d.y_val).tolist() == [2, 2]
    assert d.x_train.shape[1] == 3


def test_imagefolder_bad_inputs(tmp_path):
    with pytest.raises(InputError, match="no class sub-directories"):
        data.load("imagefolder", tmp_path, resolution=8)
    _write_images(tmp_path / "train", ["a"], 2)
    (tmp_path / "train" / "b").mkdir()
    with pytest.raises(InputError, match="holds no images"):
        data.load("imagefolder", tmp_path, resolution=8)
    (tmp_path / "train" / "b" / "x.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(InputError, match="cannot read image"):
        data.load("imagefolder", tmp_path, resolution=8)
    _write_images(tmp_path / "val", ["zebra"], 1)
    (tmp_path / "train" / "b" / "x.png").unlink()
    _write_images(tmp_path / "train2", ["b"], 1)
    (tmp_path / "train2" / "b" / "0.png").rename(tmp_path / "train" / "b" / "0.png")
    with pytest.raises(InputError, match="zebra"):
        data.load("imagefolder", tmp_path, resolution=8)


def test_npz_nhwc_uint8_with_split(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (30, 6, 6, 3), dtype=np.uint8)
    y = np.arange(30) % 3
    xv = rng.integers(0, 256, (9, 6, 6, 3), dtype=np.uint8)
    np.savez(tmp_path / "d.npz", x=x, y=y, x_val=xv, y_val=np.arange(9) % 3)
    assert data.detect_format(tmp_path / "d.npz") == "npz"
    d = data.load("npz", tmp_path / "d.npz", resolution=6)
    assert d.x_train.shape == (30, 3, 6, 6) and d.x_val.shape == (9, 3, 6, 6) and d.num_classes == 3
    # NHWC -> NCHW: channel 1 of image 0 is the file's x[0, :, :, 1], normalised with the train statistics
    g = torch.from_numpy(x).float().permute(0, 3, 1, 2) / 255
    want = (g[0, 1] - g[:, 1].mean()) / g[:, 1].std()
    assert torch.allclose(d.x_train[0, 1], want, atol=1e-5)


def test_npz_nchw_float_without_split(tmp_path):
    x = np.random.default_rng(0).normal(size=(40, 1, 5, 5)).astype(np.float32)
    np.savez(tmp_path / "d.npz", x=x, y=np.arange(40) % 4)
    d = data.load("npz", tmp_path / "d.npz", resolution=10, in_chans=3, val_fraction=0.25)
    assert d.x_train.shape == (30, 3, 10, 10) and len(d.y_val) == 10 and d.num_classes == 4


@pytest.mark.parametrize("arrays, match", [
    ({"x": np.zeros((4, 5, 5, 3), np.uint8)}, "y: array missing"),
    ({"x": np.zeros((4, 5, 5, 3), np.uint8), "y": np.zeros(3, int)}, "4 images but 3 labels"),
    ({"x": np.zeros((4, 5, 5, 3), np.uint8), "y": np.zeros(4, np.float32)}, "labels must be integers"),
    ({"x": np.zeros((4, 5), np.uint8), "y": np.zeros(4, int)}, "3-D or 4-D"),
    ({"x": np.zeros((4, 5, 5, 7), np.uint8), "y": np.zeros(4, int)}, "NHWC"),
    ({"x": np.zeros((4, 3, 5, 5), np.float32), "y": np.zeros(4, int), "x_val": np.zeros((2, 3, 5, 5), np.float32)},
     "give both"),
])
def test_npz_bad_inputs(tmp_path, arrays, match):
    np.savez(tmp_path / "d.npz", **arrays)
    with pytest.raises(InputError, match=match) as e:
        data.load("npz", tmp_path / "d.npz", resolution=8)
    assert str(e.value).startswith(str(tmp_path / "d.npz"))


def test_missing_paths_and_formats(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        data.detect_format(tmp_path / "nope")
    with pytest.raises(InputError, match="file not found"):
        data.load("npz", tmp_path / "nope.npz")
    (tmp_path / "x.txt").write_text("hello")
    with pytest.raises(InputError, match="cannot tell"):
        data.detect_format(tmp_path / "x.txt")
    with pytest.raises(InputError, match="not a readable .npz"):
        data.load("npz", tmp_path / "x.txt")
    with pytest.raises(InputError, match="unknown data set"):
        data.load("mnist")
    with pytest.raises(InputError, match="needs a local path"):
        data.load("cifar10")


def _candidates(img, pad):
    """Every crop-with-replicate-padding (+ flip) of one image, made with F.pad: a second route to the result."""
    h, w = img.shape[-2:]
    padded = torch.nn.functional.pad(img[None], (pad,) * 4, mode="replicate")[0]
    out = {}
    for dy in range(-pad, pad + 1):
        for dx in range(-pad, pad + 1):
            crop = padded[:, pad + dy:pad + dy + h, pad + dx:pad + dx + w]
            out[(dy, dx, False)], out[(dy, dx, True)] = crop, crop.flip(-1)
    return out


def test_augment_batch_is_a_padded_crop_and_flip():
    x = torch.randn(16, 2, 5, 6)
    assert torch.equal(data.augment_batch(x, 0, False), x)
    g = torch.Generator().manual_seed(0)
    seen = set()
    for _ in range(8):
        out = data.augment_batch(x, 1, True, g)
        for img, aug in zip(x, out, strict=True):
            match = [k for k, c in _candidates(img, 1).items() if torch.equal(c, aug)]
            assert match, "augmented image is not a shifted/flipped copy"
            seen.update(match)
    assert {k[2] for k in seen} == {False, True} and {k[:2] for k in seen} >= {(-1, -1), (1, 1), (0, 0)}
    no_flip = data.augment_batch(x, 1, False, g)
    for img, aug in zip(x, no_flip, strict=True):
        assert any(torch.equal(c, aug) for k, c in _candidates(img, 1).items() if not k[2])


def test_device_loader_shuffles_repeatably_and_drops_last():
    x = torch.arange(10, dtype=torch.float32).view(10, 1, 1, 1).expand(10, 1, 2, 2).contiguous()
    y = torch.arange(10)
    loader = data.DeviceLoader(x, y, 4, shuffle=True, drop_last=True, generator=torch.Generator().manual_seed(3))
    batches = list(loader)
    assert len(loader) == 2 and [len(b[1]) for b in batches] == [4, 4]
    for xb, yb in batches:  # images stay with their labels
        assert torch.equal(xb[:, 0, 0, 0], yb.float())
    again = data.DeviceLoader(x, y, 4, shuffle=True, drop_last=True, generator=torch.Generator().manual_seed(3))
    assert [b[1].tolist() for b in again] == [b[1].tolist() for b in batches]
    plain = data.DeviceLoader(x, y, 4)
    assert [b[1].tolist() for b in plain] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
