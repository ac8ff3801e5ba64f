"""The command line as a whole: version, help flags, shell completion, and the latency-table commands' output."""

from __future__ import annotations

import json
import subprocess
import sys

from _cli import run_cli

from nas import __version__
from nas.config import TARGETS


def test_version_and_short_help(monkeypatch, capsys):
    assert run_cli(monkeypatch, capsys, "--version")[:2] == (0, f"nas {__version__}\n")
    for args in (("-h",), ("space", "-h"), ("space", "sample", "-h"), ("lut", "show", "-h"), ("search", "-h")):
        code, out, _ = run_cli(monkeypatch, capsys, *args)
        assert code == 0 and "Usage: nas" in out and "--help" in out and "-h" in out, args


def test_shell_completion_is_available():
    r = subprocess.run([sys.executable, "-m", "nas.cli", "--show-completion", "bash"], capture_output=True, text=True,
                       timeout=120, env={"PATH": "/usr/bin:/bin", "SHELL": "/bin/bash"})
    assert r.returncode == 0, r.stderr
    assert "complete" in r.stdout and "_NAS_COMPLETE" in r.stdout.upper()


def test_lut_targets_shows_every_name_whole_at_80_columns(monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "80")
    code, out, _ = run_cli(monkeypatch, capsys, "lut", "targets")
    assert code == 0 and max(map(len, out.splitlines())) <= 80
    names = [line.split()[0] for line in out.splitlines() if line.strip() and line.split()[0] in TARGETS]
    assert names == list(TARGETS)


def test_lut_show_prints_a_readable_table(monkeypatch, capsys):
    lut = "luts/tiny-torch-cpu.json"
    code, out, _ = run_cli(monkeypatch, capsys, "lut", "show", lut)
    assert code == 0
    assert "{" not in out and "'" not in out  # no raw Python dicts
    info = json.loads(run_cli(monkeypatch, capsys, "lut", "show", lut, "--json")[1])
    assert f"{info['entries']} (min" in out and info["target"]["name"] in out
    assert f"{info['device']['cores']} cores" in out
    assert f"scale {info['calibration']['scale']:.3f}" in out
