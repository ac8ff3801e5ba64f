"""Files in and out: one atomic writer and one YAML reader for the whole package.

Everything nas writes goes through :func:`atomic_write` (a temporary file in
the same directory, flushed, then ``os.replace``), so a crash, a full disk or
a reader in another process never sees half a file. Everything nas reads as
YAML (spaces, genotypes, a study's ``space.yaml``) goes through
:func:`read_yaml` / :func:`loads_yaml`: ``yaml.SafeLoader`` plus two guards a
plain ``safe_load`` lacks, a key given twice in one mapping is an error
(PyYAML silently keeps the last) and alias expansion is bounded (a
"billion laughs" file of nested anchors would otherwise exhaust memory).
Every problem is one :class:`~nas.errors.InputError` line ``file: where: problem``.

Files from elsewhere (a study directory someone shared, a genotype file) are
untrusted, so this module also holds the guards every reader and writer
shares: whole-line appends (:class:`AppendLog`, a record lands whole or not
at all) and the repair of a line a crash cut short (:func:`drop_torn_line`),
paths named inside a file kept inside their directory (:func:`inside`),
outputs checked before any work (:func:`check_output_dir`,
:func:`check_output_file`), and a full disk reported as one
:class:`~nas.errors.DiskFullError` line (:func:`require_free_space`,
:func:`is_disk_full`).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import yaml

from nas.errors import DiskFullError, InputError

#: Most nodes a YAML document may expand to (aliases counted at every use). The largest shipped space
#: expands to a few thousand; a hostile file of nested aliases reaches millions within a few lines.
MAX_YAML_NODES = 100_000
#: Largest YAML or JSON file read (bytes): spaces and genotypes are a few kB.
MAX_YAML_BYTES = 4 * 2**20
#: Least free space a command that writes a study needs when it starts (a record is ~1 kB, the storage more).
MIN_FREE_BYTES = 4 * 2**20
_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
_SQLITE_FULL = 13  # SQLITE_FULL: "database or disk is full"
# mkstemp creates 0600 files; what nas writes (plots, families, tables) is meant to be shared like any file
# the user creates, so it gets the mode open() would give: 0666 less the umask (read once, at import).
_UMASK = os.umask(0o022)
os.umask(_UMASK)


# -- writing ---------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "w", *, fsync: bool = False) -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path``; on success it replaces ``path`` in one step.

    On any exception (``ENOSPC`` included) the temporary file is removed and ``path`` is untouched.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"mode must be 'w' or 'wb', got {mode!r}")
    p = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    except OSError as e:
        if is_disk_full(e):
            raise disk_full(p, "writing it") from None
        raise
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)
        with os.fdopen(fd, mode, **({"encoding": "utf-8"} if mode == "w" else {})) as f:
            yield f
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        os.replace(tmp, p)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if is_disk_full(e):
            raise disk_full(p, "writing it") from None
        raise


def atomic_write(path: str | Path, data: str | bytes, *, fsync: bool = False) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_open`); returns ``path``."""
    with atomic_open(path, "wb" if isinstance(data, bytes) else "w", fsync=fsync) as f:
        f.write(data)
    return Path(path)


def atomic_write_json(path: str | Path, data: Any, *, indent: int | None = 2, fsync: bool = False) -> Path:
    """``json.dumps(data)`` written atomically, with a final newline."""
    return atomic_write(path, json.dumps(data, indent=indent) + "\n", fsync=fsync)


