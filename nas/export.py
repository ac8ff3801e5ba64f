"""``nas export-best``: a MixNet-like family (S/M/L) from a study's Pareto front, as deployable files.

Tiers
-----
A tier is a set of limits on the *target* network (``macs``, ``params``,
``latency_ms``), declared in the space's ``family:`` section or on the
command line (:func:`parse_tier_budgets`). Its member is chosen from the
front of the study's objectives plus the tier's cost metrics:

1. *within* the tier = every limit met;
2. a front architecture is *near* the tier when it is within it and uses at
   least ``1 - NEAR`` (85 %) of one of its limits: MixNet's S/M/L are about
   1.45x apart in MACs, so 15 % keeps neighbouring tiers from sharing a
   member while leaving room for a front that is not dense;
3. if some front architecture is near, the member is the most accurate
   front architecture within the tier (usually the near one itself);
4. otherwise the front architecture nearest the tier (smallest largest
   ``|log(cost / limit)|`` over its limits) is compound-scaled in width,
   as MixNet-L is MixNet-M x 1.3: the width multiplier is found by
   bisection as the largest one whose scaled network (``nas.genotype.scale``,
   channels rounded to multiples of 8, head kept) meets every limit, so the
   cost lands just under the budget. A scaled member has no proxy accuracy
   of its own (it was never trained); the table says which trial it came from;
5. channels round to multiples of 8, so on a small network one width step
   can jump far below the budget: when the most accurate front architecture
   within the tier is at least as close to the budget as the scaled network,
   it is the member instead (it was trained).

Files per member (``<out>/<tier>/``): ``genotype.yaml``; ``proxy_weights.pt``
when the study kept the trained proxy's weights (the proxy network's, see
``nas.proxy``: the target network itself is not trained by a search);
``model.ts``, the fused (``nas.model.deploy``) network traced with
TorchScript; ``model.onnx``, checked with onnxruntime against the torch
outputs to 1e-4. ``family.md`` and ``family.json`` list the members and the
reference architectures evaluated by ``nas baselines``.
"""

from __future__ import annotations

import json
import math
import shutil
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nas.config import COST_METRICS
from nas.errors import InputError
from nas.genotype import Genotype, from_dict, scale
from nas.search.pareto import sig3

NEAR = 0.15
ONNX_TOL = 1e-4
OPSET = 17

CostFn = Callable[[Genotype], dict[str, float]]


@dataclass(frozen=True)
class Tier:
    name: str
    limits: dict[str, float]  # metric -> budget of the target network

    def within(self, costs: dict[str, float | None]) -> bool:
        return all(costs.get(m) is not None and costs[m] <= b for m, b in self.limits.items())

    def near(self, costs: dict[str, float | None], tol: float = NEAR) -> bool:
        return self.within(costs) and any(costs[m] >= (1 - tol) * b for m, b in self.limits.items())

    def distance(self, costs: dict[str, float | None]) -> float:
        return max(abs(math.log(max(costs[m], 1e-12) / b)) if costs.get(m) is not None else math.inf
                   for m, b in self.limits.items())

    def describe(self) -> str:
        return ", ".join(_fmt_limit(m, b) for m, b in self.limits.items())


def _fmt_limit(metric: str, v: float) -> str:
    if metric == "latency_ms":
        return f"latency <= {v:g} ms"
    return f"{metric} <= {v / 1e6:g}M"


# -- tiers -------------------------------------------------------------------

_UNITS = {"": 1.0, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9}


def _parse_budget(tier: str, text: str, source: str) -> tuple[str, float]:
    """``250e6``/``250M`` (MACs), ``12ms`` (latency), ``params:5M``, ``macs:250M``, ``latency_ms:12``."""
    t = text.strip()
    metric = None
    if ":" in t:
        metric, t = (s.strip() for s in t.split(":", 1))
        if metric not in COST_METRICS:
            raise InputError(f"{source}: {tier}: unknown metric {metric!r} (known: {', '.join(COST_METRICS)})")
    if t.endswith("ms"):
        if metric not in (None, "latency_ms"):
            raise InputError(f"{source}: {tier}: 'ms' is a latency, not {metric}")
        metric, t = "latency_ms", t[:-2]
    unit = t[-1:] if t[-1:] in ("k", "K", "M", "G") else ""
    try:
        v = float(t[: len(t) - len(unit)]) * _UNITS[unit]
    except ValueError:
        raise InputError(f"{source}: {tier}: expected a budget such as 250e6, 250M or 12ms, got {text!r}") from None
    if not v > 0 or not math.isfinite(v):
        raise InputError(f"{source}: {tier}: budget must be a positive number, got {text!r}")
    return metric or "macs", v


