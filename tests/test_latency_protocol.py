"""The measurement protocol: stopping on the interval or the cap, interference re-measured then flagged, warm-up,
pinning, and parts in context that add up to their network, glue included (fast; no timing goals here)."""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import pytest
import torch

from nas.cost.parts import parts
from nas.genotype import from_dict
from nas.latency import get_target, measure, measure_in_context
from nas.latency.measure import _measure, _warm, deployed, input_shape
from nas.latency.protocol import Protocol, Window, ci_rel, pinned, t95

pytestmark = pytest.mark.usefixtures("one_thread")

CPU = get_target("torch-cpu-cputime")
ARCH = {"resolution": 16, "stem": {"out": 8}, "stages": [{"blocks": [{"out": 8, "stride": 2, "expand": 3}]},
                                                        {"blocks": [{"out": 16, "expand": 3}]}],
        "head": {"features": 32}}


def _fake(values, spin_s: float = 0.0):
    """A runner whose passes report the given CPU ms, one after the other (cycling); each pass takes ``spin_s``."""
    it = iter(np.resize(np.asarray(values, dtype=float), 100_000))

    def run():
        t_end = time.perf_counter() + spin_s
        while time.perf_counter() < t_end:
            pass
        v = float(next(it))
        return [("k", v, v)]
    return run


def test_the_interval_is_the_t_interval_of_the_mean():
    assert ci_rel([1.0]) == float("inf")
    assert ci_rel([2.0, 2.0, 2.0]) == 0.0
    v = [1.0, 1.1, 0.9, 1.05]
    assert ci_rel(v) == pytest.approx(2 * t95(4) * np.std(v, ddof=1) / 2 / np.mean(v))
    assert t95(2) == pytest.approx(12.706) and t95(200) == 1.96


def test_a_steady_item_stops_at_the_fewest_windows_and_a_noisy_one_at_its_cap():
    p = Protocol(min_windows=3, max_windows=8, window_s=0.0, min_passes=4, warmup_max_s=0.0, pin=False,
                 others_max=10.0)  # pytest's own threads must not count here
    steady = _measure([("k", _fake([2.0]))], CPU, p)["k"]
    assert steady.ms == pytest.approx(2.0) and steady.windows == 3 and steady.ci == 0.0 and not steady.flags
    rng = np.random.default_rng(0)
    noisy = _measure([("k", _fake(rng.uniform(1.0, 3.0, 4000)))], CPU, p)["k"]
    assert noisy.windows == 8 and "capped" in noisy.flags and noisy.ci > p.rel_ci


def test_the_time_cap_ends_a_measurement_that_never_settles():
    p = Protocol(min_windows=3, max_windows=10_000, window_s=0.01, warmup_max_s=0.0, cap_s=0.15, pin=False,
                 others_max=10.0)
    rng = np.random.default_rng(1)
    t0 = time.perf_counter()
    m = _measure([("k", _fake(rng.uniform(1.0, 3.0, 4000), spin_s=0.004))], CPU, p)["k"]  # ~3 passes a window
    assert time.perf_counter() - t0 < 2.0 and "capped" in m.flags and 3 <= m.windows < 100


def test_the_window_figure_is_a_robust_percentile_so_a_slow_spell_does_not_move_it():
    p = Protocol(min_windows=3, max_windows=3, window_s=0.0, min_passes=8, warmup_max_s=0.0, pin=False,
                 others_max=10.0)
    # 2 of every 8 passes are 3x slower (a preempted or cache-cold pass): the window's median ignores them.
    m = _measure([("k", _fake([1.0, 1.0, 3.0, 1.0, 1.0, 1.0, 3.0, 1.0]))], CPU, p)["k"]
    assert m.ms == pytest.approx(1.0)


def test_a_window_with_interference_is_measured_again_then_kept_and_flagged(monkeypatch):
    from nas.latency import protocol as proto

    monkeypatch.setattr(proto.Monitor, "stop", lambda self, snap: Window(0.01, 0.5, 0.0, 0.0))
    p = Protocol(min_windows=2, max_windows=2, window_s=0.0, warmup_max_s=0.0, pin=False, max_rejects=3)
    m = _measure([("k", _fake([1.0]))], CPU, p)["k"]
    assert m.rejected == 3 and "steal" in m.flags and m.windows == 2


