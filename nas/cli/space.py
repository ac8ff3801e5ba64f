"""``nas space``: validate, count, sample and query search-space files."""

from __future__ import annotations

from pathlib import Path

import typer

from nas.cli.common import SHIPPED_SPACES, console, resolve_path, space_app
from nas.config import length_text
from nas.errors import InputError
from nas.search import budgets

_SPACE_ARG = typer.Argument(..., help="Search-space YAML; the shipped ones by name, e.g. mixnet.yaml (see `nas space "
                            "list`). A file in the working directory wins.")


@space_app.command("list")
def space_list() -> None:
    """The search spaces shipped in search_spaces/, and the reference architectures in search_spaces/reference/.

    Both work by file name from any directory (a file of that name in the working directory wins)."""
    from rich.table import Table

    from nas.cli.tables import arch_table
    from nas.cost.macs import count
    from nas.genotype import GenotypeError, load
    from nas.space import fmt_count, shipped_spaces

    t = Table(title="search spaces (e.g. `nas search --space mixnet.yaml`)", title_justify="left")
    for col in ("space", "description"):
        t.add_column(col, no_wrap=col == "space")
    for p in shipped_spaces():
        t.add_row(p.name, _space_description(p))
    console.print(t)
    rows = []
    for p in sorted((SHIPPED_SPACES / "reference").glob("*.yaml")):
        try:
            g = load(p)
        except GenotypeError:
            rows.append(([p.name, "", "", ""], "(unreadable: run `nas describe` on it)"))
            continue
        c = count(g)
        rows.append(([p.name, str(g.resolution), fmt_count(c.params), fmt_count(c.macs)], g.summary()))
    console.print(arch_table(["genotype", "resolution", "params", "MACs"], rows, left=("genotype",),
                             width=console.width,
                             title="reference architectures (e.g. `nas describe mixnet_s.yaml`, "
                                   "`nas train --arch mixnet_s.yaml`)"))
    console.print("MACs: analytic conv + linear multiply-adds at the genotype's resolution (`nas describe NAME` "
                  "adds the paper's printed figures)", highlight=False, soft_wrap=True)


def _space_description(p: Path) -> str:
    from nas.io import read_yaml

    try:
        data = read_yaml(p)
    except InputError:
        return "(unreadable: run `nas space validate` on it)"
    return str(data.get("description", "")) if isinstance(data, dict) else ""


@space_app.command("validate")
def space_validate(path: str = _SPACE_ARG) -> None:
    """Check a search space and summarise it.

    Checks every field (an error is one line naming the file and the field, exit status 2), that every point
    is a buildable network at the target and the proxy widths, and that no budget or family tier is below
    the smallest MACs/params any architecture of the space has."""
    from nas.space import fmt_count, load_space
    from nas.space.errors import exact_count

    space = load_space(resolve_path(path))
    budgets.validate_budgets(space)
    mins = budgets.min_achievable(space)
    t, b, px = space.target, space.budgets, space.proxy
    limits = ", ".join(f"{m} <= {fmt_count(v) if m != 'latency_ms' else v}" for m in ("macs", "params", "latency_ms")
                        if (v := getattr(b, m)) is not None) or "none"
    console.print(f"[green]ok[/green] {space.source}: [bold]{space.name}[/bold] {space.description}", highlight=False)
    lines = [
        f"target: {t.resolution}x{t.resolution}, {t.in_chans} channels, {t.num_classes} classes "
        "(budgets and costs are those of this network)",
        f"proxy: accuracy looked up in the table {px.table} ({px.table_run} of its runs), nothing trained"
        if px.kind == "table" else
        f"proxy: the training-free score {px.score} in place of accuracy, nothing trained" if px.kind == "score" else
        f"proxy: {px.dataset} at {px.resolution}x{px.resolution}, width {px.width:g}, {length_text(px)} "
        "(only decides what is trained)",
        f"stages: {', '.join(f'{s.name} (stride {s.stride}, share {s.share})' for s in space.stages)}",
        f"architectures: 10^{space.log10_count():.2f} (exactly {exact_count(space.count()) or 'too many digits'})",
        f"smallest achievable: {fmt_count(mins['macs'])} MACs, {fmt_count(mins['params'])} params",
        f"budgets: {limits}",
        "objectives: " + ", ".join(f"{o.metric} ({o.direction})" for o in space.objectives),
        f"search: {space.search.sampler}, {space.search.trials} trials, {space.search.concurrency or 'auto'} at a time",
    ]
    if space.family:
        lines.append("family: " + ", ".join(
            f"{k} ({', '.join(f'{m} <= {fmt_count(v)}' for m in ('macs', 'params', 'latency_ms') if (v := getattr(tier, m)) is not None)})"  # noqa: E501
            for k, tier in space.family.items()))
    for line in lines:
        console.print(f"  {line}", highlight=False)


