"""Monotone decays: constant, inverse-time, step, multi-step, piecewise, exponential, linear,
polynomial, and the seed-000 formula as its code runs.

Every class is a frozen dataclass whose fields are the spec language's arguments; the first is
always ``lr``, the value at step 0. Durations (``every``, ``steps``, ``milestones``) count steps;
wrap a schedule in `PerEpoch` to count epochs instead.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass

from lrlab.schedules.base import (
    Schedule,
    check_bool,
    check_duration,
    check_increasing,
    check_number,
    freeze,
    register_schedule,
)


def _periods(t: float, every: float, staircase: bool) -> float:
    """How many ``every``-long periods have passed at step ``t`` (floored if ``staircase``)."""
    return math.floor(t / every) if staircase else t / every


@register_schedule
@dataclass(frozen=True)
class Constant(Schedule):
    """A constant learning rate: ``lr(t) = lr``.

    >>> Constant(lr=0.1)(0), Constant(lr=0.1)(10**9)
    (0.1, 0.1)
    """

    lr: float
    name = "constant"

    def __post_init__(self) -> None:
        check_number(self.name, "lr", self.lr, positive=True)

    @property
    def reference_lr(self) -> float:
        return self.lr

    def value(self, t: float) -> float:
        return float(self.lr)


@register_schedule
@dataclass(frozen=True)
class InverseTime(Schedule):
    """Inverse-time decay: ``lr(t) = lr / (1 + decay * p)`` with ``p = t / every``
    (``floor(t / every)`` if ``staircase``).

    With ``every=1`` and ``t`` counted per batch this is Keras' legacy ``SGD(decay=...)``
    (seed 000: ``lr=0.1, decay=0.005``). Non-increasing; ``lr(0) = lr``; tends to 0.

    >>> s = InverseTime(lr=0.1, decay=0.005)
    >>> s(0), s(200), round(s(6000), 12)
    (0.1, 0.05, 0.003225806452)
    >>> s = InverseTime(lr=1.0, decay=1.0, every=10, staircase=True)
    >>> s(9), s(10), s(20)
    (1.0, 0.5, 0.3333333333333333)
    """

    lr: float
    decay: float
    every: float = 1
    staircase: bool = False
    name = "inverse_time"

    def __post_init__(self) -> None:
        check_number(self.name, "lr", self.lr, positive=True)
        check_number(self.name, "decay", self.decay, nonnegative=True)
        check_number(self.name, "every", self.every, positive=True)
        check_bool(self.name, "staircase", self.staircase)

    @property
    def reference_lr(self) -> float:
        return self.lr

    def value(self, t: float) -> float:
        return self.lr / (1.0 + self.decay * _periods(t, self.every, self.staircase))


@register_schedule
@dataclass(frozen=True)
class Step(Schedule):
    """Step decay: ``lr(t) = lr * drop ** floor(t / every)``, a staircase that multiplies the LR
    by ``drop`` every ``every`` steps (PyTorch's ``StepLR(step_size=every, gamma=drop)``).

    Non-increasing when ``drop <= 1``; ``lr(0) = lr``; the first drop is at ``t = every``.

    >>> s = Step(lr=0.1, drop=0.5, every=10)
    >>> s(0), s(9), s(10), s(20)
    (0.1, 0.1, 0.05, 0.025)
    """

    lr: float
    drop: float
    every: float
    name = "step"

    def __post_init__(self) -> None:
        check_number(self.name, "lr", self.lr, positive=True)
        check_number(self.name, "drop", self.drop, positive=True)
        check_number(self.name, "every", self.every, positive=True)

    @property
    def reference_lr(self) -> float:
        return self.lr

    def value(self, t: float) -> float:
        return self.lr * self.drop ** math.floor(t / self.every)


@register_schedule
@dataclass(frozen=True)
class MultiStep(Schedule):
    """Multi-step decay: ``lr(t) = lr * drop ** n(t)``, ``n(t)`` = how many milestones are
    ``<= t`` (PyTorch's ``MultiStepLR(milestones, gamma=drop)``).

    Non-increasing when ``drop <= 1``; ``lr(0) = lr`` unless a milestone is 0.

    >>> s = MultiStep(lr=1.0, drop=0.1, milestones=(30, 80))
    >>> s(29), s(30), s(79), s(80)
    (1.0, 0.1, 0.1, 0.010000000000000002)
    """

    lr: float
    drop: float
    milestones: Sequence[float]
    name = "multistep"

    def __post_init__(self) -> None:
        check_number(self.name, "lr", self.lr, positive=True)
        check_number(self.name, "drop", self.drop, positive=True)
        freeze(self, milestones=check_increasing(self.name, "milestones", self.milestones))

    @property
    def reference_lr(self) -> float:
        return self.lr

    def value(self, t: float) -> float:
        return self.lr * self.drop ** bisect.bisect_right(self.milestones, t)


@register_schedule
@dataclass(frozen=True)
class Piecewise(Schedule):
    """Piecewise constant: ``lr`` before ``boundaries[0]``, then ``values[i]`` from
    ``boundaries[i]`` (inclusive) to ``boundaries[i + 1]`` (exclusive).

    Keras' ``PiecewiseConstantDecay`` switches one step later (``t > boundary``); here a value
    starts *at* its boundary, as PyTorch's milestones do.

    >>> s = Piecewise(lr=0.1, boundaries=(100, 150), values=(0.01, 0.001))
    >>> s(0), s(99), s(100), s(149), s(150), s(10**6)
    (0.1, 0.1, 0.01, 0.01, 0.001, 0.001)
    """

    lr: float
    boundaries: Sequence[float]
    values: Sequence[float]
    name = "piecewise"

    def __post_init__(self) -> None:
        check_number(self.name, "lr", self.lr, positive=True)
        boundaries = check_increasing(self.name, "boundaries", self.boundaries)
        if isinstance(self.values, str | bytes) or not isinstance(self.values, Sequence):
            raise ValueError(
                f"{self.name}: values must be a list of numbers, got values={self.values!r}"
            )
        values = tuple(self.values)
        for i, v in enumerate(values):
            check_number(self.name, f"values[{i}]", v, nonnegative=True)
        if len(values) != len(boundaries):
            raise ValueError(
                f"{self.name}: values must have one entry per boundary ({len(boundaries)}), "
                f"got values={list(values)!r}"
            )
        freeze(self, boundaries=boundaries, values=values)

    @property
    def reference_lr(self) -> float:
        return self.lr

    def value(self, t: float) -> float:
        i = bisect.bisect_right(self.boundaries, t)
        return float(self.lr if i == 0 else self.values[i - 1])


@register_schedule
@dataclass(frozen=True)
class Exponential(Schedule):
    """Exponential decay: ``lr(t) = lr * rate ** p`` with ``p = t / every``
    (``floor(t / every)`` if ``staircase``).

    Seed 002's ``LR_BASE * LR_DECAY ** (epoch / LR_STEP)`` is ``Exponential(lr=LR_BASE,
    rate=LR_DECAY, every=LR_STEP)``; Keras' ``ExponentialDecay(lr, every, rate, staircase)``
    and, with ``every=1``, PyTorch's ``ExponentialLR(gamma=rate)`` are the same function.
    Non-increasing when ``rate <= 1`` (a ``rate > 1`` grows, as an LR range test does).

    >>> s = Exponential(lr=0.2, rate=0.99)
    >>> s(0), s(1), round(s(39), 6)
    (0.2, 0.198, 0.135146)
    >>> s = Exponential(lr=1.0, rate=0.5, every=10, staircase=True)
    >>> s(9), s(10), s(25)
    (1.0, 0.5, 0.25)
    """

    lr: float
    rate: float
    every: float = 1
    staircase: bool = False
    name = "exponential"

    def __post_init__(self) -> None:
        check_number(self.name, "lr", self.lr, positive=True)
        check_number(self.name, "rate", self.rate, positive=True)
        check_number(self.name, "every", self.every, positive=True)
        check_bool(self.name, "staircase", self.staircase)

    @property
    def reference_lr(self) -> float:
        return self.lr

    def value(self, t: float) -> float:
        return float(self.lr * self.rate ** _periods(t, self.every, self.staircase))


@register_schedule
@dataclass(frozen=True)
class Linear(Schedule):
    """Linear from ``lr`` to ``end`` over ``steps`` steps, then ``end``:
    ``lr(t) = lr + (end - lr) * min(t, steps) / steps``.

    PyTorch's ``LinearLR(start_factor, end_factor, total_iters)`` on a base LR ``b`` is
    ``Linear(lr=b * start_factor, end=b * end_factor, steps=total_iters)``. Monotone (falling
    when ``end < lr``, rising when ``end > lr``).

    >>> s = Linear(lr=0.1, end=0.0, steps=100)
    >>> s(0), s(50), s(100), s(1000)
    (0.1, 0.05, 0.0, 0.0)
    """

    lr: float
    end: float
    steps: float
    name = "linear"
    horizon = "steps"

    def __post_init__(self) -> None:
        check_number(self.name, "lr", self.lr, positive=True)
        check_number(self.name, "end", self.end, nonnegative=True)
        check_duration(self.name, "steps", self.steps)

    @property
    def reference_lr(self) -> float:
        return self.lr

    def value(self, t: float) -> float:
        if t >= self.steps:
            return float(self.end)
        return self.lr + (self.end - self.lr) * (t / self.steps)


@register_schedule
@dataclass(frozen=True)
class Polynomial(Schedule):
    """Polynomial decay: ``lr(t) = (lr - end) * (1 - min(t, steps) / steps) ** power + end``.

    ``power=1`` is linear. PyTorch's ``PolynomialLR(total_iters=steps, power)`` is ``end=0``;
    Keras' ``PolynomialDecay(lr, steps, end, power)`` (without ``cycle``) is the same function.
    Non-increasing when ``end <= lr``; ``lr(0) = lr``; ``lr(t) = end`` for ``t >= steps``.

    >>> s = Polynomial(lr=0.1, steps=100, end=0.0, power=2.0)
    >>> s(0), s(50), s(100), s(200)
    (0.1, 0.025, 0.0, 0.0)
    """

    lr: float
    steps: float
    end: float = 0.0
    power: float = 1.0
    name = "polynomial"
    horizon = "steps"

    def __post_init__(self) -> None:
        check_number(self.name, "lr", self.lr, positive=True)
        check_duration(self.name, "steps", self.steps)
        check_number(self.name, "end", self.end, nonnegative=True)
        check_number(self.name, "power", self.power, positive=True)

    @property
    def reference_lr(self) -> float:
        return self.lr

    def value(self, t: float) -> float:
        remaining = 1.0 - min(t, self.steps) / self.steps
        return float((self.lr - self.end) * remaining**self.power + self.end)


@register_schedule
@dataclass(frozen=True)
class Seed000(Schedule):
    """Seed 000's "step decay" exactly as its code runs:
    ``lr(t) = lr * drop ** (floor(1 + t) / every)``.

    The floor wraps ``1 + t`` alone, so for whole epochs ``t`` it is a *continuous*
    exponential, ``lr * drop ** ((1 + t) / every)``, already ``lr * drop ** 0.1`` at epoch 0,
    not the staircase the article's text describes (that one is `Step`). Defaults are the
    seed's (``init_lrate=0.01, drop=0.05, epochs_drop=10``); Keras' ``LearningRateScheduler``
    called it once per epoch, so wrap it in `PerEpoch`. Non-increasing when ``drop <= 1``.

    >>> s = Seed000()
    >>> round(s(0), 10), round(s(9), 10), f"{s(199):.3g}"
    (0.0074113445, 0.0005, '9.54e-29')
    """

    lr: float = 0.01
    drop: float = 0.05
    every: float = 10
    name = "seed000"

    def __post_init__(self) -> None:
        check_number(self.name, "lr", self.lr, positive=True)
        check_number(self.name, "drop", self.drop, positive=True)
        check_number(self.name, "every", self.every, positive=True)

    @property
    def reference_lr(self) -> float:
        return self.lr

    def value(self, t: float) -> float:
        return float(self.lr * self.drop ** (math.floor(1 + t) / self.every))
