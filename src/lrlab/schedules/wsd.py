"""Warmup-stable-decay (WSD): linear warmup, a long constant stage, then a short decay.

The schedule of Hu et al. 2024, "MiniCPM: Unveiling the Potential of Small Language Models
with Scalable Training Strategies" (arXiv 2404.06395), section 4 ("WSD LRS"):

    WSD(T; s) = s / W * eta        for s < W          (warmup)
                eta                for W < s < T      (stable)
                f(s - T) * eta     for T < s < S      (decay, f decreasing, 0 < f <= 1)

with the decay stage about 10% of training ("10% of the total tokens for decay is enough").
The decay shapes are those of Hägele et al. 2024, "Scaling Laws and Compute-Optimal Training
Beyond Fixed Training Durations" (arXiv 2405.18392), as their code computes them
(github.com/epfml/schedules-and-scaling, ``src/optim/utils.py``, ``wsd_schedule``):
``linear``, ``cosine`` and their ``1 - sqrt`` cooldown, which they found better than linear.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from lrlab.schedules.base import (
    Schedule,
    check_choice,
    check_duration,
    check_number,
    register_schedule,
)
from lrlab.schedules.cyclic import half_cosine

SHAPES = ("linear", "cosine", "sqrt")


def steps_of(amount: float, steps: float) -> float:
    """A duration given as a count or as a fraction of ``steps``: ``amount * steps`` when
    ``0 < amount < 1``, else ``amount`` itself (MiniCPM's training code reads its
    ``warmup_iters`` and ``drop_iters`` the same way).

    >>> steps_of(0.1, 1000), steps_of(50, 1000), steps_of(1, 1000), steps_of(0, 1000)
    (100.0, 50, 1, 0)
    """
    return amount * steps if 0 < amount < 1 else amount


@register_schedule
@dataclass(frozen=True)
class Wsd(Schedule):
    """Warmup-stable-decay: with ``W`` warmup steps, ``D`` decay steps, ``S = steps`` and the
    decay starting at ``T = S - D``:

    - ``t < W``: ``lr * t / W`` (linear warmup from 0; none when ``warmup=0``);
    - ``W <= t < T``: ``lr`` (the stable stage);
    - ``T <= t < S``: ``end + (lr - end) * g((t - T) / D)`` with ``g(x)`` = ``1 - x``
      (``shape=linear``), ``(1 + cos(pi x)) / 2`` (``cosine``) or ``1 - sqrt(x)`` (``sqrt``,
      Hägele et al.'s cooldown);
    - ``t >= S``: ``end``.

    ``warmup`` and ``decay`` are counts of steps, or fractions of ``steps`` when below 1
    (``decay=0.1``: the last 10%; ``decay=1`` is a single step, a decay over the whole run
    is ``decay=steps``). The horizon ``steps`` includes the warmup; ``W + D <= S``. ``end``
    is at most ``lr``. Non-increasing from ``W`` on; ``lr(W) = lr(T) = lr``.

    >>> s = Wsd(lr=1.0, steps=100, warmup=10, decay=0.2)
    >>> s(0), s(5), s(10), s(80), s(90), s(100), s(1000)
    (0.0, 0.5, 1.0, 1.0, 0.5, 0.0, 0.0)
    >>> s = Wsd(lr=1.0, steps=100, decay=20, end=0.1, shape="sqrt")
    >>> s(0), s(80), round(s(85), 12), s(100)
    (1.0, 1.0, 0.55, 0.1)
    >>> s = Wsd(lr=1.0, steps=100, decay=20, shape="cosine")
    >>> s(80), round(s(90), 12), s(100)
    (1.0, 0.5, 0.0)
    """

    lr: float
    steps: float
    warmup: float = 0
    decay: float = 0.1
    end: float = 0.0
    shape: str = "linear"
    name = "wsd"
    horizon = "steps"

    def __post_init__(self) -> None:
        check_number(self.name, "lr", self.lr, positive=True)
        check_duration(self.name, "steps", self.steps)
        check_number(self.name, "warmup", self.warmup, nonnegative=True)
        check_number(self.name, "decay", self.decay, positive=True)
        check_number(self.name, "end", self.end, nonnegative=True, maximum=self.lr)
        check_choice(self.name, "shape", self.shape, SHAPES)
        warmup, decay = self.warmup_steps, self.decay_steps
        if warmup + decay > self.steps:
            raise ValueError(
                f"{self.name}: warmup + decay ({warmup:g} + {decay:g} steps) must be <= "
                f"steps ({self.steps!r}), got warmup={self.warmup!r}, decay={self.decay!r}"
            )

    @property
    def reference_lr(self) -> float:
        return self.lr

    @property
    def warmup_steps(self) -> float:
        """``W``: the warmup's length in steps."""
        return steps_of(self.warmup, self.steps)

    @property
    def decay_steps(self) -> float:
        """``D``: the decay's length in steps."""
        return steps_of(self.decay, self.steps)

    def value(self, t: float) -> float:
        warmup, decay = self.warmup_steps, self.decay_steps
        if t < warmup:
            return self.lr * t / warmup
        start = self.steps - decay
        if t < start:
            return float(self.lr)
        if t >= self.steps:
            return float(self.end)
        x = (t - start) / decay
        if self.shape == "cosine":
            return half_cosine(self.lr, self.end, x)
        fraction = 1.0 - (x if self.shape == "linear" else math.sqrt(x))
        return self.end + (self.lr - self.end) * fraction
