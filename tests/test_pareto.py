"""Pareto front and hypervolume of study records (nas.results.front, nas.results.pareto)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nas.results.front import front, hypervolume, is_feasible, objective_values
from nas.results.pareto import read_reference_point, write_pareto_json

OBJS = [{"metric": "accuracy", "direction": "maximize"}, {"metric": "macs", "direction": "minimize"}]
BUDGET = 1000.0


def rec(number: int, acc: float | None, macs: int, status: str = "complete", over: float | None = None,
        h: str | None = None, duplicate_of: int | None = None) -> dict:
    return {"number": number, "hash": h or f"h{number}", "status": status, "accuracy": acc, "macs": macs,
            "params": 10, "latency_ms": None, "violations": {"macs": over if over is not None else macs / BUDGET - 1},
            "duplicate_of": duplicate_of}


def dominates(a: dict, b: dict) -> bool:
    return (a["accuracy"] >= b["accuracy"] and a["macs"] <= b["macs"]
            and (a["accuracy"] > b["accuracy"] or a["macs"] < b["macs"]))


def test_front_keeps_feasible_non_dominated_once_per_architecture():
    records = [
        rec(0, 0.5, 500), rec(1, 0.8, 800), rec(2, 0.4, 600),  # 2 is dominated by 0
        rec(3, 0.9, 1200, status="infeasible"),  # over budget: never on the front
        rec(4, 0.95, 700, status="pruned"),  # partial accuracy: not a front member
        rec(5, None, 100, status="failed"),
        rec(6, 0.8, 800, h="h1", duplicate_of=1),  # the same architecture answered again
    ]
    members = front(records, OBJS)
    assert [m["number"] for m in members] == [0, 1]  # sorted by MACs, the original not its duplicate
    assert not is_feasible(records[3]) and not is_feasible(records[4])


def test_hypervolume_normalised_by_reference():
    # (acc, 1 - macs/B): (0.5, 0.5) and (0.8, 0.2) dominate 0.5*0.5 + 0.3*0.2 of the unit square
    records = [rec(0, 0.5, 500), rec(1, 0.8, 800)]
    assert hypervolume(records, OBJS, [0.0, BUDGET]) == pytest.approx(0.31)
    assert hypervolume([records[0]], OBJS, [0.0, BUDGET]) == pytest.approx(0.25)
    # a dominated point adds nothing, a point beyond the reference nothing either
    assert hypervolume([*records, rec(2, 0.4, 600)], OBJS, [0.0, BUDGET]) == pytest.approx(0.31)
    assert hypervolume([rec(3, 0.9, 1000, over=0.0)], OBJS, [0.0, BUDGET]) == 0.0
    assert hypervolume([], OBJS, [0.0, BUDGET]) == 0.0


def test_objective_values_in_order_and_nan_when_missing():
    v = objective_values(rec(0, None, 500), OBJS)
    assert v[1] == 500 and v[0] != v[0]
    assert objective_values(rec(0, 0.7, 500), [{"metric": "macs"}, {"metric": "accuracy"}]) == (500.0, 0.7)


def test_write_pareto_json_is_complete_and_keeps_reference(tmp_path):
    records = [rec(0, 0.5, 500), rec(1, 0.8, 800), rec(2, 0.4, 600)]
    doc = write_pareto_json(tmp_path, records, OBJS, [0.0, BUDGET], study="s")
    on_disk = json.loads((tmp_path / "pareto.json").read_text())
    assert on_disk["front"] == doc["front"] and [m["number"] for m in on_disk["front"]] == [0, 1]
    assert on_disk["hypervolume"] == pytest.approx(0.31) and on_disk["n_trials"] == 3
    assert on_disk["objectives"] == OBJS and on_disk["study"] == "s"
    assert read_reference_point(tmp_path, 2) == [0.0, BUDGET]
    assert read_reference_point(tmp_path, 3) is None
    assert not list(tmp_path.glob(".*tmp"))


points = st.lists(st.tuples(st.integers(0, 20), st.integers(1, 1500), st.sampled_from(["complete", "pruned"])),
                  min_size=1, max_size=30)


@settings(max_examples=60, deadline=None)
@given(points)
def test_front_members_are_feasible_and_dominate_everything_else(pts):
    records = [rec(i, a / 20, m, status=s) for i, (a, m, s) in enumerate(pts)]
    members = front(records, OBJS)
    for a in members:
        assert is_feasible(a)
        assert not any(dominates(b, a) for b in members if b is not a)
    numbers = {m["number"] for m in members}
    for r in records:
        if is_feasible(r) and r["number"] not in numbers:
            assert any(dominates(m, r) or (m["accuracy"], m["macs"]) == (r["accuracy"], r["macs"]) for m in members)
    hv = hypervolume(records, OBJS, [0.0, BUDGET])
    assert 0.0 <= hv <= 1.0
    assert hv == pytest.approx(hypervolume(members, OBJS, [0.0, BUDGET]))


def test_the_front_table_keeps_each_member_on_one_line():
    """At 80 columns the architectures move under the table; wide enough, they are its last column. Either way
    every row is one line and each member's summary is printed whole (the one notation of every command)."""
    import io

    from rich.console import Console

    from nas.cli.tables import front_table
    from nas.genotype import load
    from nas.space import SHIPPED_SPACES

    g = load(SHIPPED_SPACES / "reference" / "mixnet_m.yaml")
    members = [{**rec(i, 0.5 + i / 10, 500 + i), "genotype": g.to_dict(), "epochs": 3} for i in range(3)]
    for width in (80, 160):
        out = io.StringIO()
        Console(file=out, width=width, color_system=None).print(front_table(members, OBJS, "front", width=width))
        lines = out.getvalue().splitlines()
        assert max(map(len, lines)) <= width
        rows = [ln for ln in lines if g.summary() in ln]
        assert len(rows) == 3, lines
        assert all(ln.split()[0] in ("0", "1", "2") for ln in rows)
        assert ("architecture" in lines[2]) == (width == 160)  # the header: a column only when it fits
