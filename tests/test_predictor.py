"""The predictor-guided sampler: its parts (variation, NSGA-II ranks, hypervolume gain, the regressor) and the
sampler on Optuna studies with a synthetic accuracy: faster convergence than random, resume from storage,
budgets, the quality record, and proposals that never wait for a refit."""

from __future__ import annotations

import random
import statistics
import threading
import time
from functools import partial

import numpy as np
import optuna
import pytest
from optuna._hypervolume import compute_hypervolume
from optuna.trial import TrialState

from benchmarks._synth_objective import SyntheticAccuracy, feasible, hypervolume_2d, objective
from nas.errors import InputError
from nas.search import budgets
from nas.search import evolve as ev
from nas.search.predictor import ATTR, PredictorSampler, from_context, predictor_sampler
from nas.search.surrogate import Encoder, Surrogate, tau, union_choices
from nas.space import load_space

OBJS = [{"metric": "accuracy", "direction": "maximize"}, {"metric": "macs", "direction": "minimize"}]
# Small evolution, a small forest, refits in the calling thread (repeatable); the defaults are measured in
# benchmarks/bench_predictor.py.
FAST = {"population": 24, "generations": 6, "n_startup": 8, "batch_size": 4, "background": False,
        "model": "extra_trees", "n_estimators": 30}


@pytest.fixture(scope="module")
def tiny():
    return load_space("tiny.yaml")


@pytest.fixture(scope="module")
def synth(tiny):
    return SyntheticAccuracy(tiny, seed=0)


def _budgets(space) -> dict[str, float]:
    return {"macs": float(space.budgets.macs), "params": float(space.budgets.params)}


def _study(sampler, storage=None, name=None) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(directions=["maximize", "minimize"], sampler=sampler, storage=storage, study_name=name)


def _sampler(space, synth, budgets=None, **opts) -> PredictorSampler:
    return PredictorSampler(space, OBJS, synth.costs, feasible(budgets or _budgets(space)), **{**FAST, **opts})


# -- parts ------------------------------------------------------------------------------------------------------


def test_a_single_parent_without_mutation_replays_its_architecture(tiny, synth):
    rng = random.Random(0)
    for i in range(20):
        g = tiny.sample(i)
        params = tiny.params_of(g)
        c, exact = ev.make(tiny, rng, synth.costs, [params])
        assert exact and c.genotype == g and c.params == params and c.hash == g.hash
        assert c.costs == synth.costs(g)


def test_crossover_takes_each_decision_group_from_a_parent_and_mutation_changes_some(tiny, synth):
    rng = random.Random(1)
    a, b = tiny.params_of(tiny.sample(1)), tiny.params_of(tiny.sample(2))
    from_a = from_b = 0
    for _ in range(20):
        c, _ = ev.make(tiny, rng, synth.costs, [a, b])
        assert tiny.contains(c.genotype)
        inherited = [n for n, v in c.params.items() if v in (a.get(n), b.get(n))]
        assert len(inherited) >= 0.9 * len(c.params)  # no mutation: (nearly) every value is a parent's
        from_a += c.params.get("s2.out") == a["s2.out"] != b["s2.out"]
        from_b += c.params.get("s2.out") == b["s2.out"] != a["s2.out"]
    assert a["s2.out"] == b["s2.out"] or (from_a and from_b)
    mutated = [ev.make(tiny, rng, synth.costs, [a], rate=0.3)[0] for _ in range(20)]
    changed = [sum(m.params.get(k) != v for k, v in a.items()) for m in mutated]
    assert max(changed) > 0 and all(tiny.contains(m.genotype) for m in mutated)


def test_nondominated_ranks_match_a_brute_force_peel():
    rng = np.random.default_rng(0)
    losses = rng.integers(0, 6, size=(40, 2)).astype(float)  # ties and duplicates included
    ranks = ev.nondominated_ranks(losses)
    left, rank = set(range(len(losses))), 0
    while left:
        front = {i for i in left if not any(np.all(losses[j] <= losses[i]) and np.any(losses[j] < losses[i])
                                            for j in left)}
        assert {i for i in left if ranks[i] == rank} == front
        left -= front
        rank += 1