def parse_tier_budgets(text: str, source: str = "--tier-budget") -> dict[str, Tier]:
    """``"s=250e6,m=360M,l=12ms"`` -> tiers; ``s=250e6+params:5M`` gives a tier two limits."""
    tiers: dict[str, Tier] = {}
    for item in filter(None, (s.strip() for s in text.split(","))):
        name, sep, rhs = item.partition("=")
        name = name.strip()
        if not sep or not name or not rhs.strip():
            raise InputError(f"{source}: {item!r}: expected NAME=BUDGET, e.g. s=250e6 or m=12ms")
        limits = dict(_parse_budget(name, part, source) for part in rhs.split("+"))
        tiers[name] = Tier(name, limits)
    if not tiers:
        raise InputError(f"{source}: expected NAME=BUDGET[,NAME=BUDGET...], got {text!r}")
    return tiers


def space_tiers(space: Any) -> dict[str, Tier]:
    tiers = {}
    for name, t in (getattr(space, "family", None) or {}).items():
        limits = {m: float(getattr(t, m)) for m in COST_METRICS if getattr(t, m, None) is not None}
        if limits:
            tiers[name] = Tier(name, limits)
    return tiers


def select_tiers(space: Any, names: Sequence[str] | None = None, budgets: str | None = None,
                 source: str = "<space>") -> list[Tier]:
    """The tiers to export: the space's family, overridden/extended by ``--tier-budget``, filtered by ``--tiers``."""
    tiers = space_tiers(space)
    if budgets:
        tiers.update(parse_tier_budgets(budgets))
    if names:
        missing = [n for n in names if n not in tiers]
        if missing:
            known = ", ".join(tiers) or "none"
            raise InputError(f"{source}: family.{missing[0]}: no such tier (declared: {known}); "
                             f"give its budget with --tier-budget {missing[0]}=250e6")
        tiers = {n: tiers[n] for n in names}
    if not tiers:
        raise InputError(f"{source}: family: no tiers declared; add a family section "
                         "({s: {macs: 250e6}, ...}) or pass --tier-budget s=250e6,m=360e6")
    return list(tiers.values())


# -- members -----------------------------------------------------------------

@dataclass
class Member:
    tier: str
    genotype: Genotype
    source: str  # "front" | "scaled" | "arch"
    trial: int | None = None  # the trial it is (front) or was scaled from (scaled)
    width: float = 1.0
    accuracy: float | None = None  # proxy accuracy; None for a scaled member (never trained)
    limits: dict[str, float] = field(default_factory=dict)
    record: dict | None = None


def _record_costs(r: dict) -> dict[str, float | None]:
    lat = r.get("latency_ms")
    return {"macs": r.get("macs"), "params": r.get("params"), "latency_ms": lat}


def scale_to_budget(g: Genotype, tier: Tier, cost_fn: CostFn, *, lo: float = 0.05, hi: float = 1.0,
                    iters: int = 40) -> tuple[Genotype, float]:
    """The widest ``scale(g, w)`` meeting every limit of ``tier`` (bisection on ``w``).

    Costs are step functions of ``w`` (channels round to multiples of 8) and
    grow with it, so the largest feasible ``w`` gives the network whose cost
    lands just under the budget.
    """
    def ok(w: float) -> bool:
        return tier.within(cost_fn(scale(g, w)))

    if not ok(lo):
        raise InputError(f"family.{tier.name}: {tier.describe()} is below even {g.name or 'the nearest member'} "
                         f"scaled to width {lo}")
    while ok(hi):
        lo, hi = hi, hi * 2
        if hi > 16:
            raise InputError(f"family.{tier.name}: {tier.describe()} is above the nearest member scaled 16x")
    for _ in range(iters):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if ok(mid) else (lo, mid)
    return _round_width(g, lo)


