"""A family that is a family (issue 28): each larger tier more accurate than every smaller one on the selection
split, within its latency limit as measured (with a margin), and saying so where no trained design qualifies.
Unit tests on records (no network is built or trained here)."""

from __future__ import annotations

import random

from _synth_study import record, small_genotype

from nas import export
from nas.export.members import LATENCY_MARGIN, RECHOOSE
from nas.export.tiers import Tier
from nas.results.record import TrialRecord

TIERS = [Tier("s", {"macs": 0.6e6}), Tier("m", {"macs": 1.0e6}), Tier("l", {"macs": 1.8e6})]


def _records(n: int = 60, seed: int = 0) -> list[TrialRecord]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        r = record(i, small_genotype(rng), rng, macs_budget=1.8e6, status="complete")
        out.append(TrialRecord.from_dict(r))
    return out


def _band(records, tier_i):
    bands = export.members.ordered_bands([(t.name, t.limits) for t in TIERS])
    return [r for r in records if bands[tier_i].contains({"macs": r.macs, "params": r.params})]


def _with_accuracy(records, acc_of):
    import dataclasses

    return [dataclasses.replace(r, accuracy=acc_of(r)) for r in records]


def test_each_larger_tier_is_more_accurate_than_every_smaller_one():
    records = _records()
    s_band, m_band, l_band = (_band(records, i) for i in range(3))
    assert s_band and m_band and l_band
    # the s band holds the most accurate design of all: nothing in m beats it, something in l does
    top_s = max(s_band, key=lambda r: r.macs)
    best_l = max(l_band, key=lambda r: r.macs)

    def acc(r):
        if r.number == top_s.number:
            return 0.80
        if r.number == best_l.number:
            return 0.85
        return 0.30 + 0.2 * random.Random(r.number).random()

    records = _with_accuracy(records, acc)
    s, m, ll = export.tier_members(records, None, TIERS, export.Costing(num_classes=10).costs)
    assert (s.source, s.trial, s.accuracy) == ("trained", top_s.number, 0.80)
    # no m design beats s: m is s's member scaled up, and says why
    assert m.source == "scaled" and m.trial == top_s.number and m.accuracy is None
    assert any("more accurate than tier s" in n for n in m.notes) and any("scaled from tier s" in n for n in m.notes)
    assert (ll.source, ll.trial, ll.accuracy) == ("trained", best_l.number, 0.85)
    trained = [x for x in (s, m, ll) if x.accuracy is not None]
    assert all(a.accuracy < b.accuracy for a, b in zip(trained, trained[1:], strict=False))


def test_the_order_holds_on_many_random_studies():
    costs = export.Costing(num_classes=10).costs
    for seed in range(8):
        records = _with_accuracy(_records(40, seed), lambda r, seed=seed: random.Random(r.number * 7 + seed).random())
        members = export.tier_members(records, None, TIERS, costs)
        accs = [m.accuracy for m in members if m.source == "trained"]
        assert accs == sorted(accs) and len(set(accs)) == len(accs), (seed, accs)
        for m in members:  # every trained member's band: in its own tier, over the tier below's limits
            if m.source == "trained":
                assert m.record.macs <= dict((t.name, t.limits["macs"]) for t in TIERS)[m.tier]


def _latency_records():
    records = _records()
    # latency 10 ms per MMAC; tiers by latency
    import dataclasses

    return [dataclasses.replace(r, latency_ms=r.macs / 1e5, accuracy=0.3 + r.macs / 1e7) for r in records]


LAT_TIERS = [Tier("s", {"latency_ms": 6.0}), Tier("m", {"latency_ms": 10.0}), Tier("l", {"latency_ms": 18.0})]


def test_a_member_whose_measured_latency_misses_its_limit_is_rechosen():
    records = _latency_records()
    by_hash = {r.hash: r for r in records}
    l_band = sorted((r for r in records if 10.0 < r.latency_ms <= 18.0), key=lambda r: -r.accuracy)
    slow = {l_band[0].hash}  # the most accurate l design measures over its limit on this machine
    measured = []

    def measure(g):
        measured.append(g.hash)
        r = by_hash[g.hash]
        return 18.3 if g.hash in slow else r.latency_ms

    costs = lambda g: {"macs": 1.0, "params": 1.0, "latency_ms": 1.0}  # noqa: E731 - only trained members here
    s, m, ll = export.tier_members(records, None, LAT_TIERS, costs, measure_fn=measure)
    assert ll.trial == l_band[1].number and ll.source == "trained"
    assert any(n.startswith("re-chosen: trial") and "18.30 ms" in n for n in ll.notes)
    assert l_band[0].hash in measured and l_band[1].hash in measured


def test_when_no_design_is_within_its_measured_limit_the_member_is_flagged():
    records = _latency_records()
    by_hash = {r.hash: r for r in records}
    l_band = sorted((r for r in records if 10.0 < r.latency_ms <= 18.0), key=lambda r: -r.accuracy)

    def measure(g):  # every l design measures at its limit: within it, not within the margin
        r = by_hash[g.hash]
        return 18.0 if r.latency_ms > 10.0 else r.latency_ms

    costs = lambda g: {"macs": 1.0, "params": 1.0, "latency_ms": 1.0}  # noqa: E731
    *_, ll = export.tier_members(records, None, LAT_TIERS, costs, measure_fn=measure)
    assert ll.trial == l_band[0].number
    flag = next(n for n in ll.notes if n.startswith("FLAG"))
    assert "18.00 ms" in flag and f"{100 * LATENCY_MARGIN:g}%" in flag and str(RECHOOSE) in flag


def test_latency_within_the_margin_needs_no_rechoice():
    records = _latency_records()
    costs = lambda g: {"macs": 1.0, "params": 1.0, "latency_ms": 1.0}  # noqa: E731
    members = export.tier_members(records, None, LAT_TIERS, costs, measure_fn=lambda g: 0.1)
    assert all(not m.notes for m in members if m.source == "trained")
