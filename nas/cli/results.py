"""``nas pareto``, ``nas plot``, ``nas export-best`` and ``nas baselines``: reading a study's results."""

from __future__ import annotations

from pathlib import Path

import typer

from nas.cli.common import app, console, err_console, resolve_path, study_dir, study_space
from nas.config import length_text, planned_reports
from nas.errors import InputError


@app.command()
def pareto(
    study: Path = typer.Option(..., "--study", help="Study directory (`results/<study>`) holding trials.jsonl."),
    as_json: bool = typer.Option(False, "--json", help="Print pareto.json's content instead of a table."),
) -> None:
    """Print the study's Pareto front (feasible, non-dominated trials) and its hypervolume."""
    import json

    from nas.cli.tables import front_table, hypervolume_text
    from nas.results.front import front, hypervolume
    from nas.results.pareto import space_budgets, stored_objectives, study_objectives, study_reference_point
    from nas.results.record import is_trial
    from nas.results.store import study_records

    study = study_dir(study)
    records = study_records(study)
    space = study_space(study)
    objectives = stored_objectives(study) or study_objectives(space)  # a cost-only study's own, not the space's
    fr = front(records, objectives)
    ref = study_reference_point(study, objectives, space_budgets(space), records)
    hv = hypervolume(records, objectives, ref)
    # refusals for a tier and proposals screened out are not the study's trials, nor over-budget ones of a search
    # that screens (nas.results.record.is_trial)
    screening = any(r.status == "screened" for r in records)
    counted = [r for r in records if is_trial(r, screening)]
    if as_json:
        typer.echo(json.dumps({"study": study.name, "objectives": objectives, "front": [dict(r) for r in fr],
                               "hypervolume": hv,
                               "reference_point": ref,
                               "n_trials": len(counted),
                               "n_refused": len([r for r in records if r.status == "refused"]),
                               "n_screened": len([r for r in records if r.status == "screened"])}))
        return
    console.print(front_table(fr, objectives, title=f"{study.name}: Pareto front, {len(fr)} of {len(counted)} trials",
                              width=console.width))
    names = ", ".join(f"{o['metric']} ({o['direction']})" if o["metric"] != "reward" else
                      f"reward = accuracy x ({o['cost']} / {o['target']:g})^{o['w']:g} (maximize)" for o in objectives)
    # One objective: the front is the best trial (ties kept), and the hypervolume its value when the reference is 0
    # (accuracy), else its distance from the reference in units of it.
    best = f" = the best {objectives[0]['metric']}" if len(objectives) == 1 and ref[0] == 0 else ""
    console.print(f"objectives: {names}; {hypervolume_text(hv, objectives, ref)}{best}", highlight=False)


@app.command()
def plot(
    study: Path = typer.Option(..., "--study", help="Study directory (`results/<study>`) holding trials.jsonl."),
) -> None:
    """Write pareto.html (interactive, works offline) and pareto.png into the study directory."""
    from nas.plots import write_plots
    from nas.results.pareto import space_budgets

    study = study_dir(study)
    html, png = write_plots(study, budgets=space_budgets(study_space(study)))
    console.print(f"wrote {html} and {png}")


