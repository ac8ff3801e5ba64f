"""The Optuna storage of a study (``study.db`` or ``journal.log``) and the process that mirrors trials to it.

Two copies of the Optuna study exist while a search runs. The sampler works on
an in-memory study, because Optuna's relational storage writes every
parameter with a couple of SQL round trips (a mixnet.yaml architecture has
~110 parameters: 0.1-0.5 s per trial in SQLite), which would make answering
an over-budget proposal cost far more than the 10 ms goal. Every trial is
mirrored, in order, to the storage file by a writer process
(:class:`Mirror`), so trial numbers agree between the two copies,
``optuna-dashboard`` shows the study live, and a resumed run reloads it.

``trials.jsonl`` (:mod:`nas.results.store`) is the source of truth for
finished trials, so the storage can only lag behind it after a crash;
:func:`nas.search.resume.reconcile` repairs the lag when a study is resumed.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import pickle
import queue
import struct
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import optuna
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from nas.errors import DiskFullError, InputError
from nas.io import disk_full, is_disk_full
from nas.results.optuna_compat import trial_id
from nas.results.store import StudyDir


def open_storage(sd: StudyDir, kind: str) -> BaseStorage:
    """The study's storage file (``study.db`` or ``journal.log``); a file that is not one is an InputError."""
    path = sd.storage_file(kind)
    if kind == "journal":
        _check_journal_tail(path)
    try:
        if kind == "sqlite":
            return RDBStorage(f"sqlite:///{path.resolve()}", engine_kwargs={"connect_args": {"timeout": 60}})
        return JournalStorage(JournalFileBackend(str(path.resolve())))
    except Exception as e:  # Optuna raises several types for a foreign or corrupt file
        if is_disk_full(e):  # SQLite says "disk I/O error" or "database or disk is full": not a corrupt file
            raise disk_full(path, "opening the Optuna storage") from None
        raise InputError(f"{path}: unreadable Optuna storage ({e.__class__.__name__}: "
                         f"{' '.join(str(e).split())[:160]})") from None


def _check_journal_tail(path: Path) -> None:
    """A journal whose last entry was cut short (a crash mid-append) is refused before anything is appended.

    Optuna skips such a tail when reading, but its next append would glue onto it and leave a corrupt line
    in the middle of the journal, which makes the whole study unreadable from then on.
    """
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return
    if size == 0:
        return
    with open(path, "rb") as f:
        f.seek(max(0, size - 65536))
        tail = f.read()
    if tail.endswith(b"\n"):
        return
    cut = tail.rfind(b"\n")
    keep = size - len(tail) + cut + 1 if cut >= 0 else (0 if size <= 65536 else None)
    remedy = f"`truncate -s {keep} {path}` drops it" if keep is not None else "remove it"
    raise InputError(f"{path}: the last entry is cut short (a crash while writing?); {remedy} (trials.jsonl "
                     "restores what it held) to resume, nothing was changed")


def load_or_create(storage: BaseStorage, name: str, directions: Sequence[str], metric_names: Sequence[str],
                   source: Path) -> optuna.Study:
    """The persistent study; its objectives must be those of this run."""
    try:
        study = optuna.create_study(storage=storage, study_name=name, directions=list(directions),
                                    load_if_exists=True)
    except Exception as e:
        if is_disk_full(e):
            raise disk_full(source, "opening the Optuna storage") from None
        raise InputError(f"{source}: unreadable Optuna storage ({e.__class__.__name__}: "
                         f"{' '.join(str(e).split())[:160]})") from None
    have = [d.name.lower() for d in study.directions]
    want = [StudyDirection.MAXIMIZE.name.lower() if d == "maximize" else "minimize" for d in directions]
    stored_names = study.metric_names
    if have != want or (stored_names and list(stored_names) != list(metric_names)):
        shown = ", ".join(stored_names or have)
        raise InputError(f"{source}: objectives: the study was created with objectives ({shown}), this run asks for "
                         f"({', '.join(metric_names)}); use another --study or the same objectives")
    if not stored_names:
        study.set_metric_names(list(metric_names))
    return study


PROGRESS_S = 5.0  # how often a long catch-up of the storage writer is reported


