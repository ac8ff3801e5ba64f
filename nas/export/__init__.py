"""``nas export-best``: a MixNet-like family (S/M/L) from a study's Pareto front, as deployable files.

Tiers
-----
A tier is a set of limits on the *target* network (``macs``, ``params``,
``latency_ms``), declared in the space's ``family:`` section or on the
command line (:func:`parse_tier_budgets`). Its *band* is what it allows and
the tier below it does not, the same bands the search spreads its trials over
(:mod:`nas.search.spread`). Its member (:func:`tier_members`) is the most
accurate design the study trained in the band that is more accurate than
every smaller tier's member (on the validation split) and, under a latency
limit, measured on this machine under it with a margin (re-chosen, else
flagged: :mod:`nas.export.members`); only a tier with none is
filled by compound scaling: the trained member of the nearest tier, scaled in
width to just under the tier's limits (as MixNet-L is MixNet-M x 1.3;
:func:`scale_to_budget`, channels rounded to multiples of 8, head kept). A
scaled member has no proxy accuracy of its own (it was never trained);
``family.md`` says for every member whether it was trained or scaled, and
from which trial. Members are named after the study (``<study>-s``,
``<study>-m``, ...), and a trained one is a point of the study's space
(``nas space contains``).

Files per member (``<out>/<tier>/``): ``genotype.yaml``; ``proxy_weights.pt``
and ``proxy.json`` when the study kept the trained proxy's weights (the proxy
network's, see ``nas.proxy``: the target network itself is not trained by a
search), loaded in one call by :func:`load_proxy`; the target models below
are untrained architectures (random weights), and ``family.md`` says so first;
``model.ts``, the fused (``nas.model.deploy``) network traced with
TorchScript; ``model.onnx``, checked with onnxruntime against the torch
outputs to 1e-4. ``family.md`` and ``family.json`` list the members, how they
were chosen (notes) and the reference architectures evaluated by ``nas
baselines``. Member folders of an earlier export into the same folder that
this family does not have are removed.

Final evaluation (``final=FinalEval(...)``, the CLI's default for a study
whose trials were trained): every member is trained again from scratch with
the space's proxy recipe on seeds the search did not use and scored on the
test split, which neither the search nor the choice of members loads
(:mod:`nas.export.final`); each is judged against the best reference of its
tier from ``baselines.json`` by Welch's t-test (:mod:`nas.export.verdicts`,
:mod:`nas.export.significance`). ``family.md`` and ``family.json`` then carry
the test accuracy's mean, standard deviation, seeds, p-value and verdict.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from nas.errors import InputError
from nas.export.baselines import evaluate_baselines, plan_references
from nas.export.checks import check_family_inputs, check_member_network
from nas.export.files import Costing, costing_for_space, export_member, stale_members, write_model_files
from nas.export.final import LEDGER, FinalEval, FinalEvent, FinalRun, eval_seeds, run_final
from nas.export.matching import REFERENCE_DIR, Reference, reference_files, reference_genotypes, scale_references
from nas.export.members import Member, choose_member, scale_to_budget, study_front, tier_members
from nas.export.proxy import load_proxy
from nas.export.significance import ALPHA, METHOD, Verdict, welch
from nas.export.tables import family_markdown, write_tables
from nas.export.target import EpochFn, train_members
from nas.export.tiers import NEAR, Tier, parse_tier_budgets, select_tiers, space_tiers
from nas.export.verdicts import evaluate_family
from nas.genotype import Genotype
from nas.io import check_output_dir
from nas.results.record import TrialRecord
from nas.results.store import StudyDir, load_baselines, study_records

__all__ = ["ALPHA", "LEDGER", "METHOD", "NEAR", "REFERENCE_DIR", "Costing", "FinalEval", "FinalEvent", "FinalRun",
           "Member", "Reference", "Tier", "Verdict", "choose_member", "costing_for_space", "eval_seeds",
           "evaluate_baselines", "evaluate_family", "export_arch", "load_proxy", "export_family", "export_member",
           "family_markdown", "parse_tier_budgets", "plan_references", "read_study", "reference_files",
           "reference_genotypes", "run_final", "scale_references", "scale_to_budget", "select_tiers", "space_tiers",
           "study_front", "study_was_trained", "tier_members", "welch", "write_model_files", "write_tables"]


def read_study(study_dir: Path) -> tuple[Any, list[TrialRecord]]:
    """The space copy and the finished trials of a study directory (InputError when it is not one)."""
    from nas.space import load_space

    sd = StudyDir(Path(study_dir))
    if not sd.trials.is_file():
        raise InputError(f"{sd.root}: trials.jsonl: not a study directory (no trials.jsonl)")
    if not sd.space.is_file():
        raise InputError(f"{sd.root}: space.yaml: not a study directory (no copy of the space)")
    return load_space(sd.space), study_records(sd.root)


def study_was_trained(records: Sequence[TrialRecord]) -> bool:
    """Whether any trial trained a proxy (a cost-only search trains none: there is no recipe result to check)."""
    return any((r.epochs or 0) > 0 and r.accuracy is not None for r in records)


def export_family(study_dir: Path, out: Path | None = None, tiers: Sequence[str] | None = None,
                  tier_budgets: str | None = None, *, measure: bool = True, near: float = NEAR,
                  final: FinalEval | None = None, progress: Callable[[str], None] | None = None,
                  train_data: str | None = None, train_epochs: int | None = None,
                  train_progress: EpochFn | None = None) -> Path:
    """Choose every tier's member, then write the files; nothing is written when an input is bad. With
    ``final``, then evaluate the members on the test split and write the tables again with the results.
    Member folders of an earlier export into ``out`` that this family does not have are removed
    (:func:`nas.export.files.stale_members`). ``progress(text)`` hears each step (nothing prints here).
    ``train_data``: then train every member at target size on that data set (:mod:`nas.export.target`)."""
    study_dir = Path(study_dir)
    space, records = read_study(study_dir)
    everything = select_tiers(space, None, tier_budgets, str(study_dir / "space.yaml"))
    chosen = select_tiers(space, tiers, tier_budgets, str(study_dir / "space.yaml"))
    costing = costing_for_space(space, measure=measure, study_dir=study_dir)
    if any("latency_ms" in t.limits for t in chosen) and not costing.predicts_latency:
        raise InputError(f"{study_dir / 'space.yaml'}: budgets.target: a latency tier needs a latency target "
                         "or LUT in the space's budgets")
    say = progress or (lambda text: None)
    say(f"choosing the members of {', '.join(t.name for t in chosen)} from {len(records)} trials"
        + (" (latency measured on this machine)" if measure and any("latency_ms" in t.limits for t in chosen)
           else ""))

    def measured(g: Genotype) -> float | None:
        say(f"measuring the latency of {g.name or g.hash}")
        return costing.measured(g)

    members = tier_members(records, space, chosen, costing.costs, all_tiers=everything, near=near,
                           measure_fn=measured if measure else None)
    for m in members:
        m.genotype = m.genotype.replace(name=f"{study_dir.name}-{m.tier}")
    out = Path(out) if out is not None else study_dir / "family"
    check_family_inputs(study_dir, out, members, costing.num_classes)  # nothing is written when one is bad
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for m in members:
        say(f"tier {m.tier}: {m.source} ({'trial ' + str(m.trial) if m.trial is not None else m.genotype.hash}); "
            "writing genotype.yaml, model.ts, model.onnx" + (", measuring its latency" if measure else ""))
        rows.append(export_member(m, out, costing, study_dir, recipe=space.proxy))
    removed = stale_members(out, {m.tier for m in members})
    for d in removed:  # an earlier export's tiers that this family no longer has
        shutil.rmtree(d)
    meta = {"title": f"{space.name} family", "study": str(study_dir), "near": near,
            "resolution": space.target.resolution, "num_classes": space.target.num_classes,
            "proxy": {"dataset": space.proxy.dataset, "resolution": space.proxy.resolution,
                      "width": space.proxy.width},
            "removed": [d.name for d in removed]}
    baselines = load_baselines(study_dir)
    write_tables(out, rows, baselines, meta)  # the export is usable while the evaluation runs
    if train_data is not None:
        say(f"training every member at its target size on {train_data}")
        for row, summary in zip(rows, train_members(members, out, space.proxy, train_data, epochs=train_epochs,
                                                    progress=train_progress), strict=True):
            row["trained"] = summary
        write_tables(out, rows, baselines, meta)
    if final is not None:
        meta["final"] = evaluate_family(rows, members, space.proxy, study_dir, baselines, final)
        write_tables(out, rows, baselines, meta)
    return out


def export_arch(genotype: Genotype, out: Path, *, num_classes: int = 1000, measure: bool = True,
                lut: Any = None, source: str | None = None) -> Path:
    """Export one architecture into ``out/<name>/`` with a one-row ``family.md``/``family.json`` (``source``:
    the genotype's file, for error lines)."""
    costing = Costing(num_classes=num_classes, lut=lut, measure=measure)
    name = genotype.name or genotype.hash
    m = Member(name, genotype, "arch")
    out = Path(out)
    check_output_dir(out, "--out")
    check_member_network(genotype, num_classes, source)
    out.mkdir(parents=True, exist_ok=True)
    row = export_member(m, out, costing)
    write_tables(out, [row], [], {"title": name, "resolution": genotype.resolution, "num_classes": num_classes})
    return out / name
