"""Bad input across every entry point: exit 2, one clear line naming the file/field, nothing written or lost.

The space loader's own corpus (30+ broken space files) is in the space tests; here each kind of bad input is
pushed through every command that takes it: genotype files (describe, train --arch, export-best --arch),
data paths (train --data), space files (search, baselines), command-line values, and study directories
(search resume, pareto, plot, export-best) with a corrupt trials.jsonl or an unreadable Optuna storage.

Most cases call ``nas.cli.main`` in-process (fast); a few run the installed ``nas`` in a subprocess, so the
real console script, its exit status and its stderr are checked too. Typer's own usage errors (an int
option out of range, a non-number) exit 2 with Typer's short usage box, which names the option: accepted.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nas.cli import main

REPO = Path(__file__).resolve().parent.parent
MIXNET_S = REPO / "search_spaces" / "reference" / "mixnet_s.yaml"
TINY = REPO / "search_spaces" / "tiny.yaml"


# -- helpers -----------------------------------------------------------------------------------------------------


def run_main(args: list[str], monkeypatch: pytest.MonkeyPatch,
             capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    """``nas ARGS`` in this process: (exit status, stderr, stdout)."""
    monkeypatch.setattr(sys, "argv", ["nas", *map(str, args)])
    with pytest.raises(SystemExit) as e:
        main()
    out, err = capsys.readouterr()
    return (e.value.code if isinstance(e.value.code, int) else 1), err, out


def assert_one_line(err: str, *needles: str | Path) -> str:
    """stderr is one ``error: ...`` line (blank lines aside) naming every needle, without a traceback."""
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got:\n{err}"
    line = lines[0]
    assert line.startswith("error: "), line
    assert "Traceback" not in err
    for n in needles:
        assert str(n) in line, f"{n!r} not named in: {line}"
    return line


def assert_usage_error(err: str, option: str) -> None:
    """Typer's usage box: short, names the option, no traceback."""
    assert "Traceback" not in err
    assert option in err, err
    assert len(err.splitlines()) <= 8, err


