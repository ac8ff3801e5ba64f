"""Latency-table parts: a network cut into stem, blocks and head, each with its table key (torch-free).

A key names what a part computes once deployed, at its input size:
``"block r28 c24 {...}"`` is a block seeing a 24-channel 28x28 map, the JSON
being :func:`nas.rules.block_fields` (options without effect and folded ACB
branches left out, so blocks that build the same deployed module share one
key). The keys of the shipped tables (``luts/*.json``) must not change: a
new key format makes every table miss. :func:`space_parts` enumerates every
part a space can produce, from the same rules the space samples with, so
every sampled network's parts are in a table built for its space.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from nas import rules
from nas.channels import out_size
from nas.genotype import BlockSpec, Genotype, HeadSpec, StemSpec

block_fields = rules.block_fields


def _key(part: str, res: int, cin: int, fields: Mapping[str, Any]) -> str:
    return f"{part} r{res} c{cin} " + json.dumps(dict(fields), sort_keys=True, separators=(",", ":"))


def _head_fields(h: HeadSpec, num_classes: int) -> dict[str, Any]:
    d: dict[str, Any] = {"features": h.features, "hidden": h.hidden, "kind": h.kind, "classes": num_classes}
    if h.features or h.hidden:
        d["act"] = h.act
    return d


@dataclass(frozen=True)
class Part:
    """One table entry's worth of network: the stem, a block or the head, with its input size."""

    key: str
    kind: str  # "stem" | "block" | "head"
    cin: int
    res: int
    spec: StemSpec | BlockSpec | HeadSpec
    num_classes: int = 1000

    def input_shape(self, batch: int) -> tuple[int, int, int, int]:
        return (batch, self.cin, self.res, self.res)

    @property
    def slot(self) -> tuple:
        """Parts with the same slot can replace each other in a network without changing any shape."""
        if self.kind == "head":
            return ("head", self.cin, self.res)
        return (self.kind, self.cin, self.res, self.spec.out, self.spec.stride)


def stem_part(in_chans: int, res: int, s: StemSpec) -> Part:
    fields: dict[str, Any] = {"out": s.out, "k": s.kernel, "stride": s.stride, "act": s.act}
    if s.pool:  # an option added after the shipped tables: in the key only when on
        fields["pool"] = True
    return Part(_key("stem", res, in_chans, fields), "stem", in_chans, res, s)


@lru_cache(maxsize=65536)
def block_part(cin: int, res: int, b: BlockSpec) -> Part:
    return Part(_key("block", res, cin, block_fields(cin, b)), "block", cin, res, b)


def head_part(cin: int, res: int, h: HeadSpec, num_classes: int) -> Part:
    return Part(_key("head", res, cin, _head_fields(h, num_classes)), "head", cin, res, h, num_classes)


def parts(genotype: Genotype, num_classes: int = 1000) -> list[Part]:
    """The stem, every block (with its input channels and resolution) and the head of a network."""
    g = genotype
    out = [stem_part(g.in_chans, g.resolution, g.stem)]
    for cin, res, b in g.block_inputs():
        out.append(block_part(cin, res, b))
    out.append(head_part(g.last_channels, g.last_size, g.head, num_classes))
    return out


def part_keys(genotype: Genotype, num_classes: int = 1000) -> list[str]:
    """Table keys of a network, in order (a key repeats when a block does)."""
    return [p.key for p in parts(genotype, num_classes)]


def space_parts(space: Any) -> dict[str, Part]:
    """Every distinct part (stem, block in context, head) the space can produce, by table key.

    Exact: the stem's settings; for every stage, each (input channels, resolution) its first block can see
    (the previous stage's widths, every stem stride), each width and every block :func:`nas.rules.blocks`
    draws there (folded options held), plus, when the stage can be deeper than one block, the later blocks
    (input = the stage width, stride 1); the head for every last width."""
    t, found = space.target, {}

    def add(p: Part) -> None:
        found.setdefault(p.key, p)

    ctx = set()
    for out in space.stem.out:
        for setting in rules.stems(space.stem, pin=rules.FOLDED):
            s = StemSpec(**{**setting, "out": out})
            add(stem_part(t.in_chans, t.resolution, s))
            ctx.add((out, s.out_res(t.resolution)))
    for st in space.stages:
        nxt = set()
        for (cin, res), out in itertools.product(sorted(ctx), st.out):
            for b in rules.blocks(st, cin, out, st.stride, pin=rules.FOLDED):
                add(block_part(cin, res, b))
            r1 = out_size(res, st.stride)
            if max(st.repeat) > 1:
                for b in rules.blocks(st, out, out, 1, pin=rules.FOLDED):
                    add(block_part(out, r1, b))
            nxt.add((out, r1))
        ctx = nxt
    for cin, res in sorted(ctx):
        for h in rules.heads(space.head, pin=rules.FOLDED):
            add(head_part(cin, res, h, t.num_classes))
    return found
