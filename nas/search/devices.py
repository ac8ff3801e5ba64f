"""Which device a trial trains on, decided inside the trial from what Ray gave it and what torch sees.

Ray schedules GPUs but does not hide them from a trial that asked for none (Ray 2.x leaves
``CUDA_VISIBLE_DEVICES`` alone when no GPU is assigned), and a trial that asked for one may still not reach it
(a CPU-only torch on a GPU node, an empty ``CUDA_VISIBLE_DEVICES``, a driver problem). :func:`trial_device`
makes the choice explicit: a trial trains on CUDA exactly when it was given a GPU (or its proxy names a CUDA
device), and every mismatch is a ``warning`` that the trial reports and the driver passes on once. The
``label`` is the trial record's ``device`` field: ``"cuda:0 (NVIDIA H200)"``, ``"cpu"``,
``"cpu (asked for 0.25 GPU, torch sees none: this torch is CPU-only (2.13.0+cpu))"``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class TrialDevice:
    device: str  # what the trainer gets as TrainConfig.device
    label: str  # the record's device field
    warning: str | None = None  # a mismatch worth telling the person watching the search


def trial_device(proxy_device: str = "auto", gpus: float | None = None, gpus_auto: bool = False,
                 env: Mapping[str, str] | None = None) -> TrialDevice:
    """The device of a trial given ``gpus`` GPUs by Ray (None: not run by the search driver, the proxy decides).

    ``gpus_auto``: the driver chose ``gpus``, so zero GPUs while torch sees some means Ray was not told about
    this node's GPUs.
    """
    import torch

    env = os.environ if env is None else env
    wants_cuda = proxy_device.startswith("cuda")
    if gpus is None or (wants_cuda and gpus > 0) or (proxy_device == "cpu" and not gpus):
        return _as_asked(proxy_device)
    if gpus > 0:
        if proxy_device == "cpu":
            label = f"cpu (proxy.device is cpu; the trial's {gpus:g} GPU is unused)"
            return TrialDevice("cpu", label, label)
        if torch.cuda.is_available():
            return _cuda("cuda")
        label = f"cpu (asked for {gpus:g} GPU, torch sees none: {_why_no_cuda(env)})"
        return TrialDevice("cpu", label, label)
    if wants_cuda:  # a GPU Ray did not give: other trials may be packed on it too
        if not torch.cuda.is_available():
            return _as_asked(proxy_device)  # the trainer's own error says CUDA is missing
        cuda = _cuda(proxy_device)
        label = f"{cuda.label[:-1]}; proxy.device is {proxy_device} but Ray gave the trial no GPU)"
        return TrialDevice(cuda.device, label, label)
    if gpus_auto and torch.cuda.is_available():
        n = torch.cuda.device_count()
        label = (f"cpu (torch sees {n} GPU{'s' if n > 1 else ''} on this node but Ray offers none: "
                 "start its Ray with --num-gpus, or pass --gpus-per-trial)")
        return TrialDevice("cpu", label, label)
    return TrialDevice("cpu", "cpu")


def _as_asked(proxy_device: str) -> TrialDevice:
    import torch

    if proxy_device == "auto":
        proxy_device = "cuda" if torch.cuda.is_available() else "cpu"
    if proxy_device.startswith("cuda") and torch.cuda.is_available():
        return _cuda(proxy_device)
    return TrialDevice(proxy_device, proxy_device)


def _cuda(name: str) -> TrialDevice:
    import torch

    index = torch.device(name).index
    index = torch.cuda.current_device() if index is None else index
    return TrialDevice(name, f"cuda:{index} ({torch.cuda.get_device_name(index)})")


def _why_no_cuda(env: Mapping[str, str]) -> str:
    import torch

    if torch.version.cuda is None:
        return f"this torch is CPU-only ({torch.__version__})"
    if env.get("CUDA_VISIBLE_DEVICES") == "":
        return "CUDA_VISIBLE_DEVICES is empty"
    return "torch.cuda.is_available() is False"
