"""Published tables (nas.tables), the identity block and stage ops, NAS-Bench-Macro as a space, table search."""

import gzip
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from nas import model, rules, tables
from nas.cost.macs import count
from nas.errors import InputError
from nas.genotype import BlockSpec, Genotype, StemSpec
from nas.space import load_space
from tests._cli import run_cli
from tests._ops import macs, params, randomize_bn

ROOT = Path(__file__).resolve().parents[1]
NBM = ROOT / "search_spaces" / "nasbench_macro.yaml"


@pytest.fixture(scope="module")
def nbm():
    return load_space(NBM)


@pytest.fixture(scope="module")
def table():
    return tables.load("nas-bench-macro")


# -- NAS-Bench-Macro: the space is the table's ---------------------------------------------------------------------


def test_every_code_is_a_network_of_the_table_with_its_params_and_macs(nbm, table):
    """All 6,561 codes: the genotype a code decodes to is in the shipped table, and the analytic counter gives
    exactly the table's parameters and FLOPs (its FLOPs are multiply-accumulates of convs and the classifier)."""
    codes = ["".join(c) for c in itertools.product("012", repeat=8)]
    hashes = set()
    for code in codes:
        g = nbm.from_code(code)
        m = table.lookup(g)
        c = count(g, num_classes=10)
        assert (c.params, c.macs) == (m["params"], m["flops"]), code
        hashes.add(rules.canonical(g).hash)
    assert len(codes) == 6561
    assert len(hashes) == len(table) == nbm.count() == 3969


def test_codes_that_are_one_network_share_a_hash_and_a_result(nbm, table):
    # identities after a stage's first layer: "12120100" and "12102100" differ only in where s2's identity sits
    a, b = nbm.from_code("12120100"), nbm.from_code("12102100")
    assert a.hash == b.hash and table.lookup(a) == table.lookup(b)
    assert nbm.contains(a) and nbm.params_of(a)
    # a shape-changing identity is a layer: a stage's first identity is not merged with its later ones
    assert nbm.from_code("01000000").hash != nbm.from_code("10000000").hash


def test_built_networks_match_the_table_and_fold(nbm, table):
    for code in ("00000000", "12012101", "22222222", "20100201"):
        g = nbm.from_code(code)
        net = randomize_bn(model.build(g, num_classes=10)).eval()
        x = torch.randn(2, 3, 32, 32)
        assert params(net) == table.lookup(g)["params"]
        assert macs(net, x[:1]) == table.lookup(g)["flops"]
        assert torch.allclose(model.deploy(net)(x), net(x), atol=1e-4, rtol=1e-4)


# -- the identity block in any space ------------------------------------------------------------------------------


def _g(*blocks: BlockSpec) -> Genotype:
    return Genotype(stages=(tuple(blocks),), stem=StemSpec(out=16, stride=1), resolution=16)


def test_identity_is_nothing_where_the_shape_is_kept_and_a_1x1_conv_bn_elsewhere():
    ir = BlockSpec(out=24, stride=2, expand=3)
    noop = BlockSpec(out=24, kind="skip")
    with_noop, without = _g(ir, noop, BlockSpec(out=24, expand=6)), _g(ir, BlockSpec(out=24, expand=6))
    assert count(with_noop) == count(without)
    assert rules.canonical(with_noop).hash == without.hash
    assert rules.canonical(_g(ir, BlockSpec(out=24, expand=6), noop)).hash == without.hash
    shaped = _g(BlockSpec(out=24, stride=2, kind="skip"))
    c = count(shaped, num_classes=10)
    net = randomize_bn(model.build(shaped, num_classes=10)).eval()
    x = torch.randn(1, 3, 16, 16)
    assert (params(net), macs(net, x)) == (c.params, c.macs)
    stage = net.stages[0][0]
    assert sum(isinstance(m, torch.nn.Conv2d) and m.kernel_size == (1, 1) and m.stride == (2, 2)
               for m in stage.modules()) == 1
    assert torch.allclose(model.deploy(net)(x), net(x), atol=1e-5)
    assert isinstance(model.build(with_noop).stages[0][1], torch.nn.Identity)


