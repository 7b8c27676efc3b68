"""The `Schedule` base class and the eager argument checks every schedule shares.

A schedule is a frozen dataclass and a pure function of the step: ``schedule(t)`` depends on
``t`` and the schedule's fields only, never on a previous value, so evaluating step 10_000
costs the same as step 0 and resuming training needs nothing but the step count.
"""

from __future__ import annotations

import dataclasses
import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar


class Schedule(ABC):
    """A learning rate as a pure function of the step count ``t >= 0``.

    Subclasses are frozen dataclasses. ``name`` is the schedule's name in the spec language
    (``lrlab.schedules.parse``); ``spec()`` writes a string that parses back to an equal schedule.
    """

    name: ClassVar[str]

    @property
    @abstractmethod
    def reference_lr(self) -> float:
        """The base LR the schedule's values are relative to.

        A PyTorch param group whose base LR equals it follows the schedule's values exactly; a
        group with twice that base LR gets twice the values (see `lrlab.ScheduleLR`).
        """

    @abstractmethod
    def value(self, t: float) -> float:
        """The learning rate at step ``t`` (already checked: finite and ``>= 0``)."""

    def __call__(self, t: float) -> float:
        if not (isinstance(t, int | float) and math.isfinite(t) and t >= 0):
            raise ValueError(f"{self.name}: step must be a finite number >= 0, got step={t!r}")
        return self.value(t)

    def preview(self, steps: int) -> list[float]:
        """The learning rates at steps ``0 .. steps - 1``, e.g. to plot before training."""
        check_int(self.name, "steps", steps, minimum=0)
        return [self.value(t) for t in range(steps)]

    def spec(self) -> str:
        """This schedule in the spec language; ``parse(s.spec()) == s``."""
        return call_spec(self.name, self)

    def __str__(self) -> str:
        return self.spec()


def call_spec(name: str, instance: Any) -> str:
    """A dataclass instance as ``name(field=value, ...)`` in the spec language, leaving out the
    fields that hold their default."""
    parts = []
    for field in dataclasses.fields(instance):
        value = getattr(instance, field.name)
        if field.default is not dataclasses.MISSING and value == field.default:
            continue
        parts.append(f"{field.name}={format_spec_value(value)}")
    return f"{name}({', '.join(parts)})"


def format_spec_value(value: object) -> str:
    """A field value as the spec language writes it (floats by ``repr``, so they round-trip)."""
    if isinstance(value, Schedule):
        return value.spec()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple | list):
        return "[" + ", ".join(format_spec_value(v) for v in value) + "]"
    return repr(value) if not isinstance(value, str) else value


# ---------------------------------------------------------------------------------------------
# Eager checks. Each raises ValueError with one line naming the schedule, parameter and value.


def _fail(owner: str, name: str, value: object, requirement: str) -> ValueError:
    return ValueError(f"{owner}: {name} must be {requirement}, got {name}={value!r}")


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_number(
    owner: str,
    name: str,
    value: object,
    *,
    positive: bool = False,
    nonnegative: bool = False,
    maximum: float | None = None,
) -> float:
    """Check that ``value`` is a finite real number with the given sign; return it as float."""
    if not _is_number(value) or not math.isfinite(value):  # type: ignore[arg-type]
        raise _fail(owner, name, value, "a finite number")
    number = float(value)  # type: ignore[arg-type]
    if positive and not number > 0:
        raise _fail(owner, name, value, "> 0")
    if nonnegative and not number >= 0:
        raise _fail(owner, name, value, ">= 0")
    if maximum is not None and number > maximum:
        raise _fail(owner, name, value, f"<= {maximum:g}")
    return number


def check_int(owner: str, name: str, value: object, *, minimum: int) -> int:
    """Check that ``value`` is an integer ``>= minimum`` (a float with an integral value is not)."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise _fail(owner, name, value, f"an integer >= {minimum}")
    if value < minimum:
        raise _fail(owner, name, value, f">= {minimum}")
    return value


def check_increasing(owner: str, name: str, values: Sequence[object]) -> tuple[float, ...]:
    """Check a sequence of finite numbers >= 0, strictly increasing; return it as a tuple."""
    if isinstance(values, str | bytes) or not isinstance(values, Sequence):
        raise _fail(owner, name, values, "a list of numbers")
    numbers = tuple(
        check_number(owner, f"{name}[{i}]", v, nonnegative=True) for i, v in enumerate(values)
    )
    for i in range(1, len(numbers)):
        if not numbers[i] > numbers[i - 1]:
            raise _fail(owner, name, list(values), "strictly increasing")
    return numbers


def check_bool(owner: str, name: str, value: object) -> bool:
    """Check that ``value`` is ``True`` or ``False`` (not merely truthy)."""
    if not isinstance(value, bool):
        raise _fail(owner, name, value, "true or false")
    return value


def check_choice(owner: str, name: str, value: object, choices: Sequence[str]) -> str:
    """Check that ``value`` is one of ``choices``."""
    if value not in choices:
        raise _fail(owner, name, value, "one of " + ", ".join(choices))
    return str(value)


def check_schedule(owner: str, name: str, value: object) -> Schedule:
    """Check that ``value`` is a `Schedule`."""
    if not isinstance(value, Schedule):
        raise _fail(owner, name, value, "a schedule")
    return value


def freeze(instance: Any, **values: object) -> None:
    """Set normalised field values on a frozen dataclass from its ``__post_init__``."""
    for key, value in values.items():
        object.__setattr__(instance, key, value)