def test_a_busy_thread_of_this_process_is_detected():
    """A real thread spinning beside the timing thread (a search driver's Ray threads) is seen in
    /proc/self/task and the windows it overlaps are re-measured, then flagged."""
    if not os.path.exists("/proc/self/task"):
        pytest.skip("no /proc here")
    stop = threading.Event()

    def spin():
        x = 0
        while not stop.is_set():
            x += 1
    th = threading.Thread(target=spin, daemon=True)
    th.start()
    try:
        p = Protocol(min_windows=2, max_windows=2, window_s=0.05, warmup_max_s=0.0, pin=False, max_rejects=2,
                     steal_max=1.0)
        m = _measure([("k", _fake([1.0], spin_s=0.001))], CPU, p)["k"]
    finally:
        stop.set()
        th.join()
    assert m.rejected == 2 and "busy threads" in m.flags
    quiet = _measure([("k", _fake([1.0], spin_s=0.001))], CPU, p)["k"]  # the thread has stopped
    assert quiet.rejected == 0 and not quiet.flags


def test_warm_up_runs_until_two_windows_agree():
    calls = []

    def run():
        calls.append(1)
        v = 1.0 + 4.0 * np.exp(-len(calls) / 10)  # caches warming: windows of 3 agree within 2% after ~40 passes
        return [("k", v, v)]
    _warm(run, Protocol(window_s=0.0, warmup_max_s=5.0, warmup_min=0))
    assert 36 <= len(calls) <= 48


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no thread affinity on this OS")
def test_pinning_binds_the_calling_thread_only_and_is_undone():
    before = os.sched_getaffinity(0)
    other: list = []

    def watch():
        time.sleep(0.05)
        other.append(os.sched_getaffinity(0))
    th = threading.Thread(target=watch)
    th.start()
    with pinned() as core:
        inside = os.sched_getaffinity(0)
        th.join()
    assert core in before and inside == {core}
    assert other == [before]  # another thread of the process keeps its cores
    assert os.sched_getaffinity(0) == before


class _Glued(torch.nn.Module):
    """A deployed network whose forward spends ``glue_s`` of CPU between its parts (code outside every part)."""

    def __init__(self, net, glue_s: float) -> None:
        super().__init__()
        self.stem, self.stages, self.head, self.glue_s = net.stem, net.stages, net.head, glue_s

    def _glue(self) -> None:
        t_end = time.thread_time() + self.glue_s
        while time.thread_time() < t_end:
            pass

    def forward(self, x):
        x = self.stem(x)
        for stage in self.stages:
            self._glue()
            x = stage(x)
        self._glue()
        return self.head(x)


def test_parts_in_context_add_up_to_a_separately_measured_whole_network_glue_included():
    """The parts of a network timed in context (chained) sum to a separate measurement of the whole network
    (no hooks), even where the glue between parts is most of the network's time: parts timed from their
    own start to their own end (the earlier hooks) would miss it by more than half."""
    g = from_dict(ARCH)
    glued = _Glued(deployed(g, 4), glue_s=0.001)
    p = Protocol(min_windows=3, max_windows=3, window_s=0.03, warmup_max_s=0.05, pin=False, others_max=10.0)
    found = measure_in_context([g], CPU, 4, protocol=p, built=[glued], with_networks=True)
    keys = [q.key for q in parts(g, 4)]
    total = sum(found[k].ms for k in keys)
    whole = measure(glued, input_shape(g, CPU), CPU, protocol=p).ms
    bare = measure(deployed(g, 4), input_shape(g, CPU), CPU, protocol=p).ms
    assert whole - bare > 0.5 * whole  # the glue (3 ms of CPU) is most of the network
    assert total == pytest.approx(whole, rel=0.15)
    assert total == pytest.approx(found[0].ms, rel=0.03)  # within the same passes: the hooks' own time only
