"""``nas table`` (published tables of trained networks) and ``nas predictor`` (can the predictor be trusted here)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from nas.cli.common import app, console, resolve_path
from nas.errors import InputError

table_app = typer.Typer(help="Published tables of trained networks: ground truth for searches, predictors and "
                        "training-free scores.", no_args_is_help=True)
app.add_typer(table_app, name="table")


@table_app.command("list")
def table_list() -> None:
    """The tables that ship inside nas (use a name wherever a table file is asked for)."""
    from nas import tables

    for name, path in tables.SHIPPED.items():
        console.print(f"{name}  {path}", highlight=False)


@table_app.command("show")
def table_show(table: str = typer.Argument(..., help="A shipped table's name or a table file (JSONL[.gz])."),
               json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """How many networks a table holds, and the spread of their accuracies."""
    import numpy as np

    from nas import tables

    t = tables.load(table)
    acc = np.array([m["accuracy"] for _, m in t.items()])
    runs = [len(m.get("runs") or []) for _, m in t.items()]
    info = {"table": t.source, "networks": len(t), "accuracy_min": float(acc.min()),
            "accuracy_median": float(np.median(acc)), "accuracy_max": float(acc.max()), "runs": max(runs)}
    if json_out:
        print(json.dumps(info))
        return
    console.print(f"{t.source}: {len(t):,} networks, accuracy {100 * info['accuracy_min']:.2f}% .. "
                  f"{100 * info['accuracy_median']:.2f}% (median) .. {100 * info['accuracy_max']:.2f}%, "
                  f"{info['runs']} runs each", highlight=False)


@table_app.command("convert")
def table_convert(
    file: Path = typer.Argument(..., help="A published table: a JSON object keyed by codes (NAS-Bench-Macro's "
                                "form), one symbol per decision of the space in walk order, each the index of "
                                "the choice taken ('-' between symbols when a decision has over 10 choices)."),
    space: str = typer.Option(..., "--space", help="The space whose decisions the codes index "
                              "(e.g. nasbench_macro.yaml)."),
    accuracy: str = typer.Option(..., "--accuracy", help="The entry's field holding the (mean) accuracy."),
    runs: str = typer.Option(None, "--runs", help="The entry's field holding the list of per-run accuracies."),
    scale: float = typer.Option(1.0, "--scale", help="Multiplies accuracies into [0, 1] (0.01 for percentages)."),
    keep: str = typer.Option("", "--keep", help="Other fields to copy, comma-separated (e.g. params,flops)."),
    out: Path = typer.Option(..., "--out", help="The table to write (.jsonl, or .jsonl.gz compressed)."),
) -> None:
    """Turn a published file keyed by per-layer codes into a nas table for a space (one line per network)."""
    from nas import tables
    from nas.io import check_output_file, read_text
    from nas.space import load_space

    sp = load_space(resolve_path(space))
    check_output_file(out, "--out")
    try:
        raw = json.loads(read_text(file, max_bytes=1 << 30, what="table"))
    except json.JSONDecodeError as e:
        raise InputError(f"{file}: not JSON ({e.msg}, line {e.lineno})") from None
    if not isinstance(raw, dict):
        raise InputError(f"{file}: expected a JSON object keyed by codes")
    rows = tables.convert(raw, sp.from_code, accuracy=accuracy, runs=runs, scale=scale,
                          keep=[k for k in keep.split(",") if k], source=str(file))
    n = tables.write(out, rows)
    console.print(f"{out}: {n:,} networks from {len(rows):,} codes of {file.name} (space {sp.name})", highlight=False)


@app.command("predictor")
def predictor(
    space: str = typer.Option(..., "--space", help="The search space (shipped ones by name)."),
    records: str = typer.Option(..., "--records", help="Measurements: a study's trials.jsonl or a table (file or "
                                "shipped name, e.g. nas-bench-macro)."),
    train: list[int] = typer.Option(..., "--train", help="Training points (repeat for several sizes)."),
    seed: list[int] = typer.Option([0], "--seed", help="Seeds of the random splits (repeat for several)."),
    model: str = typer.Option("gradient_boosting", "--model", help="The predictor sampler's model."),
    top: float = typer.Option(0.05, "--top", help="Share of the best networks whose overlap is reported."),
    max_test: int = typer.Option(None, "--max-test", help="Score on at most this many of the other points."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON (one object; a list for several --train)."),
    score_features: str = typer.Option(None, "--score-features", help="A training-free score (e.g. default) whose "
                                       "values join the model's features, as search.score_features does; each "
                                       "point is scored once on its proxy network."),
) -> None:
    """Fit the predictor sampler's model on N measured architectures and report how well it ranks the rest.

    Kendall tau, Spearman rho and the top-share overlap on the points it did not see, averaged over the seeds,
    beside a plain baseline (gradient boosting on a one-hot encoding of the decisions). Decide with it whether
    predictor-guided search (`--sampler predictor`) can be trusted on a space.
    """
    from nas.search.assess import assess, measured_points
    from nas.space import load_space

    sp = load_space(resolve_path(space))
    points, kind = measured_points(sp, records)
    cache = None
    if score_features:
        from nas.cli.common import err_console
        from nas.cli.steps import Steps
        from nas.scores import Scorer, components
        from nas.scores.cache import ScoreCache

        components(score_features, "--score-features")  # an unknown name: one line naming the option
        cache = ScoreCache(Scorer.for_space(sp, seeds=(0,)), score_features)
        # each point scored once, before the splits reuse the values; a bar on a terminal, one line elsewhere
        with Steps(f"scoring ({score_features})", err_console, disable=not err_console.is_terminal) as steps:
            for i, p in enumerate(points, 1):
                cache(p.candidate.genotype)
                steps.update(i, len(points), "")
        if not err_console.is_terminal and not json_out:
            err_console.print(f"scored {len(points):,} points ({cache.names}) in {cache.seconds:.0f} s",
                              highlight=False)
    results = [assess(points, n, seed, model=model, top=top, max_test=max_test, score_cache=cache) for n in train]
    if json_out:
        print(json.dumps(results[0] if len(results) == 1 else results))
        return
    feats = f"; score features {', '.join(cache.names)}" if cache is not None else ""
    console.print(f"{records}: {len(points):,} measured points of {sp.name} ({kind}); model {model}{feats}; "
                  f"seeds {', '.join(map(str, seed))}", highlight=False)
    for r in results:
        b = r["baseline"]
        console.print(f"  train {r['n_train']:>5}  test {r['n_test']:>5}  tau {r['kendall_tau']:.3f}  "
                      f"rho {r['spearman']:.3f}  top-{100 * top:g}% {r['top_overlap']:.2f}   | one-hot boosting: "
                      f"tau {b['kendall_tau']:.3f}  rho {b['spearman']:.3f}  top {b['top_overlap']:.2f}",
                      highlight=False)
