"""Latency predictor vs measurement on random networks of a space, with a table built first or filled on demand.

    python -m benchmarks.bench_latency [--space tiny.yaml] [--target torch-cpu] [--n 100]
    python -m benchmarks.bench_latency --space mixnet.yaml --n 50          # the flagship: parts timed on demand

``--table build`` builds the space's whole table from scratch first (``nas lut
build``, a fresh cache, so the build time is real); ``--table on-demand``
starts from an empty table for this machine and times the parts each network
lacks when it is predicted, as ``nas search`` does for a space whose budgets
name a latency target without a table (``mixnet.yaml``; the default then).
Every network is then measured whole through the code path of ``nas describe
--measure`` (:func:`nas.latency.measure_genotype`: the protocol
:data:`nas.latency.protocol.WHOLE`, in the table's probe unit), twice in
separate passes; the networks are held out (nothing was fitted on them: an
on-demand table has no calibration, and a built table calibrates on other
networks). Printed: /proc/loadavg at start and end; the protocol's own noise
figures (interval widths, windows re-measured for interference, flags, how busy
the other CPUs were); how often the two measurements of one network agree
within 5% (goal >= 95%) and 10%; which per-window statistic would have repeated
best on this run; the share of predictions within +-10% of the mean of the two
measurements (goal >= 95%), Kendall's tau (goal >= 0.9), the mean absolute
percentage error; the time spent measuring; and the quartiles of the predicted
latency (what ``nas lut budgets`` derives a space's limits from). The machine
is shared: read the noise lines before the goals.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
from scipy.stats import kendalltau

from benchmarks._machine import banner
from nas.cost.parts import parts
from nas.latency import LatencyPredictor, build_lut, get_target, measure_genotype
from nas.latency.protocol import STAT_PCT, WHOLE
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
    ap.add_argument("--cap", type=float, default=None, help="time cap per whole-network measurement (default: the "
                    "protocol's, as `nas describe --measure`)")
    ap.add_argument("--seed", type=int, default=1000)
    ap.add_argument("--quick", action="store_true", help="20 architectures, 4 calibration networks, 1 s cap")
    args = ap.parse_args()
    if args.quick:
        args.n, args.networks, args.cap = min(args.n, 20), min(args.networks, 4), 1.0

    banner("latency predictor vs nas describe --measure")
    t_start = time.perf_counter()
    space = load_space(args.space)
    args.table = args.table or ("on-demand" if _on_demand_default(space) else "build")
    target = get_target(args.target)
    nc = space.target.num_classes
    print(f"space {space.name} ({space.source}) at {space.target.resolution}px, target {target}")
    load_start = _loadavg()
    print(f"/proc/loadavg at start: {load_start}")
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
    print(f"table {table.table_id} (protocol {table.protocol or 'earlier'}), probe unit {unit} ms")
    print(f"predicted latency: 25% {q1:.1f} ms, median {q2:.1f}, 75% {q3:.1f}, range {pred.min():.1f}-{pred.max():.1f} "
          "(`nas lut budgets` derives a space's latency budget and tiers from these quartiles)")
    st = predictor.stats
    if st.networks:
        per = (st.seconds - st.unit_s) / st.networks
        print(f"timing parts on demand: {st.parts} parts in {st.networks} of {len(nets)} networks, {st.seconds:.1f} s "
              f"({per:.2f} s per network timed, {st.unit_s:.1f} s measuring the probe unit; {predict_s:.1f} s to "
              "predict all)")

    t0 = time.perf_counter()
    # Two passes, as `nas describe --measure` measures (the protocol WHOLE, the table's unit); their mean is the
    # measurement, their disagreement the noise floor.
    proto = WHOLE if args.cap is None else WHOLE.with_(cap_s=args.cap)
    passes = [[measure_genotype(g, target, nc, protocol=proto, unit_ms=unit, keep_samples=True) for g in nets]
              for _ in range(2)]
    measure_s = time.perf_counter() - t0
    a, b = (np.array([m.ms for m in p]) for p in passes)
    meas = (a + b) / 2
    load_end = _loadavg()
    print(f"measured {len(nets)} networks twice in {measure_s:.1f} s: {meas.min():.2f} .. {meas.max():.2f} ms "
          f"(median {np.median(meas):.2f}); /proc/loadavg {load_start} -> {load_end}")
    ms_all = [m for p in passes for m in p]
    ci = np.array([m.ci for m in ms_all])
    flags = Counter(f for m in ms_all for f in m.flags)
    print(f"protocol ({proto.rel_ci:.0%} interval goal, cap {proto.cap_s:g} s per network): median interval "
          f"{100 * np.median(ci):.1f}% wide, {100 * np.mean(ci <= proto.rel_ci):.0f}% of measurements reached "
          f"the goal; windows per measurement median {np.median([m.windows for m in ms_all]):.0f}; "
          f"{sum(m.rejected for m in ms_all)} windows re-measured for interference; flags kept: "
          f"{dict(flags) or 'none'}; other CPUs busy {100 * np.mean([m.neighbours for m in ms_all]):.0f}% of "
          "the time on average")

    def agree(x: np.ndarray, y: np.ndarray, tol: float) -> float:
        return 100 * float(np.mean(np.abs(x - y) / np.minimum(x, y) <= tol))

    print(f"noise: two measurements of one network agree within 5% for {agree(a, b, 0.05):.0f}% of networks, "
          f"within 10% for {agree(a, b, 0.10):.0f}% (goal: within 5% for >= 95%); median |difference| "
          f"{100 * np.median(np.abs(a - b) / np.minimum(a, b)):.1f}%")
    _statistics(passes, target, unit)
    cal = table.calibration
    if float(cal["scale"]) == 1.0 and float(cal["offset_ms"]) == 0.0:  # on demand: no calibration to compare
        rows = [("predictor (sum)", pred, meas)]
    else:
        rows = [("calibrated predictor", pred, meas), ("sum of entries only", plain, meas)]
    for name, p, m in rows:
        within, tau, mape, worst = _figures(p, m)
        print(f"{name:<21}: within +-10% {100 * within:5.1f}%  Kendall tau {tau:.3f}  MAPE {100 * mape:4.1f}%  "
              f"worst {100 * worst:5.1f}%")
    within, tau, _, _ = _figures(pred, meas)
    wall = time.perf_counter() - t_start
    print(f"time spent measuring: {st.seconds:.1f} s timing parts on demand, {measure_s:.1f} s measuring whole "
          f"networks twice ({measure_s / (2 * len(nets)):.2f} s per measurement); {wall:.1f} s in all")
    if st.networks:
        print(f"share of this benchmark's wall time spent timing parts: {100 * st.seconds / wall:.1f}% "
              f"({st.seconds:.1f} of {wall:.1f} s; `nas search` prints the same figure for a search)")
    print(f"goals: two measurements within 5% >= 95% {'met' if agree(a, b, 0.05) >= 95 else 'MISSED'}; "
          f"within +-10% >= 95% {'met' if within >= 0.95 else 'MISSED'}; "
          f"Kendall tau >= 0.9 {'met' if tau >= 0.9 else 'MISSED'}")


def _loadavg() -> str:
    try:
        return Path("/proc/loadavg").read_text().strip()
    except OSError:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _statistics(passes, target, unit: float) -> None:
    """Which per-window statistic repeats best on this run: the same windows of both passes, other statistics."""
    out = []
    for name, f in (("min", np.min), ("p10", lambda x: np.percentile(x, 10)), ("p25", lambda x: np.percentile(x, 25)),
                    ("median", np.median)):
        for clock in ("probe ratio", "CPU time"):
            if clock == "probe ratio" and target.clock != "probe":
                continue
            figs = []
            for p in passes:
                v = []
                for m in p:
                    ws = [w[:, 1] / w[:, 2] * unit if clock == "probe ratio" else w[:, 1] for w in m.samples]
                    v.append(np.mean([f(w) for w in ws]))
                figs.append(np.array(v))
            a, b = figs
            d = np.abs(a - b) / np.minimum(a, b)
            out.append(f"{name} of {clock} {100 * np.mean(d <= 0.05):.0f}%")
    print("statistic per window, two measurements within 5%: " + ", ".join(out) + f" (in use: p{STAT_PCT:g} of "
          f"{'probe ratio' if target.clock == 'probe' else target.clock})")

if __name__ == "__main__":
    main()
