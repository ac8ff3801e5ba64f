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
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    return d


def banner(title: str) -> dict:
    d = describe()
    gpu = f", GPU {d['gpu']}" if d["gpu"] else ", no GPU"
    print(f"== {title} ==")
    print(f"machine: {d['cpu']}, {d['cores']} cores{gpu}; torch {d['torch']} ({d['torch_threads']} threads); "
          f"python {d['python']}; {d['date']}")
    return d
