"""Search spaces: schema, define-by-run sampling, exact counting, containment, budgets, Optuna integration."""

from __future__ import annotations

import dataclasses
import math
import random
import time
from functools import partial
from pathlib import Path

import optuna
import pytest
from hypothesis import HealthCheck, assume, given, settings
from strategies import small_spaces

from nas.cost.macs import count
from nas.errors import InputError
from nas.genotype import Genotype, load
from nas.search.budgets import cheapest, is_feasible, min_achievable, target_cost, validate_budgets, violations
from nas.space import (
    SHIPPED_SPACES,
    SearchSpace,
    canonical,
    find_space_file,
    fmt_count,
    load_space,
    space_from_dict,
)

REFERENCE = SHIPPED_SPACES / "reference"
SHIPPED = ["mixnet.yaml", "tiny.yaml", "ghost_acb.yaml", "cifar.yaml", "cheap_pointwise.yaml"]

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture(scope="module")
def mixnet() -> SearchSpace:
    return load_space("mixnet.yaml")


@pytest.fixture(scope="module")
def tiny() -> SearchSpace:
    return load_space("tiny.yaml")


def _reference(name: str) -> Genotype:
    p = REFERENCE / name
    if not p.exists():
        pytest.skip(f"{p} not written yet (reference genotypes come from the foundation issue)")
    return load(p)


