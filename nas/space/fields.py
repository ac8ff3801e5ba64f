"""The field types of the space schema: choice lists, kernels, quantities, and the bounds of every number.

Every number a space can hold is finite and bounded (``MAX_*``): a space file is untrusted input, and an
unbounded ``repeat: [1, 1000000]`` or ``width: .inf`` would otherwise make validation, counting or sampling
run for ever or crash.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field

from nas.genotype_check import ACTS, MAX_GROUPS, STRIDES
from nas.space.errors import show


def _listify(v: Any) -> Any:
    return tuple(v) if isinstance(v, (list, tuple)) else (v,)


def _distinct(v: tuple) -> tuple:
    if not v:
        raise ValueError("needs at least one choice")
    seen: list = []
    for x in v:
        if x in seen:
            raise ValueError(f"choice {show(x)} is listed twice")
        seen.append(x)
    return v


def _positive(v: float) -> float:
    if not v > 0:
        raise ValueError(f"must be > 0, got {v}")
    return v


def _kernel(k: int) -> int:
    if k < 1 or k % 2 == 0 or k > 2 * MAX_GROUPS + 1:
        raise ValueError(f"kernel {k} must be odd and in 1..{2 * MAX_GROUPS + 1}")
    return k


def _group_count(g: int) -> int:
    if not 1 <= g <= MAX_GROUPS:
        raise ValueError(f"g = {g}: MixConv uses 1..{MAX_GROUPS} groups (group i has kernel 2i+1: 3, 5, ..., 11)")
    return g


def _kernel_set(v: Any) -> Any:
    """``[3, 5, 7]``, ``"3-5-7"`` or ``3`` -> ``(3, 5, 7)``."""
    if isinstance(v, str):
        try:
            v = [int(p) for p in v.split("-")]
        except ValueError:
            raise ValueError(f"kernel set {v!r}: expected odd kernels like [3, 5, 7] or '3-5-7'") from None
    elif isinstance(v, int) and not isinstance(v, bool):
        v = [v]
    if not isinstance(v, list) or not v or not all(isinstance(k, int) and not isinstance(k, bool) for k in v):
        raise ValueError(f"kernel set {show(v)}: expected a list of odd kernels like [3, 5, 7]")
    if len(v) > MAX_GROUPS:
        raise ValueError(f"kernel set {show(v)}: g = {len(v)} groups; MixConv allows 1..{MAX_GROUPS}")
    for k in v:
        _kernel(k)
    return tuple(v)


_SUFFIX = {"": 1, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9}
_QUANTITY = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([kKMG]?)\s*$")


def _quantity(v: Any) -> Any:
    """Numbers as YAML gives them, plus ``"400M"``/``"6M"``/``"1.2G"`` and ``400e6`` (a string in YAML 1.1)."""
    if isinstance(v, str):
        m = _QUANTITY.match(v)
        if not m:
            raise ValueError(f"expected a number such as 400e6 or 400M, got {v!r}")
        return float(m.group(1)) * _SUFFIX[m.group(2)]
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ValueError(f"expected a number such as 400e6 or 400M, got {show(v)}")
    return float(v)


def _non_negative(v: int) -> int:
    if v < 0:
        raise ValueError(f"must be >= 0, got {v}")
    return v


def _unit_interval(v: float) -> float:
    if not 0 <= v < 1:
        raise ValueError(f"must be in [0, 1), got {v}")
    return v


def _ratio(lo: float, hi: float) -> Callable[[float], float]:
    def check(v: float) -> float:
        if not lo <= v <= hi:
            raise ValueError(f"must be in [{lo:g}, {hi:g}], got {v}")
        return v
    return check


def _identifier(v: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", v):
        raise ValueError(f"{v!r} must be an identifier (letters, digits, _), it names Optuna parameters")
    return v


def _at_most(hi: float) -> AfterValidator:
    def check(v: float) -> float:
        if v > hi:
            raise ValueError(f"must be <= {hi:,}, got {show(v)}")
        return v
    return AfterValidator(check)


# Upper bounds of every number a space can hold: far above any real network or search, and low enough that
# nothing downstream (validation, counting, sampling, the memory estimate) can be made to run for ever.
MAX_CHANNELS = 100_000
MAX_DEPTH = 64  # blocks per stage (repeat)
MAX_STAGES = 32
MAX_CHOICES = 16  # choices per option
MAX_RESOLUTION = 8192
MAX_CLASSES = 1_000_000
MAX_1X1_GROUPS = 1024
MAX_DILATION = 16
MAX_RATIO = 64.0  # expand, bottleneck
MAX_COST = 1e18  # budgets and tiers: MACs, params
MAX_LATENCY_MS = 1e9
MAX_TRIALS = 10_000_000
MAX_CONCURRENCY = 100_000
MAX_CPUS = 4096.0
MAX_EPOCHS = 10_000
MAX_SEED = 2**32 - 1  # numpy's and Optuna's seeds are 32-bit

PosInt = Annotated[int, AfterValidator(_positive)]
NonNegInt = Annotated[int, AfterValidator(_non_negative)]
PosFloat = Annotated[float, AfterValidator(_positive)]
Quantity = Annotated[float, BeforeValidator(_quantity), AfterValidator(_positive), _at_most(MAX_COST)]
Channels = Annotated[int, AfterValidator(_positive), _at_most(MAX_CHANNELS)]
HeadChannels = Annotated[int, AfterValidator(_non_negative), _at_most(MAX_CHANNELS)]
Ratio = Annotated[float, AfterValidator(_positive), _at_most(MAX_RATIO)]
Groups1x1 = Annotated[int, AfterValidator(_positive), _at_most(MAX_1X1_GROUPS)]
Latency = Annotated[float, AfterValidator(_positive), _at_most(MAX_LATENCY_MS)]
Seed = Annotated[int, AfterValidator(_non_negative), _at_most(MAX_SEED)]
Kernel = Annotated[int, AfterValidator(_kernel)]
KernelSet = Annotated[tuple[int, ...], BeforeValidator(_kernel_set)]
Act = Literal[ACTS]
Stride = Literal[STRIDES]


def Choices(t: Any) -> Any:  # noqa: N802 - reads as a type in the schema
    """A list of distinct choices; a scalar means a single (fixed) choice."""
    # tuples: hashable, so the sampling plans are cached per choice tuple
    return Annotated[tuple[t, ...], BeforeValidator(_listify), Field(max_length=MAX_CHOICES), AfterValidator(_distinct)]


def Positive(t: type, hi: float) -> Any:  # noqa: N802 - reads as a type in the schema
    """A number in ``(0, hi]``."""
    return Annotated[t, AfterValidator(_positive), _at_most(hi)]


def InRange(lo: float, hi: float, t: type = float) -> Any:  # noqa: N802
    """A number in ``[lo, hi]``."""
    return Annotated[t, AfterValidator(_ratio(lo, hi))]


Identifier = Annotated[str, AfterValidator(_identifier)]
GroupCount = Annotated[int, AfterValidator(_group_count)]
UnitInterval = Annotated[float, AfterValidator(_unit_interval)]
