"""Local trials paused while the driver times latency parts, so that the timing sees a quiet machine.

The search times the latency parts a proposal needs in the driver
(:mod:`nas.latency.cache`) while trials train. On a small machine those trials
hold every core, and a timed network is preempted every few milliseconds and
finds its caches cold each time: measured here (2 cores, a 10-trial search
of ``mixnet.yaml``), the 10 networks timed while its trials trained came out
0.86-1.99x (median 1.2x) their latency timed again on the quiet machine, the
probe correction (:mod:`nas.latency.measure`) notwithstanding, and 7 of 10
proposals looked over the latency budget. So
the driver stops the trials of the local Ray it started (``SIGSTOP`` to its
``ray::`` worker processes) for the second or so a network takes to time, and
continues them at once (``SIGCONT``, also when the timing fails). Trials on
other machines of a cluster are not this machine's load and are left alone.
Linux only (``/proc``); elsewhere nothing is paused.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rpartition(")")[2].split()[1])  # the name in parentheses may hold spaces
        kids.setdefault(ppid, []).append(int(d.name))
    return kids


def _title(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
    except OSError:
        return ""


def local_trial_processes(root: int | None = None) -> list[int]:
    """Ray worker processes (``ray::...``, not Ray's agents) descending from ``root`` (this process)."""
    if not Path("/proc/self/stat").exists():
        return []
    kids, out, todo = _children(), [], [root or os.getpid()]
    while todo:
        for pid in kids.get(todo.pop(), []):
            todo.append(pid)
            title = _title(pid)
            if title.startswith("ray::") and not title.endswith("Agent"):
                out.append(pid)
    return out


def _stopped(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] in ("T", "t")
    except OSError:
        return True  # gone


@contextlib.contextmanager
def trials_paused(settle_s: float = 0.2) -> Iterator[None]:
    """Stop this process's local Ray workers for the duration (see the module docstring); a signal is delivered
    asynchronously, so wait (at most ``settle_s``) until they have stopped."""
    stopped = []
    try:
        for pid in local_trial_processes():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGSTOP)
                stopped.append(pid)
        t_end = time.monotonic() + settle_s
        while stopped and not all(map(_stopped, stopped)) and time.monotonic() < t_end:
            time.sleep(0.002)
        yield
    finally:
        for pid in stopped:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGCONT)
