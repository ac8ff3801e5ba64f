"""This machine's latency table: merged writes from several processes, on-demand timing, foreign tables."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nas.cost.parts import part_keys
from nas.cost.table import PROTOCOL, LatencyTable, table_from_dict
from nas.errors import InputError
from nas.latency import LatencyPredictor, MachineCache, get_target, load_cache, predictor
from nas.latency import cache as cache_mod
from nas.latency.cache import STUDY_TABLE
from nas.latency.protocol import Protocol
from nas.space import space_from_dict

REPO = Path(__file__).resolve().parent.parent
TARGET = "torch-cpu-cputime"  # no probe unit to agree on: the merge itself is under test
# one window of a few passes, no warm-up windows: the merge and the lookups are under test, not the figures
FAST = Protocol(min_windows=1, max_windows=1, window_s=0.002, warmup_max_s=0.0, pin=False)
MICRO = {
    "name": "micro", "target": {"resolution": 16, "in_chans": 3, "num_classes": 4},
    "stem": {"out": 8, "kernel": 3, "stride": 2},
    "stages": [{"name": "s1", "stride": 2, "out": [8, 16], "repeat": 1, "groups": [1, 2, 3], "expand": [1, 3]},
               {"name": "s2", "stride": 1, "out": [16, 24], "repeat": [1, 2], "groups": [1, 2], "se": [0, 0.25]}],
    "head": {"features": 32},
}

pytestmark = pytest.mark.usefixtures("one_thread")


def _python(code: str, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-c", code, *args], env=env, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


_WRITER = """
import sys
from nas.latency import MachineCache
c = MachineCache("torch-cpu-cputime", sys.argv[1])
c.table()
print("ready", flush=True)
sys.stdin.readline()  # both writers start together
for i in range(40):
    c.add({f"{sys.argv[2]}{i}": {"ms": 1.0 + i, "iqr": 0.1, "n": 3}, "shared": {"ms": 2.0, "iqr": 0.1, "n": i}})
"""

_READER = """
import json, sys, time
from nas.cost.table import table_from_dict
seen, t_end = 0, time.time() + 60
while time.time() < t_end:
    time.sleep(0.002)
    try:
        text = open(sys.argv[1]).read()
    except FileNotFoundError:
        continue
    table = table_from_dict(json.loads(text), sys.argv[1])  # whole and valid at every moment
    seen = max(seen, len(table.entries))
    if seen == 81:
        break
print(seen)
"""


def test_two_writers_at_once_lose_nothing_and_readers_never_see_half_a_file(tmp_path):
    path = tmp_path / "cache.json"
    reader = _python(_READER, str(path))
    writers = [_python(_WRITER, str(path), prefix) for prefix in ("a", "b")]
    assert [w.stdout.readline().strip() for w in writers] == ["ready", "ready"]
    for w in writers:
        w.stdin.write("go\n")
        w.stdin.flush()
    for w in writers:
        _, err = w.communicate(timeout=120)
        assert w.returncode == 0, err
    out, err = reader.communicate(timeout=120)
    assert reader.returncode == 0, err
    table = table_from_dict(json.loads(path.read_text()), str(path))
    assert set(table.entries) == {f"{p}{i}" for p in "ab" for i in range(40)} | {"shared"}
    assert table.entries["shared"]["n"] == 0  # the first entry written stays: both writers wrote n=0 first
    assert int(out) == 81
    assert not list(tmp_path.glob("*.tmp*"))  # no temp file left behind


_PREDICT = """
import json, sys
from nas.space import space_from_dict
from nas.latency import LatencyPredictor
from nas.latency.protocol import Protocol
space = space_from_dict(json.loads(sys.argv[2]), "micro.yaml")
fast = Protocol(min_windows=1, max_windows=1, window_s=0.002, warmup_max_s=0.0)
p = LatencyPredictor("torch-cpu-cputime", num_classes=4, cache=sys.argv[1], protocol=fast)
for g in space.sample_many(int(sys.argv[4]), seed=int(sys.argv[3]), unique=False):
    p(g)
