"""bench_gpu without a GPU: its arguments, the packing schedule, GPU sampling, the report and goals, the one-line
refusal without CUDA, the suite runner's skip; its trainer and latency helpers on the CPU (same code path)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _synth_study import make_study  # noqa: E402

from benchmarks import __main__ as runner  # noqa: E402
from benchmarks import bench_gpu as bg  # noqa: E402
from benchmarks import bench_ops  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


def test_arguments_pick_sections_and_settings(tmp_path):
    a = bg.parse_args([])
    assert a.sections == list(bg.SECTIONS) and a.setting == bg.FULL and a.json is None
    a = bg.parse_args(["--quick", "--only", "packing, lut", "--json", str(tmp_path / "o.json"), "--trials", "4"])
    assert a.sections == ["packing", "lut"] and a.setting["trials"] == 4 and a.json == tmp_path / "o.json"
    assert a.setting["lut"] == bg.QUICK["lut"] and bg.QUICK["trials"] == 8  # the shared dict is not changed
    for bad in (["--only", "packing,gpus"], ["--only", ","], ["--trials", "0"]):
        with pytest.raises(SystemExit) as e:
            bg.parse_args(bad)
        assert e.value.code == 2


def test_packing_schedule_puts_k_trials_on_one_gpu():
    pts = bg.packing_schedule(16, cpus=16)
    assert [(p.per_gpu, p.gpus_per_trial, p.concurrency, p.cpus_per_trial, p.trials) for p in pts] == [
        (1, 1.0, 1, 1.0, 16), (2, 0.5, 2, 1.0, 16), (4, 0.25, 4, 1.0, 16), (8, 0.125, 8, 1.0, 16)]
    assert [p.cpus_per_trial for p in bg.packing_schedule(8, cpus=4)] == [1.0, 1.0, 1.0, 0.5]  # all 8 fit on 4


def test_gpu_samples_are_parsed_and_summarised():
    assert bg.parse_smi("37, 1234\n") == (37.0, 1234.0)
    assert bg.parse_smi("[N/A], 12") is None and bg.parse_smi("") is None
    readings = iter([(10.0, 1000.0), (90.0, 5000.0), (50.0, 3000.0)])
    with bg.GpuSampler(period=0.001, read=lambda: next(readings, None)) as s:
        while len(s.samples) < 3:
            pass
    assert s.summary(idle_mib=1000.0, trials_at_once=4) == {"util_mean": 50.0, "util_max": 90.0,
                                                             "mem_peak_mib": 5000.0, "mem_per_trial_mib": 1000.0}
    assert bg.GpuSampler(read=lambda: None).summary(0.0, 1)["util_mean"] is None


def _figures() -> dict:
    pack = [{"per_gpu": k, "gpus_per_trial": 1 / k, "trained": 16, "wall_s": 60.0 / s, "trials_per_hour": 960.0 * s,
             "util_mean": 20.0 * k, "mem_per_trial_mib": 900.0} for k, s in ((1, 1.0), (2, 1.8), (4, 3.2), (8, 2.9))]
    mix = [{"speedup": v} for v in (1.5, 1.2, 1.4)]
    lut = {"within_10pct": 0.97, "kendall_tau": 0.93}
    return {"packing": pack, "mixconv": mix, "lut": lut}


def test_report_tables_and_goals():
    f = _figures()
    table = bg.packing_table(f["packing"]).splitlines()
    assert table[0].split() == ["per", "GPU", "GPU/trial", "trained", "wall", "s", "trials/h", "vs", "1", "util", "%",
                                "MiB/trial"]
    assert table[3].split() == ["4", "0.25", "16", "18.8", "3072", "3.20x", "80", "900"]
    assert bg.goals(f) == [
        "packing >= 3x trials/h of one trial per GPU: met (3.20x at 4 per GPU)",
        "MixConv >= 1.3x the naive split form: MISSED (median 1.40x, worst 1.20x)",
        "CUDA latency table within +-10% >= 95% and Kendall tau >= 0.9: met (97%, tau 0.930)"]
    assert bg.goals({"packing": f["packing"][:1]}) == []
    rows = [{"amp": True, "channels_last": True, "images_per_s": 4000.0, "max_memory_mib": 300.0},
            {"amp": False, "channels_last": False, "images_per_s": 2000.0, "max_memory_mib": 500.0}]
    assert bg.trainer_table(rows).splitlines()[2].split() == ["False", "False", "2000", "0.50x", "500"]


def test_without_cuda_it_says_so_in_one_line_and_exits_2(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    r = subprocess.run([sys.executable, "-m", "benchmarks.bench_gpu", "--json", str(tmp_path / "o.json")], cwd=REPO,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == bg.NO_GPU_EXIT and r.stdout == ""
    assert r.stderr.splitlines() == [f"bench_gpu: no CUDA device (torch {torch.__version__}, CUDA build none): "
                                     "nothing to measure; run it on a GPU machine"]
    assert not (tmp_path / "o.json").exists()


def test_main_runs_every_section_in_order_and_writes_the_figures(tmp_path, monkeypatch, capsys):
    """The orchestration that only a GPU machine runs for real, with each section's measurement faked."""
    from benchmarks import _machine

    f = _figures()
    calls: list[str] = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(_machine, "banner", lambda title: calls.append("banner") or {"gpu": "NVIDIA H200"})
    monkeypatch.setattr(bg, "run_packing", lambda points, space, work: calls.append(
        f"packing {[p.per_gpu for p in points]} {space.name}") or f["packing"])
    monkeypatch.setattr(bg, "trainer_speeds", lambda space, epochs, images: calls.append(f"trainer {epochs}") or [
        {"amp": True, "channels_last": True, "images_per_s": 1.0, "max_memory_mib": 1.0}])
    monkeypatch.setattr(bench_ops, "bench_mixconv", lambda reps, device: calls.append(f"mixconv {device}") or
                        f["mixconv"])
    monkeypatch.setattr(bg, "latency_check", lambda path, target, n, setting: calls.append(f"lut {target}") or {
        **f["lut"], "parts": 10, "build_s": 1.0, "n": n, "mape": 0.05, "worst": 0.2, "median_measured_ms": 1.0})
    out = tmp_path / "figures.json"
    assert bg.main(["--quick", "--json", str(out)]) == 0
    assert calls == ["banner", "packing [1, 2, 4, 8] mixnet.yaml", "trainer 3", "mixconv cuda", "lut cuda"]
    doc = json.loads(out.read_text())
    assert doc["machine"] == {"gpu": "NVIDIA H200"} and doc["quick"] is True and len(doc["packing"]) == 4
    assert doc["goals"] == bg.goals(f) and doc["lut"]["parts"] == 10 and doc["wall_s"] >= 0
    text = capsys.readouterr().out
    assert "3.20x" in text and "MixConv >= 1.3x the naive split form: MISSED" in text and str(out) in text


