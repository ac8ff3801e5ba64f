"""``nas search``: the search with a progress view and the W&B tracker as listeners."""

from __future__ import annotations

from pathlib import Path

import typer

from nas.cli.common import app, console, err_console, resolve_path


@app.command()
def search(
    space: str = typer.Option(..., "--space", help="Search-space YAML (a shipped name such as mixnet.yaml works)."),
    trials: int = typer.Option(None, "--trials", min=1, help="Total finished trials the study should hold, "
                               "trained or over budget (a resumed study runs the rest). In a space with family "
                               "tiers, proposals refused for their tier (never trained) come on top, at most as "
                               "many again; trials.jsonl records them with status refused."),
    sampler: str = typer.Option(None, "--sampler", help="nsga2 | tpe | gp | random | predictor (default: the "
                                "space's)."),
    screen: int = typer.Option(None, "--screen", min=1, help="Train the best of K trainable proposals of each "
                               "tier under a training-free score (default: the space's search.screen; 1 = off)."),
    concurrency: int = typer.Option(None, "--concurrency", min=1, help="Trials trained at once (default: the "
                                    "space's, else as many as the Ray cluster's GPUs and CPUs hold)."),
    gpus_per_trial: float = typer.Option(None, "--gpus-per-trial", help="GPUs per trial; 0.25 packs four on one "
                                         "GPU, 0 trains on CPU (default: the space's, else a share chosen from the "
                                         "proxy's size when Ray has GPUs)."),
    cpus_per_trial: float = typer.Option(None, "--cpus-per-trial", help="CPUs (and torch threads) per trial "
                                         "(default: the space's)."),
    scheduler: str = typer.Option(None, "--scheduler", help="asha (stop weak trials early) | none (default: "
                                  "the space's)."),
    grace_period: int = typer.Option(None, "--grace-period", help="Epochs before ASHA may stop a trial "
                                     "(default: the space's)."),
    out: Path = typer.Option(None, "--out", help="Results directory (default: results/)."),
    study: str = typer.Option(None, "--study", help="Study name (default: the space's name); an existing study "
                              "resumes."),
    address: str = typer.Option(None, "--address", help="Join this Ray cluster (e.g. auto or HOST:6379) instead "
                                "of starting a local one."),
    seed: int = typer.Option(None, "--seed", help="Sampler seed (default: the space's search.seed)."),
    wandb: str = typer.Option(None, "--wandb", help="online | offline | disabled (default: the space's)."),
    objective: str = typer.Option("train", "--objective", help="train: train proxies; cost: costs only, no "
                                  "training (budget exploration, load tests)."),
    storage: str = typer.Option(None, "--storage", help="sqlite | journal Optuna storage for a new study."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar or front table."),
) -> None:
    """Search architectures: Optuna proposes, budgets filter, Ray Tune trains; writes `results/<study>/`."""
    from nas.cli.progress import ProgressView, QuietView, Tally
    from nas.cli.tables import front_table, hypervolume_text
    from nas.results.pareto import read_reference_point
    from nas.search.driver import SearchOptions, run_search
    from nas.tracking import StudyTracker

    opts = SearchOptions(space=resolve_path(space), trials=trials, sampler=sampler, concurrency=concurrency,
                         out=out, study=study, address=address, seed=seed, wandb=wandb, objective=objective,
                         storage=storage, gpus_per_trial=gpus_per_trial, cpus_per_trial=cpus_per_trial,
                         scheduler=scheduler, grace_period=grace_period, screen=screen)
    view = QuietView(err_console) if quiet else ProgressView(console)
    try:
        s = run_search(opts, listeners=[view, StudyTracker()])
    except KeyboardInterrupt:
        err_console.print("aborted: run the same command again to resume (finished trials are kept)",
                          markup=False, highlight=False)
        raise typer.Exit(130) from None
    finally:
        if isinstance(view, ProgressView):
            view.close()  # no heartbeat outlives the search, whatever ended it
    # its `finished` leaves out the proposals refused for their tier (and, when screening, over budget)
    tally = Tally(s.records, screening=any(r.status == "screened" for r in s.records))
    if not quiet:
        title = f"{s.study_dir.name}: Pareto front, {len(s.front)} of {tally.finished} trials"
        console.print(front_table(s.front, s.objectives, title=title, width=console.width))
    aside = [(n, w) for n, w in ((tally.over if tally.screening else 0, "over budget"),
                                 (tally.screened, "screened out"), (tally.tier, "refused for their tier")) if n]
    refused = (" (and " + ", ".join(f"{n} {w}" for n, w in aside) + " proposals, never trained, not counted)"
               if aside else "")
    console.print(f"{s.study_dir}: {tally.finished} trials{refused} ({s.new_trials} new in {s.wall_s:.0f} s): "
                  + tally.line(0, len(s.front), s.hypervolume), markup=False, highlight=False, soft_wrap=True)
    console.print(hypervolume_text(s.hypervolume, s.objectives,
                                   read_reference_point(s.study_dir, len(s.objectives))), markup=False, highlight=False)
    lt = s.latency_timing
    if lt is not None and lt.parts:
        share = 100 * lt.seconds / max(s.wall_s, 1e-9)
        console.print(f"latency: {lt.parts} parts timed on demand in {lt.networks} networks, {lt.seconds:.1f} s "
                      f"({share:.1f}% of the wall time)", markup=False, highlight=False)
    if s.interrupted:
        err_console.print(f"interrupted: run the same command again to resume {s.study_dir}",
                          markup=False, highlight=False)
        raise typer.Exit(130)
