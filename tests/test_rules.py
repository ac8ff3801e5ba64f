"""Block rules (nas.rules): one registry of kinds, canonical forms, table keys, torch-free lower layers."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import genotypes, small_spaces

from nas import rules
from nas.cost import macs
from nas.cost.macs import count
from nas.cost.parts import block_part, part_keys, space_parts
from nas.cost.table import load_lut, predict
from nas.genotype import KINDS, BlockSpec
from nas.ops.adapter import BUILDERS
from nas.space import load_space, space_from_dict

ROOT = Path(__file__).resolve().parents[1]
FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def test_every_kind_is_registered_with_the_rules_the_counter_and_the_builder():
    assert tuple(rules.KINDS) == KINDS
    assert set(macs._BLOCKS) == set(BUILDERS) == set(KINDS)


def test_an_option_listed_twice_must_be_listed_together():
    opts = (rules.Option("a"), rules.Option("b"), rules.Option("a"))
    with pytest.raises(ValueError, match="listed together"):
        rules.Tree(BlockSpec, opts)


@FAST
@given(genotypes())
def test_canonical_form_is_idempotent_and_keeps_network_and_keys(g):
    c = rules.canonical(g)
    assert rules.canonical(c) == c
    assert count(c, num_classes=10) == count(g, num_classes=10)
    assert part_keys(c, 10) == part_keys(g, 10)


@FAST
@given(small_spaces(), st.integers(0, 2**32), st.data())
def test_samples_are_canonical_and_changes_canonical_erases_stay_in_the_space(data, seed, draw):
    space = space_from_dict(data, "generated")
    g = space.sample(seed)
    assert rules.canonical(g) == g and space.contains(rules.canonical(g))
    # a dead option changed anywhere: canonical erases it, and the space still contains the network
    si = draw.draw(st.integers(0, len(g.stages) - 1))
    bi = draw.draw(st.integers(0, len(g.stages[si]) - 1))
    field = draw.draw(st.sampled_from(["split", "acb", "se_gate", "se_act", "ghost_kernel", "shuffle", "dilation"]))
    value = {"split": "exponential", "acb": True, "se_gate": "hsigmoid", "se_act": "hswish", "ghost_kernel": 7,
             "shuffle": True, "dilation": 3}[field]
    b = g.stages[si][bi]
    cin = g.block_inputs()[sum(len(s) for s in g.stages[:si]) + bi][0]
    changed = dataclasses.replace(b, **{field: value})
    if rules.canonical_block(changed, cin) != b:
        return  # the option is live here: another network
    stages = list(g.stages)
    stages[si] = (*g.stages[si][:bi], changed, *g.stages[si][bi + 1:])
    noisy = g.replace(stages=tuple(stages))
    assert rules.canonical(noisy) == g and space.contains(noisy)


def test_table_keys_keep_the_bytes_of_the_shipped_tables():
    # Keys as the first table format wrote them: a change here makes every existing table miss. The two ``cw``
    # keys carry the fusion's window ``dc`` since the fusion became ChannelNets' (issue 22): those must miss.
    cases = [
        ((16, 8, BlockSpec(out=24, kind="ghost", stride=2, kernels=(5,), expand=3.0, se=0.25, se_base="mid",
                           se_gate="hsigmoid", se_divisor=4, ghost=2)),
         'block r8 c16 {"act":"relu","ghost":[2,3],"k":[5],"kind":"ghost","mid":48,"out":24,'
         '"se":[12,"hsigmoid","relu"],"stride":2}'),
        ((24, 8, BlockSpec(out=24, kind="ghost", kernels=(5,), expand=2.0, act="relu6")),
         'block r8 c24 {"act":"relu6","ghost":[1],"kind":"ghost","mid":48,"out":24,"stride":1}'),
        ((16, 16, BlockSpec(out=32, kernels=(3, 5, 7), split="exponential", dilation=2, expand=6.0, exp_groups=2,
                            proj_groups=4, shuffle=True, acb=True, se=0.5, se_act="relu", act="swish")),
         'block r16 c16 {"act":"swish","dil":2,"eg":2,"k":[3,5,7],"kind":"ir","mid":96,"out":32,"pg":4,'
         '"se":[8,"sigmoid","relu"],"shuffle":true,"split":"exponential","stride":1,"xp":true}'),
        ((32, 8, BlockSpec(out=32, kernels=(1,), proj="cw", ghost=2, shuffle=True, split="exponential")),
         'block r8 c32 {"act":"relu","dc":8,"k":[1],"kind":"ir","mid":32,"out":32,"pg":2,"proj":"cw","stride":1,'
         '"xp":false}'),
        ((16, 16, BlockSpec(out=16, kernels=(3,), expand=3.0, ghost=3, ghost_kernel=5, proj="cw", acb=True)),
         'block r16 c16 {"act":"relu","dc":8,"ghost":[3,5],"k":[3],"kind":"ir","mid":48,"out":16,"pg":2,'
         '"proj":"cw","stride":1,"xp":true}'),
    ]
    for (cin, res, b), key in cases:
        assert block_part(cin, res, b).key == key


def test_the_shipped_tiny_table_holds_exactly_the_parts_of_tiny():
    path = ROOT / "luts" / "tiny-torch-cpu.json"
    tiny = load_space("tiny.yaml")
    assert set(space_parts(tiny)) == set(json.loads(path.read_text())["entries"])
    table = load_lut(path)
    assert all(predict(g, table) > 0 for g in tiny.sample_many(50, seed=2))


def test_spaces_rules_and_costs_load_without_torch():
    code = ("import sys, nas.space, nas.rules, nas.cost.macs, nas.cost.parts, nas.cost.table, nas.search.budgets\n"
            "s = nas.space.load_space('mixnet.yaml'); s.count(); s.sample(0)\n"
            "nas.search.budgets.target_cost(s, s.sample(1)); nas.cost.parts.space_parts(nas.space.load_space('tiny'))\n"
            "assert 'torch' not in sys.modules, sorted(m for m in sys.modules if m.startswith('torch'))[:5]\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr


def test_keys_of_the_later_kinds_tell_apart_every_deployed_difference():
    """Kinds added after the shipped tables key every decision by name: distinct blocks (folded options held)
    get distinct keys, and ACB never enters a key."""
    stage = space_from_dict({"stages": [{
        "name": "a", "out": [32], "kind": ["dws", "gm", "shuffle"], "kernels": [[3], [3, 5]],
        "split": ["equal", "exponential"], "acb": [False, True], "bottleneck": [0.25, 0.5],
        "act": ["relu", "swish"], "exp_groups": [1, 2], "proj_groups": [1, 2, 4], "proj": ["conv", "cw"]}]}).stages[0]
    for cin, stride in ((32, 1), (16, 2), (16, 1)):
        found = list(rules.blocks(stage, cin, 32, stride, pin=rules.FOLDED))
        keys = {block_part(cin, 16, b).key for b in found}
        assert len(keys) == len(found) > 20
        for b in found[:10]:
            assert block_part(cin, 16, b).key == block_part(cin, 16, dataclasses.replace(b, acb=True)).key
    assert block_part(32, 8, BlockSpec(out=32, kind="dws", proj="cw")).key == (
        'block r8 c32 {"act":"relu","dilation":1,"kernels":[3],"kind":"dws","mid":32,"out":32,"proj":"cw",'
        '"stride":1}')
    assert block_part(24, 16, BlockSpec(out=48, kind="shuffle", stride=2, expand=0.25, proj_groups=3)).key == (
        'block r16 c24 {"act":"relu","dilation":1,"exp_groups":1,"kernels":[3],"kind":"shuffle","mid":12,"out":48,'
        '"proj_groups":3,"stride":2}')


def test_the_stem_max_pool_enters_the_stem_key_only_when_on():
    from nas.cost.parts import stem_part
    from nas.genotype import StemSpec

    assert stem_part(3, 224, StemSpec(out=24)).key == 'stem r224 c3 {"act":"relu","k":3,"out":24,"stride":2}'
    assert stem_part(3, 224, StemSpec(out=24, pool=True)).key == (
        'stem r224 c3 {"act":"relu","k":3,"out":24,"pool":true,"stride":2}')
