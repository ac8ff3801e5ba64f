"""The measurement protocol: when to stop warming up and repeating, the robust statistic, interference, pinning.

Torch-free; :mod:`nas.latency.measure` runs the passes and asks this module
what to do with them. Ideas taken, and where from:

* **Warm-up until stable** (pyperf's calibration of warm-ups, ``pyperf
  system tune`` docs; Google Benchmark's ``MinWarmUpTime``): windows of
  passes are run and thrown away until a window's median is within
  :attr:`Protocol.warmup_tol` of the previous one's (or
  :attr:`Protocol.warmup_max_s` has passed).
* **Repeats chosen by the noise observed** (Google Benchmark's
  repetitions and their mean/median/stddev aggregates; pyperf's runs of
  several values and its "the standard deviation is N% of the mean"
  warning): a measurement is a series of *windows* (a short burst of
  passes each); each window gives one robust figure, and windows are added
  until the 95% confidence interval of their mean is at most
  :attr:`Protocol.rel_ci` wide (relative to the mean), at least
  :attr:`Protocol.min_windows`, or :attr:`Protocol.cap_s` has passed (the
  measurement then says so: ``Measurement.capped``).
* **A robust statistic per window** (pyperf's docs on a noisy system
  discuss the minimum and the median; Google Benchmark reports both):
  within a window, a percentile (:data:`STAT_PCT`, the median) of the
  per-pass times. Which percentile repeats best was measured here, see
  :data:`STAT_PCT`.
* **Interference detected and the window re-measured** (pyperf's
  ``system tune`` / ``--affinity`` and its checks that the system is
  quiet): per window, the hypervisor's steal time (``/proc/stat``), the CPU
  time of this process's *other* threads (a search driver has Ray's),
  and the probe's drift from the table's unit; a window above a limit is
  thrown away and measured again, at most :attr:`Protocol.max_rejects`
  times per measurement; after that it is kept and the measurement
  flagged. The other cores' busy share is recorded (it cannot be
  controlled here, only reported: on a 2-vCPU VM a neighbour's load slows
  this core through shared caches and memory).
* **The timing thread pinned** (pyperf ``--affinity``, Google Benchmark's
  advice to pin with ``taskset``): :func:`pinned` binds the calling thread
  (not the process: trial processes and Ray's threads are left alone) to
  the least busy allowed core for the measurement, where
  ``os.sched_setaffinity`` exists.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

#: The per-window statistic: this percentile of a window's per-pass times (of probe ratios, with the probe clock).
#: Chosen by ``bench_latency --space mixnet.yaml --n 50``, which compares every statistic on the same windows of
#: its two measurements of 50 networks (share of networks whose two measurements agree within 5%), on this
#: machine (2-vCPU KVM VM, AMD EPYC), 2026-12-07, with the 25th percentile in use: the median of probe ratios
#: repeated best in four of five runs: idle 82% and 74% (25th percentile: 72%, 68%), under a search's load 86%
#: (74%), under other loads 60% against 64% and 44% against 42% (logs ``benchmarks/logs/bench_latency_mixnet_*``).
#: With one pass of a 224 px network at 10-20 ms and a probe pass after each, a window holds few passes, and the
#: median of their ratios is the steadiest figure of them; a lower percentile follows the few passes that ran
#: fastest, of the network or of the probe. (An earlier 16-network experiment at load average 0.7-1.4,
#: ``latency_statistic_2026-12-07.log``, had favoured the 25th percentile, 4.4% median difference against 8.6%.)
STAT_PCT = 50.0

#: Two-sided 95% Student t quantiles by degrees of freedom (1..30); above, the normal 1.96.
_T95 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
        2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


@dataclass(frozen=True)
class Protocol:
    """How a measurement is repeated (see the module docstring)."""

    rel_ci: float = 0.02  # full width of the 95% interval of the mean of window figures, relative to the mean
    min_windows: int = 3
    max_windows: int = 30
    window_s: float = 0.08  # a window: about this long, at least min_passes passes, at most max_passes
    min_passes: int = 3
    max_passes: int = 200
    cap_s: float = 4.0  # per measured item (per network), warm-up excluded
    warmup_tol: float = 0.02
    warmup_max_s: float = 0.5
    warmup_min: int = 2  # passes thrown away before the first warm-up window
    steal_max: float = 0.02  # share of the window's CPU time stolen by the hypervisor (all CPUs)
    others_max: float = 0.10  # CPU time of this process's other threads, as a share of the window's wall time
    drift_max: float = 0.15  # probe slower than the table's unit by more than this share
    max_rejects: int = 3  # windows thrown away per item before a noisy one is kept (and flagged)
    pin: bool = True

    def with_(self, **kw) -> Protocol:
        from dataclasses import replace

        return replace(self, **kw)


#: ``nas describe --measure``, ``bench_latency``'s whole networks, calibration: the defaults.
WHOLE = Protocol()
#: Parts timed on demand in a search (one network per proposal, which waits for it): fewer, shorter windows and a
#: tighter cap; the whole network's interval is still computed and kept with the entries.
ON_DEMAND = Protocol(rel_ci=0.04, min_windows=2, max_windows=6, window_s=0.05, cap_s=1.0, warmup_max_s=0.2,
                     max_rejects=1)


def stat(x: np.ndarray) -> float:
    """The robust figure of one window's per-pass values."""
    return float(np.percentile(x, STAT_PCT))


