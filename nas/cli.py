"""The ``nas`` command line (Typer + rich).

Every command turns bad input into one line on stderr and exit status 2
(``nas.errors.InputError``); anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

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
    """A path as typed; if it does not exist, look among the shipped ``search_spaces/``."""
    p = Path(path)
    if p.exists():
        return p
    for cand in (SHIPPED_SPACES / p, SHIPPED_SPACES / "reference" / p):
        if cand.exists():
            return cand
    return p


# --- describe (issue 3) ---

# --- space (issue 4) ---

# --- lut (issue 5) ---

# --- train (issue 6) ---

# --- search (issue 7) ---

# --- pareto / plot / export-best / baselines (issue 8) ---


def main() -> None:
    try:
        app()
    except InputError as e:
        err_console.print(f"error: {e}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
