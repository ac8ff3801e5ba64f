"""Searched family vs hand-designed references, at matched MACs and at matched measured latency.

    python -m benchmarks.bench_family [--quick] [--study DIR | --search-trials N] [--space mixnet.yaml]
                                      [--data PATH] [--tiers s,m,l] [--seeds 3] [--workers 2]
                                      [--lut PATH | --latency measured|auto|off] [--json OUT]

The family is what ``nas export-best`` would choose (``nas.export.tier_members``:
the most accurate design the study trained in each tier's band, else the
nearest tier's member scaled in width) from ``--study DIR`` or from a search
this benchmark runs first (``--search-trials N`` trials of the space, its
proxy recipe). Each reference (MixNet-S/M, GhostNet 1.0, MobileNetV2 1.0,
MobileNetV3-Large 1.0, at the space's target resolution and class count) is
compound-scaled in width to the widest network within the tier's MAC budget
(``nas.export.scale_references``, as ``nas baselines`` does). Then every
member and every scaled reference is trained from scratch with the same proxy
recipe on the same seeds (``proxy.seed + 1 + i``: not the seed the search
selected on) and scored on the TEST split, which neither the search nor the
choice of members saw (``nas.export.run_final``, the evaluation ``nas
export-best`` runs; with ``--out`` its runs are kept and a rerun resumes).

Verdicts (``nas.export.welch``): Welch's t-test over the seeds' test
accuracies, two-sided, alpha 0.05: ``better``/``worse`` than the best
reference of the tier, else ``no significant difference`` (``untested`` with
one seed). Matched latency compares each member with the most accurate
reference variant (any tier) whose latency is at most the member's:
``worse`` there means a hand-designed network is both faster and more accurate.
The latency is each model's whole deployed network measured on this machine
(``--latency measured``, the default: ``nas describe --measure``'s protocol,
the latency table's probe unit), the prediction printed beside it; ``--latency
auto`` matches on predicted latency only.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from benchmarks._machine import banner
from benchmarks._spaces import with_length
from nas.config import length_text, schedule
from nas.errors import InputError
from nas.export.final import eval_seeds
from nas.genotype import Genotype
from nas.io import atomic_write, read_yaml

REFERENCES = ("mixnet_s", "mixnet_m", "ghostnet_100", "mobilenetv2_100", "mobilenetv3_large_100")
FULL = {"tiers": 3, "seeds": 3}
# Quick mode checks the pipeline end to end in minutes; its accuracies are too short-trained to rank anything.
QUICK = {"tiers": 2, "seeds": 2, "search_trials": 4, "epochs": 1, "subsample": 512}
# timing a 224 px network's parts in context (measured here: 26 s for 12), then measuring it whole (--latency
# measured: 4.0 s each on an idle 2-core VM, bench_latency's idle runs)
LATENCY_S_PER_MODEL = 2.5 + 4.0
SPAWN_S = 1.0  # per training: pickling the job, data on first use in each worker


# -- the models --------------------------------------------------------------------------------------------------

@dataclass
class Model:
    tier: str
    name: str
    kind: str  # "searched" | "reference"
    genotype: Genotype
    width: float
    macs: int
    params: int
    source: str = ""  # where a searched member came from (front trial / scaled trial)
    latency_ms: float | None = None  # what latency is matched on: measured with --latency measured, else predicted
    predicted_ms: float | None = None
    measured: bool = False
    accs: list[float] = field(default_factory=list)  # test-split accuracy per seed
    val_accs: list[float] = field(default_factory=list)
    train_s: list[float] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{self.tier}/{self.name}"

    @property
    def mean(self) -> float | None:
        from nas.export.significance import spread

        return spread(self.accs)[0] if self.accs else None

    @property
    def std(self) -> float:
        from nas.export.significance import spread

        return spread(self.accs)[1] if self.accs else 0.0

    def row(self) -> dict[str, Any]:
        return {"tier": self.tier, "name": self.name, "kind": self.kind, "width": self.width, "macs": self.macs,
                "params": self.params, "latency_ms": self.latency_ms, "predicted_latency_ms": self.predicted_ms,
                "latency_measured": self.measured, "test_accuracies": self.accs,
                "test_mean": self.mean, "test_std": self.std, "val_accuracies": self.val_accs,
                "train_s": self.train_s, "source": self.source, "hash": self.genotype.hash,
                "genotype": self.genotype.to_dict()}


def reference_genotypes(space: Any, names: tuple[str, ...] = REFERENCES) -> dict[str, Genotype]:
    """The benchmark's references at the space's target resolution and input channels."""
    from nas.export import reference_genotypes as shipped

    return shipped(space, names)


def family_members(study_dir: Path, space: Any, tier_names: list[str]) -> list[Any]:
    """``nas export-best``'s members for these tiers (``nas.export.Member``), without writing any file."""
    from nas.export import costing_for_space, read_study, select_tiers, tier_members

    _, records = read_study(study_dir)
    source = str(study_dir / "space.yaml")
    everything = select_tiers(space, None, None, source)
    tiers = select_tiers(space, tier_names, None, source)
    costing = costing_for_space(space, measure=False)
    return tier_members(records, space, tiers, costing.costs, all_tiers=everything)


