"""Hypothesis against the spec parser and the schedules' numbers: whatever text or number comes
in, the answer is a value or a one-line ``ValueError`` (`SpecError`), never a
``RecursionError``, ``OverflowError``, ``MemoryError`` or an LR of ``inf``."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lrlab.callspec import MAX_DEPTH, MAX_SPEC_LENGTH, CallSpec, SpecError, parse_call, parse_value
from lrlab.schedules import SCHEDULES, Schedule, parse
from lrlab.validate import MAX_LR
from tests.strategies import BY_NAME

# Text made of the characters specs are made of, so hypothesis reaches the parser's corners.
SPEC_CHARACTERS = st.sampled_from([*"abcdefgxyz_0123456789.,=()[]+-~ '\"eE*/\\\n\t", "lr"])
spec_texts = st.lists(SPEC_CHARACTERS, max_size=120).map("".join)


def attempt(action: Callable[[], object]) -> tuple[object, ValueError | None]:
    """``action()``'s value, or the ``ValueError`` it raised (anything else propagates and
    fails the test)."""
    try:
        return action(), None
    except ValueError as error:
        return None, error


def one_line(error: ValueError) -> bool:
    return bool(str(error)) and "\n" not in str(error)


@given(text=st.one_of(spec_texts, st.text(max_size=200)))
def test_any_text_parses_or_is_a_spec_error(text: str) -> None:
    call, error = attempt(lambda: parse_call(text))
    if error is not None:
        assert isinstance(error, SpecError)
        assert one_line(error)
    else:
        assert isinstance(call, CallSpec)


@given(text=st.one_of(spec_texts, st.text(max_size=200)))
def test_any_text_builds_a_schedule_or_is_a_value_error(text: str) -> None:
    schedule, error = attempt(lambda: parse(text))
    if error is not None:
        assert one_line(error)
    else:
        assert isinstance(schedule, Schedule)
        assert 0 <= schedule(0) <= MAX_LR


@pytest.mark.parametrize("wrap", ["-", "+", "~", "[", "f(", "(", "-["])
@given(depth=st.integers(0, 3 * MAX_DEPTH))
def test_nesting_is_refused_past_the_limit_at_any_depth(wrap: str, depth: int) -> None:
    closing = "".join({"[": "]", "(": ")"}.get(c, "") for c in reversed(wrap)) * depth
    text = f"g(x={wrap * depth}1{closing})"
    levels = 1 + depth * sum(c in "-+~[(" for c in wrap)  # the call, then each level
    _, error = attempt(lambda: parse_call(text))
    if levels > MAX_DEPTH:
        assert isinstance(error, SpecError)
        assert "nests deeper" in str(error)
    else:  # shallow enough: parsed, or refused for what it is (a tilde, brackets as values)
        assert error is None or "unsupported value" in str(error), error


@given(depth=st.integers(MAX_DEPTH + 1, 20_000))
def test_deep_chains_of_signs_are_refused_not_recursed(depth: int) -> None:
    text = f"constant(lr={'-' * depth}1)"[:MAX_SPEC_LENGTH]
    with pytest.raises(SpecError, match="nests deeper"):
        parse_call(text)


@given(extra=st.integers(1, 5000))
def test_long_specs_are_refused(extra: int) -> None:
    text = "constant(lr=0.1" + " " * (MAX_SPEC_LENGTH + extra) + ")"
    with pytest.raises(SpecError, match="at most"):
        parse_call(text)


values = st.recursive(
    st.one_of(
        st.integers(-(10**30), 10**30),
        st.floats(allow_nan=False),
        st.booleans(),
        st.sampled_from(["cos", "epoch", "linear"]),
    ),
    lambda inner: st.lists(inner, max_size=4).map(tuple),
    max_leaves=12,
)


def _write(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if isinstance(value, tuple):
        return "[" + ", ".join(_write(v) for v in value) + "]"
    return repr(value) if not isinstance(value, str) else value


@given(value=values)
def test_values_round_trip_through_the_parser(value: object) -> None:
    assert parse_value(_write(value)) == value


numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(10**400), 10**400),
    st.sampled_from([1e308, 1.7976931348623157e308, 3.4e38, 3.5e38, 5e-324]),
)


@given(lr=numbers, rate=numbers, steps=st.integers(1, 3000))
def test_exponential_never_overflows_silently(lr: object, rate: object, steps: int) -> None:
    """Any numbers, any horizon: the values are LRs in [0, MAX_LR], or a ValueError says at
    which step they stop being one."""
    lrs, error = attempt(lambda: parse(f"exponential(lr={lr!r}, rate={rate!r})").preview(steps))
    if error is not None:
        assert one_line(error)
    else:
        assert isinstance(lrs, list)
        assert all(0 <= v <= MAX_LR for v in lrs)


@pytest.mark.parametrize("name", sorted(BY_NAME))
@given(data=st.data(), t=st.floats(0, 1e300), factor=st.floats(1e-300, 1e300))
def test_every_schedule_gives_an_lr_or_a_value_error_anywhere(
    name: str, data: st.DataObject, t: float, factor: float
) -> None:
    """Scaled by any factor (what `ScheduleLR` does for a param group) and at any step, up to
    1e300: an LR in range, or one ValueError line naming the step."""
    schedule = data.draw(BY_NAME[name]).schedule
    value, error = attempt(lambda: schedule(t))
    if error is None:
        assert isinstance(value, float | int)
        assert 0 <= value <= MAX_LR
    _, error = attempt(lambda: schedule.check_steps(1 + int(min(t, 10)), scale=factor))
    if error is not None:
        assert one_line(error)
        assert "the LR at step" in str(error)


def test_every_registered_schedule_is_covered() -> None:
    assert set(SCHEDULES) <= set(BY_NAME)
