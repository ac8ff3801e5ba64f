"""Exact size of a space without enumerating it.

Per stage, the blocks a context (input width, output width, stride) allows
are counted by :func:`nas.rules.count_blocks`; stages multiply, summed over
the widths that connect them, by dynamic programming over (stage, input
width). With ``share: stage`` a stage of depth ``d`` is one block choice;
with ``share: block`` it is the first block's choices times the later
blocks' to the power ``d - 1``. Stages that may draw an identity (``kind:
skip``) are counted after dropping their no-op identities (``_with_skip``).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

from nas import rules


def count(space: Any) -> int:
    """Number of distinct genotypes of ``space``."""
    n_stages = len(space.stages)
    blocks = _block_counter(space)

    @cache
    def rest(i: int, cin: int) -> int:
        if i == n_stages:
            return 1
        st = space.stages[i]
        total = 0
        for out in st.out:
            first = blocks(i, cin, out, st.stride)
            if has_skip(st):
                n = _with_skip(st, first, blocks(i, out, out, 1), st.stride == 1 and cin == out)
            elif st.share == "stage":
                n = first * len(st.repeat)
            else:
                later = blocks(i, out, out, 1)
                n = sum(first * later ** (r - 1) for r in st.repeat)
            total += n * rest(i + 1, out)
        return total

    return rules.count_stem(space.stem) * rules.count_head(space.head) * sum(rest(0, c) for c in space.stem.out)


def has_skip(stage: Any) -> bool:
    """Whether a stage may draw an identity block (``kind: skip``, or an op of that kind)."""
    return any("skip" in v.kind for _, v in rules.variants(stage))


def _with_skip(st: Any, first: int, later: int, noop_first: bool) -> int:
    """Networks of a stage that may draw identities (``later`` counts the one no-op skip among its blocks).

    No-op identities vanish from the canonical form, so a stage is its non-skip blocks after the first, in
    order: any number from 0 to ``max(repeat) - 1`` of them, whatever the depth drawn (the rest are skips).
    Where the first block keeps the shape it may vanish too (then 0 to ``max(repeat)`` blocks in all). With
    ``share: stage`` a skip makes the whole stage that one skip, whatever its depth."""
    if st.share == "stage":
        return (first - 1) * len(st.repeat) + 1
    r = max(st.repeat)
    if noop_first:
        return sum((later - 1) ** j for j in range(r + 1))
    return first * sum((later - 1) ** j for j in range(r))


def count_contexts(space: Any, skip: frozenset = frozenset()) -> int:
    """Distinct blocks summed over every context a block can sit in (stage, input and output width, stride),
    ``skip``: fields not told apart. What an exact search over blocks in context (the cheapest network) costs."""
    blocks = _block_counter(space, skip)
    total, prev = 0, space.stem.out
    for i, st in enumerate(space.stages):
        total += sum(blocks(i, cin, out, st.stride) for cin in prev for out in st.out)
        if max(st.repeat) > 1:
            total += sum(blocks(i, out, out, 1) for out in st.out)
        prev = st.out
    return total


def _block_counter(space: Any, skip: frozenset = frozenset()) -> Callable[[int, int, int, int], int]:
    """``blocks(stage index, cin, out, stride)``: the number of distinct blocks in that context, memoised."""
    known: dict[tuple[int, int, str, int, int], list[tuple[tuple, int]]] = {}
    ops = [rules.variants(st) for st in space.stages]

    def kind(i: int, j: int, k: str, cin: int, out: int, stride: int) -> int:
        # A kind's count depends on the context only through what its predicates read of it (most read nothing,
        # some the stride or cin == out): a count is reused for every context that agrees on what was read.
        seen = known.setdefault((i, j, k, out, stride), [])
        ctx = {"cin": cin, "out": out, "stride": stride}
        for reads, n in seen:
            if all(ctx[f] == v for f, v in reads):
                return n
        rec = _Reads(ctx)
        n = rules.count_kind(ops[i][j][1], k, out, stride, rec, skip)
        seen.append((tuple((f, ctx[f]) for f in sorted(rec.read)), n))
        return n

    def blocks(i: int, cin: int, out: int, stride: int) -> int:
        return sum(kind(i, j, k, cin, out, stride) for j, (_, v) in enumerate(ops[i]) for k in v.kind)

    return blocks


class _Reads:
    """A block context (``cin``, ``out``, ``stride``) that notes which of its fields were read."""

    def __init__(self, values: dict[str, int]) -> None:
        self._values = values
        self.read: set[str] = set()

    def __getattr__(self, name: str) -> int:
        try:
            value = self._values[name]
        except KeyError:
            raise AttributeError(name) from None
        self.read.add(name)
        return value
