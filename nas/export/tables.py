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


def _mean_std(mean: float | None, std: float | None) -> str:
    return "n/a" if mean is None else f"{100 * mean:.2f} ± {100 * (std or 0.0):.2f}"


def _seeds(seeds: Sequence[int] | None) -> str:
    return ", ".join(map(str, seeds)) if seeds else "-"




def final_markdown(rows: Sequence[dict], final: dict[str, Any]) -> list[str]:
    """The test-split table: each member retrained on the evaluation seeds, judged against its tier's best
    reference."""
    lines = ["## Test split (final evaluation)\n",
             f"Every member trained again from scratch with the proxy recipe on seeds {_seeds(final['seeds'])} "
             f"(the search trained on seed {final['search_seed']}) and scored on the test split, which neither "
             "the search nor the choice of members saw. Mean ± standard deviation over the seeds. Reference: the "
             "most accurate one on the test split among `nas baselines`' references (width-scaled to each tier, "
             "same recipe and seeds) that fit the tier's budget; verdict of the member against it by Welch's "
             "t-test (unequal variances).\n",
             f"| tier | test acc. mean (%) | test acc. std (%) | seeds | best reference | reference test acc. (%) "
             f"| p (Welch) | verdict ({final['method']}) |", "|---|---:|---:|---|---|---:|---:|---|"]
    missing = "no reference fits the tier" if final.get("references") else "no references (see the note)"
    for r in rows:
        ref = "-" if r.get("reference") is None else r["reference"]
        lines.append(f"| {r['tier']} | {_num(r.get('test_accuracy'), '.2f', 100)} | "
                     f"{_num(r.get('test_accuracy_std'), '.2f', 100)} | {_seeds(r.get('test_seeds'))} | {ref} | "
                     f"{_mean_std(r.get('reference_test_accuracy'), r.get('reference_test_accuracy_std'))} | "
                     f"{_num(r.get('p_value'), '.3g')} | {r.get('verdict') or missing} |")
    ran = final.get("where") or []
    if ran:
        lines += ["", f"Trained on: {'; '.join(ran)}. A rerun of the same members, seeds and split reads these "
                  "runs back from the study's final_eval.jsonl; trained again, the figures are the same on the same "
                  "device, thread count and torch version, and can differ otherwise (README.md, 'Reproducing the "
                  "figures')."]
    return lines + [""] + [f"Note: {n}\n" for n in final.get("notes", ())]


def untrained_note(meta: dict[str, Any]) -> str:
    """What the exported files are, said plainly: the target models are untrained architectures."""
    res, classes = meta.get("resolution", "?"), meta.get("num_classes", "?")
    proxy = meta.get("proxy") or {}
    recipe = (f" ({proxy.get('dataset')} at {proxy.get('resolution')} px, width {proxy.get('width'):g})"
              if proxy.get("resolution") else "")
    return ("**These are untrained architectures, not trained models.** `model.ts` and `model.onnx` are each "
            f"member's target network ({res} px, {classes} classes) with random weights: a search trains small "
            f"proxies{recipe}, never the target network, so these files predict nothing until you train them on "
            "your data (build the trainable network with `nas.model.build(nas.genotype.load('<tier>/genotype.yaml'"
            "), num_classes=N)`, or let `nas export-best --train --data PATH` train every member at its target "
            "size into `<tier>/trained/`). `proxy_weights.pt` holds the trained proxy the accuracy column was "
            "measured on (proxy resolution and width, a head of the proxy data's classes): "
            "`nas.export.load_proxy('<tier>')` loads it as a module, as `proxy.json` describes.\n")


def family_markdown(rows: Sequence[dict], baselines: Sequence[dict], title: str,
                    final: dict[str, Any] | None = None, meta: dict[str, Any] | None = None) -> str:
    head = ("| tier | budget | from | params (M) | MACs (M) | latency pred. (ms) | latency meas. (ms) "
            "| proxy acc. (%) | weights |\n|---|---|---|---:|---:|---:|---:|---:|---|\n")
    meta = meta or {}
    lines = [f"# {title}\n"]
    if rows and any(r.get("source") != "arch" for r in rows) or meta.get("proxy"):
        lines.append(untrained_note({"resolution": rows[0]["resolution"] if rows else None,
                                     "num_classes": rows[0]["num_classes"] if rows else None, **meta}))
    else:
        lines.append("**An untrained architecture.** `model.ts` and `model.onnx` carry random weights: train the "
                     "network on your data before using it.\n")
    lines += ["Costs of the target network (resolution and classes below); proxy accuracy from the study on its "
              "selection (validation) split (a scaled member was not trained: the accuracy of the trial it was "
              "scaled from is in brackets). Each larger tier's trained member is more accurate than every smaller "
              "one's.\n", head.rstrip("\n")]
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
    trained = [r for r in rows if r.get("trained")]
    if trained:
        lines += ["## Trained on your data (`--train`)\n",
                  "Each member trained at its target size (width 1.0) with the proxy recipe; `<tier>/trained/` "
                  "holds `weights.pt` (for `nas.model.build(genotype, num_classes)`), the fused `model.ts` and "
                  "`model.onnx`, and `train.json`. Validation accuracy on the data's validation split.\n",
                  "| tier | data | classes | epochs | val. acc. (%) | trained on |", "|---|---|---:|---:|---:|---|"]
        for r in trained:
            t = r["trained"]
            lines.append(f"| {r['tier']} | {t['data']} | {t['num_classes']} | {t['epochs']} | "
                         f"{_num(t.get('val_accuracy'), '.2f', 100)} | {t.get('device')}, {t.get('threads')} "
                         f"threads |")
        lines.append("")
    notes = [(r["tier"], n) for r in rows for n in r.get("notes") or ()]
    if notes:
        lines += ["How the members were chosen:\n"] + [f"- {t}: {n}" for t, n in notes] + [""]
    if meta.get("removed"):
        lines.append(f"Removed the folders of an earlier export's tiers: {', '.join(meta['removed'])}.\n")
    if final:
        lines += final_markdown(rows, final)
    if baselines:
        lines += ["## Reference architectures (`nas baselines`)\n",
                  "| name | tier | params (M) | MACs (M) | latency pred. (ms) | latency meas. (ms) | proxy acc. (%) "
                  "| test acc. mean (%) | test acc. std (%) | seeds |",
                  "|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]
        for b in baselines:
            lines.append(f"| {b.get('name', '?')} | {b.get('tier') or 'as given'} | {sig3(b['params'] / 1e6)} | "
                         f"{sig3(b['macs'] / 1e6)} | {_num(b.get('latency_ms'), '.2f')} | "
                         f"{_num(b.get('latency_ms_measured'), '.2f')} | {_num(b.get('accuracy'), '.2f', 100)} | "
                         f"{_num(b.get('test_accuracy'), '.2f', 100)} | {_num(b.get('test_accuracy_std'), '.2f', 100)} "
                         f"| {_seeds(b.get('test_seeds'))} |")
    return "\n".join(lines) + "\n"


def write_tables(out: Path, rows: Sequence[dict], baselines: Sequence[dict], meta: dict[str, Any]) -> None:
    atomic_write_json(out / "family.json", {**meta, "members": list(rows), "baselines": list(baselines)}, indent=1)
    atomic_write(out / "family.md", family_markdown(rows, baselines, meta.get("title", "family"), meta.get("final"),
                                                    meta))
