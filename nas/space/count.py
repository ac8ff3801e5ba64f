"""Exact size of a space without enumerating it.

Per stage, the blocks a context (input width, output width, stride) allows
are counted by :func:`nas.rules.count_blocks`; stages multiply, summed over
the widths that connect them, by dynamic programming over (stage, input
width). With ``share: stage`` a stage of depth ``d`` is one block choice;
with ``share: block`` it is the first block's choices times the later
blocks' to the power ``d - 1``.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from nas import rules


def count(space: Any) -> int:
    """Number of distinct genotypes of ``space``."""
    n_stages = len(space.stages)

    @cache
    def rest(i: int, cin: int) -> int:
        if i == n_stages:
            return 1
        st = space.stages[i]
        total = 0
        for out in st.out:
            first = rules.count_blocks(st, cin, out, st.stride)
            if st.share == "stage":
                n = first * len(st.repeat)
            else:
                later = rules.count_blocks(st, out, out, 1)
                n = sum(first * later ** (r - 1) for r in st.repeat)
            total += n * rest(i + 1, out)
        return total

    return rules.count_stem(space.stem) * rules.count_head(space.head) * sum(rest(0, c) for c in space.stem.out)