def t95(n: int) -> float:
    return _T95[n - 2] if 2 <= n <= len(_T95) + 1 else 1.96


def ci_rel(values: list[float] | np.ndarray) -> float:
    """Full width of the 95% interval of the mean of ``values``, relative to the mean (inf below 2 values)."""
    v = np.asarray(values, dtype=float)
    if len(v) < 2 or v.mean() <= 0:
        return math.inf
    return float(2 * t95(len(v)) * v.std(ddof=1) / math.sqrt(len(v)) / v.mean())


# -- interference ----------------------------------------------------------------------------------------------

def _cpu_times() -> dict[str, tuple[int, int, int]]:
    """Per CPU line of /proc/stat ("cpu", "cpu0", ...): (busy, total, steal) in ticks; {} where unreadable."""
    out = {}
    try:
        with open("/proc/stat") as f:
            for line in f:
                if not line.startswith("cpu"):
                    break
                name, *vals = line.split()
                v = [int(x) for x in vals[:8]] + [0] * (8 - len(vals[:8]))
                user, nice, system, idle, iowait, irq, softirq, steal = v
                total = sum(v)
                out[name] = (user + nice + system + irq + softirq + steal, total, steal)
    except (OSError, ValueError):
        return {}
    return out


_CLK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _others_cpu_s() -> float | None:
    """CPU seconds of this process's threads other than the calling one (None where /proc is missing): from
    ``schedstat`` (nanoseconds run), else ``stat``'s utime + stime (clock ticks, too coarse for short windows)."""
    me, total = str(threading.get_native_id()), 0.0
    try:
        tids = os.listdir("/proc/self/task")
    except OSError:
        return None
    for tid in tids:
        if tid == me:
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            try:
                with open(f"/proc/self/task/{tid}/schedstat") as f:
                    total += int(f.read().split()[0]) / 1e9
                continue
            except FileNotFoundError:
                pass
            with open(f"/proc/self/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / _CLK  # utime, stime (fields 14 and 15 of stat)
    return total


@dataclass
class Window:
    """What happened on the machine while one window ran."""

    wall_s: float
    steal: float  # share of all CPUs' time stolen by the hypervisor
    others: float  # this process's other threads' CPU time over the window's wall time
    neighbours: float  # busy share of the other CPUs (not this thread's core)
    drift: float = 0.0  # probe's window figure over the unit, minus 1 (probe clock only)

    def reasons(self, p: Protocol) -> list[str]:
        r = []
        if self.steal > p.steal_max:
            r.append("steal")
        if self.others > p.others_max:
            r.append("busy threads")
        if self.drift > p.drift_max:
            r.append("probe drift")
        return r


class Monitor:
    """Snapshots /proc before a window and tells what the window shared the machine with."""

    def __init__(self, core: int | None) -> None:
        self.core = core

    def start(self) -> tuple:
        return time.perf_counter(), _cpu_times(), _others_cpu_s()

    def stop(self, snap: tuple) -> Window:
        t0, c0, o0 = snap
        wall = max(time.perf_counter() - t0, 1e-9)
        c1, o1 = _cpu_times(), _others_cpu_s()
        steal = neighbours = 0.0
        if "cpu" in c0 and "cpu" in c1:
            dt = c1["cpu"][1] - c0["cpu"][1]
            steal = (c1["cpu"][2] - c0["cpu"][2]) / dt if dt > 0 else 0.0
            mine = f"cpu{self.core}" if self.core is not None else None
            busy = total = 0
            for k in c1:
                if k == "cpu" or k == mine or k not in c0:
                    continue
                busy += c1[k][0] - c0[k][0]
                total += c1[k][1] - c0[k][1]
            neighbours = busy / total if total > 0 else 0.0
        others = (o1 - o0) / wall if o0 is not None and o1 is not None else 0.0
        return Window(wall, steal, max(others, 0.0), neighbours)


# -- pinning ---------------------------------------------------------------------------------------------------

def _least_busy(cores: set[int], sample_s: float = 0.02) -> int:
    c0 = _cpu_times()
    time.sleep(sample_s)
    c1 = _cpu_times()

    def busy(c: int) -> float:
        k = f"cpu{c}"
        if k not in c0 or k not in c1:
            return 0.0
        dt = c1[k][1] - c0[k][1]
        return (c1[k][0] - c0[k][0]) / dt if dt > 0 else 0.0
    return min(sorted(cores), key=busy)


@contextlib.contextmanager
def pinned(enabled: bool = True) -> Iterator[int | None]:
    """Bind the calling thread to the least busy of its allowed cores (yields the core, or None when the OS does
    not allow it); the thread's affinity is restored after."""
    if not enabled or not hasattr(os, "sched_setaffinity"):
        yield None
        return
    try:
        old = os.sched_getaffinity(0)
        core = _least_busy(old) if len(old) > 1 else next(iter(old))
        os.sched_setaffinity(0, {core})  # pid 0: the calling thread only (Linux)
    except (OSError, StopIteration):
        yield None
        return
    try:
        yield core
    finally:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, old)