def _round_width(g: Genotype, w: float, iters: int = 30) -> tuple[Genotype, float]:
    """The roundest multiplier giving the same network as ``w``: 1.3, not 1.3317, for MixNet-L."""
    target = scale(g, w)
    if target == g:
        return g, 1.0
    lo, hi = 0.0, w  # smallest multiplier still giving ``target`` lies in (lo, hi]
    for _ in range(iters):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if scale(g, mid) == target else (mid, hi)
    for digits in (1, 2, 3, 4):
        # ``hi`` may sit a hair above a boundary the round number is exactly on (MixNet-L: 120 x 1.3 = 156 -> 160).
        for r in (round(hi, digits), math.ceil(hi * 10**digits) / 10**digits):
            if r <= w and scale(g, r) == target:
                return target, r
    return target, w


def choose_member(front: Sequence[dict], tier: Tier, cost_fn: CostFn, *, near: float = NEAR) -> Member:
    """The tier's member from ``front`` (feasible non-dominated trial records); see the module docstring."""
    if not front:
        raise InputError(f"family.{tier.name}: the study has no feasible trained architecture to choose from")
    inside = [r for r in front if tier.within(_record_costs(r))]
    if any(tier.near(_record_costs(r), near) for r in inside):
        best = max(inside, key=lambda r: (r.get("accuracy") or 0.0, -r["macs"]))
        g = from_dict(best["genotype"], f"trial {best['number']}")
        return Member(tier.name, g.replace(name=tier.name), "front", best["number"], 1.0,
                      best.get("accuracy"), dict(tier.limits), best)
    nearest = min(front, key=lambda r: (tier.distance(_record_costs(r)), -(r.get("accuracy") or 0.0)))
    g = from_dict(nearest["genotype"], f"trial {nearest['number']}")
    scaled, w = scale_to_budget(g, tier, cost_fn)
    if scaled == g:  # the channel rounding leaves no width between this network and the budget
        return Member(tier.name, g.replace(name=tier.name), "front", nearest["number"], 1.0,
                      nearest.get("accuracy"), dict(tier.limits), nearest)
    if inside:
        # Channels round to multiples of 8, so on a small network one width step can jump far below the
        # budget; a trained member within the budget that is at least as close to it is the better choice.
        best = max(inside, key=lambda r: (r.get("accuracy") or 0.0, -r["macs"]))
        if tier.distance(_record_costs(best)) <= tier.distance(cost_fn(scaled)):
            g = from_dict(best["genotype"], f"trial {best['number']}")
            return Member(tier.name, g.replace(name=tier.name), "front", best["number"], 1.0,
                          best.get("accuracy"), dict(tier.limits), best)
    return Member(tier.name, scaled.replace(name=tier.name), "scaled", nearest["number"], w, None,
                  dict(tier.limits), nearest)


# -- cost models -------------------------------------------------------------

@dataclass
class Costing:
    """How members are costed: target class count, an optional LUT and whether to measure latency."""

    num_classes: int = 1000
    lut: Any = None  # nas.cost.table.LatencyTable
    measure: bool = True
    measure_target: str = "torch-cpu"

    def costs(self, g: Genotype) -> dict[str, float]:
        from nas.cost.macs import count

        c = count(g, num_classes=self.num_classes)
        out: dict[str, float] = {"macs": c.macs, "params": c.params}
        if self.lut is not None:
            out["latency_ms"] = self.predict(g)
        return out

    def costs_or_none(self, g: Genotype) -> dict[str, float | None]:
        """Like :meth:`costs`, with latency None when the table cannot cost ``g`` (a reference's blocks)."""
        try:
            return self.costs(g)
        except InputError:
            return {**Costing(self.num_classes).costs(g), "latency_ms": None}

    def predict(self, g: Genotype) -> float | None:
        if self.lut is None:
            return None
        from nas.cost.table import predict
        from nas.latency import on_the_fly

        # A scaled member has channel counts the table never saw: measure those parts, on the table's own device only.
        return predict(g, self.lut, measure=on_the_fly(self.lut))

    def measured(self, g: Genotype) -> float | None:
        if not self.measure:
            return None
        from nas.latency import measure_genotype

        # Same unit as the table's predictions (probe-clock tables carry their probe latency).
        unit = self.lut.unit_ms if self.lut is not None else None
        return round(measure_genotype(g, self.measure_target, self.num_classes, unit_ms=unit).ms, 4)


