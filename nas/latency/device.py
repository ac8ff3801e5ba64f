"""The machine a latency belongs to: target presets usable here, and the device a table's figures depend on."""

from __future__ import annotations

import contextlib
import functools
import os
import platform
from collections.abc import Mapping
from typing import Any

from nas.config import TARGETS, Target
from nas.cost.table import LatencyTable, find_target, fingerprint
from nas.errors import InputError


def get_target(target: str | Target) -> Target:
    """A preset by name or alias (or the target itself); an unknown name, or CUDA on a machine without it,
    is an InputError."""
    t = find_target(target)
    if t is None:
        raise InputError(f"--target: unknown target {target!r} (known: {', '.join(TARGETS)})")
    if t.backend == "cuda" and not isinstance(target, Target):
        import torch

        if not torch.cuda.is_available():
            raise InputError(f"--target: {target}: no CUDA device on this machine")
    return t


def _cpu_model() -> str:
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def device_info(target: Target) -> dict[str, Any]:
    """What a table's figures depend on besides the target: CPU/GPU, cores, library versions."""
    return dict(_device_info(target))


@functools.lru_cache(maxsize=16)
def _device_info(target: Target) -> dict[str, Any]:
    # Read once per process: every load of this machine's table compares it.
    import torch

    d: dict[str, Any] = {"cpu": _cpu_model(), "cores": os.cpu_count(), "machine": platform.machine(),
                         "torch": torch.__version__.split("+")[0]}
    if target.backend == "onnxruntime-cpu":
        import onnxruntime

        d["onnxruntime"] = onnxruntime.__version__
    if target.backend == "cuda":
        d["gpu"] = torch.cuda.get_device_name(0)
        d["cuda"] = torch.version.cuda
    return d


def device_hash(target: Target, device: Mapping[str, Any] | None = None) -> str:
    """Short fingerprint of (target, device), this machine's when ``device`` is not given."""
    return fingerprint(target, device_info(target) if device is None else device)


def on_this_machine(table: LatencyTable) -> bool:
    """Whether parts measured here would belong in ``table`` (same target, same device)."""
    try:
        return device_info(table.target) == table.device
    except Exception:  # e.g. a CUDA table read where torch has no CUDA
        return False
