"""The files of a member: costs, TorchScript and ONNX of the deployed network, the trial's proxy weights."""

from __future__ import annotations

import io
import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nas.errors import InputError
from nas.export.members import Member
from nas.genotype import Genotype
from nas.io import atomic_open, atomic_write, inside
from nas.results.record import TrialRecord
from nas.results.store import StudyDir

ONNX_TOL = 1e-4
OPSET = 17


@dataclass
class Costing:
    """How members are costed: target class count, latency (a LUT or a predictor) and whether to measure it."""

    num_classes: int = 1000
    lut: Any = None  # nas.cost.table.LatencyTable
    measure: bool = True
    measure_target: str = "torch-cpu"
    latency: Any = None  # nas.latency.LatencyPredictor (a space's budgets), used instead of ``lut``
    _measured: dict[str, float | None] = field(default_factory=dict, repr=False)  # by genotype hash

    @property
    def predicts_latency(self) -> bool:
        return self.lut is not None or self.latency is not None

    def costs(self, g: Genotype) -> dict[str, float]:
        from nas.cost.macs import count

        c = count(g, num_classes=self.num_classes)
        out: dict[str, float] = {"macs": c.macs, "params": c.params}
        if self.predicts_latency:
            out["latency_ms"] = self.predict(g)
        return out

    def costs_or_none(self, g: Genotype) -> dict[str, float | None]:
        """Like :meth:`costs`, with latency None when the table cannot cost ``g`` (a reference's blocks)."""
        try:
            return self.costs(g)
        except InputError:
            return {**Costing(self.num_classes).costs(g), "latency_ms": None}

    def predict(self, g: Genotype) -> float | None:
        if self.latency is not None:
            return self.latency(g)
        if self.lut is None:
            return None
        from nas.cost.table import predict
        from nas.latency import on_the_fly

        # A scaled member has channel counts the table never saw: measure those parts, on the table's own device only.
        return predict(g, self.lut, measure=on_the_fly(self.lut))

    def measured(self, g: Genotype) -> float | None:
        """The network's latency measured end to end on this machine (once per architecture: the member
        chosen on a measurement shows that measurement)."""
        if not self.measure:
            return None
        if g.hash not in self._measured:
            self._measured[g.hash] = self._measure(g)
        return self._measured[g.hash]

    def _measure(self, g: Genotype) -> float | None:
        from nas.latency import measure_genotype

        # Same unit as the table's predictions (probe-clock tables carry their probe latency).
        unit, target = (self.lut.unit_ms, self.lut.target) if self.lut is not None else (None, self.measure_target)
        if self.latency is not None:
            p = self.latency
            unit, target = (p.lut.unit_ms, p.lut.target) if p.lut is not None else (p.cache.unit_ms(), p.cache.target)
        return round(measure_genotype(g, target, self.num_classes, unit_ms=unit).ms, 4)


def costing_for_space(space: Any, *, measure: bool = True, study_dir: Path | None = None) -> Costing:
    """Target class count and the latency predictor of the space's budgets: its LUT (when it loads), or the
    table the study's search predicted from (``<study_dir>/latency_table.json``, so its members are predicted
    as the search predicted them, with or without this machine's cache), or this machine's table for its
    target (parts a member needs are timed on demand, :mod:`nas.latency.cache`)."""
    b = getattr(space, "budgets", None)
    costing = Costing(num_classes=space.target.num_classes, measure=measure)
    if b is not None and not getattr(b, "lut", None) and getattr(b, "target", None) and study_dir is not None:
        from nas.latency.cache import STUDY_TABLE

        kept = Path(study_dir) / STUDY_TABLE
        if kept.exists():
            from nas.cost.table import load_lut
            from nas.latency import LatencyPredictor

            costing.latency = LatencyPredictor(b.target, load_lut(kept, b.target), space.target.num_classes)
            return costing
    if b is not None and getattr(b, "lut", None):
        from nas.cost.table import find_table, load_lut

        p = find_table(b.lut, near=Path(getattr(space, "source", ".")).parent)
        costing.lut = load_lut(p, b.target) if p.exists() else None
    elif b is not None and getattr(b, "target", None):
        from nas.latency import predictor

        costing.latency = predictor(b.target, num_classes=space.target.num_classes)
    return costing


EXAMPLE_BATCH = 4  # images traced, exported and compared with onnxruntime


def _example(g: Genotype, batch: int = EXAMPLE_BATCH):
    import torch

    return torch.randn(batch, g.in_chans, g.resolution, g.resolution, generator=torch.Generator().manual_seed(0))


def write_torchscript(module, x, path: Path) -> None:
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TorchScript's deprecation notice; tracing is still the portable form
        traced = torch.jit.trace(module, x, check_trace=False)
        buf = io.BytesIO()
        torch.jit.save(traced, buf)
    atomic_write(path, buf.getvalue())


def write_onnx(module, x, path: Path) -> None:
    import torch

    with warnings.catch_warnings():
        # The TorchScript-based exporter (dynamo=False) needs no onnxscript and handles every op of the space.
        warnings.simplefilter("ignore")
        buf = io.BytesIO()
        torch.onnx.export(module, (x,), buf, dynamo=False, opset_version=OPSET, input_names=["input"],
                          output_names=["logits"], dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    atomic_write(path, buf.getvalue())


def check_onnx(path: Path, reference, x, tol: float = ONNX_TOL) -> float:
    """Max abs difference between onnxruntime and torch outputs; raises if above ``tol``."""
    import numpy as np
    import onnx
    import onnxruntime as ort

    onnx.checker.check_model(str(path))
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"input": x.numpy()})[0]
    want = reference.detach().numpy()
    diff = float(np.max(np.abs(got - want)))
    if not np.allclose(got, want, atol=tol, rtol=tol):
        raise RuntimeError(f"{path}: onnxruntime output differs from torch by {diff:.2e} (> {tol})")
    return diff