def costing_for_space(space: Any, *, measure: bool = True) -> Costing:
    """Target class count and (when the space names one that loads) the latency LUT of its budgets."""
    lut = None
    b = getattr(space, "budgets", None)
    if b is not None and getattr(b, "lut", None):
        from nas.cost.table import find_table, load_lut

        p = find_table(b.lut, near=Path(getattr(space, "source", ".")).parent)
        lut = load_lut(p, b.target) if p.exists() else None
    return Costing(num_classes=space.target.num_classes, lut=lut, measure=measure)


# -- files -------------------------------------------------------------------

def _example(g: Genotype, batch: int = 4):
    import torch

    return torch.randn(batch, g.in_chans, g.resolution, g.resolution, generator=torch.Generator().manual_seed(0))


def write_torchscript(module, x, path: Path) -> None:
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TorchScript's deprecation notice; tracing is still the portable form
        traced = torch.jit.trace(module, x, check_trace=False)
    traced.save(str(path))


def write_onnx(module, x, path: Path) -> None:
    import torch

    with warnings.catch_warnings():
        # The TorchScript-based exporter (dynamo=False) needs no onnxscript and handles every op of the space.
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (x,), str(path), dynamo=False, opset_version=OPSET, input_names=["input"],
                          output_names=["logits"], dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})


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


def trial_weights(study_dir: Path | None, record: dict | None) -> Path | None:
    """The proxy weights a study kept for a trial, if any."""
    if study_dir is None or record is None:
        return None
    named = record.get("weights")
    cands = [study_dir / named] if named else []
    n = record.get("number")
    cands += [study_dir / "weights" / f"{n}.pt", study_dir / "weights" / f"trial_{n}.pt",
              study_dir / "trials" / str(n) / "weights.pt"]
    return next((p for p in cands if p.is_file()), None)


def member_row(m: Member, costing: Costing, files: dict[str, Any], weights: Path | None) -> dict[str, Any]:
    costs = costing.costs(m.genotype)
    return {
        "tier": m.tier, "limits": m.limits, "source": m.source, "trial": m.trial, "width": m.width,
        "name": m.genotype.name, "hash": m.genotype.hash, "summary": m.genotype.summary(),
        "resolution": m.genotype.resolution, "num_classes": costing.num_classes,
        "params": int(costs["params"]), "macs": int(costs["macs"]), "latency_ms": costs.get("latency_ms"),
        "latency_ms_measured": costing.measured(m.genotype), "accuracy": m.accuracy,
        "trial_accuracy": None if m.record is None else m.record.get("accuracy"),
        "weights": None if weights is None else "proxy_weights.pt", **files,
    }


def export_member(m: Member, out: Path, costing: Costing, study_dir: Path | None = None) -> dict[str, Any]:
    d = out / m.tier
    d.mkdir(parents=True, exist_ok=True)
    (d / "genotype.yaml").write_text(m.genotype.to_yaml())
    weights = trial_weights(study_dir, m.record) if m.source == "front" else None
    if weights is not None:
        shutil.copyfile(weights, d / "proxy_weights.pt")
    files = write_model_files(m.genotype, d, costing.num_classes)
    return member_row(m, costing, files, weights)


# -- tables ------------------------------------------------------------------

def _num(v: float | None, fmt: str, scale_by: float = 1.0) -> str:
    return "n/a" if v is None else format(v * scale_by, fmt)


def _source(r: dict) -> str:
    if r["source"] == "front":
        return f"front, trial {r['trial']}"
    if r["source"] == "scaled":
        return f"trial {r['trial']} x {r['width']:g} width"
    return r["source"]


