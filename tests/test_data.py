"""Proxy data sets: the embedded ones, CIFAR pickles, ImageFolder and .npz written here, the three splits,
the device loader."""

from __future__ import annotations

import dataclasses
import hashlib
import math
import pickle

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nas import data
from nas.data.container import Part, Parts
from nas.data.splits import split
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
    d = data.load("digits", resolution=16, in_chans=3, test=True)
    assert d.x_train.shape[1:] == (3, 16, 16) and d.x_val.shape[1:] == (3, 16, 16) == d.x_test.shape[1:]
    assert len(d.y_train) + len(d.y_val) + len(d.y_test) == 1797
    assert len(d.y_val) == len(d.y_test) == 360  # ceil(0.2 * 1797) each
    assert d.num_classes == 10 and d.augment == "translate"
    # stratified: every class in the held-out splits, roughly in proportion
    for y in (d.y_val, d.y_test):
        counts = torch.bincount(y, minlength=10)
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


@settings(max_examples=60, deadline=None)
@given(labels=st.lists(st.integers(0, 4), min_size=6, max_size=120), val=st.floats(0.05, 0.5),
       test=st.sampled_from([0.0, 0.1, 0.2, 0.35]), seed=st.integers(0, 2**16), test_seed=st.integers(0, 2**16))
def test_split_partitions_the_indices_and_the_test_split_has_its_own_seed(labels, val, test, seed, test_seed):
    n, y = len(labels), torch.tensor(labels)
    # each image holds its own index, so the splits' contents name the indices they took
    parts = Parts("syn", Part(torch.arange(n).view(n, 1, 1, 1), y), 5, "none", 1.0)
    n_val, n_test = math.ceil(val * n), math.ceil(test * n)  # rounded up, as scikit-learn does
    if n - n_val - n_test < 1:
        with pytest.raises(InputError, match="too few"):
            split(parts, val_fraction=val, test_fraction=test, test_seed=test_seed, seed=seed)
        return
    s = split(parts, val_fraction=val, test_fraction=test, test_seed=test_seed, seed=seed)
    ids = [p.x.flatten().tolist() for p in (s.train, s.val, *([s.test] if test else []))]
    assert sorted(i for part in ids for i in part) == list(range(n))  # disjoint, and nothing lost
    assert [len(i) for i in ids] == [n - n_val - n_test, n_val, *([n_test] if test else [])]
    for p in (s.train, s.val):
        assert torch.equal(p.y, y[p.x.flatten()])  # labels travel with their images
    if test:
        other = split(parts, val_fraction=val / 2, test_fraction=test, test_seed=test_seed, seed=seed + 1)
        assert torch.equal(other.test.x, s.test.x)  # neither data_seed nor val_fraction moves the test split
    else:
        assert s.test is None


@pytest.mark.parametrize("name", ["digits", "mnist5k"])
def test_embedded_splits_share_no_image(name):
    parts = getattr(data.embedded, name)()
    s = split(parts, val_fraction=0.2, test_fraction=0.2, test_seed=0, seed=0)

    def content(p):
        return [img.numpy().tobytes() for img in p.x]

    train, val, test = (set(content(p)) for p in (s.train, s.val, s.test))
    assert len(train) + len(val) + len(test) == len(parts.train) == len(set(content(parts.train)))
    assert not (train & val or train & test or val & test)


def _standardised(x):
    return (x - x.mean()) / x.std()


def test_test_split_is_the_same_for_every_training_and_data_seed():
    from nas.train import TrainConfig, load_data

    cfg = TrainConfig(resolution=8)
    a = load_data(cfg, 1, test=True)
    for change in ({"seed": 5}, {"data_seed": 3}, {"subsample": 100}, {"val_fraction": 0.1}):
        b = load_data(dataclasses.replace(cfg, **change), 1, test=True)
        assert torch.equal(a.y_test, b.y_test)
        # the same images; only the normalisation (the training split's statistics) may differ
        assert torch.allclose(_standardised(a.x_test), _standardised(b.x_test), atol=1e-4)
    c = load_data(dataclasses.replace(cfg, test_seed=1), 1, test=True)
    assert not torch.equal(a.y_test, c.y_test)


def test_test_tensors_only_on_request():
    d = data.load("digits", resolution=8)
    assert d.x_test is None and d.y_test is None and not d.has_test
    t = data.load("digits", resolution=8, test=True)
    assert t.has_test and torch.equal(t.x_val, d.x_val) and torch.equal(t.x_train, d.x_train)
    two_way = data.load("digits", resolution=8, test_fraction=0)
    assert len(two_way.y_train) + len(two_way.y_val) == 1797
    with pytest.raises(InputError, match="no test split"):
        data.load("digits", resolution=8, test_fraction=0, test=True)
    with pytest.raises(InputError, match="test_fraction"):
        data.load("digits", resolution=8, val_fraction=0.5, test_fraction=0.5)


