"""Argument checks shared by every part of lrlab: schedules, optimizers, the engine, LipschitzLR,
sweeps and reproductions. One module, so they agree (an LR is a finite number > 0 everywhere).

Each check raises at once, with ONE line naming the owner (the function or class being
configured), the parameter and the value it got::

    cosine: steps must be > 0, got steps=-3

A value of the wrong type raises `ArgumentTypeError`, a ``TypeError`` that is also a
``ValueError``: callers who test for either get it, and the CLI's one-line error handler
(which catches ``ValueError``) reports it like every other bad value. No torch import here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = [
    "MAX_INT",
    "ArgumentTypeError",
    "check_bool",
    "check_choice",
    "check_increasing",
    "check_int",
    "check_lr",
    "check_number",
    "check_optional_lr",
    "fail",
]

#: Integers larger than this are refused (seeds, step counts): torch and numpy hold 64 bits.
MAX_INT = 2**63 - 1


class ArgumentTypeError(TypeError, ValueError):
    """An argument of the wrong type (a string where a number belongs, a float where an
    integer does). Both a ``TypeError`` and a ``ValueError``, like numpy's ``AxisError``."""


def _prefix(owner: str) -> str:
    return f"{owner}: " if owner else ""


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def fail(owner: str, name: str, value: object, requirement: str) -> ValueError:
    """The error for ``name=value`` not meeting ``requirement`` (returned, for ``raise``)."""
    return ValueError(f"{_prefix(owner)}{name} must be {requirement}, got {name}={_show(value)}")


def _type_fail(owner: str, name: str, value: object, requirement: str) -> ArgumentTypeError:
    return ArgumentTypeError(
        f"{_prefix(owner)}{name} must be {requirement}, got {name}={_show(value)}"
    )


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_number(
    owner: str,
    name: str,
    value: object,
    *,
    positive: bool = False,
    nonnegative: bool = False,
    minimum: float | None = None,
    maximum: float | None = None,
    below: float | None = None,
) -> float:
    """Check that ``value`` is a finite real number in range; return it as a float.

    >>> check_number("adam", "lr", 1e-3, positive=True)
    0.001
    >>> check_number("adam", "lr", 0, positive=True)
    Traceback (most recent call last):
    ...
    ValueError: adam: lr must be > 0, got lr=0
    """
    if not _is_number(value):
        raise _type_fail(owner, name, value, "a finite number")
    try:
        number = float(value)  # type: ignore[arg-type]
    except OverflowError:  # an int beyond a double's range
        raise fail(owner, name, value, "a finite number") from None
    if not math.isfinite(number):
        raise fail(owner, name, value, "a finite number")
    if positive and not number > 0:
        raise fail(owner, name, value, "> 0")
    if nonnegative and not number >= 0:
        raise fail(owner, name, value, ">= 0")
    if minimum is not None and number < minimum:
        raise fail(owner, name, value, f">= {minimum:g}")
    if maximum is not None and number > maximum:
        raise fail(owner, name, value, f"<= {maximum:g}")
    if below is not None and not number < below:
        raise fail(owner, name, value, f"< {below:g}")
    return number


def check_int(owner: str, name: str, value: object, *, minimum: int, maximum: int = MAX_INT) -> int:
    """Check that ``value`` is an integer in ``[minimum, maximum]`` (a float with an integral
    value is not an integer, nor is ``True``).

    >>> check_int("run", "seed", 10**30, minimum=0)
    Traceback (most recent call last):
    ...
    ValueError: run: seed must be <= 9223372036854775807, got seed=1000000000000000000000000000000
    """
    if not isinstance(value, int) or isinstance(value, bool):
        raise _type_fail(owner, name, value, f"an integer >= {minimum}")
    if value < minimum:
        raise fail(owner, name, value, f">= {minimum}")
    if value > maximum:
        raise fail(owner, name, value, f"<= {maximum}")
    return value


def check_lr(owner: str, value: object, name: str = "lr") -> float:
    """A learning rate: a finite number > 0."""
    return check_number(owner, name, value, positive=True)


def check_optional_lr(owner: str, value: object, name: str = "lr") -> float | None:
    """A learning rate or ``None`` (the default)."""
    return None if value is None else check_lr(owner, value, name)


def check_increasing(owner: str, name: str, values: Sequence[object]) -> tuple[float, ...]:
    """Check a sequence of finite numbers >= 0, strictly increasing; return it as a tuple."""
    if isinstance(values, str | bytes) or not isinstance(values, Sequence):
        raise _type_fail(owner, name, values, "a list of numbers")
    numbers = tuple(
        check_number(owner, f"{name}[{i}]", v, nonnegative=True) for i, v in enumerate(values)
    )
    for i in range(1, len(numbers)):
        if not numbers[i] > numbers[i - 1]:
            raise fail(owner, name, list(values), "strictly increasing")
    return numbers


def check_bool(owner: str, name: str, value: object) -> bool:
    """Check that ``value`` is ``True`` or ``False`` (not merely truthy)."""
    if not isinstance(value, bool):
        raise _type_fail(owner, name, value, "true or false")
    return value


def check_choice(owner: str, name: str, value: object, choices: Sequence[str]) -> str:
    """Check that ``value`` is one of ``choices``."""
    if not isinstance(value, str) or value not in choices:
        raise fail(owner, name, value, "one of " + ", ".join(choices))
    return value