def plan_models(members: list[Any], space: Any, refs: dict[str, Genotype]) -> tuple[list[Model], list[str]]:
    """Each member and, per tier, every reference scaled to the tier's MAC budget; notes on what was skipped."""
    from nas.export import Tier, scale_references
    from nas.export.matching import analytic_costs

    costs = analytic_costs(space.target.num_classes)
    models, notes = [], []
    for m in members:
        c = costs(m.genotype)
        src = f"trial {m.trial}" + (f" x{m.width:g}" if m.source == "scaled" else "")
        models.append(Model(m.tier, f"searched ({src})", "searched", m.genotype, m.width, int(c["macs"]),
                            int(c["params"]), source=src))
        budget = m.limits.get("macs", c["macs"])  # a tier without a MAC limit: match the member's MACs
        scaled, missed = scale_references(refs, Tier(m.tier, {"macs": float(budget)}), costs)
        notes += missed
        for r in scaled:
            rc = costs(r.genotype)
            models.append(Model(m.tier, r.name, "reference", r.genotype, r.width, int(rc["macs"]), int(rc["params"])))
    return models, notes


# -- the benchmark's space and search ------------------------------------------------------------------------------

def bench_space(base: Path, out_dir: Path, *, epochs: int | None = None, subsample: int | None = None,
                data: str | None = None, trials: int | None = None, concurrency: int | None = None) -> Path:
    """A copy of ``base`` with the proxy/search overrides of this run and tracking off; returns its path."""
    doc = read_yaml(base, what="space")
    proxy = dict(doc.get("proxy") or {})
    if epochs is not None:
        proxy = with_length(proxy, {"epochs": int(epochs)})
    if subsample is not None:
        proxy["subsample"] = int(subsample)
    if data is not None:
        proxy.update(dataset="auto", path=str(Path(data).expanduser().resolve()))
    search = dict(doc.get("search") or {})
    if trials is not None:
        search["trials"] = int(trials)
    if concurrency is not None:
        search["concurrency"] = int(concurrency)
    tracking = {**(doc.get("tracking") or {}), "wandb": "disabled"}
    doc.update(proxy=proxy, search=search, tracking=tracking)
    out_dir.mkdir(parents=True, exist_ok=True)
    p = out_dir / f"{doc.get('name') or 'space'}.yaml"
    atomic_write(p, yaml.safe_dump(doc, sort_keys=False))
    return p


def run_search(space_path: Path, out: Path, trials: int, concurrency: int) -> Path:
    from nas.search.driver import SearchOptions
    from nas.search.driver import run_search as _run

    s = _run(SearchOptions(space=space_path, trials=trials, concurrency=concurrency, out=out, wandb="disabled"))
    c = s.counts
    print(f"search: {len(s.records)} trials in {s.wall_s:.0f} s (complete {c.get('complete', 0)}, pruned "
          f"{c.get('pruned', 0)}, infeasible {c.get('infeasible', 0)}, failed {c.get('failed', 0)}); "
          f"front {len(s.front)}; study {s.study_dir}", flush=True)
    return s.study_dir


