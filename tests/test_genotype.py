"""Genotype (de)serialisation with generated genotypes: round trips, hash stability, one-line errors."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from strategies import genotypes

from nas.genotype import Genotype, GenotypeError, from_dict, load, loads, save


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(genotypes())
def test_yaml_and_json_round_trips_keep_the_network_and_its_hash(g: Genotype):
    for back in (loads(g.to_yaml()), from_dict(json.loads(g.to_json())), from_dict(g.to_dict(compact=False))):
        assert back == g and back.hash == g.hash and back.name == g.name
    assert g.replace(name="renamed").hash == g.hash


@settings(max_examples=20, deadline=None)
@given(genotypes())
def test_save_and_load_round_trip(tmp_path_factory, g: Genotype):
    p = tmp_path_factory.mktemp("g") / "arch.yaml"
    save(g, p)
    back = load(p)
    assert back == g and back.name == (g.name or "arch")


def test_duplicate_keys_and_bad_yaml_are_one_line_errors():
    with pytest.raises(GenotypeError, match=r"x.yaml: line 2: invalid YAML \(duplicate key 'resolution'\)"):
        loads("resolution: 32\nresolution: 64\nstages: [[{out: 8}]]\n", "x.yaml")
    with pytest.raises(GenotypeError, match=r"x.yaml: stages\[0\]\[0\]\.out: required field missing"):
        loads("stages: [[{kind: ir}]]\n", "x.yaml")
