"""Option trees: an ordered, declarative list of options, and everything that follows from it (torch-free).

:mod:`nas.rules` states which options each part of a network takes (the
stem, the head, each block kind); this module knows nothing of those
options, only how to walk, count, enumerate and canonicalise any such list.
An option is a decision where its predicate holds (given the part's
context and the options decided before it) and takes its default elsewhere,
so distinct paths through a tree give distinct parts.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any


@dataclass(frozen=True)
class Context:
    """Where a block sits: input channels, output channels and the stride of its first layer."""

    cin: int
    out: int
    stride: int


#: A decision source: ``pick(decision name, choices, field) -> one of choices`` (asked only for 2+ choices).
Pick = Callable[[str, tuple, str], Any]


@dataclass(frozen=True)
class Option:
    """One option of a part: the spec ``field`` it sets, and when it is a decision.

    ``when(ctx, *values)`` receives the context and the values of ``reads`` (fields decided earlier, or
    fixed ones such as ``mid``), in that order; ``None`` means always. ``normalize`` maps each choice (and a
    genotype's value) to the value that builds the network, merging choices that become equal; ``name`` is
    then the decision's own name. ``source`` is the attribute of the space's choices (default: ``field``; a
    method is called). ``folded``: the deployed network has no trace of it (ACB branches fold into one conv,
    dropout is off), so latency tables do not tell its values apart.
    A field may be listed twice, with predicates that are never true together.
    """

    field: str
    when: Callable[..., bool] | None = None
    reads: tuple[str, ...] = ()
    name: str | None = None
    normalize: Callable[[Any], Any] | None = None
    source: str | None = None
    folded: bool = False

    @property
    def decision(self) -> str:
        return self.name or self.field


_FEW = 64  # states above which counting sorts a field's values into classes first


def _choices(space_part: Any, opt: Option) -> tuple:
    """The choices of ``opt`` in a stage (or stem/head) of a search space, normalised and distinct."""
    raw = getattr(space_part, opt.source or opt.field)
    if type(raw) is tuple and opt.normalize is None:  # the common case, first: the walk asks this a lot
        return raw
    if callable(raw):
        raw = raw()
    if not isinstance(raw, tuple):
        raw = (raw,)  # a fixed setting of the space (e.g. se_base): one choice, never a decision
    return _normalized(opt.normalize, raw) if opt.normalize else raw


@lru_cache(maxsize=1024)
def _normalized(normalize: Callable[[Any], Any], raw: tuple) -> tuple:
    return tuple(dict.fromkeys(normalize(v) for v in raw))


class Tree:
    """The ordered options of one part (the stem, the head or a block kind) and what follows from them.

    Values are plain dicts of the spec's fields. ``structure`` names the fields no option sets and the
    canonical form keeps (a block's ``out``, ``stride``, ``kind``, ``mid``); every other field that is no
    option takes its default, or its value in ``fixed``.
    """

    def __init__(self, spec: type, options: Sequence[Option], fixed: Mapping[str, Any] | None = None,
                 structure: Sequence[str] = ()) -> None:
        self.spec = spec
        self.options = tuple(options)
        self.fixed = dict(fixed or {})
        groups: dict[str, list[Option]] = {}
        for i, opt in enumerate(self.options):
            if opt.field in groups and self.options[i - 1].field != opt.field:
                raise ValueError(f"{opt.field}: the alternatives of one field must be listed together")
            groups.setdefault(opt.field, []).append(opt)
        self.groups = tuple((f, tuple(alts)) for f, alts in groups.items())
        # fields read by the options after group i: the only ones worth telling apart when counting
        self._later = [frozenset(r for _, alts in self.groups[i + 1:] for o in alts for r in o.reads)
                       for i in range(len(self.groups))]
        self.defaults = {f.name: f.default for f in dataclasses.fields(spec)
                         if f.default is not dataclasses.MISSING}
        self.defaults.update(self.fixed)
        fields = {f for f, _ in self.groups}
        self._resets = tuple((f, d) for f, d in self.defaults.items() if f not in fields and f not in structure)

    @staticmethod
    def _active(alts: tuple[Option, ...], ctx: Context | None, v: Mapping[str, Any]) -> Option | None:
        if alts[0].when is None:
            return alts[0]
        for o in alts:
            if o.when is None or o.when(ctx, *[v[r] for r in o.reads]):
                return o
        return None

    def start(self, **given: Any) -> dict[str, Any]:
        return {**self.defaults, **given}

    def walk(self, pick: Pick, part: Any, ctx: Context | None, values: dict[str, Any]) -> dict[str, Any]:
        """Decide every option that is a decision here (``pick`` asked only for 2+ choices)."""
        for f, alts in self.groups:
            opt = alts[0]
            if opt.when is not None:
                opt = self._active(alts, ctx, values)
                if opt is None:
                    continue
            ch = _choices(part, opt)
            values[f] = ch[0] if len(ch) == 1 else pick(opt.decision, ch, f)
        return values

    def count(self, part: Any, ctx: Context | None, start: Mapping[str, Any], skip: frozenset = frozenset()) -> int:
        """Number of distinct value sets :meth:`walk` can give, enumerating only fields read later.

        A field read later is told apart only by what the later predicates make of it (``se: 0.25`` and
        ``se: 0.5`` both turn the SE options on), so the states stay few however many choices it has."""
        states: dict[tuple, int] = {(): 1}
        classes: dict[str, dict[Any, Any]] = {}
        for i, (f, alts) in enumerate(self.groups):
            if f in skip:
                continue
            keep, new = self._later[i], {}
            for state, n in states.items():
                v = {**start, **dict(state)}
                opt = self._active(alts, ctx, v)
                vals = _choices(part, opt) if opt is not None else (start[f],)
                kept = tuple(p for p in state if p[0] in keep)
                if f in keep:
                    rep = classes.get(f)
                    if rep is None:  # a few states are cheaper kept apart than sorted into classes
                        rep = classes[f] = self._classes(i, part, ctx, start) if len(vals) * len(states) > _FEW \
                            else {}
                    for x in vals:
                        s = (*kept, (f, rep.get(x, x)))
                        new[s] = new.get(s, 0) + n
                else:
                    new[kept] = new.get(kept, 0) + n * len(vals)
            states = new
        return sum(states.values())

    def _values(self, f: str, part: Any, start: Mapping[str, Any]) -> list[Any]:
        """Every value field ``f`` can hold in a walk: each alternative's choices and its default."""
        vals = [start.get(f, self.defaults.get(f))]
        for _, alts in self.groups:
            if alts[0].field == f:
                vals += [x for o in alts for x in _choices(part, o)]
        return list(dict.fromkeys(vals))

    def _classes(self, i: int, part: Any, ctx: Context | None, start: Mapping[str, Any]) -> dict[Any, Any]:
        """The values of group ``i``'s field mapped to one representative per class of values that every later
        predicate treats alike, whatever the other fields it reads (all their possible values are tried)."""
        f = self.groups[i][0]
        later = [o for _, alts in self.groups[i + 1:] for o in alts if f in o.reads and o.when is not None]
        others = {r: self._values(r, part, start) for o in later for r in o.reads if r != f}
        first: dict[tuple, Any] = {}
        rep: dict[Any, Any] = {}
        for x in self._values(f, part, start):
            try:
                sig = tuple(o.when(ctx, *args) for o in later
                            for args in itertools.product(*[[x] if r == f else others[r] for r in o.reads]))
            except Exception:  # noqa: BLE001 - a predicate that cannot take some value: keep the value apart
                sig = ("apart", x)
            rep[x] = first.setdefault(sig, x)
        return rep

    def enumerate(self, part: Any, ctx: Context | None, start: Mapping[str, Any], pin: frozenset = frozenset(),
                  skip: frozenset = frozenset()) -> Iterator[dict[str, Any]]:
        """Every value set :meth:`walk` can give, in the order of the decisions (the first one outermost);
        ``pin``: fields held at their first choice."""
        def rec(i: int, v: dict[str, Any]) -> Iterator[dict[str, Any]]:  # v: this branch's own copy
            for j in range(i, len(self.groups)):
                f, alts = self.groups[j]
                opt = None if f in skip else self._active(alts, ctx, v)
                if opt is None:
                    continue
                ch = _choices(part, opt)
                if len(ch) > 1 and f not in pin:
                    for x in ch:
                        yield from rec(j + 1, {**v, f: x})
                    return
                v[f] = ch[0]
            yield v
        return rec(0, dict(start))

    def canonical(self, spec: Any, ctx: Context | None) -> tuple[Any, frozenset[str]]:
        """``spec`` with every option that is no decision here at its default, and the fields that are."""
        v = dict(vars(spec))
        changed: dict[str, Any] = {}
        for f, d in self._resets:
            if v[f] != d:
                v[f] = changed[f] = d
        active = set()
        for f, alts in self.groups:
            opt = self._active(alts, ctx, v)
            if opt is None:
                x = self.defaults[f]
            else:
                active.add(f)
                x = v[f] if opt.normalize is None else opt.normalize(v[f])
            if x != v[f]:
                v[f] = changed[f] = x
        return (dataclasses.replace(spec, **changed) if changed else spec), frozenset(active)
