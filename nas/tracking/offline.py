"""Reading offline W&B runs back from disk, without network or account.

An offline run's data is its ``run-<id>.wandb`` file (protobuf records in a
LevelDB-log-style container); :func:`read_run` reads config, summary and
history back.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import Any

_BLOCK = 32 * 1024
_HEADER = 7  # ":W&B" + magic 0xBEE1 + version byte


def _chunks(data: bytes) -> list[bytes]:
    """Reassemble the records of a ``.wandb`` file (LevelDB log format: 32 KiB blocks, 7-byte record headers)."""
    if data[:4] != b":W&B":
        raise ValueError("not a W&B run file")
    out, pos, buf = [], _HEADER, b""
    while pos + 7 <= len(data):
        left = _BLOCK - pos % _BLOCK
        if left < 7:
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if kind == 0 and length == 0:  # block padding
            pos += left
            continue
        chunk = data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind == 1:
            out.append(chunk)
        elif kind == 2:
            buf = chunk
        elif kind == 3:
            buf += chunk
        elif kind == 4:
            out.append(buf + chunk)
            buf = b""
    return out


def _set(d: dict, keys: Sequence[str], value: Any) -> None:
    for k in keys[:-1]:
        d = d.setdefault(k, {})
    d[keys[-1]] = value


def read_run(run_dir: Path) -> dict[str, Any]:
    """Config, summary, history rows and name of an offline run directory (``offline-run-*``)."""
    from wandb.proto import wandb_internal_pb2 as pb

    run_dir = Path(run_dir)
    path = next(run_dir.glob("run-*.wandb"))
    out: dict[str, Any] = {"name": None, "job_type": None, "tags": [], "config": {}, "summary": {}, "history": [],
                           "dir": str(run_dir)}
    for chunk in _chunks(path.read_bytes()):
        rec = pb.Record()
        rec.ParseFromString(chunk)
        kind = rec.WhichOneof("record_type")
        if kind == "run":
            out["name"], out["job_type"], out["tags"] = rec.run.display_name, rec.run.job_type, list(rec.run.tags)
            for u in rec.run.config.update:
                _set(out["config"], list(u.nested_key) or [u.key], json.loads(u.value_json))
        elif kind == "config":
            for u in rec.config.update:
                _set(out["config"], list(u.nested_key) or [u.key], json.loads(u.value_json))
        elif kind == "summary":
            for u in rec.summary.update:
                _set(out["summary"], list(u.nested_key) or [u.key], json.loads(u.value_json))
        elif kind == "history":
            row: dict[str, Any] = {}
            for item in rec.history.item:
                _set(row, list(item.nested_key) or [item.key], json.loads(item.value_json))
            out["history"].append(row)
    return out


def offline_runs(study_dir: Path) -> list[dict[str, Any]]:
    """Every offline run of a study, read back (:func:`read_run`)."""
    return [read_run(d) for d in sorted((Path(study_dir) / "wandb").glob("offline-run-*"))]


def read_table(run: dict[str, Any], key: str) -> dict[str, Any]:
    """The latest ``wandb.Table`` logged under ``key`` in a run read by :func:`read_run`: columns and data.
    (Plotly charts read the same way: their file is the figure's JSON.)"""
    return json.loads(media_file(run, key).read_text())


def media_file(run: dict[str, Any], key: str) -> Path:
    """The file of the latest media (table, chart, HTML page, image) logged under ``key`` in a run."""
    return Path(run["dir"]) / "files" / run["summary"][key]["path"]