@app.command("export-best")
def export_best(
    study: Path = typer.Option(None, "--study", help="Study directory to derive the family from."),
    arch: str = typer.Option(None, "--arch", help="Export this one genotype YAML instead of a family."),
    tiers: str = typer.Option(None, "--tiers", help="Comma-separated tiers to export (default: all declared)."),
    tier_budget: str = typer.Option(
        None, "--tier-budget", help="Tier budgets, e.g. s=250e6,m=360M,l=12ms (MACs unless 'ms'; "
                                    "'params:5M'; '+' joins limits); override the space's family section."),
    out: Path = typer.Option(None, "--out", help="Output directory (default: `<study>/family`, or `./export`)."),
    num_classes: int = typer.Option(1000, "--num-classes", min=1, help="With --arch: classifier outputs."),
    measure: bool = typer.Option(True, "--measure/--no-measure", help="Measure torch-cpu latency of each member."),
    evaluate: bool = typer.Option(
        None, "--eval/--no-eval", show_default=False,
        help="Retrain every member on --seeds seeds and report test-split accuracy with a Welch verdict against "
             "its tier's best reference (default: on when the study's trials were trained)."),
    seeds: int = typer.Option(3, "--seeds", min=1, help="Training seeds per member for the evaluation."),
    workers: int = typer.Option(1, "--workers", min=1, help="Parallel training processes for the evaluation."),
    train: bool = typer.Option(False, "--train", help="Also train every member at its target size (width 1.0) "
                               "on --data with the proxy recipe, into `<tier>/trained/` (weights, TorchScript, "
                               "ONNX): the exported models are otherwise untrained architectures."),
    data: str = typer.Option(None, "--data", help="With --train: a built-in data set (digits, mnist5k) or the "
                             "local path of a CIFAR-10/100 copy, an ImageFolder tree or an .npz file."),
    train_epochs: int = typer.Option(None, "--train-epochs", min=1, help="With --train: epochs (default: the "
                                     "proxy recipe's)."),
) -> None:
    """Export a MixNet-like family (one member per tier) or one architecture: genotype, TorchScript, ONNX, table.

    Then, for a study whose trials were trained, every member is trained again from scratch (the space's proxy
    recipe, seeds the search did not use) and scored on the test split, which neither the search nor the choice
    of members saw; each run is kept in `<study>/final_eval.jsonl`, so a rerun trains only what is missing."""
    from contextlib import nullcontext

    from nas.cli.evaluation import final_progress
    from nas.cli.steps import Steps
    from nas.export import FinalEval, export_arch, export_family, read_study, study_was_trained
    from nas.genotype import load

    if (study is None) == (arch is None):
        raise InputError("export-best: give exactly one of --study DIR or --arch GENOTYPE")
    if train and (data is None or arch is not None):
        raise InputError("--train: needs --data PATH (a built-in data set or a local path) and --study")
    if data is not None and not train:
        raise InputError("--data: only with --train")
    if arch is not None:
        g = load(resolve_path(arch))
        d = export_arch(g, out or Path("export"), num_classes=num_classes, measure=measure, source=arch)
        console.print(f"exported {g.name or g.hash} to {d}")
        return
    names = [t.strip() for t in tiers.split(",") if t.strip()] if tiers else None
    study = study_dir(study)
    if evaluate is None:
        evaluate = study_was_trained(read_study(study)[1])
        if not evaluate:
            err_console.print("no trial of this study was trained (a cost-only search): no test-split evaluation "
                              "(--eval asks for one)", markup=False, highlight=False, soft_wrap=True)
    with final_progress("test split") if evaluate else nullcontext() as progress:
        final = FinalEval(seeds=seeds, workers=workers, progress=progress) if evaluate else None
        def step(text: str) -> None:  # a minute of choosing, measuring and exporting is not silence
            # on stdout, before the family table: stderr holds the one line of a bad input and nothing else
            console.print(f"export: {text}", markup=False, highlight=False, soft_wrap=True)

        bar = Steps("training at target size", err_console, disable=not train)

        def epoch(tier: str, e: int, total: int, metrics: dict) -> None:
            acc = metrics.get("val_accuracy")
            bar.update(e, total, f"tier {tier} epoch {e}" + ("" if acc is None else f": val {100 * acc:.1f}%"))

        try:
            d = export_family(study, out, names, tier_budget, measure=measure, final=final, progress=step,
                              train_data=data if train else None, train_epochs=train_epochs, train_progress=epoch)
        finally:
            bar.stop()
    console.print((d / "family.md").read_text(), markup=False, highlight=False, soft_wrap=True)
    console.print(f"exported to {d}")


