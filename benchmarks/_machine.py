"""What machine a benchmark ran on; every benchmark prints this first."""

from __future__ import annotations

import os
import platform
import time


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def describe() -> dict:
    import torch

    d = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "gpu": None,
    }
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        d.update(gpu=props.name, gpus=torch.cuda.device_count(), gpu_memory_gib=round(props.total_memory / 2**30, 1),
                 cuda=torch.version.cuda, gpu_capability=f"{props.major}.{props.minor}")
    return d


def gpu_line(d: dict) -> str:
    """``GPU NVIDIA H200 x1 (139.8 GiB, sm 9.0, CUDA 12.8)`` or ``no GPU``."""
    if not d.get("gpu"):
        return "no GPU"
    return (f"GPU {d['gpu']} x{d['gpus']} ({d['gpu_memory_gib']:g} GiB, sm {d['gpu_capability']}, "
            f"CUDA {d['cuda']})")


def banner(title: str) -> dict:
    d = describe()
    gpu = f", {gpu_line(d)}"
    print(f"== {title} ==")
    print(f"machine: {d['cpu']}, {d['cores']} cores{gpu}; torch {d['torch']} ({d['torch_threads']} threads); "
          f"python {d['python']}; {d['date']}")
    return d
