"""The `Schedule` base class and the eager argument checks every schedule shares.

A schedule is a frozen dataclass and a pure function of the step: ``schedule(t)`` depends on
``t`` and the schedule's fields only, never on a previous value, so evaluating step 10_000
costs the same as step 0 and resuming training needs nothing but the step count.
"""

from __future__ import annotations

import dataclasses
import math
from abc import ABC, abstractmethod
from typing import Any, ClassVar, TypeVar, overload

from lrlab.registry import Registry, caller_source
from lrlab.validate import (
    MAX_LR,
    ArgumentTypeError,
    check_bool,
    check_choice,
    check_increasing,
    check_int,
    check_number,
    fail,
)

__all__ = [
    "SCHEDULES",
    "Schedule",
    "check_bool",
    "check_choice",
    "check_duration",
    "check_increasing",
    "check_int",
    "check_number",
    "check_schedule",
    "format_spec_value",
    "freeze",
    "register_schedule",
]


class Schedule(ABC):
    """A learning rate as a pure function of the step count ``t >= 0``.

    Subclasses are frozen dataclasses. ``name`` is the schedule's name in the spec language
    (``lrlab.schedules.parse``); ``spec()`` writes a string that parses back to an equal schedule.
    """

    name: ClassVar[str]
    #: The field holding the schedule's horizon (the steps it runs its course over), which a
    #: run fills in with its own length when a spec leaves it out (`lrlab.schedules.parse`);
    #: ``None`` for a schedule without one.
    horizon: ClassVar[str | None] = None

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
        """The LR at step ``t``: a number in ``[0, MAX_LR]``. A value that overflows there (or
        passes `lrlab.validate.MAX_LR`, float32's largest) is a one-line ``ValueError`` naming
        the step, never an ``OverflowError`` or ``inf``."""
        if not isinstance(t, int | float) or isinstance(t, bool):
            raise ArgumentTypeError(
                f"{self.name}: step must be a finite number >= 0, got step={t!r}"
            )
        if not (math.isfinite(t) and t >= 0):
            raise ValueError(f"{self.name}: step must be a finite number >= 0, got step={t!r}")
        return self._checked(t)

    def preview(self, steps: int) -> list[float]:
        """The learning rates at steps ``0 .. steps - 1``, e.g. to plot before training."""
        check_int(self.name, "steps", steps, minimum=0)
        return [self._checked(t) for t in range(steps)]

    def check_steps(self, steps: int, *, scale: float = 1.0) -> None:
        """Check, before training, that ``scale`` times the LR is a number in ``[0, MAX_LR]``
        at every step below ``steps``: each of the first `CHECKED_STEPS` steps, and the last
        one (where the last fails, the error names the step where the LR first leaves the
        range, found by bisection: exact for a schedule that stays out once out).

        >>> from lrlab.schedules import Exponential
        >>> try:
        ...     Exponential(lr=1, rate=1e30).check_steps(5)
        ... except ValueError as error:
        ...     print(error)
        exponential(lr=1, rate=1e+30): the LR at step 2 is 1e+60, above 3.40282e+38 (the largest LR)
        """
        check_int(self.name, "steps", steps, minimum=1)
        check_number(self.name, "scale", scale, positive=True)

        def bad(t: int) -> bool:
            try:
                value = self.value(t) * scale
            except (OverflowError, ZeroDivisionError):
                return True
            return not 0 <= value <= MAX_LR

        for t in range(min(steps, CHECKED_STEPS)):
            if bad(t):
                self._checked(t, scale)
        last = steps - 1
        if last >= CHECKED_STEPS and bad(last):
            good = CHECKED_STEPS - 1
            while last - good > 1:
                middle = (good + last) // 2
                good, last = (good, middle) if bad(middle) else (middle, last)
            self._checked(last, scale)

    def _checked(self, t: float, scale: float = 1.0) -> float:
        """``value(t)``, refused in one line where it overflows or leaves ``[0, MAX_LR]``."""
        reason = "it overflows"
        try:
            value = self.value(t)
        except OverflowError:
            value = math.inf
        except ZeroDivisionError:  # a field's extreme value (a user's schedule's, too)
            value, reason = math.nan, "a division by zero"
        scaled = value * scale
        if 0 <= scaled <= MAX_LR:
            return value
        where = f"{_short(self.spec())}: the LR at step {t:g}"
        if not math.isfinite(scaled):
            raise ValueError(f"{where} is not a finite number ({reason})")
        if scaled < 0:
            raise ValueError(f"{where} is {scaled:.6g}, below 0")
        raise ValueError(f"{where} is {scaled:.6g}, above {MAX_LR:g} (the largest LR)")

    def spec(self) -> str:
        """This schedule in the spec language; ``parse(s.spec()) == s``."""
        return call_spec(self.name, self)

    def __str__(self) -> str:
        return self.spec()