def test_a_search_trial_never_loads_the_test_split(monkeypatch):
    from nas.search import objective
    from nas.space import load_space

    loads, finished = [], []
    real_load, real_finish = data.load, data.loading._finish

    def spy_load(*args, **kwargs):
        d = real_load(*args, **kwargs)
        loads.append((kwargs.get("test"), d.has_test))
        return d

    def spy_finish(*args):
        finished.append(args[-1])  # its last argument says whether test tensors are made
        return real_finish(*args)

    monkeypatch.setattr(data, "load", spy_load)
    monkeypatch.setattr(data.loading, "_finish", spy_finish)
    space = load_space("tiny.yaml")
    proxy = dataclasses.replace(space.proxy, epochs=1, subsample=64, device="cpu")
    last = objective.evaluate(objective.trial_config(0, space.sample(0), proxy, None, 1), lambda r: None)
    assert "error" not in last and last["epoch"] == 1
    assert loads == [(False, False)] and finished == [False]


def test_subsample_keeps_at_most_n_training_images():
    d = data.load("digits", resolution=8, subsample=100, test=True)
    assert len(d.y_train) == 100 and len(d.y_val) == 360 and len(d.y_test) == 360


def test_mnist5k_is_the_documented_file_and_embedded():
    z = np.load(data.embedded.MNIST5K)
    digest = hashlib.sha256(z["x"].tobytes() + z["y"].tobytes()).hexdigest()
    assert digest in (data.embedded.MNIST5K.parent / "NOTICE.md").read_text()
    assert z["x"].shape == (5000, 28, 28) and z["x"].dtype == np.uint8
    assert data.detect_format("mnist5k") == "mnist5k" and "mnist5k" in data.FORMATS
    d = data.load("mnist5k", resolution=28, in_chans=1, test=True)
    assert d.num_classes == 10 and d.augment == "translate" and d.x_train.shape[1:] == (1, 28, 28)
    assert (len(d.y_train), len(d.y_val), len(d.y_test)) == (3000, 1000, 1000)
    assert torch.bincount(d.y_test).tolist() == [100] * 10  # 500 per class in the file: exact strata
    # at the native size the images are the file's, normalised with the training split's statistics
    s = split(data.embedded.mnist5k(), val_fraction=0.2, test_fraction=0.2, test_seed=0, seed=0)
    raw = s.train.x.float() / 255
    assert torch.allclose(d.x_train, (raw - raw.mean()) / raw.std(), atol=1e-5)
    assert torch.allclose(d.x_test, (s.test.x.float() / 255 - raw.mean()) / raw.std(), atol=1e-5)
    assert torch.equal(d.y_test, s.test.y)


def test_cifar10_pickles(tmp_path):
    root = _write_cifar10(tmp_path / "cifar-10-batches-py")
    assert data.detect_format(tmp_path) == "cifar10"
    d = data.load("cifar10", tmp_path, resolution=16, test=True)
    # the test batch is the test split; validation is carved from the training batches
    assert d.x_train.shape == (19, 3, 16, 16) and d.x_val.shape == (5, 3, 16, 16) and d.x_test.shape == (12, 3, 16, 16)
    assert d.num_classes == 10 and d.augment == "crop_flip"
    assert d.y_test.tolist() == pickle.loads((root / "test_batch").read_bytes())[b"labels"]
    labels = [v for i in (1, 2) for v in pickle.loads((root / f"data_batch_{i}").read_bytes())[b"labels"]]
    assert sorted(d.y_train.tolist() + d.y_val.tolist()) == sorted(labels)
    # at the native 32 px the first pixel is exactly the file's first red byte, normalised with the training split
    d32 = data.load("cifar10", root, resolution=32, test=True)
    rows = torch.cat([torch.from_numpy(pickle.loads((root / f"data_batch_{i}").read_bytes())[b"data"])
                      for i in (1, 2)]).float().view(-1, 3, 32, 32) / 255
    s = split(data.cifar.cifar(root, "cifar10"), val_fraction=0.2, test_fraction=0.2, test_seed=0, seed=0)
    train = s.train.x.float() / 255
    mean, std = train.mean(dim=(0, 2, 3)), train.std(dim=(0, 2, 3))
    first = [i for i, r in enumerate(rows) if torch.equal(r, train[0])]
    assert first and torch.allclose(d32.x_train[0, :, 0, 0], (rows[first[0], :, 0, 0] - mean) / std, atol=1e-5)
    test = torch.from_numpy(pickle.loads((root / "test_batch").read_bytes())[b"data"]).float().view(-1, 3, 32, 32)
    assert torch.allclose(d32.x_test, (test / 255 - mean[:, None, None]) / std[:, None, None], atol=1e-5)


