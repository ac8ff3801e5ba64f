"""Latency predictor vs measurement on random networks of a space, with a table built first or filled on demand.

    python -m benchmarks.bench_latency [--space tiny.yaml] [--target torch-cpu] [--n 100]
    python -m benchmarks.bench_latency --space mixnet.yaml --n 50          # the flagship: parts timed on demand

``--table build`` builds the space's whole table from scratch first (``nas lut
build``, a fresh cache, so the build time is real); ``--table on-demand``
starts from an empty table for this machine and times the parts each network
lacks when it is predicted, as ``nas search`` does for a space whose budgets
name a latency target without a table (``mixnet.yaml``; the default then).
Every network is then measured whole through the code path of ``nas describe
--measure`` (:func:`nas.latency.measure_genotype`, in the table's probe unit),
twice in separate passes. Printed: the share of predictions within +-10% of
the measurement (goal >= 95%), Kendall's tau (goal >= 0.9), the mean absolute
percentage error, the same without calibration (the plain sum of entries), the
noise floor (how often the two measurements of one network agree within 10%)
and, on demand, the time spent timing parts (per network and as a share of
the benchmark's wall time). The machine is shared: read the noise line before
the goals.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy.stats import kendalltau

from benchmarks._machine import banner
from nas.cost.parts import parts
from nas.latency import LatencyPredictor, build_lut, get_target, measure_genotype
from nas.space import load_space


def _figures(pred: np.ndarray, meas: np.ndarray) -> tuple[float, float, float, float]:
    err = (pred - meas) / meas
    return float(np.mean(np.abs(err) <= 0.10)), float(kendalltau(pred, meas).statistic), \
        float(np.mean(np.abs(err))), float(np.max(np.abs(err)))


def _on_demand_default(space) -> bool:
    b = space.budgets
    return bool(b.target) and not b.lut


def _predictor(space, target, args, tmp: str) -> tuple[LatencyPredictor, str]:
    """The predictor under test and a line saying how its table came to be."""
    nc = space.target.num_classes
    if args.table == "on-demand":
        p = LatencyPredictor(target, num_classes=nc, cache=Path(tmp) / "cache.json")
        p.prepare()
        return p, f"table: empty, parts timed on demand (unit {p.cache.unit_ms():.4f} ms)"
    table, stats = build_lut(space, target, out=os.path.join(tmp, "lut.json"), cache=os.path.join(tmp, "c.json"),
                             networks=args.networks)
    cal = table.calibration
    line = (f"table: {stats.parts} parts measured in {stats.seconds:.1f} s (calibration on {stats.networks} "
            f"networks: scale {cal['scale']:.3f}, offset {cal['offset_ms']:.3f} ms, fit {cal['fit']}, "
            f"MAPE on them {100 * cal.get('mape', 0):.1f}%)")
    return LatencyPredictor(lut=table, num_classes=nc), line


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--space", default="tiny.yaml")
    ap.add_argument("--target", default="torch-cpu")
    ap.add_argument("--n", type=int, default=100, help="random architectures compared")
    ap.add_argument("--table", choices=("build", "on-demand"), default=None,
                    help="build the whole table first, or time parts on demand (default: on demand when the "
                         "space's budgets name a latency target without a table)")
    ap.add_argument("--networks", type=int, default=10, help="whole networks measured for a built table's calibration")
    ap.add_argument("--rounds", type=int, default=5, help="rounds of each whole-network measurement (as `nas "
                    "describe --measure`)")
    ap.add_argument("--seed", type=int, default=1000)
    ap.add_argument("--quick", action="store_true", help="20 architectures, 4 calibration networks, 3 rounds")
    args = ap.parse_args()
    if args.quick:
        args.n, args.networks, args.rounds = min(args.n, 20), min(args.networks, 4), min(args.rounds, 3)

    banner("latency predictor vs nas describe --measure")
    t_start = time.perf_counter()
    space = load_space(args.space)
    args.table = args.table or ("on-demand" if _on_demand_default(space) else "build")
    target = get_target(args.target)
    nc = space.target.num_classes
    print(f"space {space.name} ({space.source}) at {space.target.resolution}px, target {target}")
    load0 = os.getloadavg()[0]
    nets = space.sample_many(args.n, seed=args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        predictor, line = _predictor(space, target, args, tmp)
        print(line)
        t0 = time.perf_counter()
        pred = np.array([predictor(g) for g in nets])
        predict_s = time.perf_counter() - t0
        table = predictor.lut if predictor.lut is not None else predictor.cache.table()
        unit = table.unit_ms
        plain = np.array([sum(table.entries[p.key]["ms"] for p in parts(g, nc)) for g in nets])
    q1, q2, q3 = np.percentile(pred, [25, 50, 75])
    print(f"predicted latency: 25% {q1:.1f} ms, median {q2:.1f}, 75% {q3:.1f}, range {pred.min():.1f}-{pred.max():.1f} "
          "(mixnet.yaml's latency budget and family tiers are these quartiles on its reference machine)")
    st = predictor.stats
    if st.networks:
        per = (st.seconds - st.unit_s) / st.networks
        print(f"timing parts on demand: {st.parts} parts in {st.networks} of {len(nets)} networks, {st.seconds:.1f} s "
              f"({per:.2f} s per network timed, {st.unit_s:.1f} s measuring the probe unit; {predict_s:.1f} s to "
              "predict all)")

    t0 = time.perf_counter()
    # Two passes, as `nas describe --measure` measures (5 rounds of 0.1 s bursts, the table's unit); their mean is
    # the measurement, their disagreement the noise floor.
    passes = [[measure_genotype(g, target, nc, rounds=args.rounds, unit_ms=unit) for g in nets] for _ in range(2)]
    a, b = (np.array([m.ms for m in p]) for p in passes)
    meas = (a + b) / 2
    raw_a, raw_b = (np.array([m.raw_ms for m in p]) for p in passes)
    rel_iqr = np.median([m.iqr / m.ms for m in passes[0]])
    print(f"measured {len(nets)} networks twice in {time.perf_counter() - t0:.1f} s: {meas.min():.2f} .. "
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
              "ratio (the table's unit is the probe's latency when the table was started)")
    within, tau, _, _ = _figures(pred, meas)
    wall = time.perf_counter() - t_start
    if st.networks:
        print(f"share of this benchmark's wall time spent timing parts: {100 * st.seconds / wall:.1f}% "
              f"({st.seconds:.1f} of {wall:.1f} s; `nas search` prints the same figure for a search)")
    print(f"goals: within +-10% >= 95% {'met' if within >= 0.95 else 'MISSED'}; "
          f"Kendall tau >= 0.9 {'met' if tau >= 0.9 else 'MISSED'}")


if __name__ == "__main__":
    main()
