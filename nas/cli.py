"""The ``nas`` command line (Typer + rich).

Every command turns bad input into one line on stderr and exit status 2
(``nas.errors.InputError``); anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import typer
from rich.console import Console

from nas.errors import InputError

app = typer.Typer(
    help="Hardware-aware neural architecture search over MixConv/Ghost/SE/ACB/ChannelNets blocks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
space_app = typer.Typer(help="Validate, count, sample and query search-space YAML files.", no_args_is_help=True)
lut_app = typer.Typer(help="Build and inspect per-op latency lookup tables.", no_args_is_help=True)
app.add_typer(space_app, name="space")
app.add_typer(lut_app, name="lut")

console = Console()
err_console = Console(stderr=True)

SHIPPED_SPACES = Path(__file__).resolve().parent.parent / "search_spaces"


def resolve_path(path: str | Path) -> Path:
    """A path as typed; if it does not exist, look among the shipped ``search_spaces/`` (and reference/)."""
    from nas.space import find_space_file  # the one implementation of the lookup

    return find_space_file(path)


# --- describe (issue 3) ---


@app.command()
def describe(
    path: str = typer.Argument(..., help="Genotype YAML/JSON file; shipped references by name, e.g. mixnet_s.yaml."),
    resolution: int = typer.Option(None, "--resolution", "-r", min=1, help="Input side (default: the genotype's)."),
    num_classes: int = typer.Option(1000, "--num-classes", min=1, help="Classifier outputs."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of a table."),
    lut: Path = typer.Option(None, "--lut", help="Latency table (`nas lut build`): adds latency_ms_predicted."),
    measure: bool = typer.Option(False, "--measure", help="Also measure the deployed network (latency_ms_measured)."),
) -> None:
    """Analytic parameters and MACs of a genotype, per stage (no model is built without --lut/--measure)."""
    import json

    from nas.cost.macs import breakdown
    from nas.genotype import GenotypeError, load

    p = resolve_path(path)
    g = load(p)
    r = g.resolution if resolution is None else resolution
    try:
        rows = breakdown(g, r, num_classes)
    except GenotypeError as e:  # a genotype that cannot take these classes (cw classifier)
        raise GenotypeError(f"{p}: {e}") from None
    info = {"name": g.name, "hash": g.hash, "resolution": r, "num_classes": num_classes,
            "params": sum(row.params for row in rows), "macs": sum(row.macs for row in rows)}
    ref = _published(g)
    if ref is not None and r == g.resolution and num_classes == 1000:
        info.update(params_paper=ref.params, macs_paper=ref.macs_paper)
    info["stages"] = [row.__dict__ for row in rows]
    if lut is not None or measure:
        info.update(_latency_info(g.replace(resolution=r), lut, measure, num_classes))
    if as_json:
        typer.echo(json.dumps(info))
    else:
        console.print(_describe_table(info))
        for k in ("latency_ms_predicted", "latency_ms_measured"):
            if k in info:
                console.print(f"{k} ({info['latency_target']}): {info[k]}", highlight=False)


def _published(g):
    """The published figures of a shipped reference genotype, only if ``g`` is that very network."""
    from nas.cost.macs import REFERENCES
    from nas.genotype import GenotypeError, load

    ref = REFERENCES.get(g.name)
    shipped = SHIPPED_SPACES / "reference" / f"{g.name}.yaml"
    try:
        same = ref is not None and load(shipped).hash == g.hash
    except GenotypeError:
        same = False
    return ref if same else None


def _describe_table(info: dict):
    from rich.table import Table

    t = Table(title=f"{info['name']} ({info['hash']}) at {info['resolution']}x{info['resolution']}")
    for col in ("part", "blocks", "out ch", "out res", "params", "MACs"):
        t.add_column(col, justify="left" if col == "part" else "right")
    for row in info["stages"]:
        t.add_row(row["part"], str(row["blocks"] or ""), str(row["out"]), str(row["resolution"]),
                  f"{row['params']:,}", f"{row['macs'] / 1e6:,.1f}M")
    t.add_row("total", str(sum(row["blocks"] for row in info["stages"])), "", "",
              f"{info['params']:,}", f"{info['macs'] / 1e6:,.1f}M", style="bold")
    if "macs_paper" in info:
        t.caption = f"paper: {info['params_paper'] / 1e6:.2f}M params, {info['macs_paper'] / 1e6:.0f}M MACs as printed"
    return t


# --- space (issue 4) ---

_SPACE_ARG = typer.Argument(..., help="Search-space YAML; the shipped ones by name, e.g. mixnet.yaml (see `nas space "
                            "list`). A file in the working directory wins.")


@space_app.command("list")
def space_list() -> None:
    """The search spaces shipped in search_spaces/, with a one-line description each."""
    from rich.table import Table

    from nas.space import shipped_spaces

    t = Table(title="shipped search spaces (use the file name, e.g. `nas search --space mixnet.yaml`)")
    for col in ("space", "description"):
        t.add_column(col)
    for p in shipped_spaces():
        t.add_row(p.name, _space_description(p))
    console.print(t)


def _space_description(p: Path) -> str:
    import yaml

    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return "(unreadable: run `nas space validate` on it)"
    return str(data.get("description", "")) if isinstance(data, dict) else ""


@space_app.command("validate")
def space_validate(path: str = _SPACE_ARG) -> None:
    """Check a search space and summarise it.

    Checks every field (an error is one line naming the file and the field, exit status 2), that every point
    is a buildable network at the target and the proxy widths, and that no budget or family tier is below
    the smallest MACs/params any architecture of the space has."""
    from nas.search.budgets import min_achievable, validate_budgets
    from nas.space import fmt_count, load_space

    space = load_space(resolve_path(path))
    validate_budgets(space)
    mins = min_achievable(space)
    t, b, px = space.target, space.budgets, space.proxy
    budgets = ", ".join(f"{m} <= {fmt_count(v) if m != 'latency_ms' else v}" for m in ("macs", "params", "latency_ms")
                        if (v := getattr(b, m)) is not None) or "none"
    console.print(f"[green]ok[/green] {space.source}: [bold]{space.name}[/bold] {space.description}", highlight=False)
    lines = [
        f"target: {t.resolution}x{t.resolution}, {t.in_chans} channels, {t.num_classes} classes "
        "(budgets and costs are those of this network)",
        f"proxy: {px.dataset} at {px.resolution}x{px.resolution}, width {px.width:g}, {px.epochs} epochs "
        "(only decides what is trained)",
        f"stages: {', '.join(f'{s.name} (stride {s.stride}, share {s.share})' for s in space.stages)}",
        f"architectures: 10^{space.log10_count():.2f} (exactly {space.count()})",
        f"smallest achievable: {fmt_count(mins['macs'])} MACs, {fmt_count(mins['params'])} params",
        f"budgets: {budgets}",
        "objectives: " + ", ".join(f"{o.metric} ({o.direction})" for o in space.objectives),
        f"search: {space.search.sampler}, {space.search.trials} trials, {space.search.concurrency} at a time",
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

    space = load_space(resolve_path(path))
    n = space.count()
    if as_json:
        typer.echo(json.dumps({"space": space.name, "count": n, "log10": space.log10_count()}))
        return
    console.print(f"{space.name}: {n} architectures (10^{space.log10_count():.2f})", highlight=False)


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

    from nas.search.budgets import is_feasible, target_cost, validate_budgets
    from nas.space import fmt_count, load_space

    if out is not None and as_json:
        raise InputError("--out/--json: choose one output")
    space = load_space(resolve_path(path))
    if out is not None and out.exists() and not out.is_dir():
        raise InputError(f"{out}: --out: exists and is not a directory")
    if feasible:
        validate_budgets(space)
    genotypes = space.sample_many(n, seed=seed, feasible=partial(is_feasible, space) if feasible else None)
    rows = []
    for i, g in enumerate(genotypes):
        c = target_cost(space, g)
        rows.append({"hash": g.hash, "macs": c.macs, "params": c.params,
                     "feasible": is_feasible(space, g, c) if space.budgets.latency_ms is None else None,
                     "name": f"{space.name}-{i:03d}-{g.hash}", "genotype": g})
    if as_json:
        typer.echo(json.dumps([{k: (v.to_dict() if k == "genotype" else v) for k, v in r.items()} for r in rows]))
        return
    if out is not None:
        _write_genotypes(out, rows)
    from rich.table import Table

    t = Table(title=f"{n} samples from {space.name} (seed {seed}{', feasible only' if feasible else ''})")
    for col in ("#", "hash", "blocks", "MACs", "params", "in budget", "kernels"):
        t.add_column(col, justify="right" if col in ("#", "blocks", "MACs", "params") else "left")
    for i, r in enumerate(rows):
        g = r["genotype"]
        ok = {True: "yes", False: "[red]no[/red]", None: "?"}[r["feasible"]]
        t.add_row(str(i), r["hash"], str(len(g.blocks)), fmt_count(r["macs"]), fmt_count(r["params"]), ok,
                  ",".join("-".join(map(str, b.kernels)) for b in g.blocks))
    console.print(t)
    if out is not None:
        console.print(f"wrote {len(rows)} genotype files to {out}/", highlight=False)


def _write_genotypes(out: Path, rows: list[dict]) -> None:
    """All files or none: each is written to a temporary name first, and renamed once all are written."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        tmp = []
        for r in rows:
            p = out / f".{r['name']}.yaml.tmp"
            p.write_text(r["genotype"].replace(name=r["name"]).to_yaml())
            tmp.append(p)
        for p in tmp:
            p.replace(p.with_name(p.name[1:].removesuffix(".tmp")))
    except OSError as e:
        for p in out.glob(".*.yaml.tmp"):
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


