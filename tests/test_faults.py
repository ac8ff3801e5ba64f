"""Crashes: worker processes dying (bounded retries), the driver SIGKILLed in cost-only mode, resume.

The training-mode SIGKILL + resume test is in tests/test_search.py; the multi-node case (a whole worker node
killed mid-search) in tests/test_cluster.py. Here:

- a trial whose worker process dies is retried by Ray Tune (``FailureConfig``), at most ``TRIAL_RETRIES``
  times; one that keeps dying is recorded as ``failed`` and the search still finishes every trial;
- the driver SIGKILLed during a cost-only search (records flowing fast, the Optuna storage lagging behind on
  its writer thread) resumes with every record kept byte for byte, trial numbers contiguous, the storage
  repaired to agree with trials.jsonl, and nothing left RUNNING.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from nas.search.searcher import outcome

REPO = Path(__file__).resolve().parent.parent
TINY = REPO / "search_spaces" / "tiny.yaml"


def _records(study_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (study_dir / "trials.jsonl").read_text().splitlines() if line.strip()]


def _wait_for_storage_writer(study_dir: Path, timeout: float = 120.0) -> None:
    """A killed driver's storage writer lives on until it has stored what it received, holding the study lock
    (as ``nas search`` itself does on resume, wait for it before reading the storage)."""
    import fcntl

    fd = os.open(study_dir / ".lock", os.O_RDWR)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                fcntl.flock(fd, fcntl.LOCK_UN)
                return
            except OSError:
                if time.monotonic() > deadline:
                    msg = f"the storage writer still holds {study_dir / '.lock'} after {timeout} s"
                    raise AssertionError(msg) from None
                time.sleep(0.1)
    finally:
        os.close(fd)


def _storage_trials(study_dir: Path, name: str) -> list[optuna.trial.FrozenTrial]:
    if (study_dir / "journal.log").exists():
        storage = JournalStorage(JournalFileBackend(str(study_dir / "journal.log")))
    else:
        storage = f"sqlite:///{study_dir / 'study.db'}"
    return optuna.load_study(study_name=name, storage=storage).get_trials()


# -- worker processes dying ----------------------------------------------------------------------------------------


def _dying_trainable(marker_dir: str):
    """A trainable whose first trial to start always kills its worker process; every other trial kills its
    worker on its first attempt only. Each attempt leaves a marker file ``<number>.<attempt>``."""

    def trainable(config: dict) -> None:
        import time

        from ray import tune

        d = Path(marker_dir)
        n = config["number"]
        attempt = len(list(d.glob(f"{n}.*")))
        (d / f"{n}.{attempt}").write_text(str(time.time()))
        claim = d / f".claim{n}"
        claim.write_text(str(n))
        with contextlib.suppress(FileExistsError):
            os.link(claim, d / "doomed")  # atomic: the first trial to get here is the doomed one
        doomed = (d / "doomed").read_text() == str(n)
        if doomed or attempt == 0:
            os._exit(1)  # what an OOM kill or a lost node looks like to Tune: the actor is gone
        tune.report({"val_accuracy": 0.5, "best_accuracy": 0.5, "epoch": 1, "final": True, "node": "test",
                     "history": [{"epoch": 1, "val_accuracy": 0.5, "train_loss": 1.0}]})

    return trainable


@pytest.mark.slow  # three worker processes start one after the other: about a minute on 2 cores
def test_dead_workers_are_retried_and_the_retries_are_bounded(local_ray, tmp_path):
    from nas.search.driver import SearchOptions, run_search
    from nas.search.tuning import TRIAL_RETRIES

    markers = tmp_path / "markers"
    markers.mkdir()
    s = run_search(SearchOptions(space=TINY, trials=4, concurrency=2, out=tmp_path,
                                 wandb="disabled"), trainable=_dying_trainable(str(markers)))
    recs = _records(s.study_dir)
    assert sorted(r["number"] for r in recs) == list(range(4))  # every requested trial is recorded

    attempts: dict[int, int] = {}
    for m in markers.glob("*.*"):
        if not m.name.startswith("."):
            n = int(m.name.split(".")[0])
            attempts[n] = attempts.get(n, 0) + 1
    doomed = int((markers / "doomed").read_text())
    assert attempts[doomed] == 1 + TRIAL_RETRIES  # bounded: given up after the retries
    by_number = {r["number"]: r for r in recs}
    assert by_number[doomed]["status"] == "failed"
    assert "worker" in by_number[doomed]["error"]
    for n, k in attempts.items():
        if n != doomed:
            assert k == 2, attempts  # died once, retried once, done
            assert by_number[n]["status"] == "complete" and by_number[n]["accuracy"] == 0.5
    trained = {n for n in attempts}
    assert all(by_number[n]["status"] in ("infeasible", "refused", "complete")
               or by_number[n]["duplicate_of"] is not None for n in by_number if n not in trained)

    states = {t.number: t.state for t in _storage_trials(s.study_dir, "tiny")}
    assert states[doomed] == TrialState.FAIL
    assert all(states[n] == TrialState.COMPLETE for n in attempts if n != doomed)
    assert TrialState.RUNNING not in states.values()


# -- the driver SIGKILLed in cost-only mode -----------------------------------------------------------------------


def _nas_search(out: Path, trials: int, storage: str) -> list[str]:
    exe = Path(sys.executable).with_name("nas")
    return [str(exe), "search", "--space", str(TINY), "--out", str(out), "--objective", "cost", "--trials",
            str(trials), "--storage", storage, "--quiet", "--wandb", "disabled"]


def _wait_for_records(path: Path, n: int, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_bytes().count(b"\n") >= n:
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    raise AssertionError(f"fewer than {n} records after {timeout} s")


@pytest.mark.parametrize("storage", ["sqlite", pytest.param("journal", marks=pytest.mark.slow)])
def test_sigkill_in_cost_only_mode_then_resume(storage, tmp_path):
    total = 40
    sd = tmp_path / "tiny"
    proc = subprocess.Popen(_nas_search(tmp_path, total, storage), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        _wait_for_records(sd / "trials.jsonl", 10, proc, timeout=120)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
    before = (sd / "trials.jsonl").read_bytes()
    n_before = before.count(b"\n")
    assert 10 <= n_before < total, "the kill came too late to test anything"
    _wait_for_storage_writer(sd)
    stored_before = len(_storage_trials(sd, "tiny"))

    done = subprocess.run(_nas_search(tmp_path, total, storage), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    after = (sd / "trials.jsonl").read_bytes()
    assert after.startswith(before)  # every finished record kept, byte for byte
    recs = _records(sd)
    numbers = [r["number"] for r in recs]
    assert len(numbers) == total == len(set(numbers))

    trials = _storage_trials(sd, "tiny")
    assert stored_before <= len(trials)
    states = {t.number: t for t in trials}
    assert not [t.number for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    objectives = [{"metric": "macs", "direction": "minimize"}]
    for r in recs:  # the storage agrees with trials.jsonl, including the trials it had not received
        t = states[r["number"]]
        state, values = outcome(r, objectives)
        assert t.state == state, (r["number"], t.state, state)
        assert t.values == values
        assert t.user_attrs.get("hash") == r["hash"]
    # a trial the storage had opened but that never finished is failed (its architecture is proposed again)
    assert all(t.state == TrialState.FAIL for t in trials if t.number not in set(numbers))


# -- memory of a long cost-only search ---------------------------------------------------------------------------

_MEMORY_PROBE = """
import json, sys, tempfile
from benchmarks.bench_costonly import Sampler
from nas.search.driver import SearchOptions, run_search
out = tempfile.mkdtemp()
sampler = Sampler(__import__("pathlib").Path(out) / "tiny" / "trials.jsonl", period=0.05)
sampler.start()
s = run_search(SearchOptions(space=sys.argv[1], trials=200, out=out, objective="cost", storage="journal",
                             wandb="disabled"))
