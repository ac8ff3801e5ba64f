"""Fuzzing the readers of untrusted files (issue 21): random bytes and random structures give an InputError
(one line) or a valid result, never another exception.

Covered: the YAML reader (text, bytes, YAML made of anchors, aliases, tags and flow collections), search
spaces and genotypes (random documents, and the shipped ones with one value replaced by anything),
``trials.jsonl`` (random bytes, random JSON lines, valid records with one field replaced; a file that reads
must then give a front and a hypervolume) and ``baselines.json``.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nas.errors import InputError
from nas.genotype import from_dict
from nas.io import loads_yaml, read_yaml
from nas.results.pareto import pareto_document
from nas.results.store import load_baselines, read_records
from nas.space import space_from_dict

REPO = Path(__file__).resolve().parent.parent
TINY = yaml.safe_load((REPO / "search_spaces" / "tiny.yaml").read_text())
MIXNET_S = yaml.safe_load((REPO / "search_spaces" / "reference" / "mixnet_s.yaml").read_text())
FUZZ = settings(max_examples=int(os.environ.get("NAS_FUZZ_EXAMPLES", "100")), deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(10**30), max_value=10**30),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20),
                    st.sampled_from([0, 1, -1, 2**64, 10**100, "3-5", "400M", "relu", "ir", "equal"]))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=5),
                                                       st.dictionaries(st.text(max_size=8), inner, max_size=5)),
                      max_leaves=20)


def _only_input_errors(fn, *args) -> Any:
    try:
        return fn(*args)
    except InputError as e:
        assert "\n" not in str(e), str(e)
        return None


# -- the YAML reader -----------------------------------------------------------------------------------------------

_YAML_BITS = ["&a ", "*a", "&b ", "*b", "[", "]", "{", "}", ", ", ": ", "- ", "\n", "  ", "!!python/object:os.system ",
              "!!binary ", "!!timestamp ", "!!int ", "!!float ", "!!set ", "!!omap ", "? ", "<<: ", "'", '"', "#",
              "%YAML 1.1\n", "---\n", "...\n", "x", "1", "2020-02-31", "0x", ".inf", ".nan", "~", "|\n", ">\n",
              "\t", "\x00", "\ufeff", "a: 1\na: 2\n"]


@FUZZ
@given(st.text(max_size=300))
def test_yaml_text(text):
    _only_input_errors(loads_yaml, text, "fuzz.yaml")


@FUZZ
@given(st.lists(st.sampled_from(_YAML_BITS), max_size=40).map("".join))
def test_yaml_made_of_anchors_aliases_and_tags(text):
    _only_input_errors(loads_yaml, text, "fuzz.yaml")


@FUZZ
@given(st.binary(max_size=400))
def test_yaml_file_of_random_bytes(tmp_path_factory, data):
    p = tmp_path_factory.mktemp("fuzz") / "f.yaml"
    p.write_bytes(data)
    _only_input_errors(read_yaml, p)


# -- spaces and genotypes -----------------------------------------------------------------------------------------


def _paths(doc: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _paths(v, (*prefix, i))
    return out


def _replaced(doc: Any, path: tuple, value: Any) -> Any:
    if not path:
        return value
    doc = json.loads(json.dumps(doc))
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return doc


@FUZZ
@given(st.sampled_from(_paths(TINY)[1:]), values)
def test_a_space_with_one_value_replaced(path, value):
    _only_input_errors(space_from_dict, _replaced(TINY, path, value), "fuzz.yaml")


@FUZZ
@given(values)
def test_a_random_space_document(doc):
    _only_input_errors(space_from_dict, doc, "fuzz.yaml")


@FUZZ
@given(st.sampled_from(_paths(MIXNET_S)[1:]), values)
def test_a_genotype_with_one_value_replaced(path, value):
    _only_input_errors(from_dict, _replaced(MIXNET_S, path, value), "fuzz.yaml")


# -- trials.jsonl and baselines.json ------------------------------------------------------------------------------

_RECORD = {"number": 0, "hash": "0123456789abcdef", "genotype": MIXNET_S, "status": "complete", "accuracy": 0.5,
           "best_accuracy": 0.5, "macs": 1000, "params": 100, "latency_ms": 1.0, "latency_ms_measured": None,
           "epochs": 1, "train_s": 1.0, "images_per_s": 10.0, "history": [{"epoch": 1, "val_accuracy": 0.5,
                                                                           "train_loss": 1.0}],
           "violations": {"macs": -0.5}, "tier": None, "duplicate_of": None, "error": None, "node": None,
           "device": None, "seed": 0, "time": 0.0}
_OBJECTIVES = [{"metric": "accuracy", "direction": "maximize"}, {"metric": "macs", "direction": "minimize"}]


def _read_then_front(p: Path) -> None:
    records = read_records(p)
    doc = pareto_document("fuzz", records, _OBJECTIVES, [0.0, 2000.0])
    assert math.isnan(doc["hypervolume"]) or doc["hypervolume"] >= 0


@FUZZ
@given(st.binary(max_size=600))
def test_records_of_random_bytes(tmp_path_factory, data):
    p = tmp_path_factory.mktemp("fuzz") / "trials.jsonl"
    p.write_bytes(data)
    _only_input_errors(_read_then_front, p)


@FUZZ
@given(st.lists(values, max_size=4))
def test_records_of_random_json_lines(tmp_path_factory, lines):
    p = tmp_path_factory.mktemp("fuzz") / "trials.jsonl"
    p.write_text("".join(json.dumps(v) + "\n" for v in lines))
    _only_input_errors(_read_then_front, p)


@FUZZ
@given(st.sampled_from(sorted(_RECORD)), values)
def test_a_record_with_one_field_replaced(tmp_path_factory, key, value):
    p = tmp_path_factory.mktemp("fuzz") / "trials.jsonl"
    p.write_text(json.dumps(_RECORD) + "\n" + json.dumps({**_RECORD, "number": 1, key: value}) + "\n")
    _only_input_errors(_read_then_front, p)


@FUZZ
@given(values)
def test_baselines_of_random_json(tmp_path_factory, doc):
    d = tmp_path_factory.mktemp("fuzz")
    (d / "baselines.json").write_text(json.dumps(doc))
    refs = _only_input_errors(load_baselines, d)
    for ref in refs or ():
        assert ref["macs"] >= 0 and ref["params"] >= 0


@pytest.mark.parametrize("text", ["- &a [*a]\n", "a: &a {b: *a}\n", "&x [1, [2, *x]]\n"])
def test_a_structure_that_contains_itself(text):
    with pytest.raises(InputError, match="contains it"):
        loads_yaml(text, "loop.yaml")


@pytest.mark.parametrize("text", ["!!int ", "!!float ", "!!timestamp ", "a: 2020-02-31", "a: !!int 0x", "!!binary @"])
def test_a_tagged_value_yaml_cannot_build(text):
    """What the fuzzing above found in PyYAML's constructors (IndexError, AttributeError, ValueError)."""
    with pytest.raises(InputError, match="invalid YAML"):
        loads_yaml(text, "tags.yaml")
