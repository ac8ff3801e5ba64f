"""Run the ``nas`` CLI in-process, through ``main()`` (which maps InputError to exit 2)."""

import sys

import pytest

from nas import cli


def run_cli(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["nas", *args])
    with pytest.raises(SystemExit) as e:
        cli.main()
    out = capsys.readouterr()
    return e.value.code or 0, out.out, out.err
