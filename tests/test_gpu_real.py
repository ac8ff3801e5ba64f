"""On a real GPU only (``-m gpu``; skipped where torch sees no CUDA device): a default ``nas search`` packs real
proxy trainings on the GPU, and every trial says which device it trained on."""

from __future__ import annotations

import json

import pytest
import torch

from nas.search.driver import SearchOptions, run_search
from nas.search.events import SearchListener

pytestmark = pytest.mark.gpu


class Messages(SearchListener):
    def __init__(self) -> None:
        self.lines: list[str] = []

    def message(self, text: str) -> None:
        self.lines.append(text)


def test_a_default_search_trains_packed_trials_on_the_gpu(tmp_path):
    import ray

    if ray.is_initialized():
        pytest.skip("needs to start its own Ray, which detects the GPU")
    msgs = Messages()
    s = run_search(SearchOptions(space="tiny.yaml", trials=4, out=tmp_path, wandb="disabled"), [msgs])
    trained = [r for r in s.records if r.trained]
    assert trained and all(r.status == "complete" for r in trained), [(r.number, r.error) for r in s.records]
    name = torch.cuda.get_device_name(0)
    assert {r.device for r in trained} == {f"cuda:0 ({name})"}
    assert not [m for m in msgs.lines if "torch sees" in m or "proxy.device" in m], msgs.lines
    run = json.loads((s.study_dir / "runs.json").read_text())["runs"][-1]
    assert run["search"]["gpus_per_trial"] == 0.25 and run["cluster"]["gpus"] >= 1
    assert run["search"]["concurrency"] >= 1 and "gpus_per_trial" in run["auto"]
