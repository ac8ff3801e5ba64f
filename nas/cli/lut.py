"""``nas lut``: build and inspect latency lookup tables."""

from __future__ import annotations

import contextlib
from pathlib import Path

import typer

from nas.cli.common import console, lut_app
from nas.errors import InputError


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
    from nas.io import check_output_file
    from nas.latency import FITS, build_lut
    from nas.space import load_space

    if fit is not None and fit not in FITS:
        raise InputError(f"--fit: {fit!r} is not one of {', '.join(FITS)}")
    sp = load_space(space)
    check_output_file(out, "--out")  # before measuring for minutes
    if cache is not None and not no_cache:
        check_output_file(cache, "--cache")
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
    from rich.console import Console
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
