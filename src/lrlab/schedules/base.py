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
    ArgumentTypeError,
    check_bool,
    check_choice,
    check_increasing,
    check_int,
    check_number,
)

__all__ = [
    "SCHEDULES",
    "Schedule",
    "check_bool",
    "check_choice",
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


def _entry_point_schedule(name: str, value: object) -> type[Schedule]:
    """An ``lrlab.schedules`` entry point: a `Schedule` dataclass (its ``name`` may differ
    from the entry point's; the entry point's is the one specs use)."""
    if not (isinstance(value, type) and issubclass(value, Schedule)):
        raise ValueError(
            f"lrlab.schedules entry point {name!r} must name a Schedule subclass, got {value!r}"
        )
    return value


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


def check_schedule(owner: str, name: str, value: object) -> Schedule:
    """Check that ``value`` is a `Schedule`."""
    if not isinstance(value, Schedule):
        raise ArgumentTypeError(f"{owner}: {name} must be a schedule, got {name}={value!r}")
    return value


def freeze(instance: Any, **values: object) -> None:
    """Set normalised field values on a frozen dataclass from its ``__post_init__``."""
    for key, value in values.items():
        object.__setattr__(instance, key, value)
