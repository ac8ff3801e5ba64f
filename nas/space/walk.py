"""The walk: one pass over a space's decisions, in a fixed order, that builds a genotype.

Stem, then per stage its width (``out``), depth (``repeat``) and block
options, then the head. With ``share: stage`` a stage's blocks take one
draw (parameters ``s2.kernels``); with ``share: block`` each block draws its
own (``s2.b0.kernels``, ``s2.b1.kernels``, ...). Which block options are
decisions is :mod:`nas.rules`' business; a fixed option (one choice) is no
decision and no Optuna parameter. The decision source makes the walk a
suggestion (Optuna), a random sample, a replay of stored parameters, or a
reading of a genotype (:func:`read`, for ``contains`` and ``params_of``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

from nas import rules
from nas.errors import InputError
from nas.genotype import BlockSpec, Genotype
from nas.space.count import has_skip
from nas.space.errors import show
from nas.space.sources import Outside, ReadSource, Source


def _choose(src: Source, name: str, choices: Sequence[Any], actual: Callable[[Genotype], Any],
            field: str | None = None) -> Any:
    return choices[0] if len(choices) == 1 else src.pick(name, choices, actual, field)


def _picker(src: Source, prefix: str, actual: Callable[[Genotype], Any]) -> rules.Pick:
    return lambda name, choices, field: src.pick(f"{prefix}.{name}", choices, actual, field)


def walk(space: Any, src: Source) -> Genotype:
    """The genotype whose every decision ``src`` takes."""
    stem = rules.walk_stem(_picker(src, "stem", lambda g: g.stem), space.stem)
    stages = []
    cin = stem.out
    for si, stage in enumerate(space.stages):
        def first_of(g: Genotype, si: int = si) -> BlockSpec:
            return g.stages[si][0]

        out = _choose(src, f"{stage.name}.out", stage.out, first_of, "out")
        depth = _choose(src, f"{stage.name}.repeat", stage.repeat, lambda g, si=si: len(g.stages[si]))
        if stage.share == "stage":
            first = rules.walk_block(_picker(src, stage.name, first_of), stage, cin, out, stage.stride)
            rest = rules.canonical_block(dataclasses.replace(first, stride=1), out)
            blocks = (first,) + (rest,) * (depth - 1)
        else:
            drawn, c = [], cin
            for bi in range(depth):
                pick = _picker(src, f"{stage.name}.b{bi}", lambda g, si=si, bi=bi: g.stages[si][bi])
                drawn.append(rules.walk_block(pick, stage, c, out, stage.stride if bi == 0 else 1))
                c = out
            blocks = tuple(drawn)
        stages.append(rules.canonical_stage(blocks, cin))
        cin = out
    head = rules.walk_head(_picker(src, "head", lambda g: g.head), space.head)
    return Genotype(stages=tuple(stages), stem=stem, head=head, resolution=space.target.resolution,
                    in_chans=space.target.in_chans)


def read(space: Any, genotype: Genotype) -> tuple[str | None, dict[str, Any]]:
    """(reason or None, params): walk the space taking each decision from ``genotype``."""
    t = space.target
    if genotype.resolution != t.resolution:
        return f"resolution: {genotype.resolution} but the space's target.resolution is {t.resolution}", {}
    if genotype.in_chans != t.in_chans:
        return f"in_chans: {genotype.in_chans} but the space's target.in_chans is {t.in_chans}", {}
    if len(genotype.stages) != len(space.stages):
        return f"stages: {len(genotype.stages)} stages but the space has {len(space.stages)}", {}
    for si, (stage, blocks) in enumerate(zip(space.stages, genotype.stages, strict=True)):
        strides = [b.stride for b in blocks]
        if strides != [stage.stride] + [1] * (len(blocks) - 1):
            return (f"stages[{si}]: block strides {strides}, but stage {stage.name} has stride {stage.stride} "
                    "on its first block only"), {}
        if any(b.out != blocks[0].out for b in blocks):
            return f"stages[{si}]: blocks of one stage must share their width (out)", {}
    try:
        g = rules.canonical(genotype)
    except InputError as e:
        return str(e), {}
    src = ReadSource(_pad(space, g))
    try:
        rebuilt = walk(space, src)
    except Outside as e:
        return str(e), {}
    diff = _first_difference(rebuilt, g)
    if diff:
        return diff, {}
    return None, src.params


def _pad(space: Any, g: Genotype) -> Genotype:
    """``g`` with the no-op identities the canonical form dropped put back at the end of each stage, up to the
    least depth the stage allows, so that the walk can read its depth and blocks from it."""
    stages = []
    for stage, blocks in zip(space.stages, g.stages, strict=True):
        n = len(blocks) - (len(blocks) == 1 and rules.is_noop(blocks[0], _cin_of(g, len(stages))))
        if has_skip(stage) and n not in stage.repeat:
            depth = min((r for r in stage.repeat if r >= max(n, 1)), default=len(blocks))
            blocks = blocks[:max(n, 1)] + (BlockSpec(out=blocks[0].out, kind="skip"),) * (depth - max(n, 1))
        stages.append(blocks)
    return dataclasses.replace(g, stages=tuple(stages))


def _cin_of(g: Genotype, si: int) -> int:
    return g.stages[si - 1][-1].out if si else g.stem.out


def _first_difference(a: Genotype, b: Genotype) -> str | None:
    """Where ``b`` (the genotype asked about) differs from ``a`` (the space's reading of it)."""
    for part in ("stem", "head"):
        for f in dataclasses.fields(getattr(a, part)):
            va, vb = getattr(getattr(a, part), f.name), getattr(getattr(b, part), f.name)
            if va != vb:
                return f"{part}.{f.name}: {show(vb)}, but the space has {show(va)} here"
    for si, (sa, sb) in enumerate(zip(a.stages, b.stages, strict=True)):
        for bi, (ba, bb) in enumerate(zip(sa, sb, strict=True)):
            for f in dataclasses.fields(BlockSpec):
                va, vb = getattr(ba, f.name), getattr(bb, f.name)
                if va != vb:
                    return f"stages[{si}].blocks[{bi}].{f.name}: {show(vb)}, but the space has {show(va)} here"
    return None