sampler.stop()
print(json.dumps({"n": len(s.records), "rss100": sampler.rss_at(100), "rss200": sampler.rss_at(200)}))
"""


def test_cost_only_memory_stays_flat(tmp_path):
    """200 cost-only trials in a fresh process: RSS between trial 100 and trial 200 grows by little
    (benchmarks/bench_costonly.py measures 1,000 trials)."""
    r = subprocess.run([sys.executable, "-c", _MEMORY_PROBE, str(TINY)], cwd=REPO, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    m = json.loads(r.stdout.strip().splitlines()[-1])
    assert m["n"] == 200 and m["rss100"] and m["rss200"]
    assert m["rss200"] - m["rss100"] < 20, m  # MiB; a per-trial leak of 0.2 MiB would already fail


# -- a journal storage cut short by a crash -----------------------------------------------------------------------


def test_torn_journal_tail_is_refused_then_resumes_once_cut(tmp_path):
    """A crash mid-append leaves a partial last journal entry: resuming on top of it would glue the next entry
    onto it and corrupt the study for good. It is refused (nothing written), with the exact cut to make; after
    the cut, the study resumes and the storage agrees with trials.jsonl again."""
    from nas.errors import InputError
    from nas.search.driver import SearchOptions, run_search

    opts = dict(space=TINY, out=tmp_path, objective="cost", wandb="disabled")
    run_search(SearchOptions(trials=8, storage="journal", **opts))
    sd = tmp_path / "tiny"
    journal = sd / "journal.log"
    journal.write_bytes(journal.read_bytes()[:-25])
    before = journal.read_bytes(), (sd / "trials.jsonl").read_bytes()
    with pytest.raises(InputError, match="last entry is cut short") as e:
        run_search(SearchOptions(trials=12, **opts))
    assert (journal.read_bytes(), (sd / "trials.jsonl").read_bytes()) == before
    keep = int(str(e.value).split("truncate -s ")[1].split()[0])
    assert before[0][:keep].endswith(b"\n") and b"\n" not in before[0][keep:]
    os.truncate(journal, keep)

    s = run_search(SearchOptions(trials=12, **opts))
    recs = _records(sd)
    assert len(recs) == 12 and s.new_trials == 4 and (sd / "trials.jsonl").read_bytes().startswith(before[1])
    states = {t.number: t for t in _storage_trials(sd, "tiny")}
    for r in recs:
        state, values = outcome(r, [{"metric": "macs", "direction": "minimize"}])
        assert states[r["number"]].state == state and states[r["number"]].values == values