class _Odometer:
    """An Optuna-trial stand-in that walks every path of the decision tree, one path per suggest()."""

    def __init__(self) -> None:
        self.path: list[list[int]] = []
        self.pos = 0

    def _next(self, n: int) -> int:
        if self.pos == len(self.path):
            self.path.append([0, n])
        i = self.path[self.pos][0]
        self.pos += 1
        return i

    def suggest_categorical(self, name, choices):
        return choices[self._next(len(choices))]

    def suggest_int(self, name, low, high, step=1):
        return low + step * self._next((high - low) // step + 1)

    def advance(self) -> bool:
        self.pos = 0
        while self.path and self.path[-1][0] + 1 == self.path[-1][1]:
            self.path.pop()
        if not self.path:
            return False
        self.path[-1][0] += 1
        return True


def _enumerate(space: SearchSpace) -> list[Genotype]:
    od, out = _Odometer(), []
    while True:
        out.append(space.suggest(od))
        if not od.advance():
            return out


# Small spaces that exercise every conditional decision; small enough to enumerate in a second or two.
_RICH_IR = {"kind": ["ir"], "kernels": [[1], [3], [3, 5]], "split": ["equal", "exponential"], "expand": [1, 3],
            "acb": [False, True], "se": [0, 0.25], "se_gate": ["sigmoid", "hsigmoid"], "ghost": [1, 2],
            "ghost_kernel": [3, 5], "exp_groups": [1, 2], "proj_groups": [1, 2, 4], "shuffle": [False, True],
            "proj": ["conv", "cw"]}
SMALL_SPACES = {
    "rich_ir": {"target": {"resolution": 32, "num_classes": 10},
                "stages": [{"name": "a", "stride": 2, "out": [16], **_RICH_IR}]},
    "ghost_mix": {"target": {"resolution": 32, "num_classes": 10}, "stem": {"out": [16, 24]},
                  "stages": [{"name": "a", "stride": 1, "out": [16, 24], "repeat": [1, 2], "share": "block",
                              "kind": ["ghost", "ir"], "kernels": [[1], [3]], "expand": 1, "ghost": [1, 2]},
                             {"name": "b", "stride": 1, "out": [24, 32], "repeat": [1, 3], "share": "stage",
                              "kind": ["ghost", "ir"], "kernels": [[3], [5]], "expand": 2, "acb": [False, True]}]},
    "cheap_kinds": {"target": {"resolution": 32, "num_classes": 10}, "proxy": {"width": 1.0},
                    "stem": {"out": [16], "pool": [False, True]},
                    "stages": [{"name": "a", "stride": 2, "out": [24, 48], "repeat": [1, 2], "share": "stage",
                                "kind": ["dws", "gm", "shuffle"], "kernels": [[3], [3, 5]], "acb": [False, True],
                                "bottleneck": 0.25, "exp_groups": [1, 2], "proj_groups": [1, 2],
                                "proj": ["conv", "cw"]},
                               {"name": "b", "stride": 1, "out": [48], "kind": ["dws", "gm"], "proj": ["conv", "cw"],
                                "proj_groups": [2, 4]}]},
    "stem_head": {"target": {"resolution": 32, "num_classes": 10},
                  "stem": {"out": [8, 16], "kernel": [1, 3], "stride": [1, 2], "acb": [False, True],
                           "act": ["relu", "swish"]},
                  "stages": [{"name": "a", "stride": 2, "out": [16, 32], "repeat": [1, 2, 3]}],
                  "head": {"features": [0, 16], "hidden": [0, 12], "act": ["relu", "swish"], "kind": ["fc", "cw"],
                           "dropout": [0.0, 0.2]}},
}


# -- the flagship space and the reference networks -------------------------------------------------------------

@pytest.mark.parametrize("name", ["mixnet_s.yaml", "mixnet_m.yaml"])
def test_mixnet_references_are_points_of_mixnet_yaml(mixnet: SearchSpace, name: str) -> None:
    g = _reference(name)
    assert mixnet.why_not(g) is None
    assert mixnet.contains(g)
    params = mixnet.params_of(g)
    assert mixnet.from_params(params) == g
    assert all(isinstance(v, (int, float, str, bool)) for v in params.values())  # storable by Optuna


def test_networks_outside_the_space_are_refused_with_the_field(mixnet: SearchSpace) -> None:
    s = _reference("mixnet_s.yaml")
    bad_se = dataclasses.replace(s.stages[2][1], se=0.75)
    g = s.replace(stages=(*s.stages[:2], (s.stages[2][0], bad_se, *s.stages[2][2:]), *s.stages[3:]))
    assert not mixnet.contains(g)
    assert "s2.b1.se" in mixnet.why_not(g) and "0.75" in mixnet.why_not(g)
    assert "resolution" in mixnet.why_not(s.replace(resolution=160))
    assert "5 stages" in mixnet.why_not(s.replace(stages=s.stages[:5]))
    relu_head = s.replace(head=dataclasses.replace(s.head, act="swish"))
    assert mixnet.why_not(relu_head).startswith("head.act")
    ghost = _reference("ghostnet_100.yaml")
    assert not mixnet.contains(ghost)
    with pytest.raises(InputError, match="stages"):
        mixnet.params_of(ghost)


def test_contains_ignores_options_that_change_nothing(mixnet: SearchSpace) -> None:
    s = _reference("mixnet_s.yaml")
    b = s.stages[1][0]  # se == 0, one kernel: the gate and the split do not exist in this block
    odd = dataclasses.replace(b, se_gate="hsigmoid", split="exponential")
    g = s.replace(stages=(s.stages[0], (odd, *s.stages[1][1:]), *s.stages[2:]))
    assert g.hash != s.hash
    assert canonical(g) == s
    assert mixnet.contains(g)


def test_thousand_samples_are_fast_valid_and_in_the_space(mixnet: SearchSpace) -> None:
    t0 = time.process_time()
    genotypes = [mixnet.sample(i) for i in range(1000)]
    cpu = time.process_time() - t0
    print(f"\n1000 samples from mixnet.yaml: {cpu:.2f} s CPU")
    assert cpu < 5.0  # generous: ~0.3 s on a laptop core; benchmarks/bench_space.py reports the figure
    assert all(isinstance(g, Genotype) and g.resolution == 224 for g in genotypes)
    assert len({g.hash for g in genotypes}) == 1000
    assert all(mixnet.contains(g) for g in genotypes[::10])


def test_samples_build_and_match_the_analytic_cost(mixnet: SearchSpace) -> None:
    torch = pytest.importorskip("torch")
    from nas.model import build
    from nas.proxy import proxy_genotype

    torch.set_num_threads(1)
    for seed in range(3):
        g = mixnet.sample(seed)
        net = build(g, num_classes=mixnet.target.num_classes)
        trained = count(g, mixnet.target.resolution, mixnet.target.num_classes, deployed=False)
        assert sum(p.numel() for p in net.parameters()) == trained.params
        assert target_cost(mixnet, g) == count(g)  # budgets see the deployed network (ACB folded)
        proxy = build(proxy_genotype(g, 32, mixnet.proxy.width), num_classes=10).eval()
        with torch.no_grad():
            assert proxy(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_sampling_is_deterministic_per_seed(tiny: SearchSpace) -> None:
    assert tiny.sample(7) == tiny.sample(random.Random(7))
    a = [g.hash for g in tiny.sample_many(20, seed=3)]
    assert a == [g.hash for g in tiny.sample_many(20, seed=3)]
    assert a != [g.hash for g in tiny.sample_many(20, seed=4)]
    assert len(set(a)) == 20


@pytest.mark.parametrize("name", ["mixnet.yaml", "tiny.yaml"])
def test_feasible_samples_are_within_budget(name: str) -> None:
    space = load_space(name)
    space.budgets.latency_ms = None  # MACs and params here; latency budgets: tests/test_search_objectives.py
    genotypes = space.sample_many(200, seed=1, feasible=partial(is_feasible, space))
    assert len(genotypes) == 200
    for g in genotypes:
        v = violations(space, g)
        assert set(v) == {"macs", "params"} and max(v.values()) <= 0
        c = target_cost(space, g)
        assert c.macs <= space.budgets.macs and c.params <= space.budgets.params


def test_violations_are_relative_excess(tiny: SearchSpace) -> None:
    g = tiny.sample(0)
    c = target_cost(tiny, g)
    v = violations(tiny, g)
    assert v["macs"] == pytest.approx((c.macs - tiny.budgets.macs) / tiny.budgets.macs)
    assert v["params"] == pytest.approx((c.params - tiny.budgets.params) / tiny.budgets.params)
    assert violations(tiny, g, latency_ms=1.0) == v  # no latency budget: latency is ignored


def test_latency_budget_uses_the_given_latency() -> None:
    space = space_from_dict({"stages": [{"name": "a", "out": 16}], "budgets": {"latency_ms": 2.0,
                                                                               "target": "torch-cpu"}})
    g = space.sample(0)
    assert violations(space, g, latency_ms=3.0) == {"latency_ms": pytest.approx(0.5)}
    assert violations(space, g, latency_fn=lambda _: 1.0) == {"latency_ms": pytest.approx(-0.5)}


def test_sample_many_reports_what_it_could_not_find() -> None:
    space = space_from_dict({"stages": [{"name": "a", "out": [16, 24]}]}, "two.yaml")
    assert space.count() == 2
    with pytest.raises(InputError, match=r"two.yaml: .*only 2 distinct architectures found"):
        space.sample_many(3, max_draws=100)


# -- counting ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(SMALL_SPACES))
def test_count_is_the_number_of_distinct_genotypes_enumerated(name: str) -> None:
    space = space_from_dict(SMALL_SPACES[name], name)
    genotypes = _enumerate(space)
    hashes = {g.hash for g in genotypes}
    assert len(hashes) == len(genotypes) == space.count()  # no two decision paths give the same genotype
    assert all(canonical(g) == g for g in genotypes)  # no drawn option is one without effect
    step = max(1, len(genotypes) // 200)
    for g in genotypes[::step]:
        assert space.contains(g)
        assert space.from_params(space.params_of(g)) == g


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(small_spaces())
def test_count_is_the_number_of_distinct_genotypes_of_generated_spaces(data: dict) -> None:
    space = space_from_dict(data, "generated")
    n = space.count()
    assume(n <= 1500)  # small enough to enumerate
    genotypes = _enumerate(space)
    assert len({g.hash for g in genotypes}) == len(genotypes) == n
    assert all(canonical(g) == g for g in genotypes)


@pytest.mark.parametrize("name", list(SMALL_SPACES))
def test_min_achievable_is_the_exact_minimum(name: str) -> None:
    space = space_from_dict(SMALL_SPACES[name], name)
    costs = [target_cost(space, g) for g in _enumerate(space)]
    assert min_achievable(space) == {"macs": min(c.macs for c in costs), "params": min(c.params for c in costs)}
    assert space.contains(cheapest(space, "macs")) and space.contains(cheapest(space, "params"))


def test_count_by_share_mode_and_dead_options() -> None:
    block = {"name": "a", "out": 16, "repeat": [1, 2, 3], "groups": [1, 2], "se": [0, 0.5],
             "se_gate": ["sigmoid", "hsigmoid"], "split": ["equal", "exponential"]}
    # per block: kernels (1 + 2 with the split drawn for g = 2) x SE (off, or on with one of 2 gates) = 3 x 3
    per_block = (1 + 2) * (1 + 2)
    shared = space_from_dict({"stages": [{**block, "share": "stage"}]})
    assert shared.count() == per_block * 3
    each = space_from_dict({"stages": [{**block, "share": "block"}]})
    assert each.count() == per_block + per_block ** 2 + per_block ** 3
    assert each.log10_count() == pytest.approx(math.log10(each.count()))


def test_mixnet_count_is_huge_and_exact(mixnet: SearchSpace) -> None:
    n = mixnet.count()
    assert isinstance(n, int) and 70 < mixnet.log10_count() < 100
    assert 10 ** 61 < load_space("mixconv.yaml").count() < 10 ** 62  # the MixConv paper's exact space
    # one factor per stage: the count must change when any choice list grows
    bigger = space_from_dict(mixnet.model_dump(mode="json", exclude_none=True), "copy")
    assert bigger.count() == n
    bigger.stages[5].se = (0.0, 0.25, 0.5, 1.0)
    assert bigger.count() > n


# -- budgets -----------------------------------------------------------------------------------------------------

def test_impossible_budget_is_one_line_with_the_smallest_achievable(tiny: SearchSpace) -> None:
    data = {"stages": [st.model_dump(exclude_none=True) for st in tiny.stages], "target": tiny.target.model_dump(),
            "stem": tiny.stem.model_dump(), "head": tiny.head.model_dump(), "budgets": {"macs": 1000}}
    space = space_from_dict(data, "tight.yaml")
    with pytest.raises(InputError) as e:
        validate_budgets(space)
    msg = str(e.value)
    smallest = min_achievable(space)["macs"]
    assert "\n" not in msg
    assert msg == (f"tight.yaml: budgets.macs: no architecture in this space meets 1k MACs; "
                   f"the smallest achievable is {fmt_count(smallest)}")
    data["budgets"] = {"params": 1e6}
    data["family"] = {"s": {"params": 100}}
    with pytest.raises(InputError, match=r"family\.s\.params: no architecture .* smallest achievable is "):
        validate_budgets(space_from_dict(data, "tight.yaml"))
    data["family"] = {"s": {"params": min_achievable(space)["params"]}}
    validate_budgets(space_from_dict(data, "ok.yaml"))  # exactly the minimum is achievable


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_spaces_are_valid_and_their_budgets_achievable(name: str) -> None:
    space = load_space(name)
    assert space.name == Path(name).stem and space.description
    validate_budgets(space)
    mins = min_achievable(space)
    assert mins["macs"] <= space.budgets.macs and mins["params"] <= space.budgets.params
    assert space.count() > 1000
    for g in space.sample_many(20, seed=5):
        assert space.contains(g)
        assert space.from_params(space.params_of(g)) == g


def test_proxy_is_the_train_config_and_costs_the_target(mixnet: SearchSpace) -> None:
    from nas.train import TrainConfig

    assert isinstance(mixnet.proxy, TrainConfig)
    assert mixnet.proxy.resolution < mixnet.target.resolution
    g = mixnet.sample(0)
    from nas.cost.macs import count

    assert target_cost(mixnet, g) == count(g, resolution=224, num_classes=1000)


# -- Optuna ------------------------------------------------------------------------------------------------------

def test_nsga2_study_drives_suggest(mixnet: SearchSpace) -> None:
    def objective(trial: optuna.Trial) -> tuple[float, float]:
        g = mixnet.suggest(trial)
        trial.set_user_attr("hash", g.hash)
        for name, excess in violations(mixnet, g).items():  # Optuna 5: feasible when every value <= 0
            trial.set_constraint(name, excess)
        c = target_cost(mixnet, g)
        return c.macs, c.params

    sampler = optuna.samplers.NSGAIISampler(seed=0, population_size=8)
    study = optuna.create_study(directions=["minimize", "minimize"], sampler=sampler)
    study.optimize(objective, n_trials=20)
    trials = study.get_trials(states=[optuna.trial.TrialState.COMPLETE])
    assert len(trials) == 20
    for t in trials:
        assert mixnet.from_params(t.params).hash == t.user_attrs["hash"]
    assert {"stem.out", "s1.repeat", "s1.b0.kernels"} <= set(trials[0].params)
    assert isinstance(trials[0].params["s1.b0.kernels"], str)


def test_sqlite_study_reloads_and_rebuilds_the_same_genotypes(tiny: SearchSpace, tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(study_name="s", storage=storage, sampler=optuna.samplers.RandomSampler(seed=0))
    known = tiny.sample(123)
    study.enqueue_trial(tiny.params_of(known))

    def objective(trial: optuna.Trial) -> float:
        g = tiny.suggest(trial)
        trial.set_user_attr("hash", g.hash)
        return target_cost(tiny, g).macs

    study.optimize(objective, n_trials=5)
    reloaded = optuna.load_study(study_name="s", storage=storage)
    trials = reloaded.get_trials()
    assert len(trials) == 5
    assert trials[0].user_attrs["hash"] == known.hash
    for t in trials:
        assert tiny.from_params(t.params).hash == t.user_attrs["hash"]


def test_from_params_rejects_what_the_space_cannot_have(tiny: SearchSpace) -> None:
    params = tiny.params_of(tiny.sample(0))
    with pytest.raises(InputError, match="decision 'stem.out' is missing"):
        tiny.from_params({k: v for k, v in params.items() if k != "stem.out"})
    with pytest.raises(InputError, match="'bogus' is not a decision"):
        tiny.from_params({**params, "bogus": 1})
    with pytest.raises(InputError, match="stem.out = 12 is not one of"):
        tiny.from_params({**params, "stem.out": 12})


# -- files ----------------------------------------------------------------------------------------------------------

def test_find_space_file_prefers_the_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert find_space_file("tiny.yaml") == SHIPPED_SPACES / "tiny.yaml"
    assert find_space_file("tiny") == SHIPPED_SPACES / "tiny.yaml"
    assert find_space_file("mixnet_s.yaml") == REFERENCE / "mixnet_s.yaml"
    assert find_space_file("nope.yaml") == Path("nope.yaml")
    (tmp_path / "tiny.yaml").write_text("stages: [{name: mine, out: 8}]\n")
    assert find_space_file("tiny.yaml") == Path("tiny.yaml")
    assert load_space("tiny.yaml").stages[0].name == "mine"


def test_numbers_with_suffixes_and_defaults() -> None:
    space = space_from_dict({"stages": [{"name": "a", "out": 16}],
                             "budgets": {"macs": "400M", "params": "1.5e6"}, "family": {"s": {"macs": "250e6"}}})
    assert space.budgets.macs == 400e6 and space.budgets.params == 1.5e6 and space.family["s"].macs == 250e6
    assert [o.metric for o in space.objectives] == ["accuracy", "macs"]
    assert [o.direction for o in space.objectives] == ["maximize", "minimize"]
    assert space.search.sampler == "nsga2" and space.tracking.wandb == "offline"
    short = space_from_dict({"stages": [{"name": "a", "out": 16}], "objectives": ["accuracy", "params"]})
    assert [(o.metric, o.direction) for o in short.objectives] == [("accuracy", "maximize"), ("params", "minimize")]


def test_cheap_pointwise_space_offers_every_cheap_1x1_option() -> None:
    """The 224-px space where grouped + shuffled 1x1 convs, ghost modules, channel-wise fusion (IR proj cw),
    DWSCW, GM/GCWM and ShuffleNet units compete; its samples build at the proxy size."""
    space = load_space("cheap_pointwise.yaml")
    blocks = [(b, cin) for g in space.sample_many(300, seed=3) for cin, _, b in g.block_inputs()]
    seen = {(b.kind, b.proj) for b, _ in blocks}
    assert seen >= {("ir", "conv"), ("ir", "cw"), ("ghost", "conv"), ("dws", "conv"), ("dws", "cw"),
                    ("gm", "conv"), ("gm", "cw"), ("shuffle", "conv")}
    assert any(b.kind == "shuffle" and b.stride == 2 for b, _ in blocks)
    assert any(b.kind == "ir" and b.shuffle and b.proj_groups > 1 for b, _ in blocks)
    assert all(cin == b.out for b, cin in blocks if b.kind == "dws" and b.proj == "cw")
    assert {b.expand for b, _ in blocks if b.kind == "shuffle"} == {0.25, 0.5}  # the bottleneck choices
    assert {b.ghost_kernel for b, _ in blocks if b.kind == "ghost"} == {3, 5}