def test_the_suite_counts_a_gpu_benchmark_without_a_gpu_as_skipped(tmp_path, monkeypatch, capsys):
    pkg = tmp_path / "benchmarks"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "bench_gpu.py").write_text(textwrap.dedent("""
        import sys
        print("no CUDA", file=sys.stderr)
        sys.exit(2)
    """))
    (tmp_path / "search_spaces").mkdir()  # what the runner takes for a repository checkout
    monkeypatch.setattr(runner, "HERE", pkg)
    monkeypatch.setattr(runner, "ROOT", tmp_path)
    monkeypatch.setattr(runner, "ORDER", ("bench_gpu",))
    assert runner.main([]) == 0
    out = capsys.readouterr().out
    assert "skipped (no GPU)" in out and "1 skipped" in out


# -- the measuring helpers, on the CPU ------------------------------------------------------------------------


def test_trainer_speeds_and_mixconv_variants_run_on_any_device(one_thread, tmp_path, monkeypatch):
    import dataclasses

    from nas.space import load_space

    tiny = load_space("tiny.yaml")  # a small recipe: the code path is the GPU one with device="cpu"
    monkeypatch.setattr(bg, "_proxy", lambda space: dataclasses.replace(tiny.proxy, resolution=8, width=0.25,
                                                                       batch_size=32, precise_bn=0))
    rows = bg.trainer_speeds(Path("tiny.yaml"), epochs=2, images=64, device="cpu")
    assert [(r["amp"], r["channels_last"]) for r in rows] == [(True, True), (True, False), (False, True),
                                                              (False, False)]
    assert all(r["images_per_s"] > 0 for r in rows)
    fns = bench_ops.mixconv_variants(2, 12, 6, (3, 5, 7), 1)
    assert set(fns) == {"naive", "ours", "naive_cl", "padded", "ours_cl"}
    times = bench_ops._interleaved(fns, 2)
    assert all(t > 0 for t in times.values())


def test_latency_check_builds_a_table_and_compares(tmp_path):
    study = make_study(tmp_path)
    lut = bg.latency_check(study / "space.yaml", "torch-cpu", 4, {"rounds": 1, "burst_s": 0.002, "networks": 2})
    assert lut["n"] == 4 and lut["parts"] > 10 and 0 <= lut["within_10pct"] <= 1 and lut["mape"] >= 0
    assert -1 <= lut["kendall_tau"] <= 1 and lut["median_measured_ms"] > 0
    json.dumps(lut)