def _calibrate_bn(net, x) -> None:
    """Running BN statistics from one batch, so an untrained network's outputs are O(1), not 1e-9.

    At initialisation (running var 1) the activations shrink layer after layer and the logits end
    up so small that a 1e-4 comparison with onnxruntime would pass for any graph.
    """
    import torch

    bns = [m for m in net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average: one batch sets the statistics exactly
    net.train()
    with torch.no_grad():
        net(x)
    net.eval()


def write_model_files(g: Genotype, out: Path, num_classes: int) -> dict[str, Any]:
    """``model.ts`` and ``model.onnx`` of the deployed network; returns the checks' figures."""
    import torch

    from nas.model import build, deploy

    torch.manual_seed(0)
    net = build(g, num_classes=num_classes)
    x = _example(g)
    _calibrate_bn(net, x)
    net = deploy(net.eval())
    with torch.inference_mode():
        ref = net(x)
    write_torchscript(net, x, out / "model.ts")
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit.load's notice
        ts_diff = float((torch.jit.load(str(out / "model.ts"))(x) - ref).abs().max())
    write_onnx(net, x, out / "model.onnx")
    onnx_diff = check_onnx(out / "model.onnx", ref, x)
    return {"torchscript_max_abs_diff": ts_diff, "onnx_max_abs_diff": onnx_diff}


def trial_weights(study_dir: Path | None, record: TrialRecord | None) -> Path | None:
    """The proxy weights a study kept for a trial, if any (where this version keeps them, or earlier ones did).

    A study directory is untrusted: a record's ``weights`` path, and any symbolic link on the way, must stay
    inside the study (``/etc/passwd`` or ``../x`` is an InputError naming the trial)."""
    if study_dir is None or record is None:
        return None
    where = f"{StudyDir(study_dir).trials}: trial {record.number}: weights"
    named = record.get("weights")
    cands = [inside(study_dir, named, where)] if named is not None else []
    n = record.number
    cands += [StudyDir(study_dir).weights / f"{n}.pt", study_dir / "weights" / f"trial_{n}.pt",
              study_dir / "trials" / str(n) / "weights.pt"]
    found = next((p for p in cands if p.is_file()), None)
    return None if found is None else inside(study_dir, found.relative_to(study_dir), where)


def member_row(m: Member, costing: Costing, files: dict[str, Any], weights: Path | None) -> dict[str, Any]:
    costs = costing.costs(m.genotype)
    measured = costing.measured(m.genotype)
    notes = list(m.notes)
    limit = m.limits.get("latency_ms")
    if limit is not None and measured is not None and measured > limit and not any("FLAG" in n for n in notes):
        notes.append(f"FLAG: measured latency {measured:.2f} ms misses its limit {limit:g} ms")
    return {
        "tier": m.tier, "limits": m.limits, "source": m.source, "trial": m.trial, "width": m.width,
        "name": m.genotype.name, "hash": m.genotype.hash, "summary": m.genotype.summary(),
        "resolution": m.genotype.resolution, "num_classes": costing.num_classes,
        "params": int(costs["params"]), "macs": int(costs["macs"]), "latency_ms": costs.get("latency_ms"),
        "latency_ms_measured": measured, "accuracy": m.accuracy, "notes": notes,
        "trial_accuracy": None if m.record is None else m.record.accuracy,
        "weights": None if weights is None else "proxy_weights.pt", **files,
    }


def export_member(m: Member, out: Path, costing: Costing, study_dir: Path | None = None,
                  recipe: Any = None) -> dict[str, Any]:
    """Write a member's folder; ``recipe`` (the study's proxy ``TrainConfig``) describes its proxy weights in
    ``proxy.json`` (:func:`nas.export.proxy.load_proxy`)."""
    from nas.export.proxy import PROXY_JSON, WEIGHTS, write_proxy_info

    d = out / m.tier
    d.mkdir(parents=True, exist_ok=True)
    atomic_write(d / "genotype.yaml", m.genotype.to_yaml())
    weights = trial_weights(study_dir, m.record) if m.source == "trained" else None
    if weights is not None:
        with open(weights, "rb") as src, atomic_open(d / WEIGHTS, "wb") as dst:
            shutil.copyfileobj(src, dst)
        if recipe is not None:
            write_proxy_info(d, m.genotype, recipe)
    else:  # a member re-exported into an old folder: the weights there belonged to another design
        for stale in (WEIGHTS, PROXY_JSON):
            (d / stale).unlink(missing_ok=True)
    files = write_model_files(m.genotype, d, costing.num_classes)
    return member_row(m, costing, files, weights)


#: The files of an exported member folder; a folder holding only these (and at least genotype.yaml) is one.
MEMBER_FILES = frozenset({"genotype.yaml", "model.ts", "model.onnx", "proxy_weights.pt", "proxy.json"})


def stale_members(out: Path, keep: set[str]) -> list[Path]:
    """Member folders of an earlier export into ``out`` that this export does not write (old or renamed
    tiers): folders holding ``genotype.yaml`` and nothing but member files. Anything else is left alone."""
    if not out.is_dir():
        return []
    found = []
    for d in sorted(p for p in out.iterdir() if p.is_dir() and not p.is_symlink() and p.name not in keep):
        names = {p.name for p in d.iterdir()}
        if "genotype.yaml" in names and names <= MEMBER_FILES and all((d / n).is_file() for n in names):
            found.append(d)
    return found
