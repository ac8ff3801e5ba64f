"""The benchmark runner and the cores of bench_family / bench_scaling / bench_data on toy configurations (seconds)."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _synth_study import make_study  # noqa: E402

from benchmarks import __main__ as runner  # noqa: E402
from benchmarks import bench_data as bd  # noqa: E402
from benchmarks import bench_family as bf  # noqa: E402
from benchmarks import bench_scaling as bs  # noqa: E402
from nas.export.final import eval_seeds  # noqa: E402
from nas.export.matching import analytic_costs  # noqa: E402
from nas.scaling import scale  # noqa: E402
from nas.space import load_space  # noqa: E402
from nas.train import TrainConfig  # noqa: E402

# -- the runner -------------------------------------------------------------------------------------------------


def test_runner_lists_the_suite_in_order_and_knows_who_accepts_quick(capsys):
    names = runner.available()
    assert {"bench_family", "bench_scaling"} <= set(names)
    order = [n for n in runner.ORDER if n in names]
    assert names[:len(order)] == order
    assert runner.accepts_quick("bench_family") and runner.accepts_quick("bench_scaling")
    assert runner.select(["family,bench_scaling"]) == ["bench_family", "bench_scaling"]
    with pytest.raises(SystemExit, match="unknown benchmark"):
        runner.select(["nope"])
    assert runner.main(["--list", "--only", "family"]) == 0
    assert "bench_family" in capsys.readouterr().out


def _fake_suite(tmp_path: Path, monkeypatch) -> None:
    pkg = tmp_path / "benchmarks"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "bench_yes.py").write_text(textwrap.dedent("""
        import argparse, sys
        ap = argparse.ArgumentParser()
        ap.add_argument("--quick", action="store_true")
        print("quick" if ap.parse_args().quick else "full")
    """))
    (pkg / "bench_no.py").write_text("import sys\nprint('args', sys.argv[1:])\nsys.exit(3)\n")
    (tmp_path / "search_spaces").mkdir()  # what makes tmp_path a checkout for the runner
    monkeypatch.setattr(runner, "HERE", pkg)
    monkeypatch.setattr(runner, "ROOT", tmp_path)
    monkeypatch.setattr(runner, "ORDER", ("bench_yes", "bench_no", "bench_absent"))


def test_runner_runs_each_module_passes_quick_only_where_accepted_and_summarises(tmp_path, monkeypatch, capsys):
    _fake_suite(tmp_path, monkeypatch)
    rc = runner.main(["--quick", "--logs", str(tmp_path / "logs")])
    out = capsys.readouterr().out
    assert rc == 1  # bench_no exits 3
    assert "quick\n" in out and "args []" in out  # bench_no declares no --quick: run with nothing
    summary = out[out.index("== benchmark summary"):]
    assert "bench_yes" in summary and "ok" in summary
    assert "failed (rc 3)" in summary and "full (no --quick option)" in summary
    assert "bench_absent" in summary and "missing" in summary
    assert (tmp_path / "logs" / "bench_yes.log").read_text() == "quick\n"


def test_runner_works_from_any_directory_and_says_when_it_has_no_checkout(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # the benchmarks run in the repository root whatever the working directory
    assert runner.main(["--list"]) == 0 and "bench_family" in capsys.readouterr().out
    monkeypatch.setattr(runner, "ROOT", tmp_path)  # e.g. a non-editable install: the package without the repository
    with pytest.raises(SystemExit, match="is not the nas repository checkout.*pip install -e"):
        runner.main(["--list"])


# -- bench_family ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    study = make_study(tmp_path_factory.mktemp("bench"))
    return study, load_space(study / "space.yaml")


def test_family_members_and_references_are_matched_to_the_tier_macs(synth):
    study, space = synth
    members = bf.family_members(study, space, ["s", "l"])
    assert [m.tier for m in members] == ["s", "l"]
    models, notes = bf.plan_models(members, space, bf.reference_genotypes(space))
    for tier, budget in (("s", space.family["s"].macs), ("l", space.family["l"].macs)):
        group = [m for m in models if m.tier == tier]
        assert sum(m.kind == "searched" for m in group) == 1
        refs = [m for m in group if m.kind == "reference"]
        assert refs and all(m.macs <= budget for m in group)
        for r in refs:  # the widest width within budget: the next wider network goes over
            name = r.name.split(" x")[0]
            g = bf.reference_genotypes(space, (name,))[name]
            assert scale(g, r.width) == r.genotype.replace(name="")
            w = r.width
            while scale(g, w) == scale(g, r.width):
                w += 0.001
            assert analytic_costs(10)(scale(g, w))["macs"] > budget
        assert len(refs) + sum(f"tier {tier}:" in n for n in notes) == len(bf.REFERENCES)
    # What cannot shrink that far is reported, not silently dropped.
    assert all("cannot be scaled to macs <=" in n for n in notes)


def test_family_is_what_export_best_chooses(synth, tmp_path):
    from nas.export import export_family

    study, space = synth
    fam = json.loads((export_family(study, tmp_path / "fam", ["s", "l"], measure=False) / "family.json").read_text())
    assert [m.genotype.hash for m in bf.family_members(study, space, ["s", "l"])] == [
        m["hash"] for m in fam["members"]]


def test_family_models_train_on_the_same_seeds_are_tested_and_judged(synth, tmp_path):
    torch.set_num_threads(1)
    study, space = synth
    members = bf.family_members(study, space, ["s"])
    models, _ = bf.plan_models(members, space, bf.reference_genotypes(space, ("mobilenetv2_100",)))
    assert len(models) == 2
    recipe = TrainConfig(resolution=8, subsample=64, epochs=1, batch_size=32, precise_bn=0, val_fraction=0.1)
    seeds = eval_seeds(recipe, 3)
    assert recipe.seed not in seeds
    lines = []
    bf.train_models(models, recipe, seeds, workers=1, ledger=tmp_path / "final_eval.jsonl", log=lines.append)
    assert len(lines) == 7 and "0 run(s) read back" in lines[0] and "% test" in lines[-1]
    for m in models:
        assert len(m.accs) == 3 and all(0.0 <= a <= 1.0 for a in m.accs) and len(m.val_accs) == 3
    text, verdicts = bf.macs_table(models)
    assert verdicts[0]["verdict"] in ("better", "worse", "no significant difference") and "best reference" in text
    assert 0 <= verdicts[0]["p_value"] <= 1
    # A rerun on the same ledger trains nothing and gives the same figures.
    again, _ = bf.plan_models(members, space, bf.reference_genotypes(space, ("mobilenetv2_100",)))
    lines.clear()
    bf.train_models(again, recipe, seeds, workers=1, ledger=tmp_path / "final_eval.jsonl", log=lines.append,
                    train_fn=_no_training)
    assert lines == ["6 run(s) read back from " + str(tmp_path / "final_eval.jsonl") + ", 0 to train"]
    assert [m.accs for m in again] == [m.accs for m in models]


def _no_training(genotype, config):
    raise AssertionError("trained a run the ledger already held")


def _model(name: str, accs: list[float], kind: str = "reference", tier: str = "s", lat: float | None = None):
    g = load_space(Path(bf.__file__).resolve().parents[1] / "search_spaces" / "tiny.yaml").sample(0)
    return bf.Model(tier, name, kind, g, 1.0, 1000, 100, latency_ms=lat, accs=accs)


def test_verdicts_are_welch_tests_over_the_seeds(tmp_path):
    member = _model("searched", [0.90, 0.91, 0.92], "searched", lat=5.0)
    assert bf.verdict(member, _model("r", [0.80, 0.81, 0.82]))[0] == "better"
    assert bf.verdict(member, _model("r", [0.95, 0.96, 0.97]))[0] == "worse"
    assert bf.verdict(member, _model("r", [0.85, 0.91, 0.97]))[0] == "no significant difference"
    assert bf.verdict(_model("m", [0.9]), _model("r", [0.1]))[0] == "untested"
    # Matched latency: only references at most as slow as the member count.
    slow_better = _model("slow", [0.99, 0.99, 0.99], lat=9.0)
    fast_worse = _model("fast", [0.50, 0.52, 0.51], lat=4.0)
    text, vs = bf.latency_table_text([member, slow_better, fast_worse])
    assert vs[0]["reference"] == "s/fast" and vs[0]["verdict"] == "better" and vs[0]["p_value"] < 0.05
    assert "matched MACs 0 better, 0 no significant difference, 1 worse" in bf.headline([{"verdict": "worse"}], vs)
    png = bf.write_plot([member, slow_better, fast_worse], tmp_path / "family.png", "toy")
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_latency_is_predicted_from_a_table_and_missing_parts_are_reported(synth):
    from nas.cost.parts import part_keys
    from nas.cost.table import LatencyTable
    from nas.latency import get_target

    _, space = synth
    a, b = (_model(n, [0.5, 0.5]) for n in "ab")
    b.genotype = space.sample(1)
    table = LatencyTable(target=get_target("torch-cpu"), device={"cpu": "another machine"}, num_classes=10,
                         unit_ms=1.0, entries={k: {"ms": 0.5, "n": 1} for k in part_keys(a.genotype, 10)})
    problem = bf.add_latency([a, b], table, 10)
    assert a.latency_ms == pytest.approx(0.5 * len(part_keys(a.genotype, 10)))
    assert b.latency_ms is None and "no entry" in problem


def test_bench_space_overrides_proxy_search_and_tracking(tmp_path, synth):
    study, _ = synth
    p = bf.bench_space(study / "space.yaml", tmp_path, epochs=3, subsample=100, data=str(tmp_path), trials=7,
                       concurrency=1)
    s = load_space(p)
    assert (s.proxy.epochs, s.proxy.subsample, s.proxy.dataset, s.proxy.path) == (3, 100, "auto", str(tmp_path))
    assert (s.search.trials, s.search.concurrency, s.tracking.wandb) == (7, 1, "disabled")


# -- bench_data -------------------------------------------------------------------------------------------------


def test_bench_data_statistics_on_known_runs(capsys):
    import argparse

    archs = load_space("tiny.yaml").sample_many(3, seed=0)
    proxy = TrainConfig(epochs=2, seed=0)
    args = argparse.Namespace(datasets=["d"], seeds=2, ref_factor=3, ref_seeds=1)
    short = {0: (0.80, 0.84), 1: (0.90, 0.90), 2: (0.60, 0.70)}  # seed differences 4, 0 and 10 points
    refs = {0: 0.95, 1: 0.99, 2: 0.85}  # same order as the short means: tau 1; the best one above the ceiling
    done = {}
    for i, g in enumerate(archs):
        for s, acc in enumerate(short[i]):
            done[bd._key("d", g.hash[:8], 2, s)] = {"accuracy": acc, "cpu_s": 10.0}
        done[bd._key("d", g.hash[:8], 6, 0)] = {"accuracy": refs[i], "cpu_s": 30.0}
    assert [r[1:] for r in bd._runs(args, archs, proxy)][:2] == [(archs[0], 2, 0), (archs[0], 2, 1)]
    s = bd.summarise(args, archs, done, proxy)["d"]
    assert s["seed_noise"] == pytest.approx(0.14 / 3) and s["between_range"] == pytest.approx(0.25)
    assert s["kendall_tau"] == pytest.approx(1.0) and s["ref_max"] == 0.99 and s["cpu_s_ref"] == 30.0
    assert "AT the 98% ceiling" in capsys.readouterr().out


# -- bench_scaling ---------------------------------------------------------------------------------------------


def test_wider_spaces_have_more_parts(tmp_path):
    from nas.cli import resolve_path
    from nas.cost.parts import space_parts

    base = Path(resolve_path("tiny.yaml"))
    sizes = [len(space_parts(load_space(base)))]
    for name, stages in bs.WIDER.items():
        sizes.append(len(space_parts(load_space(bs.derive_space(base, tmp_path, name, stages=stages)))))
    assert sizes == sorted(sizes) and len(set(sizes)) == len(sizes)


def test_search_point_times_a_fresh_study(tmp_path):
    from nas.cli import resolve_path

    p = bs.search_point(Path(resolve_path("tiny.yaml")), tmp_path, 6, 1, 1, objective="cost")
    assert p.counts and sum(v for k, v in p.counts.items() if k != "duplicate") == 6
    assert p.wall_s > 0 and p.trained == 0  # cost-only: nothing is trained
    assert "trials/h" in bs.search_table([p])


def test_lut_point_builds_a_whole_table_and_a_sample_extrapolates(synth):
    study, _ = synth
    whole = bs.lut_point(study / "space.yaml", "torch-cpu", {"rounds": 1, "burst_s": 0.002, "networks": 0}, "t")
    assert whole.parts == whole.measured_parts > 10 and whole.seconds > 0 and not whole.extrapolated
    part = bs.lut_sample_point(study / "space.yaml", "torch-cpu", {"rounds": 1, "burst_s": 0.002, "networks": 0},
                               "t", sample=2)
    assert part.extrapolated and part.parts == whole.parts and part.sampled == 2 < part.carriers
    assert 0 < part.measured_parts < part.parts and part.seconds > 0
    assert "extrapolated: 2 of" in bs.lut_table([whole, part])


def test_full_mode_runs_the_whole_grid_and_every_lut_space(monkeypatch, tmp_path, capsys):
    import argparse

    calls: list[tuple] = []

    def fake_search(base, work, trials, conc, epochs, **kw):
        calls.append(("search", trials, conc, epochs))
        return bs.SearchPoint(trials, conc, epochs, float(trials * epochs) / conc, trials, {"complete": trials})

    def fake_lut(path, target, setting, label):
        calls.append(("lut", load_space(path).name, setting["rounds"]))
        return bs.LutPoint(load_space(path).name, 10, 1.0, 10, label)

    def fake_sample(path, target, setting, label, sample):
        calls.append(("sample", load_space(path).name))
        return bs.LutPoint(load_space(path).name, 100, 10.0, 5, label, extrapolated=True, carriers=20, sampled=sample)

    monkeypatch.setattr(bs, "search_point", fake_search)
    monkeypatch.setattr(bs, "lut_point", fake_lut)
    monkeypatch.setattr(bs, "lut_sample_point", fake_sample)
    monkeypatch.setattr(bs, "start_ray", lambda n=None: 0.0)
    monkeypatch.setattr(bs, "stop_ray", lambda: None)
    out = bs.run(argparse.Namespace(quick=False, space="tiny.yaml", target="torch-cpu", skip_search=False,
                                    skip_lut=False, keep=tmp_path))
    grid = [c[1:] for c in calls if c[0] == "search"]
    assert sorted(grid) == sorted((t, c, e) for t in (4, 8) for c in (1, 2) for e in (1, 2))
    luts = [c[1:] for c in calls if c[0] != "search"]
    assert luts == [("tiny", 1), ("tiny_wide", 1), ("tiny_wider", 1), ("cifar", 1), ("mixnet",), ("tiny", 3)]
    assert len(out["search"]) == 8 and len(out["lut"]) == 6
    text = capsys.readouterr().out
    assert "0.50x" in text  # concurrency 2 halves the fake wall time: ratios are printed against the first point


@pytest.mark.slow
def test_search_point_on_ray_trains_every_trial(tmp_path):
    from nas.cli import resolve_path

    bs.start_ray(2)
    try:
        p = bs.search_point(Path(resolve_path("tiny.yaml")), tmp_path, 2, 2, 1, extra_proxy={"subsample": 64})
    finally:
        bs.stop_ray()
    assert p.trained >= 1 and p.trials_per_hour > 0


# -- bench_search_quality -----------------------------------------------------------------------------------------

def test_search_quality_short_runs_random_to_the_full_budget_and_the_others_to_the_check(tmp_path, monkeypatch,
                                                                                         capsys):
    from benchmarks import bench_search_quality as bq

    out = tmp_path / "q"
    monkeypatch.setattr(sys, "argv", ["bench_search_quality", "--quick", "--space", "tiny.yaml", "--seeds", "2",
                                      "--trials", "12", "--check", "6", "--short", "--out", str(out)])
    bq.main()
    text = capsys.readouterr().out
    rows = {line.split()[0]: line for line in text.splitlines() if line.startswith("  ") and "+-" in line}
    assert set(rows) == {"random", "nsga2", "tpe", "predictor"}
    assert rows["random"].count("+-") == 2  # HV@6 and HV@12
    for s in ("nsga2", "tpe", "predictor"):
        assert rows[s].count("+-") == 1 and rows[s].rstrip().endswith("-")  # HV@6 only
    for s, n in (("random", 12), ("nsga2", 6), ("tpe", 6), ("predictor", 6)):
        for seed in range(2):
            lines = (out / f"{s}-s{seed}" / "trials.jsonl").read_text().splitlines()
            assert len(lines) == n
    assert "goal: best sampler at 6" in text and "random at 12" in text and "Welch p" in text
    assert "trials to reach random's HV@12" in text and "goal: predictor needs at most 25" in text
    assert "tau on unseen trials after 20 trials" in text


def test_matched_latency_is_the_measured_one_when_measured(synth, monkeypatch):
    import nas.latency
    from nas.latency.measure import Measurement

    study, space = synth
    members = bf.family_members(study, space, ["s"])
    models, _ = bf.plan_models(members, space, bf.reference_genotypes(space, ("mobilenetv2_100", "mixnet_s")))
    for i, m in enumerate(models):
        m.latency_ms = m.predicted_ms = 10.0 + i  # predicted: the member (i=0) is the fastest
        m.accs = [0.5, 0.52, 0.51] if m.kind == "searched" else [0.8, 0.82, 0.81]
    measured = {m.key: 20.0 - i for i, m in enumerate(models)}  # measured: the member is the slowest
    monkeypatch.setattr(nas.latency, "measure_genotype", lambda g, target, n, unit_ms=None: Measurement(
        ms=measured[next(m.key for m in models if m.genotype is g)], iqr=0.0, n=10, raw_ms=0.0, ci=0.01))
    assert bf.latency_word(models) == "predicted"
    before, _ = bf.latency_table_text(models)
    assert "every reference variant is slower" in before  # on predictions nothing is as fast as the member
    lines = []
    bf.measure_latency(models, type("T", (), {"target": "torch-cpu", "unit_ms": 0.26})(), 10, log=lines.append)
    assert len(lines) == len(models) and all(m.measured and m.latency_ms == measured[m.key] for m in models)
    assert [m.predicted_ms for m in models] == [10.0 + i for i in range(len(models))]
    text, verdicts = bf.latency_table_text(models)
    assert verdicts[0]["reference"] is not None and verdicts[0]["verdict"] == "worse"
    assert bf.latency_word(models) == "measured"
    assert "matched measured latency" in bf.headline([], verdicts, bf.latency_word(models))
    assert models[0].row()["predicted_latency_ms"] == 10.0 and models[0].row()["latency_measured"]
