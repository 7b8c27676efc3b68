"""Properties of every schedule over hypothesis-drawn arguments: finite, non-negative, monotone
where promised, a pure function of the step, and a spec string that round-trips."""

from __future__ import annotations

import itertools
import math
import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lrlab.schedules import SCHEDULES, parse
from tests.strategies import BY_NAME, Case

STEPS = [0, 1, 2, 3, 5, 8, 13, 50, 99, 100, 101, 499, 500, 501, 999, 1000, 2999, 3000, 10**5]


def test_every_schedule_has_a_strategy() -> None:
    assert set(BY_NAME) == set(SCHEDULES)


@pytest.mark.parametrize("name", sorted(BY_NAME))
@given(data=st.data())
def test_values_are_finite_and_nonnegative(name: str, data: st.DataObject) -> None:
    case: Case = data.draw(BY_NAME[name])
    for t in [*STEPS, data.draw(st.floats(0, 1e6))]:
        value = case.schedule(t)
        assert isinstance(value, float)
        assert math.isfinite(value)
        assert value >= 0


@pytest.mark.parametrize("name", sorted(BY_NAME))
@given(data=st.data())
def test_shape_as_promised(name: str, data: st.DataObject) -> None:
    """Every schedule promises a shape that a wrong formula breaks: non-increasing from some
    step on (decays, warmup + decay), non-decreasing (a ramp up), and in every case never
    above its peak (``Case.upper``: ``lr`` for one-cycle and restarts, ``max_lr`` for cyclic,
    the largest piece for piecewise and join)."""
    case: Case = data.draw(BY_NAME[name])
    start = math.ceil(case.monotone_from)
    values = [case.schedule(t) for t in range(start, start + 1500)]
    if case.nonincreasing:
        for before, after in itertools.pairwise(values):
            assert after <= before * (1 + 1e-12) + 1e-300
    if case.nondecreasing:
        for before, after in itertools.pairwise(values):
            assert after >= before * (1 - 1e-12) - 1e-300
    everywhere = [case.schedule(t) for t in range(0, start + 3000, 3)]
    assert max(everywhere) <= case.upper * (1 + 1e-12) + 1e-300


@pytest.mark.parametrize("name", sorted(BY_NAME))
@given(data=st.data())
def test_spec_round_trips(name: str, data: st.DataObject) -> None:
    case: Case = data.draw(BY_NAME[name])
    schedule = case.schedule
    rebuilt = parse(schedule.spec())
    assert rebuilt == schedule
    assert rebuilt.spec() == schedule.spec()
    assert [rebuilt(t) for t in STEPS] == [schedule(t) for t in STEPS]


@pytest.mark.parametrize("name", sorted(BY_NAME))
@given(data=st.data())
def test_pure_function_of_the_step(name: str, data: st.DataObject) -> None:
    """Evaluating out of order, or twice, gives the same values: no hidden state."""
    case: Case = data.draw(BY_NAME[name])
    forward = case.schedule.preview(300)
    backward = [case.schedule(t) for t in reversed(range(300))][::-1]
    assert forward == backward
    clone = pickle.loads(pickle.dumps(case.schedule))
    assert clone == case.schedule
    assert clone.preview(300) == forward


@pytest.mark.parametrize("name", sorted(BY_NAME))
@given(data=st.data())
def test_reference_lr_is_positive(name: str, data: st.DataObject) -> None:
    case: Case = data.draw(BY_NAME[name])
    assert case.schedule.reference_lr > 0
    assert math.isfinite(case.schedule.reference_lr)


@pytest.mark.parametrize("name", sorted(BY_NAME))
@given(data=st.data())
def test_schedules_are_frozen_and_hashable(name: str, data: st.DataObject) -> None:
    schedule = data.draw(BY_NAME[name]).schedule
    assert hash(schedule) == hash(parse(schedule.spec()))
    with pytest.raises(AttributeError):
        schedule.lr = 1.0  # type: ignore[misc]


@pytest.mark.parametrize("bad", [-1, -0.5, math.nan, math.inf, "3", None])
def test_bad_steps_are_rejected(bad: object) -> None:
    schedule = parse("constant(lr=0.1)")
    with pytest.raises(ValueError, match="step must be a finite number >= 0"):
        schedule(bad)  # type: ignore[arg-type]
