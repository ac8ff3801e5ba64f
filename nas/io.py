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
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import yaml

from nas.errors import InputError

#: Most nodes a YAML document may expand to (aliases counted at every use). The largest shipped space
#: expands to a few thousand; a hostile file of nested aliases reaches millions within a few lines.
MAX_YAML_NODES = 100_000
#: Largest YAML or JSON file read (bytes): spaces and genotypes are a few kB.
MAX_YAML_BYTES = 4 * 2**20
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
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)
        with os.fdopen(fd, mode, **({"encoding": "utf-8"} if mode == "w" else {})) as f:
            yield f
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        os.replace(tmp, p)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
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

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        sizes[key] = 1  # a recursive alias counts once (SafeLoader rejects it later anyway)
        if isinstance(node, yaml.MappingNode):
            n = 1 + sum(size(k) + size(v) for k, v in node.value)
        elif isinstance(node, yaml.SequenceNode):
            n = 1 + sum(size(v) for v in node.value)
        else:
            n = 1
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
