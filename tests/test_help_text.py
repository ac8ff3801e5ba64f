"""Every placeholder of the CLI's help (``<study>``, ``<target>``) reaches the terminal: Typer's markdown mode takes
a bare ``<...>`` for an HTML tag and drops it ("writes results//."), so help texts quote them as code."""

from __future__ import annotations

import re

import pytest
import typer
from typer.testing import CliRunner

from nas.cli import app

_PLACEHOLDER = re.compile(r"<[A-Za-z_][\w .-]*>")


def _commands(c, path=()):
    yield path, c
    for name, sub in getattr(c, "commands", {}).items():
        yield from _commands(sub, (*path, name))


COMMANDS = list(_commands(typer.main.get_command(app)))


def test_no_help_text_has_a_bare_placeholder():
    bare = []
    for path, c in COMMANDS:
        for name, text in [("help", c.help or "")] + [(p.name, getattr(p, "help", None) or "") for p in c.params]:
            for outside in re.split(r"`[^`]*`", text):  # inside backticks markdown keeps them
                bare += [f"nas {' '.join(path)} {name}: {m}" for m in _PLACEHOLDER.findall(outside)]
    assert not bare, bare


@pytest.mark.parametrize("path", [p for p, c in COMMANDS if p and not getattr(c, "commands", None)],
                         ids=lambda p: " ".join(p))
def test_every_placeholder_is_printed(path):
    c = dict(COMMANDS)[path]
    texts = [c.help or ""] + [getattr(p, "help", None) or "" for p in c.params]
    wanted = {m for t in texts for m in _PLACEHOLDER.findall(t)}
    out = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "400"}).output
    assert all(w in out for w in wanted), (sorted(wanted), out)


def test_the_trials_help_says_what_a_trial_is():
    """`--trials 4` left 5 records in a space with tiers: the help says refusals come on top, not counted."""
    out = CliRunner().invoke(app, ["search", "--help"], env={"COLUMNS": "400"}).output
    assert "proposals refused for their tier (never trained) come on top" in " ".join(out.split()).replace("│ ", "")