def snapshot(root: Path) -> dict[str, str]:
    """Every file under ``root`` with a hash of its bytes (the study lock's PID aside)."""
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.name != ".lock":
            out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
        elif p.is_dir():
            out[str(p.relative_to(root)) + "/"] = ""
    return out


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory (relative defaults such as results/ and export/ land here)."""
    d = tmp_path / "work"
    d.mkdir()
    monkeypatch.chdir(d)
    return d


@pytest.fixture
def study(cost_study: Path) -> Path:
    """A copy of a real cost-only study (tests/conftest.py)."""
    return cost_study


# -- genotype files: describe, train --arch, export-best --arch --------------------------------------------------

_GENO = MIXNET_S.read_text()


def _genotype_cases() -> list[tuple[str, str | bytes | None, str]]:
    """(id, file content or None for a missing file, text the error must contain besides the path)."""
    return [
        ("missing", None, "not found"),
        ("empty", "", "top level"),
        ("broken-yaml", "name: x\nstages: [\n", "line"),
        ("not-a-mapping", "[1, 2]\n", "top level"),
        ("unknown-field", _GENO + "colour: red\n", "colour"),
        ("even-kernel", _GENO.replace("kernels: [3], act: relu}", "kernels: [4], act: relu}", 1), "kernels"),
        ("negative-resolution", _GENO.replace("resolution: 224", "resolution: -3"), "resolution"),
        ("bad-act", _GENO.replace("act: swish}", "act: bogus}", 1), "act"),
        ("string-width", _GENO.replace("out: 16, kernels", 'out: "abc", kernels', 1), "out"),
        ("python-tag", '!!python/object/apply:os.system ["touch PWNED"]\n', "YAML"),
        ("binary", bytes(range(256)) * 4, "cannot read"),
    ]


def _write_genotype(work: Path, content: str | bytes | None) -> Path:
    p = work / "arch.yaml"
    if isinstance(content, bytes):
        p.write_bytes(content)
    elif content is not None:
        p.write_text(content)
    return p


_GENOTYPE_COMMANDS = {
    "describe": lambda p: ["describe", p],
    "describe-json": lambda p: ["describe", p, "--json"],
    "train": lambda p: ["train", "--arch", p, "--json", "--save", "saved"],
    "export-best": lambda p: ["export-best", "--arch", p, "--out", "exported", "--no-measure"],
    "space-contains": lambda p: ["space", "contains", TINY, p],
}


@pytest.mark.parametrize("command", sorted(_GENOTYPE_COMMANDS))
@pytest.mark.parametrize("case", _genotype_cases(), ids=lambda c: c[0])
def test_bad_genotype_file(command, case, work, monkeypatch, capsys):
    _, content, needle = case
    p = _write_genotype(work, content)
    before = snapshot(work)
    code, err, _ = run_main(_GENOTYPE_COMMANDS[command](p), monkeypatch, capsys)
    assert code == 2
    assert_one_line(err, p.name, needle)
    assert snapshot(work) == before  # no saved/, exported/, and no PWNED
    assert not (work / "PWNED").exists()


def test_genotype_directory_given_as_file(work, monkeypatch, capsys):
    code, err, _ = run_main(["describe", work], monkeypatch, capsys)
    assert code == 2
    assert_one_line(err, work)


# -- data paths: train --data ------------------------------------------------------------------------------------


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def _make_data(work: Path) -> None:
    np.savez(work / "nokeys.npz", foo=np.zeros(3))
    np.savez(work / "flat.npz", x=np.zeros((4, 3)), y=np.zeros(4))
    np.savez(work / "objects.npz", x=np.array([{"a": 1}], dtype=object), y=np.zeros(1))
    (work / "notes.txt").write_text("not data\n")
    (work / "noclasses").mkdir()
    for name, payload in (("garbage", bytes(range(200))), ("evil", pickle.dumps(_Evil()))):
        d = work / name
        d.mkdir()
        (d / "data_batch_1").write_bytes(payload)


_DATA_CASES = {  # id: (train flags, text the error must contain)
    "missing": (["--data", "/nonexistent/cifar"], "/nonexistent/cifar"),
    "unknown-format": (["--data", "notes.txt"], "notes.txt"),
    "text-as-npz": (["--data", "notes.txt", "--dataset-format", "npz"], "notes.txt"),
    "npz-missing-arrays": (["--data", "nokeys.npz"], "nokeys.npz"),
    "npz-wrong-shape": (["--data", "flat.npz"], "flat.npz"),
    "npz-object-array": (["--data", "objects.npz"], "objects.npz"),
    "corrupt-cifar": (["--data", "garbage", "--dataset-format", "cifar10"], "data_batch_1"),
    "code-in-cifar-pickle": (["--data", "evil", "--dataset-format", "cifar10"], "data_batch_1"),
    "empty-imagefolder": (["--data", "noclasses", "--dataset-format", "imagefolder"], "noclasses"),
    "bad-format-flag": (["--data", "noclasses", "--dataset-format", "tfrecord"], "--dataset-format"),
    "save-onto-file": (["--save", "notes.txt"], "notes.txt"),
}


@pytest.mark.parametrize("output", ["--json", "--progress"])
@pytest.mark.parametrize("case_id", sorted(_DATA_CASES))
def test_bad_data_path(case_id, output, work, monkeypatch, capsys):
    _make_data(work)
    flags, needle = _DATA_CASES[case_id]
    before = snapshot(work)
    json_flag = ["--json"] if output == "--json" else []  # without it: the progress bar path
    code, err, _ = run_main(["train", "--arch", MIXNET_S, *json_flag, "--epochs", "1", *flags], monkeypatch, capsys)
    assert code == 2
    assert_one_line(err, needle)
    assert snapshot(work) == before
    assert not (work / "PWNED").exists()


# -- latency tables: lut show, describe --lut, a space's budgets.lut -------------------------------------------------

_LUT = {"version": 1, "target": {"name": "torch-cpu", "backend": "torch-cpu", "batch": 1, "threads": 1,
                                 "device": "cpu", "clock": "probe"},
        "device": {"cpu": "test"}, "space": "tiny", "num_classes": 10, "unit_ms": 0.3,
        "calibration": {"scale": 1.0, "offset_ms": 0.0, "networks": 0, "fit": "none"},
        "entries": {"stem|32|3|{}": {"ms": 0.1}}}

_LUT_CASES = {  # id: (file content or None for a missing file, text the error must contain)
    "missing": (None, "not found"),
    "not-json": ("{version: 1", "lut.json"),
    "not-an-object": ("[1, 2]", "top level"),
    "future-version": (json.dumps({**_LUT, "version": 99}), "version"),
    "negative-ms": (json.dumps({**_LUT, "entries": {"stem": {"ms": -1}}}), "entries"),
    "bad-calibration": (json.dumps({**_LUT, "calibration": {"scale": "x", "offset_ms": 0}}), "calibration.scale"),
    "bad-target": (json.dumps({**_LUT, "target": {**_LUT["target"], "backend": "tpu"}}), "target"),
}


def _lut_commands(p: Path, work: Path) -> dict[str, list]:
    space = work / "lat.yaml"
    space.write_text(TINY.read_text().replace("budgets: {macs: 1M, params: 60k}",
                                              f"budgets: {{macs: 1M, params: 60k, latency_ms: 5, lut: {p}}}"))
    return {"lut-show": ["lut", "show", p], "describe": ["describe", MIXNET_S, "--lut", p],
            "search": ["search", "--space", space, "--out", "out", "--objective", "cost"]}


def test_lut_template_is_valid(work, monkeypatch, capsys):
    p = work / "lut.json"
    p.write_text(json.dumps(_LUT))
    code, err, out = run_main(["lut", "show", p, "--json"], monkeypatch, capsys)
    assert code == 0, err  # so the cases below fail for their one defect


@pytest.mark.parametrize("command", ["lut-show", "describe", "search"])
@pytest.mark.parametrize("case_id", sorted(_LUT_CASES))
def test_bad_lut_file(command, case_id, work, monkeypatch, capsys):
    content, needle = _LUT_CASES[case_id]
    p = work / "lut.json"
    if content is not None:
        p.write_text(content)
    args = _lut_commands(p, work)[command]
    before = snapshot(work)
    code, err, _ = run_main(args, monkeypatch, capsys)
    assert code == 2
    assert_one_line(err, p.name, needle)
    assert snapshot(work) == before


def test_lut_for_another_target(work, monkeypatch, capsys):
    p = work / "lut.json"
    p.write_text(json.dumps(_LUT))
    code, err, _ = run_main(["lut", "show", p, "--target", "onnxruntime-cpu"], monkeypatch, capsys)
    assert code == 2
    assert_one_line(err, p.name, "target")


# -- command-line values -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("flags, option", [
    (["--sampler", "bogus"], "--sampler"),
    (["--wandb", "maybe"], "--wandb"),
    (["--objective", "speed"], "--objective"),
    (["--storage", "redis"], "--storage"),
    (["--study", "a/b"], "--study"),
    (["--study", ".."], "--study"),
])
def test_bad_search_flag(flags, option, work, monkeypatch, capsys):
    code, err, _ = run_main(["search", "--space", TINY, "--out", "out", *flags], monkeypatch, capsys)
    assert code == 2
    assert_one_line(err, option)
    assert list(work.iterdir()) == []  # no study directory was created


@pytest.mark.parametrize("flags, option", [
    (["--trials", "-1"], "--trials"),
    (["--trials", "0"], "--trials"),
    (["--trials", "many"], "--trials"),
    (["--concurrency", "0"], "--concurrency"),
    (["--concurrency", "-4"], "--concurrency"),
])
def test_search_usage_error(flags, option, work, monkeypatch, capsys):
    code, err, _ = run_main(["search", "--space", TINY, "--out", "out", *flags], monkeypatch, capsys)
    assert code == 2
    assert_usage_error(err, option)
    assert list(work.iterdir()) == []


@pytest.mark.parametrize("args, needle", [
    (["export-best"], "--study"),
    (["export-best", "--study", "s", "--arch", "a.yaml"], "--study"),
    (["train", "--arch", MIXNET_S, "--optimizer", "lbfgs"], "--optimizer"),
])
def test_bad_flag_combination(args, needle, work, monkeypatch, capsys):
    code, err, _ = run_main(args, monkeypatch, capsys)
    assert code == 2
    assert_one_line(err, needle)
    assert list(work.iterdir()) == []


# -- space files, across the commands that take one ---------------------------------------------------------------


@pytest.mark.parametrize("command", [
    lambda p: ["search", "--space", p, "--out", "out"],
    lambda p: ["search", "--space", p, "--out", "out", "--objective", "cost"],
    lambda p: ["baselines", "--space", p, "--study", "out/base"],
    lambda p: ["space", "validate", p],
    lambda p: ["space", "count", p],
    lambda p: ["space", "sample", p],
    lambda p: ["space", "contains", p, MIXNET_S],
    lambda p: ["lut", "build", "--space", p, "--out", "out/lut.json", "--no-cache"],
], ids=["search", "search-cost", "baselines", "space-validate", "space-count", "space-sample", "space-contains",
        "lut-build"])
@pytest.mark.parametrize("content, field", [
    (None, "not found"),
    ("name: x\nstages: [\n", "line"),
    (TINY.read_text().replace("budgets: {macs: 1M", "budgets: {macs: lots"), "budgets.macs"),
    (TINY.read_text() + "colour: red\n", "colour"),
], ids=["missing", "broken-yaml", "bad-budget", "unknown-field"])
def test_bad_space_file(command, content, field, work, monkeypatch, capsys):
    p = work / "space.yaml"
    if content is not None:
        p.write_text(content)
    before = snapshot(work)
    code, err, _ = run_main(command(p), monkeypatch, capsys)
    assert code == 2
    assert_one_line(err, p.name, field)
    assert snapshot(work) == before


# -- study directories ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("args", [
    ["export-best", "--study", "/nonexistent/study", "--no-measure"],
    ["pareto", "--study", "/nonexistent/study"],
    ["plot", "--study", "/nonexistent/study"],
], ids=["export-best", "pareto", "plot"])
def test_missing_study_directory(args, work, monkeypatch, capsys):
    code, err, _ = run_main(args, monkeypatch, capsys)
    assert code == 2
    assert_one_line(err, "/nonexistent/study")
    assert list(work.iterdir()) == []


def _corrupt_middle(study: Path) -> None:
    lines = (study / "trials.jsonl").read_text().splitlines(keepends=True)
    lines[2] = '{"number": 2, "hash": "abc", "genotype": {\n'
    (study / "trials.jsonl").write_text("".join(lines))


def _torn_tail(study: Path) -> None:
    # What a crash in the middle of an append leaves: the last record cut short, no newline.
    p = study / "trials.jsonl"
    data = p.read_bytes()
    last = data.rstrip(b"\n").rfind(b"\n") + 1
    p.write_bytes(data[: last + (len(data) - last) // 2])


def _not_a_record(study: Path) -> None:
    with open(study / "trials.jsonl", "a") as f:
        f.write('{"number": 99, "hash": "x", "genotype": {}, "status": "exploded"}\n')


def _duplicate_number(study: Path) -> None:
    p = study / "trials.jsonl"
    p.write_text(p.read_text() + p.read_text().splitlines(keepends=True)[0])


_CORRUPTIONS = {"corrupt-middle-line": (_corrupt_middle, "line 3"), "torn-last-line": (_torn_tail, "line 6"),
                "bad-status": (_not_a_record, "status"), "duplicate-number": (_duplicate_number, "line 7")}


@pytest.mark.parametrize("corruption", sorted(set(_CORRUPTIONS) - {"torn-last-line"}))
def test_search_resume_refuses_corrupt_trials(corruption, study, monkeypatch, capsys):
    # A torn last line is not refused: the search cuts it and says so (tests/test_hostile.py).
    corrupt, needle = _CORRUPTIONS[corruption]
    corrupt(study)
    before = snapshot(study.parent)
    code, err, _ = run_main(["search", "--space", TINY, "--out", study.parent, "--objective", "cost", "--trials", "9"],
                         monkeypatch, capsys)
    assert code == 2
    assert_one_line(err, study / "trials.jsonl", needle)
    assert snapshot(study.parent) == before  # not rewritten, not truncated, no new trial


@pytest.mark.parametrize("command", ["pareto", "plot", "export-best"])
@pytest.mark.parametrize("corruption", ["corrupt-middle-line", "bad-status", "duplicate-number"])
def test_study_readers_refuse_corrupt_trials(command, corruption, study, monkeypatch, capsys):
    corrupt, needle = _CORRUPTIONS[corruption]
    corrupt(study)
    before = snapshot(study.parent)
    extra = ["--no-measure", "--out", study.parent / "family"] if command == "export-best" else []
    code, err, _ = run_main([command, "--study", study, *extra], monkeypatch, capsys)
    assert code == 2
    assert_one_line(err, study / "trials.jsonl", needle)
    assert snapshot(study.parent) == before  # no plots, no family, nothing rewritten


def test_study_readers_skip_a_torn_last_line(study, monkeypatch, capsys):
    """A record cut short at the end (an append in progress, or a crash mid-write) is not a finished trial:
    read-only commands leave it out (``nas search`` cuts it and resumes, tests/test_hostile.py)."""
    _torn_tail(study)
    before = snapshot(study.parent)
    code, err, out = run_main(["pareto", "--study", study, "--json"], monkeypatch, capsys)
    assert code == 0, err
    assert json.loads(out)["n_trials"] == 5
    assert snapshot(study.parent) == before


def test_search_resume_refuses_unreadable_storage(study, monkeypatch, capsys):
    (study / "study.db").write_bytes(b"SQLite format 3\x00" + bytes(range(256)) * 20)
    before = snapshot(study.parent)
    code, err, _ = run_main(["search", "--space", TINY, "--out", study.parent, "--objective", "cost", "--trials", "9"],
                         monkeypatch, capsys)
    assert code == 2
    assert_one_line(err, study / "study.db", "Optuna storage")
    assert snapshot(study.parent) == before


def test_search_resume_refuses_other_space(study, work, monkeypatch, capsys):
    other = work / "tiny.yaml"
    other.write_text(TINY.read_text().replace("budgets: {macs: 1M", "budgets: {macs: 2M"))
    before = snapshot(study.parent)
    code, err, _ = run_main(["search", "--space", other, "--out", study.parent, "--objective", "cost"],
                         monkeypatch, capsys)
    assert code == 2
    assert_one_line(err, other, "different space")
    assert snapshot(study.parent) == before


def test_second_driver_on_a_study_is_refused(study, monkeypatch, capsys):
    from nas.results.store import StudyLock

    lock = StudyLock(study)
    lock.acquire()
    try:
        before = snapshot(study.parent)
        code, err, _ = run_main(["search", "--space", TINY, "--out", study.parent, "--objective", "cost",
                              "--trials", "9"], monkeypatch, capsys)
    finally:
        lock.release()
    assert code == 2
    assert_one_line(err, study.name, "another `nas search`")
    assert snapshot(study.parent) == before


# -- the real console script ------------------------------------------------------------------------------------------


def _nas(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("nas")
    return subprocess.run([str(exe), *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_console_script_bad_inputs(study, work):
    """Three kinds through the installed ``nas``: a genotype, a flag, a corrupt study."""
    _corrupt_middle(study)
    (work / "arch.yaml").write_text("name: x\nstages: [\n")
    before = snapshot(study.parent), snapshot(work)
    for args, needle in ((("describe", "arch.yaml"), "arch.yaml"),
                         (("search", "--space", TINY, "--sampler", "bogus"), "--sampler"),
                         (("search", "--space", TINY, "--out", study.parent, "--objective", "cost"), "line 3")):
        r = _nas(*args, cwd=work)
        assert r.returncode == 2, (args, r.stderr)
        assert_one_line(r.stderr, needle)
        assert r.stdout == ""
    assert (snapshot(study.parent), snapshot(work)) == before


def test_console_script_usage_error_names_option(work):
    r = _nas("search", "--space", TINY, "--concurrency", "0", cwd=work)
    assert r.returncode == 2
    assert_usage_error(r.stderr, "--concurrency")
    assert list(work.iterdir()) == []


def test_records_of_a_good_study_are_readable(study):
    """The fixture study itself is valid: the corruptions above are what the errors are about."""
    from nas.results.store import read_records

    recs = read_records(study / "trials.jsonl")
    assert [r["number"] for r in recs] == list(range(6))
    assert all(json.dumps(r.to_dict()) for r in recs)
