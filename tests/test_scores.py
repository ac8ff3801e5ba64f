"""Training-free scores (nas.scores): hand-computed values and invariances on tiny networks, the registry, and
their fidelity against a table written here."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from nas.cost.macs import count
from nas.errors import InputError
from nas.scores import COMBINATIONS, SCORES, Scorer, best_of, components, measures, rank_average
from nas.space import load_space


@pytest.fixture(scope="module")
def tiny():
    return load_space("search_spaces/tiny.yaml")


@pytest.fixture(scope="module")
def genotypes(tiny):
    return tiny.sample_many(6, seed=3)


def _linear(*weights: list[list[float]]) -> nn.Sequential:
    layers = []
    for w in weights:
        t = torch.tensor(w, dtype=torch.float32)
        lin = nn.Linear(t.shape[1], t.shape[0], bias=False)
        with torch.no_grad():
            lin.weight.copy_(t)
        layers.append(lin)
    return nn.Sequential(*layers)


# synflow ---------------------------------------------------------------------------------------------------------

def test_synflow_of_a_linear_chain_is_hand_computed():
    # R = sum(|w2| |W1| 1): every layer of a linear chain contributes R to sum |w dR/dw|, so the score is log(2R).
    w1 = [[1.0, -2.0], [0.5, 3.0]]
    w2 = [[-1.0, 2.0]]
    r = 1.0 * (1.0 + 2.0) + 2.0 * (0.5 + 3.0)
    assert measures.synflow(_linear(w1, w2), (2,)) == pytest.approx(math.log(2 * r), rel=1e-12)


def test_synflow_ignores_signs_bn_and_data(tiny, genotypes):
    g = genotypes[0]
    torch.manual_seed(0)
    from nas.model import build

    net = build(g, 10)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    s = measures.synflow(net, (3, 16, 16))
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())  # the network is left as it was
    flipped = build(g, 10)
    flipped.load_state_dict(before)
    with torch.no_grad():
        for m in flipped.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.neg_()
            if isinstance(m, nn.BatchNorm2d):
                m.weight.mul_(7.0)
                m.bias.add_(3.0)
    assert measures.synflow(flipped, (3, 16, 16)) == pytest.approx(s, rel=1e-12)
    # Through the scorer: whatever batch is given, synflow is the same (it never sees the data).
    a = Scorer.for_space(tiny, seeds=(0,)).score(g, "synflow").value
    batch = (torch.rand(8, 3, 16, 16) * 5, torch.randint(0, 10, (8,)))
    assert Scorer.for_space(tiny, seeds=(0,), batch=batch).score(g, "synflow").value == a


# NASWOT ----------------------------------------------------------------------------------------------------------

def test_naswot_kernel_is_hand_computed():
    # One ReLU on the input itself: codes are the signs of x.
    x = torch.tensor([[1.0, -1.0, 2.0], [1.0, 1.0, -3.0], [-1.0, -1.0, 1.0]])
    c = np.array([[1, 0, 1], [1, 1, 0], [0, 0, 1]], dtype=float)
    k = c @ c.T + (1 - c) @ (1 - c).T  # K[i, j]: how many units inputs i and j agree on
    k_got = measures.naswot_kernel(nn.Sequential(nn.ReLU()), x)
    assert np.array_equal(k_got.numpy(), k)
    assert measures.naswot(nn.Sequential(nn.ReLU()), x) == pytest.approx(math.log(abs(np.linalg.det(k))))
    # Every activation module kind is coded (ReLU6, swish, h-swish), from the sign of its input.
    for act in (nn.ReLU6(), nn.SiLU(), nn.Hardswish()):
        assert np.array_equal(measures.naswot_kernel(nn.Sequential(act), x).numpy(), k)
    # Two identical inputs: a singular kernel, -inf.
    assert measures.naswot(nn.Sequential(nn.ReLU()), torch.tensor([[1.0, -1.0], [2.0, -3.0]])) == -math.inf


def test_naswot_invariant_to_batch_order_and_labels(tiny, genotypes):
    g = genotypes[1]
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(16, 3, 16, 16, generator=gen)
    y = torch.randint(0, 10, (16,), generator=gen)
    perm = torch.randperm(16, generator=gen)
    base = Scorer.for_space(tiny, seeds=(0,), batch=(x, y)).score(g, "naswot").value
    shuffled_labels = Scorer.for_space(tiny, seeds=(0,), batch=(x, y[perm])).score(g, "naswot").value
    permuted = Scorer.for_space(tiny, seeds=(0,), batch=(x[perm], y[perm])).score(g, "naswot").value
    assert shuffled_labels == base
    assert permuted == pytest.approx(base, abs=1e-6)
    assert math.isfinite(base)


# gradient norm and SNIP ------------------------------------------------------------------------------------------

def test_grad_norm_and_snip_are_hand_computed():
    x = torch.tensor([[1.0, 2.0]])
    y = torch.tensor([0])
    # W = 0: uniform softmax, dL/dW = (p - onehot) x^T = [[-0.5, -1], [0.5, 1]].
    assert measures.grad_norm(_linear([[0.0, 0.0], [0.0, 0.0]]), x, y) == pytest.approx(math.sqrt(2.5))
    assert measures.snip(_linear([[0.0, 0.0], [0.0, 0.0]]), x, y) == 0.0
    w = np.array([[1.0, 0.0], [0.0, 1.0]])
    logits = w @ np.array([1.0, 2.0])
    p = np.exp(logits) / np.exp(logits).sum()
    grad = np.outer(p - np.array([1.0, 0.0]), [1.0, 2.0])
    assert measures.snip(_linear(w.tolist()), x, y) == pytest.approx(float(np.abs(w * grad).sum()))
    assert measures.grad_norm(_linear(w.tolist()), x, y) == pytest.approx(float(np.linalg.norm(grad)))


def test_grad_norm_scales_with_the_input_of_a_linear_layer():
    # dL/dW = (p - onehot) x^T: at W = 0 (p fixed), scaling x by c scales the gradient norm by c; SNIP stays 0.
    net = _linear([[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    x, y = torch.tensor([[0.3, -1.0, 2.0]]), torch.tensor([1])
    assert measures.grad_norm(net, 3 * x, y) == pytest.approx(3 * measures.grad_norm(net, x, y))


def test_batch_measures_share_one_pass_and_agree_with_each_alone(genotypes):
    from nas.model import build

    torch.manual_seed(1)
    net = build(genotypes[2], 10)
    gen = torch.Generator().manual_seed(1)
    x, y = torch.randn(8, 3, 16, 16, generator=gen), torch.randint(0, 10, (8,), generator=gen)
    joint = measures.batch_measures(net, x, y)
    assert joint["naswot"] == pytest.approx(measures.naswot(net, x))
    assert joint["grad_norm"] == pytest.approx(measures.grad_norm(net, x, y))
    assert joint["snip"] == pytest.approx(measures.snip(net, x, y))
    assert all(p.grad is None for p in net.parameters())  # no gradients left behind


# Zen -------------------------------------------------------------------------------------------------------------

def test_zen_ignores_the_initial_weights(genotypes):
    """Zen-score re-initialises the network (Gaussian weights), so two initialisations of one network agree."""
    from nas.model import build

    g = genotypes[3]
    x = torch.randn(8, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    vals = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        net = build(g, 10)
        torch.manual_seed(99)
        vals.append(measures.zen(net, x, net.head.pool, generator=torch.Generator().manual_seed(5)))
    assert vals[0] == pytest.approx(vals[1], rel=1e-6)
    assert math.isfinite(vals[0])


def test_zen_bn_rescale_is_the_log_batch_std():
    """A network of one conv + BN before the pool: the score is log E|f(x) - f(x')| + log sqrt(mean var)."""
    net = nn.Sequential(nn.Conv2d(1, 2, 1, bias=False), nn.BatchNorm2d(2), nn.AdaptiveAvgPool2d(1))
    x = torch.randn(4, 1, 3, 3, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(7)
    got = measures.zen(net, x, net[2], generator=torch.Generator().manual_seed(1))
    # By hand: the same Gaussian weights, the same noise.
    torch.manual_seed(7)
    w = torch.randn(2, 1, 1, 1)
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(1))

    def f(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = nn.functional.conv2d(z, w)
        var = h.var(dim=(0, 2, 3), unbiased=False)
        return (h - h.mean(dim=(0, 2, 3), keepdim=True)) / torch.sqrt(var + 1e-5)[None, :, None, None], h
    a, _ = f(x)
    b, hb = f(x + 1e-2 * noise)
    running = hb.var(dim=(0, 2, 3), unbiased=True)  # BN keeps the unbiased batch variance
    want = math.log(float((a - b).abs().flatten(1).sum(1).mean())) + 0.5 * math.log(float(running.mean()))
    assert got == pytest.approx(want, rel=1e-5)


# registry --------------------------------------------------------------------------------------------------------

def test_registry_names_and_combinations():
    assert set(SCORES) >= {"synflow", "zen", "naswot", "grad_norm", "snip", "params", "macs", "depth"}
    assert "default" in COMBINATIONS
    assert components("default") == COMBINATIONS["default"]
    assert components("naswot") == ("naswot",)
    assert components(["naswot", "macs", "naswot"]) == ("naswot", "macs")
    with pytest.raises(InputError, match="unknown score 'accuracy'"):
        components("accuracy")
    with pytest.raises(InputError, match="unknown single score"):
        Scorer(resolution=16).score(None, "default")  # a combination ranks a population, not one network


def test_depth_counts_blocks_but_identities():
    from nas import tables
    from nas.scores.registry import depth

    for g, m in tables.load("nas-bench-macro").items():
        assert depth(g) == 8 - m["code"].count("0"), m["code"]
    assert Scorer(resolution=16).score(g, "depth").value == depth(g)


def test_rank_average():
    got = rank_average({"a": [1.0, 5.0, 3.0], "b": [30.0, 10.0, 20.0], "c": [-math.inf, 2.0, 1.0]})
    assert got.tolist() == pytest.approx([(1 + 3 + 1) / 3, (3 + 1 + 3) / 3, (2 + 2 + 2) / 3])


def test_every_score_of_a_tiny_network(tiny, genotypes):
    g = genotypes[4]
    sc = Scorer.for_space(tiny, seeds=(0, 1), batch_size=8)
    assert (sc.resolution, sc.width, sc.num_classes) == (tiny.proxy.resolution, tiny.proxy.width, 10)
    res = sc.scores(g, list(SCORES))
    assert list(res) == list(SCORES)
    c = count(g, num_classes=10)
    assert res["params"].value == c.params and res["macs"].value == c.macs
    for name, r in res.items():
        assert math.isfinite(r.value) and r.seconds >= 0, name
        if SCORES[name].kind != "cost":
            assert len(r.per_seed) == 2 and r.value == pytest.approx(np.mean(r.per_seed))
    # Deterministic: the same seeds give the same values.
    again = sc.scores(g, ["naswot", "synflow", "zen", "grad_norm"])
    assert all(again[n].per_seed == res[n].per_seed for n in again)


def test_screening_picks_the_highest_score(tiny, genotypes):
    sc = Scorer.for_space(tiny, seeds=(0,), batch_size=8)
    macs = [count(g, num_classes=10).macs for g in genotypes]
    i, values = best_of(genotypes, "macs", sc)
    assert i == int(np.argmax(macs)) and values.tolist() == macs
    # A combination ranks the candidates: the one that is first by both MACs and params wins.
    i2, ranks = best_of(genotypes, ["macs", "params"], sc)
    assert ranks[i2] == ranks.max()
    j, naswot = best_of(genotypes[:3], "naswot", sc)
    assert naswot[j] == max(sc.score(g, "naswot").value for g in genotypes[:3])


# fidelity against a table ----------------------------------------------------------------------------------------

class _Table:
    def __init__(self, rows):
        self.rows = rows

    def items(self):
        return iter(self.rows)

    def __len__(self):
        return len(self.rows)


def test_score_fidelity_against_a_tiny_table(tiny, genotypes, tmp_path):
    from nas.fidelity.scores import score_fidelity

    gs = list({g.hash: g for g in tiny.sample_many(8, seed=5)}.values())
    macs = np.array([count(g, num_classes=10).macs for g in gs], dtype=float)
    acc = 0.5 + 0.4 * (macs - macs.min()) / (macs.max() - macs.min())  # a table whose accuracy follows MACs
    table = _Table([(g, {"accuracy": float(a), "runs": [float(a)]}) for g, a in zip(gs, acc, strict=True)])
    rep = score_fidelity("search_spaces/tiny.yaml", table, tmp_path, [{"score": "macs"}, {"score": "naswot"},
                         {"score": ["macs", "naswot"], "name": "both"}], n=100,
                         scorer=Scorer.for_space(tiny, seeds=(0,), batch_size=8))
    by = {r.recipe: r for r in rep.recipes}
    assert rep.n == len(gs)
    assert by["macs"].agreement.kendall_tau == pytest.approx(1.0)
    assert by["macs"].agreement.top_k_overlap == 1.0 and by["macs"].agreement.k == 1
    assert by["both"].seconds_per_network == pytest.approx(by["macs"].seconds_per_network
                                                         + by["naswot"].seconds_per_network)
    assert -1 <= by["naswot"].agreement.kendall_tau <= 1
    # Scores are recorded as scores, never as accuracy.
    lines = [json.loads(line) for line in (tmp_path / "scores.jsonl").read_text().splitlines()]
    assert len(lines) == 2 * len(gs) and all("accuracy" not in rec for rec in lines)
    doc = json.loads((tmp_path / "report.json").read_text())
    assert "accuracy" not in json.dumps(doc["recipes"])
    # A rerun computes nothing new (the cache is complete) and gives the same figures.
    again = score_fidelity("search_spaces/tiny.yaml", table, tmp_path, [{"score": "naswot"}], n=100,
                           scorer=Scorer.for_space(tiny, seeds=(0,), batch_size=8))
    assert (tmp_path / "scores.jsonl").read_text().count("\n") == 2 * len(gs)
    assert again.recipes[0].agreement == by["naswot"].agreement
    # n below the table's size draws a subset.
    sub = score_fidelity("search_spaces/tiny.yaml", table, tmp_path / "sub", [{"score": "params"}], n=5)
    assert sub.n == 5


def test_score_recipes_are_checked(tmp_path):
    from nas.fidelity.scores import parse_score_recipe

    assert parse_score_recipe({"score": "default"}, "r").scores == COMBINATIONS["default"]
    with pytest.raises(InputError, match=r"r\.score: unknown score 'nope'"):
        parse_score_recipe({"score": "nope"}, "r")
    with pytest.raises(InputError, match=r"r\.epochs: a score recipe takes only score and name"):
        parse_score_recipe({"score": "naswot", "epochs": 2}, "r")


def test_nas_fidelity_with_a_table_reference(tiny, tmp_path, monkeypatch, capsys):
    """``nas fidelity --reference table:FILE --recipe '{score: NAME}' --json`` on a table written here; the
    training-reference form keeps its own flags (the bad-recipe case below goes to the score path)."""
    from nas import tables
    from tests._cli import run_cli

    gs = list({g.hash: g for g in tiny.sample_many(10, seed=8)}.values())
    params = np.array([count(g, num_classes=10).params for g in gs], dtype=float)
    acc = 0.3 + 0.6 * (params - params.min()) / (params.max() - params.min())
    path = tmp_path / "t.jsonl"
    n = tables.write(path, [(g, {"accuracy": float(a), "runs": [float(a)]}) for g, a in zip(gs, acc, strict=True)])
    code, out, err = run_cli(monkeypatch, capsys, "fidelity", "--space", "search_spaces/tiny.yaml", "--reference",
                             f"table:{path}", "--recipe", "{score: params}", "--recipe",
                             "{score: [params, macs], name: pm}", "-n", "100", "--seeds", "0", "--out",
                             str(tmp_path / "out"), "--json")
    assert code == 0, err
    doc = json.loads(out)
    by = {r["recipe"]: r for r in doc["recipes"]}
    assert doc["n"] == n and set(by) == {"params", "pm"}
    assert by["params"]["kendall_tau"] == pytest.approx(1.0) and by["params"]["spearman_rho"] == pytest.approx(1.0)
    assert by["pm"]["score"] == ["params", "macs"]
    for r in by.values():
        assert set(r) >= {"kendall_tau", "spearman_rho", "top_5pct_overlap", "seconds_per_network"}
    assert doc["settings"]["scorer"]["seeds"] == [0]
    code, out, err = run_cli(monkeypatch, capsys, "fidelity", "--space", "search_spaces/tiny.yaml", "--reference",
                             f"table:{path}", "--recipe", "{score: accuracy}", "--out", str(tmp_path / "o2"))
    assert code == 2 and "--recipe" not in err and "unknown score 'accuracy'" in err


def test_nas_fidelity_training_form_keeps_its_seeds(tmp_path, monkeypatch, capsys):
    """Without a table reference --seeds are still training seeds (at least 2), checked before anything trains."""
    from tests._cli import run_cli

    code, _, err = run_cli(monkeypatch, capsys, "fidelity", "--space", "search_spaces/tiny.yaml", "--seeds", "1",
                           "--out", str(tmp_path / "f"), "--local")
    assert code == 2 and "at least 2 distinct seeds" in err
