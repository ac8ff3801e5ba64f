"""The W&B runs of a study (one per trial plus one study run) and its local Pareto plots, as a search listener.

See :mod:`nas.tracking` for the layout of the runs and the modes.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from nas.errors import OptionError
from nas.genotype import Genotype
from nas.results.front import front, front_history
from nas.results.pareto import space_budgets, study_objectives, study_reference_point
from nas.results.record import TrialRecord, as_record, state_text
from nas.results.store import StudyDir, study_records
from nas.search.events import SearchInfo, SearchListener, SearchSummary

log = logging.getLogger("nas.tracking")

MODES = ("online", "offline", "disabled")
TRIAL_SUMMARY = ("status", "tier", "accuracy", "best_accuracy", "macs", "params", "latency_ms", "latency_ms_measured",
                 "epochs", "train_s", "images_per_s", "duplicate_of", "error", "node", "seed")
TABLE_COLUMNS = ["number", "hash", "status", "on_front", "accuracy", "macs_M", "params_M", "latency_ms",
                 "latency_ms_measured", "epochs", "max_violation", "summary", "tier", "state"]


def trial_config(g: Genotype, proxy: dict[str, Any] | None = None) -> dict[str, Any]:
    """A trial run's W&B config: what a user filters and groups trial runs by (the hash, the architecture in one
    line, its size, the proxy recipe it was trained with) and the genotype as one nested value (not one key per
    field: a 20-block network made 270-438 columns). The tier is added when the trial finishes."""
    return {"hash": g.hash, "arch": g.summary(), "resolution": g.resolution, "blocks": len(g.blocks),
            "stages": len(g.stages), "stage_widths": [stage[-1].out for stage in g.stages if stage],
            "proxy": proxy or {}, "genotype": g.to_dict()}


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
    """``mode``, else the space's ``tracking.wandb``, else offline; ``WANDB_MODE=disabled`` wins."""
    if os.environ.get("WANDB_MODE") == "disabled":
        return "disabled"
    mode = mode or getattr(getattr(space, "tracking", None), "wandb", None) or "offline"
    if mode not in MODES:
        raise OptionError("wandb", f"{mode!r} is not one of {', '.join(MODES)}")
    return mode


def _row(r: TrialRecord, on_front: bool) -> list[Any]:
    try:
        summary = r.to_genotype().summary()
    except Exception:
        summary = ""
    viol = max((r.violations or {}).values(), default=0.0)
    return [r.number, r.hash, r.status, on_front, None if r.accuracy is None else 100 * r.accuracy,
            r.macs / 1e6 if r.macs is not None else None, r.params / 1e6 if r.params is not None else None,
            r.latency_ms, r.latency_ms_measured, r.epochs, viol, summary, r.tier, state_text(r)]


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