def family_markdown(rows: Sequence[dict], baselines: Sequence[dict], title: str) -> str:
    head = ("| tier | budget | from | params (M) | MACs (M) | latency pred. (ms) | latency meas. (ms) "
            "| proxy acc. (%) | weights |\n|---|---|---|---:|---:|---:|---:|---:|---|\n")
    lines = [f"# {title}\n", "Costs of the target network (resolution and classes below); proxy accuracy from "
             "the study (a scaled member was not trained: the accuracy of the trial it was scaled from is "
             "in brackets).\n", head.rstrip("\n")]
    for r in rows:
        acc = _num(r["accuracy"], ".2f", 100)
        if r["accuracy"] is None and r.get("trial_accuracy") is not None:
            acc = f"not trained ({100 * r['trial_accuracy']:.2f})"
        budget = ", ".join(_fmt_limit(m, b) for m, b in r["limits"].items()) or "-"
        lines.append(f"| {r['tier']} | {budget} | {_source(r)} | {sig3(r['params'] / 1e6)} | {sig3(r['macs'] / 1e6)} | "
                     f"{_num(r['latency_ms'], '.2f')} | {_num(r['latency_ms_measured'], '.2f')} | {acc} | "
                     f"{r['weights'] or 'not trained'} |")
    if rows:
        r0 = rows[0]
        lines.append(f"\nResolution {r0['resolution']}, {r0['num_classes']} classes. Exported files per tier: "
                     "genotype.yaml, model.ts (fused, TorchScript), model.onnx (onnxruntime matches torch to "
                     f"{ONNX_TOL:g}).\n")
    if baselines:
        lines += ["## Reference architectures (`nas baselines`)\n",
                  "| name | params (M) | MACs (M) | latency pred. (ms) | latency meas. (ms) | proxy acc. (%) |",
                  "|---|---:|---:|---:|---:|---:|"]
        for b in baselines:
            lines.append(f"| {b.get('name', '?')} | {sig3(b['params'] / 1e6)} | {sig3(b['macs'] / 1e6)} | "
                         f"{_num(b.get('latency_ms'), '.2f')} | {_num(b.get('latency_ms_measured'), '.2f')} | "
                         f"{_num(b.get('accuracy'), '.2f', 100)} |")
    return "\n".join(lines) + "\n"


def write_tables(out: Path, rows: Sequence[dict], baselines: Sequence[dict], meta: dict[str, Any]) -> None:
    (out / "family.json").write_text(json.dumps({**meta, "members": list(rows), "baselines": list(baselines)},
                                                indent=1) + "\n")
    (out / "family.md").write_text(family_markdown(rows, baselines, meta.get("title", "family")))


# -- the two entry points ------------------------------------------------------

def read_study(study_dir: Path) -> tuple[Any, list[dict]]:
    """The space copy and the finished trials of a study directory (InputError when it is not one)."""
    from nas.plots import read_records
    from nas.space import load_space

    study_dir = Path(study_dir)
    if not (study_dir / "trials.jsonl").is_file():
        raise InputError(f"{study_dir}: trials.jsonl: not a study directory (no trials.jsonl)")
    if not (study_dir / "space.yaml").is_file():
        raise InputError(f"{study_dir}: space.yaml: not a study directory (no copy of the space)")
    return load_space(study_dir / "space.yaml"), read_records(study_dir)


def study_front(records: Sequence[dict], space: Any, tier: Tier) -> list[dict]:
    """Front of the study's objectives plus the tier's cost metrics (so the tier's cost is traded off too)."""
    from nas.search.pareto import front

    objectives = [{"metric": o.metric, "direction": o.direction or ("maximize" if o.metric == "accuracy"
                                                                    else "minimize")} for o in space.objectives]
    have = {o["metric"] for o in objectives}
    objectives += [{"metric": m, "direction": "minimize"} for m in tier.limits if m not in have]
    if "accuracy" not in have:
        objectives.insert(0, {"metric": "accuracy", "direction": "maximize"})
    usable = [r for r in records if r.get("accuracy") is not None
              and all(r.get(m) is not None for m in tier.limits)]
    return front(usable, objectives)