class Mirror:
    """Copies trials of the in-memory study to the storage file, in order, from a writer process.

    ``upsert(frozen)`` creates the trial the first time its number is seen and
    afterwards writes what changed (parameters, attributes, state and values).
    The writer is a separate process (``python -m nas.search.storage``, fed
    pickled trials on its stdin by a feeder thread) because Optuna's
    relational storage spends 0.1-0.5 s of Python per trial in SQLAlchemy: on
    a thread that would hold the GIL the Ray Tune event loop needs. Updates
    queued behind a slow write are merged per trial (a trial created and
    finished while the writer was busy is written once). When the driver dies
    the pipe closes, and the writer stores what it has received and exits. A
    failed write is raised on the next call or on :meth:`close`.
    """

    def __init__(self, sd: StudyDir, kind: str, study_name: str, directions: Sequence[str] = (),
                 metric_names: Sequence[str] = (), pass_fds: Sequence[int] = ()) -> None:
        # ``directions``: create the study if the storage lacks it (a new study is created by the writer, off the
        # driver's critical path). Its own session: a Ctrl-C at the terminal is the driver's to handle; the writer
        # stops when its stdin closes.
        spec = json.dumps({"directions": list(directions), "metric_names": list(metric_names)})
        cmd = [sys.executable, "-m", "nas.search.storage", str(sd.root), kind, study_name, spec]
        self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      start_new_session=True, pass_fds=tuple(pass_fds))
        self._items: queue.Queue[FrozenTrial | None] = queue.Queue()
        self._sent = 0
        self._merged = 0
        self._processed = 0
        self._error: str | None = None
        self._acked = threading.Condition()
        self._feeder = threading.Thread(target=self._feed, name="nas-mirror-feed", daemon=True)
        self._reader = threading.Thread(target=self._read, name="nas-mirror-read", daemon=True)
        self._feeder.start()
        self._reader.start()

    def upsert(self, frozen: FrozenTrial) -> None:
        self._raise()
        self._items.put(_snapshot(frozen))
        self._sent += 1

    def pending(self) -> int:
        return self._sent - self._merged - self._processed

    def close(self, progress: Callable[[int], None] | None = None, every_s: float = PROGRESS_S) -> None:
        """Wait until every update is committed, then let the writer exit on its own; ``progress(left)`` is
        told the updates still to store every ``every_s`` while it waits (a long cost-only run's catch-up).

        Its shutdown (interpreter exit, SQLite checkpoint) overlaps whatever comes next; it keeps the
        study lock until it is gone, so a following run on the study waits for it.
        """
        self._items.put(None)
        self._feeder.join()
        with self._acked:
            while not self._acked.wait_for(lambda: self.pending() <= 0 or not self._reader.is_alive(), every_s):
                if progress is not None:
                    progress(self.pending())
        if self.pending() > 0:  # the writer died before storing everything
            self._reader.join()
            self._proc.wait()
            if self._error is None:
                err = self._proc.stderr.read().decode(errors="replace").strip().splitlines()
                self._error = f"exit status {self._proc.returncode}" + (f" ({err[-1]})" if err else "")
        threading.Thread(target=self._reap, name="nas-mirror-reap", daemon=True).start()
        self._raise()

    def wait(self, timeout: float) -> None:
        """After :meth:`close`: wait (at most ``timeout`` s) for the writer to exit, so that the storage file is
        no longer written to when the search returns."""
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._proc.wait(timeout)

    def _reap(self) -> None:
        self._reader.join()
        self._proc.wait()
        self._proc.stderr.close()

    def _feed(self) -> None:
        pipe = self._proc.stdin
        done = False
        try:
            while not done:
                batch: dict[int, FrozenTrial] = {}  # latest snapshot per trial, in order of first appearance
                item = self._items.get()
                while True:
                    if item is None:
                        done = True
                        break
                    self._merged += item.number in batch
                    batch[item.number] = item
                    try:
                        item = self._items.get_nowait()
                    except queue.Empty:
                        break
                for frozen in batch.values():
                    data = pickle.dumps(frozen, protocol=pickle.HIGHEST_PROTOCOL)
                    pipe.write(struct.pack("<I", len(data)) + data)
                pipe.flush()
        except (BrokenPipeError, OSError):
            pass  # the writer died; its status and message are reported by close()
        finally:
            with contextlib.suppress(OSError):
                pipe.close()

    def _read(self) -> None:
        for line in self._proc.stdout:
            text = line.decode(errors="replace").strip()
            if text != "ok" and self._error is None:
                self._error = text.removeprefix("error ")
            with self._acked:
                self._processed += 1
                self._acked.notify_all()
        self._proc.stdout.close()
        with self._acked:
            self._acked.notify_all()

    def _raise(self) -> None:
        if self._error is not None:
            _, full, rest = self._error.partition("DiskFullError: ")
            if full:  # the writer ran out of space: one line, and trials.jsonl still holds every result
                raise DiskFullError(rest.rstrip(")"))
            raise RuntimeError(f"writing the Optuna storage failed: {self._error}")


