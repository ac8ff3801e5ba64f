"""The proxy trainer and ``nas train``: learning, seeding, schedule, callbacks, CLI."""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from nas.errors import InputError
from nas.genotype import loads
from nas.proxy import proxy_genotype
from nas.train import StopTrial, TrainConfig, lr_factor, param_groups, recalibrate_bn, train

TINY_YAML = """
name: tiny
resolution: 224
stem: {out: 16, stride: 2}
stages:
- blocks: [{out: 16}]
- blocks: [{out: 24, stride: 2, expand: 3, kernels: [3, 5]}, {out: 24, expand: 3}]
- blocks: [{out: 40, stride: 2, expand: 3, kernels: [3, 5], se: 0.25, act: swish}]
head: {features: 128}
"""
TINY = loads(TINY_YAML)
FAST = TrainConfig(resolution=16, width=1.0, epochs=1, subsample=256, batch_size=32, lr=0.01, device="cpu")


pytestmark = pytest.mark.usefixtures("one_thread")


def test_learns_digits_fast_config():
    cfg = dataclasses.replace(FAST, epochs=3, subsample=None)
    seen = []
    r = train(TINY, cfg, callback=lambda e, m: seen.append((e, m["val_accuracy"])))
    assert r.accuracy >= 0.9, r.history
    assert r.epochs_run == 3 and [e for e, _ in seen] == [1, 2, 3]
    assert [a for _, a in seen] == [h["val_accuracy"] for h in r.history]
    assert r.best_accuracy == max(h["val_accuracy"] for h in r.history)
    assert r.history[-1]["train_loss"] < r.history[0]["train_loss"]
    assert r.images_per_s > 0 and r.train_s > 0 and r.device == "cpu" and not r.stopped_early
    assert r.params == sum(p.numel() for p in r.model.parameters())
    assert r.genotype == proxy_genotype(TINY, 16) and r.genotype.resolution == 16  # the proxy, not the target
    json.dumps(r.to_dict())


def test_same_seed_same_run_other_seed_other_run():
    a, b = train(TINY, FAST), train(TINY, FAST)
    assert a.history[0]["train_loss"] == b.history[0]["train_loss"] and a.accuracy == b.accuracy
    assert all(torch.equal(p, q) for p, q in zip(a.model.state_dict().values(), b.model.state_dict().values(),
                                                 strict=True))
    c = train(TINY, dataclasses.replace(FAST, seed=1))
    assert c.history[0]["train_loss"] != a.history[0]["train_loss"]


@pytest.mark.parametrize("how", ["return", "raise"])
def test_callback_stops_early(how):
    cfg = dataclasses.replace(FAST, epochs=4)

    def cb(epoch, metrics):
        if epoch == 2:
            if how == "raise":
                raise StopTrial
            return True
        return None

    r = train(TINY, cfg, callback=cb)
    assert r.epochs_run == 2 and r.stopped_early and len(r.history) == 2


def test_lr_schedule_warmup_then_cosine():
    assert lr_factor(0, 10, 110) == pytest.approx(0.1)
    assert lr_factor(9, 10, 110) == pytest.approx(1.0)
    assert lr_factor(10, 10, 110) == pytest.approx(1.0)
    assert lr_factor(60, 10, 110) == pytest.approx(0.5)  # half-way through the cosine
    assert lr_factor(110, 10, 110) == pytest.approx(0.0, abs=1e-12)
    assert lr_factor(110, 10, 110, floor=0.1) == pytest.approx(0.1)
    assert lr_factor(0, 0, 10) == pytest.approx(1.0)
    values = [lr_factor(s, 10, 110) for s in range(10, 111)]
    assert all(x >= y for x, y in zip(values, values[1:], strict=False))


