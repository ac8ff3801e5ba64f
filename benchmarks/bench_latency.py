"""Latency predictor vs measurement: build a table for a shipped space, then compare on random networks.

    python -m benchmarks.bench_latency [--space tiny.yaml] [--target torch-cpu] [--n 100]

Builds the table from scratch (a fresh cache, so the build time is real),
draws ``--n`` random architectures of the space (seeds apart from the
calibration's) at the space's target resolution, measures each deployed
network (interleaved rounds, medians) and prints: the share of predictions
within +-10% of the measurement (goal >= 95%), Kendall's tau (goal >= 0.9),
the mean absolute percentage error, the same without calibration (the plain
sum of entries), and the noise floor: how often two measurements of the same
network, taken in separate passes, agree within 10%. The machine is shared:
read the noise line before the goals.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np
from scipy.stats import kendalltau

from benchmarks._machine import banner
from nas.cost.parts import parts
from nas.cost.table import predict
from nas.latency import build_lut, deployed, get_target, input_shape, measure_many
from nas.space import load_space


def _figures(pred: np.ndarray, meas: np.ndarray) -> tuple[float, float, float, float]:
    err = (pred - meas) / meas
    return float(np.mean(np.abs(err) <= 0.10)), float(kendalltau(pred, meas).statistic), \
        float(np.mean(np.abs(err))), float(np.max(np.abs(err)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--space", default="tiny.yaml")
    ap.add_argument("--target", default="torch-cpu")
    ap.add_argument("--n", type=int, default=100, help="random architectures compared")
    ap.add_argument("--networks", type=int, default=10, help="whole networks measured for the calibration")
    ap.add_argument("--rounds", type=int, default=8, help="interleaved measurement rounds per network (two passes)")
    ap.add_argument("--seed", type=int, default=1000)
    ap.add_argument("--quick", action="store_true", help="20 architectures, 4 calibration networks, 3 rounds")
    args = ap.parse_args()
    if args.quick:
        args.n, args.networks, args.rounds = min(args.n, 20), min(args.networks, 4), min(args.rounds, 3)

    banner("latency LUT: predicted vs measured")
    space = load_space(args.space)
    target = get_target(args.target)
    print(f"space {space.name} ({space.source}) at {space.target.resolution}px, target {target}")
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        table, stats = build_lut(space, target, out=os.path.join(tmp, "lut.json"), cache=os.path.join(tmp, "c.json"),
                                 networks=args.networks, progress=True)
    cal = table.calibration
    print(f"table: {stats.parts} parts measured in {stats.seconds:.1f} s (calibration on {stats.networks} "
          f"networks: scale {cal['scale']:.3f}, offset {cal['offset_ms']:.3f} ms, fit {cal['fit']}, "
          f"MAPE on them {100 * cal.get('mape', 0):.1f}%)")

    nets = space.sample_many(args.n, seed=args.seed)
    nc = space.target.num_classes
    t0 = time.perf_counter()
    items = {i: (deployed(g, nc), input_shape(g, target)) for i, g in enumerate(nets)}
    # Two independent passes: their mean is the measurement, their disagreement the noise floor.
    r1 = max(1, args.rounds // 2)
    passes = [measure_many(items, target, rounds=r, burst_s=0.1, unit_ms=table.unit_ms)
              for r in (r1, max(1, args.rounds - r1))]
    a, b = (np.array([p[i].ms for i in items]) for p in passes)
    meas = (a * r1 + b * max(1, args.rounds - r1)) / (r1 + max(1, args.rounds - r1))
    raw_a, raw_b = (np.array([p[i].raw_ms for i in items]) for p in passes)
    pred = np.array([predict(g, table) for g in nets])
    plain = np.array([sum(table.entries[p.key]["ms"] for p in parts(g, nc)) for g in nets])
    rel_iqr = np.median([passes[0][i].iqr / passes[0][i].ms for i in items])
    print(f"measured {len(nets)} networks in {time.perf_counter() - t0:.1f} s: {meas.min():.2f} .. "
          f"{meas.max():.2f} ms (median {np.median(meas):.2f}); load average {load0:.2f} -> {os.getloadavg()[0]:.2f}")

    def agree(x: np.ndarray, y: np.ndarray) -> float:
        return 100 * float(np.mean(np.abs(x - y) / np.minimum(x, y) <= 0.10))

    print(f"noise: median IQR {100 * rel_iqr:.1f}% of the median; two passes agree within 10% for "
          f"{agree(a, b):.0f}% of networks ({agree(raw_a, raw_b):.0f}% by plain "
          f"{'CPU' if target.clock == 'probe' else target.clock} time medians)")
    rows = [("calibrated predictor", pred, meas), ("sum of entries only", plain, meas)]
    if target.clock == "probe":
        raw = (raw_a + raw_b) / 2
        rows.append(("vs plain CPU time (*)", pred * np.median(raw / pred), raw))
    for name, p, m in rows:
        within, tau, mape, worst = _figures(p, m)
        print(f"{name:<21}: within +-10% {100 * within:5.1f}%  Kendall tau {tau:.3f}  MAPE {100 * mape:4.1f}%  "
              f"worst {100 * worst:5.1f}%")
    if target.clock == "probe":
        print("(*) medians of plain CPU time, without the probe's correction; predictions rescaled by the median "
              "ratio (the table's unit is the probe's latency at build time)")
    within, tau, _, _ = _figures(pred, meas)
    print(f"goals: within +-10% >= 95% {'met' if within >= 0.95 else 'MISSED'}; "
          f"Kendall tau >= 0.9 {'met' if tau >= 0.9 else 'MISSED'}; table build {stats.seconds:.0f} s")


if __name__ == "__main__":
    main()
