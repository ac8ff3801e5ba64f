"""Latency: measurement, table keys, enumeration, LUT build/round trip/cache, prediction, one-line errors."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from _cli import run_cli
from torch import nn

from nas.cost.parts import block_fields, part_keys, parts, space_parts
from nas.cost.table import LatencyTable, load_lut, predict
from nas.errors import InputError
from nas.genotype import BlockSpec, from_dict
from nas.latency import build_lut, carriers, get_target, measure, measure_in_context, measure_missing, predictor
from nas.space import load_space

# Two stages, 16 px, 4 classes: 1 stem + 2 + 2 blocks + 1 head = 6 entries.
SPACE = """\
name: micro
target: {resolution: 16, in_chans: 3, num_classes: 4}
stem: {out: 8, kernel: 3, stride: 2, act: relu}
stages:
  - {name: s1, stride: 2, out: 8, repeat: 1, groups: [1, 2], expand: 3}
  - {name: s2, stride: 1, out: 16, repeat: 1, groups: 1, expand: 3, se: [0, 0.25]}
head: {features: 32, act: relu, kind: fc, dropout: 0.1}
"""
FAST = {"rounds": 1, "burst_s": 0.002, "networks": 3}

ARCH = {"resolution": 16, "stem": {"out": 8}, "stages": [{"blocks": [{"out": 8, "stride": 2, "expand": 3}]},
                                                        {"blocks": [{"out": 16, "expand": 3}]}],
        "head": {"features": 32}}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def space(tmp_path_factory):
    p = tmp_path_factory.mktemp("space") / "micro.yaml"
    p.write_text(SPACE)
    return load_space(p)


@pytest.fixture(scope="module")
def built(space, tmp_path_factory):
    d = tmp_path_factory.mktemp("lut")
    old = torch.get_num_threads()
    table, stats = build_lut(space, "torch-cpu-cputime", out=d / "lut.json", cache=d / "cache.json", **FAST)
    assert torch.get_num_threads() == old  # measuring leaves the thread setting as it was
    return table, stats, d / "lut.json"




# -- measurement -----------------------------------------------------------------------

@pytest.mark.parametrize("target", ["torch-cpu", "torch-cpu-cputime", "torch-cpu-wall", "onnxruntime-cpu"])
def test_measurement_gives_positive_medians(target):
    m = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1)).eval()
    r = measure(m, (1, 3, 16, 16), target, rounds=2, burst_s=0.005)
    assert r.ms > 0 and r.iqr >= 0 and r.n >= 6 and r.raw_ms > 0


def test_a_bigger_module_measures_slower():
    small = nn.Conv2d(8, 8, 1).eval()
    big = nn.Sequential(*[nn.Conv2d(64, 64, 3, padding=1) for _ in range(4)]).eval()
    assert measure(big, (1, 64, 32, 32), "torch-cpu-cputime", rounds=2).ms > 3 * measure(
        small, (1, 8, 32, 32), "torch-cpu-cputime", rounds=2).ms


def test_parts_timed_in_context_cover_every_part():
    g = from_dict(ARCH)
    res = measure_in_context([g], "torch-cpu-cputime", num_classes=4, rounds=1, burst_s=0.002)
    assert set(res) == set(part_keys(g, 4)) and all(m.ms > 0 for m in res.values())


def test_unknown_target_and_a_cpu_clock_with_threads_are_rejected():
    with pytest.raises(InputError, match="unknown target 'tpu'"):
        get_target("tpu")
    assert get_target("cpu").name == "torch-cpu"
    with pytest.raises(InputError, match="clock"):
        replace(get_target("torch-cpu"), threads=2)


# -- keys and enumeration -----------------------------------------------------------------

def test_keys_ignore_what_deploy_folds_or_what_has_no_effect():
    b = BlockSpec(out=16, kernels=(3, 5), expand=3.0)
    assert block_fields(8, b) == block_fields(8, replace(b, acb=True))  # ACB folds into one conv
    assert block_fields(8, b) == block_fields(8, replace(b, se_gate="hsigmoid"))  # no SE: gate unused
    assert block_fields(8, b) == block_fields(8, replace(b, expand=2.0, mid=24))  # same mid channels
    assert block_fields(8, b) != block_fields(16, b)  # input channels matter
    assert block_fields(8, b) != block_fields(8, replace(b, split="exponential"))
    one = replace(b, kernels=(3,))
    assert block_fields(8, one) == block_fields(8, replace(one, split="exponential"))  # one group: no split


def test_enumeration_is_exact_for_the_micro_space_and_covers_samples_of_tiny(space):
    found = space_parts(space)
    assert sorted(p.kind for p in found.values()) == ["block"] * 4 + ["head", "stem"]
    tiny = load_space("tiny.yaml")
    keys = space_parts(tiny)
    for g in tiny.sample_many(200, seed=3):
        assert set(part_keys(g, tiny.target.num_classes)) <= set(keys)


def test_carriers_hold_every_wanted_part():
    tiny = load_space("tiny.yaml")
    wanted = space_parts(tiny)
    nets, alone = carriers(wanted, tiny.sample_many(100, seed=1, unique=False), 10)
    held = {k for g in nets for k in part_keys(g, 10)}
    assert not alone and set(wanted) <= held and len(nets) < len(wanted)


# -- building, round trip, cache ----------------------------------------------------------------

def test_build_round_trips_through_json(built):
    table, stats, out = built
    assert (stats.parts, stats.measured, stats.reused, stats.networks) == (6, 6, 0, 3)
    data = json.loads(out.read_text())
    assert data["version"] == 1 and data["target"]["name"] == "torch-cpu-cputime" and data["device"]["cpu"]
    back = load_lut(out, "torch-cpu-cputime")
    assert back.entries == table.entries and back.calibration == table.calibration and back.target == table.target
    assert all(e["ms"] > 0 for e in back.entries.values())


def test_prediction_is_the_sum_of_entries_plus_the_calibration(built, space):
    table = load_lut(built[2])
    table.calibration = {"scale": 1.5, "offset_ms": 0.25}
    g = space.sample(0)
    keys = part_keys(g, 4)
    assert predict(g, table) == pytest.approx(1.5 * sum(table.entries[k]["ms"] for k in keys) + 0.25)
    assert predictor(lut=built[2], target="torch-cpu-cputime", num_classes=4)(g) == pytest.approx(
        predict(g, load_lut(built[2])))


def test_a_second_build_measures_nothing_new(built, space, tmp_path):
    table, _, out = built
    again, stats = build_lut(space, "torch-cpu-cputime", out=tmp_path / "again.json", cache=out.parent / "cache.json",
                             **FAST)
    assert (stats.measured, stats.reused) == (0, 6) and again.entries == table.entries


def test_a_probe_clock_build_stores_its_unit(space, tmp_path):
    table, stats = build_lut(space, "torch-cpu", out=tmp_path / "p.json", cache=False, **FAST)
    assert table.unit_ms > 0 and load_lut(tmp_path / "p.json").unit_ms == table.unit_ms and stats.measured == 6


def test_onnxruntime_tables_time_parts_alone_and_fit_a_line(space, tmp_path):
    table, stats = build_lut(space, "onnxruntime-cpu", out=tmp_path / "ort.json", cache=False, **FAST)
    assert stats.measured == 6 and all(e["ms"] > 0 for e in table.entries.values())
    assert table.calibration["fit"] in ("linear", "offset") and load_lut(tmp_path / "ort.json", "ort").device[
        "onnxruntime"]


def test_missing_parts_are_named_or_measured_on_the_fly(built):
    table = load_lut(built[2])
    g = from_dict({**ARCH, "stages": [{"blocks": [{"out": 8, "stride": 2, "kernels": [3, 5, 7], "expand": 3}]},
                                      {"blocks": [{"out": 16, "expand": 3}]}]})
    with pytest.raises(InputError, match=r"lut.json: entries: no entry for block r8 c8 .*\[3,5,7\]"):
        predict(g, table)
    assert predict(g, table, measure=measure_missing) > 0 and not table.missing(g)


# -- one-line errors, exit 2 ----------------------------------------------------------------------

def test_describe_adds_predicted_and_measured_latency(built, monkeypatch, capsys, tmp_path):
    arch = tmp_path / "arch.yaml"
    arch.write_text(json.dumps(ARCH))
    code, out, _ = run_cli(monkeypatch, capsys, "describe", str(arch), "--lut", str(built[2]), "--measure",
                           "--num-classes", "4", "--json")
    d = json.loads(out)
    assert code == 0 and d["latency_ms_predicted"] > 0 and d["latency_ms_measured"] > 0


@pytest.mark.parametrize("case", ["missing", "corrupt", "not-a-table", "bad-entry", "other-target"])
def test_bad_tables_exit_2_with_one_line(case, built, monkeypatch, capsys, tmp_path):
    lut = tmp_path / "t.json"
    data = json.loads(built[2].read_text())
    extra: tuple[str, ...] = ()
    if case == "corrupt":
        lut.write_text(built[2].read_text()[:-40])
    elif case == "not-a-table":
        lut.write_text("[1, 2]")
    elif case == "bad-entry":
        data["entries"][next(iter(data["entries"]))]["ms"] = "fast"
        lut.write_text(json.dumps(data))
    elif case == "other-target":
        lut.write_text(json.dumps(data))
        extra = ("--target", "torch-cpu-b8")
    arch = tmp_path / "arch.yaml"
    arch.write_text(json.dumps(ARCH))
    for args in (("lut", "show", str(lut), *extra), ("describe", str(arch), "--lut", str(lut), "--json"))[
            : 1 if extra else 2]:
        code, out, err = run_cli(monkeypatch, capsys, *args)
        assert code == 2 and not out and len(err.strip().splitlines()) == 1 and "Traceback" not in err
        assert err.startswith(f"error: {lut}: ")
    with pytest.raises(InputError):
        predictor(target="torch-cpu-b8", lut=lut)


def test_lut_build_cli(space, monkeypatch, capsys, tmp_path):
    sp = tmp_path / "micro.yaml"
    sp.write_text(SPACE)
    out = tmp_path / "cli.json"
    code, stdout, _ = run_cli(monkeypatch, capsys, "lut", "build", "--space", str(sp), "--target", "torch-cpu-cputime",
                              "--out", str(out), "--no-cache", "--networks", "2", "--rounds", "1", "-q")
    assert code == 0 and "6 parts" in stdout and isinstance(load_lut(out), LatencyTable)
    code, _, err = run_cli(monkeypatch, capsys, "lut", "build", "--space", str(sp), "--target", "tpu", "--out",
                           str(tmp_path / "x.json"))
    assert code == 2 and "unknown target 'tpu'" in err and not (tmp_path / "x.json").exists()
    assert len(parts(space.sample(0), 4)) == 4


# -- budgets and tiers from a recorded run -------------------------------------------

def test_lut_budgets_derives_the_limits_from_quartiles_of_predicted_latency(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("NAS_CACHE_DIR", str(tmp_path / "cache"))
    sp = tmp_path / "micro.yaml"
    sp.write_text(SPACE + "budgets: {target: torch-cpu, latency_ms: 10, macs: 10M}\n")
    out = tmp_path / "budgets.json"
    code, stdout, _ = run_cli(monkeypatch, capsys, "lut", "budgets", "--space", str(sp), "--n", "4", "--seed", "3",
                              "--json", str(out))
    d = json.loads(out.read_text())
    q = d["quartiles_ms"]
    assert code == 0 and d["networks"] == 4 and q["s"] <= q["m"] <= q["l"] == d["budget_ms"]
    assert d["unit_ms"] > 0 and d["table"] and d["device"]["torch"] and d["threads"] == 1
    # The quartiles are those of the predictions of the seed's networks, from the table the run filled.
    space = load_space(sp)
    p = predictor("torch-cpu", num_classes=4)
    lat = [p(g) for g in space.sample_many(4, seed=3)]
    assert q["m"] == round(float(np.percentile(lat, 50)), 1) and p.stats.parts == 0  # nothing timed again
    assert f"family: s <= {q['s']} ms" in stdout and f"budgets.unit_ms {d['unit_ms']}" in stdout
    sp.write_text(SPACE)
    code, _, err = run_cli(monkeypatch, capsys, "lut", "budgets", "--space", str(sp), "--n", "8")
    assert code == 2 and "budgets.target" in err
