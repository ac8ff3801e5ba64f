"""Budgets: the target network's costs, the relative excess over each budget, and what a space can meet.

A space's ``budgets`` (MACs, params, latency) are hard constraints checked
before any training and, as relative excesses, Optuna constraint values.
Costs are always those of the target network (``target.resolution``,
``target.num_classes``), whatever the proxy trains. :func:`validate_budgets`
rejects, before a search starts, a budget or family tier that no
architecture of the space meets, naming the smallest achievable value
(:func:`cheapest` finds it exactly).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from functools import cache
from pathlib import Path

from nas import rules
from nas.channels import out_size
from nas.cost import macs as _macs
from nas.cost.table import find_table
from nas.errors import InputError
from nas.genotype import BlockSpec, Genotype, HeadSpec, StemSpec
from nas.space import SearchSpace, fmt_count
from nas.space.count import count_contexts
from nas.space.sources import SmallestSource
from nas.space.walk import walk

# Options that change no MAC and no parameter: held at their first choice while searching the cheapest network.
_COST_FREE = frozenset({"act", "se_gate", "shuffle", "dropout"})
_CHEAP_METRICS = ("macs", "params")
MAX_CHEAPEST_BLOCKS = 250_000  # blocks costed by the exact cheapest-network search (mixnet.yaml: about 59,000)


def target_cost(space: SearchSpace, genotype: Genotype) -> _macs.Cost:
    """MACs and params of the target network (``target.resolution``, ``target.num_classes``)."""
    return _macs.count(genotype, resolution=space.target.resolution, num_classes=space.target.num_classes)


def violations(space: SearchSpace, genotype: Genotype, cost: _macs.Cost | None = None,
               latency_ms: float | None = None,
               latency_fn: Callable[[Genotype], float] | None = None) -> dict[str, float]:
    """Relative excess per budget, ``(value - budget) / budget``: ``<= 0`` is within budget.

    These are Optuna constraint values (the proposer stores them as the trial's ``constraints`` list;
    NSGA-II, TPE and GP then prefer feasible trials). ``latency_ms`` (or ``latency_fn``, or else
    :func:`latency_predictor`) is needed only when ``budgets.latency_ms`` is set.
    """
    b = space.budgets
    out: dict[str, float] = {}
    if b.macs is not None or b.params is not None:
        cost = cost or target_cost(space, genotype)
        if b.macs is not None:
            out["macs"] = (cost.macs - b.macs) / b.macs
        if b.params is not None:
            out["params"] = (cost.params - b.params) / b.params
    if b.latency_ms is not None:
        if latency_ms is None:
            latency_ms = (latency_fn or latency_predictor(space))(genotype)
        out["latency_ms"] = (latency_ms - b.latency_ms) / b.latency_ms
    return out


def is_feasible(space: SearchSpace, genotype: Genotype, cost: _macs.Cost | None = None,
                latency_ms: float | None = None) -> bool:
    """Whether ``genotype`` meets every budget of ``space``."""
    return all(v <= 0 for v in violations(space, genotype, cost, latency_ms).values())


def latency_predictor(space: SearchSpace) -> Callable[[Genotype], float]:
    """Predicted latency (ms) of the target network: the LUT ``budgets.lut`` (a path as given, else
    beside the space file, else among the shipped ``luts/``) or else this machine's table for
    ``budgets.target``, parts it lacks timed on demand (:class:`nas.latency.LatencyPredictor`); one per
    space object."""
    b = space.budgets
    if not (b.lut or b.target):
        raise InputError(f"{space.source}: budgets.target: latency needs a target or a LUT file")

    def make() -> Callable[[Genotype], float]:
        from nas.latency import predictor

        lut = find_table(b.lut, near=Path(space.source).parent) if b.lut else None
        return predictor(b.target, lut, num_classes=space.target.num_classes, derived_unit_ms=b.unit_ms)

    return space.memo("latency_predictor", make)


def min_achievable(space: SearchSpace) -> dict[str, int]:
    """Smallest MACs and params any architecture of the space has (exact; see :func:`cheapest`)."""
    return {m: getattr(target_cost(space, cheapest(space, m)), m) for m in _CHEAP_METRICS}


def cheapest(space: SearchSpace, metric: str = "macs") -> Genotype:
    """An architecture of the space with the smallest ``metric`` (``macs`` or ``params``), computed once
    per space object."""
    if metric not in _CHEAP_METRICS:
        raise ValueError(f"metric must be macs or params, got {metric!r}")
    return space.memo("cheapest", lambda: _cheapest(space))[metric]


def validate_budgets(space: SearchSpace) -> None:
    """Reject a budget or family tier no architecture can meet, before any search starts.

    One line naming the field and the smallest achievable value. MACs and params are checked one at a
    time (exactly); latency budgets are checked per architecture during the search.
    """
    limits = [(f"{where}.{m}", m, getattr(lim, m))
              for where, lim in [("budgets", space.budgets), *((f"family.{k}", t) for k, t in space.family.items())]
              for m in _CHEAP_METRICS if getattr(lim, m) is not None]
    if not limits:
        return
    # Usually a few architectures already show every limit can be met; the exact minimum costs more.
    probes = [walk(space, SmallestSource()), *(space.sample(i) for i in range(16))]
    costs = [target_cost(space, g) for g in probes]
    if all(limit >= min(getattr(c, m) for c in costs) for _, m, limit in limits):
        return
    mins = min_achievable(space)
    for where, m, limit in limits:
        if limit < mins[m]:
            unit = " MACs" if m == "macs" else " parameters"
            raise InputError(f"{space.source}: {where}: no architecture in this space meets "
                             f"{fmt_count(limit)}{unit}; the smallest achievable is {fmt_count(mins[m])}")


# -- the cheapest architecture ----------------------------------------------------------------------------------

def _part_cost(stem: StemSpec, blocks: tuple[BlockSpec, ...], head: HeadSpec, resolution: int, in_chans: int,
               num_classes: int, part: int) -> tuple[int, int]:
    g = Genotype(stages=(blocks,), stem=stem, head=head, resolution=resolution, in_chans=in_chans)
    row = _macs.breakdown(g, num_classes=num_classes)[part]
    return row.macs, row.params


def _cheapest(space: SearchSpace) -> dict[str, Genotype]:
    """The architectures with the fewest MACs and with the fewest params, exactly, by dynamic programming:
    costs add up over stem, blocks and head, and a block's cost depends only on its options, its input
    channels and its input resolution (so each block is minimised over its options in its context)."""
    n = count_contexts(space, _COST_FREE)  # an untrusted space may hold billions: refuse before enumerating
    if n > MAX_CHEAPEST_BLOCKS:
        raise InputError(f"{space.source}: stages: {n:,} blocks in context to cost for the cheapest network (at most "
                         f"{MAX_CHEAPEST_BLOCKS:,}); narrow the stages' choices")
    t = space.target
    dummy_head = HeadSpec(features=0, dropout=0.0)

    @cache
    def block_cost(b: BlockSpec, cin: int, r: int) -> tuple[int, int]:
        return _part_cost(StemSpec(out=cin, kernel=1, stride=1), (b,), dummy_head, r, 1, 1, 1)

    @cache
    def leaves(i: int, cin: int, out: int, stride: int) -> tuple[BlockSpec, ...]:
        return tuple(rules.blocks(space.stages[i], cin, out, stride, pin=_COST_FREE))

    @cache
    def stage_options(key: int, i: int, cin: int, out: int, r: int) -> list[tuple[int, BlockSpec, BlockSpec]]:
        """Per depth choice: (cost, first block, later block) of the cheapest stage."""
        st = space.stages[i]
        r1 = out_size(r, st.stride)
        if st.share == "stage":
            best: dict[int, tuple[int, BlockSpec, BlockSpec]] = {}
            for b in leaves(i, cin, out, st.stride):
                later = rules.canonical_block(dataclasses.replace(b, stride=1), out)
                c0, c1 = block_cost(b, cin, r)[key], block_cost(later, out, r1)[key]
                for d in st.repeat:
                    c = c0 + (d - 1) * c1
                    if d not in best or c < best[d][0]:
                        best[d] = (c, b, later)
            return [best[d] for d in st.repeat]
        first = min(leaves(i, cin, out, st.stride), key=lambda b: block_cost(b, cin, r)[key])
        later = min(leaves(i, out, out, 1), key=lambda b: block_cost(b, out, r1)[key])
        c0, c1 = block_cost(first, cin, r)[key], block_cost(later, out, r1)[key]
        return [(c0 + (d - 1) * c1, first, later) for d in st.repeat]

    @cache
    def head_best(key: int, cin: int, r: int) -> tuple[int, HeadSpec]:
        stem, probe = StemSpec(out=cin, kernel=1, stride=1), BlockSpec(out=cin, expand=1.0)
        costs = ((_part_cost(stem, (probe,), h, r, 1, t.num_classes, -1)[key], h)
                 for h in rules.heads(space.head, pin=_COST_FREE))
        return min(costs, key=lambda x: x[0])

    @cache
    def rest(key: int, i: int, cin: int, r: int) -> tuple[int, tuple, HeadSpec]:
        """(cost, stages, head) of the cheapest network from stage ``i`` on."""
        if i == len(space.stages):
            c, h = head_best(key, cin, r)
            return c, (), h
        st = space.stages[i]
        best: tuple[int, tuple, HeadSpec] | None = None
        for out in st.out:
            tail_cost, tail, head = rest(key, i + 1, out, out_size(r, st.stride))
            for d, (c, first, later) in zip(st.repeat, stage_options(key, i, cin, out, r), strict=True):
                if best is None or c + tail_cost < best[0]:
                    best = (c + tail_cost, ((first,) + (later,) * (d - 1),) + tail, head)
        assert best is not None
        return best

    found: dict[str, Genotype] = {}
    for key, metric in enumerate(_CHEAP_METRICS):
        best_g: tuple[int, Genotype] | None = None
        for setting in rules.stems(space.stem, pin=_COST_FREE):
            for out in space.stem.out:
                stem = StemSpec(**{**setting, "out": out})
                probe = BlockSpec(out=out, expand=1.0)
                c_stem = _part_cost(stem, (probe,), dummy_head, t.resolution, t.in_chans, 1, 0)[key]
                c_rest, stages, head = rest(key, 0, out, stem.out_res(t.resolution))
                if best_g is None or c_stem + c_rest < best_g[0]:
                    best_g = (c_stem + c_rest, Genotype(stages=stages, stem=stem, head=head,
                                                        resolution=t.resolution, in_chans=t.in_chans))
        assert best_g is not None
        found[metric] = best_g[1]
    return found
