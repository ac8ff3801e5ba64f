"""``nas export-best --train --data PATH``: train each exported member at target size on the user's data set.

The search trains proxies only; the exported ``model.ts``/``model.onnx`` are untrained architectures. This
trains the member itself (the genotype at its target resolution and width 1.0) with the space's proxy recipe
(optimizer, schedule, augmentation, batch size; ``epochs`` may be set) on ``PATH`` (or a built-in data set),
its head sized to that data's classes, and writes ``<tier>/trained/``: ``weights.pt`` (the ``state_dict`` of
``nas.model.build(genotype, num_classes)``), ``model.ts`` and ``model.onnx`` of the fused trained network,
and ``train.json`` (data, epochs, validation accuracy, device, threads). Nothing prints: ``progress`` hears
each epoch.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from nas.config import EMBEDDED_DATASETS
from nas.errors import InputError
from nas.export.files import check_onnx, write_onnx, write_torchscript
from nas.export.members import Member
from nas.io import atomic_open, atomic_write_json

#: ``(tier, epoch, epochs, metrics)`` after each trained epoch.
EpochFn = Callable[[str, int, int, dict[str, float]], None]


def target_recipe(recipe: Any, data: str, resolution: int, epochs: int | None = None) -> Any:
    """The proxy recipe retargeted: the member's own resolution, width 1.0, the user's data."""
    where = {"dataset": data, "path": None} if data in EMBEDDED_DATASETS else {"dataset": "auto", "path": data}
    if where["path"] is not None and not Path(data).expanduser().exists():
        raise InputError(f"--data: {data!r} is neither a built-in data set ({', '.join(EMBEDDED_DATASETS)}) nor "
                         "an existing path")
    fields = {f.name for f in dataclasses.fields(recipe)}
    changes = {"resolution": int(resolution), "width": 1.0, **where,
               **({"epochs": int(epochs)} if epochs is not None else {})}
    return dataclasses.replace(recipe, **{k: v for k, v in changes.items() if k in fields})


def train_members(members: Sequence[Member], out: Path, recipe: Any, data: str, *, epochs: int | None = None,
                  progress: EpochFn | None = None) -> list[dict[str, Any]]:
    """Train every member at target size on ``data`` and write ``<out>/<tier>/trained/``; one summary per
    member (the ``trained`` field of its family row)."""
    import torch

    from nas.export.final import where_it_ran
    from nas.model import deploy
    from nas.train import train

    out_rows = []
    for m in members:
        cfg = target_recipe(recipe, data, m.genotype.resolution, epochs)
        n_epochs = int(getattr(cfg, "epochs", 0) or 0)

        def on_epoch(epoch: int, metrics: dict[str, float], tier: str = m.tier, total: int = n_epochs) -> None:
            if progress is not None:
                progress(tier, epoch, total, dict(metrics))

        r = train(m.genotype, cfg, callback=on_epoch)
        if r.model is None:
            raise InputError(f"{m.tier}: training returned no model")
        d = out / m.tier / "trained"
        d.mkdir(parents=True, exist_ok=True)
        net = r.model.to("cpu").eval()
        with atomic_open(d / "weights.pt", "wb") as f:
            torch.save(net.state_dict(), f)
        fused = deploy(net)
        x = torch.randn(4, m.genotype.in_chans, m.genotype.resolution, m.genotype.resolution,
                        generator=torch.Generator().manual_seed(0))
        with torch.inference_mode():
            ref = fused(x)
        write_torchscript(fused, x, d / "model.ts")
        write_onnx(fused, x, d / "model.onnx")
        onnx_diff = check_onnx(d / "model.onnx", ref, x)
        summary = {"data": Path(data).name if data not in EMBEDDED_DATASETS else data, "epochs": r.epochs_run,
                   "val_accuracy": r.accuracy, "num_classes": int(ref.shape[1]), "train_s": r.train_s,
                   "onnx_max_abs_diff": onnx_diff, **where_it_ran(r.device),
                   "recipe": {k: v for k, v in dataclasses.asdict(cfg).items() if k != "path"}}
        atomic_write_json(d / "train.json", summary, indent=1)
        out_rows.append(summary)
    return out_rows
