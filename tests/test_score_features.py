"""Training-free scores as features of the predictor sampler (issue 26): the score cache (computed once per
network, kept on disk per scorer), the features in the model's matrix, the sampler and the search settings."""

from __future__ import annotations

import json
import random

import numpy as np
import optuna
import pytest

from benchmarks._synth_objective import SyntheticAccuracy, feasible, objective
from nas.errors import InputError
from nas.scores import Scorer
from nas.scores.cache import ScoreCache, feature_values
from nas.scores.registry import Result
from nas.search.predictor import ATTR, PredictorSampler
from nas.search.surrogate import Encoder
from nas.space import load_space


@pytest.fixture(scope="module")
def tiny():
    return load_space("tiny.yaml")


class CountingScorer(Scorer):
    """The real scorer's key, a value the test knows (the number of blocks), and a count of the networks scored."""

    calls: list = []  # noqa: RUF012 (one list per test, reset below)

    def scores(self, genotype, names):
        self.calls.append(genotype.hash)
        v = float(len(genotype.blocks))
        return {n: Result(n, v + (n == "naswot"), (v,), 0.01) for n in names}


def _scorer(**kw):
    CountingScorer.calls = []
    return CountingScorer(resolution=16, width=0.25, seeds=(0,), **kw)


def test_a_network_is_scored_once_and_read_back_from_the_file(tiny, tmp_path):
    path = tmp_path / "scores.jsonl"
    rng = random.Random(0)
    gs = [tiny.sample(rng) for _ in range(5)]
    cache = ScoreCache(_scorer(), "default", path)
    assert cache.names == ("naswot", "depth")
    first = [cache(g) for g in gs]
    again = [cache(g) for g in gs]
    assert first == again and len(CountingScorer.calls) == len({g.hash for g in gs}) == cache.computed
    assert first[0] == {"naswot": len(gs[0].blocks) + 1.0, "depth": float(len(gs[0].blocks))}
    reread = ScoreCache(_scorer(), "default", path)
    assert [reread(g) for g in gs] == first and CountingScorer.calls == []  # nothing scored again
    # another scorer (another proxy width) does not take these values
    other = ScoreCache(_scorer().__class__(resolution=16, width=0.5, seeds=(0,)), "default", path)
    assert len(other) == 0


def test_a_line_cut_by_a_kill_is_ignored_and_a_corrupt_one_is_named(tiny, tmp_path):
    path = tmp_path / "scores.jsonl"
    g = tiny.sample(random.Random(1))
    ScoreCache(_scorer(), "naswot", path)(g)
    with open(path, "a") as f:
        f.write('{"hash": "abc", "scor')  # torn tail
    resumed = ScoreCache(_scorer(), "naswot", path)
    assert len(resumed) == 1
    other = tiny.sample(random.Random(2))
    resumed(other)  # appended on a line of its own, after the torn one
    assert len(ScoreCache(_scorer(), "naswot", path)) == 2
    path.write_text(path.read_text().split("\n")[0] + '\n{"hash": 3}\n')
    with pytest.raises(InputError, match=r"scores.jsonl: line 2: not a score record"):
        ScoreCache(_scorer(), "naswot", path)


def test_score_features_are_columns_of_the_model_as_values(tiny):
    g = tiny.sample(random.Random(2))
    cache = ScoreCache(_scorer(), "default")
    feats = feature_values(cache, g)
    assert feats == {"score:naswot": len(g.blocks) + 1.0, "score:depth": float(len(g.blocks))}
    enc = Encoder({"a": (1, 2)}, ("macs", "score:naswot"))
    row = enc.matrix([({"a": 2}, {"macs": 99.0, "score:naswot": -5.0})])[0]
    assert row.tolist() == [2.0, pytest.approx(np.log1p(99.0)), -5.0]  # costs as logs, a score as its value


def test_the_sampler_models_with_score_features(tiny):
    synth = SyntheticAccuracy(tiny, seed=0)
    cache = ScoreCache(_scorer(), "default")
    budgets = {"macs": float(tiny.budgets.macs), "params": float(tiny.budgets.params)}
    s = PredictorSampler(tiny, [{"metric": "accuracy", "direction": "maximize"}, {"metric": "macs"}], synth.costs,
                         feasible(budgets), population=16, generations=3, n_startup=6, batch_size=4,
                         background=False, model="extra_trees", n_estimators=20, score_cache=cache)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=s)
    study.optimize(objective(tiny, synth, budgets), n_trials=14)
    assert any(t.user_attrs[ATTR]["source"] == "model" for t in study.trials)
    assert s._plan is not None and s._plan.encoder is not None
    assert {"score:naswot", "score:depth"} <= set(s._plan.encoder.cost_keys)
    assert cache.computed >= 14  # every trial's network, and the candidates the evolution met, were scored


def test_score_features_need_the_predictor_sampler_and_known_scores(tmp_path):
    from pathlib import Path

    from nas.search.settings import SearchOptions, prepare

    text = Path(load_space("tiny.yaml").source).read_text()
    for search, match in (("search: {score_features: default, ", "only the predictor sampler"),
                          ("search: {sampler: predictor, score_features: [naswot, nope], ", "unknown score 'nope'")):
        space = tmp_path / "s.yaml"
        space.write_text(text.replace("search: {sampler: nsga2, ", search))
        with pytest.raises(InputError, match=r"search\.score_features: " + match):
            prepare(SearchOptions(space=space, out=tmp_path / "r"))


def test_the_assessment_takes_score_features(tiny):
    from nas.search import evolve as ev
    from nas.search.assess import Measured, assess

    synth = SyntheticAccuracy(tiny, seed=0)
    rng = random.Random(3)
    points, seen = [], set()
    while len(points) < 40:
        c, _ = ev.make(tiny, rng, synth.costs)
        if c.hash not in seen:
            seen.add(c.hash)
            points.append(Measured(c, synth.clean(c.params, c.costs["macs"])))
    out = assess(points, 20, (0,), score_cache=ScoreCache(_scorer(), "default"), baseline=False)
    assert out["score_features"] == ["score:naswot", "score:depth"] and -1 <= out["kendall_tau"] <= 1
    json.dumps(out)
