"""Decision sources: where the walk of a space (:mod:`nas.space.walk`) takes each decision from.

A source answers ``pick(name, choices, actual, field)``: ``name`` is the
stable parameter name (``stem.out``, ``s2.kernels``, ``s2.b0.se``), and
``actual(g)`` (then ``.field``) is the decision's value in a genotype ``g``,
which only the reading source uses. Choices are JSON scalars for Optuna
(kernel sets are strings such as ``"3-5-7"``), and evenly spaced integer
choices use ``suggest_int`` so that samplers can exploit their order.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

from nas.errors import InputError
from nas.genotype import Genotype
from nas.space.errors import show


class Source:
    """Where decisions come from (see the module docstring)."""

    def pick(self, name: str, choices: Sequence[Any], actual: Callable[[Genotype], Any],
             field: str | None = None) -> Any:
        raise NotImplementedError


def _enc(v: Any) -> Any:
    return "-".join(map(str, v)) if isinstance(v, tuple) else v


def _int_range(choices: tuple) -> tuple[int, int, int] | None:
    """(low, high, step) when the choices are >= 3 evenly spaced ints (so suggest_int keeps their order)."""
    if len(choices) < 3 or not all(type(c) is int for c in choices):
        return None
    s = sorted(choices)
    step = s[1] - s[0]
    if step <= 0 or any(b - a != step for a, b in zip(s, s[1:], strict=False)):
        return None
    return s[0], s[-1], step


class TrialSource(Source):
    """Decisions from anything with Optuna's ``suggest_categorical``/``suggest_int``."""

    def __init__(self, trial: Any) -> None:
        self.trial = trial

    def pick(self, name: str, choices: Sequence[Any], actual: Callable[[Genotype], Any],
             field: str | None = None) -> Any:
        rng, encoded, decode = _plan(choices, type(choices[0]))
        if rng is not None:
            return self.trial.suggest_int(name, rng[0], rng[1], step=rng[2])
        return decode[self.trial.suggest_categorical(name, encoded)]


@lru_cache(maxsize=4096)
def _plan(choices: tuple, kind: type) -> tuple[tuple[int, int, int] | None, list[Any], dict[Any, Any]]:
    """How a choice tuple is asked of a trial: an int range, or categorical (encoded choices, decoder).

    ``kind`` is part of the cache key because ``(2, 3) == (2.0, 3.0)``: repeats and expansions must not
    share a plan."""
    decode = {_enc(c): c for c in choices}
    return _int_range(choices), list(decode), decode


class RandomTrial:
    """The Optuna trial interface backed by ``random.Random``: one uniform draw per decision."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        return choices[int(self.rng.random() * len(choices))]

    def suggest_int(self, name: str, low: int, high: int, step: int = 1) -> int:
        return low + step * int(self.rng.random() * ((high - low) // step + 1))


class ReplayTrial:
    """The Optuna trial interface answering from stored parameters."""

    def __init__(self, params: dict[str, Any], source: str) -> None:
        self.params, self.source, self.used = params, source, set()

    def _get(self, name: str) -> Any:
        if name not in self.params:
            raise InputError(f"{self.source}: params: decision {name!r} is missing")
        self.used.add(name)
        return self.params[name]

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        v = self._get(name)
        if v not in choices or isinstance(v, bool) != any(isinstance(c, bool) and c == v for c in choices):
            raise InputError(f"{self.source}: params: {name} = {v!r} is not one of {list(choices)}")
        return v

    def suggest_int(self, name: str, low: int, high: int, step: int = 1) -> int:
        v = self._get(name)
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        if type(v) is not int or not low <= v <= high or (v - low) % step:
            raise InputError(f"{self.source}: params: {name} = {v!r} is not in {low}..{high} step {step}")
        return v


class Outside(Exception):
    """The genotype read by :class:`ReadSource` takes a value the space does not offer."""


class ReadSource(Source):
    """Decisions read back from a (canonical) genotype, recording them as Optuna params."""

    def __init__(self, genotype: Genotype) -> None:
        self.g = genotype
        self.params: dict[str, Any] = {}

    def pick(self, name: str, choices: Sequence[Any], actual: Callable[[Genotype], Any],
             field: str | None = None) -> Any:
        v = actual(self.g)
        if callable(field):  # a decision that is no field of its part, e.g. a stage's op: told from the part
            v = field(v)
        elif field is not None:
            v = getattr(v, field)
        for c in choices:
            if c == v and isinstance(c, bool) == isinstance(v, bool):
                self.params[name] = _enc(c)
                return c
        shown = ", ".join(show(c) for c in choices)
        raise Outside(f"{name}: {show(v)} is not among the choices ({shown})")


class CodeSource(Source):
    """Decisions from a published table's code: one symbol per decision, in the walk's order, each the index of
    the choice taken (``"02012100"``: NAS-Bench-Macro's 8 layers, 0 = the first op). Codes whose decisions have
    more than 10 choices separate their symbols with ``-``."""

    def __init__(self, code: str, source: str) -> None:
        self.symbols = code.split("-") if "-" in code else list(code)
        self.code, self.source, self.i = code, source, 0

    def pick(self, name: str, choices: Sequence[Any], actual: Callable[[Genotype], Any],
             field: Any = None) -> Any:
        where = f"{self.source}: code {self.code!r}"
        if self.i >= len(self.symbols):
            raise InputError(f"{where}: too short, the space asks for {name} after {self.i} decisions")
        s = self.symbols[self.i]
        self.i += 1
        if not s.isdigit() or int(s) >= len(choices):
            raise InputError(f"{where}: {name}: symbol {s!r} is not an index into its {len(choices)} choices")
        return choices[int(s)]


class SmallestSource(Source):
    """The smallest number (or fewest kernels) of every choice: a cheap architecture, not always the cheapest."""

    def pick(self, name: str, choices: Sequence[Any], actual: Callable[[Genotype], Any],
             field: str | None = None) -> Any:
        return min(choices, key=_size)


def _size(c: Any) -> Any:
    if isinstance(c, tuple):
        return (len(c), sum(c))
    return (c, 0) if isinstance(c, (int, float)) else (0, 0)
