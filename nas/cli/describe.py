"""``nas describe``: parameters, MACs and latency of a genotype, per stage."""

from __future__ import annotations

from pathlib import Path

import typer

from nas.cli.common import SHIPPED_SPACES, app, console, resolve_path


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

    from nas.cost.macs import breakdown, count
    from nas.genotype import GenotypeError, load

    p = resolve_path(path)
    g = load(p)
    r = g.resolution if resolution is None else resolution
    try:
        rows = breakdown(g, r, num_classes)
    except GenotypeError as e:  # a genotype that cannot take these classes (cw classifier)
        raise GenotypeError(f"{p}: {e}") from None
    info = {"name": g.name, "hash": g.hash, "summary": g.summary(), "resolution": r, "num_classes": num_classes,
            "params": sum(row.params for row in rows), "macs": sum(row.macs for row in rows)}
    trained = count(g, r, num_classes, deployed=False)  # ACB's branches before deploy folds them
    if (trained.params, trained.macs) != (info["params"], info["macs"]):
        info.update(params_training=trained.params, macs_training=trained.macs)
    ref = _published(g)
    if ref is not None and r == g.resolution and num_classes == 1000:
        info["params_paper"] = ref.params
        if ref.macs_paper is not None:  # some papers print parameters only (ChannelNet-v2/v3)
            info["macs_paper"] = ref.macs_paper
    info["stages"] = [row.__dict__ for row in rows]
    if lut is not None or measure:
        if measure:  # the network is built: refused first when it cannot fit in memory
            from nas.cost.memory import check

            check(g, batch=1, num_classes=num_classes, resolution=r, what="measuring it", source=str(p))
        info.update(_latency_info(g.replace(resolution=r), lut, measure, num_classes))
    if as_json:
        typer.echo(json.dumps(info))
    else:
        console.print(_describe_table(info))
        if "params_training" in info:
            console.print(f"as trained (ACB branches unfolded): {info['params_training']:,} params, "
                          f"{info['macs_training'] / 1e6:,.1f}M MACs", highlight=False)
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

    t = Table(title=f"{info['name']} ({info['hash']}) at {info['resolution']}x{info['resolution']}\n{info['summary']}")
    for col in ("part", "blocks", "out ch", "out res", "params", "MACs"):
        t.add_column(col, justify="left" if col == "part" else "right")
    for row in info["stages"]:
        t.add_row(row["part"], str(row["blocks"] or ""), str(row["out"]), str(row["resolution"]),
                  f"{row['params']:,}", f"{row['macs'] / 1e6:,.1f}M")
    t.add_row("total", str(sum(row["blocks"] for row in info["stages"])), "", "",
              f"{info['params']:,}", f"{info['macs'] / 1e6:,.1f}M", style="bold")
    if "params_paper" in info:
        macs = f", {info['macs_paper'] / 1e6:.0f}M MACs" if "macs_paper" in info else ""
        t.caption = f"paper: {info['params_paper'] / 1e6:.2f}M params{macs} as printed"
    return t


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