print(p.stats.parts)
"""


def test_two_searches_timing_on_demand_share_one_complete_table(tmp_path):
    """Two processes time what their proposals lack into one file at the same time: afterwards every part of
    every proposal of either is in it, and a third predictor predicts them all without timing anything."""
    path = tmp_path / "cache.json"
    procs = [_python(_PREDICT, str(path), json.dumps(MICRO), str(seed), "4") for seed in (1, 2)]
    for pr in procs:
        out, err = pr.communicate(timeout=300)
        assert pr.returncode == 0, err
        assert int(out) > 0
    space = space_from_dict(MICRO, "micro.yaml")
    nets = space.sample_many(4, seed=1, unique=False) + space.sample_many(4, seed=2, unique=False)
    table = load_cache(get_target(TARGET), path)
    assert {k for g in nets for k in part_keys(g, 4)} <= set(table.entries)
    third = LatencyPredictor(TARGET, num_classes=4, cache=path, protocol=FAST)
    assert all(third(g) > 0 for g in nets) and third.stats.parts == 0


def test_missing_parts_are_timed_once_and_kept_for_the_next_process(tmp_path):
    space = space_from_dict(MICRO, "micro.yaml")
    g = space.sample(3)
    p = LatencyPredictor(TARGET, num_classes=4, cache=tmp_path / "c.json", protocol=FAST)
    first = p(g)
    n = len(set(part_keys(g, 4)))
    assert first > 0 and p.stats.parts == n and p.stats.networks == 1 and p.stats.seconds > 0
    assert p(g) == first and p.stats.parts == n  # nothing timed twice
    again = LatencyPredictor(TARGET, num_classes=4, cache=tmp_path / "c.json", protocol=FAST)
    assert again(g) == pytest.approx(first) and again.stats.parts == 0


def test_entries_timed_under_another_probe_unit_are_rescaled_on_merge(tmp_path):
    c = MachineCache("torch-cpu", tmp_path / "c.json")
    c.add({"a": {"ms": 1.0, "iqr": 0.1, "n": 3}}, unit_ms=0.5)
    t = c.add({"b": {"ms": 3.0, "iqr": 0.3, "n": 3}}, unit_ms=0.6)  # a process whose probe ran slower
    assert t.unit_ms == 0.5 and t.entries["a"]["ms"] == 1.0 and t.entries["b"]["ms"] == pytest.approx(2.5)


def test_a_faster_probe_lowers_the_unit_and_rescales_the_table(tmp_path):
    c = MachineCache("torch-cpu", tmp_path / "c.json")
    c.add({"a": {"ms": 1.0, "iqr": 0.1, "n": 3}}, unit_ms=0.5, calibration={"scale": 1.0, "offset_ms": 0.2})
    assert c.refine_unit(0.49).unit_ms == 0.5  # within 3%: kept
    assert c.refine_unit(0.6).entries["a"]["ms"] == 1.0  # slower (a loaded machine): kept
    t = c.refine_unit(0.4)
    assert t.unit_ms == 0.4 and t.entries["a"]["ms"] == pytest.approx(0.8)
    assert t.calibration["offset_ms"] == pytest.approx(0.16)
    assert load_cache(get_target("torch-cpu"), c.path).unit_ms == 0.4


def _foreign_table(space) -> LatencyTable:
    """A complete table of the space's first sample, as if measured on a phone."""
    g = space.sample(0)
    entries = {k: {"ms": 0.5, "iqr": 0.0, "n": 5} for k in part_keys(g, 4)}
    return table_from_dict({"version": 1, "target": {"name": "pixel", "backend": "onnxruntime-cpu", "clock": "wall"},
                            "device": {"cpu": "Snapdragon 855", "cores": 8}, "calibration": {"scale": 1.0,
                            "offset_ms": 0.25}, "entries": entries, "num_classes": 4}, "pixel.json")


def test_a_table_measured_elsewhere_is_used_as_is_and_never_timed(tmp_path, monkeypatch):
    def no_timing(*_a, **_k):
        raise AssertionError("timed a part for a table of another device")

    measure_mod = importlib.import_module("nas.latency.measure")  # nas.latency.measure is also a function
    monkeypatch.setattr(measure_mod, "measure_in_context", no_timing)
    monkeypatch.setattr(measure_mod, "measure_parts", no_timing)
    monkeypatch.setattr(cache_mod, "cache_dir", lambda: tmp_path / "never")
    space = space_from_dict(MICRO, "micro.yaml")
    table = _foreign_table(space)
    p = LatencyPredictor(lut=table, num_classes=4)
    g = space.sample(0)
    assert not p.measures and p(g) == pytest.approx(0.5 * len(part_keys(g, 4)) + 0.25)
    other = next(h for h in space.sample_many(20, seed=5) if set(part_keys(h, 4)) - set(table.entries))
    missing = next(k for k in part_keys(other, 4) if k not in table.entries)
    with pytest.raises(InputError, match=r"^pixel\.json: entries: no entry for " + missing.split(" {")[0]):
        p(other)
    assert p.stats.parts == 0 and not (tmp_path / "never").exists()