def test_hypervolume_agrees_with_optuna_in_two_and_three_dimensions():
    rng = np.random.default_rng(1)
    for m in (2, 3):
        pts = rng.random((25, m))
        ref = np.full(m, 1.1)
        assert ev.hypervolume(pts, ref) == pytest.approx(compute_hypervolume(pts, ref))
    assert ev.hypervolume(np.array([[2.0, 0.5]]), np.array([1.0, 1.0])) == 0.0


def test_batch_choice_takes_the_largest_gain_then_spreads():
    front = np.array([[0.2, 0.8], [0.8, 0.2]])
    ref = np.array([1.0, 1.0])
    cands = np.array([[0.5, 0.5],  # fills the front's big gap
                      [0.45, 0.55],  # nearly the same spot
                      [0.05, 0.9],  # a small gain at an end
                      [0.9, 0.9]])  # dominated: never chosen
    picks = ev.select_by_gain(front, cands, cands, ref, k=4)
    assert picks[0] == 0 and 3 not in picks
    assert picks[1:] == [2, 1]  # once 0 is in, the point next to it gains less than the far end


def test_encoder_codes_values_and_marks_absent_decisions():
    enc = Encoder({"a": (16, 24), "b": ("3", "3-5"), "c": (False, True)}, ("macs",))
    x = enc.matrix([({"a": 24, "b": "3-5", "c": True}, {"macs": 99.0}), ({"a": 16}, {"macs": 0.0})])
    assert x.tolist() == [[24.0, 1.0, 1.0, np.log1p(99.0)], [16.0, -1.0, -1.0, 0.0]]
    assert union_choices([{"a": (1, 2)}, {"a": (2, 3)}, {"b": ("x",)}]) == {"a": (1, 2, 3), "b": ("x",)}


@pytest.mark.parametrize("kind", ["extra_trees", "random_forest", "gradient_boosting", "ensemble"])
def test_every_model_ranks_a_learnable_function_and_reports_a_spread(kind):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 4, size=(60, 6)).astype(float)
    y = x[:, 0] - 0.5 * x[:, 1] + 0.05 * rng.normal(size=60)
    xt = rng.integers(0, 4, size=(100, 6)).astype(float)
    mean, std = Surrogate(kind, seed=0, n_estimators=50).fit(x, y).predict(xt)
    assert tau(mean, xt[:, 0] - 0.5 * xt[:, 1]) > 0.7
    assert std.shape == (100,) and np.all(std >= 0) and std.max() > 0
    with pytest.raises(ValueError, match="not one of"):
        Surrogate("svm")
    assert tau([1.0], [2.0]) is None and tau([1.0, 2.0], [3.0, 3.0]) is None


# -- the sampler on studies -----------------------------------------------------------------------------------


def _run(space, synth, sampler, n, budgets=None, study=None) -> optuna.Study:
    study = study or _study(sampler)
    study.optimize(objective(space, synth, budgets or _budgets(space)), n_trials=n)
    return study


def test_front_converges_faster_than_random_on_a_known_objective(tiny):
    """3 seeds x 60 trials on tiny.yaml, accuracy (synthetic) and MACs under the space's budgets."""
    budgets = _budgets(tiny)
    hv: dict[str, list[float]] = {"random": [], "predictor": []}
    for seed in range(3):
        synth = SyntheticAccuracy(tiny, seed=seed)
        for kind in hv:
            s = optuna.samplers.RandomSampler(seed=seed) if kind == "random" else _sampler(tiny, synth, seed=seed)
            study = _run(tiny, synth, s, 60)
            hv[kind].append(hypervolume_2d([tuple(t.values) for t in study.trials], budgets["macs"]))
    # measured: random 0.658 / 0.692 / 0.652, predictor 0.716 / 0.728 / 0.744 (mean gain +0.063)
    assert all(p > r for p, r in zip(hv["predictor"], hv["random"], strict=True)), hv
    assert statistics.mean(hv["predictor"]) - statistics.mean(hv["random"]) > 0.03, hv


