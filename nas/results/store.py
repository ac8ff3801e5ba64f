"""The study directory on disk (``<out>/<study>/``): its files, its lock, and its trial records.

``trials.jsonl`` is the source of truth for finished trials: a record is
appended, flushed and fsync'ed before Optuna is told (:class:`RecordWriter`),
so after any crash the Optuna storage can only lag behind it (see
:mod:`nas.search.storage` for the storage and its repair on resume).
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nas.errors import InputError
from nas.io import AppendLog, atomic_write_json, drop_torn_line, read_text
from nas.results.record import TrialRecord

TRIALS_FILE = "trials.jsonl"
SPACE_FILE = "space.yaml"
SQLITE_FILE = "study.db"
JOURNAL_FILE = "journal.log"
LOCK_FILE = ".lock"
BASELINES_FILE = "baselines.json"
GROUP_SYNC_S = 0.2


@dataclass
class StudyDir:
    """Paths of one study directory (``<out>/<study>/``)."""

    root: Path

    @property
    def trials(self) -> Path:
        return self.root / TRIALS_FILE

    @property
    def space(self) -> Path:
        return self.root / SPACE_FILE

    @property
    def ray(self) -> Path:
        return self.root / "ray"

    @property
    def weights(self) -> Path:
        """Where trials keep their trained proxy weights (``<number>.pt``)."""
        return self.root / "weights"

    @property
    def baselines(self) -> Path:
        return self.root / BASELINES_FILE

    def storage_file(self, kind: str) -> Path:
        return self.root / (SQLITE_FILE if kind == "sqlite" else JOURNAL_FILE)

    def existing_storage(self) -> str | None:
        """``sqlite`` or ``journal`` when the directory already holds that storage."""
        for kind in ("sqlite", "journal"):
            if self.storage_file(kind).exists():
                return kind
        return None


# -- the lock --------------------------------------------------------------------------------------------------


class StudyLock:
    """An exclusive ``flock`` on ``<study>/.lock``: two searches on one study would number trials twice.

    The storage writer (:class:`nas.search.storage.Mirror`) inherits the lock, so after a driver is killed a
    new run waits (up to ``wait_s``) for the old writer to store what it had received instead of racing it; a
    live driver holding the lock is an error at once.
    """

    WAIT_S = 120.0

    def __init__(self, root: Path) -> None:
        self.path = root / LOCK_FILE
        self.fd: int | None = None

    def acquire(self, wait_s: float = WAIT_S) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError:
                if self._driver_alive() or time.monotonic() > deadline:
                    os.close(fd)
                    raise InputError(f"{self.path.parent}: study: another `nas search` is running on this study "
                                     f"(lock {self.path})") from None
                time.sleep(0.2)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self.fd = fd

    def _driver_alive(self) -> bool:
        try:
            pid = int(self.path.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def release(self) -> None:
        # Close, not LOCK_UN: the writer process shares this lock until it exits. Clearing the pid tells a
        # next run that whoever still holds the lock is that writer, worth waiting for.
        if self.fd is not None:
            os.ftruncate(self.fd, 0)
            os.close(self.fd)
            self.fd = None


# -- trials.jsonl ----------------------------------------------------------------------------------------------


def read_records(path: Path, skip_torn_tail: bool = False) -> list[TrialRecord]:
    """Finished-trial records; a line that is not a record is an InputError naming file and line.

    ``skip_torn_tail`` (readers of a study another process may be appending to): a last line that has no
    newline yet and is not JSON, an append in progress or cut short by a crash, is left out instead.
    """
    if not path.exists():
        return []
    records: list[TrialRecord] = []
    numbers: dict[int, int] = {}
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: cannot read ({e.__class__.__name__})") from None
    lines = text.split("\n")  # not splitlines(): a record may hold U+2028 and other line breaks of Unicode
    if lines[-1] == "":
        lines.pop()
    elif skip_torn_tail:
        try:
            json.loads(lines[-1])
        except (ValueError, RecursionError):
            lines.pop()
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = TrialRecord.from_dict(json.loads(line))
        except json.JSONDecodeError as e:
            raise InputError(f"{path}: line {i}: corrupt record ({e.msg}); repair or remove the line to resume, "
                             "nothing was changed") from None
        except RecursionError:
            raise InputError(f"{path}: line {i}: corrupt record (nested too deeply); repair or remove the line "
                             "to resume, nothing was changed") from None
        except ValueError as e:
            raise InputError(f"{path}: line {i}: {e}; repair or remove the line to resume, nothing was changed") \
                from None
        if rec.number in numbers:
            raise InputError(f"{path}: line {i}: trial number {rec.number} already recorded on line "
                             f"{numbers[rec.number]}")
        numbers[rec.number] = i
        records.append(rec)
    return records


def study_records(study_dir: Path) -> list[TrialRecord]:
    """The finished trials of a study, for readers: a torn last line (an append in progress, or a crash
    mid-write) is skipped, any other line that is not a record is an InputError naming the file and line."""
    return read_records(StudyDir(Path(study_dir)).trials, skip_torn_tail=True)


def repair_torn_tail(path: Path) -> str | None:
    """Before a search appends to ``trials.jsonl``: cut a last record that a crash left half-written (its trial
    was never told to Optuna, so it simply runs again); returns what to tell the user, or None."""
    torn = drop_torn_line(path)
    if not torn:
        return None
    return (f"{path}: removed a last record cut short while it was written ({len(torn):,} bytes, a crash or a full "
            "disk); that trial runs again")


class RecordWriter:
    """Appends one JSON line per finished trial (:class:`nas.io.AppendLog`: a line lands whole or not at all).

    ``durable`` records (trained trials) are fsync'ed before ``append``
    returns; answered ones (infeasible, duplicate, cost-only: milliseconds
    each) are fsync'ed in groups at most :data:`GROUP_SYNC_S` apart, since an
    fsync costs more than answering them. A killed process loses nothing
    either way (the data is in the OS); an OS crash may lose the last group of
    answered records, which a resumed search simply answers again. A full disk
    is a :class:`~nas.errors.DiskFullError` with the file as it was before the record.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        repair_torn_tail(path)  # the driver has already said so; a writer never appends to half a line
        self._log = AppendLog(path)
        self._dirty = False
        self._synced = time.monotonic()

    def append(self, record: TrialRecord, durable: bool = True) -> None:
        self._log.append(json.dumps(record.to_dict(), separators=(",", ":")) + "\n")
        self._dirty = True
        if durable or time.monotonic() - self._synced >= GROUP_SYNC_S:
            self.sync()

    def sync(self) -> None:
        if self._dirty:
            self._log.sync()
            self._dirty = False
        self._synced = time.monotonic()

    def close(self) -> None:
        try:
            self.sync()
        finally:
            self._log.close()


