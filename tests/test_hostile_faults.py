"""A full disk and SIGTERM at shutdown (issue 21): one line, nothing half-written, nothing lost, no Ray left over.

* Disk full, injected: ``os.write`` on ``trials.jsonl`` writes part of a record and then fails with ``ENOSPC``
  (what the kernel does when a disk fills mid-write). The search stops with one ``disk full`` line, the file
  holds only whole records, and once there is room the same command resumes and finishes with every
  earlier record byte for byte.
* Disk full, real (as root, on a small tmpfs): a search that starts on a full disk says "disk full" (not
  "unreadable Optuna storage"), and one whose disk fills mid-run resumes once space is freed.
* SIGTERM just after the last trial, during the plots, and twice during Ray's shutdown: a clear line, the
  plots written, the study complete or resumable, and no Ray process (raylet, GCS, dashboard and runtime-env
  agents) left running.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_bad_input import assert_one_line, run_main  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
TINY = REPO / "search_spaces" / "tiny.yaml"


def _lines(p: Path) -> list[dict]:
    text = p.read_text()
    assert text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


class _FullAt:
    """``os.write`` as on a disk that fills at byte ``at`` of ``path``: the write crossing it is cut short (the
    kernel's short write) and every later one fails with ENOSPC, until :attr:`full` is cleared."""

    def __init__(self, path: Path, at: int) -> None:
        self.path, self.at, self.full, self.hits = str(path), at, False, 0
        self._write = os.write

    def __call__(self, fd: int, data: bytes) -> int:
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            target = ""
        if target != self.path:
            return self._write(fd, data)
        if self.full:
            self.hits += 1
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        size = os.fstat(fd).st_size
        if size + len(data) <= self.at:
            return self._write(fd, data)
        self.full = True
        return self._write(fd, data[:max(1, self.at - size)])


@pytest.mark.timeout(180)
def test_disk_full_mid_record_then_resume_loses_nothing(tmp_path, monkeypatch, capsys):
    out = tmp_path / "results"
    trials = out / "tiny" / "trials.jsonl"
    args = ["search", "--space", TINY, "--out", out, "--objective", "cost", "--trials", "40", "--wandb", "disabled"]
    code, err, _ = run_main(args[:-4] + ["--trials", "12", "--wandb", "disabled"], monkeypatch, capsys)
    assert code == 0, err
    before = trials.read_bytes()
    full = _FullAt(trials, len(before) + 5 * (len(before) // 12) + 321)  # in the middle of the 6th new record
    monkeypatch.setattr(os, "write", full)
    t0 = time.perf_counter()
    code, err, _ = run_main(args, monkeypatch, capsys)
    took = time.perf_counter() - t0
    monkeypatch.setattr(os, "write", full._write)
    assert code == 2 and full.hits >= 1
    assert_one_line(err, trials, "disk full")
    assert took < 30
    kept = _lines(trials)  # only whole records: the torn one was cut back
    assert [r["number"] for r in kept] == list(range(len(kept))) and 12 < len(kept) < 40
    assert trials.read_bytes().startswith(before)
    half = trials.read_bytes()

    code, err, _ = run_main(args, monkeypatch, capsys)  # room again: the same command
    assert code == 0, err
    assert trials.read_bytes().startswith(half)
    assert [r["number"] for r in _lines(trials)] == list(range(40))


def _study_storage_states(study: Path) -> list[str]:
    import optuna

    s = optuna.load_study(study_name=study.name, storage=f"sqlite:///{study / 'study.db'}")
    return [t.state.name for t in s.get_trials()]


@pytest.fixture
def tmpfs(tmp_path: Path):
    """A 32 MB tmpfs (root only: elsewhere the injected failure above covers the writes). Once freed it must hold
    the whole study: the SQLite storage with a WAL of up to ~4 MB and the plots with plotly.min.js (4.8 MB)."""
    d = tmp_path / "disk"
    d.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", str(d)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.strip() or 'not root'})")
    try:
        yield d
    finally:
        subprocess.run(["umount", "-l", str(d)], check=False)


def _fill(disk: Path, leave: int) -> Path:
    """Fill ``disk`` until ``leave`` bytes are free; returns the filler file."""
    filler = disk / "filler"
    st = os.statvfs(disk)
    size = max(0, st.f_bavail * st.f_frsize - leave)
    with open(filler, "wb") as f:
        f.write(b"\0" * size)
    return filler


# slow: in a full-suite CI run (2026-12-02, one of several) the resume after freeing the disk failed once with
# Optuna's StorageInternalError, whose SQLite cause was not shown then (the writer now reports it); 9 runs alone,
# 3 of them beside two busy cores, passed. The injected disk-full test above covers the resume in the default run.
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_real_full_disk_at_start_and_mid_run(tmpfs, monkeypatch, capsys):
    from nas import io

    out = tmpfs / "results"
    args = ["search", "--space", TINY, "--out", out, "--objective", "cost", "--trials", "300", "--wandb", "disabled"]
    filler = _fill(tmpfs, 0)
    code, err, _ = run_main(args, monkeypatch, capsys)
    assert code == 2
    assert_one_line(err, "disk full")
    assert "Optuna storage" not in err and not out.exists()

    filler.unlink()
    monkeypatch.setattr(io, "MIN_FREE_BYTES", 64 * 1024)
    filler = _fill(tmpfs, 200 * 1024)  # room for the study's start and some records, not for 300 of them
    code, err, _ = run_main(args, monkeypatch, capsys)
    assert code == 2, err
    assert_one_line(err, "disk full")
    study = out / "tiny"
    half = (study / "trials.jsonl").read_bytes()
    assert half.endswith(b"\n") and len(half.splitlines()) < 300

    filler.unlink()
    code, err, _ = run_main(args, monkeypatch, capsys)
    assert code == 0, err
    assert (study / "trials.jsonl").read_bytes().startswith(half)
    assert [r["number"] for r in _lines(study / "trials.jsonl")] == list(range(300))
    assert _study_storage_states(study) == ["COMPLETE"] * 300


# -- SIGTERM while a search shuts down -------------------------------------------------------------------------------

_DRIVER = r'''
import os, signal, sys
from nas import cli

phase = sys.argv[1]
term = lambda: os.kill(os.getpid(), signal.SIGTERM)
if phase == "last-trial":
    from nas.results.book import StudyBook
    add = StudyBook.add
    def add_then_term(self, record):
        add(self, record)
        term()
    StudyBook.add = add_then_term
elif phase == "plots":
    from nas.tracking import StudyTracker
    finished = StudyTracker.search_finished
    def term_then_finish(self, summary):
        term()
        finished(self, summary)
    StudyTracker.search_finished = term_then_finish
elif phase == "ray-shutdown":
    import ray
    shutdown = ray.shutdown
    def twice_then_shutdown(*a, **k):
        term()
        term()  # a second signal aborts, but never half-way through Ray's shutdown
        return shutdown(*a, **k)
    ray.shutdown = twice_then_shutdown
sys.argv = ["nas", "search", "--space", sys.argv[2], "--out", sys.argv[3], "--trials", "1", "--concurrency", "1",
            "--wandb", "disabled"]
cli.main()
'''


def _marked(mark: str) -> list[str]:
    """Processes (other than zombies) whose environment holds ``mark``: this test's driver and all it started."""
    found = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            if mark.encode() in (d / "environ").read_bytes() and "Z" not in (d / "stat").read_text().split()[2]:
                found.append(f"{d.name} {(d / 'cmdline').read_bytes()[:80]!r}")
        except OSError:
            continue
    return found


@pytest.mark.timeout(300)
@pytest.mark.parametrize("phase", ["last-trial", "plots", "ray-shutdown"])
def test_sigterm_at_shutdown_leaves_plots_and_no_ray_process(phase, tmp_path):
    if not Path("/proc/self/environ").exists():
        pytest.skip("needs /proc to find the Ray processes")
    mark = f"NAS_HOSTILE_{uuid.uuid4().hex}"
    out = tmp_path / "results"
    env = {**os.environ, "NAS_TEST_MARK": mark, "PYTHONPATH": str(REPO)}
    r = subprocess.run([sys.executable, "-c", _DRIVER, phase, str(TINY), str(out)], env=env, capture_output=True,
                       text=True, timeout=240, cwd=tmp_path)
    deadline = time.monotonic() + 15
    while _marked(mark) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _marked(mark) == [], "Ray processes left behind"
    assert r.returncode == 130, r.stderr[-2000:]
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert "Traceback" not in r.stderr
    said = "aborted" if phase == "ray-shutdown" else "interrupted"
    assert any(ln.startswith(said) and "run the same command again" in ln for ln in lines), r.stderr[-2000:]
    study = out / "tiny"
    assert [rec["number"] for rec in _lines(study / "trials.jsonl")] == [0]  # the trial finished is kept
    if phase != "ray-shutdown":
        assert (study / "pareto.html").stat().st_size > 0 and (study / "pareto.png").stat().st_size > 0
