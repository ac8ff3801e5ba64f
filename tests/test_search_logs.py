"""What a person watching ``nas search`` sees: the live view at 80 columns, and flushed lines off a terminal."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

from rich.console import Console

from nas.cli.progress import ProgressView, Tally
from nas.results.record import STATE_WORDS, TrialRecord
from nas.search.searcher import tier_rejected

REPO = Path(__file__).resolve().parent.parent


def _record(number: int, status: str, epochs: int = 1, duplicate_of: int | None = None) -> TrialRecord:
    return TrialRecord(number=number, hash=f"h{number}", genotype={}, status=status,
                       accuracy=None if status == "infeasible" else 0.5, macs=1_000_000, params=20_000,
                       epochs=0 if status == "infeasible" or duplicate_of is not None else epochs,
                       duplicate_of=duplicate_of)


def _info(target: int, records=()) -> SimpleNamespace:
    book = SimpleNamespace(records=list(records), front=[1, 2], hypervolume=0.25)
    return SimpleNamespace(book=book, settings=SimpleNamespace(trials=target), study="tiny", study_dir=Path("x"),
                           resumed=False, requeued=0, repaired=0)


def test_the_tally_reads_pruned_and_failed_as_part_of_the_trained():
    t = Tally([_record(0, "complete"), _record(1, "pruned"), _record(2, "pruned"), _record(3, "failed"),
               _record(4, "infeasible"), _record(5, "complete", duplicate_of=0)])
    assert t.line(2, 2, 0.25) == ("trained 4 (2 pruned, 1 failed) | over budget 1 | dup 1 | running 2 | "
                                  "front 2, HV 0.250")
    assert Tally([_record(0, "complete", epochs=0)]).line(0, 1, 0.5) == "costed 1 | front 1, HV 0.500"


def test_the_live_view_keeps_bar_count_and_time_at_80_columns():
    out = io.StringIO()
    console = Console(file=out, width=80, force_terminal=True, color_system=None, legacy_windows=False)
    view = ProgressView(console)
    view.search_started(_info(20))
    for i, status in enumerate(["complete", "pruned", "complete"]):
        view.trial_started(i, None)
        view.trial_finished(_record(i, status))
    view.trial_started(3, None)
    view._progress.refresh()
    lines = [ln for ln in re.split(r"[\r\n]", out.getvalue().replace("\x1b[2K", "\n")) if "tiny" in ln]
    last = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", lines[-1])
    assert len(last) <= 80 and "3/20" in last and re.search(r"\d:\d\d:\d\d", last) and "━" in last, last
    view.search_finished(None)
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out.getvalue())
    assert "trained 3 (1 pruned) | running 1 | front 2, HV 0.250" in text


def test_off_a_terminal_each_trial_is_a_line_and_long_trials_a_heartbeat():
    out = io.StringIO()
    view = ProgressView(Console(file=out, width=80, force_terminal=False), heartbeat_s=0.2)
    view.search_started(_info(3))
    view.trial_started(0, None)
    view.trial_epoch(0, 2, {"val_accuracy": 0.875})
    time.sleep(0.6)
    view.trial_finished(_record(0, "complete", epochs=2))
    view.search_finished(None)
    lines = out.getvalue().splitlines()
    assert any("trial 0 epoch 2 87.5%" in ln and "[0/3]" in ln for ln in lines), lines  # the heartbeat
    done = [ln for ln in lines if "trial 0 trained" in ln]
    assert len(done) == 1 and "[1/3]" in done[0] and "acc 50.00%" in done[0] and len(done[0]) > 80  # not wrapped
    assert lines[-1].endswith("done: trained 1 | front 2, HV 0.250")


def test_a_search_piped_to_a_file_writes_each_trial_as_it_finishes(tmp_path):
    """No terminal (SLURM, Kubernetes, `| tee`): a flushed line per finished trial, read while the search runs."""
    log = tmp_path / "search.log"
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "PYTHONUNBUFFERED")}
    cmd = [sys.executable, "-m", "nas.cli", "search", "--space", "tiny.yaml", "--trials", "4", "--concurrency", "1",
           "--out", str(tmp_path), "--wandb", "disabled", "--sampler", "random"]
    trials = tmp_path / "tiny" / "trials.jsonl"
    seen_running: dict[int, int] = {}  # trial -> records on disk when its line was first read, search still running
    with open(log, "w") as f:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=f, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 400
            while proc.poll() is None and time.monotonic() < deadline:
                text = log.read_text()
                n_records = len(trials.read_text().splitlines()) if trials.exists() else 0
                for m in re.finditer(r"\] trial (\d+) ", text):
                    seen_running.setdefault(int(m.group(1)), n_records)
                time.sleep(0.2)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.wait() == 0, log.read_text()[-3000:]
    records = [json.loads(line) for line in trials.read_text().splitlines()]
    lines = log.read_text().splitlines()
    for r in records:  # one line per finished trial, with its status
        assert sum(f"] trial {r['number']} {STATE_WORDS[r['status']]}" in ln for ln in lines) == 1, lines
    assert len([r for r in records if not tier_rejected(r)]) == 4  # proposals refused for their tier: extra
    # lines came out as trials finished, not all at once at the end: the first finished trial's line was read
    # while the search still had trials to finish
    first = records[0]["number"]
    assert first in seen_running and seen_running[first] < 4, (seen_running, lines)