def test_a_table_file_of_this_machine_takes_missing_parts_from_its_cache(tmp_path, monkeypatch):
    """``budgets.lut`` measured here: parts it lacks are timed into this machine's table (not into the file),
    in the table's unit."""
    monkeypatch.setenv("NAS_CACHE_DIR", str(tmp_path / "cache"))
    space = space_from_dict(MICRO, "micro.yaml")
    g = space.sample(0)
    empty = LatencyTable(target=get_target(TARGET), device=load_cache(get_target(TARGET)).device, num_classes=4)
    empty.save(tmp_path / "lut.json")
    p = predictor(TARGET, tmp_path / "lut.json", num_classes=4)
    p.protocol = FAST
    assert p.measures and p(g) > 0 and p.stats.parts == len(set(part_keys(g, 4)))
    assert json.loads((tmp_path / "lut.json").read_text())["entries"] == {}
    assert set(part_keys(g, 4)) <= set(MachineCache(TARGET).table().entries)


# -- predictions that do not move ----------------------------------------------------------------------------------

def test_a_table_records_what_its_figures_rest_on_and_names_itself(tmp_path):
    c = MachineCache("torch-cpu", tmp_path / "c.json")
    t = c.add({"a": {"ms": 1.0, "n": 3}}, unit_ms=0.5)
    d = json.loads(c.path.read_text())
    assert d["unit_ms"] == 0.5 and d["target"]["threads"] == 1 and d["protocol"] == PROTOCOL
    assert {"cpu", "cores", "machine", "torch"} <= set(d["device"])
    assert d["id"] == t.table_id == table_from_dict(d).table_id and len(t.table_id) == 12


def test_an_entry_once_written_is_never_replaced(tmp_path):
    c = MachineCache("torch-cpu", tmp_path / "c.json")
    c.add({"a": {"ms": 1.0, "n": 3}}, unit_ms=0.5)
    t = c.add({"a": {"ms": 2.0, "n": 300}, "b": {"ms": 3.0, "n": 3}}, unit_ms=0.5)  # more passes: still kept out
    assert t.entries["a"]["ms"] == 1.0 and t.entries["b"]["ms"] == 3.0


def test_a_re_measured_unit_keeps_old_predictions_reproducible_and_a_new_calibration_says_they_changed(tmp_path):
    space = space_from_dict(MICRO, "micro.yaml")
    g = space.sample(0)
    c = MachineCache("torch-cpu", tmp_path / "c.json")
    c.add({k: {"ms": 0.1 * (i + 1), "n": 3} for i, k in enumerate(part_keys(g, 4))}, unit_ms=0.5)
    p = LatencyPredictor("torch-cpu", num_classes=4, cache=c)
    before, old_id = p(g), p.table_id
    c.refine_unit(0.4)  # a quieter machine: every entry rescaled by 0.8
    after = p(g)
    assert p.table_id != old_id and after == pytest.approx(0.8 * before)
    table = c.table()
    assert table.factor_to(old_id) * after == pytest.approx(before)  # the old id's prediction, exactly
    assert table.factor_to(table.table_id) == 1.0 and table.factor_to("0123456789ab") is None
    unit_id = table.table_id
    c.add({}, 0.4, calibration={"scale": 1.0, "offset_ms": 0.3, "fit": "offset"})
    assert c.table().factor_to(unit_id) is None  # a new calibration: the old predictions changed, and it says so
    assert [h["id"] for h in c.table().history] == [old_id, unit_id]


def test_a_cache_of_an_earlier_protocol_is_set_aside(tmp_path, caplog):
    c = MachineCache("torch-cpu", tmp_path / "c.json")
    c.add({"a": {"ms": 1.0, "n": 3}}, unit_ms=0.5)
    d = json.loads(c.path.read_text())
    d["protocol"] = ""
    c.path.write_text(json.dumps(d))
    assert load_cache(get_target("torch-cpu"), c.path).entries == {}
    assert "another protocol" in caplog.text