class StudyTracker(SearchListener):
    """W&B runs and local plots of one study; see :mod:`nas.tracking`.

    Given a study directory it tracks that study at once; without one (``StudyTracker()``, what ``nas search``
    passes to :func:`nas.search.driver.run_search`) it starts on ``search_started`` with the search's study
    directory, space and W&B mode. ``search_finished`` closes it.
    """

    def __init__(self, study_dir: Path | None = None, space: Any = None, mode: str | None = None, *,
                 table_every_s: float = 30.0, close_timeout_s: float = 120.0):
        self.table_every_s = table_every_s
        self.close_timeout_s = close_timeout_s
        self.mode = mode
        self._lock = threading.Lock()
        self._worker: _Worker | None = None
        self._closed = False
        self._started = False
        if study_dir is not None:
            self._start(Path(study_dir), space, mode)

    def _start(self, study_dir: Path, space: Any, mode: str | None, settings: Any = None, study: str | None = None,
               cost_only: bool = False) -> None:
        self.study_dir = study_dir
        self.space = space
        self.settings = settings if settings is not None else getattr(space, "search", None)
        self.cost_only = cost_only
        self.mode = resolve_mode(mode, space)
        self.study = study or getattr(space, "name", "") or self.study_dir.name
        self.objectives = study_objectives(space)
        self.budgets = space_budgets(space)
        self.records: dict[int, TrialRecord] = {r.number: r for r in self._existing()}
        self._runs: dict[int, Any] = {}
        self._study_run: Any = None
        self._last_tables = 0.0
        self._wandb: Any = None
        self._worker = _Worker() if self.mode != "disabled" else None
        self._started = True

    def __getstate__(self) -> dict[str, Any]:
        # Ray Tune pickles its searcher, and the driver's callbacks that reach this tracker with it, into
        # its experiment state. A copy cannot own this process's W&B runs: it travels as a closed no-op.
        skip = {"_lock", "_worker", "_runs", "_study_run", "_wandb"}
        return {**{k: v for k, v in self.__dict__.items() if k not in skip}, "mode": "disabled", "_closed": True}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock, self._worker, self._runs, self._study_run, self._wandb = threading.Lock(), None, {}, None, None

    # -- the search listener -----------------------------------------------------

    def search_started(self, info: SearchInfo) -> None:
        if not self._started:
            self._start(info.study_dir, info.space, self.mode or info.wandb, info.settings, info.study, info.cost_only)

    def trial_started(self, number: int, genotype: Genotype) -> None:
        self._submit(self._start_run, number, genotype)

    def trial_epoch(self, number: int, epoch: int, metrics: dict) -> None:
        self._submit(self._log_epoch, number, epoch, dict(metrics))

    def trial_finished(self, record: Mapping[str, Any]) -> None:
        record = as_record(record)
        with self._lock:
            self.records[record.number] = record
            snapshot = list(self.records.values())
        self._submit(self._finish_run, record, snapshot)

    def search_finished(self, summary: SearchSummary) -> None:
        self.close()

    def close(self) -> None:
        """Write ``pareto.html``/``pareto.png``, then finish every W&B run (bounded wait), the study run with
        the plots attached."""
        if self._closed or not self._started:
            return
        self._closed = True
        try:
            self.write_plots()
        except Exception as e:  # plots are a view of the results, never a reason to fail a search
            log.warning("could not write the Pareto plots: %s: %s", type(e).__name__, e)
        if self._worker is not None:
            with self._lock:
                snapshot = list(self.records.values())
            self._worker.submit(self._final, snapshot)
            if not self._worker.close(self.close_timeout_s):
                log.warning("W&B tracking did not finish within %.0f s; the search goes on without it",
                            self.close_timeout_s)

    def write_plots(self) -> tuple[Path, Path]:
        from nas.plots import write_plots

        return write_plots(self.study_dir, self._all_records(), budgets=self.budgets, study=self.study)

    def _all_records(self) -> list[TrialRecord]:
        on_disk = self._existing()
        with self._lock:
            records = {**{r.number: r for r in on_disk}, **self.records}
        return sorted(records.values(), key=lambda r: r.number)

    # -- internals (the worker thread) --------------------------------------------

    def _existing(self) -> list[TrialRecord]:
        return study_records(self.study_dir) if StudyDir(self.study_dir).trials.exists() else []

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
                          settings=settings, tags=self.tags(), **kw)

    def tags(self) -> list[str]:
        """The runs' W&B tags: the space, the sampler, the scheduler and what the trials do (train or cost)."""
        st = self.settings
        tags = [getattr(self.space, "name", "") or self.study, getattr(st, "sampler", None),
                getattr(st, "scheduler", None) if not self.cost_only else None, "cost-only" if self.cost_only
                else "train"]
        return [str(t)[:64] for t in dict.fromkeys(tags) if t]

    def study_config(self) -> dict[str, Any]:
        """The study run's config: what a W&B user filters and groups runs by (no local paths)."""
        st, sp = self.settings, self.space
        cfg: dict[str, Any] = {"study": self.study, "space": getattr(sp, "name", ""),
                               "space_file": Path(str(getattr(sp, "source", "") or "")).name,
                               "objectives": self.objectives, "budgets": self.budgets, "cost_only": self.cost_only}
        for k in ("sampler", "seed", "trials", "concurrency", "scheduler", "grace_period"):
            if hasattr(st, k):
                cfg[k] = getattr(st, k)
        if getattr(sp, "target", None) is not None:
            cfg["target"] = sp.target.model_dump()
        if getattr(sp, "proxy", None) is not None:
            cfg["proxy"] = self.proxy_recipe()
        return cfg

    def proxy_recipe(self) -> dict[str, Any]:
        """The space's proxy training recipe (a data set's name, not its local path)."""
        proxy_cfg = getattr(self.space, "proxy", None)
        if proxy_cfg is None:
            return {}
        proxy = dataclasses.asdict(proxy_cfg) if dataclasses.is_dataclass(proxy_cfg) else dict(proxy_cfg.model_dump())
        proxy["path"] = Path(proxy["path"]).name if proxy.get("path") else None
        return proxy

    def _start_run(self, number: int, genotype: Genotype) -> None:
        if number in self._runs:
            return
        config = {"trial": number, **trial_config(genotype, self.proxy_recipe())}
        self._runs[number] = self._init(name=f"{self.study}-trial-{number}", job_type="trial", config=config)

    def _log_epoch(self, number: int, epoch: int, metrics: dict) -> None:
        run = self._runs.get(number)
        if run is not None:
            run.log({"epoch": epoch, **metrics}, step=epoch)

    def _finish_run(self, record: TrialRecord, snapshot: list[TrialRecord]) -> None:
        n = record.number
        run = self._runs.pop(n, None)
        if run is None:
            if not record.trained:  # never trained (over budget, refused, a duplicate): its table row is enough
                self._update_study(snapshot, tables=time.monotonic() - self._last_tables >= self.table_every_s)
                return
            self._start_run(n, record.to_genotype())  # trained in an earlier run of a resumed study: log it whole
            run = self._runs.pop(n)
            for h in record.history or []:
                run.log(dict(h), step=h.get("epoch", 0))
        run.config.update({"tier": record.tier}, allow_val_change=True)
        run.summary["state"] = state_text(record)
        for k in TRIAL_SUMMARY:
            run.summary[k] = getattr(record, k)
        for k, v in (record.violations or {}).items():
            run.summary[f"violation.{k}"] = v
        for k, v in (record.predictor or {}).items():  # the predictor sampler's note: source, predicted, tau
            run.summary[f"predictor.{k}"] = v
        run.finish()
        self._update_study(snapshot, tables=time.monotonic() - self._last_tables >= self.table_every_s)

    def _ensure_study_run(self) -> Any:
        if self._study_run is None:
            self._study_run = self._init(name=f"{self.study}-study", job_type="study", config=self.study_config())
        return self._study_run

    def reference_point(self, records: Sequence[TrialRecord]) -> list[float]:
        return study_reference_point(self.study_dir, self.objectives, self.budgets, records)

    def _front(self, records: list[TrialRecord]) -> tuple[list[TrialRecord], list[Any], list[dict]]:
        records = sorted(records, key=lambda r: r.time or 0.0)  # finishing order
        history = front_history(records, self.objectives, self.reference_point(records))
        return records, front(records, self.objectives), history

    def _update_study(self, records: list[TrialRecord], tables: bool) -> None:
        run = self._ensure_study_run()
        records, fr, history = self._front(records)
        point = {"hypervolume": history[-1]["hypervolume"] if history else 0.0, "front_size": len(fr),
                 "trials_finished": len(records)}
        taus = [r.predictor["tau"] for r in records if r.predictor and r.predictor.get("tau") is not None]
        if taus:  # the predictor's ranking quality, as the sampler measured it last
            point["predictor_tau"] = taus[-1]
        run.log(point, step=len(records))
        if tables:
            self._log_tables(run, records, fr, history, step=len(records))

    def _log_tables(self, run: Any, records: list[TrialRecord], fr: list[Any], history: list[dict],
                    step: int) -> None:
        wandb = self._wandb
        on_front = {r.number for r in fr}
        trials = wandb.Table(columns=TABLE_COLUMNS, data=[_row(r, r.number in on_front) for r in records])
        front_t = wandb.Table(columns=TABLE_COLUMNS, data=[_row(r, True) for r in fr])
        hv = wandb.Table(columns=["trials_finished", "trial", "hypervolume", "front_size"],
                         data=[[i + 1, h["number"], h["hypervolume"], h["front_size"]] for i, h in enumerate(history)])
        out = {"trials": trials, "pareto_front": front_t, "hypervolume_history": hv,
               "charts/accuracy_vs_macs": wandb.plot.scatter(trials, "macs_M", "accuracy",
                                                             title="Every trial: accuracy (%) vs MACs (M)"),
               "charts/front_accuracy_vs_macs": wandb.plot.scatter(front_t, "macs_M", "accuracy",
                                                                   title="Pareto front: accuracy (%) vs MACs (M)"),
               # the front is a front of every objective: with latency among them, against latency too
               "charts/hypervolume": wandb.plot.line(hv, "trials_finished", "hypervolume",
                                                     title="Hypervolume after each finished trial")}
        if any(r.latency_ms is not None for r in records):
            out["charts/accuracy_vs_latency"] = wandb.plot.scatter(trials, "latency_ms", "accuracy",
                                                                   title="Every trial: accuracy (%) vs latency (ms)")
            out["charts/front_accuracy_vs_latency"] = wandb.plot.scatter(
                front_t, "latency_ms", "accuracy", title="Pareto front: accuracy (%) vs predicted latency (ms)")
        run.log(out, step=step)
        self._last_tables = time.monotonic()

    def _log_plots(self, run: Any, records: list[TrialRecord], step: int) -> None:
        """The two-panel figure of ``pareto.html`` (every trial, the front highlighted) as an interactive W&B
        chart, the page itself (plotly.js from its CDN: W&B is read online) and ``pareto.png``."""
        from nas.plots import figure_html
        from nas.results.store import load_baselines

        wandb = self._wandb
        fig = figure_html(records, load_baselines(self.study_dir), study=self.study, budgets=self.budgets)
        out = {"charts/pareto": wandb.Plotly(fig),
               "pareto_html": wandb.Html(fig.to_html(include_plotlyjs="cdn", full_html=True), inject=False)}
        png = self.study_dir / "pareto.png"
        if png.exists():
            out["pareto_png"] = wandb.Image(str(png))
        run.log(out, step=step)

    def _final(self, records: list[TrialRecord]) -> None:
        for n in list(self._runs):  # trials that started but never finished (a crash, an interrupted search)
            self._runs.pop(n).finish(exit_code=1)
        if not records and self._study_run is None:
            return
        run = self._ensure_study_run()
        records, fr, history = self._front(records)
        self._log_tables(run, records, fr, history, step=max(len(records), 1))
        self._log_plots(run, records, step=max(len(records), 1))
        run.summary["hypervolume"] = history[-1]["hypervolume"] if history else 0.0
        run.summary["front_size"] = len(fr)
        run.summary["front"] = [r.number for r in fr]
        run.finish()
        self._study_run = None
