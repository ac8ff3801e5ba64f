"""nas.io: the one atomic writer and the one YAML reader."""

from __future__ import annotations

import errno
import os
import stat
import time

import pytest

from nas.errors import DiskFullError, InputError
from nas.io import atomic_open, atomic_write, atomic_write_json, loads_yaml, read_yaml


def test_atomic_write_replaces_whole_and_gets_the_mode_open_would_give(tmp_path):
    p = tmp_path / "f.json"
    p.write_text("old")
    atomic_write_json(p, {"a": 1})
    assert p.read_text() == '{\n  "a": 1\n}\n'
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(p.stat().st_mode) == 0o666 & ~umask
    assert atomic_write(tmp_path / "b.bin", b"\x00\x01").read_bytes() == b"\x00\x01"
    assert sorted(x.name for x in tmp_path.iterdir()) == ["b.bin", "f.json"]  # no temporary file left


@pytest.mark.parametrize("error, expected, needle", [
    (OSError(errno.ENOSPC, "No space left on device"), DiskFullError, "f.txt: disk full"),
    (OSError(errno.EIO, "I/O error"), OSError, "I/O error"),
])
def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, error, expected, needle):
    p = tmp_path / "f.txt"
    p.write_text("kept")
    with pytest.raises(expected, match=needle), atomic_open(p) as f:
        f.write("half")
        raise error
    assert p.read_text() == "kept" and [x.name for x in tmp_path.iterdir()] == ["f.txt"]


def test_yaml_rejects_duplicate_keys_and_reads_merge_keys():
    with pytest.raises(InputError, match=r"^f.yaml: line 2: invalid YAML \(duplicate key 'a'\)$"):
        loads_yaml("a: 1\na: 2\n", "f.yaml")
    data = loads_yaml("base: &b {x: 1, y: 2}\nitem: {<<: *b, y: 3}\n")
    assert data["item"] == {"x": 1, "y": 3}


def test_an_alias_bomb_fails_at_once_in_one_line(tmp_path):
    names = "abcdefghij"
    lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"{n}: &{n} [{', '.join([f'*{p}'] * 10)}]" for p, n in zip(names, names[1:], strict=False)]
    p = tmp_path / "bomb.yaml"
    p.write_text("\n".join(lines) + "\n")
    t = time.perf_counter()
    with pytest.raises(InputError, match=r"^.*bomb.yaml: YAML: the document expands to more than"):
        read_yaml(p)
    assert time.perf_counter() - t < 1.0


@pytest.mark.parametrize("content, problem", [(b"\xff\xfe", "not a text file"), (b"a: [1\n", "invalid YAML")])
def test_unreadable_files_are_one_line(tmp_path, content, problem):
    p = tmp_path / "x.yaml"
    p.write_bytes(content)
    with pytest.raises(InputError, match=problem):
        read_yaml(p)
    with pytest.raises(InputError, match="file not found"):
        read_yaml(tmp_path / "missing.yaml")