# -- training --------------------------------------------------------------------------------------------------------

def train_models(models: list[Model], recipe: Any, seeds: list[int], workers: int, ledger: Path,
                 log: Any = print, train_fn: Any = None) -> None:
    """Train every model on every seed and score it on the test split (``nas.export.run_final``: seed-major,
    each run appended to ``ledger`` as it finishes, runs already there read back). In this process with
    ``workers`` 1, under the caller's torch thread setting."""
    from nas.export import FinalEval, run_final

    def show(e: Any) -> None:
        for note in e.notes:
            log(f"note: {note}")
        if e.name is None:
            log(f"{e.reused} run(s) read back from {ledger}, {e.total} to train")
        else:
            log(f"[{e.done}/{e.total}] {e.name:<32} seed {e.seed}: {100 * e.test_accuracy:6.2f} % test  "
                f"({e.seconds:.0f} s)")

    runs = run_final([(m.key, m.genotype) for m in models], recipe, seeds, ledger,
                     FinalEval(len(seeds), workers, train_fn, show))
    for m in models:
        m.accs = [r.test_accuracy for r in runs[m.key]]
        m.val_accs = [r.val_accuracy for r in runs[m.key]]
        m.train_s = [r.seconds for r in runs[m.key]]


def probe_seconds(recipe: Any, threads: int = 1) -> float:
    """Seconds one proxy training of MixNet-S takes with ``recipe``, from its build, a few timed steps and
    one timed evaluation (rough: a shared machine's speed changes by the minute)."""
    import torch
    import torch.nn.functional as F

    from nas.model import build
    from nas.proxy import proxy_genotype
    from nas.train import evaluate, load_data, make_optimizer

    torch.set_num_threads(threads)
    data = load_data(recipe, 3, "cpu")
    t0 = time.perf_counter()
    g = proxy_genotype(reference_genotypes_plain("mixnet_s"), recipe.resolution, recipe.width)
    net = build(g, data.num_classes)
    opt = make_optimizer(net, recipe)
    build_s = time.perf_counter() - t0
    bs = min(recipe.batch_size, len(data.x_train))
    x, y = data.x_train[:bs], data.y_train[:bs]
    times = []
    for _ in range(4):
        t0 = time.perf_counter()
        loss = F.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    evaluate(net, data.x_val, data.y_val, max(512, bs))
    eval_s = time.perf_counter() - t0
    step_s = statistics.median(times[1:])
    plan = schedule(recipe, len(data.x_train) // bs)
    per_report = eval_s + recipe.precise_bn * step_s / 3  # BN: forward only
    return build_s + plan.total * step_s + plan.reports * per_report


def reference_genotypes_plain(name: str) -> Genotype:
    from nas.export import reference_files
    from nas.genotype import load

    return load(reference_files([name])[0])


# -- latency ---------------------------------------------------------------------------------------------------------

def latency_table(space: Any, lut: Path | None, mode: str, target: str = "torch-cpu") -> tuple[Any, str]:
    """The table to predict with and a line saying where it comes from (None and why when there is none)."""
    from nas.cost.table import load_lut
    from nas.export import costing_for_space
    from nas.latency import get_target, probe_ms

    if mode == "off" and lut is None:
        return None, "latency: off (--latency off)"
    if lut is not None:
        t = load_lut(lut)
        return t, f"latency: predicted from {lut} ({t.target.name}, {len(t.entries)} entries)"
    t = costing_for_space(space, measure=False).lut
    if t is not None:
        return t, f"latency: predicted from the space's LUT {t.source} ({t.target.name})"
    from nas.latency import cache_path, load_cache

    tgt = get_target(target)
    t = load_cache(tgt)
    if t.unit_ms is None and tgt.clock == "probe":
        t.unit_ms = round(probe_ms(seconds=1.0), 6)
    cal = t.calibration
    return t, (f"latency: {tgt.name} LUT of this machine ({cache_path(tgt)}, {len(t.entries)} cached entries; "
               "parts not in it are timed now inside their networks; calibration "
               f"scale {cal['scale']:g}, offset {cal['offset_ms']:g} ms)")


def add_latency(models: list[Model], table: Any, num_classes: int) -> str | None:
    """Predicted latency of every model; parts the table lacks are timed in context when it is this machine's."""
    from nas.cost.table import predict
    from nas.latency import measure_in_context, on_the_fly, on_this_machine

    missing = [m.genotype for m in models if table.missing(m.genotype, num_classes)]
    if missing and on_this_machine(table) and table.target.backend == "torch-cpu":
        found = measure_in_context(missing, table.target, num_classes, unit_ms=table.unit_ms)
        table.entries.update({k: v.to_dict() for k, v in found.items() if k not in table.entries})
    problem = None
    for m in models:
        try:
            m.latency_ms = m.predicted_ms = predict(m.genotype, table, num_classes=num_classes,
                                                    measure=on_the_fly(table))
        except InputError as e:
            problem = problem or str(e)
    return problem


def measure_latency(models: list[Model], table: Any, num_classes: int, log: Any = print) -> None:
    """Each model's whole deployed network measured on this machine (``nas describe --measure``'s protocol, the
    table's probe unit): the latency the members and references are matched on with ``--latency measured``."""
    from nas.latency import measure_genotype

    for i, m in enumerate(models, 1):
        got = measure_genotype(m.genotype, table.target, num_classes, unit_ms=table.unit_ms)
        m.latency_ms, m.measured = got.ms, True
        flags = f" [{', '.join(got.flags)}]" if got.flags else ""
        log(f"  measured {i}/{len(models)} {m.key}: {got.ms:.2f} ms (predicted "
            f"{'n/a' if m.predicted_ms is None else f'{m.predicted_ms:.2f}'} ms; interval {100 * got.ci:.1f}%){flags}")


def latency_word(models: list[Model]) -> str:
    return "measured" if any(m.measured for m in models) else "predicted"


# -- verdicts and tables ----------------------------------------------------------------------------------------------

def verdict(a: Model, b: Model) -> tuple[str, float | None, float]:
    """(verdict of ``a`` against ``b``, Welch's two-sided p-value, difference of the mean test accuracies in
    points): ``nas.export.welch`` on the seeds' test accuracies. One seed is ``untested``, never a win."""
    from nas.export import welch

    v = welch(a.accs, b.accs)
    return v.word, v.p_value, 100 * v.diff


def _p(p: float | None) -> str:
    return "n/a" if p is None else f"{p:.3g}"


def best_reference(models: list[Model], tier: str | None = None, max_latency: float | None = None) -> Model | None:
    cands = [m for m in models if m.kind == "reference" and m.mean is not None and not math.isnan(m.mean)
             and (tier is None or m.tier == tier)
             and (max_latency is None or (m.latency_ms is not None and m.latency_ms <= max_latency))]
    return max(cands, key=lambda m: m.mean) if cands else None


def _acc(m: Model) -> str:
    return "n/a" if m.mean is None else f"{100 * m.mean:5.2f} ± {100 * m.std:4.2f}"


def _lat(m: Model) -> str:
    return "n/a" if m.latency_ms is None else f"{m.latency_ms:.2f}"


def macs_table(models: list[Model]) -> tuple[str, list[dict[str, Any]]]:
    lines = [f"{'tier':<5} {'model':<30} {'MACs(M)':>8} {'params(M)':>9} {'lat(ms)':>8} {'acc % (mean ± std)':>19}  "
             "vs best ref in tier"]
    out = []
    for tier in dict.fromkeys(m.tier for m in models):
        group = sorted((m for m in models if m.tier == tier), key=lambda m: (m.kind != "searched", -(m.mean or 0)))
        best = best_reference(models, tier)
        for m in group:
            vs = ""
            if m.kind == "searched" and best is not None:
                v, p, d = verdict(m, best)
                vs = f"{v} ({d:+.2f} pts, p {_p(p)} vs {best.name})"
                out.append({"tier": tier, "member": m.name, "reference": best.name, "verdict": v, "diff_pts": d,
                            "p_value": p})
            elif m is best:
                vs = "best reference"
            lines.append(f"{m.tier:<5} {m.name:<30} {m.macs / 1e6:8.1f} {m.params / 1e6:9.2f} {_lat(m):>8} "
                         f"{_acc(m):>19}  {vs}")
    return "\n".join(lines), out


def latency_table_text(models: list[Model]) -> tuple[str, list[dict[str, Any]]]:
    lines = [f"{'tier':<5} {'member lat(ms)':>13} {'member acc %':>14}  best reference at <= member latency"]
    out = []
    for m in (m for m in models if m.kind == "searched"):
        if m.latency_ms is None:
            lines.append(f"{m.tier:<5} {'n/a':>13} {_acc(m):>14}  no latency")
            continue
        best = best_reference(models, max_latency=m.latency_ms)
        if best is None:
            lines.append(f"{m.tier:<5} {m.latency_ms:13.2f} {_acc(m):>14}  none: every reference variant is slower")
            out.append({"tier": m.tier, "member_latency_ms": m.latency_ms, "reference": None, "verdict": "unmatched"})
            continue
        v, p, d = verdict(m, best)
        lines.append(f"{m.tier:<5} {m.latency_ms:13.2f} {_acc(m):>14}  {best.key} ({best.latency_ms:.2f} ms, "
                     f"{_acc(best)}): {v} ({d:+.2f} pts, p {_p(p)})")
        out.append({"tier": m.tier, "member_latency_ms": m.latency_ms, "reference": best.key,
                    "reference_latency_ms": best.latency_ms, "verdict": v, "diff_pts": d, "p_value": p})
    return "\n".join(lines), out


def headline(mac_verdicts: list[dict], lat_verdicts: list[dict], word: str = "predicted") -> str:
    def count(vs: list[dict]) -> str:
        from nas.export.significance import BETTER, SAME, UNTESTED, WORSE

        n = {k: sum(v["verdict"] == k for v in vs) for k in (BETTER, SAME, WORSE, UNTESTED)}
        return f"{n[BETTER]} better, {n[SAME]} no significant difference, {n[WORSE]} worse" + (
            f", {n[UNTESTED]} untested (1 seed)" if n[UNTESTED] else "")

    text = f"searched family vs best scaled reference: at matched MACs {count(mac_verdicts)}"
    lat = [v for v in lat_verdicts if v["verdict"] != "unmatched"]
    if lat_verdicts:
        text += f"; at matched {word} latency {count(lat)}"
        if len(lat) < len(lat_verdicts):
            text += f" ({len(lat_verdicts) - len(lat)} member(s) faster than every reference variant)"
    return text


def write_plot(models: list[Model], path: Path, title: str) -> Path:
    """Accuracy (mean ± std over seeds) against MACs and, when predicted, latency: the searched family as
    one line, each reference family (its width-scaled variants) as another."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("macs", "MACs of the target network (M)", 1e-6)]
    if any(m.latency_ms is not None for m in models):
        panels.append(("latency_ms", f"{latency_word(models)} latency (ms)", 1.0))
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 5), squeeze=False)
    groups: dict[str, list[Model]] = {}
    for m in models:
        groups.setdefault("searched" if m.kind == "searched" else m.name.split(" x")[0], []).append(m)
    palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#17becf", "#7f7f7f"]  # red is the search's
    colors = {name: "#d62728" if name == "searched" else palette[i % len(palette)]
              for i, name in enumerate(n for n in groups if n != "searched")} | {"searched": "#d62728"}
    for ax, (metric, label, factor) in zip(axes[0], panels, strict=True):
        for name, ms in groups.items():
            pts = sorted((getattr(m, metric) * factor, 100 * m.mean, 100 * m.std) for m in ms
                         if getattr(m, metric) is not None and m.mean is not None and not math.isnan(m.mean))
            if not pts:
                continue
            xs, ys, es = zip(*pts, strict=True)
            searched = name == "searched"
            ax.errorbar(xs, ys, yerr=es, marker="*" if searched else "o", ms=12 if searched else 6, capsize=3,
                        lw=2.5 if searched else 1.2, color=colors[name],
                        label="searched family" if searched else name, zorder=3 if searched else 2)
        ax.set_xlabel(label)
        ax.set_ylabel("test-split top-1 accuracy (%), mean ± std over seeds")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


# -- main ------------------------------------------------------------------------------------------------------------

def _pick_tiers(space: Any, wanted: list[str] | None, n: int) -> list[str]:
    names = list(space.family)
    if wanted:
        return wanted
    if not names:
        raise InputError(f"{space.source}: family: the space declares no tiers; pass --tiers with a space that does")
    if len(names) <= n:
        return names
    # Spread the chosen tiers over the family: with 2 of s/m/l, s and l.
    idx = sorted({round(i * (len(names) - 1) / max(1, n - 1)) for i in range(n)})
    return [names[i] for i in idx]


def _minutes(s: float) -> str:
    return f"{s / 60:.0f} min" if s >= 90 else f"{s:.0f} s"


def estimate(space: Any, tiers: list[str], seeds: int, search_trials: int, concurrency: int, workers: int,
             per_training: float) -> float:
    """Wall seconds for a plan, from the seconds one MixNet-S proxy training takes (rough).

    Per-step time of a CPU proxy grows much slower than its MACs (launch overhead dominates small
    networks), so a tier's trainings are taken to scale with the square root of its MACs over MixNet-S's.
    """
    from nas.export.matching import analytic_costs

    ref = analytic_costs(space.target.num_classes)(reference_genotypes(space, ("mixnet_s",))["mixnet_s"])["macs"]
    budgets = [space.family[t].macs for t in tiers if t in space.family and space.family[t].macs] or [ref]
    factor = statistics.fmean(math.sqrt(b / ref) for b in budgets)
    trainings = len(tiers) * (1 + len(REFERENCES)) * seeds
    # Ray's start and each trial's report/record round trip; latency timing of every model at its resolution.
    search = (search_trials * (per_training + 3) / max(1, concurrency) + 20) if search_trials else 0.0
    latency = LATENCY_S_PER_MODEL * len(tiers) * (1 + len(REFERENCES))
    return trainings * (per_training * factor + SPAWN_S) / max(1, workers) + search + latency


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true",
                    help=f"pipeline check: {QUICK['tiers']} tiers, {QUICK['seeds']} seeds, a {QUICK['search_trials']}"
                         f"-trial search, {QUICK['epochs']}-epoch proxy on {QUICK['subsample']} images")
    ap.add_argument("--space", default="mixnet.yaml", help="space to search (ignored with --study)")
    ap.add_argument("--study", type=Path, default=None, help="an existing study directory (skips the search)")
    ap.add_argument("--search-trials", type=int, default=None, help="trials of the search (default: the space's)")
    ap.add_argument("--data", default=None, help="a local data set (CIFAR dir, ImageFolder, .npz) instead of digits")
    ap.add_argument("--tiers", default=None, help="comma-separated tier names (default: the family, 2 in --quick)")
    ap.add_argument("--seeds", type=int, default=None, help="training seeds per model (default 3, 2 in --quick)")
    ap.add_argument("--epochs", type=int, default=None, help="proxy epochs (default: the space's)")
    ap.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1), help="parallel training processes")
    ap.add_argument("--lut", type=Path, default=None, help="latency table to predict with")
    ap.add_argument("--latency", choices=("measured", "auto", "off"), default="measured",
                    help="measured: every model's whole network measured on this machine, and matched on that "
                         "(predicted figures shown beside); auto: predicted only (the space's LUT, else this "
                         "machine's torch-cpu cache plus parts timed now); off: no latency")
    ap.add_argument("--out", type=Path, default=None,
                    help="keep the search's study and the test-split runs (final_eval.jsonl) here; a rerun with "
                         "the same --out resumes (default: a temp dir)")
    ap.add_argument("--json", type=Path, default=None, help="write every figure of this run as JSON")
    ap.add_argument("--plot", type=Path, default=None, help="write accuracy vs MACs/latency as a PNG")
    args = ap.parse_args(argv)
    try:
        run(args)
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None


def run(args: argparse.Namespace) -> dict[str, Any]:
    machine = banner("bench_family: searched family vs hand-designed references")
    mode = QUICK if args.quick else FULL
    seeds_n = args.seeds or mode["seeds"]
    if args.quick:
        print(f"QUICK MODE: {QUICK['tiers']} tiers, {QUICK['seeds']} seeds, {QUICK['epochs']}-epoch proxy on "
              f"{QUICK['subsample']} training images: checks the pipeline; accuracies are not a comparison.")
    tmp = None
    work = args.out
    if work is None:
        tmp = work = Path(tempfile.mkdtemp(prefix="bench_family_"))
    try:
        return _run(args, machine, mode, seeds_n, work)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def _run(args: argparse.Namespace, machine: dict, mode: dict, seeds_n: int, work: Path) -> dict[str, Any]:
    from nas.cli import resolve_path
    from nas.space import load_space

    epochs = args.epochs or (QUICK["epochs"] if args.quick else None)
    subsample = QUICK["subsample"] if args.quick else None
    t_start = time.perf_counter()
    if args.study is not None:
        study_dir = Path(args.study)
        base = load_space(study_dir / "space.yaml")
        space_file = bench_space(study_dir / "space.yaml", work / "space", epochs=epochs, subsample=subsample,
                                 data=args.data)
    else:
        base = load_space(resolve_path(args.space))
        trials = args.search_trials or (QUICK["search_trials"] if args.quick else base.search.trials)
        conc = min(base.search.concurrency or args.workers, args.workers)  # unset: chosen from Ray, here the workers
        space_file = bench_space(Path(base.source), work / "space", epochs=epochs, subsample=subsample,
                                 data=args.data, trials=trials, concurrency=conc)
    space = load_space(space_file)
    tiers = _pick_tiers(space, args.tiers.split(",") if args.tiers else None, mode["tiers"])
    recipe = space.proxy
    from nas.export.tiers import fmt_limit

    def limits(t: Any) -> str:
        return " ".join(fmt_limit(m, float(v)) for m in ("macs", "params", "latency_ms")
                        if (v := getattr(t, m, None)) is not None)

    print(f"space {space.name}: target {space.target.resolution} px, {space.target.num_classes} classes; tiers "
          + ", ".join(f"{t}: {limits(space.family[t])}" for t in tiers if t in space.family))
    seeds = eval_seeds(recipe, seeds_n)
    print(f"recipe (every model, same seeds {seeds}): {recipe.dataset}"
          f"{' ' + recipe.path if recipe.path else ''}, {recipe.resolution} px, width {recipe.width:g}, "
          f"{length_text(recipe)}, batch {recipe.batch_size}, {recipe.optimizer} lr {recipe.lr:g}"
          + (f", subsample {recipe.subsample}" if recipe.subsample else ""))

    threads = max(1, (os.cpu_count() or 1) // max(1, args.workers))
    per = probe_seconds(recipe, threads)
    if args.quick:  # the full recipe: the space's own, with --data but none of the quick cuts
        full = bench_space(Path(base.source), work / "full", data=args.data, epochs=args.epochs)
        per_full = probe_seconds(load_space(full).proxy, threads)
    else:
        per_full = per
    trials_now = 0 if args.study else space.search.trials
    est_now = estimate(space, tiers, seeds_n, trials_now, space.search.concurrency or args.workers, args.workers, per)
    full_tiers = _pick_tiers(space, None, FULL["tiers"])
    est_full = estimate(space, full_tiers, FULL["seeds"], 0 if args.study else base.search.trials,
                        min(base.search.concurrency or args.workers, args.workers), args.workers, per_full)
    print(f"runtime estimate (a timed MixNet-S build, steps and evaluation, {args.workers} workers, rough): "
          f"this run ~{_minutes(est_now)}; "
          f"full mode ({FULL['tiers']} tiers x {FULL['seeds']} seeds x {1 + len(REFERENCES)} models"
          f"{'' if args.study else f' + {base.search.trials}-trial search'}) ~{_minutes(est_full)}", flush=True)

    if args.study is None:
        study_dir = run_search(space_file, work / "studies", space.search.trials, space.search.concurrency)
    members = family_members(study_dir, space, tiers)
    models, notes = plan_models(members, space, reference_genotypes(space))
    for n in notes:
        print(f"note: {n}")

    table, lat_note = latency_table(space, args.lut, args.latency)
    print(lat_note)
    if table is not None:
        t0 = time.perf_counter()
        problem = add_latency(models, table, space.target.num_classes)
        print(f"latency predicted for {sum(m.latency_ms is not None for m in models)}/{len(models)} models "
              f"in {time.perf_counter() - t0:.0f} s" + (f"; not for the rest: {problem}" if problem else ""))
        if args.latency == "measured":
            t0 = time.perf_counter()
            measure_latency(models, table, space.target.num_classes, log=lambda s: print(s, flush=True))
            print(f"latency measured for {len(models)} models in {time.perf_counter() - t0:.0f} s", flush=True)

    print(f"training {len(models)} models x {len(seeds)} seeds = {len(models) * len(seeds)} runs on "
          f"{args.workers} worker(s)", flush=True)
    if args.workers <= 1:  # in this process: every core (worker processes set their own share)
        import torch

        torch.set_num_threads(max(1, os.cpu_count() or 1))
    t0 = time.perf_counter()
    train_models(models, recipe, seeds, args.workers, work / "final_eval.jsonl", log=lambda s: print(s, flush=True))
    train_wall = time.perf_counter() - t0

    mtext, mv = macs_table(models)
    print(f"\n-- test-split accuracy at matched MACs (references scaled in width to each tier's MAC budget) --\n"
          f"{mtext}")
    if table is not None:
        ltext, lv = latency_table_text(models)
        print(f"\n-- test-split accuracy at matched {latency_word(models)} latency ({table.target.name}) --\n{ltext}")
    else:
        lv = []
        print("\n-- accuracy at matched predicted latency: skipped (no latency table) --")
    print(f"\n{headline(mv, lv, latency_word(models))}")
    from nas.export import METHOD

    print(f"verdicts: {METHOD}, over {len(seeds)} seeds per model (seeds {seeds}; the search trained on seed "
          f"{recipe.seed}); accuracy on the test split, which neither the search nor the choice of members saw.")
    if args.quick:
        print("QUICK MODE: too little training for these accuracies to rank architectures; run without --quick.")
    total = time.perf_counter() - t_start
    print(f"trainings {train_wall:.0f} s; total {total:.0f} s (estimate was ~{_minutes(est_now)})")
    result = {"machine": machine, "quick": bool(args.quick), "space": space.name, "study": str(study_dir),
              "recipe": dataclasses.asdict(recipe), "seeds": seeds, "tiers": tiers, "latency": lat_note,
              "models": [m.row() for m in models], "verdicts_macs": mv, "verdicts_latency": lv,
              "headline": headline(mv, lv), "train_wall_s": train_wall, "total_s": total,
              "estimate_s": est_now}
    if args.plot:
        what = "QUICK MODE, " if args.quick else ""
        write_plot(models, args.plot, f"{space.name}: searched family vs width-scaled references ({what}"
                   f"{len(seeds)} seeds, {recipe.dataset} proxy, {length_text(recipe)})")
        print(f"wrote {args.plot}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(args.json, json.dumps(result, indent=1, default=str) + "\n")
        print(f"wrote {args.json}")
    return result


if __name__ == "__main__":
    main()