def test_a_stage_of_identities_counts_each_network_once(tmp_path):
    """Depth by identities together with repeat choices: every network counted once, whatever its spelling."""
    space = tmp_path / "s.yaml"
    space.write_text("""
target: {resolution: 16, num_classes: 10}
stem: {out: 16, stride: 1}
stages:
  - {name: a, stride: 1, out: 16, repeat: [1, 2, 3], share: block,
     ops: [{name: id, kind: skip}, {name: x, kind: ir, expand: 3}, {name: y, kind: ir, expand: 6}]}
  - {name: b, stride: 2, out: 24, repeat: [2, 3], share: stage, kind: [skip, ir], expand: [3, 6]}
head: {features: 0}
""")
    sp = load_space(space)
    seen = {rules.canonical(g).hash for g in sp.sample_many(8000, seed=0, unique=False)}  # rarest: 1 in 648
    # stage a keeps its shape: 0..3 non-identity blocks over 2 ops: 1 + 2 + 4 + 8 = 15;
    # stage b: 2 expansions x 2 depths + 1 identity = 5
    assert sp.count() == 15 * 5 == len(seen)
    for g in sp.sample_many(50, seed=1):
        assert sp.contains(g) and sp.contains(rules.canonical(g))
        assert sp.from_params(sp.params_of(g)).hash == g.hash


def test_ops_names_are_checked(tmp_path):
    space = tmp_path / "s.yaml"
    space.write_text("stages: [{name: a, out: 16, ops: [{name: x, kind: skip}, {name: x, kind: ir}]}]\n")
    with pytest.raises(InputError, match="ops"):
        load_space(space)


# -- tables: format, lookups, conversion --------------------------------------------------------------------------


def test_lookup_of_a_network_the_table_lacks_is_one_clear_error(table):
    g = _g(BlockSpec(out=24, stride=2, expand=3))
    with pytest.raises(InputError, match=r"nas-bench-macro: no network .* in this table of 3,969 networks"):
        table.lookup(g)


def test_accuracy_is_the_mean_or_the_run_a_seed_picks(nbm, table):
    g = nbm.from_code("22222222")
    m = table.lookup(g)
    assert table.accuracy(g) == pytest.approx(sum(m["runs"]) / 3, abs=1e-6)
    assert [table.accuracy(g, run=s) for s in range(4)] == [*m["runs"], m["runs"][0]]


@pytest.mark.parametrize("line, problem", [
    ("not json", "not JSON"),
    ('{"genotype": 3}', "genotype: expected an object"),
    ('{"genotype": {"stages": [{"blocks": [{"out": 8}]}]}, "metrics": {"accuracy": 93}}', "metrics.accuracy"),
])
def test_a_broken_table_is_one_line_naming_the_line(tmp_path, line, problem):
    f = tmp_path / "t.jsonl"
    f.write_text(line + "\n")
    with pytest.raises(InputError, match=f"t.jsonl: line 1: {problem}"):
        tables.load(f)


def test_convert_writes_one_line_per_network_and_refuses_disagreeing_codes(nbm, tmp_path):
    raw = {"12120100": {"acc": 91.0, "runs": [90.0, 92.0]}, "12102100": {"acc": 91.0, "runs": [90.0, 92.0]},
           "22222222": {"acc": 93.0, "runs": [93.0, 93.0]}}
    rows = tables.convert(raw, nbm.from_code, accuracy="acc", runs="runs", scale=0.01)
    out = tmp_path / "t.jsonl.gz"
    assert tables.write(out, rows) == 2
    with gzip.open(out) as f:
        assert f.read().count(b"\n") == 2
    t = tables.load(out)
    assert t.accuracy(nbm.from_code("12102100")) == pytest.approx(0.91)
    raw["12102100"] = {"acc": 80.0, "runs": [80.0, 80.0]}
    with pytest.raises(InputError, match="builds the same network as 12120100"):
        tables.convert(raw, nbm.from_code, accuracy="acc", scale=0.01)
    with pytest.raises(InputError, match="is not an accuracy in"):
        tables.convert({"22222222": {"acc": 93.0}}, nbm.from_code, accuracy="acc")
    with pytest.raises(InputError, match="symbol '7'"):
        nbm.from_code("72222222")
    with pytest.raises(InputError, match="9 symbols"):
        nbm.from_code("222222220")


def test_cli_convert_and_show(monkeypatch, capsys, tmp_path, nbm):
    src = tmp_path / "pub.json"
    src.write_text(json.dumps({"00000000": {"mean_acc": 45.0, "test_acc": [45.0], "params": 387882},
                               "22222222": {"mean_acc": 93.0, "test_acc": [93.0], "params": 2932586}}))
    out = tmp_path / "mine.jsonl"
    code, text, err = run_cli(monkeypatch, capsys, "table", "convert", str(src), "--space", str(NBM),
                              "--accuracy", "mean_acc", "--runs", "test_acc", "--scale", "0.01", "--keep", "params",
                              "--out", str(out))
    assert code == 0, err
    code, text, _ = run_cli(monkeypatch, capsys, "table", "show", str(out), "--json")
    assert json.loads(text)["networks"] == 2
    code, _, err = run_cli(monkeypatch, capsys, "table", "show", str(tmp_path / "missing.jsonl"))
    assert code == 2 and "no such table file" in err