# -- reading ---------------------------------------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys and bounds the nodes an alias-laden document expands to."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._expanded = 0

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        self._expanded += 1
        if self._expanded > MAX_YAML_NODES:
            raise yaml.constructor.ConstructorError(
                None, None, f"the document expands to more than {MAX_YAML_NODES:,} nodes (nested aliases?)",
                node.start_mark)
        return super().construct_object(node, deep=deep)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *anchor`: its keys may be overridden here
                continue
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:  # an unhashable key: SafeLoader reports it below
                continue
            if duplicate:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        return super().construct_mapping(node, deep=deep)


def loads_yaml(text: str, source: str = "<string>") -> Any:
    """Parse YAML text safely; errors are ``InputError('source: line N: invalid YAML (...)')``."""
    if len(text) > MAX_YAML_BYTES:
        raise InputError(f"{source}: top level: {len(text):,} characters is too large for a YAML file "
                         f"(at most {MAX_YAML_BYTES:,})")
    _check_alias_fanout(text, source)
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "YAML"
        problem = " ".join(str(getattr(e, "problem", None) or e).split())
        raise InputError(f"{source}: {where}: invalid YAML ({problem})") from None
    except RecursionError:
        raise InputError(f"{source}: YAML: invalid YAML (nested too deeply)") from None
    except (ValueError, TypeError, OverflowError, IndexError, AttributeError, KeyError) as e:
        # a tagged scalar PyYAML's constructors cannot build (2020-02-31, `!!int x`, an empty `!!float`)
        raise InputError(f"{source}: YAML: invalid YAML value ({' '.join(str(e).split())[:120]})") from None


def _check_alias_fanout(text: str, source: str) -> None:
    """Reject documents whose aliases would expand past :data:`MAX_YAML_NODES` nodes.

    PyYAML shares the object of an anchored node between its aliases, so the loaded data is small, but any
    walk over it (validation, ``json.dumps``, hashing) visits every alias again: ten levels of ten aliases
    are 10^10 visits. The size of each anchored subtree is computed from the node graph, bottom-up,
    without expanding anything.
    """
    if "&" not in text or "*" not in text:
        return
    try:
        nodes = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
    except yaml.YAMLError:
        return  # the real load reports it with its line
    except RecursionError:
        raise InputError(f"{source}: YAML: invalid YAML (nested too deeply)") from None
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key in open_nodes:  # an alias inside its own anchor: a structure that contains itself
            raise InputError(f"{source}: line {node.start_mark.line + 1}: invalid YAML (an alias refers to a node "
                             "that contains it)")
        if key in sizes:
            return sizes[key]
        open_nodes.add(key)
        if isinstance(node, yaml.MappingNode):
            n = 1 + sum(size(k) + size(v) for k, v in node.value)
        elif isinstance(node, yaml.SequenceNode):
            n = 1 + sum(size(v) for v in node.value)
        else:
            n = 1
        open_nodes.discard(key)
        sizes[key] = n
        return n

    for root in nodes:
        if root is not None and size(root) > MAX_YAML_NODES:
            raise InputError(f"{source}: YAML: the document expands to more than {MAX_YAML_NODES:,} nodes "
                             "(nested aliases?)")


def read_text(path: str | Path, *, max_bytes: int = MAX_YAML_BYTES, what: str = "file") -> str:
    """A UTF-8 text file, every problem one ``InputError`` line naming the file."""
    p = Path(path)
    try:
        if p.is_dir():
            raise InputError(f"{p}: is a directory, not a {what}")
        size = p.stat().st_size
        if size > max_bytes:
            raise InputError(f"{p}: {size:,} bytes is too large for a {what} (at most {max_bytes:,})")
        return p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{p}: file not found") from None
    except UnicodeDecodeError:
        raise InputError(f"{p}: not a text file (invalid UTF-8)") from None
    except OSError as e:
        raise InputError(f"{p}: cannot read file ({e.strerror or e.__class__.__name__})") from None


def read_yaml(path: str | Path, *, what: str = "YAML file") -> Any:
    """Read and parse a YAML file (see :func:`loads_yaml`); an empty file is ``None``."""
    p = Path(path)
    return loads_yaml(read_text(p, what=what), str(p))


# -- untrusted files: whole-line appends, torn lines, paths, outputs, full disks ---------------------------------


def is_disk_full(e: BaseException | None) -> bool:
    """``e`` (or what it wraps: SQLAlchemy's ``orig``, a cause) is a write refused for want of space."""
    seen: set[int] = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in _FULL_ERRNOS:
            return True
        if getattr(e, "sqlite_errorcode", None) == _SQLITE_FULL or "database or disk is full" in str(e):
            return True
        e = getattr(e, "orig", None) or e.__cause__ or e.__context__
    return False


def disk_full(path: str | Path, action: str = "writing") -> DiskFullError:
    """The one line a full disk is reported as."""
    return DiskFullError(f"{path}: disk full (no space left on device) while {action}; nothing was left "
                         "half-written: free some space and run the same command again")


def _existing_ancestor(p: Path) -> Path:
    p = Path(os.path.abspath(p))
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def require_free_space(path: str | Path, need: int | None = None) -> None:
    """Refuse to start writing under ``path`` (or its nearest existing parent) with less than ``need`` bytes free
    (default :data:`MIN_FREE_BYTES`)."""
    need = MIN_FREE_BYTES if need is None else need
    where = _existing_ancestor(Path(path))
    try:
        st = os.statvfs(where)
    except OSError:
        return  # nothing to measure: the writes themselves report a full disk
    free = st.f_bavail * st.f_frsize
    if free < need:
        raise DiskFullError(f"{path}: disk full: {free:,} bytes free on {where}, at least {need:,} are needed "
                            "to start; free some space and run the same command again")


class AppendLog:
    """A JSON-lines file (``trials.jsonl``) to which each line lands whole or not at all.

    A line is written with ``os.write`` (once, unless the kernel takes part of it); if any part of it fails
    (``ENOSPC`` half-way through, a signal), the file is cut back to its length before the line, so a reader
    never sees half a record and the next append starts on a clean line.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as e:
            raise _write_error(self.path, e, "opening it to append") from None
        self.size = os.fstat(self._fd).st_size

    def append(self, line: str | bytes) -> None:
        data = line.encode("utf-8") if isinstance(line, str) else line
        done = 0
        try:
            while done < len(data):
                done += os.write(self._fd, data[done:])
        except BaseException as e:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, self.size)
            if isinstance(e, OSError):
                raise _write_error(self.path, e, "appending a record") from None
            raise
        self.size += len(data)

    def sync(self) -> None:
        try:
            os.fsync(self._fd)
        except OSError as e:
            raise _write_error(self.path, e, "saving it to disk") from None

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def _write_error(path: Path, e: OSError, action: str) -> InputError:
    if is_disk_full(e):
        return disk_full(path, action)
    return InputError(f"{path}: cannot write ({e.strerror or e.__class__.__name__}) while {action}")


def drop_torn_line(path: str | Path) -> bytes:
    """Cut a last line that a crash left without its newline; returns the bytes removed (empty: none).

    A last line that is complete JSON only lost its newline, which is added instead. Anything else after the
    last newline is a record cut short mid-write: it never counted (its trial was not told to anyone).
    """
    p = Path(path)
    try:
        size = p.stat().st_size
    except FileNotFoundError:
        return b""
    if size == 0:
        return b""
    with open(p, "rb+") as f:
        pos, tail = size, b""
        while pos > 0:
            step = min(65536, pos)
            pos -= step
            f.seek(pos)
            tail = f.read(step) + tail
            if b"\n" in tail[:-1] or pos == 0:
                break
        if tail.endswith(b"\n"):
            return b""
        cut = tail.rfind(b"\n") + 1
        torn = tail[cut:]
        try:
            json.loads(torn)
        except ValueError:
            f.truncate(size - len(torn))
            return torn
        f.seek(size)
        f.write(b"\n")
        return b""


def inside(root: str | Path, name: str | Path, where: str) -> Path:
    """``root / name`` for a path read from a file under ``root``: relative, without ``..``, and still inside
    ``root`` once symlinks are followed; anything else is an InputError naming ``where`` (file and field)."""
    if not isinstance(name, (str, Path)) or not str(name):
        raise InputError(f"{where}: expected a relative path inside {root}, got {name!r}")
    rel = Path(name)
    if rel.is_absolute() or ".." in rel.parts:
        raise InputError(f"{where}: {str(name)!r} is not a path inside the study (absolute paths and '..' are "
                         "refused)")
    full = Path(root) / rel
    real, real_root = full.resolve(), Path(root).resolve()
    if real != real_root and real_root not in real.parents:
        raise InputError(f"{where}: {str(name)!r} leads outside the study (to {real}, through a symbolic link)")
    return full


def check_output_dir(path: str | Path, what: str) -> None:
    """Before any work: ``path`` is a directory or can be made one (no file in the way, a writable parent)."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise InputError(f"{p}: {what}: exists and is not a directory")
    anc = _existing_ancestor(p)
    if not anc.is_dir():
        raise InputError(f"{p}: {what}: {anc} is a file, so no directory can be made here")
    if not os.access(anc, os.W_OK | os.X_OK):
        raise InputError(f"{p}: {what}: cannot write in {anc} (permission denied)")


def check_output_file(path: str | Path, what: str) -> None:
    """Before any work: ``path`` can be written as a file (not a directory, its directory can be made)."""
    p = Path(path)
    if p.is_dir():
        raise InputError(f"{p}: {what}: is a directory, not a file")
    check_output_dir(p.parent, what)
