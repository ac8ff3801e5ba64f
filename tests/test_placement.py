"""Where trials run, without Ray or a GPU: automatic GPU shares and concurrency, impossible requests, the run
log, and the device a trial picks (torch's CUDA queries mocked)."""

from __future__ import annotations

import json

import pytest
import torch

from nas.errors import InputError, OptionError
from nas.results.record import TrialRecord
from nas.search import resources as rs
from nas.search.devices import trial_device
from nas.space import load_space

TINY = load_space("tiny.yaml")


def _settings(**changes):
    return TINY.search.model_copy(update=changes)


def _proxy(**changes):
    return TINY.proxy.__class__(**{**TINY.proxy.__dict__, **changes})


# -- automatic shares and concurrency --------------------------------------------------------------------------


def test_the_gpu_share_follows_the_proxys_size():
    assert rs.gpu_share(TINY.proxy) == rs.gpu_share(load_space("mixnet.yaml").proxy) == 0.25
    assert rs.gpu_share(_proxy(resolution=32, width=1.0, batch_size=128)) == 0.25
    assert rs.gpu_share(_proxy(resolution=64, width=1.0, batch_size=128)) == 0.5
    assert rs.gpu_share(_proxy(resolution=64, width=1.0, batch_size=256)) == 1.0


def test_trials_that_fit_count_per_node():
    nodes = (rs.Node(16, 2), rs.Node(4, 1), rs.Node(8, 0))
    assert rs.trials_that_fit(nodes, 1, 0.25) == 8 + 4 + 0  # GPUs bound the first node, CPUs the second
    assert rs.trials_that_fit(nodes, 2, 0) == 8 + 2 + 4
    assert rs.trials_that_fit((rs.Node(3, 1),), 1, 1 / 3) == 3  # no rounding loss


def test_gpus_are_used_by_default_and_fill_the_gpus():
    p = rs.place(_settings(), TINY.proxy, rs.Cluster((rs.Node(32, 2),)))
    assert (p.settings.gpus_per_trial, p.settings.concurrency) == (0.25, 8)
    assert p.auto == ("gpus_per_trial", "concurrency") and p.warning is None
    assert p.describe() == ("trials: 8 at a time, each 1 CPU and 0.25 GPU (gpus_per_trial and concurrency chosen "
                            "for the local Ray: 32 CPUs, 2 GPUs)")
    p = rs.place(_settings(), TINY.proxy, rs.Cluster((rs.Node(4, 2),)))  # CPUs bound the packing
    assert (p.settings.gpus_per_trial, p.settings.concurrency) == (0.25, 4)


def test_without_gpus_trials_train_on_cpu_and_fill_the_cpus():
    p = rs.place(_settings(), TINY.proxy, rs.Cluster((rs.Node(2, 0),)))
    assert (p.settings.gpus_per_trial, p.settings.concurrency) == (0.0, 2)
    assert "no GPU (CPU training)" in p.describe()


def test_fixed_values_are_kept_and_zero_gpus_means_cpu():
    p = rs.place(_settings(gpus_per_trial=0.0), TINY.proxy, rs.Cluster((rs.Node(8, 4),)))
    assert (p.settings.gpus_per_trial, p.settings.concurrency, p.auto) == (0.0, 8, ("concurrency",))
    p = rs.place(_settings(concurrency=3, gpus_per_trial=0.5), TINY.proxy, rs.Cluster((rs.Node(8, 4),)))
    assert (p.settings.gpus_per_trial, p.settings.concurrency, p.auto) == (0.5, 3, ())
    assert "chosen" not in p.describe()


def test_a_request_no_local_node_holds_is_an_error_naming_the_field():
    with pytest.raises(OptionError) as e:
        rs.place(_settings(gpus_per_trial=0.5), TINY.proxy, rs.Cluster((rs.Node(2, 0),)))
    assert e.value.field == "gpus_per_trial"
    assert e.value.problem == ("a trial asks for 0.5 GPU and 1 CPU, but the local Ray has no GPU (2 CPUs, 0 GPUs; "
                               "gpus_per_trial 0 trains on CPU)")
    with pytest.raises(OptionError) as e:
        rs.place(_settings(cpus_per_trial=4), TINY.proxy, rs.Cluster((rs.Node(2, 1), rs.Node(3, 0))))
    assert e.value.field == "cpus_per_trial" and "no node of the local Ray has that much" in e.value.problem
    with pytest.raises(OptionError, match="whole GPUs"):
        rs.check_request(_settings(gpus_per_trial=1.5))
    rs.check_request(_settings(gpus_per_trial=2.0))


def test_a_joined_cluster_without_the_node_warns_instead():
    p = rs.place(_settings(gpus_per_trial=1.0), TINY.proxy, rs.Cluster((rs.Node(0, 0),), local=False))
    assert p.settings.concurrency == 1
    assert p.warning == ("a trial asks for 1 GPU and 1 CPU, but the Ray cluster has no GPU (1 node, 0 CPUs, 0 GPUs; "
                         "gpus_per_trial 0 trains on CPU): trials wait until such a node joins (Ctrl-C stops the "
                         "search)")


def test_cost_only_places_nothing():
    p = rs.cost_only(_settings())
    assert (p.settings.concurrency, p.settings.gpus_per_trial, p.cluster) == (1, 0.0, None)


