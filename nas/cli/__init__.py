"""The ``nas`` command line (Typer + rich), one module per command group; the only code that prints.

Every command turns bad input into one line on stderr and exit status 2
(``nas.errors.InputError``; an option's field is printed as its flag, e.g.
``--sampler``); anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import sys

from nas.cli import describe, fidelity, ground, lut, results, search, space, train  # noqa: F401 - each registers its commands
from nas.cli.common import SHIPPED_SPACES, app, console, err_console, error_line, resolve_path
from nas.errors import InputError

__all__ = ["SHIPPED_SPACES", "app", "console", "err_console", "main", "resolve_path"]


def main() -> None:
    try:
        app(prog_name="nas")  # also under `python -m nas.cli`: help and shell completion name the command
    except InputError as e:
        err_console.print(f"error: {error_line(e)}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(2)