def test_predictor_command_reports_rank_quality_on_a_table(monkeypatch, capsys, tmp_path, table):
    part = tmp_path / "part.jsonl"
    tables.write(part, list(table.items())[::8])  # 497 networks
    code, text, err = run_cli(monkeypatch, capsys, "predictor", "--space", str(NBM), "--records", str(part),
                              "--train", "40", "--max-test", "400", "--json")
    assert code == 0, err
    r = json.loads(text)
    assert r["n_train"] == 40 and r["n_test"] == 400
    assert 0.3 < r["kendall_tau"] <= 1 and 0.3 < r["baseline"]["kendall_tau"] <= 1  # the table is learnable
    code, _, err = run_cli(monkeypatch, capsys, "predictor", "--space", str(NBM), "--records", str(part),
                           "--train", "5000")
    assert code == 2 and "--train" in err


def test_predictor_command_takes_score_features(monkeypatch, capsys, tmp_path, table):
    part = tmp_path / "part.jsonl"
    tables.write(part, list(table.items())[::100])  # 40 networks, each scored once on its proxy network
    code, text, err = run_cli(monkeypatch, capsys, "predictor", "--space", str(NBM), "--records", str(part),
                              "--train", "20", "--score-features", "default", "--json")
    assert code == 0, err
    r = json.loads(text)
    assert r["score_features"] == ["score:naswot", "score:depth"] and -1 <= r["kendall_tau"] <= 1
    code, _, err = run_cli(monkeypatch, capsys, "predictor", "--space", str(NBM), "--records", str(part),
                           "--train", "20", "--score-features", "nope")
    assert code == 2 and "--score-features: unknown score 'nope'" in err


# -- searching a table --------------------------------------------------------------------------------------------


def _search(out: Path, trials: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "nas.cli", "search", "--space", str(NBM), "--trials", str(trials),
                             "--out", str(out), "--wandb", "disabled"], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, env={**os.environ, "PYTHONPATH": str(ROOT)})


def _records(out: Path) -> list[dict]:
    return [json.loads(x) for x in (out / "nasbench_macro" / "trials.jsonl").read_text().splitlines() if x.strip()]


def test_table_search_looks_up_in_process_and_resumes_after_sigkill(tmp_path, table, nbm):
    p = _search(tmp_path, 150)
    deadline = time.time() + 120
    while time.time() < deadline:
        f = tmp_path / "nasbench_macro" / "trials.jsonl"
        if f.exists() and f.read_text().count("\n") >= 30:
            break
        time.sleep(0.05)
    p.send_signal(signal.SIGKILL)
    p.wait()
    before = _records(tmp_path)
    assert 30 <= len(before) < 150
    p = _search(tmp_path, 150)
    text = p.communicate(timeout=300)[0].decode()
    assert p.returncode == 0, text
    after = _records(tmp_path)
    assert after[:len(before)] == before  # nothing recorded was lost or changed
    assert len({r["number"] for r in after}) == len(after) == 150
    for r in after[:50]:
        g = _genotype(r)
        assert r["accuracy"] == pytest.approx(table.accuracy(g))
        assert r["evaluator"] == "table:nas-bench-macro (mean)"
        assert r["epochs"] == 1 and r["train_s"] is None


def _genotype(r: dict) -> Genotype:
    from nas.genotype import from_dict

    return from_dict(r["genotype"])


def test_a_table_without_the_proposed_network_stops_with_one_line(tmp_path, nbm):
    rows = [(nbm.from_code("22222222"), {"accuracy": 0.93})]
    t = tmp_path / "one.jsonl"
    tables.write(t, rows)
    space = tmp_path / "s.yaml"
    space.write_text(NBM.read_text().replace("table: nas-bench-macro", "table: one.jsonl"))
    p = subprocess.run([sys.executable, "-m", "nas.cli", "search", "--space", str(space), "--trials", "5", "--out",
                        str(tmp_path / "r"), "--wandb", "disabled"], cwd=ROOT, capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert p.returncode == 2, p.stdout + p.stderr
    last = p.stderr.strip().splitlines()[-1]
    assert "one.jsonl: no network" in last and "Traceback" not in p.stderr
