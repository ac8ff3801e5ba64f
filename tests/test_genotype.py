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



# Per field: its value in a valid block first, then values a check may reject.
_FIELD_VALUES = {"out": (16, 0, 1), "kind": ("ir", "ghost", "x"), "stride": (1, 2, 3),
                 "kernels": ((3, 5), (3,), (), (4,), (3, 5, 7, 9, 11, 13)), "split": ("equal", "x"),
                 "dilation": (1, 0), "expand": (3.0, 0.0), "mid": (None, 0, 8), "exp_groups": (1, 0, 2),
                 "proj_groups": (1, 0, 2), "se": (0.25, -1.0, 5.0), "se_base": ("in", "x"),
                 "se_gate": ("sigmoid", "x"), "se_divisor": (8, 0), "se_act": (None, "relu", "x"),
                 "act": ("swish", "x"), "ghost": (1, 0, 2, 9), "ghost_kernel": (3, 2, 13),
                 "proj": ("conv", "cw", "x")}


def test_the_block_fast_check_accepts_exactly_what_the_detailed_checks_accept():
    """check_block skips its detailed checks (and their error texts) for blocks the fast test accepts: on a valid
    block with any one or two fields changed, the fast test and the detailed checks agree."""
    import itertools
    from types import SimpleNamespace

    import nas.genotype_check as gc

    def detailed(b) -> bool:
        saved, gc._block_ok = gc._block_ok, lambda b: False
        try:
            gc.check_block(b, "b")
            return True
        except GenotypeError:
            return False
        finally:
            gc._block_ok = saved

    base = {k: v[0] for k, v in _FIELD_VALUES.items()}
    changes = [(k, v) for k, vs in _FIELD_VALUES.items() for v in vs[1:]]
    verdicts = []
    for pair in itertools.chain([()], ((c,) for c in changes), itertools.combinations(changes, 2)):
        b = SimpleNamespace(**{**base, **dict(pair)})
        verdicts.append(detailed(b))
        assert gc._block_ok(b) == verdicts[-1], pair
    assert verdicts[0] and sum(verdicts) >= 50 and not all(verdicts)  # both verdicts well covered
