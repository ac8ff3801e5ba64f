"""Hypothesis strategies for genotypes and small search spaces (they shrink to the smallest failing case)."""

from __future__ import annotations

from hypothesis import strategies as st

from nas.genotype import ACTS, BlockSpec, Genotype, HeadSpec, StemSpec

# Channel counts are multiples of 8, so every group count below divides them.
WIDTHS = st.sampled_from([16, 24, 32])


@st.composite
def blocks(draw: st.DrawFn, stride: int, cin: int = 16) -> BlockSpec:
    """A valid block of any kind with ``cin`` input channels, with options that may or may not have an effect
    where it lands."""
    common = dict(
        out=draw(WIDTHS), stride=stride, act=draw(st.sampled_from(ACTS)),
        se=draw(st.sampled_from([0.0, 0.25, 0.5])), se_base=draw(st.sampled_from(["in", "mid"])),
        se_gate=draw(st.sampled_from(["sigmoid", "hsigmoid"])), se_divisor=draw(st.sampled_from([1, 4, 8])),
        se_act=draw(st.sampled_from([None, "relu", "hswish"])), ghost_kernel=draw(st.sampled_from([1, 3, 5])),
        expand=draw(st.sampled_from([1.0, 3.0, 6.0])), acb=draw(st.booleans()),
    )
    kind = draw(st.sampled_from(["ir", "ir", "ghost", "dws", "gm", "shuffle"]))
    if kind == "ghost":
        return BlockSpec(kind="ghost", kernels=(draw(st.sampled_from([1, 3, 5])),), ghost=draw(st.integers(1, 4)),
                         **common)
    kernels = tuple(draw(st.lists(st.sampled_from([1, 3, 5, 7, 9, 11]), min_size=1, max_size=5, unique=True)))
    depthwise = dict(kernels=kernels, split=draw(st.sampled_from(["equal", "exponential"])),
                     dilation=draw(st.sampled_from([1, 2])))
    groups = st.sampled_from([1, 2, 4])
    if kind in ("dws", "gm"):
        proj = draw(st.sampled_from(["conv", "cw"]))
        if kind == "dws" and proj == "cw":
            common["out"] = cin  # DWSCW keeps the width
        return BlockSpec(kind=kind, proj=proj, proj_groups=draw(groups), ghost=draw(st.integers(1, 2)),
                         **depthwise, **common)
    if kind == "shuffle":
        if stride == 2:  # the pooled input is concatenated: out = cin + branch
            common["out"] = cin + draw(st.sampled_from([8, 16, 24]))
        common["expand"] = draw(st.sampled_from([0.5, 1.0]))  # mid = out * expand: at least 8 channels
        return BlockSpec(kind="shuffle", exp_groups=draw(groups), proj_groups=draw(groups),
                         mid=draw(st.sampled_from([None, 24])), **depthwise, **common)
    ghost = draw(st.integers(1, 4))
    ir_groups = st.sampled_from([1]) if ghost > 1 else groups
    return BlockSpec(
        mid=draw(st.sampled_from([None, 40])), exp_groups=draw(ir_groups), proj_groups=draw(ir_groups),
        shuffle=draw(st.booleans()), ghost=ghost, proj=draw(st.sampled_from(["conv", "cw"])), **depthwise, **common,
    )


@st.composite
def genotypes(draw: st.DrawFn) -> Genotype:
    stem = StemSpec(out=draw(WIDTHS), kernel=draw(st.sampled_from([1, 3, 5])), stride=draw(st.sampled_from([1, 2])),
                    act=draw(st.sampled_from(ACTS)), acb=draw(st.booleans()), pool=draw(st.booleans()))
    stages, cin = [], stem.out
    for _ in range(draw(st.integers(1, 3))):
        stage = []
        for i in range(draw(st.integers(1, 3))):
            b = draw(blocks(draw(st.sampled_from([1, 2])) if i == 0 else 1, cin))
            stage.append(b)
            cin = b.out
        stages.append(tuple(stage))
    head = HeadSpec(features=draw(st.sampled_from([0, 32, 48])), hidden=draw(st.sampled_from([0, 24])),
                    act=draw(st.sampled_from(ACTS)), kind="fc", dropout=draw(st.sampled_from([0.0, 0.2])))
    return Genotype(stages=tuple(stages), stem=stem, head=head, resolution=draw(st.sampled_from([32, 33, 48])),
                    name=draw(st.sampled_from(["", "net"])))


_BLOCK_OPTIONS = {"kernels": ["1", "3", "3-5", "1-3-5"], "expand": [1, 2], "bottleneck": [0.5, 1],
                  "se": [0, 0.25],
                  "se_gate": ["sigmoid", "hsigmoid"], "ghost": [1, 2], "ghost_kernel": [3, 5], "dilation": [1, 2],
                  "act": ["relu", "swish"]}
_IR_OPTIONS = {"split": ["equal", "exponential"], "acb": [False, True], "exp_groups": [1, 2],
               "proj_groups": [1, 2, 4], "shuffle": [False, True], "proj": ["conv", "cw"]}


@st.composite
def small_spaces(draw: st.DrawFn) -> dict:
    """A small search space (as YAML data): a few options vary per stage, each of the others is fixed."""
    def pick(values: list, vary: bool | None = None) -> list:
        if draw(st.booleans()) if vary is None else vary:
            return draw(st.lists(st.sampled_from(values), min_size=2, max_size=2, unique=True))
        return [draw(st.sampled_from(values))]

    def stage(name: str) -> dict:
        kinds = pick(["ir", "ghost", "dws", "gm", "shuffle"])
        options = dict(_BLOCK_OPTIONS) if "ghost" not in kinds else {
            **_BLOCK_OPTIONS, "kernels": ["1", "3", "5"]}
        if "ghost" not in kinds:
            options.update(_IR_OPTIONS)
        vary = draw(st.sets(st.sampled_from(sorted(options)), max_size=4))
        # a stride-2 shuffle unit needs out > cin, which these widths do not promise (test_space covers it)
        stride = 1 if "shuffle" in kinds else draw(st.sampled_from([1, 2]))
        d = {"name": name, "stride": stride, "out": pick([16, 24]),
             "repeat": pick([1, 2]), "share": draw(st.sampled_from(["stage", "block"])),
             "kind": kinds}
        d.update({k: pick(v, k in vary) for k, v in options.items()})
        return d

    return {"target": {"resolution": 16, "num_classes": 10},
            "stem": {"out": pick([16, 24]), "kernel": pick([1, 3]),
                     "acb": pick([False, True]), "pool": pick([False, True])},
            "stages": [stage(f"s{i}") for i in range(draw(st.integers(1, 2)))],
            "head": {"features": pick([0, 16]), "act": pick(["relu", "swish"]),
                     "kind": pick(["fc", "cw"]), "dropout": pick([0.0, 0.1])}}