def test_every_proposal_is_within_the_budget_and_the_model_proposes_after_the_start(tiny, synth):
    rng = random.Random(0)
    macs = sorted(synth.costs(tiny.sample(rng))["macs"] for _ in range(200))
    budgets = {"macs": macs[len(macs) // 2]}  # half of the space is over this budget
    s = _sampler(tiny, synth, budgets)
    study = _run(tiny, synth, s, 30, budgets)
    sources = [t.user_attrs[ATTR]["source"] for t in study.trials]
    assert sources[:8] == ["startup"] * 8 and sources.count("model") >= 15
    assert all(t.values[1] <= budgets["macs"] for t in study.trials)
    # the budget bites: random search proposes over it about half the time
    rs = _run(tiny, synth, optuna.samplers.RandomSampler(seed=0), 30, budgets)
    assert sum(t.values[1] > budgets["macs"] for t in rs.trials) >= 8


def test_quality_is_kendall_tau_on_the_trials_each_model_had_not_seen(tiny, synth):
    s = _sampler(tiny, synth)
    study = _run(tiny, synth, s, 25)
    assert len(s.fits) == 5 and len(s.quality) == 4  # fits after 8, 12, 16, 20, 24 results; tau from the 2nd on
    by_number = {t.number: t for t in study.trials}
    for q, before, after in zip(s.quality, s.fits, s.fits[1:], strict=False):
        seen, now = set(before["numbers"]), set(after["numbers"])
        assert set(q["evaluated"]) == now - seen and q["n_eval"] == len(now - seen) >= 2
        assert q["trials"] == len(seen)
        # the same tau from scratch: the earlier model refitted on what it had seen, asked about the rest
        cands = {n: ev.make(tiny, random.Random(0), synth.costs, [by_number[n].params])[0] for n in now}
        train = [cands[n] for n in sorted(seen)]
        enc = Encoder(union_choices([c.choices for c in train]), ("macs", "params"))
        model = Surrogate("extra_trees", seed=0, n_estimators=30).fit(
            enc.matrix([(c.params, c.costs) for c in train]), [by_number[n].values[0] for n in sorted(seen)],
            trend=enc.cost_columns)
        unseen = sorted(now - seen)
        pred, _ = model.predict(enc.matrix([(cands[n].params, cands[n].costs) for n in unseen]))
        assert q["tau"] == pytest.approx(tau(pred, [by_number[n].values[0] for n in unseen]))
    last = study.trials[-1].user_attrs[ATTR]  # proposed after the last refit: carries its tau
    assert (last["tau"], last["tau_trials"], last["tau_n"]) == (s.quality[-1]["tau"], 20, 4)
    # tau_all: every model-proposed trial's prediction, made before its result, against the result
    ahead = [(t.user_attrs[ATTR]["predicted"], t.values[0]) for t in study.trials[:24]
             if t.user_attrs[ATTR]["source"] == "model"]
    assert s.quality[-1]["n_all"] == len(ahead) >= 10
    assert s.quality[-1]["tau_all"] == pytest.approx(tau(*zip(*ahead, strict=True)))


def test_a_new_sampler_on_a_reloaded_study_refits_from_it_and_keeps_the_quality_history(tiny, synth, tmp_path):
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    path = str(tmp_path / "journal.log")
    first = _sampler(tiny, synth)
    _run(tiny, synth, first, 20, study=_study(first, JournalStorage(JournalFileBackend(path)), "s"))
    assert len(first.quality) == 2
    history = [{k: v for k, v in q.items() if k != "evaluated"} for q in first.quality]  # "evaluated": memory only

    # a fresh process: a new storage object on the same file, a new sampler
    second = _sampler(tiny, synth, seed=1)
    study = optuna.load_study(study_name="s", storage=JournalStorage(JournalFileBackend(path)), sampler=second)
    trial = study.ask()
    g = tiny.suggest(trial)
    info = study.trials[-1].user_attrs[ATTR]
    assert info["source"] in ("model", "explore") and second.fitted
    assert second.fits[0]["trials"] == 20 and info["fit_trials"] == 20
    assert second.quality == history
    assert g.hash not in {tiny.from_params(t.params).hash for t in study.trials[:-1]}


def test_proposals_never_wait_for_a_refit(tiny, synth):
    s = _sampler(tiny, synth, background=True)
    release = threading.Event()
    plan = s.planner.plan

    def slow_plan(*args):
        release.wait(30)
        return plan(*args)

    s.planner.plan = slow_plan
    study = _run(tiny, synth, s, 8)  # the start design
    t0 = time.perf_counter()
    _run(tiny, synth, s, 6, study=study)  # a refit is due and blocked: these must not wait for it
    assert time.perf_counter() - t0 < 5
    assert {t.user_attrs[ATTR]["source"] for t in study.trials[8:]} == {"startup"} and not s.fitted
    release.set()
    assert s.wait(30) and s.fitted
    _run(tiny, synth, s, 1, study=study)
    assert study.trials[-1].user_attrs[ATTR]["source"] in ("model", "explore")


def test_without_an_accuracy_objective_it_evolves_on_the_exact_costs(tiny, synth):
    objs = [{"metric": "macs", "direction": "minimize"}, {"metric": "params", "direction": "minimize"}]
    s = PredictorSampler(tiny, objs, synth.costs, None, **FAST)
    study = optuna.create_study(directions=["minimize", "minimize"], sampler=s)

    def costs(trial):
        c = synth.costs(tiny.suggest(trial))
        return c["macs"], c["params"]

    study.optimize(costs, n_trials=20)
    assert s.fitted and not s.quality
    rs = optuna.create_study(directions=["minimize", "minimize"], sampler=optuna.samplers.RandomSampler(seed=0))
    rs.optimize(costs, n_trials=20)
    assert min(t.values[0] for t in study.trials) < min(t.values[0] for t in rs.trials)


def test_bad_settings_are_refused(tiny, synth):
    with pytest.raises(InputError, match="cannot score 'flops'"):
        PredictorSampler(tiny, [{"metric": "flops"}], synth.costs)
    with pytest.raises(ValueError, match="not one of"):
        PredictorSampler(tiny, OBJS, synth.costs, model="svm")
    s = predictor_sampler(tiny, OBJS, synth.costs, seed=3, trials=100, concurrency=8)
    assert (s.n_startup, s.batch_size, s.seed) == (10, 8, 3)


def test_the_registry_factory_takes_budgets_and_costs_from_the_space(tiny):
    from types import SimpleNamespace

    cost = partial(budgets.target_cost, tiny)
    ctx = SimpleNamespace(kind="predictor", seed=2, trials=40, concurrency=1, space=tiny, objectives=OBJS,
                          cost_fn=cost)  # a Cost object, not a dict
    s = from_context(ctx, background=False)
    g = tiny.sample(0)
    costs = s.cost_fn(g)
    assert costs == {"macs": cost(g).macs, "params": cost(g).params}
    assert s.feasible_fn(g, costs) == budgets.is_feasible(tiny, g)
    assert not s.feasible_fn(g, {**costs, "macs": tiny.budgets.macs + 1})
    assert (s.seed, s.n_startup, s.batch_size) == (2, 4, 4)
    latency = SimpleNamespace(**{**vars(ctx), "objectives": [*OBJS, {"metric": "latency_ms"}]})
    with pytest.raises(InputError, match="latency"):  # tiny.yaml names no target or latency table
        from_context(latency)


def test_enqueued_trials_keep_their_parameters(tiny, synth):
    s = _sampler(tiny, synth)
    study = _study(s)
    params = tiny.params_of(tiny.sample(5))
    study.enqueue_trial(params)
    _run(tiny, synth, s, 1, study=study)
    assert study.trials[0].params == params and ATTR not in study.trials[0].user_attrs
    assert not [t for t in study.trials if t.state != TrialState.COMPLETE]