def _entry_point_schedule(name: str, value: object) -> type[Schedule]:
    """An ``lrlab.schedules`` entry point: a `Schedule` dataclass (its ``name`` may differ
    from the entry point's; the entry point's is the one specs use)."""
    if not (isinstance(value, type) and issubclass(value, Schedule)):
        raise ValueError(
            f"lrlab.schedules entry point {name!r} must name a Schedule subclass, got {value!r}"
        )
    return value


#: How many steps `Schedule.check_steps` evaluates one by one (about 0.1 s); beyond them it
#: checks the last step.
CHECKED_STEPS = 100_000


def _short(text: str) -> str:
    return text if len(text) <= 80 else text[:77] + "..."


#: Every schedule a spec may name: lrlab's, the ones users register, installed entry points.
SCHEDULES: Registry[type[Schedule]] = Registry("schedule", "lrlab.schedules", _entry_point_schedule)

S = TypeVar("S", bound=type[Schedule])


@overload
def register_schedule(cls: S, *, replace: bool = False) -> S: ...
@overload
def register_schedule(cls: None = None, *, replace: bool = False) -> Any: ...
def register_schedule(cls: S | None = None, *, replace: bool = False) -> S | Any:
    """Class decorator: make a `Schedule` subclass (a frozen dataclass with a ``name``)
    available by that name in spec strings, ``lrlab schedule``, ``--schedule`` and sweeps.

    Example::

        @register_schedule
        @dataclass(frozen=True)
        class Halving(Schedule):
            lr: float
            every: int
            name = "halving"

            @property
            def reference_lr(self) -> float:
                return self.lr

            def value(self, t: float) -> float:
                return self.lr * 0.5 ** (t // self.every)

    A name already taken is a ``ValueError`` unless ``replace=True``. Register at a module's
    top level: sweep workers import that module again to see the name.
    """

    source = caller_source(1)

    def wrap(schedule_cls: S) -> S:
        if not (isinstance(schedule_cls, type) and issubclass(schedule_cls, Schedule)):
            raise ArgumentTypeError(
                f"register_schedule: cls must be a Schedule subclass, got cls={schedule_cls!r}"
            )
        if not dataclasses.is_dataclass(schedule_cls):
            raise ArgumentTypeError(
                f"register_schedule: {schedule_cls.__name__} must be a dataclass "
                "(its fields are the spec's arguments)"
            )
        name = schedule_cls.__dict__.get("name")
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(
                f"register_schedule: {schedule_cls.__name__}.name must be an identifier, "
                f"got name={name!r}"
            )
        SCHEDULES.register(name, schedule_cls, replace=replace, source=source)
        return schedule_cls

    return wrap if cls is None else wrap(cls)


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
# Eager checks: the shared validators (`lrlab.validate`), plus the one only schedules need.


def check_duration(owner: str, name: str, value: object) -> float:
    """A duration in steps: a number > 0 and whole (``100`` or ``1e3``). A schedule is stepped
    once per update, so a fraction of a step (``steps=10.5``) would never be reached.

    >>> check_duration("cosine", "steps", 10.5)
    Traceback (most recent call last):
    ...
    ValueError: cosine: steps must be a whole number of steps, got steps=10.5
    """
    number = check_number(owner, name, value, positive=True)
    if not number.is_integer():
        raise fail(owner, name, value, "a whole number of steps")
    return number


def check_schedule(owner: str, name: str, value: object) -> Schedule:
    """Check that ``value`` is a `Schedule`."""
    if not isinstance(value, Schedule):
        raise ArgumentTypeError(f"{owner}: {name} must be a schedule, got {name}={value!r}")
    return value


def freeze(instance: Any, **values: object) -> None:
    """Set normalised field values on a frozen dataclass from its ``__post_init__``."""
    for key, value in values.items():
        object.__setattr__(instance, key, value)
