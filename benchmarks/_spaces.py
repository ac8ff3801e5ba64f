"""Variants of a shipped space that benchmarks run on."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import yaml


def variant(space: str | Path, work: Path, suffix: str, edit: Callable[[dict], None]) -> Path:
    """A copy of ``space`` changed by ``edit`` and named ``<name>-<suffix>``, written under ``work``."""
    from nas.space import find_space_file

    data = yaml.safe_load(find_space_file(space).read_text())
    edit(data)
    data["name"] = f"{data.get('name', 'space')}-{suffix}"
    p = work / f"{data['name']}.yaml"
    p.write_text(yaml.safe_dump(data, sort_keys=False))
    return p


def with_length(proxy: dict, changes: dict) -> dict:
    """A space's ``proxy:`` mapping with ``changes``, where a length given (epochs or steps) replaces the other
    (``nas.config.with_overrides`` for the YAML mapping): a step recipe given epochs drops its steps."""
    out = {**proxy, **changes}
    if changes.get("epochs") is not None and "steps" not in changes:
        out.pop("steps", None)
        out.pop("report_every", None)
    if changes.get("steps") is not None and "epochs" not in changes:
        out.pop("epochs", None)
        out.pop("warmup_epochs", None)
    return out


def drop_latency(data: dict) -> None:
    """No latency anywhere in a space's data (budget, target, table, objectives, family limits).

    A space with a latency target times every new network it costs (about a second each at 224 px,
    ``nas.latency.cache``); a benchmark of thousands of costed proposals would measure that timing instead of
    what it is about.
    """
    b = data.get("budgets") or {}
    for k in ("latency_ms", "target", "lut"):
        b.pop(k, None)
    objs = [o for o in data.get("objectives") or [] if (o if isinstance(o, str) else o.get("metric")) != "latency_ms"
            and (isinstance(o, str) or o.get("cost") != "latency_ms")]
    if "objectives" in data:
        data["objectives"] = objs or ["accuracy", "macs"]
    family = {name: {m: v for m, v in tier.items() if m != "latency_ms"}
              for name, tier in (data.get("family") or {}).items()}
    data["family"] = {name: tier for name, tier in family.items() if tier}
