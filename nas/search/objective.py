"""One trial: train the proxy of an architecture and report every epoch.

The trainable is a plain function of a config dict (what
:func:`trial_config` builds), so Ray Tune runs it as a function trainable and
tests run it without Ray. Every report is self-contained (the whole history so
far, accuracy, timing), because the report the scheduler stops a trial on, or
the last one of the run, is all the driver gets back:

``val_accuracy``, ``best_accuracy``, ``train_loss``, ``epoch`` (1-based),
``history``, ``train_s``, ``images_per_s``, ``node``, ``device`` (where it
trains, :mod:`nas.search.devices`; ``device_warning`` too when that is not
what Ray gave it), ``final`` (the trainer will not run another epoch: the
last planned epoch, or a diverged loss) and, when training raised, ``error``
(one line). A custom trainable for the driver (e.g. the orchestration
benchmark's sleeping one) must report at least ``val_accuracy``, ``epoch``
and ``final``.

A report may never return: a scheduler stops a trial inside it, ASHA at its
rungs and also at ``max_t``, i.e. on the last planned epoch of every trial
it lets finish. So whatever a trial must leave behind is written *before*
the report of that epoch: the final epoch's weights are saved first, then
reported (with the history including that epoch), so a stop raised by the
report cannot lose them. A trial stopped earlier (pruned) leaves no weights.
"""

from __future__ import annotations

import dataclasses
import math
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nas.config import planned_reports
from nas.genotype import Genotype, from_dict
from nas.io import atomic_open


def trial_config(number: int, genotype: Genotype, proxy: Any, num_classes: int | None, threads: int,
                 weights_dir: Path | None = None) -> dict[str, Any]:
    """What the trainable receives: plain data only (it crosses process and machine boundaries).

    ``weights_dir``: where a trial that trains to its last epoch saves its proxy ``state_dict`` as
    ``<number>.pt`` (``nas export-best`` ships it with the family); on a cluster, a shared path."""
    cfg = dataclasses.asdict(proxy)
    if cfg.get("path"):
        # Trial processes may start in another working directory (Tune's trial dirs, other nodes).
        cfg["path"] = str(Path(cfg["path"]).expanduser().resolve())
    return {"number": number, "genotype": genotype.to_dict(), "proxy": cfg, "num_classes": num_classes,
            # "epochs": the reports the trial makes (epochs, or report intervals of a step recipe)
            "threads": max(1, int(threads)), "epochs": planned_reports(proxy),
            "weights_dir": None if weights_dir is None else str(Path(weights_dir).resolve())}


def evaluate(config: dict[str, Any], report: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """Train the trial's proxy, calling ``report`` after every epoch (or report interval of a step recipe);
    returns the last report.

    Exceptions from training become a final report with ``error`` (the driver
    records the trial as failed); ``SystemExit``, which Ray Tune uses to stop a
    trial inside ``report``, passes through.
    """
    import torch

    from nas.search.devices import trial_device
    from nas.train import TrainConfig, train

    torch.set_num_threads(config.get("threads", 1))
    epochs = int(config["epochs"])
    node = _node()
    placed = trial_device(config["proxy"].get("device", "auto"), config.get("gpus"), bool(config.get("gpus_auto")))
    where = {"node": node, "device": placed.label, **({"device_warning": placed.warning} if placed.warning else {})}
    history: list[dict[str, float]] = []
    last: dict[str, Any] = {"val_accuracy": 0.0, "epoch": 0, "final": True, **where}
    t0 = time.perf_counter()

    def on_epoch(epoch: int, m: dict[str, float]) -> None:
        nonlocal last
        history.append({"epoch": epoch, "val_accuracy": float(m["val_accuracy"]),
                        "train_loss": float(m["train_loss"])})
        diverged = not math.isfinite(m["train_loss"])
        last = {"val_accuracy": float(m["val_accuracy"]), "best_accuracy": float(m["best_accuracy"]),
                "train_loss": float(m["train_loss"]) if not diverged else None, "epoch": epoch,
                "history": list(history), "train_s": time.perf_counter() - t0,
                "images_per_s": float(m["images_per_s"]), **where,
                "final": epoch >= epochs or diverged}
        if not last["final"]:
            report(last)  # the last epoch is reported once its weights are saved (see the module docstring)

    try:
        genotype = from_dict(config["genotype"], f"trial {config.get('number')}")
        result = train(genotype, TrainConfig(**{**config["proxy"], "device": placed.device}),
                       num_classes=config.get("num_classes"), callback=on_epoch)
        if config.get("weights_dir") and result.model is not None and not result.diverged:
            _save_weights(result.model, Path(config["weights_dir"]), int(config["number"]))
    except Exception as e:  # noqa: BLE001 - any training failure is the trial's result, not the driver's
        last = {**last, "error": _one_line(e), "final": True}
    report(last)
    return last


def _save_weights(model: Any, weights_dir: Path, number: int) -> None:
    import torch

    weights_dir.mkdir(parents=True, exist_ok=True)
    with atomic_open(weights_dir / f"{number}.pt", "wb") as f:  # never a half-written file under the final name
        torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, f)


def run_trial(config: dict[str, Any]) -> None:
    """The Ray Tune function trainable."""
    from ray import tune

    evaluate(config, tune.report)


def _node() -> str:
    try:
        import ray

        node_id = ray.get_runtime_context().get_node_id() if ray.is_initialized() else None
    except Exception:  # noqa: BLE001 - the host name alone is fine
        node_id = None
    host = platform.node()
    return f"{host}/{node_id[:8]}" if node_id else host


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split()) or e.__class__.__name__
    return f"{e.__class__.__name__}: {text}"[:300]
