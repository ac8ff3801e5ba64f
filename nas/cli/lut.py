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
    cache: Path = typer.Option(None, "--cache", help="Cache file (default `~/.cache/nas/lut/<target>-<device>.json`)."),
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
            "this_machine": on_this_machine(t), "id": t.table_id, "protocol": t.protocol or None,
            "history": t.history}
    if as_json:
        typer.echo(json.dumps(info))
        return
    console.print(_show_table(info))


def _show_table(info: dict):
    """``nas lut show`` as two columns of readable values (``--json`` has the raw ones)."""
    from rich.table import Table

    tg, dev, cal, ms = info["target"], info["device"] or {}, info["calibration"] or {}, info["entry_ms"]
    fit = ", ".join([f"scale {cal['scale']:.3f}" if "scale" in cal else "", f"offset {cal['offset_ms']:.3f} ms"
                     if "offset_ms" in cal else "", f"{cal['fit']} fit" if cal.get("fit") else "",
                     f"on {cal['networks']} networks" if cal.get("networks") else "",
                     f"error {100 * cal['mape']:.1f}%" if "mape" in cal else ""])
    t = Table(show_header=False, box=None, pad_edge=False, title=info["file"], title_justify="left")
    t.add_column(style="bold", no_wrap=True)
    t.add_column()
    for k, v in (
        ("space", info["space"]),
        ("id", info["id"] + (f" (earlier: {', '.join(h['id'] for h in info['history'])})" if info["history"] else "")),
        ("protocol", info["protocol"] or "earlier (medians of fixed rounds)"),
        ("target", f"{tg['name']} ({tg['backend']}, batch {tg['batch']}, {tg['threads']} thread"
                   f"{'s' if tg['threads'] != 1 else ''}, {tg['device']}, {tg['clock']} clock)"),
        ("device", ", ".join(f"{v} cores" if k == "cores" else f"{k} {v}" if k == "torch" else str(v)
                             for k, v in dev.items())),
        ("this machine", "yes" if info["this_machine"] else "no: measured on another device"),
        ("entries", f"{info['entries']}" + (f" (min {ms['min']:.3f} ms, median {ms['median']:.3f} ms, "
                                            f"max {ms['max']:.3f} ms)" if ms else "")),
        ("unit", f"{info['unit_ms']:.4f} ms" if info.get("unit_ms") is not None else "n/a"),
        ("calibration", ", ".join(x for x in fit.split(", ") if x) or "none"),
    ):
        t.add_row(k, str(v))
    return t


@lut_app.command("targets")
def lut_targets() -> None:
    """The latency target presets (the backend names the device: cpu, or cuda)."""
    from rich import box
    from rich.table import Table

    from nas.config import ALIASES, TARGETS

    tab = Table(box=box.SIMPLE_HEAD, pad_edge=False, title="latency targets (`nas lut build --target NAME`)",
                title_justify="left")
    whole = {"name": max(map(len, TARGETS)), "backend": max(len(t.backend) for t in TARGETS.values())}
    for col in ("name", "backend", "batch", "threads", "clock", "aliases"):  # names whole: one types them
        tab.add_column(col, no_wrap=col in whole, min_width=whole.get(col, len(col)),
                       justify="right" if col in ("batch", "threads") else "left")
    for t in TARGETS.values():
        aliases = ", ".join(a for a, n in ALIASES.items() if n == t.name)
        tab.add_row(t.name, t.backend, str(t.batch), str(t.threads), t.clock, aliases)
    console.print(tab)


@lut_app.command("budgets")
def lut_budgets(
    space: str = typer.Option(..., "--space", help="Search-space YAML whose budgets name a latency target."),
    n: int = typer.Option(50, "--n", min=4, help="Random networks (within the MAC/param budgets) predicted."),
    seed: int = typer.Option(2024, "--seed", help="Seed of the random networks."),
    cache: Path = typer.Option(None, "--cache", help="Table file (default: this machine's cache for the target)."),
    json_out: Path = typer.Option(None, "--json", help="Also write the figures as JSON."),
) -> None:
    """Re-derive a space's latency budget and S/M/L tier limits on this machine: quartiles of the predicted
    latency of random networks of the space (parts timed on demand into this machine's table)."""
    import json
    import os
    import time

    from nas.latency.lut import derive_budgets
    from nas.space import load_space

    sp = load_space(space)
    load0 = os.getloadavg()
    d = derive_budgets(sp, n, seed, cache=cache)
    q, dev = d["quartiles_ms"], d["device"]
    load = os.getloadavg()
    lines = [f"{sp.name}: {d['networks']} random networks within the MAC/param budgets (seed {seed}), predicted "
             f"on {d['target']} ({d['threads']} thread(s)) on {dev.get('cpu')}, {dev.get('cores')} cores, torch "
             f"{dev.get('torch')}; {time.strftime('%Y-%m-%d %H:%M %Z')}; load average {load0[0]:.2f} -> {load[0]:.2f}",
             f"table {d['table']} (protocol {d['protocol']}), probe unit {d['unit_ms']} ms; "
             f"{d['parts_timed']} parts timed in {d['seconds']} s",
             f"predicted latency: 25% {q['s']} ms, median {q['m']}, 75% {q['l']}, range {d['min_ms']}-{d['max_ms']}",
             f"family: s <= {q['s']} ms, m <= {q['m']} ms, l <= {q['l']} ms; budgets.latency_ms {d['budget_ms']}, "
             f"budgets.unit_ms {d['unit_ms']}"]
    for line in lines:
        console.print(line, markup=False, highlight=False, soft_wrap=True)
    if json_out is not None:
        from nas.io import atomic_write

        atomic_write(json_out, json.dumps(d, indent=1) + "\n")
