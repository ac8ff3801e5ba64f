"""Channel arithmetic (nas.channels): the one copy the builder, the counter and the space share."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nas.channels import ceil_div, cw_groups, ghost_channels, make_divisible, out_size, split_channels


@given(st.data(), st.integers(1, 5), st.sampled_from(["equal", "exponential"]))
def test_split_shares_sum_to_the_channels_are_positive_and_exponential_ones_never_grow(data, groups, split):
    channels = data.draw(st.integers(groups, 4096), label="channels")
    sizes = split_channels(channels, groups, split)
    assert len(sizes) == groups and sum(sizes) == channels and all(s > 0 for s in sizes)
    if split == "equal":  # remainder to the first group, as timm does
        assert set(sizes[1:]) <= {channels // groups} and sizes[0] == channels - (groups - 1) * (channels // groups)
    else:  # non-increasing from the smallest kernel to the largest, about halving while there are channels
        assert list(sizes) == sorted(sizes, reverse=True)
        if channels >= 2 ** (groups - 1):
            assert sizes[1:] == tuple(channels >> min(i + 1, groups - 1) for i in range(1, groups))


@given(st.integers(1, 5), st.integers(0, 4))
def test_a_split_needs_a_channel_per_group(groups, short):
    channels = groups - 1 - short
    if channels >= 0 and groups > 1:
        with pytest.raises(ValueError, match="cannot be split"):
            split_channels(channels, groups, "exponential")


def test_split_examples_from_the_papers():
    assert split_channels(64, 4, "equal") == (16, 16, 16, 16)
    assert split_channels(64, 4, "exponential") == (32, 16, 8, 8)
    assert split_channels(24, 3, "exponential") == (12, 6, 6)
    # remainders go to the first (3x3) group, never to the largest kernel: not (15, 7, 3, 5)
    assert split_channels(30, 4, "exponential") == (17, 7, 3, 3)
    assert split_channels(8, 5, "exponential") == (3, 2, 1, 1, 1)


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
