"""The suggestion rules: hand-checkable values, fastai's valley against an independent
formulation, and slopes against log10(lr) against the other range tests' choices."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lrlab.finder import Suggestion, lr_ramp, minimum, steepest, valley, window

losses_strategy = st.lists(st.floats(0.0, 10.0, allow_nan=False), min_size=2, max_size=60)


def _valley_reference(losses: list[float]) -> int:
    """fastai's valley restated: L is the length of the longest strictly decreasing
    subsequence, e the first index where one of length L ends, the valley starts at e - L, and
    the suggestion is a third plus a sixth of the way down it (an index of -1 is the last)."""
    n = len(losses)
    lds = [1] * n
    for i in range(n):
        lds[i] = 1 + max((lds[j] for j in range(i) if losses[j] > losses[i]), default=0)
    longest = max(lds)
    end = lds.index(longest)
    start = end - longest if longest > 1 else 0
    sections = (end - start) / 3
    return (start + int(sections) + int(sections / 2)) % n


@given(losses_strategy)
def test_valley_matches_an_independent_statement_of_fastais_rule(losses: list[float]) -> None:
    lrs = [10.0 ** (i / 10) for i in range(len(losses))]
    found = valley(lrs, losses)
    assert found is not None
    assert found.index == _valley_reference(losses)
    assert found.lr == lrs[found.index]


@pytest.mark.parametrize("n", [3, 10, 90])
def test_valley_on_a_falling_curve(n: int) -> None:
    # The whole curve is the valley, starting one before it: -1 + int(n/3) + int(n/6).
    found = valley(list(range(1, n + 1)), [float(n - i) for i in range(n)])
    assert found is not None
    assert found.index == -1 + int(n / 3) + int(n / 6)


def test_valley_on_a_rising_curve_is_its_first_point() -> None:
    assert valley([1.0, 2.0, 3.0], [1.0, 2.0, 3.0]) == Suggestion("valley", 1.0, 0)


@given(losses_strategy.filter(lambda v: min(np.gradient(v)) < 0))
def test_steepest_is_torch_lr_finders_choice_on_an_exponential_ramp(losses: list[float]) -> None:
    # On an exponential ramp log10(lr) is the step index times a constant, so the slope
    # against it has its minimum where torch-lr-finder's np.gradient(losses) has.
    lrs = lr_ramp(1e-6, 1.0, len(losses))
    found = steepest(lrs, losses)
    assert found is not None
    slopes = np.gradient(np.array(losses))
    assert slopes[found.index] == pytest.approx(slopes.min(), abs=1e-9)


def test_steepest_reads_log_lr_not_linear_lr() -> None:
    # The loss falls by 1 per decade, faster in the decade 0.1 .. 1; against linear LR (as
    # Lightning's suggestion takes it) the first, tiny-LR decade looks steepest instead.
    lrs = [1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0]
    losses = [6.0, 5.0, 4.0, 3.0, 1.0, 0.9]
    found = steepest(lrs, losses)
    assert found is not None
    assert found.lr in (0.1, 1.0)
    linear = np.gradient(np.array(losses), np.array(lrs))
    assert lrs[int(np.argmin(linear))] == 1e-4


def test_minimum_is_a_tenth_of_the_lowest_point() -> None:
    found = minimum([0.001, 0.01, 0.1, 1.0], [3.0, 2.0, 1.5, 4.0])
    assert found is not None
    assert (found.lr, found.index) == (0.01, 2)


@pytest.mark.parametrize("rule", [steepest, valley, minimum])
def test_rules_need_two_points(rule: object) -> None:
    assert rule([0.1], [1.0]) is None  # type: ignore[operator]


@given(st.integers(10, 400), st.integers(0, 400), st.integers(0, 400))
def test_window(steps: int, recorded: int, bad: int) -> None:
    smoothed = [1.0] * min(recorded, steps)
    if bad < len(smoothed):
        smoothed[bad] = math.nan
    begin, end = window(steps, smoothed)
    assert begin == steps // 10
    assert end >= begin
    assert end <= max(begin, len(smoothed) - 5)
    assert all(math.isfinite(v) for v in smoothed[begin:end])