def export_family(study_dir: Path, out: Path | None = None, tiers: Sequence[str] | None = None,
                  tier_budgets: str | None = None, *, measure: bool = True, near: float = NEAR) -> Path:
    """Choose every tier's member, then write the files; nothing is written when an input is bad."""
    from nas.plots import load_baselines

    study_dir = Path(study_dir)
    space, records = read_study(study_dir)
    chosen = select_tiers(space, tiers, tier_budgets, str(study_dir / "space.yaml"))
    costing = costing_for_space(space, measure=measure)
    if any("latency_ms" in t.limits for t in chosen) and costing.lut is None:
        raise InputError(f"{study_dir / 'space.yaml'}: budgets.lut: a latency tier needs the space's latency LUT")
    members = [choose_member(study_front(records, space, t), t, costing.costs, near=near) for t in chosen]
    for m in members:
        m.genotype = m.genotype.replace(name=f"{space.name}_{m.tier}")
    out = Path(out) if out is not None else study_dir / "family"
    out.mkdir(parents=True, exist_ok=True)
    rows = [export_member(m, out, costing, study_dir) for m in members]
    meta = {"title": f"{space.name} family", "study": str(study_dir), "near": near,
            "resolution": space.target.resolution, "num_classes": space.target.num_classes}
    write_tables(out, rows, load_baselines(study_dir), meta)
    return out


def export_arch(genotype: Genotype, out: Path, *, num_classes: int = 1000, measure: bool = True,
                lut: Any = None) -> Path:
    """Export one architecture into ``out/<name>/`` with a one-row ``family.md``/``family.json``."""
    costing = Costing(num_classes=num_classes, lut=lut, measure=measure)
    name = genotype.name or genotype.hash
    m = Member(name, genotype, "arch")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    row = export_member(m, out, costing)
    write_tables(out, [row], [], {"title": name, "resolution": genotype.resolution, "num_classes": num_classes})
    return out / name



# -- baselines -------------------------------------------------------------------

REFERENCE_DIR = Path(__file__).resolve().parent.parent / "search_spaces" / "reference"


def reference_files(names: Sequence[str] | None = None) -> list[Path]:
    """The shipped reference genotypes (``search_spaces/reference/*.yaml``), optionally by name."""
    files = sorted(REFERENCE_DIR.glob("*.yaml"))
    if names:
        by_name = {f.stem: f for f in files}
        missing = [n for n in names if n not in by_name]
        if missing:
            raise InputError(f"--refs: {missing[0]!r}: no such reference (shipped: {', '.join(by_name)})")
        files = [by_name[n] for n in names]
    return files


def evaluate_baselines(space: Any, names: Sequence[str] | None = None, *, seeds: int = 1, measure: bool = False,
                       epochs: int | None = None, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Train every reference architecture with the space's proxy recipe and cost it like a trial.

    Costs are those of the reference at the space's target resolution and class count (as every
    trial's); accuracy is the mean over ``seeds`` proxy trainings (seeds ``proxy.seed + i``).
    """
    import dataclasses
    import statistics

    from nas.genotype import load
    from nas.train import train

    costing = costing_for_space(space, measure=measure)
    proxy = dataclasses.replace(space.proxy, epochs=epochs) if epochs else space.proxy
    refs = []
    for f in reference_files(names):
        g = load(f).replace(resolution=space.target.resolution, in_chans=space.target.in_chans)
        costs = costing.costs_or_none(g)
        results = [train(g, dataclasses.replace(proxy, seed=proxy.seed + i)) for i in range(seeds)]
        accs = [r.accuracy for r in results]
        entry = {"name": f.stem, "file": str(f), "hash": g.hash, "genotype": g.to_dict(),
                 "macs": int(costs["macs"]), "params": int(costs["params"]), "latency_ms": costs.get("latency_ms"),
                 "latency_ms_measured": costing.measured(g), "accuracy": statistics.fmean(accs),
                 "accuracy_std": statistics.pstdev(accs) if len(accs) > 1 else 0.0, "accuracies": accs,
                 "best_accuracy": max(r.best_accuracy for r in results), "epochs": results[0].epochs_run,
                 "train_s": sum(r.train_s for r in results), "status": "complete"}
        refs.append(entry)
        if log:
            log(f"{f.stem}: {100 * entry['accuracy']:.2f} % proxy accuracy, {entry['macs'] / 1e6:.1f} M MACs, "
                f"{entry['params'] / 1e6:.2f} M params")
    return {"space": space.name, "target": space.target.model_dump(), "proxy": dataclasses.asdict(proxy),
            "seeds": seeds, "references": refs, "updated": time.time()}


def write_baselines(study_dir: Path, data: dict[str, Any]) -> Path:
    study_dir.mkdir(parents=True, exist_ok=True)
    p = study_dir / "baselines.json"
    tmp = p.with_name(".baselines.json.tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    tmp.replace(p)
    return p