@app.command()
def baselines(
    space: str = typer.Option(..., "--space", help="Search-space YAML whose proxy recipe and target to use."),
    study: Path = typer.Option(None, "--study",
                               help="Study directory for baselines.json (default: `results/<space>`)."),
    refs: str = typer.Option(None, "--refs", help="Comma-separated reference names (default: all shipped)."),
    tiers: str = typer.Option(None, "--tiers", help="Comma-separated family tiers to scale the references to "
                                                    "(default: every tier of the space's family)."),
    as_given: bool = typer.Option(False, "--as-given", help="Train the references as shipped, not width-scaled "
                                                           "to each tier's budget."),
    seeds: int = typer.Option(3, "--seeds", min=1, help="Training seeds per reference (accuracies are their mean "
                                                        "and standard deviation)."),
    epochs: int = typer.Option(None, "--epochs", min=1, help="Override the proxy's epochs."),
    measure: bool = typer.Option(False, "--measure/--no-measure", help="Also measure torch-cpu latency."),
    workers: int = typer.Option(1, "--workers", min=1, help="Parallel training processes."),
) -> None:
    """Evaluate the reference architectures (MixNet, GhostNet, MobileNet, ...) under the space's proxy and cost models.

    Each reference is width-scaled to each tier's budget of the space's family (or taken as given), trained from
    scratch on --seeds seeds the search did not use, and scored on the validation and the test split; each run is
    kept in `<study>/final_eval.jsonl`, so a rerun trains only what is missing. `nas export-best` judges every
    family member against the best of these that fits its tier."""
    from nas.cli.evaluation import final_progress, references_table
    from nas.export import FinalEval, evaluate_baselines, reference_files, select_tiers, space_tiers
    from nas.export.final import LEDGER
    from nas.io import check_output_dir
    from nas.results.store import load_baselines, study_records, write_baselines
    from nas.space import load_space

    path = resolve_path(space)
    sp = load_space(path)
    names = [r.strip() for r in refs.split(",") if r.strip()] if refs else None
    reference_files(names)  # a bad name fails before any training
    tier_names = [t.strip() for t in tiers.split(",") if t.strip()] if tiers else None
    chosen = None if as_given or not (tier_names or space_tiers(sp)) else select_tiers(sp, tier_names, None, str(path))
    study = study or Path("results") / sp.name
    check_output_dir(study, "--study")  # and so do a study that is a file and a corrupt study, before training
    if (study / "trials.jsonl").is_file():
        study_records(study)
        load_baselines(study)
    with final_progress("references") as progress:
        data = evaluate_baselines(sp, names, ledger=study / LEDGER, tiers=chosen, measure=measure, epochs=epochs,
                                  final=FinalEval(seeds=seeds, workers=workers, progress=progress))
    p = write_baselines(study, data)
    console.print(references_table(data["references"], f"{sp.name}: references, accuracy % (validation: mean; "
                                                       "test split: mean ± std over the seeds)"))
    for note in data["notes"]:
        console.print(f"note: {note}", markup=False, highlight=False, soft_wrap=True)
    console.print(f"wrote {p}")
    if epochs is not None and (sp.proxy.steps is not None or epochs < planned_reports(sp.proxy)):
        err_console.print(f"note: the references trained {epochs} epoch{'s' * (epochs != 1)}, the space's trials "
                          f"{length_text(sp.proxy)}: their accuracy is not comparable"
                          + ("" if sp.proxy.steps is not None else ", and the plots mark them '(n ep)'"),
                          markup=False, highlight=False, soft_wrap=True)
    if (study / "trials.jsonl").is_file():  # the plots show the references from now on
        from nas.plots import write_plots
        from nas.results.pareto import space_budgets

        html, png = write_plots(study, budgets=space_budgets(sp))
        console.print(f"redrew {html} and {png} with the references", soft_wrap=True)