# --- lut (issue 5) ---


@lut_app.command("build")
def lut_build(
    space: str = typer.Option(..., "--space", help="Search-space YAML (shipped ones by name, e.g. tiny.yaml)."),
    target: str = typer.Option("torch-cpu", "--target", help="Latency target (see `nas lut targets`)."),
    out: Path = typer.Option(..., "--out", help="Table to write (JSON)."),
    cache: Path = typer.Option(None, "--cache", help="Cache file (default ~/.cache/nas/lut/<target>-<device>.json)."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Measure everything; read and write no cache."),
    networks: int = typer.Option(10, "--networks", min=0, help="Whole random networks measured to calibrate."),
    fit: str = typer.Option(None, "--fit", help="Calibration: offset or linear (default: offset for parts timed "
                            "in context, linear for parts timed alone)."),
    rounds: int = typer.Option(3, "--rounds", min=1, help="Interleaved measurement rounds per part."),
    seed: int = typer.Option(0, "--seed", help="Seed of the carrier and calibration networks."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Measure every part (stem, block in context, head) a space can produce on a target; write the table."""
    from nas.latency import FITS, build_lut
    from nas.space import load_space

    if fit is not None and fit not in FITS:
        raise InputError(f"--fit: {fit!r} is not one of {', '.join(FITS)}")
    sp = load_space(space)
    with _progress(not quiet) as task:
        table, st = build_lut(sp, target, out=out, cache=False if no_cache else (cache or True), networks=networks,
                              fit=fit, rounds=rounds, seed=seed, progress=task)
    cal = table.calibration
    console.print(f"{out}: {st.parts} parts of {sp.name} on {table.target.name} ({st.measured} measured, "
                  f"{st.reused} from the cache) in {st.seconds:.0f} s; calibration on {st.networks} networks: "
                  f"scale {cal['scale']:.3f}, offset {cal['offset_ms']:.3f} ms"
                  + (f", error {100 * cal['mape']:.1f}%" if "mape" in cal else ""), highlight=False)


@contextlib.contextmanager
def _progress(show: bool):
    """``task(description, total) -> advance`` over a rich progress bar on stderr (or nothing)."""
    if not show:
        yield None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    cols = (TextColumn("{task.description:<28}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            TextColumn("eta"), TimeRemainingColumn())
    with Progress(*cols, console=Console(stderr=True)) as prog:
        def task(desc: str, total: int):
            tid = prog.add_task(desc, total=total)
            return lambda: prog.advance(tid)
        yield task


@lut_app.command("show")
def lut_show(
    file: Path = typer.Argument(..., help="A table written by `nas lut build`."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as one JSON object."),
    target: str = typer.Option(None, "--target", help="Fail (exit 2) unless the table is for this target."),
) -> None:
    """Target, device, calibration and size of a latency table."""
    import json

    from nas.cost.table import load_lut
    from nas.latency import on_this_machine

    t = load_lut(file, target)
    ms = sorted(e["ms"] for e in t.entries.values())
    info = {"file": str(file), "space": t.space, "target": t.target.__dict__, "device": t.device,
            "entries": len(ms), "unit_ms": t.unit_ms, "calibration": {k: v for k, v in t.calibration.items()
                                                                       if k != "points"},
            "entry_ms": {"min": ms[0], "median": ms[len(ms) // 2], "max": ms[-1]} if ms else None,
            "this_machine": on_this_machine(t)}
    if as_json:
        typer.echo(json.dumps(info))
        return
    for k, v in info.items():
        console.print(f"[bold]{k}[/bold]: {v}", highlight=False)


@lut_app.command("targets")
def lut_targets() -> None:
    """The latency target presets."""
    from rich.table import Table

    from nas.config import ALIASES, TARGETS

    tab = Table("name", "backend", "batch", "threads", "device", "clock", "aliases")
    for t in TARGETS.values():
        aliases = ", ".join(a for a, n in ALIASES.items() if n == t.name)
        tab.add_row(t.name, t.backend, str(t.batch), str(t.threads), t.device, t.clock, aliases)
    console.print(tab)


def _latency_info(g, lut: Path | None, measure: bool, num_classes: int) -> dict:
    """``nas describe --lut/--measure``: predicted and measured latency of ``g`` as built (resolution included)."""
    from nas.cost.table import load_lut, predict
    from nas.latency import get_target, measure_genotype, on_the_fly

    info: dict = {}
    table = load_lut(lut) if lut is not None else None
    if table is not None:
        info["latency_target"] = table.target.name
        info["latency_ms_predicted"] = round(predict(g, table, num_classes=num_classes, measure=on_the_fly(table)), 4)
    if measure:
        tgt = table.target if table is not None else get_target("torch-cpu")
        info["latency_target"] = tgt.name
        m = measure_genotype(g, tgt, num_classes, unit_ms=table.unit_ms if table is not None else None)
        info["latency_ms_measured"], info["latency_ms_iqr"] = round(m.ms, 4), round(m.iqr, 4)
    return info


# --- train (issue 6) ---


@app.command()
def train(
    arch: str = typer.Option(..., "--arch", help="Genotype YAML (shipped references by name, e.g. mixnet_s.yaml)."),
    data: str = typer.Option("digits", "--data", help="'digits' (built in) or a local path to a data set."),
    dataset_format: str = typer.Option(
        None, "--dataset-format", help="cifar10 | cifar100 | imagefolder | npz (default: guessed from the path)."),
    epochs: int = typer.Option(None, "--epochs", min=1, help="Epochs (default: the proxy recipe's)."),
    resolution: int = typer.Option(None, "--resolution", min=4, help="Proxy input resolution."),
    width: float = typer.Option(None, "--width", min=0.01, help="Proxy width multiplier."),
    batch_size: int = typer.Option(None, "--batch-size", min=2, help="Training batch size."),
    lr: float = typer.Option(None, "--lr", min=0.0, help="Peak learning rate."),
    optimizer: str = typer.Option(None, "--optimizer", help="sgd | adamw."),
    subsample: int = typer.Option(None, "--subsample", min=2, help="Keep at most this many training images."),
    seed: int = typer.Option(None, "--seed", help="Training seed (init, order, augmentation)."),
    device: str = typer.Option(None, "--device", help="auto | cpu | cuda | cuda:N."),
    threads: int = typer.Option(
        None, "--threads", min=1, help="torch CPU threads (proxies this small run as fast on 1, and far better "
                                       "than on several when other processes share the cores)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object; no progress bar."),
    save: Path = typer.Option(None, "--save", help="Directory for weights.pt, genotype.yaml and train.json."),
) -> None:
    """Train the proxy network of a genotype and report validation accuracy and speed."""
    import dataclasses
    import json

    from nas.genotype import load
    from nas.train import TrainConfig, check_config, load_data, resolve_device

    g = load(resolve_path(arch))
    overrides = {"epochs": epochs, "resolution": resolution, "width": width, "batch_size": batch_size, "lr": lr,
                 "optimizer": optimizer, "subsample": subsample, "seed": seed, "device": device}
    cfg = dataclasses.replace(TrainConfig(), **{k: v for k, v in overrides.items() if v is not None})
    if optimizer is not None and optimizer not in ("sgd", "adamw"):
        raise InputError(f"--optimizer: {optimizer!r} is not one of sgd, adamw")
    if data != "digits":
        if dataset_format is not None and dataset_format not in ("cifar10", "cifar100", "imagefolder", "npz"):
            raise InputError(f"--dataset-format: {dataset_format!r} is not one of cifar10, cifar100, imagefolder, npz")
        cfg = dataclasses.replace(cfg, dataset=dataset_format or "auto", path=data)
    if save is not None and save.exists() and not save.is_dir():
        raise InputError(f"{save}: --save needs a directory, this is a file")
    check_config(cfg)
    if threads:
        import torch

        torch.set_num_threads(threads)
    # Data errors surface before any progress output; train() then finds the data in the per-process cache.
    load_data(cfg, g.in_chans, resolve_device(cfg.device))

    result = _train_with_progress(g, cfg, quiet=as_json)
    target = _target_cost(g)
    out = {"accuracy": result.accuracy, "best_accuracy": result.best_accuracy, "train_s": result.train_s,
           "images_per_s": result.images_per_s, "epochs": result.epochs_run, "params_proxy": result.params,
           **target, "name": g.name, "hash": g.hash, "proxy_hash": result.genotype.hash,
           "resolution": cfg.resolution, "width": cfg.width, "dataset": cfg.dataset, "device": result.device,
           "stopped_early": result.stopped_early, "diverged": result.diverged, "history": result.history}
    if save is not None:
        _save_training(save, result, out)
    if as_json:
        typer.echo(json.dumps(out))
    else:
        console.print(f"{g.name or 'genotype'}: val accuracy {result.accuracy:.2%} (best {result.best_accuracy:.2%}) "
                      f"after {result.epochs_run} epochs, {result.train_s:.1f} s, {result.images_per_s:,.0f} img/s "
                      f"on {result.device}; proxy {result.params:,} params" + (f"; saved to {save}" if save else ""))


def _train_with_progress(g, cfg, quiet: bool):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from nas.train import train as run_training

    if quiet:
        return run_training(g, cfg)
    cols = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            TextColumn("{task.fields[info]}"))
    with Progress(*cols, console=err_console, transient=False) as progress:
        task = progress.add_task("training", total=cfg.epochs, info="loading data")

        def report(epoch: int, m: dict) -> None:
            progress.update(task, completed=epoch, info=f"loss {m['train_loss']:.3f}  val {m['val_accuracy']:.2%}  "
                                                        f"{m['images_per_s']:,.0f} img/s")

        try:
            return run_training(g, cfg, callback=report)
        except InputError:
            progress.update(task, visible=False)  # bad input: its one error line, not a bar stuck at "loading"
            raise


def _target_cost(g) -> dict:
    """Params/MACs of the target genotype (what the search optimises), not of the proxy."""
    from nas.cost.macs import count

    c = count(g)
    return {"params": c.params, "macs": c.macs}


def _save_training(out_dir: Path, result, info: dict) -> None:
    """weights.pt (proxy state_dict), genotype.yaml (the proxy genotype the weights fit), train.json."""
    import json
    import os

    import torch

    out_dir.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in result.model.state_dict().items()}
    files = {"weights.pt": lambda f: torch.save(state, f),
             "genotype.yaml": lambda f: f.write(result.genotype.to_yaml().encode()),
             "train.json": lambda f: f.write(json.dumps(info, indent=1).encode())}
    for name, write in files.items():
        tmp = out_dir / f".{name}.tmp"
        with open(tmp, "wb") as f:
            write(f)
        os.replace(tmp, out_dir / name)

# --- search (issue 7) ---


@app.command()
def search(
    space: str = typer.Option(..., "--space", help="Search-space YAML (a shipped name such as mixnet.yaml works)."),
    trials: int = typer.Option(None, "--trials", min=1, help="Total finished trials the study should hold "
                               "(a resumed study runs the rest)."),
    sampler: str = typer.Option(None, "--sampler", help="nsga2 | tpe | gp | random (default: the space's)."),
    concurrency: int = typer.Option(None, "--concurrency", min=1, help="Trials trained at once."),
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
    """Search architectures: Optuna proposes, budgets filter, Ray Tune trains; writes results/<study>/."""
    from nas.search.driver import SearchOptions, run_search
    from nas.search.pareto import front_table

    opts = SearchOptions(space=resolve_path(space), trials=trials, sampler=sampler, concurrency=concurrency,
                         out=out, study=study, address=address, seed=seed, wandb=wandb, objective=objective,
                         storage=storage, progress=not quiet)
    try:
        s = run_search(opts, console=console)
    except KeyboardInterrupt:
        err_console.print("aborted: run the same command again to resume (finished trials are kept)",
                          markup=False, highlight=False)
        raise typer.Exit(130) from None
    if not quiet:
        title = (f"{s.study_dir.name}: Pareto front, {len(s.front)} of {len(s.records)} trials, "
                 f"hypervolume {s.hypervolume:.4f}")
        console.print(front_table(s.front, s.objectives, title=title))
    c = s.counts
    console.print(f"{s.study_dir}: {len(s.records)} trials ({s.new_trials} new in {s.wall_s:.0f} s): "
                  f"{c.get('complete', 0)} complete, {c.get('pruned', 0)} pruned, {c.get('infeasible', 0)} "
                  f"infeasible, {c.get('failed', 0)} failed, {c.get('duplicate', 0)} duplicates",
                  markup=False, highlight=False)
    if s.interrupted:
        err_console.print(f"interrupted: run the same command again to resume {s.study_dir}",
                          markup=False, highlight=False)
        raise typer.Exit(130)

# --- pareto / plot / export-best / baselines (issue 8) ---


def _study_dir(study: Path) -> Path:
    if not (study / "trials.jsonl").is_file():
        raise InputError(f"{study}: trials.jsonl: not a study directory (run `nas search` first)")
    return study


def _study_space(study: Path):
    from nas.space import load_space

    p = study / "space.yaml"
    return load_space(p) if p.is_file() else None


@app.command()
def pareto(
    study: Path = typer.Option(..., "--study", help="Study directory (results/<study>) holding trials.jsonl."),
    as_json: bool = typer.Option(False, "--json", help="Print pareto.json's content instead of a table."),
) -> None:
    """Print the study's Pareto front (feasible, non-dominated trials) and its hypervolume."""
    import json

    from nas.plots import read_records
    from nas.search.pareto import front, front_table, hypervolume
    from nas.tracking import space_budgets, study_objectives, study_reference_point

    study = _study_dir(study)
    records = read_records(study)
    space = _study_space(study)
    objectives = study_objectives(space)
    fr = front(records, objectives)
    ref = study_reference_point(study, objectives, space_budgets(space), records)
    hv = hypervolume(records, objectives, ref)
    if as_json:
        typer.echo(json.dumps({"study": study.name, "objectives": objectives, "front": fr, "hypervolume": hv,
                               "reference_point": ref, "n_trials": len(records)}))
        return
    console.print(front_table(fr, objectives, title=f"{study.name}: Pareto front, {len(fr)} of {len(records)} trials"))
    names = ", ".join(f"{o['metric']} ({o['direction']})" for o in objectives)
    console.print(f"objectives: {names}; hypervolume {hv:.6g}")


@app.command()
def plot(
    study: Path = typer.Option(..., "--study", help="Study directory (results/<study>) holding trials.jsonl."),
) -> None:
    """Write pareto.html (interactive, works offline) and pareto.png into the study directory."""
    from nas.plots import write_plots
    from nas.tracking import space_budgets

    study = _study_dir(study)
    html, png = write_plots(study, budgets=space_budgets(_study_space(study)))
    console.print(f"wrote {html} and {png}")


@app.command("export-best")
def export_best(
    study: Path = typer.Option(None, "--study", help="Study directory to derive the family from."),
    arch: str = typer.Option(None, "--arch", help="Export this one genotype YAML instead of a family."),
    tiers: str = typer.Option(None, "--tiers", help="Comma-separated tiers to export (default: all declared)."),
    tier_budget: str = typer.Option(
        None, "--tier-budget", help="Tier budgets, e.g. s=250e6,m=360M,l=12ms (MACs unless 'ms'; "
                                    "'params:5M'; '+' joins limits); override the space's family section."),
    out: Path = typer.Option(None, "--out", help="Output directory (default: <study>/family, or ./export)."),
    num_classes: int = typer.Option(1000, "--num-classes", min=1, help="With --arch: classifier outputs."),
    measure: bool = typer.Option(True, "--measure/--no-measure", help="Measure torch-cpu latency of each member."),
) -> None:
    """Export a MixNet-like family (one member per tier) or one architecture: genotype, TorchScript, ONNX, table."""
    from nas.export import export_arch, export_family
    from nas.genotype import load

    if (study is None) == (arch is None):
        raise InputError("export-best: give exactly one of --study DIR or --arch GENOTYPE")
    if arch is not None:
        g = load(resolve_path(arch))
        d = export_arch(g, out or Path("export"), num_classes=num_classes, measure=measure)
        console.print(f"exported {g.name or g.hash} to {d}")
        return
    names = [t.strip() for t in tiers.split(",") if t.strip()] if tiers else None
    d = export_family(_study_dir(study), out, names, tier_budget, measure=measure)
    console.print((d / "family.md").read_text(), markup=False, highlight=False, soft_wrap=True)
    console.print(f"exported to {d}")


@app.command()
def baselines(
    space: str = typer.Option(..., "--space", help="Search-space YAML whose proxy recipe and target to use."),
    study: Path = typer.Option(None, "--study", help="Study directory for baselines.json (default: results/<space>)."),
    refs: str = typer.Option(None, "--refs", help="Comma-separated reference names (default: all shipped)."),
    seeds: int = typer.Option(1, "--seeds", min=1, help="Proxy trainings per reference (accuracy is their mean)."),
    epochs: int = typer.Option(None, "--epochs", min=1, help="Override the proxy's epochs."),
    measure: bool = typer.Option(False, "--measure/--no-measure", help="Also measure torch-cpu latency."),
) -> None:
    """Evaluate the reference architectures (MixNet, GhostNet, MobileNet) under the space's proxy and cost models."""
    from nas.export import evaluate_baselines, reference_files, write_baselines
    from nas.space import load_space

    sp = load_space(resolve_path(space))
    names = [r.strip() for r in refs.split(",") if r.strip()] if refs else None
    reference_files(names)  # a bad name fails before any training
    data = evaluate_baselines(sp, names, seeds=seeds, measure=measure, epochs=epochs,
                              log=lambda s: err_console.print(s, markup=False, highlight=False))
    study = study or Path("results") / sp.name
    p = write_baselines(study, data)
    if (study / "trials.jsonl").is_file():
        from nas.plots import write_plots
        from nas.tracking import space_budgets

        write_plots(study, budgets=space_budgets(sp))
    console.print(f"wrote {p}")


def main() -> None:
    try:
        app()
    except InputError as e:
        err_console.print(f"error: {e}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
