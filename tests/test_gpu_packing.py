"""GPU packing without a GPU: a local Ray with 2 logical GPUs and 4 CPUs, ``nas search`` with its default
settings on the shipped tiny.yaml; then an impossible request through the CLI on this CPU-only machine.

The trainable is injected: it records when it ran and what Ray assigned it, and reports the device the real
trainable would pick (:func:`nas.search.devices.trial_device`), so the packing, the run log, the resume message
and the once-only device warning are all checked in a few seconds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from nas.search.driver import SearchOptions, run_search
from nas.search.events import SearchListener
from nas.search.searcher import tier_rejected

REPO = Path(__file__).resolve().parent.parent
SLEEP_S = 1.5


@pytest.fixture(scope="module")
def gpu_ray():
    import ray

    from nas.search import tuning

    if ray.is_initialized():
        pytest.skip("a Ray is already running in this process; this module needs its own with logical GPUs")
    tuning.start_ray(num_cpus=4, num_gpus=2)
    yield
    ray.shutdown()


class Messages(SearchListener):
    def __init__(self) -> None:
        self.lines: list[str] = []

    def message(self, text: str) -> None:
        self.lines.append(text)


def _recording_trainable(out: Path):
    def trainable(config: dict) -> None:
        """Records its start/end and assigned resources, sleeps, reports once (pickled by value: workers cannot
        import test modules)."""
        import time

        import ray
        from ray import tune

        from nas.search.devices import trial_device

        t0 = time.time()
        time.sleep(SLEEP_S)
        placed = trial_device(config["proxy"]["device"], config.get("gpus"), bool(config.get("gpus_auto")))
        (out / f"{config['number']}.json").write_text(json.dumps({
            "start": t0, "end": time.time(), "gpus": config.get("gpus"),
            "resources": ray.get_runtime_context().get_assigned_resources()}))
        tune.report({"val_accuracy": 0.5, "epoch": config["epochs"], "final": True, "node": "test",
                     "device": placed.label, **({"device_warning": placed.warning} if placed.warning else {})})

    return trainable


def _most_at_once(spans: list[tuple[float, float]]) -> int:
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])  # an end before a start at a tie
    running = most = 0
    for _, step in events:
        running += step
        most = max(most, running)
    return most


def test_eight_trials_pack_four_at_a_time_on_quarter_gpus_by_default(gpu_ray, tmp_path):
    seen = tmp_path / "seen"
    seen.mkdir()
    msgs = Messages()
    s = run_search(SearchOptions(space="tiny.yaml", trials=8, out=tmp_path, wandb="disabled"), [msgs],
                   trainable=_recording_trainable(seen))
    runs = [json.loads(p.read_text()) for p in seen.iterdir()]
    counted = [r for r in s.records if not tier_rejected(r.to_dict())]  # tiny.yaml spreads over its tiers
    assert len(runs) == 8 and len(counted) == 8 and all(r.trained for r in counted)
    assert all(r["resources"] == {"CPU": 1.0, "GPU": 0.25} and r["gpus"] == 0.25 for r in runs), runs
    assert _most_at_once([(r["start"], r["end"]) for r in runs]) == 4
    log = json.loads((s.study_dir / "runs.json").read_text())["runs"]
    assert len(log) == 1 and log[0]["auto"] == ["gpus_per_trial", "concurrency"]
    assert (log[0]["search"]["gpus_per_trial"], log[0]["search"]["concurrency"]) == (0.25, 4)
    assert log[0]["cluster"] == {"local": True, "nodes": 1, "cpus": 4.0, "gpus": 2.0}
    assert ("trials: 4 at a time, each 1 CPU and 0.25 GPU (gpus_per_trial and concurrency chosen for the local "
            "Ray: 4 CPUs, 2 GPUs)") in msgs.lines
    # This torch sees no GPU: every trial says so in its record, the search's output says it once.
    if not torch.cuda.is_available():
        label = f"cpu (asked for 0.25 GPU, torch sees none: this torch is CPU-only ({torch.__version__}))"
        assert {r.device for r in counted} == {label}
        assert [m for m in msgs.lines if "torch sees none" in m] == [msg for msg in msgs.lines if label in msg]
        assert len([m for m in msgs.lines if "torch sees none" in m]) == 1

    # Resumed with a flag: the new setting is used and recorded, and the earlier run is told.
    again = Messages()
    s2 = run_search(SearchOptions(space="tiny.yaml", trials=10, out=tmp_path, wandb="disabled", gpus_per_trial=0.5,
                                  scheduler="asha"), [again], trainable=_recording_trainable(seen))
    assert len([r for r in s2.records if not tier_rejected(r.to_dict())]) == 10
    log = json.loads((s.study_dir / "runs.json").read_text())["runs"]
    assert len(log) == 2 and log[1]["overrides"] == {"gpus_per_trial": 0.5, "scheduler": "asha"}
    assert (log[1]["search"]["gpus_per_trial"], log[1]["search"]["concurrency"], log[1]["auto"]) == \
        (0.5, 4, ["concurrency"])
    assert again.lines[0].startswith("this study ran 1 time before; the last: ")
    assert again.lines[0].endswith(": 4 at a time, 1 CPU and 0.25 GPU per trial, sampler nsga2, scheduler none")
    first = {r.number for r in s.records}
    late = [json.loads((seen / f"{r.number}.json").read_text()) for r in s2.records
            if r.number not in first and not tier_rejected(r.to_dict())]
    assert len(late) == 2
    assert all(r["resources"] == {"CPU": 1.0, "GPU": 0.5} for r in late)


def test_more_gpu_than_the_machine_has_is_one_line_and_exit_2_not_a_hang(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("RAY_ADDRESS", None)
    r = subprocess.run([sys.executable, "-m", "nas.cli", "search", "--space", "tiny.yaml", "--gpus-per-trial", "0.5",
                        "--cpus-per-trial", "1", "--out", str(tmp_path / "results")], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=180)
    assert r.returncode == 2, r.stdout + r.stderr
    assert r.stderr.splitlines() == [
        "error: --gpus-per-trial: a trial asks for 0.5 GPU and 1 CPU, but the local Ray has no GPU "
        f"({os.cpu_count()} CPUs, 0 GPUs; gpus_per_trial 0 trains on CPU)"], r.stderr
    assert not (tmp_path / "results").exists()  # refused before the study directory was made
