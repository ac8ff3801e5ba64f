"""Channel arithmetic (nas.channels): the one copy the builder, the counter and the space share."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from nas.channels import ceil_div, cw_groups, ghost_channels, make_divisible, out_size, split_channels


@given(st.integers(1, 4096), st.integers(1, 5), st.sampled_from(["equal", "exponential"]))
def test_split_shares_sum_to_the_channels_and_are_positive(channels, groups, split):
    need = groups if split == "equal" else 2 ** (groups - 1)  # what a genotype must give (nas.genotype_check)
    sizes = split_channels(channels, groups, split)
    assert len(sizes) == groups and sum(sizes) == channels
    if channels >= need:
        assert all(s > 0 for s in sizes)
    if split == "equal":  # remainder to the first group, as timm does
        assert set(sizes[1:]) <= {channels // groups} and sizes[0] == channels - (groups - 1) * (channels // groups)


def test_split_examples_from_the_papers():
    assert split_channels(64, 4, "equal") == (16, 16, 16, 16)
    assert split_channels(64, 4, "exponential") == (32, 16, 8, 8)
    assert split_channels(24, 3, "exponential") == (12, 6, 6)


@given(st.floats(1, 5000, allow_nan=False), st.sampled_from([1, 4, 8, 16]))
def test_make_divisible_rounds_to_a_multiple_and_never_far_below(v, divisor):
    d = make_divisible(v, divisor)
    assert d % divisor == 0 and d >= divisor and d >= 0.9 * v


@given(st.integers(1, 4096), st.integers(1, 8))
def test_ghost_channels_cover_the_output(out, ratio):
    init, cheap = ghost_channels(out, ratio)
    assert init == math.ceil(out / ratio) and cheap == init * (ratio - 1) and init + cheap >= out


@given(st.integers(0, 10**6), st.integers(1, 64))
def test_out_size_is_the_ceiling(r, stride):
    assert out_size(r, stride) == ceil_div(r, stride) == math.ceil(r / stride)


def test_cw_groups_need_two():
    assert [cw_groups(g) for g in (1, 2, 4)] == [2, 2, 4]
