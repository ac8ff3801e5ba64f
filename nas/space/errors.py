"""One line per bad input: pydantic's first validation error as ``field.path: problem``, and value display."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any, get_args, get_origin

from pydantic import BaseModel, ValidationError


def format_validation_error(e: ValidationError, model: type[BaseModel] | None = None) -> str:
    """The first error as ``field.path: problem``, plus ``(and N more)``; ``model`` (the validated class)
    lets an unknown field list the known ones."""
    errs = e.errors(include_url=False)
    err = errs[0]
    loc = _loc(err["loc"])
    kind = err["type"]
    msg = str(err["msg"])
    if kind in ("extra_forbidden", "unexpected_keyword_argument"):
        known = _known_fields(model, err["loc"][:-1]) if model is not None else []
        msg = "unknown field" + (f" (known: {', '.join(known)})" if known else "")
    elif kind in ("missing", "missing_argument"):
        msg = "required field missing"
    else:
        msg = msg.removeprefix("Value error, ").removeprefix("Assertion failed, ")
        inp = err.get("input")
        if kind.endswith("_type") or kind.endswith("_parsing") or kind in ("literal_error", "enum"):
            msg = f"{msg}, got {show(inp)}"
    more = f" (and {len(errs) - 1} more)" if len(errs) > 1 else ""
    return f"{loc or 'top level'}: {msg}{more}"


def _loc(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif "[" in str(part) or str(part).startswith("function-"):
            continue  # pydantic's validator tags, not fields
        else:
            name = str(part) if str(part).isprintable() and str(part) else repr(part)  # a key from the file
            out += f".{name}" if out else name
    return out


def _known_fields(model: Any, loc: tuple) -> list[str]:
    t: Any = model
    for part in loc:
        t = _unwrap(t)
        if isinstance(part, int) or t is None:
            continue
        if isinstance(t, type) and issubclass(t, BaseModel):
            f = t.model_fields.get(part)
            t = f.annotation if f else None
        elif isinstance(t, type) and dataclasses.is_dataclass(t):
            fs = {f.name: f.type for f in dataclasses.fields(t)}
            t = fs.get(part)
        elif get_origin(t) is dict:
            t = get_args(t)[1]
        else:
            return []
    t = _unwrap(t)
    if isinstance(t, type) and issubclass(t, BaseModel):
        return list(t.model_fields)
    if isinstance(t, type) and dataclasses.is_dataclass(t):
        return [f.name for f in dataclasses.fields(t)]
    return []


def _unwrap(t: Any) -> Any:
    """Strip Annotated/Optional/list wrappers to reach a model class."""
    while True:
        origin = get_origin(t)
        if origin is Annotated or origin in (list, tuple):
            t = get_args(t)[0]
        elif origin is not None and origin is not dict and type(None) in get_args(t):
            t = next(a for a in get_args(t) if a is not type(None))
        else:
            return t


def type_name(v: Any) -> str:
    """``a mapping``, ``a list``, ...: what a user wrote, in words."""
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", int: "an integer",
            float: "a number", type(None): "nothing"}.get(type(v), type(v).__name__)


def show(v: Any) -> str:
    """A value as a space file spells it, shortened to 60 characters."""
    if isinstance(v, tuple):
        return "[" + ", ".join(map(str, v)) + "]"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    s = repr(v)
    return s if len(s) <= 60 else s[:57] + "..."


def fmt_count(v: float) -> str:
    """12.3M, 1.2G, 950k: the way papers write MACs and parameter counts."""
    v = float(v)
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= div:
            return f"{v / div:.3g}{suffix}" if v / div < 100 else f"{v / div:.0f}{suffix}"
    return f"{v:g}"


#: Most digits a count is printed with (Python refuses to turn an int of more than 4,300 digits into text).
MAX_DIGITS = 4000


def exact_count(n: int) -> str | None:
    """``n`` written out, or None when it has more than :data:`MAX_DIGITS` digits (print its log10 instead)."""
    return str(n) if n.bit_length() <= int(MAX_DIGITS * 3.3219) else None