# -- the run log ------------------------------------------------------------------------------------------------


def test_runs_are_appended_and_described(tmp_path):
    p = rs.place(_settings(), TINY.proxy, rs.Cluster((rs.Node(4, 2),)))
    first = rs.run_entry(p, "train", None, {"gpus_per_trial": None, "scheduler": "asha"})
    assert rs.record_run(tmp_path, first) == [first]
    assert first["overrides"] == {"scheduler": "asha"} and first["auto"] == ["gpus_per_trial", "concurrency"]
    assert first["cluster"] == {"local": True, "nodes": 1, "cpus": 4, "gpus": 2}
    second = rs.run_entry(rs.cost_only(_settings()), "cost", "10.0.0.1:6379", {})
    assert rs.record_run(tmp_path, second) == [first, second]
    assert json.loads((tmp_path / "runs.json").read_text())["runs"][1]["objective"] == "cost"
    assert rs.describe_run(first).endswith(": 4 at a time, 1 CPU and 0.25 GPU per trial, sampler nsga2, "
                                           "scheduler none")
    assert rs.describe_run(second).endswith(": cost only")


def test_a_corrupt_run_log_is_one_line(tmp_path):
    (tmp_path / "runs.json").write_text("{")
    with pytest.raises(InputError, match=r"runs.json: not a run log") as e:
        rs.read_runs(tmp_path)
    assert "\n" not in str(e.value)
    (tmp_path / "runs.json").write_text("[]")
    with pytest.raises(InputError, match="expected a list of runs"):
        rs.read_runs(tmp_path)


# -- the trial's device ---------------------------------------------------------------------------------------


@pytest.fixture
def gpu_torch(monkeypatch):
    """torch as on a node with one visible H200 (the CUDA queries trial_device makes, mocked)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=None: "NVIDIA H200")
    monkeypatch.setattr(torch.version, "cuda", "12.8")


@pytest.fixture
def cpu_torch(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.version, "cuda", None)


def test_a_trial_given_a_gpu_trains_on_it(gpu_torch):
    d = trial_device("auto", 0.25)
    assert (d.device, d.label, d.warning) == ("cuda", "cuda:0 (NVIDIA H200)", None)


def test_a_trial_given_a_gpu_torch_cannot_see_says_why(cpu_torch, monkeypatch):
    d = trial_device("auto", 0.25, env={})
    assert d.device == "cpu" and d.warning == d.label
    assert d.label == f"cpu (asked for 0.25 GPU, torch sees none: this torch is CPU-only ({torch.__version__}))"
    monkeypatch.setattr(torch.version, "cuda", "12.8")  # a CUDA torch, but Ray left the trial no device
    assert trial_device("auto", 1.0, env={"CUDA_VISIBLE_DEVICES": ""}).label == \
        "cpu (asked for 1 GPU, torch sees none: CUDA_VISIBLE_DEVICES is empty)"
    assert trial_device("auto", 1.0, env={"CUDA_VISIBLE_DEVICES": "0"}).label.endswith(
        "torch.cuda.is_available() is False)")


def test_a_trial_given_no_gpu_stays_on_cpu_even_where_torch_sees_one(gpu_torch):
    assert trial_device("auto", 0.0) == trial_device("cpu", 0.0)
    assert trial_device("auto", 0.0).label == "cpu"  # an explicit 0: what the user asked for, no warning
    d = trial_device("auto", 0.0, gpus_auto=True)  # chosen because Ray reported no GPU on a node that has one
    assert d.device == "cpu" and "torch sees 1 GPU on this node but Ray offers none" in d.warning
    d = trial_device("cuda", 0.0)  # the proxy insists on CUDA: it gets it, and the mismatch is said
    assert d.device == "cuda" and d.label == ("cuda:0 (NVIDIA H200; proxy.device is cuda but Ray gave the trial "
                                              "no GPU)") and d.warning == d.label
    d = trial_device("cpu", 0.5)
    assert d.device == "cpu" and d.warning == "cpu (proxy.device is cpu; the trial's 0.5 GPU is unused)"


def test_outside_the_driver_the_proxy_decides(gpu_torch):
    assert trial_device("auto", None).label == "cuda:0 (NVIDIA H200)"
    assert trial_device("cpu", None) == trial_device("cpu", 0.0)


def test_the_trial_reports_its_device_into_the_record(cpu_torch):
    from nas.search.objective import evaluate, trial_config
    from nas.train import TrainConfig

    torch.set_num_threads(1)
    proxy = TrainConfig(resolution=8, width=0.5, subsample=64, epochs=1, batch_size=32, precise_bn=0)
    cfg = {**trial_config(0, TINY.sample(0), proxy, 10, 1), "gpus": 0.25, "gpus_auto": True}
    reports: list[dict] = []
    last = evaluate(cfg, reports.append)
    assert last["epoch"] == 1 and "error" not in last and reports[-1] == last
    assert last["device"].startswith("cpu (asked for 0.25 GPU, torch sees none") and \
        last["device_warning"] == last["device"]
    rec = TrialRecord.costed(0, TINY.sample(0), macs=1, params=1, latency_ms=None, violations={}, seed=0)
    done = rec.with_result(last, planned_epochs=1)
    assert done.device == last["device"] and done.to_dict()["device"] == last["device"]
    assert rec.answered_from(done).device == done.device