# -- baselines.json --------------------------------------------------------------------------------------------


def load_baselines(study_dir: Path) -> list[dict[str, Any]]:
    """The reference architectures ``nas baselines`` evaluated for a study (none when it has not run).

    The file is checked as a whole before anyone uses it: anything that is not what ``nas baselines``
    writes is one InputError line naming the file and the field."""
    p = StudyDir(Path(study_dir)).baselines
    if not p.exists():
        return []
    redo = "; run `nas baselines` again or remove the file"
    try:
        doc = json.loads(read_text(p, max_bytes=64 * 2**20, what="baselines file"))
    except (ValueError, RecursionError):
        raise InputError(f"{p}: top level: not JSON{redo}") from None
    refs = doc.get("references", []) if isinstance(doc, dict) else None
    if not isinstance(refs, list):
        raise InputError(f"{p}: references: expected a list of reference architectures{redo}")
    for i, ref in enumerate(refs):
        problem = _baseline_problem(ref)
        if problem:
            raise InputError(f"{p}: references[{i}].{problem}{redo}")
    return list(refs)


def _baseline_problem(ref: Any) -> str | None:
    if not isinstance(ref, dict):
        return "name: expected an object"
    if not isinstance(ref.get("name"), str):
        return "name: missing or not a string"
    for key in ("macs", "params"):
        v = ref.get(key)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not v >= 0:
            return f"{key}: missing or not a non-negative number"
    for key in ("accuracy", "latency_ms", "latency_ms_measured"):
        v = ref.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
            return f"{key}: not a number"
    if "genotype" in ref and not isinstance(ref["genotype"], dict):
        return "genotype: not an object"
    return None


def write_baselines(study_dir: Path, data: dict[str, Any]) -> Path:
    """Write ``baselines.json`` (what :func:`nas.export.evaluate_baselines` returns) into a study directory."""
    sd = StudyDir(Path(study_dir))
    sd.root.mkdir(parents=True, exist_ok=True)
    return atomic_write_json(sd.baselines, data, indent=1)