def _writer_main(root: str, kind: str, study_name: str, spec: str) -> None:
    """The mirror's writer process: framed pickled trials on stdin, one ``ok``/``error ...`` line each."""
    with contextlib.suppress(OSError):
        os.nice(10)  # background work: the driver and the trials come first
    storage = open_storage(StudyDir(Path(root)), kind)
    if isinstance(storage, RDBStorage) and storage.engine.dialect.name == "sqlite":
        _fast_sqlite(storage)
    new = json.loads(spec)
    if new["directions"]:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.create_study(storage=storage, study_name=study_name, directions=new["directions"],
                                    load_if_exists=True)
        if new["metric_names"] and not study.metric_names:
            study.set_metric_names(new["metric_names"])
    writer = _TrialWriter(storage, storage.get_study_id_from_name(study_name))
    src, out = sys.stdin.buffer, sys.stdout
    failed = False
    while len(head := src.read(4)) == 4:
        size = struct.unpack("<I", head)[0]
        body = src.read(size)
        if len(body) < size:  # the driver died mid-write: that trial is repaired on resume
            break
        frozen = pickle.loads(body)
        if failed:
            out.write("skipped\n")
        else:
            try:
                writer.write(frozen)
                out.write("ok\n")
            except Exception as e:  # noqa: BLE001 - reported to the driver, which stops the search
                if is_disk_full(e):
                    e = disk_full(StudyDir(Path(root)).storage_file(kind), "storing a trial")
                cause = _root_cause(e)
                text = str(e) if cause is e else f"{e} (cause: {cause.__class__.__name__}: {cause})"
                out.write(f"error {e.__class__.__name__}: {' '.join(text.split())[:400]}\n")
                failed = True
        out.flush()


def _root_cause(e: BaseException) -> BaseException:
    """The innermost exception behind ``e`` (Optuna's StorageInternalError hides SQLite's message)."""
    seen = {id(e)}
    while (nxt := e.__cause__ or e.__context__) is not None and id(nxt) not in seen:
        seen.add(id(nxt))
        e = nxt
    return e


def _fast_sqlite(storage: RDBStorage) -> None:
    """WAL journal, no fsync per commit: the storage is a mirror of trials.jsonl (which is fsync'ed), so a lost
    last commit is repaired on resume, and fsyncs here would slow the driver's own (shared disk)."""
    from sqlalchemy import event

    event.listen(storage.engine, "connect", lambda conn, _: conn.execute("PRAGMA synchronous=NORMAL"))
    storage.engine.dispose()  # connections opened so far lack the pragma
    with storage.engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA journal_mode=WAL")


class _TrialWriter:
    def __init__(self, storage: BaseStorage, study_id: int) -> None:
        self.storage, self.study_id = storage, study_id
        self._written = {t.number: t for t in storage.get_all_trials(study_id, deepcopy=False)}
        self._ids = {n: trial_id(t) for n, t in self._written.items()}

    def write(self, t: FrozenTrial) -> None:
        old = self._written.get(t.number)
        if old is None:
            tid = self.storage.create_new_trial(self.study_id, template_trial=t)
            number = self.storage.get_trial_number_from_id(tid)
            if number != t.number:
                raise RuntimeError(f"storage numbered trial {t.number} as {number}")
            self._ids[t.number] = tid
        else:
            tid = self._ids[t.number]
            for name, value in t.params.items():
                if name not in old.params:
                    dist = t.distributions[name]
                    self.storage.set_trial_param(tid, name, dist.to_internal_repr(value), dist)
            for key, value in t.user_attrs.items():
                if old.user_attrs.get(key, _MISSING) != value:
                    self.storage.set_trial_user_attr(tid, key, value)
            for key, value in t.system_attrs.items():
                if old.system_attrs.get(key, _MISSING) != value:
                    self.storage.set_trial_system_attr(tid, key, value)
            for step, value in t.intermediate_values.items():  # before the state: a finished trial takes none
                if old.intermediate_values.get(step, _MISSING) != value:
                    self.storage.set_trial_intermediate_value(tid, step, value)
            if t.state != old.state:
                if old.state == TrialState.WAITING and t.state != TrialState.RUNNING:
                    # merged updates skipped RUNNING, the transition that stamps datetime_start
                    self.storage.set_trial_state_values(tid, TrialState.RUNNING)
                self.storage.set_trial_state_values(tid, t.state, t.values if t.state == TrialState.COMPLETE
                                                    else None)
        self._written[t.number] = t


_MISSING = object()


def _snapshot(t: FrozenTrial) -> FrozenTrial:
    # The in-memory storage replaces trial objects instead of mutating them, but the dicts may be shared.
    s = copy.copy(t)
    s.params = dict(t.params)
    s.distributions = dict(t.distributions)
    s.user_attrs = dict(t.user_attrs)
    s.system_attrs = dict(t.system_attrs)
    s.intermediate_values = dict(t.intermediate_values)
    return s


if __name__ == "__main__":
    _writer_main(*sys.argv[1:5])
