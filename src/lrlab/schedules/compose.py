"""Composition: warmup before any schedule, join schedules at boundaries, scale, and count
epochs instead of steps.

Each combinator is itself a frozen-dataclass `Schedule`, so compositions nest, preview, parse
and round-trip like any other schedule.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

from lrlab.schedules.base import (
    Schedule,
    check_bool,
    check_duration,
    check_increasing,
    check_int,
    check_number,
    check_schedule,
    freeze,
    register_schedule,
)


@register_schedule
@dataclass(frozen=True)
class Warmup(Schedule):
    """Linear warmup from ``start`` to ``schedule(0)`` over ``steps`` steps, then ``schedule``
    shifted to begin where the warmup ends:

    - ``t < steps``: ``start + (schedule(0) - start) * t / steps``;
    - ``t >= steps``: ``schedule(t - steps)``.

    >>> from lrlab.schedules.decays import Step
    >>> s = Warmup(Step(lr=0.1, drop=0.5, every=100), steps=10)
    >>> s(0), s(5), s(10), s(109), s(110)
    (0.0, 0.05, 0.1, 0.1, 0.05)
    """

    schedule: Schedule
    steps: float
    start: float = 0.0
    name = "warmup"

    def __post_init__(self) -> None:
        check_schedule(self.name, "schedule", self.schedule)
        check_duration(self.name, "steps", self.steps)
        check_number(self.name, "start", self.start, nonnegative=True)

    @property
    def reference_lr(self) -> float:
        return self.schedule.reference_lr

    def value(self, t: float) -> float:
        if t >= self.steps:
            return self.schedule.value(t - self.steps)
        target = self.schedule.value(0)
        return self.start + (target - self.start) * (t / self.steps)


@register_schedule
@dataclass(frozen=True)
class Join(Schedule):
    """Schedules one after another: ``schedules[i]`` runs from ``boundaries[i - 1]`` (0 for the
    first) to ``boundaries[i]``, each restarted at its own step 0 (Optax's ``join_schedules``):
    ``lr(t) = schedules[i](t - boundaries[i - 1])``.

    >>> from lrlab.schedules.decays import Constant, Linear
    >>> s = Join((Constant(lr=0.1), Linear(lr=0.1, end=0.0, steps=10)), boundaries=(5,))
    >>> s(0), s(4), s(5), s(10), s(15)
    (0.1, 0.1, 0.1, 0.05, 0.0)
    """

    schedules: Sequence[Schedule]
    boundaries: Sequence[float]
    name = "join"

    def __post_init__(self) -> None:
        if isinstance(self.schedules, str | bytes) or not isinstance(self.schedules, Sequence):
            raise ValueError(
                f"{self.name}: schedules must be a list of schedules, "
                f"got schedules={self.schedules!r}"
            )
        schedules = tuple(
            check_schedule(self.name, f"schedules[{i}]", s) for i, s in enumerate(self.schedules)
        )
        if not schedules:
            raise ValueError(f"{self.name}: schedules must not be empty, got schedules=[]")
        boundaries = check_increasing(self.name, "boundaries", self.boundaries)
        if len(boundaries) != len(schedules) - 1:
            raise ValueError(
                f"{self.name}: boundaries must have len(schedules) - 1 = {len(schedules) - 1} "
                f"entries, got boundaries={list(boundaries)!r}"
            )
        freeze(self, schedules=schedules, boundaries=boundaries)

    @property
    def reference_lr(self) -> float:
        return self.schedules[0].reference_lr

    def value(self, t: float) -> float:
        i = bisect.bisect_right(self.boundaries, t)
        offset = self.boundaries[i - 1] if i > 0 else 0.0
        return self.schedules[i].value(t - offset)


@register_schedule
@dataclass(frozen=True)
class Scale(Schedule):
    """``lr(t) = factor * schedule(t)``.

    The reference LR stays the inner schedule's, so a PyTorch param group scaled relative to
    it is scaled by ``factor`` too.

    >>> from lrlab.schedules.decays import Constant
    >>> Scale(Constant(lr=0.1), factor=0.5)(0)
    0.05
    """

    schedule: Schedule
    factor: float
    name = "scale"

    def __post_init__(self) -> None:
        check_schedule(self.name, "schedule", self.schedule)
        check_number(self.name, "factor", self.factor, positive=True)

    @property
    def reference_lr(self) -> float:
        return self.schedule.reference_lr

    def value(self, t: float) -> float:
        return self.factor * self.schedule.value(t)


@register_schedule
@dataclass(frozen=True)
class PerEpoch(Schedule):
    """Evaluate a schedule written in epochs at a step count:
    ``lr(t) = schedule(floor(t / steps_per_epoch))``, or ``schedule(t / steps_per_epoch)``
    with ``fractional=True``.

    The default holds the LR for the whole epoch, as Keras' ``LearningRateScheduler`` and a
    PyTorch scheduler stepped once per epoch do.

    >>> from lrlab.schedules.decays import Step
    >>> s = PerEpoch(Step(lr=0.1, drop=0.5, every=10), steps_per_epoch=30)
    >>> s(0), s(299), s(300)
    (0.1, 0.1, 0.05)
    """

    schedule: Schedule
    steps_per_epoch: int
    fractional: bool = False
    name = "per_epoch"

    def __post_init__(self) -> None:
        check_schedule(self.name, "schedule", self.schedule)
        check_int(self.name, "steps_per_epoch", self.steps_per_epoch, minimum=1)
        check_bool(self.name, "fractional", self.fractional)

    @property
    def reference_lr(self) -> float:
        return self.schedule.reference_lr

    def value(self, t: float) -> float:
        epochs = t / self.steps_per_epoch if self.fractional else t // self.steps_per_epoch
        return self.schedule.value(epochs)
