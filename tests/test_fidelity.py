"""The fidelity study: statistics on known inputs, resume, refused settings, outputs (no Ray but one slow test)."""

from __future__ import annotations

import collections
import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest

from nas.config import TrainConfig
from nas.errors import InputError
from nas.fidelity import Recipe, agreement, default_recipes, noise, run_fidelity, top_k
from nas.fidelity.recipes import resolve_recipes
from nas.fidelity.store import RunLog

TINY = Path(__file__).resolve().parent.parent / "search_spaces" / "tiny.yaml"
ONE_RECIPE = [{"name": "short", "epochs": 1}]
REFERENCE = {"name": "long", "epochs": 3}


def _unit(*parts: object) -> float:
    """A deterministic number in [0, 1) from its arguments (Python's hash() is salted per process)."""
    digest = hashlib.sha256(repr(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def fake_accuracy(genotype, config: TrainConfig) -> tuple[float, float]:
    """Accuracy = the architecture's quality scaled by epochs, plus a small seed noise; 0.5 s of 'training'."""
    quality = _unit(genotype.hash)
    acc = 0.3 + 0.6 * quality * min(1.0, config.epochs / 3) + 0.02 * _unit(genotype.hash, config.seed)
    return acc, 0.5 * config.epochs


class Counting:
    """A train_fn that counts its calls per (architecture, config) and delegates to fake_accuracy."""

    def __init__(self) -> None:
        self.calls: collections.Counter = collections.Counter()

    def __call__(self, genotype, config):
        self.calls[(genotype.hash, config.epochs, config.width, config.seed)] += 1
        return fake_accuracy(genotype, config)


def _study(out: Path, train_fn=fake_accuracy, **kw):
    args = {"n": 4, "seeds": (1, 2), "recipes": ONE_RECIPE, "reference": REFERENCE, "executor": "local",
            "train_fn": train_fn, **kw}
    return run_fidelity(TINY, out, **args)


# -- statistics on known inputs ---------------------------------------------------------------------------------


def test_a_recipe_identical_to_the_reference_agrees_perfectly():
    rng = np.random.default_rng(0)
    ref = rng.uniform(0.5, 1.0, size=(12, 3))
    a = agreement(ref.copy(), ref)
    assert a.kendall_tau == pytest.approx(1.0) and a.spearman_rho == pytest.approx(1.0)
    assert a.top_k_overlap == 1.0 and a.k == 3


def test_a_shuffled_recipe_ranks_no_better_than_chance():
    rng = np.random.default_rng(1)
    ref = rng.uniform(0.5, 1.0, size=(40, 2))
    taus = [agreement(ref[rng.permutation(len(ref))], ref).kendall_tau for _ in range(300)]
    assert abs(float(np.mean(taus))) < 0.03  # the mean of 300 permutations: its standard error is ~0.006
    assert float(np.mean(np.abs(taus))) < 0.15  # one permutation of 40: |tau| ~ 0.09 on average
    assert agreement(-ref, ref).kendall_tau == pytest.approx(-1.0)
    assert agreement(-ref, ref).top_k_overlap == 0.0


def test_top_k_overlap_counts_the_share_of_the_references_top_k():
    ref = np.array([[0.9], [0.8], [0.1], [0.2], [0.3], [0.4], [0.5], [0.6]])  # top 2: architectures 0 and 1
    rec = np.array([[0.9], [0.1], [0.2], [0.3], [0.4], [0.95], [0.5], [0.6]])  # top 2: architectures 5 and 0
    assert top_k(8) == 2 and top_k(3) == 1
    assert agreement(rec, ref).top_k_overlap == 0.5


def test_seed_noise_and_spread_equal_hand_computed_values():
    acc = [[0.90, 0.80, 0.85],  # std over seeds 0.05; pairwise |d| 0.10, 0.05, 0.05 -> mean 1/15
           [0.60, 0.60, 0.60]]  # std 0, |d| 0
    n = noise(acc)
    assert n.seed_std == pytest.approx(0.025)
    assert n.seed_abs_diff == pytest.approx((1 / 15) / 2)
    assert n.arch_std == pytest.approx(0.25 / math.sqrt(2))  # means 0.85 and 0.60
    assert n.noise_ratio == pytest.approx(0.025 / (0.25 / math.sqrt(2)))
    assert (n.accuracy_min, n.accuracy_max) == (pytest.approx(0.60), pytest.approx(0.85))
    with pytest.raises(ValueError, match="two seeds"):
        noise([[0.5], [0.6]])


def test_a_constant_recipe_has_no_rank_correlation():
    ref = np.array([[0.5, 0.6], [0.7, 0.8], [0.2, 0.1]])
    a = agreement(np.full((3, 2), 0.99), ref)
    assert a.kendall_tau is None and a.spearman_rho is None
    assert noise(np.full((3, 2), 0.99)).noise_ratio is None


# -- recipes ----------------------------------------------------------------------------------------------------


def test_default_recipes_are_the_proxy_a_cheaper_and_a_longer_one_and_a_4x_reference():
    cands, ref = default_recipes(TrainConfig(epochs=8, width=0.5, resolution=24))
    assert [c.to_dict() for c in cands] == [{"name": "proxy"}, {"name": "e4", "epochs": 4},
                                            {"name": "e16", "epochs": 16}]
    assert ref.to_dict() == {"name": "reference", "epochs": 32, "resolution": 24, "width": 0.5}
    cands, ref = default_recipes(TrainConfig(epochs=1, width=1.0))  # one epoch cannot be halved: half the width
    assert cands[1].to_dict() == {"name": "w0.5", "width": 0.5} and ref.overrides["epochs"] == 4
    assert cands[0].config(TrainConfig(epochs=1), seed=7) == TrainConfig(epochs=1, seed=7)


@pytest.mark.parametrize(("recipes", "reference", "where"), [
    ([{"name": "a", "epoch": 2}], None, "recipes[0].epoch: not a training setting"),
    ([{"name": "a", "seed": 2}], None, "recipes[0].seed: a recipe does not choose the seed"),
    ([{"name": "a", "epochs": 0}], None, "recipes[0].epochs: must be >= 1"),
    ([{"name": "a", "epochs": "many"}], None, "recipes[0].epochs: Input should be a valid integer"),
    ([{"epochs": 2}], None, "recipes[0].name:"),
    ([{"name": "a"}, {"name": "a", "epochs": 2}], None, "recipes[1].name: 'a' is used twice"),
    ([{"name": "reference"}], None, "reference.name: 'reference' is used twice"),
    ([], None, "recipes: at least one"),
    (None, {"name": "r", "width": -1}, "reference.width: must be > 0"),
])
def test_bad_recipes_are_one_line_naming_the_field(recipes, reference, where):
    with pytest.raises(InputError) as e:
        resolve_recipes(TrainConfig(), recipes, reference)
    assert where in str(e.value) and "\n" not in str(e.value)


def test_recipe_values_are_normalised_by_validation():
    cands, _ = resolve_recipes(TrainConfig(), [{"name": "a", "epochs": "4"}, Recipe("b", {"lr": 1})], None)
    assert cands[0].overrides == {"epochs": 4} and cands[1].overrides == {"lr": 1.0}


# -- a study: outputs, resume, refused settings ------------------------------------------------------------------


def test_a_study_writes_json_png_and_rows_and_an_identical_recipe_agrees_perfectly(tmp_path):
    seen = []
    rep = _study(tmp_path, recipes=[{"name": "same", "epochs": 3}, {"name": "short", "epochs": 1}],
                 on_run_finished=lambda run, done, total: seen.append((run.key, done, total)))
    assert [d for _, d, _ in seen] == list(range(1, 4 * 3 * 2 + 1)) and {t for *_, t in seen} == {24}
    same, short = rep.recipes
    assert same.agreement.kendall_tau == pytest.approx(1.0) and same.agreement.spearman_rho == pytest.approx(1.0)
    assert same.agreement.top_k_overlap == 1.0 and same.seconds_per_run == pytest.approx(1.5)
    assert short.seconds_per_run == pytest.approx(0.5) and not rep.saturated

    doc = json.loads((tmp_path / "report.json").read_text())
    assert doc["schema"] == "nas.fidelity/1" and doc["k"] == 1 and len(doc["runs"]) == 24
    assert [r["recipe"] for r in doc["recipes"]] == ["same", "short"] and doc["reference"]["recipe"] == "long"
    assert set(doc["recipes"][0]) >= {"kendall_tau", "spearman_rho", "top_k_overlap", "seed_std", "seed_abs_diff",
                                      "arch_std", "noise_ratio", "seconds_per_run", "accuracy_min", "accuracy_max"}
    assert len(doc["architectures"]) == 4 and doc["settings"]["n"] == 4

    png = (tmp_path / "ranks.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and rep.paths["png"] == tmp_path / "ranks.png"
    import matplotlib.image

    img = matplotlib.image.imread(tmp_path / "ranks.png")
    assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 200  # two panels side by side

    rows = rep.rows()
    assert [r["recipe"] for r in rows] == ["same", "short", "long"]
    assert rows[0]["tau"] == "1.00" and rows[1]["changes"] == "epochs=1" and "top-1" in rows[0]


def test_an_interrupted_study_resumes_and_trains_nothing_twice(tmp_path):
    counting = Counting()

    def interrupt_after_5(run, done, total):
        if done == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _study(tmp_path, counting, on_run_finished=interrupt_after_5)
    assert sum(counting.calls.values()) == 5 and not (tmp_path / "report.json").exists()
    rep = _study(tmp_path, counting)
    triples = 4 * 2 * 2  # architectures x recipes (candidate + reference) x seeds
    assert sum(counting.calls.values()) == triples and set(counting.calls.values()) == {1}
    assert len(rep.runs) == triples and rep.notes == ()
    rerun = _study(tmp_path, counting)  # everything is done: nothing is trained
    assert sum(counting.calls.values()) == triples and rerun.to_dict()["runs"] == rep.to_dict()["runs"]


def test_a_run_that_raises_is_not_recorded_and_is_trained_on_resume(tmp_path):
    calls = []

    def fails_on_third(genotype, config):
        calls.append(genotype.hash)
        if len(calls) == 3:
            raise RuntimeError("out of memory")
        return fake_accuracy(genotype, config)

    with pytest.raises(RuntimeError, match="out of memory"):
        _study(tmp_path, fails_on_third)
    assert len((tmp_path / "runs.jsonl").read_text().splitlines()) == 2
    _study(tmp_path, fails_on_third)
    assert len(calls) == 16 + 1


def test_a_torn_last_line_is_skipped_with_a_note_and_trained_again(tmp_path):
    _study(tmp_path)
    log = tmp_path / "runs.jsonl"
    text = log.read_text()
    last = text.splitlines()[-1]
    log.write_text(text[:len(text) - len(last) // 2 - 1])  # a crash in the middle of the last write
    counting = Counting()
    rep = _study(tmp_path, counting)
    assert sum(counting.calls.values()) == 1
    assert len(rep.notes) == 1 and "line 16: skipped a run cut short" in rep.notes[0]
    lines = log.read_text().splitlines()
    assert len(lines) == 16 and all(json.loads(line) for line in lines)


def test_a_complete_last_line_without_its_newline_is_kept(tmp_path):
    _study(tmp_path)
    log = tmp_path / "runs.jsonl"
    log.write_text(log.read_text().rstrip("\n"))
    counting = Counting()
    rep = _study(tmp_path, counting)
    assert sum(counting.calls.values()) == 0 and rep.notes == () and log.read_text().endswith("}\n")


def test_a_corrupt_line_inside_the_log_stops_the_study_naming_the_line(tmp_path):
    _study(tmp_path)
    log = tmp_path / "runs.jsonl"
    lines = log.read_text().splitlines()
    lines[3] = '{"arch": "x"'
    log.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match=r"runs.jsonl: line 4: not a run record"):
        _study(tmp_path)
    lines[3] = json.dumps({"arch": "0" * 16, "recipe": "short", "seed": 1, "accuracy": 0.5, "seconds": 1.0})
    log.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match=r"line 4: a run of architecture 0{16}.* is not part of this study"):
        _study(tmp_path)
    assert RunLog(log).notes == []  # reading alone changes nothing and notes nothing


@pytest.mark.parametrize(("change", "field"), [
    ({"n": 5}, "n"),
    ({"seeds": (1, 3)}, "seeds"),
    ({"sample_seed": 1}, "sample_seed"),
    ({"recipes": [{"name": "short", "epochs": 2}]}, "recipes"),
    ({"reference": {"name": "long", "epochs": 4}}, "reference"),
    ({"data": "digits"}, "data"),
])
def test_changed_settings_are_refused_in_one_line_naming_the_field(tmp_path, change, field):
    _study(tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    counting = Counting()
    with pytest.raises(InputError) as e:
        _study(tmp_path, counting, **change)
    msg = str(e.value)
    assert msg.startswith(f"{tmp_path / 'fidelity.json'}: {field}: this study was run with ") and "\n" not in msg
    assert not counting.calls and {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_an_edited_space_file_is_a_changed_setting(tmp_path):
    space = tmp_path / "tiny.yaml"
    space.write_text(TINY.read_text())
    out = tmp_path / "study"
    args = {"n": 3, "recipes": ONE_RECIPE, "reference": REFERENCE, "executor": "local", "train_fn": fake_accuracy}
    run_fidelity(space, out, **args)
    space.write_text(TINY.read_text().replace("epochs: 1", "epochs: 2"))
    with pytest.raises(InputError, match=r"fidelity.json: space_sha256: this study was run with"):
        run_fidelity(space, out, **args)


def test_a_saturated_reference_is_flagged(tmp_path):
    def saturated(genotype, config):
        if config.epochs == 3:  # the reference: everything at 99% give or take one image
            return 0.99 + 0.003 * _unit(genotype.hash, config.seed), 1.0
        return fake_accuracy(genotype, config)

    rep = _study(tmp_path, saturated, n=6)
    assert rep.saturated and "saturated" in rep.notes[-1]
    assert rep.reference.noise.accuracy_max - rep.reference.noise.accuracy_min < 0.004
    assert json.loads((tmp_path / "report.json").read_text())["saturated"] is True


@pytest.mark.parametrize(("kw", "where"), [
    ({"n": 1}, "n: at least 2"), ({"seeds": (1,)}, "seeds: at least 2 distinct"), ({"seeds": (1, 1)}, "seeds:"),
    ({"executor": "threads"}, "executor:"), ({"data": "no/such/dir"}, "data: no/such/dir: no such file"),
])
def test_bad_arguments_are_one_line(tmp_path, kw, where):
    with pytest.raises(InputError, match=where):
        _study(tmp_path, **kw)


def test_the_real_trainer_runs_a_small_study(tmp_path, one_thread):
    rep = run_fidelity(TINY, tmp_path, n=2, seeds=(1, 2), executor="local",
                       recipes=[{"name": "half", "subsample": 64, "batch_size": 32, "width": 0.5}],
                       reference={"name": "ref", "subsample": 64, "batch_size": 32})
    assert len(rep.runs) == 8 and all(0 <= r.accuracy <= 1 and r.seconds > 0 for r in rep.runs)
    assert rep.reference.seconds_per_run > 0


@pytest.mark.slow  # starts Ray (several seconds on 2 cores)
def test_a_study_runs_as_ray_tasks(local_ray, tmp_path):
    def on_ray(genotype, config):
        return 0.5 + 0.4 * int(genotype.hash[:6], 16) / 16**6 + 0.01 * config.seed, 0.1

    rep = run_fidelity(TINY, tmp_path, n=3, seeds=(1, 2), recipes=ONE_RECIPE, reference=REFERENCE,
                       executor="ray", cpus_per_trial=1, train_fn=on_ray)
    assert len(rep.runs) == 12 and rep.recipes[0].agreement.kendall_tau == pytest.approx(1.0)
    assert len((tmp_path / "runs.jsonl").read_text().splitlines()) == 12


def test_the_benchmark_prints_the_machine_and_the_table(monkeypatch, capsys, tmp_path):
    import nas.fidelity
    from benchmarks import bench_fidelity

    real = nas.fidelity.run_fidelity
    monkeypatch.setattr(nas.fidelity, "run_fidelity", lambda *a, **kw: real(*a, **{**kw, "train_fn": fake_accuracy}))
    assert bench_fidelity.main(["--quick", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("== proxy fidelity ==\nmachine: ") and "[ 24/24]" in out
    table = out[out.index("recipe "):].splitlines()
    assert [line.split()[0] for line in table[2:5]] == ["e1", "e1-w0.5", "e2"]
    assert (tmp_path / "report.json").exists() and (tmp_path / "ranks.png").exists()