@space_app.command("count")
def space_count(
    path: str = _SPACE_ARG,
    as_json: bool = typer.Option(False, "--json", help='Print {"count": N, "log10": x, "stages": [...]} instead.'),
) -> None:
    """Exact number of distinct architectures in a space, and its log10.

    Options that would not change the network (SE gate without SE, split with one kernel, shuffle without
    grouped convs, ...) are not counted twice; see search_spaces/README.md."""
    import json

    from nas.space import load_space
    from nas.space.errors import exact_count

    space = load_space(resolve_path(path))
    n = space.count()
    exact = exact_count(n)  # None past 4,000 digits (Python will not print those)
    if as_json:
        typer.echo(json.dumps({"space": space.name, "count": n if exact else None, "log10": space.log10_count()}))
        return
    console.print(f"{space.name}: {exact or 'too many to write out:'} architectures (10^{space.log10_count():.2f})",
                  highlight=False)


@space_app.command("sample")
def space_sample(
    path: str = _SPACE_ARG,
    n: int = typer.Option(10, "-n", "--n", min=1, help="How many distinct architectures."),
    seed: int = typer.Option(0, "--seed", help="Random seed (same seed, same samples)."),
    feasible: bool = typer.Option(False, "--feasible", help="Only architectures within the space's budgets."),
    out: Path = typer.Option(None, "--out", help="Write one genotype YAML per sample into this directory."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON list (hash, macs, params, genotype)."),
) -> None:
    """Draw random architectures from a space.

    One uniform draw per decision: the same walk the search's Optuna trials take. Costs are those of the
    target network (its resolution and classes). Prints a table, or --json, or writes --out DIR."""
    import json
    from functools import partial

    from nas.space import fmt_count, load_space

    if out is not None and as_json:
        raise InputError("--out/--json: choose one output")
    space = load_space(resolve_path(path))
    if out is not None and out.exists() and not out.is_dir():
        raise InputError(f"{out}: --out: exists and is not a directory")
    if feasible:
        budgets.validate_budgets(space)
    genotypes = space.sample_many(n, seed=seed, feasible=partial(budgets.is_feasible, space) if feasible else None)
    rows = []
    for i, g in enumerate(genotypes):
        c = budgets.target_cost(space, g)
        rows.append({"hash": g.hash, "macs": c.macs, "params": c.params,
                     "feasible": budgets.is_feasible(space, g, c) if space.budgets.latency_ms is None else None,
                     "name": f"{space.name}-{i:03d}-{g.hash}", "genotype": g})
    if as_json:
        typer.echo(json.dumps([{k: (v.to_dict() if k == "genotype" else v) for k, v in r.items()} for r in rows]))
        return
    if out is not None:
        _write_genotypes(out, rows)
    from nas.cli.tables import arch_table

    ok = {True: "yes", False: "[red]no[/red]", None: "?"}
    console.print(arch_table(
        ["#", "hash", "MACs", "params", "in budget"],
        [([str(i), r["hash"], fmt_count(r["macs"]), fmt_count(r["params"]), ok[r["feasible"]]], r["genotype"].summary())
         for i, r in enumerate(rows)],
        title=f"{n} samples from {space.name} (seed {seed}{', feasible only' if feasible else ''})",
        width=console.width, left=("hash", "in budget")))
    if out is not None:
        console.print(f"wrote {len(rows)} genotype files to {out}/", highlight=False)


def _write_genotypes(out: Path, rows: list[dict]) -> None:
    """All files or none: every text is made before the first file is written, and the files written are
    removed again when a later one cannot be."""
    from nas.io import atomic_write

    texts = {out / f"{r['name']}.yaml": r["genotype"].replace(name=r["name"]).to_yaml() for r in rows}
    written: list[Path] = []
    try:
        out.mkdir(parents=True, exist_ok=True)
        for p, text in texts.items():
            fresh = not p.exists()
            atomic_write(p, text)
            if fresh:
                written.append(p)
    except OSError as e:
        for p in written:
            p.unlink(missing_ok=True)
        raise InputError(f"{out}: --out: cannot write ({e.strerror or e.__class__.__name__})") from None


@space_app.command("contains")
def space_contains(
    path: str = _SPACE_ARG,
    genotype: str = typer.Argument(..., help="Genotype YAML; shipped references by name, e.g. mixnet_s.yaml."),
    as_json: bool = typer.Option(False, "--json", help='Print {"contains": bool, "reason": str, "params": {...}}.'),
) -> None:
    """Is this architecture a point of the space?

    Exit status 0 if yes, 1 if not (saying which field puts it outside). With --json, also the Optuna
    parameters that reproduce it (for study.enqueue_trial)."""
    import json

    from nas.genotype import load
    from nas.space import load_space

    space = load_space(resolve_path(path))
    g = load(resolve_path(genotype))
    reason = space.why_not(g)
    if as_json:
        params = space.params_of(g) if reason is None else None
        typer.echo(json.dumps({"space": space.name, "genotype": g.name, "hash": g.hash, "contains": reason is None,
                               "reason": reason, "params": params}))
    elif reason is None:
        console.print(f"[green]yes[/green]: {g.name} ({g.hash}) is a point of {space.name}", highlight=False)
    else:
        console.print(f"[red]no[/red]: {g.name} is not a point of {space.name}: {reason}", highlight=False)
    if reason is not None:
        raise typer.Exit(1)
