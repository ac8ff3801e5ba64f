"""Plain-data forms of the genotype's specs: typed reading of one spec, and writing one back.

:mod:`nas.genotype` composes these into ``from_dict``/``to_dict``; they work on
any dataclass spec (stem, block, head), so this module does not import them.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

from nas.genotype_check import GenotypeError


def _norm(v: Any) -> Any:
    if isinstance(v, float) and v.is_integer():
        return int(v)
    if isinstance(v, tuple):
        return list(v)
    return v


@functools.cache
def _defaults(cls: type) -> tuple[tuple[str, Any], ...]:
    """(name, default) of a spec class's fields: ``dataclasses.fields`` is slow enough to show in every hash."""
    return tuple((f.name, f.default) for f in dataclasses.fields(cls) if f.name != "name")


def spec_dict(spec: Any, compact: bool) -> dict[str, Any]:
    """A spec as plain data; ``compact`` leaves out fields at their default."""
    out = {}
    missing = dataclasses.MISSING
    for name, default in _defaults(type(spec)):
        v = getattr(spec, name)
        if compact and default is not missing and v == default:
            continue
        out[name] = _norm(v)
    return out


def blocks_to_list(blocks: tuple[Any, ...], compact: bool) -> list[dict[str, Any]]:
    """A stage's blocks as plain data; ``compact`` folds a run of equal stride-1 blocks into ``repeat``."""
    items: list[dict[str, Any]] = []
    prev = None
    for b in blocks:
        if compact and prev is not None and b.stride == 1 and (b == prev if prev.stride == 1 else
                                                               b == dataclasses.replace(prev, stride=1)):
            items[-1]["repeat"] = items[-1].get("repeat", 1) + 1
        else:
            items.append(spec_dict(b, compact))
        prev = b
    return items


def _type_check(value: Any, f: dataclasses.Field, where: str) -> Any:
    t = str(f.type)
    if t.startswith("tuple"):
        if isinstance(value, int) and not isinstance(value, bool):
            value = [value]
        if not isinstance(value, (list, tuple)) or not value:
            raise GenotypeError(f"{where}: expected a non-empty list of ints, got {value!r}")
        for v in value:
            if not isinstance(v, int) or isinstance(v, bool):
                raise GenotypeError(f"{where}: expected ints, got {v!r}")
        return tuple(value)
    if t == "bool":
        if not isinstance(value, bool):
            raise GenotypeError(f"{where}: expected true/false, got {value!r}")
        return value
    if t.startswith("int"):
        if value is None and "None" in t:
            return None
        if not isinstance(value, int) or isinstance(value, bool):
            raise GenotypeError(f"{where}: expected an integer, got {value!r}")
        return value
    if t == "float":
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise GenotypeError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if t.startswith("str"):
        if value is None and "None" in t:
            return None
        if not isinstance(value, str):
            raise GenotypeError(f"{where}: expected a string, got {value!r}")
        return value
    return value


def build_spec(cls: type, data: Any, where: str, skip: tuple[str, ...] = ()) -> Any:
    """``cls(**data)`` with every field type-checked; errors name ``where.field``."""
    if not isinstance(data, dict):
        raise GenotypeError(f"{where}: expected a mapping, got {type(data).__name__}")
    known = _fields(cls)
    kwargs = {}
    for k, v in data.items():
        if k in skip:
            continue
        if k not in known:
            raise GenotypeError(f"{where}.{k}: unknown field (known: {', '.join(sorted(known))})")
        kwargs[k] = _type_check(v, known[k], f"{where}.{k}")
    missing = [n for n, f in known.items() if f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING and n not in kwargs]
    if missing:
        raise GenotypeError(f"{where}.{missing[0]}: required field missing")
    return cls(**kwargs)


_FIELDS: dict[type, dict[str, dataclasses.Field]] = {}


def _fields(cls: type) -> dict[str, dataclasses.Field]:
    if cls not in _FIELDS:
        _FIELDS[cls] = {f.name: f for f in dataclasses.fields(cls)}
    return _FIELDS[cls]
