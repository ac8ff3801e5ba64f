"""The Typer app, the consoles and what every command group shares. Only the CLI prints."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from nas.errors import InputError, OptionError, one_line

HELP = {"help_option_names": ["-h", "--help"]}

app = typer.Typer(
    help="Hardware-aware neural architecture search over MixConv/Ghost/SE/ACB/ChannelNets blocks.",
    no_args_is_help=True,
    add_completion=True,  # --install-completion / --show-completion for bash, zsh, fish, PowerShell
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",  # docstring paragraphs reflow to the terminal width
    context_settings=HELP,
)
space_app = typer.Typer(help="Validate, count, sample and query search-space YAML files.", no_args_is_help=True,
                        context_settings=HELP, rich_markup_mode="markdown")
lut_app = typer.Typer(help="Build and inspect per-op latency lookup tables.", no_args_is_help=True,
                      context_settings=HELP, rich_markup_mode="markdown")
app.add_typer(space_app, name="space")
app.add_typer(lut_app, name="lut")


def _version(value: bool) -> None:
    if value:
        from nas import __version__

        typer.echo(f"nas {__version__}")
        raise typer.Exit()


@app.callback()
def _main(version: bool = typer.Option(False, "--version", "-V", callback=_version, is_eager=True,
                                       help="Print the version and exit.")) -> None:
    """Hardware-aware neural architecture search over MixConv/Ghost/SE/ACB/ChannelNets blocks."""

console = Console()
err_console = Console(stderr=True)

SHIPPED_SPACES = Path(__file__).resolve().parents[2] / "search_spaces"


def resolve_path(path: str | Path) -> Path:
    """A path as typed; if it does not exist, look among the shipped ``search_spaces/`` (and reference/)."""
    from nas.space import find_space_file  # the one implementation of the lookup

    return find_space_file(path)



def flag(field: str) -> str:
    """The command-line flag of an option field: ``tier_budget`` -> ``--tier-budget``."""
    return "--" + field.replace("_", "-")


def error_line(e: InputError) -> str:
    """The one line an InputError is printed as: an option's field becomes its flag; a newline or another
    control character that came from the input (a key of a hostile file) is shown escaped."""
    return one_line(f"{flag(e.field)}: {e.problem}") if isinstance(e, OptionError) else str(e)


def study_dir(study: Path) -> Path:
    """``--study``: a directory with a ``trials.jsonl``."""
    if not (study / "trials.jsonl").is_file():
        raise InputError(f"{study}: trials.jsonl: not a study directory (run `nas search` first)")
    return study


def study_space(study: Path):
    """The study's copy of its space, or None."""
    from nas.space import load_space

    p = study / "space.yaml"
    return load_space(p) if p.is_file() else None