def test_cifar100_pickles(tmp_path):
    rng = np.random.default_rng(1)
    for name, n in (("train", 20), ("test", 8)):
        d = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
             b"fine_labels": rng.integers(0, 100, n).tolist(), b"coarse_labels": rng.integers(0, 20, n).tolist()}
        (tmp_path / name).write_bytes(pickle.dumps(d))
    (tmp_path / "meta").write_bytes(pickle.dumps({b"fine_label_names": [b"x"] * 100}))
    assert data.detect_format(tmp_path) == "cifar100"
    d = data.load("cifar100", tmp_path, resolution=8, test=True)
    assert d.num_classes == 100 and (len(d.y_train), len(d.y_val), len(d.y_test)) == (16, 4, 8)


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
    d = data.load("imagefolder", tmp_path, resolution=8, test_fraction=0)
    assert d.x_train.shape == (12, 3, 8, 8) and d.num_classes == 3
    assert d.y_train.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert d.y_val.tolist() == [0, 0, 2, 2]  # labels follow the training classes, not the val tree's order
    with pytest.raises(InputError, match="no test split"):
        data.load("imagefolder", tmp_path, resolution=8, test_fraction=0, test=True)
    d = data.load("imagefolder", tmp_path, resolution=8, test=True)  # the test split carved from the train tree
    assert (len(d.y_train), len(d.y_val), len(d.y_test)) == (9, 4, 3) and torch.bincount(d.y_test).tolist() == [1] * 3


def test_imagefolder_test_tree(tmp_path):
    _write_images(tmp_path / "train", ["a", "b"], 5)
    _write_images(tmp_path / "test", ["b"], 3, mode="L")
    d = data.load("imagefolder", tmp_path, resolution=8, test=True)
    assert (len(d.y_train), len(d.y_val), len(d.y_test)) == (8, 2, 3) and d.y_test.tolist() == [1, 1, 1]
    assert d.x_test.shape == (3, 3, 8, 8)  # grey test images promoted to the training images' channels
    _write_images(tmp_path / "test", ["zebra"], 1)
    with pytest.raises(InputError, match="zebra"):
        data.load("imagefolder", tmp_path, resolution=8)


def test_imagefolder_split_and_grey_images(tmp_path):
    _write_images(tmp_path, ["a", "b"], 10, mode="L")
    d = data.load("imagefolder", tmp_path, resolution=8, val_fraction=0.2, in_chans=3, test=True)
    assert (len(d.y_train), len(d.y_val), len(d.y_test)) == (12, 4, 4)
    assert torch.bincount(d.y_val).tolist() == [2, 2] == torch.bincount(d.y_test).tolist()
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
    d = data.load("npz", tmp_path / "d.npz", resolution=6, test_fraction=0)
    assert d.x_train.shape == (30, 3, 6, 6) and d.x_val.shape == (9, 3, 6, 6) and d.num_classes == 3
    # NHWC -> NCHW: channel 1 of image 0 is the file's x[0, :, :, 1], normalised with the train statistics
    g = torch.from_numpy(x).float().permute(0, 3, 1, 2) / 255
    want = (g[0, 1] - g[:, 1].mean()) / g[:, 1].std()
    assert torch.allclose(d.x_train[0, 1], want, atol=1e-5)


def test_npz_nchw_float_without_split(tmp_path):
    x = np.random.default_rng(0).normal(size=(40, 1, 5, 5)).astype(np.float32)
    np.savez(tmp_path / "d.npz", x=x, y=np.arange(40) % 4)
    d = data.load("npz", tmp_path / "d.npz", resolution=10, in_chans=3, val_fraction=0.25, test=True)
    assert d.x_train.shape == (22, 3, 10, 10) and len(d.y_val) == 10 and len(d.y_test) == 8 and d.num_classes == 4


def test_npz_with_test_arrays(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (20, 6, 6, 1), dtype=np.uint8)
    xt = rng.integers(0, 256, (7, 6, 6, 1), dtype=np.uint8)
    np.savez(tmp_path / "d.npz", x=x, y=np.arange(20) % 2, x_test=xt, y_test=np.arange(7) % 3)
    d = data.load("npz", tmp_path / "d.npz", resolution=6, in_chans=1, test=True)
    assert (len(d.y_train), len(d.y_val), len(d.y_test)) == (16, 4, 7) and d.num_classes == 3
    assert d.y_test.tolist() == (np.arange(7) % 3).tolist()  # the file's test arrays, in order, nothing carved
    np.savez(tmp_path / "e.npz", x=x, y=np.arange(20) % 2, x_test=xt)
    with pytest.raises(InputError, match="x_test/y_test: give both"):
        data.load("npz", tmp_path / "e.npz", resolution=6)


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
