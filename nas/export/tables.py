"""``family.md`` and ``family.json``: the members and the reference architectures, side by side."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nas.export.files import ONNX_TOL
from nas.export.tiers import fmt_limit
from nas.io import atomic_write, atomic_write_json
from nas.results.front import sig3


def _num(v: float | None, fmt: str, scale_by: float = 1.0) -> str:
    return "n/a" if v is None else format(v * scale_by, fmt)


def _source(r: dict) -> str:
    if r["source"] == "trained":
        return f"trained: trial {r['trial']}"
    if r["source"] == "scaled":
        return f"scaled: trial {r['trial']} x {r['width']:g} width"
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
        budget = ", ".join(fmt_limit(m, b) for m, b in r["limits"].items()) or "-"
        lines.append(f"| {r['tier']} | {budget} | {_source(r)} | {sig3(r['params'] / 1e6)} | {sig3(r['macs'] / 1e6)} | "
                     f"{_num(r['latency_ms'], '.2f')} | {_num(r['latency_ms_measured'], '.2f')} | {acc} | "
                     f"{r['weights'] or ('not kept' if r['source'] == 'trained' else 'not trained')} |")
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
    atomic_write_json(out / "family.json", {**meta, "members": list(rows), "baselines": list(baselines)}, indent=1)
    atomic_write(out / "family.md", family_markdown(rows, baselines, meta.get("title", "family")))
