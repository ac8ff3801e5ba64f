"""``nas fidelity``: does a cheap proxy rank a space's architectures as a longer training does?"""

from __future__ import annotations

from pathlib import Path

import typer

from nas.cli.common import app, console, err_console, resolve_path
from nas.cli.steps import Steps
from nas.errors import InputError


def _recipe(text: str, flag: str) -> dict:
    """``'{name: e4, epochs: 4}'`` (a YAML flow mapping) -> dict."""
    from nas.io import loads_yaml

    value = loads_yaml(text, flag)
    if not isinstance(value, dict):
        raise InputError(f"{flag}: expected a mapping such as '{{name: e4, epochs: 4}}', got {text!r}")
    return value


@app.command()
def fidelity(
    space: str = typer.Option(..., "--space", help="Search-space YAML (a shipped name such as mixnet.yaml works)."),
    n: int = typer.Option(20, "-n", "--n", min=2, help="Feasible architectures sampled from the space."),
    seeds: str = typer.Option(None, "--seeds", help="Training seeds, comma-separated (at least 2; default 1,2); "
                              "with a table reference, the scores' initialisation seeds (default 0,1,2)."),
    recipe: list[str] = typer.Option(None, "--recipe", help="A candidate proxy recipe: TrainConfig overrides as "
                                     "YAML, e.g. '{name: e2, epochs: 2}' or '{name: s120, steps: 120}' (repeatable; "
                                     "default: the space's proxy, a cheaper one and one of twice the length)."),
    reference: str = typer.Option(None, "--reference", help="The reference recipe (default: 4x the proxy's "
                                  "length (epochs or steps) at the proxy's resolution and width), or table:FILE (a "
                                  "table of trained networks, or a shipped table's name): then every --recipe is a "
                                  "training-free score such as '{score: naswot}' or '{score: default}', ranked "
                                  "against the table's mean accuracy over -n of its distinct networks."),
    data: str = typer.Option(None, "--data", help="Train on this data instead of the space's: a local path "
                             "(CIFAR pickle, ImageFolder, .npz) or a built-in data set name."),
    out: Path = typer.Option(None, "--out", help="Study directory (default: `results/fidelity-<space>/`); "
                             "rerunning the same command resumes it."),
    sample_seed: int = typer.Option(0, "--sample-seed", help="Seed of the architecture sample."),
    local: bool = typer.Option(False, "--local", help="Train in this process instead of as Ray tasks."),
    address: str = typer.Option(None, "--address", help="Join this Ray cluster (e.g. auto or HOST:6379)."),
    cpus_per_trial: float = typer.Option(1.0, "--cpus-per-trial", min=0.01, help="CPUs (and torch threads) "
                                         "per training."),
    gpus_per_trial: float = typer.Option(0.0, "--gpus-per-trial", min=0.0, help="GPUs per training (fractions "
                                         "pack small proxies)."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON instead of a table."),
) -> None:
    """Rank agreement of proxy recipes with a longer reference training, over sampled architectures.

    Trains every (architecture, recipe, seed) and reports per recipe Kendall tau and Spearman rho against
    the reference, top-k overlap, seed noise against the spread between architectures, and seconds per
    run; writes report.json and a rank-vs-rank plot (ranks.png). Run it on your own data (--data) to choose
    the proxy recipe of a space before a long search."""
    import json

    from rich.table import Table

    from nas.fidelity import run_fidelity

    try:
        seed_list = [int(s) for s in seeds.split(",") if s.strip()] if seeds else None
    except ValueError:
        raise InputError(f"--seeds: expected comma-separated integers, got {seeds!r}") from None
    path = resolve_path(space)
    if reference and reference.startswith("table:"):
        _score_fidelity(path, reference, recipe, n, seed_list, out, sample_seed, as_json)
        return
    seed_list = seed_list or [1, 2]
    out = out or Path("results") / f"fidelity-{path.stem}"
    recipes = [_recipe(r, "--recipe") for r in recipe] if recipe else None
    ref = _recipe(reference, "--reference") if reference else None
    with Steps("fidelity", err_console, disable=as_json) as steps:
        def on_run(run, done: int, total: int) -> None:
            steps.update(done, total,
                         f"{run.recipe} seed {run.seed}: {100 * run.accuracy:.1f}% in {run.seconds:.0f} s")

        rep = run_fidelity(path, out, n=n, seeds=seed_list, recipes=recipes, reference=ref, data=data,
                           sample_seed=sample_seed, executor="local" if local else "ray", address=address,
                           cpus_per_trial=cpus_per_trial, gpus_per_trial=gpus_per_trial, on_run_finished=on_run)
    if as_json:
        typer.echo(json.dumps(rep.to_dict()))
        return
    rows = rep.rows()
    table = Table(*rows[0], title=f"{path.stem}: {n} architectures, seeds {seed_list}")
    for r in rows:
        table.add_row(*r.values())
    console.print(table)
    for note in rep.notes:
        console.print(f"note: {note}", markup=False, highlight=False)
    if rep.saturated:
        console.print("note: the reference does not separate these architectures beyond its own seed noise "
                      "(saturated data?): its ranking is not a useful yardstick", markup=False, highlight=False)
    console.print(f"{out}: report.json, ranks.png, runs.jsonl (rerun the command to resume)",
                  markup=False, highlight=False)


def _score_fidelity(path: Path, reference: str, recipe: list[str] | None, n: int, seeds: list[int] | None,
                    out: Path | None, sample_seed: int, as_json: bool) -> None:
    """``nas fidelity --reference table:FILE``: training-free scores against a table's accuracies."""
    import json

    from rich.table import Table

    from nas.fidelity.scores import score_fidelity
    from nas.scores import Scorer
    from nas.space import load_space

    recipes = [_recipe(r, "--recipe") for r in recipe] if recipe else [{"score": "default"}]
    if seeds is not None and not seeds:
        raise InputError("--seeds: at least one initialisation seed is needed")
    scorer = Scorer.for_space(load_space(path), **({"seeds": tuple(seeds)} if seeds else {}))
    out = out or Path("results") / f"fidelity-scores-{path.stem}"
    with Steps("scores", err_console, disable=as_json) as steps:
        rep = score_fidelity(path, reference, out, recipes, n=n, sample_seed=sample_seed, scorer=scorer,
                             on_network=lambda done, total: steps.update(done, total, "networks scored"))
    if as_json:
        typer.echo(json.dumps(rep.to_dict()))
        return
    rows = rep.rows()
    table = Table(*rows[0], title=f"{path.stem}: {rep.n} networks of {reference}, scores against mean accuracy")
    for r in rows:
        table.add_row(*r.values())
    console.print(table)
    for note in rep.notes:
        console.print(f"note: {note}", markup=False, highlight=False)
    console.print(f"{out}: report.json, scores.jsonl (rerun the command to reuse computed scores)",
                  markup=False, highlight=False)
