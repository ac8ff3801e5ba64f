"""Study tracking: W&B runs (one per trial plus one study run) and the local Pareto plots.

The search driver calls :class:`StudyTracker` as trials start, report epochs
and finish. W&B work happens on one background thread fed by a queue, so a
slow or failing W&B never holds up or kills the search: a call only enqueues,
the first W&B error is logged once and switches W&B off for the rest of the
study, and :meth:`StudyTracker.close` waits a bounded time. The plots
(``pareto.html``/``pareto.png``, :mod:`nas.plots`) are written by ``close``
whatever the W&B mode.

W&B layout
----------
* one run per trial (``job_type="trial"``, grouped by study): config = the
  genotype flattened (``s1.b0.kernels``, ...), per-epoch metrics, costs and
  status in the summary;
* one study run (``job_type="study"``): ``hypervolume`` and front size after
  every finished trial, and (at most every ``table_every_s`` seconds and at
  close) the ``trials`` and ``pareto_front`` tables, scatter charts of the
  front (accuracy vs MACs, vs latency) and the hypervolume history.

Offline by default, under ``<study_dir>/wandb`` (``wandb sync`` uploads it
later); ``mode`` is ``online``, ``offline`` or ``disabled``; the environment
variable ``WANDB_MODE=disabled`` also turns it off. Project and entity come
from ``WANDB_PROJECT``/``WANDB_ENTITY`` when set, else the space's
``tracking`` section. Nothing here reads or writes an API key: W&B itself
takes it from its own login or ``WANDB_API_KEY``.

An offline run's data is its ``run-<id>.wandb`` file (protobuf records in a
LevelDB-log-style container); :func:`read_run` reads config, summary and
history back without network or account.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import queue
import struct
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from nas.errors import InputError
from nas.genotype import Genotype, from_dict

log = logging.getLogger("nas.tracking")

MODES = ("online", "offline", "disabled")
TRIAL_SUMMARY = ("status", "accuracy", "best_accuracy", "macs", "params", "latency_ms", "latency_ms_measured",
                 "epochs", "train_s", "images_per_s", "duplicate_of", "error", "node", "seed")
TABLE_COLUMNS = ["number", "hash", "status", "on_front", "accuracy", "macs_M", "params_M", "latency_ms",
                 "latency_ms_measured", "epochs", "max_violation", "summary"]


def flatten_genotype(g: Genotype) -> dict[str, Any]:
    """W&B config of a genotype: one scalar per field, ``s{stage}.b{block}.{field}`` for blocks."""
    out: dict[str, Any] = {"hash": g.hash, "resolution": g.resolution, "in_chans": g.in_chans,
                           "blocks": len(g.blocks), "stages": len(g.stages)}
    for part, spec in (("stem", g.stem), ("head", g.head)):
        for k, v in dataclasses.asdict(spec).items():
            out[f"{part}.{k}"] = v
    for si, stage in enumerate(g.stages):
        for bi, b in enumerate(stage):
            for k, v in dataclasses.asdict(b).items():
                out[f"s{si}.b{bi}.{k}"] = "-".join(map(str, v)) if isinstance(v, (tuple, list)) else v
    return out


def resolve_mode(mode: str | None, space: Any = None) -> str:
    if os.environ.get("WANDB_MODE") == "disabled":
        return "disabled"
    mode = mode or getattr(getattr(space, "tracking", None), "wandb", None) or "offline"
    if mode not in MODES:
        raise InputError(f"--wandb: {mode!r} is not one of {', '.join(MODES)}")
    return mode


def study_objectives(space: Any) -> list[dict[str, str]]:
    objs = getattr(space, "objectives", None) or []
    out = [{"metric": o.metric, "direction": o.direction or ("maximize" if o.metric == "accuracy" else "minimize")}
           for o in objs]
    return out or [{"metric": "accuracy", "direction": "maximize"}, {"metric": "macs", "direction": "minimize"}]


def space_budgets(space: Any) -> dict[str, float]:
    b = getattr(space, "budgets", None)
    return {m: float(v) for m in ("macs", "params", "latency_ms") if (v := getattr(b, m, None)) is not None}


def study_reference_point(study_dir: Path, objectives: list[dict[str, str]], budgets: dict[str, float],
                          records: Sequence[dict]) -> list[float]:
    """The hypervolume reference: pareto.json's (what the search reports), else the budgets, else the data's."""
    from nas.search.pareto import default_reference_point, read_reference_point

    ref = read_reference_point(study_dir, len(objectives))
    if ref is not None:
        return ref
    if all(o["direction"] == "maximize" or o["metric"] in budgets for o in objectives):
        return [0.0 if o["direction"] == "maximize" else budgets[o["metric"]] for o in objectives]
    return default_reference_point(records, objectives)


def _row(r: dict, on_front: bool) -> list[Any]:
    try:
        summary = from_dict(r["genotype"]).summary()
    except Exception:
        summary = ""
    acc = r.get("accuracy")
    viol = max((r.get("violations") or {}).values(), default=0.0)
    return [r["number"], r.get("hash"), r.get("status"), on_front, None if acc is None else 100 * acc,
            r["macs"] / 1e6 if r.get("macs") is not None else None,
            r["params"] / 1e6 if r.get("params") is not None else None,
            r.get("latency_ms"), r.get("latency_ms_measured"), r.get("epochs"), viol, summary]


class _Worker:
    """One daemon thread running queued jobs in order; a failing job is logged once, then W&B is off."""

    def __init__(self) -> None:
        self.q: queue.Queue = queue.Queue()
        self.broken = False
        self.thread = threading.Thread(target=self._loop, name="nas-tracking", daemon=True)
        self.thread.start()

    def submit(self, fn: Callable[..., None], *args: Any) -> None:
        self.q.put((fn, args))

    def _loop(self) -> None:
        while True:
            item = self.q.get()
            if item is None:
                return
            fn, args = item
            if self.broken:
                continue
            try:
                fn(*args)
            except Exception as e:  # tracking must never take the search down
                self.broken = True
                log.warning("W&B tracking failed and is switched off for this study: %s: %s",
                            type(e).__name__, str(e).splitlines()[0] if str(e) else "")

    def close(self, timeout: float) -> bool:
        self.q.put(None)
        self.thread.join(timeout)
        return not self.thread.is_alive()


class StudyTracker:
    """W&B runs and local plots of one study; see the module docstring."""

    def __init__(self, study_dir: Path, space: Any, mode: str | None = "offline", *, table_every_s: float = 30.0,
                 close_timeout_s: float = 120.0):
        self.study_dir = Path(study_dir)
        self.space = space
        self.mode = resolve_mode(mode, space)
        self.study = getattr(space, "name", "") or self.study_dir.name
        self.objectives = study_objectives(space)
        self.budgets = space_budgets(space)
        self.table_every_s = table_every_s
        self.close_timeout_s = close_timeout_s
        self.records: dict[int, dict] = {r["number"]: r for r in self._existing()}
        self._lock = threading.Lock()
        self._runs: dict[int, Any] = {}
        self._study_run: Any = None
        self._last_tables = 0.0
        self._wandb: Any = None
        self._worker = _Worker() if self.mode != "disabled" else None
        self._closed = False

    def __getstate__(self) -> dict[str, Any]:
        # Ray Tune pickles its searcher, and the driver's callbacks that reach this tracker with it, into
        # its experiment state. A copy cannot own this process's W&B runs: it travels as a closed no-op.
        skip = {"_lock", "_worker", "_runs", "_study_run", "_wandb"}
        return {**{k: v for k, v in self.__dict__.items() if k not in skip}, "mode": "disabled", "_closed": True}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock, self._worker, self._runs, self._study_run, self._wandb = threading.Lock(), None, {}, None, None

    # -- the driver's interface --------------------------------------------------

    def trial_started(self, number: int, genotype: Genotype) -> None:
        self._submit(self._start_run, number, genotype)

    def trial_epoch(self, number: int, epoch: int, metrics: dict) -> None:
        self._submit(self._log_epoch, number, epoch, dict(metrics))

    def trial_finished(self, record: dict) -> None:
        with self._lock:
            self.records[record["number"]] = record
            snapshot = list(self.records.values())
        self._submit(self._finish_run, dict(record), snapshot)

    def close(self) -> None:
        """Finish every W&B run (bounded wait), then write ``pareto.html``/``pareto.png``."""
        if self._closed:
            return
        self._closed = True
        if self._worker is not None:
            with self._lock:
                snapshot = list(self.records.values())
            self._worker.submit(self._final, snapshot)
            if not self._worker.close(self.close_timeout_s):
                log.warning("W&B tracking did not finish within %.0f s; the search goes on without it",
                            self.close_timeout_s)
        try:
            self.write_plots()
        except Exception as e:  # plots are a view of the results, never a reason to fail a search
            log.warning("could not write the Pareto plots: %s: %s", type(e).__name__, e)

    def write_plots(self) -> tuple[Path, Path]:
        from nas.plots import write_plots

        on_disk = self._existing()
        with self._lock:
            records = {**{r["number"]: r for r in on_disk}, **self.records}
        return write_plots(self.study_dir, sorted(records.values(), key=lambda r: r["number"]),
                           budgets=self.budgets)

    # -- internals (the worker thread) --------------------------------------------

    def _existing(self) -> list[dict]:
        if not (self.study_dir / "trials.jsonl").exists():
            return []
        from nas.plots import read_records

        return read_records(self.study_dir)

    def _submit(self, fn: Callable[..., None], *args: Any) -> None:
        if self._worker is not None and not self._closed:
            self._worker.submit(fn, *args)

    def _init(self, **kw: Any) -> Any:
        if self._wandb is None:
            import wandb

            self._wandb = wandb
        wandb = self._wandb
        settings = wandb.Settings(silent=True, console="off", x_disable_stats=True, x_disable_meta=True,
                                  x_disable_machine_info=True, save_code=False, disable_git=True,
                                  x_save_requirements=False)
        self.study_dir.mkdir(parents=True, exist_ok=True)
        tracking = getattr(self.space, "tracking", None)
        return wandb.init(project=os.environ.get("WANDB_PROJECT") or getattr(tracking, "project", None) or "nas",
                          entity=os.environ.get("WANDB_ENTITY") or getattr(tracking, "entity", None),
                          dir=str(self.study_dir), mode=self.mode, group=self.study, reinit="create_new",
                          settings=settings, **kw)

    def _start_run(self, number: int, genotype: Genotype) -> None:
        if number in self._runs:
            return
        config = {"trial": number, **flatten_genotype(genotype)}
        self._runs[number] = self._init(name=f"{self.study}-trial-{number}", job_type="trial", config=config)

    def _log_epoch(self, number: int, epoch: int, metrics: dict) -> None:
        run = self._runs.get(number)
        if run is not None:
            run.log({"epoch": epoch, **metrics}, step=epoch)

    def _finish_run(self, record: dict, snapshot: list[dict]) -> None:
        n = record["number"]
        run = self._runs.pop(n, None)
        if run is None:  # never started here (over budget, a duplicate, a resumed study): log it whole
            self._start_run(n, from_dict(record["genotype"], f"trial {n}"))
            run = self._runs.pop(n)
            for h in record.get("history") or []:
                run.log(dict(h), step=h.get("epoch", 0))
        for k in TRIAL_SUMMARY:
            run.summary[k] = record.get(k)
        for k, v in (record.get("violations") or {}).items():
            run.summary[f"violation.{k}"] = v
        run.finish()
        self._update_study(snapshot, tables=time.monotonic() - self._last_tables >= self.table_every_s)

    def _ensure_study_run(self) -> Any:
        if self._study_run is None:
            cfg = {"study": self.study, "objectives": self.objectives, "budgets": self.budgets,
                   "space": getattr(self.space, "source", "")}
            self._study_run = self._init(name=f"{self.study}-study", job_type="study", config=cfg)
        return self._study_run

    def reference_point(self, records: Sequence[dict]) -> list[float]:
        return study_reference_point(self.study_dir, self.objectives, self.budgets, records)

    def _front(self, records: list[dict]) -> tuple[list[dict], list[dict], list[dict]]:
        from nas.search.pareto import front, front_history

        records = sorted(records, key=lambda r: r.get("time") or 0.0)  # finishing order
        history = front_history(records, self.objectives, self.reference_point(records))
        return records, front(records, self.objectives), history

    def _update_study(self, records: list[dict], tables: bool) -> None:
        run = self._ensure_study_run()
        records, fr, history = self._front(records)
        run.log({"hypervolume": history[-1]["hypervolume"] if history else 0.0, "front_size": len(fr),
                 "trials_finished": len(records)}, step=len(records))
        if tables:
            self._log_tables(run, records, fr, history, step=len(records))

    def _log_tables(self, run: Any, records: list[dict], fr: list[dict], history: list[dict], step: int) -> None:
        wandb = self._wandb
        on_front = {r["number"] for r in fr}
        trials = wandb.Table(columns=TABLE_COLUMNS, data=[_row(r, r["number"] in on_front) for r in records])
        front_t = wandb.Table(columns=TABLE_COLUMNS, data=[_row(r, True) for r in fr])
        hv = wandb.Table(columns=["trials_finished", "trial", "hypervolume", "front_size"],
                         data=[[i + 1, h["number"], h["hypervolume"], h["front_size"]] for i, h in enumerate(history)])
        out = {"trials": trials, "pareto_front": front_t, "hypervolume_history": hv,
               "charts/accuracy_vs_macs": wandb.plot.scatter(front_t, "macs_M", "accuracy",
                                                             title="Pareto front: accuracy (%) vs MACs (M)"),
               "charts/hypervolume": wandb.plot.line(hv, "trials_finished", "hypervolume",
                                                     title="Hypervolume after each finished trial")}
        if any(r.get("latency_ms") is not None for r in fr):
            out["charts/accuracy_vs_latency"] = wandb.plot.scatter(front_t, "latency_ms", "accuracy",
                                                                   title="Pareto front: accuracy (%) vs latency (ms)")
        run.log(out, step=step)
        self._last_tables = time.monotonic()

    def _final(self, records: list[dict]) -> None:
        for n in list(self._runs):  # trials that started but never finished (a crash, an interrupted search)
            self._runs.pop(n).finish(exit_code=1)
        if not records and self._study_run is None:
            return
        run = self._ensure_study_run()
        records, fr, history = self._front(records)
        self._log_tables(run, records, fr, history, step=max(len(records), 1))
        run.summary["hypervolume"] = history[-1]["hypervolume"] if history else 0.0
        run.summary["front_size"] = len(fr)
        run.summary["front"] = [r["number"] for r in fr]
        run.finish()
        self._study_run = None


# -- reading offline runs back -------------------------------------------------------

_BLOCK = 32 * 1024
_HEADER = 7  # ":W&B" + magic 0xBEE1 + version byte


def _chunks(data: bytes) -> list[bytes]:
    """Reassemble the records of a ``.wandb`` file (LevelDB log format: 32 KiB blocks, 7-byte record headers)."""
    if data[:4] != b":W&B":
        raise ValueError("not a W&B run file")
    out, pos, buf = [], _HEADER, b""
    while pos + 7 <= len(data):
        left = _BLOCK - pos % _BLOCK
        if left < 7:
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if kind == 0 and length == 0:  # block padding
            pos += left
            continue
        chunk = data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind == 1:
            out.append(chunk)
        elif kind == 2:
            buf = chunk
        elif kind == 3:
            buf += chunk
        elif kind == 4:
            out.append(buf + chunk)
            buf = b""
    return out


def _set(d: dict, keys: Sequence[str], value: Any) -> None:
    for k in keys[:-1]:
        d = d.setdefault(k, {})
    d[keys[-1]] = value


def read_run(run_dir: Path) -> dict[str, Any]:
    """Config, summary, history rows and name of an offline run directory (``offline-run-*``)."""
    from wandb.proto import wandb_internal_pb2 as pb

    run_dir = Path(run_dir)
    path = next(run_dir.glob("run-*.wandb"))
    out: dict[str, Any] = {"name": None, "job_type": None, "config": {}, "summary": {}, "history": [],
                           "dir": str(run_dir)}
    for chunk in _chunks(path.read_bytes()):
        rec = pb.Record()
        rec.ParseFromString(chunk)
        kind = rec.WhichOneof("record_type")
        if kind == "run":
            out["name"], out["job_type"] = rec.run.display_name, rec.run.job_type
            for u in rec.run.config.update:
                _set(out["config"], list(u.nested_key) or [u.key], json.loads(u.value_json))
        elif kind == "config":
            for u in rec.config.update:
                _set(out["config"], list(u.nested_key) or [u.key], json.loads(u.value_json))
        elif kind == "summary":
            for u in rec.summary.update:
                _set(out["summary"], list(u.nested_key) or [u.key], json.loads(u.value_json))
        elif kind == "history":
            row: dict[str, Any] = {}
            for item in rec.history.item:
                _set(row, list(item.nested_key) or [item.key], json.loads(item.value_json))
            out["history"].append(row)
    return out


def offline_runs(study_dir: Path) -> list[dict[str, Any]]:
    """Every offline run of a study, read back (:func:`read_run`)."""
    return [read_run(d) for d in sorted((Path(study_dir) / "wandb").glob("offline-run-*"))]


def read_table(run: dict[str, Any], key: str) -> dict[str, Any]:
    """The latest ``wandb.Table`` logged under ``key`` in a run read by :func:`read_run`: columns and data."""
    ref = run["summary"][key]
    return json.loads((Path(run["dir"]) / "files" / ref["path"]).read_text())
