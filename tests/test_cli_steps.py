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


def test_the_search_views_heartbeat_stops_when_closed_even_without_search_finished():
    """A search that ends in an error never reports ``search_finished``: ``close`` (the CLI calls it in a
    ``finally``) still stops the heartbeat thread, so no line is printed into whatever runs next."""
    import time
    from types import SimpleNamespace

    from nas.cli.progress import ProgressView

    out = io.StringIO()
    view = ProgressView(Console(file=out, force_terminal=False, width=80), heartbeat_s=0.05)
    book = SimpleNamespace(records=[], front=[], hypervolume=0.0)
    view.search_started(SimpleNamespace(book=book, settings=SimpleNamespace(trials=2), study="s", study_dir="d",
                                        resumed=False, requeued=0, repaired=0))
    beat = view._beat
    assert beat is not None and beat.is_alive()
    deadline = time.monotonic() + 10
    while "nothing running" not in out.getvalue() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert "nothing running" in out.getvalue()  # the heartbeat ran
    view.close()
    assert not beat.is_alive()
    printed = out.getvalue()
    time.sleep(0.3)
    assert out.getvalue() == printed
