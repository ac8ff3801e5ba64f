"""Write a copy of a search space with cluster settings in its ``search:`` section.

A space file carries how its search runs (trials, concurrency, CPUs and GPUs
per trial); on a cluster those differ from the laptop defaults while the
space itself stays the same. ``nas search`` resumes a study whose ``search:``
section changed, so the copy and the original share studies.

    python launch/cluster_space.py mixnet.yaml --gpus-per-trial 0.25 --cpus-per-trial 2 \\
        --concurrency 16 --trials 400 --out /shared/nas/mixnet_gpu.yaml

The copy is validated by ``nas.space.load_space`` before it replaces the
output file; bad input exits 2 with one line, like every ``nas`` command.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import yaml

from nas.errors import InputError

_FIELDS = ("trials", "concurrency", "cpus_per_trial", "gpus_per_trial", "sampler", "scheduler", "seed")


def cluster_space(space: str, out: Path, **search: object) -> Path:
    """Copy ``space`` to ``out`` with the given ``search:`` fields replaced (``None`` keeps the space's)."""
    from nas.cli import resolve_path
    from nas.space import load_space

    src = resolve_path(space)
    load_space(src)  # the original must be valid: errors name the file the user gave
    try:
        data = yaml.safe_load(src.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as e:
        raise InputError(f"{src}: cannot read ({e.__class__.__name__})") from None
    data["search"] = {**(data.get("search") or {}), **{k: v for k, v in search.items() if v is not None}}
    text = f"# {out.name}: {src.name} with cluster search settings (launch/cluster_space.py)\n"
    text += yaml.safe_dump(data, sort_keys=False)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    try:
        load_space(tmp)
    except InputError as e:
        tmp.unlink()
        raise InputError(str(e).replace(str(tmp), str(out))) from None
    os.replace(tmp, out)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("space", help="search-space YAML (a shipped name such as mixnet.yaml works)")
    p.add_argument("--out", "-o", type=Path, required=True, help="where to write the copy")
    p.add_argument("--trials", type=int)
    p.add_argument("--concurrency", type=int)
    p.add_argument("--cpus-per-trial", type=float)
    p.add_argument("--gpus-per-trial", type=float)
    p.add_argument("--sampler")
    p.add_argument("--scheduler")
    p.add_argument("--seed", type=int)
    args = p.parse_args(argv)
    try:
        out = cluster_space(args.space, args.out, **{k: getattr(args, k) for k in _FIELDS})
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
