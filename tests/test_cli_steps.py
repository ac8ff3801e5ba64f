"""The step progress of long CLI commands: a line per step off a terminal, a live bar on one."""

from __future__ import annotations

import io

from rich.console import Console

from nas.cli.steps import Steps


def test_off_a_terminal_each_step_is_a_flushed_line():
    out = io.StringIO()
    with Steps("fidelity", Console(file=out, force_terminal=False, width=80)) as steps:
        steps.update(1, 3, "e1 seed 1: 90.0% in 2 s")
        steps.note("a note")
        steps.update(2, 3, "e1 seed 2: 91.0% in 2 s")
    assert out.getvalue().splitlines() == ["fidelity 1/3: e1 seed 1: 90.0% in 2 s", "note: a note",
                                           "fidelity 2/3: e1 seed 2: 91.0% in 2 s"]


def test_disabled_prints_nothing_and_a_terminal_gets_the_bar():
    out = io.StringIO()
    with Steps("x", Console(file=out, force_terminal=False), disable=True) as steps:
        steps.update(1, 1, "done")
        steps.note("n")
    assert out.getvalue() == ""
    term = io.StringIO()
    with Steps("eval", Console(file=term, force_terminal=True, width=80)) as steps:
        assert steps.live
        steps.update(1, 2, "m seed 1")
    assert "eval" in term.getvalue() and "1/2" in term.getvalue()