def test_lr_in_history_follows_schedule():
    cfg = dataclasses.replace(FAST, epochs=2, warmup_epochs=0.5, lr=0.01)
    r = train(TINY, cfg)
    steps = 256 // 32
    want = 0.01 * lr_factor(steps - 1, steps // 2, 2 * steps)
    assert r.history[0]["lr"] == pytest.approx(want)
    assert r.history[1]["lr"] == pytest.approx(0.01 * lr_factor(2 * steps - 1, steps // 2, 2 * steps))
    assert 0 < r.history[1]["lr"] < 0.01 * 0.05  # the cosine ends near zero


def test_weight_decay_skips_bn_and_biases():
    from nas.model import build

    model = build(TINY, 10)
    decay, no_decay = param_groups(model, 0.05)
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0
    assert all(p.ndim > 1 for p in decay["params"]) and all(p.ndim <= 1 for p in no_decay["params"])
    bn = [m.weight for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bn and all(any(p is q for q in no_decay["params"]) for p in bn)
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))


def test_recalibrate_bn_matches_data_statistics():
    bn = torch.nn.Sequential(torch.nn.BatchNorm2d(3))
    x = torch.randn(64, 3, 4, 4) * 3 + 2
    recalibrate_bn(bn, x, 16)
    assert torch.allclose(bn[0].running_mean, x.mean(dim=(0, 2, 3)), atol=1e-5)
    assert torch.allclose(bn[0].running_var, x.var(dim=(0, 2, 3)), rtol=0.1)
    assert bn[0].momentum == 0.1


def test_trains_on_npz_path(tmp_path):
    rng = np.random.default_rng(0)
    # Two classes a linear model could split: bright vs dark images.
    y = np.arange(64) % 2
    x = (rng.integers(0, 100, (64, 12, 12, 3)) + 150 * y[:, None, None, None]).astype(np.uint8)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    cfg = dataclasses.replace(FAST, dataset="npz", path=str(tmp_path / "d.npz"), epochs=2, subsample=None,
                              batch_size=16, lr=0.01)
    r = train(TINY, cfg)
    assert r.history and 0 <= r.accuracy <= 1
    assert r.model.head is not None and r.model(torch.zeros(1, 3, 16, 16)).shape == (1, 2)


@pytest.mark.parametrize("change, match", [
    ({"epochs": 0}, "proxy.epochs"), ({"lr": -1.0}, "proxy.lr"), ({"batch_size": 1}, "proxy.batch_size"),
    ({"device": "tpu"}, "device"), ({"dataset": "mnist"}, "unknown data set"),
])
def test_bad_config(change, match):
    with pytest.raises(InputError, match=match):
        train(TINY, dataclasses.replace(FAST, **change))


def test_data_at_other_resolution_is_refused():
    from nas.data import load

    with pytest.raises(InputError, match="resolution"):
        train(TINY, FAST, data=load("digits", resolution=8))


def test_test_accuracy_only_when_asked():
    from nas.train import evaluate_test, load_data

    plain = train(TINY, FAST)
    assert plain.test_accuracy is None and plain.to_dict()["test_accuracy"] is None
    r = train(TINY, FAST, test=True)
    assert r.accuracy == plain.accuracy  # asking for the test split changes nothing the search sees
    assert 0 <= r.test_accuracy <= 1 and r.to_dict()["test_accuracy"] == r.test_accuracy
    assert evaluate_test(r.model, FAST) == r.test_accuracy  # the same images and normalisation, later
    assert len(load_data(FAST, test=True).y_test) == 360  # a split of its own, not the validation images
    with pytest.raises(ValueError, match="test split"):
        train(TINY, FAST, data=load_data(FAST), test=True)


@pytest.mark.gpu
@pytest.mark.parametrize("amp, channels_last", [(True, True), (False, False)])
def test_cuda_amp_channels_last(amp, channels_last):
    from nas.train import amp_context

    dev = torch.device("cuda")
    dtype = amp_context(dev, amp)[1]
    assert dtype == (None if not amp else torch.bfloat16 if torch.cuda.get_device_capability()[0] >= 8
                     else torch.float16)
    cfg = dataclasses.replace(FAST, device="cuda", epochs=3, subsample=None, amp=amp, channels_last=channels_last)
    r = train(TINY, cfg)
    assert r.device.startswith("cuda") and all(math.isfinite(h["train_loss"]) for h in r.history)
    assert r.accuracy >= 0.8, r.history  # the CPU run of this recipe reaches 0.9
    assert all(p.dtype == torch.float32 and p.is_cuda for p in r.model.parameters())
    if channels_last:
        conv = next(m for m in r.model.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size[0] > 1)
        assert conv.weight.is_contiguous(memory_format=torch.channels_last)


def test_cli_train_json_and_save(tmp_path):
    from typer.testing import CliRunner

    from nas.cli import app

    arch = tmp_path / "tiny.yaml"
    arch.write_text(TINY_YAML)
    out = tmp_path / "run"
    res = CliRunner().invoke(app, ["train", "--arch", str(arch), "--data", "digits", "--epochs", "1",
                                   "--resolution", "16", "--batch-size", "32", "--device", "cpu", "--json",
                                   "--save", str(out), "--subsample", "128"])
    assert res.exit_code == 0, res.output
    info = json.loads(res.stdout)
    assert 0 <= info["accuracy"] <= 1 and info["epochs"] == 1 and info["train_s"] > 0 and info["images_per_s"] > 0
    from nas.cost.macs import count
    from nas.genotype import load
    from nas.model import build

    assert info["params"] == count(TINY).params and info["macs"] == count(TINY).macs  # costs are the target's
    proxy = load(out / "genotype.yaml")
    net = build(proxy, 10)
    net.load_state_dict(torch.load(out / "weights.pt", weights_only=True))
    assert sum(p.numel() for p in net.parameters()) == info["params_proxy"]
    assert json.loads((out / "train.json").read_text())["accuracy"] == info["accuracy"]


def test_cli_train_with_a_spaces_proxy_recipe(tmp_path):
    """--space: the space's proxy (resolution, width, epochs, batch, data set) and its target's classes and costs,
    as its trials train and are costed; a flag still overrides one setting."""
    from typer.testing import CliRunner

    from nas.cli import app
    from nas.search import budgets
    from nas.space import load_space

    arch = tmp_path / "tiny.yaml"
    arch.write_text(TINY_YAML)
    space = load_space("tiny.yaml")
    res = CliRunner().invoke(app, ["train", "--arch", str(arch), "--space", "tiny.yaml", "--subsample", "128",
                                   "--json"])
    assert res.exit_code == 0, res.output
    info = json.loads(res.stdout)
    px = space.proxy
    assert info["space"] == "tiny" and (info["resolution"], info["width"], info["dataset"]) == (
        px.resolution, px.width, px.dataset)
    assert info["epochs"] == px.epochs and info["proxy"]["batch_size"] == px.batch_size
    assert info["proxy"]["lr"] == px.lr and info["proxy"]["optimizer"] == px.optimizer
    from nas.genotype import load

    c = budgets.target_cost(space, load(arch))
    assert (info["macs"], info["params"]) == (c.macs, c.params)  # the space's target: 32 px, 10 classes
    res = CliRunner().invoke(app, ["train", "--arch", str(arch), "--space", "tiny.yaml", "--subsample", "128",
                                   "--resolution", "12", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["resolution"] == 12


@pytest.mark.parametrize("args, match", [
    (["--arch", "no_such_arch.yaml"], "no_such_arch.yaml: file not found"),
    (["--arch", "{arch}", "--data", "{tmp}/missing"], "is neither a built-in data set"),
    (["--arch", "{arch}", "--data", "{tmp}/bad.npz", "--dataset-format", "npz"], "y: array missing"),
    (["--arch", "{arch}", "--data", "{tmp}", "--dataset-format", "cifar10"], "no data_batch_1..5"),
    (["--arch", "{arch}", "--optimizer", "rmsprop"], "--optimizer"),
])
def test_cli_train_bad_input_exits_2(tmp_path, monkeypatch, capsys, args, match):
    from nas import cli

    arch = tmp_path / "tiny.yaml"
    arch.write_text(TINY_YAML)
    np.savez(tmp_path / "bad.npz", x=np.zeros((4, 8, 8, 3), np.uint8))
    args = [a.format(arch=arch, tmp=tmp_path) for a in args]
    monkeypatch.setattr(sys, "argv", ["nas", "train", *args, "--epochs", "1", "--save", str(tmp_path / "out")])
    with pytest.raises(SystemExit) as e:
        cli.main()
    err = capsys.readouterr().err
    assert e.value.code == 2, err
    assert match in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()  # nothing written


def test_cli_entry_point_exit_status(tmp_path):
    # The installed console script, end to end, once.
    p = subprocess.run([sys.executable, "-m", "nas.cli", "train", "--arch", str(tmp_path / "none.yaml")],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 2 and "none.yaml: file not found" in p.stderr and "Traceback" not in p.stderr