def test_export_best_predicts_a_study_s_members_alike_with_and_without_a_cache(tmp_path, monkeypatch):
    """The search keeps the entries it predicted from in the study directory; ``nas export-best``'s costing
    predicts from them: the same figure with this machine's cache as with an empty one (where nothing is timed),
    and the table it names is the search's."""
    from nas.export.files import costing_for_space

    monkeypatch.setenv("NAS_CACHE_DIR", str(tmp_path / "cache"))
    space = space_from_dict({**MICRO, "budgets": {"target": TARGET, "latency_ms": 50}}, "micro.yaml")
    study = tmp_path / "study"
    search = LatencyPredictor(TARGET, num_classes=4, protocol=FAST)
    search.keep_in(study / STUDY_TABLE)
    members = space.sample_many(3, seed=11)
    during = [search(g) for g in members]
    with_cache = costing_for_space(space, measure=False, study_dir=study)
    assert [with_cache.predict(g) for g in members] == during
    monkeypatch.setenv("NAS_CACHE_DIR", str(tmp_path / "empty"))

    def no_timing(*_a, **_k):
        raise AssertionError("timed a part the study's table has")
    measure_mod = importlib.import_module("nas.latency.measure")
    monkeypatch.setattr(measure_mod, "measure_in_context", no_timing)
    without = costing_for_space(space, measure=False, study_dir=study)
    assert [without.predict(g) for g in members] == during
    assert without.latency.table_id == search.table_id
    # What the issue saw: an empty cache without the study's table times the members again, another figure.
    assert not (tmp_path / "empty").exists()


def test_search_warns_when_this_machine_s_probe_unit_is_far_from_the_one_the_limits_were_derived_on(tmp_path,
                                                                                                   caplog):
    p = predictor("torch-cpu", num_classes=4, cache=tmp_path / "c.json", derived_unit_ms=0.40)
    assert p.check_unit(0.41) is None
    msg = p.check_unit(0.26)
    assert msg and "35% faster than the 0.4 ms" in msg and "nas lut budgets" in caplog.text
    assert predictor("torch-cpu", num_classes=4, cache=tmp_path / "c.json").check_unit(0.26) is None


def test_a_search_names_the_table_of_every_prediction_and_its_study_keeps_that_table(tmp_path, monkeypatch):
    """A cost-only search of a space with a latency target: each record names the table its latency came from,
    the study directory holds that table, and the export's costing predicts every record's latency from it
    again, exactly, with this machine's cache emptied."""
    import yaml

    from nas.export import read_study
    from nas.export.files import costing_for_space
    from nas.genotype import from_dict
    from nas.search.driver import SearchOptions, run_search

    monkeypatch.setenv("NAS_CACHE_DIR", str(tmp_path / "cache"))
    space_file = tmp_path / "micro.yaml"
    space_file.write_text(yaml.safe_dump({**MICRO, "budgets": {"target": TARGET, "latency_ms": 100}}))
    s = run_search(SearchOptions(space=str(space_file), trials=3, out=tmp_path / "out", objective="cost",
                                 wandb="disabled"))
    kept = table_from_dict(json.loads((s.study_dir / STUDY_TABLE).read_text()))
    assert s.records and all(r.latency_table == kept.table_id for r in s.records)
    monkeypatch.setenv("NAS_CACHE_DIR", str(tmp_path / "empty"))
    space, records = read_study(s.study_dir)
    costing = costing_for_space(space, measure=False, study_dir=s.study_dir)
    assert [costing.predict(from_dict(r.genotype)) for r in records] == [r.latency_ms for r in records]
    assert not (tmp_path / "empty").exists()


def test_the_space_s_budgets_unit_reaches_the_search_s_predictor_and_prepare_warns(tmp_path, monkeypatch, caplog):
    from nas.search import budgets

    monkeypatch.setenv("NAS_CACHE_DIR", str(tmp_path / "cache"))
    space = space_from_dict({**MICRO, "budgets": {"target": "torch-cpu", "latency_ms": 5, "unit_ms": 0.4}},
                            "micro.yaml")
    p = budgets.latency_predictor(space)
    assert p.derived_unit_ms == 0.4
    measure_mod = importlib.import_module("nas.latency.measure")
    monkeypatch.setattr(measure_mod, "probe_ms", lambda seconds=2.0: 0.25)
    p.prepare()  # what the search's proposer calls before Ray starts
    assert "this machine's probe unit is 0.250 ms, 38% faster than the 0.4 ms" in caplog.text
