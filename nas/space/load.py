"""Loading a space: finding the file, reading the YAML, validating it, and the checks across fields.

A path that does not exist as typed is looked up among the shipped
``search_spaces/`` (then ``search_spaces/reference/``); a file in the working
directory always wins. Every problem is one :class:`~nas.errors.InputError`
line ``file: field.path: problem``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from nas import rules
from nas.channels import cw_groups, make_divisible
from nas.config import ALIASES, COST_METRICS, DATASET_FORMATS, EMBEDDED_DATASETS, TARGETS, check_config
from nas.errors import InputError
from nas.io import read_yaml
from nas.space.errors import fmt_count, format_validation_error, type_name
from nas.space.schema import SearchSpace

SHIPPED_SPACES = Path(__file__).resolve().parents[2] / "search_spaces"


def find_space_file(path: str | Path) -> Path:
    """A path as the user typed it; if it does not exist, the shipped ``search_spaces/`` (then its
    ``reference/``) are searched, also with ``.yaml`` added. A file in the working directory always wins."""
    p = Path(path)
    if p.exists():
        return p
    names = [p] if p.suffix else [p, p.with_suffix(".yaml")]
    if not p.is_absolute():
        for base in (SHIPPED_SPACES, SHIPPED_SPACES / "reference"):
            for n in names:
                if (base / n).exists():
                    return base / n
    return p


def shipped_spaces() -> list[Path]:
    """The search-space YAML files shipped in ``search_spaces/``."""
    return sorted(SHIPPED_SPACES.glob("*.yaml"))


def load_space(path: str | Path) -> SearchSpace:
    """Load and validate a search-space YAML (paths resolved as :func:`find_space_file` does).

    Raises :class:`InputError` ``"file: field.path: problem"`` on any bad input.
    """
    p = find_space_file(path)
    data = read_yaml(p)
    if data is None:
        raise InputError(f"{p}: top level: empty file (a search space needs at least `stages:`)")
    return space_from_dict(data, str(p), default_name=p.stem)


def space_from_dict(data: Any, source: str = "<space>", default_name: str = "space") -> SearchSpace:
    """Validate plain data as a search space; errors name ``source`` and the field path."""
    if not isinstance(data, dict):
        raise InputError(f"{source}: top level: expected a mapping of sections (stages, stem, head, budgets, ...), "
                         f"got {type_name(data)}")
    try:
        space = SearchSpace.model_validate(data)
    except ValidationError as e:
        raise InputError(f"{source}: {format_validation_error(e, SearchSpace)}") from None
    space._source = source
    if not space.name:
        space.name = default_name
    _check(space)
    return space


def _check(space: SearchSpace) -> None:
    """Rules across fields that the field types cannot express; each error names its field."""
    src = space.source

    def fail(where: str, problem: str) -> None:
        raise InputError(f"{src}: {where}: {problem}")

    seen: dict[str, int] = {}
    for i, st in enumerate(space.stages):
        if st.name in ("stem", "head"):
            fail(f"stages[{i}].name", f"{st.name!r} is reserved (it prefixes the {st.name}'s parameters)")
        if st.name in seen:
            fail(f"stages[{i}].name", f"duplicate stage name {st.name!r} (also stages[{seen[st.name]}])")
        seen[st.name] = i
        for name, v in rules.variants(st):
            at = f"stages[{i}]" + (f".ops[{name}]" if name else "")
            if v.groups is not None and v.kernels is not None:
                fail(f"{at}.kernels", "give either groups or kernels, not both")
            if "ghost" in v.kind and any(len(ks) > 1 for ks in v.kernel_sets()):
                fail(f"{at}.{'kernels' if v.kernels is not None else 'groups'}",
                     "a ghost bottleneck (kind ghost) has one depthwise kernel; use single-kernel choices")
    try:
        check_config(space.proxy)
    except InputError as e:
        raise InputError(f"{src}: {e}") from None
    _check_proxy_data(space, fail)
    _check_channels(space, fail)
    metrics = [o.metric for o in space.objectives]
    for i, o in enumerate(space.objectives):
        if metrics.index(o.metric) != i:
            fail(f"objectives[{i}].metric", f"{o.metric} is listed twice")
        want = "maximize" if o.metric in ("accuracy", "reward") else "minimize"
        if o.direction is None:
            o.direction = want
        elif o.direction != want:
            fail(f"objectives[{i}].direction", f"{o.metric} can only be {want}d")
    b = space.budgets
    uses_latency = (b.latency_ms is not None or "latency_ms" in metrics
                    or any(o.cost == "latency_ms" for o in space.objectives)
                    or any(t.latency_ms is not None for t in space.family.values()))
    if uses_latency and not (b.target or b.lut):
        fail("budgets.target", "latency_ms is used but no latency target is named (e.g. target: torch-cpu; "
             "parts are then timed on demand on this machine)")
    if b.target and ALIASES.get(b.target, b.target) not in TARGETS:
        fail("budgets.target", f"unknown latency target {b.target!r} (known: {', '.join(TARGETS)})")
    for name, tier in space.family.items():
        if tier.macs is None and tier.params is None and tier.latency_ms is None:
            fail(f"family.{name}", "a tier needs at least one limit (macs, params or latency_ms)")
        for m in COST_METRICS:
            v, limit = getattr(tier, m), getattr(b, m)
            if v is not None and limit is not None and v > limit:
                fail(f"family.{name}.{m}", f"{fmt_count(v)} exceeds budgets.{m} ({fmt_count(limit)})")


def _check_proxy_data(space: SearchSpace, fail: Callable[[str, str], None]) -> None:
    p = space.proxy
    if p.kind == "table":
        from nas.tables import SHIPPED

        if p.table not in SHIPPED:
            path = Path(p.table).expanduser()
            if not path.is_absolute() and not path.exists() and space.source not in ("<space>", "<string>"):
                path = Path(space.source).parent / path  # a table beside its space file
            if not path.is_file():
                fail("proxy.table", f"{p.table!r} is no table file and no shipped table ({', '.join(SHIPPED)})")
            p.table = str(path.resolve())
        return
    formats = (*DATASET_FORMATS, "auto")
    if p.dataset not in formats:
        fail("proxy.dataset", f"{p.dataset!r} is not one of {', '.join(formats)}")
    if p.dataset not in EMBEDDED_DATASETS and not p.path:
        fail("proxy.path", f"dataset {p.dataset} needs a local path (built in: {', '.join(EMBEDDED_DATASETS)})")


def _check_channels(space: SearchSpace, fail: Callable[[str, str], None]) -> None:
    """Every point of the space must be a buildable genotype, at the target width and at the proxy width:
    grouped 1x1 convs divide their channels, MixConv groups get at least one channel each, and a
    channel-wise classifier sees at least ``num_classes`` channels."""
    width = space.proxy.width

    def widths(c: int) -> list[tuple[int, str]]:
        out = [(c, "")]
        if width != 1.0:
            out.append((make_divisible(c * width, 8), f" (at the proxy width {width:g})"))
        return out

    prev = set(space.stem.out)
    for i, st in enumerate(space.stages):
        cins = prev | (set(st.out) if max(st.repeat) > 1 else set())
        contexts = [(c, o, st.stride) for c in sorted(prev) for o in st.out]
        contexts += [(o, o, 1) for o in st.out] if max(st.repeat) > 1 else []
        for name, v in rules.variants(st):
            at = f"stages[{i}]" + (f".ops[{name}]" if name else "")
            if "ir" in v.kind:  # the ghost bottleneck has no groups; the other kinds are checked below
                _check_ir(v, sorted(cins), widths, lambda f, p, at=at: fail(f"{at}.{f}", p))
            for kind in set(v.kind) & {"dws", "gm", "shuffle"}:
                for cin0, out0, stride in contexts:
                    for (cin, note), (out, _) in zip(widths(cin0), widths(out0), strict=True):
                        _check_cheap(v, kind, cin, out, stride, lambda f, p, at=at, note=note: fail(
                            f"{at}.{f}", p + note))
        prev = set(st.out)
    h = space.head
    if "cw" in h.kind:
        n = space.target.num_classes
        narrowest = min(hd or f or min(prev) for f in h.features for hd in h.hidden)
        if narrowest < n:
            fail("head.kind", f"the channel-wise classifier needs at least num_classes={n} channels, "
                 f"but the head can end with {narrowest}")


def _check_ir(st: Any, cins: list[int], widths: Callable[[int], list[tuple[int, str]]],
              fail: Callable[[str, str], None]) -> None:
    """The channel rules of the inverted residual: its kernel groups, grouped expansion and projection.

    Each rule is checked once per distinct channel count it depends on (not per combination of choices), so
    a stage with many choices stays quick to check."""
    max_g = max(len(ks) for ks in st.kernel_sets())
    conv_groups = [g for g in st.proj_groups if g > 1] if "conv" in st.proj else []
    cw = list(dict.fromkeys(cw_groups(g) for g in st.proj_groups)) if "cw" in st.proj else []
    mids: dict[tuple[int, str], tuple[int, float]] = {}  # (mid, width note) -> the (cin, expand) giving it
    for cin0 in cins:
        for e in st.expand:
            for cin, note in widths(cin0):
                mid = cin if e == 1 else make_divisible(cin * e, 8)
                if mid < max_g:
                    fail("groups", f"{max_g} kernel groups need {max_g} channels, expand {e:g} of {cin} gives "
                         f"{mid}{note}")
                for eg in (st.exp_groups if e != 1 else ()):
                    if eg > 1 and (cin % eg or mid % eg):
                        fail("exp_groups", f"{eg} groups do not divide {cin} -> {mid} channels (expand {e:g}){note}")
                mids.setdefault((mid, note), (cin, e))
    outs = [w for o in st.out for w in widths(o)]
    for field, groups in (("proj_groups", conv_groups), ("proj", cw)):
        what = "channel-wise projection" if field == "proj" else "grouped projection"
        for pg in groups:
            bad_mid = next((m for m in mids if m[0] % pg), None)
            bad_out = next((o for o in outs if o[0] % pg), None)
            if bad_mid is None and bad_out is None:
                continue
            note = (bad_mid or bad_out)[1]
            mid = bad_mid[0] if bad_mid else next(m for m, n in mids if n == note)
            out = bad_out[0] if bad_out else next(o for o, n in outs if n == note)
            fail(field, f"a {what} with {pg} groups does not divide {mid} -> {out} channels{note}")


def _check_cheap(st: Any, kind: str, cin: int, out: int, stride: int, fail: Callable[[str, str], None]) -> None:
    """The channel rules of the ``dws``, ``gm`` and ``shuffle`` kinds in one context (``cin -> out``, stride)."""
    max_g = max(len(ks) for ks in st.kernel_sets())
    field = "kernels" if st.kernels is not None else "groups"
    if kind in ("dws", "gm") and min(cin, out if kind == "gm" else cin) < max_g:
        fail(field, f"{max_g} kernel groups need {max_g} channels, a {kind} block sees {min(cin, out)}")
    if kind == "dws" and ("conv" in st.proj or cin != out):
        for pg in st.proj_groups:
            if pg > 1 and (cin % pg or out % pg):
                fail("proj_groups", f"a grouped 1x1 conv with {pg} groups does not divide {cin} -> {out} channels")
    if kind == "gm":
        for g in dict.fromkeys(cw_groups(pg) for pg in st.proj_groups):
            if cin % g or out % g:
                fail("proj_groups", f"a group module with {g} groups does not divide {cin} -> {out} channels")
    if kind != "shuffle":
        return
    if stride == 2 and out <= cin:
        fail("out", f"a stride-2 shuffle unit concatenates its input, so out must exceed {cin}, got {out}")
    # Each rule once per value it depends on, not per combination of choices (a stage may list many).
    e0 = st.bottleneck[0]
    for eg in st.exp_groups:
        if eg > 1 and cin % eg:
            mid = make_divisible(out * e0, eg)
            fail("exp_groups", f"{eg} groups do not divide {cin} -> {mid} channels (bottleneck {e0:g})")
    for pg in st.proj_groups:
        # the branch of a stride-2 unit, and of the same unit at stride 1 (a proxy may drop the stride)
        for branch in {out - cin if stride == 2 else out, out}:
            if pg > 1 and branch % pg:
                mid = make_divisible(out * e0, pg)
                fail("proj_groups", f"a shuffle unit's grouped 1x1 conv with {pg} groups does not divide "
                     f"{mid} -> {branch} channels")
    e, mid = _narrowest_mid(out, st.bottleneck, frozenset(math.lcm(eg, pg) for eg in st.exp_groups
                                                         for pg in st.proj_groups))
    if mid < max_g:
        fail(field, f"{max_g} kernel groups need {max_g} channels, bottleneck {e:g} of {out} gives {mid}")


@lru_cache(maxsize=4096)
def _narrowest_mid(out: int, bottlenecks: tuple[float, ...], units: frozenset[int]) -> tuple[float, int]:
    """The narrowest middle width of a shuffle unit (``mid`` is a multiple of both group counts)."""
    return min(((e, make_divisible(out * e, u)) for e in bottlenecks for u in units), key=lambda x: x[1])
