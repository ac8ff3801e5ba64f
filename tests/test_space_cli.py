"""`nas space ...`: the happy paths, and a corpus of malformed spaces that must each exit 2 with one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nas import cli
from nas.genotype import load
from nas.search import budgets
from nas.space import SHIPPED_SPACES, load_space

GOOD = """\
target: {resolution: 32, num_classes: 10}
stem: {out: 16}
stages:
  - {name: s1, stride: 2, out: [16, 24], repeat: [1, 2], groups: [1, 2]}
  - {name: s2, stride: 2, out: [24, 32], groups: [1, 2, 3], expand: [3, 6]}
head: {features: 64}
budgets: {macs: 5M}
"""


def run(*args: str) -> tuple[int, str, str]:
    """Run the CLI in-process through ``main()`` (which maps InputError to exit 2); (code, stdout, stderr)."""
    import io
    from contextlib import redirect_stderr, redirect_stdout

    out, err = io.StringIO(), io.StringIO()
    old = sys.argv
    sys.argv = ["nas", *args]
    code = 0
    try:
        with redirect_stdout(out), redirect_stderr(err):
            cli.main()
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        sys.argv = old
    return code, out.getvalue(), err.getvalue()


def _edit(old: str, new: str) -> str:
    assert old in GOOD, old
    return GOOD.replace(old, new, 1)


# (id, file text (None: special case), field path expected in the message, problem fragment)
CORPUS: list[tuple[str, str | None, str, str]] = [
    ("yaml_syntax", "stages: [\n  {name: s1, out: 16\n", "line ", "invalid YAML"),
    ("yaml_tab", "stages:\n\t- {name: s1}\n", "line ", "invalid YAML"),
    ("duplicate_key", _edit("stem: {out: 16}", "stem: {out: 16, out: 24}"), "line 2", "duplicate key 'out'"),
    ("empty_file", "", "top level", "empty file"),
    ("only_comment", "# nothing here\n", "top level", "empty file"),
    ("top_level_list", "- stages\n", "top level", "expected a mapping"),
    ("unknown_top_key", GOOD + "stagez: []\n", "stagez", "unknown field"),
    ("unknown_stage_key", _edit("groups: [1, 2]}", "grups: [1, 2]}"), "stages[0].grups", "unknown field"),
    ("unknown_head_key", _edit("head: {features: 64}", "head: {feature: 64}"), "head.feature", "unknown field"),
    ("missing_stages", "target: {resolution: 32}\n", "stages", "required field missing"),
    ("empty_stage_list", "stages: []\n", "stages", "at least 1 item"),
    ("stages_not_list", "stages: {name: s1, out: 16}\n", "stages", "valid list"),
    ("missing_out", "stages:\n  - {name: s1}\n", "stages[0].out", "required field missing"),
    ("g_zero", _edit("groups: [1, 2, 3]", "groups: [0, 1]"), "stages[1].groups[0]", "g = 0"),
    ("g_six", _edit("groups: [1, 2, 3]", "groups: [1, 6]"), "stages[1].groups[1]", "g = 6"),
    ("kernel_four", _edit("groups: [1, 2, 3]", "kernels: [[3], [3, 4]]"), "stages[1].kernels[1]", "kernel 4"),
    ("kernel_string", _edit("groups: [1, 2, 3]", "kernels: ['3-x']"), "stages[1].kernels[0]", "kernel set"),
    ("groups_and_kernels", _edit("groups: [1, 2, 3]", "groups: [1], kernels: [[3]]"), "stages[1].kernels",
     "either groups or kernels"),
    ("split_foo", _edit("expand: [3, 6]", "expand: [3, 6], split: foo"), "stages[1].split[0]", "'equal'"),
    ("stride_three", _edit("stride: 2, out: [16, 24]", "stride: 3, out: [16, 24]"), "stages[0].stride", "1 or 2"),
    ("out_string", _edit("out: [24, 32]", "out: [24, wide]"), "stages[1].out[1]", "valid integer"),
    ("out_bool", _edit("out: [24, 32]", "out: [true]"), "stages[1].out[0]", "valid integer"),
    ("out_zero", _edit("out: [24, 32]", "out: [0, 32]"), "stages[1].out[0]", "must be > 0"),
    ("repeat_float", _edit("repeat: [1, 2]", "repeat: [1.5]"), "stages[0].repeat[0]", "valid integer"),
    ("duplicate_choice", _edit("out: [24, 32]", "out: [24, 24]"), "stages[1].out", "listed twice"),
    ("empty_choice", _edit("out: [24, 32]", "out: []"), "stages[1].out", "at least one choice"),
    ("duplicate_stage_name", _edit("name: s2", "name: s1"), "stages[1].name", "duplicate stage name 's1'"),
    ("reserved_stage_name", _edit("name: s2", "name: head"), "stages[1].name", "reserved"),
    ("bad_stage_name", _edit("name: s2", "name: 's 2'"), "stages[1].name", "identifier"),
    ("share_foo", _edit("name: s2,", "name: s2, share: all,"), "stages[1].share", "'stage' or 'block'"),
    ("se_too_big", _edit("expand: [3, 6]", "expand: [3, 6], se: [0, 5]"), "stages[1].se[1]", "[0, 4]"),
    ("ghost_zero", _edit("expand: [3, 6]", "expand: [3, 6], ghost: [0]"), "stages[1].ghost[0]", "[1, 8]"),
    ("ghost_multi_kernel", _edit("expand: [3, 6]", "expand: [3, 6], kind: [ghost]"), "stages[1].groups",
     "one depthwise kernel"),
    ("exp_groups_divide", _edit("expand: [3, 6]", "expand: [3, 6], exp_groups: [3]"), "stages[1].exp_groups",
     "do not divide"),
    ("proj_groups_proxy_width", _edit("expand: [3, 6]", "expand: [6], proj_groups: [3]").replace(
        "out: [24, 32]", "out: [24]") + "proxy: {width: 0.5}\n", "stages[1].proj_groups", "proxy width 0.5"),
    ("negative_budget", _edit("budgets: {macs: 5M}", "budgets: {macs: -5}"), "budgets.macs", "must be > 0"),
    ("zero_budget", _edit("budgets: {macs: 5M}", "budgets: {params: 0}"), "budgets.params", "must be > 0"),
    ("budget_word", _edit("budgets: {macs: 5M}", "budgets: {macs: lots}"), "budgets.macs", "expected a number"),
    ("impossible_budget", _edit("budgets: {macs: 5M}", "budgets: {macs: 1000}"), "budgets.macs",
     "smallest achievable is"),
    ("latency_without_target", _edit("budgets: {macs: 5M}", "budgets: {latency_ms: 3}"), "budgets.target",
     "no latency target"),
    ("unknown_latency_target", _edit("budgets: {macs: 5M}", "budgets: {latency_ms: 3, target: abacus}"),
     "budgets.target", "unknown latency target 'abacus'"),
    ("dropout_one", _edit("head: {features: 64}", "head: {features: 64, dropout: 1.0}"), "head.dropout[0]",
     "[0, 1)"),
    ("cw_head_too_narrow", _edit("head: {features: 64}", "head: {features: 8, kind: [fc, cw]}"), "head.kind",
     "num_classes=10"),
    ("target_resolution_zero", _edit("target: {resolution: 32", "target: {resolution: 0"), "target.resolution",
     "must be > 0"),
    ("objective_unknown", GOOD + "objectives: [accuracy, flops]\n", "objectives[1].metric", "'accuracy'"),
    ("objective_direction", GOOD + "objectives: [{metric: macs, direction: maximize}]\n",
     "objectives[0].direction", "can only be minimized"),
    ("objective_twice", GOOD + "objectives: [accuracy, macs, macs]\n", "objectives[2].metric", "listed twice"),
    ("proxy_unknown_field", GOOD + "proxy: {epoch: 3}\n", "proxy.epoch", "unknown field"),
    ("proxy_epochs_zero", GOOD + "proxy: {epochs: 0}\n", "proxy.epochs", "must be >= 1"),
    ("proxy_epochs_and_steps", GOOD + "proxy: {epochs: 4, steps: 300}\n", "proxy.steps", "not both"),
    ("proxy_steps_zero", GOOD + "proxy: {steps: 0}\n", "proxy.steps", "must be >= 1"),
    ("proxy_steps_float", GOOD + "proxy: {steps: 2.5}\n", "proxy.steps", "integer"),
    ("proxy_report_every_epochs", GOOD + "proxy: {epochs: 2, report_every: 10}\n", "proxy.report_every",
     "only a step recipe"),
    ("proxy_warmup_share_over_1", GOOD + "proxy: {steps: 100, warmup: 1.5}\n", "proxy.warmup", "[0, 1]"),
    ("proxy_warmup_epochs_with_steps", GOOD + "proxy: {steps: 100, warmup_epochs: 1}\n", "proxy.warmup_epochs",
     "share of the steps"),
    ("proxy_warmup_twice", GOOD + "proxy: {warmup: 0.1, warmup_epochs: 1}\n", "proxy.warmup_epochs", "not both"),
    ("proxy_cifar_without_path", GOOD + "proxy: {dataset: cifar10}\n", "proxy.path", "needs a local path"),
    ("search_sampler", GOOD + "search: {sampler: bayes}\n", "search.sampler", "'nsga2'"),
    ("search_trials_zero", GOOD + "search: {trials: 0}\n", "search.trials", "must be > 0"),
    ("search_gpus_negative", GOOD + "search: {gpus_per_trial: -1}\n", "search.gpus_per_trial", "[0, 64]"),
    ("tracking_mode", GOOD + "tracking: {wandb: maybe}\n", "tracking.wandb", "'online'"),
    ("family_over_budget", GOOD + "family: {l: {macs: 9M}}\n", "family.l.macs", "exceeds budgets.macs"),
    ("family_empty_tier", GOOD + "family: {s: {}}\n", "family.s", "at least one limit"),
    ("not_utf8", None, "", "not a text file"),
    ("directory", None, "", "is a directory"),
    ("missing_file", None, "", "file not found"),
]


def _make(tmp_path: Path, case: str, text: str | None) -> Path:
    p = tmp_path / f"{case}.yaml"
    if case == "not_utf8":
        p.write_bytes(b"stages: [\xff\xfe\x00\x81]\n")
    elif case == "directory":
        p.mkdir()
    elif case == "missing_file":
        pass
    else:
        p.write_text(text)
    return p


def test_corpus_is_large_enough() -> None:
    assert len(CORPUS) >= 30
    assert len({c[0] for c in CORPUS}) == len(CORPUS)


@pytest.mark.parametrize(("case", "text", "field", "problem"), CORPUS, ids=[c[0] for c in CORPUS])
def test_malformed_space_exits_2_with_one_line(tmp_path: Path, case: str, text: str | None, field: str,
                                               problem: str) -> None:
    p = _make(tmp_path, case, text)
    before = sorted(os.listdir(tmp_path))
    for args in (["space", "validate", str(p)],
                 ["space", "sample", str(p), "-n", "2", "--feasible", "--out", str(tmp_path / "out")]):
        code, out, err = run(*args)
        assert code == 2, (args, out, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1, err
        assert "Traceback" not in err and out == ""
        assert lines[0].startswith(f"error: {p}: {field}"), lines[0]
        assert problem in lines[0], lines[0]
    assert sorted(os.listdir(tmp_path)) == before  # nothing written (no out/ either)


def test_malformed_space_in_a_real_process(tmp_path: Path) -> None:
    p = tmp_path / "bad.yaml"
    p.write_text(_edit("groups: [1, 2, 3]", "groups: [1, 6]"))
    r = subprocess.run([sys.executable, "-m", "nas.cli", "space", "validate", str(p)], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 2
    assert r.stdout == ""
    assert r.stderr.strip().splitlines() == [
        f"error: {p}: stages[1].groups[1]: g = 6: MixConv uses 1..5 groups (group i has kernel 2i+1: 3, 5, ..., 11)"]


# -- happy paths ----------------------------------------------------------------------------------------------

def test_list_shows_the_shipped_spaces() -> None:
    code, out, _ = run("space", "list")
    assert code == 0
    for name in ("mixnet.yaml", "tiny.yaml", "ghost_acb.yaml", "cifar.yaml", "cheap_pointwise.yaml"):
        assert name in out
    assert "MixNet-S/M are points" in out


def test_list_shows_the_references_under_their_own_heading() -> None:
    code, out, _ = run("space", "list")
    assert code == 0
    refs = out[out.index("reference architectures"):]
    for name in ("mixnet_s.yaml", "mixnet_m.yaml", "ghostnet_100.yaml", "mobilenetv3_large_100.yaml"):
        assert name in refs and name not in out[:out.index("reference architectures")]
    assert load(SHIPPED_SPACES / "reference" / "mobilenetv2_100.yaml").summary() in refs  # the one notation


def test_space_commands_never_import_torch() -> None:
    """A space command starts in a fraction of a second and runs where torch is absent: none imports it."""
    code = ("import sys\nfrom nas.cli import main\n"
            "for args in (['space', 'sample', 'mixnet.yaml', '-n', '3', '--json'], ['space', 'validate', 'tiny.yaml'],"
            " ['space', 'count', 'mixnet.yaml'], ['space', 'list'], ['describe', 'mixnet_s.yaml', '--json']):\n"
            "    sys.argv = ['nas', *args]\n"
            "    try:\n        main()\n    except SystemExit as e:\n        assert not e.code, (args, e.code)\n"
            "    assert 'torch' not in sys.modules, (args, sorted(m for m in sys.modules if 'torch' in m)[:5])\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]


def test_sample_table_uses_the_genotype_summary() -> None:
    code, out, _ = run("space", "sample", "tiny.yaml", "-n", "3", "--seed", "1")
    assert code == 0
    for g in load_space("tiny.yaml").sample_many(3, seed=1):
        assert g.summary() in out and g.hash in out


def test_validate_summarises_a_shipped_space_by_name() -> None:
    code, out, err = run("space", "validate", "tiny.yaml")
    assert code == 0, err
    mins = budgets.min_achievable(load_space("tiny.yaml"))
    assert "ok" in out and "architectures: 10^" in out and "smallest achievable" in out
    assert f"{mins['macs'] / 1e3:.3g}k MACs" in out


def test_count_json_is_exact() -> None:
    code, out, _ = run("space", "count", "tiny.yaml", "--json")
    assert code == 0
    d = json.loads(out)
    assert d["count"] == load_space("tiny.yaml").count() and d["log10"] > 0


def test_sample_json_lists_distinct_genotypes_with_costs() -> None:
    code, out, _ = run("space", "sample", "tiny.yaml", "-n", "4", "--seed", "3", "--feasible", "--json")
    assert code == 0
    rows = json.loads(out)
    space = load_space("tiny.yaml")
    assert len(rows) == 4 and len({r["hash"] for r in rows}) == 4
    from nas.genotype import from_dict

    for r in rows:
        g = from_dict(r["genotype"])
        assert g.hash == r["hash"] and space.contains(g) and r["feasible"] is True
        c = budgets.target_cost(space, g)
        assert (r["macs"], r["params"]) == (c.macs, c.params)
        assert c.macs <= space.budgets.macs and c.params <= space.budgets.params


def test_sample_out_writes_loadable_genotypes(tmp_path: Path) -> None:
    out = tmp_path / "samples"
    code, stdout, _ = run("space", "sample", "tiny", "-n", "3", "--out", str(out))
    assert code == 0 and "wrote 3 genotype files" in stdout
    files = sorted(out.glob("*.yaml"))
    assert len(files) == 3 and not list(out.glob(".*"))
    space = load_space("tiny.yaml")
    for f in files:
        g = load(f)
        assert space.contains(g) and f.stem == g.name and g.hash in f.stem


def test_sample_refuses_two_outputs_and_a_file_as_out(tmp_path: Path) -> None:
    code, _, err = run("space", "sample", "tiny", "--json", "--out", str(tmp_path / "x"))
    assert code == 2 and "choose one" in err
    f = tmp_path / "file"
    f.write_text("x")
    code, _, err = run("space", "sample", "tiny", "--out", str(f))
    assert code == 2 and "not a directory" in err


def test_contains_says_yes_for_mixnet_s_and_m() -> None:
    for name in ("mixnet_s.yaml", "mixnet_m.yaml"):
        path = SHIPPED_SPACES / "reference" / name
        if not path.exists():
            pytest.skip(f"{path} not written yet")
        code, out, _ = run("space", "contains", str(SHIPPED_SPACES / "mixnet.yaml"), str(path))
        assert code == 0 and out.startswith("yes")
    code, out, _ = run("space", "contains", "mixnet.yaml", "mixnet_s.yaml", "--json")
    d = json.loads(out)
    assert d["contains"] is True and d["params"]["stem.out"] == 16


def test_contains_says_no_with_exit_1() -> None:
    if not (SHIPPED_SPACES / "reference" / "mixnet_l.yaml").exists():
        pytest.skip("mixnet_l.yaml not written yet")
    code, out, _ = run("space", "contains", "mixnet.yaml", "mixnet_l.yaml")
    assert code == 1 and out.startswith("no") and "s0.out" in out


def test_contains_bad_genotype_file_exits_2(tmp_path: Path) -> None:
    g = tmp_path / "g.yaml"
    g.write_text("stages: [[{out: 16, kernels: [4]}]]\n")
    code, _, err = run("space", "contains", "tiny.yaml", str(g))
    assert code == 2 and err.startswith(f"error: {g}: ") and "kernel 4" in err


def test_count_sample_contains_with_the_cheap_pointwise_kinds(tmp_path: Path) -> None:
    """dws, gm and shuffle blocks (and the stem's max-pool) go through count, sample and contains."""
    code, out, _ = run("space", "count", "cheap_pointwise.yaml", "--json")
    space = load_space("cheap_pointwise.yaml")
    assert code == 0 and json.loads(out)["count"] == space.count()
    samples = tmp_path / "samples"
    code, _, _ = run("space", "sample", "cheap_pointwise", "-n", "6", "--seed", "1", "--out", str(samples))
    assert code == 0
    files = sorted(samples.glob("*.yaml"))
    kinds = {b.kind for f in files for b in load(f).blocks}
    assert len(files) == 6 and kinds >= {"dws", "gm", "shuffle"}
    for f in files:
        assert run("space", "contains", "cheap_pointwise.yaml", str(f))[0] == 0
    code, _, err = run("space", "contains", "mixnet.yaml", str(files[0]))
    assert code == 1
