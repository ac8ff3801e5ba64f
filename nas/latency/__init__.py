"""Latency on a real device (torch): measurement, lookup-table building, predictors that measure on the fly.

The torch-free half lives in :mod:`nas.cost`: a network's table keys
(:mod:`nas.cost.parts`) and the tables themselves (:mod:`nas.cost.table`,
reading, writing, ``predict``). This package measures: :mod:`.device` (target
presets usable here, the device fingerprint), :mod:`.measure` (timing
deployed modules, parts in context, on the fly), :mod:`.lut` (``nas lut
build``: carriers, calibration; and :func:`predictor` for budgets),
:mod:`.cache` (this machine's table, shared by processes and filled on demand;
the :class:`LatencyPredictor` budgets and objectives use).
"""

from nas.latency.cache import (
    ON_DEMAND,
    LatencyPredictor,
    MachineCache,
    TimingStats,
    cache_dir,
    cache_path,
    load_cache,
)
from nas.latency.device import device_hash, device_info, get_target, on_this_machine
from nas.latency.lut import (
    FITS,
    BuildStats,
    build_lut,
    calibrate,
    carriers,
    predictor,
)
from nas.latency.measure import (
    Measurement,
    deployed,
    input_shape,
    measure,
    measure_genotype,
    measure_in_context,
    measure_many,
    measure_missing,
    measure_parts,
    on_the_fly,
    probe_ms,
)
from nas.latency.runners import part_module

__all__ = [
    "FITS", "ON_DEMAND", "BuildStats", "LatencyPredictor", "MachineCache", "Measurement", "TimingStats", "build_lut",
    "cache_dir", "cache_path", "calibrate", "carriers", "deployed", "device_hash", "device_info", "get_target",
    "input_shape", "load_cache", "measure", "measure_genotype", "measure_in_context", "measure_many",
    "measure_missing", "measure_parts", "on_the_fly", "on_this_machine", "part_module", "predictor", "probe_ms",
]
