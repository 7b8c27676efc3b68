"""Schedules shaped by a horizon: cosine (with warmup and warm restarts) and one-cycle."""

from __future__ import annotations

import math
from dataclasses import dataclass

from lrlab.schedules.base import Schedule, check_bool, check_choice, check_number, register_schedule


def _cosine(start: float, end: float, fraction: float) -> float:
    """Half a cosine from ``start`` (fraction 0) to ``end`` (fraction 1)."""
    return end + (start - end) * (1.0 + math.cos(math.pi * fraction)) / 2.0


@register_schedule
@dataclass(frozen=True)
class Cosine(Schedule):
    """Cosine decay from ``lr`` to ``end`` over ``steps`` steps, with optional linear warmup
    and warm restarts (SGDR, Loshchilov & Hutter 2017).

    With ``W = warmup`` and ``T = steps - W``:

    - ``t < W``: ``lr * t / W`` (linear warmup from 0; the horizon ``steps`` includes it);
    - then, with ``u = t - W``: ``end + (lr - end) * (1 + cos(pi * u / T)) / 2`` for ``u < T``
      and ``end`` after it;
    - with ``restarts=True`` the cosine restarts from ``lr`` instead, cycle ``i`` lasting
      ``T * mult ** i`` steps (PyTorch's ``CosineAnnealingWarmRestarts(T_0=T, T_mult=mult,
      eta_min=end)``).

    Without restarts it is PyTorch's ``CosineAnnealingLR(T_max=steps, eta_min=end)`` up to
    ``steps`` (PyTorch's then rises again; this one stays at ``end``), and non-increasing after
    the warmup.

    >>> s = Cosine(lr=0.1, steps=100, end=0.0)
    >>> s(0), round(s(50), 12), s(100), s(1000)
    (0.1, 0.05, 0.0, 0.0)
    >>> w = Cosine(lr=0.1, steps=110, warmup=10)
    >>> w(0), w(5), w(10), w(110)
    (0.0, 0.05, 0.1, 0.0)
    >>> r = Cosine(lr=1.0, steps=10, restarts=True, mult=2.0)
    >>> r(9) < 0.1, r(10), r(29) < 0.1, r(30)
    (True, 1.0, True, 1.0)
    """

    lr: float
    steps: float
    end: float = 0.0
    warmup: float = 0
    restarts: bool = False
    mult: float = 1.0
    name = "cosine"

    def __post_init__(self) -> None:
        check_number(self.name, "lr", self.lr, positive=True)
        check_number(self.name, "steps", self.steps, positive=True)
        check_number(self.name, "end", self.end, nonnegative=True)
        check_number(self.name, "warmup", self.warmup, nonnegative=True)
        if not self.warmup < self.steps:
            raise ValueError(
                f"{self.name}: warmup must be < steps ({self.steps!r}), got warmup={self.warmup!r}"
            )
        check_bool(self.name, "restarts", self.restarts)
        check_number(self.name, "mult", self.mult, positive=True)
        if self.mult < 1 or (self.mult != 1 and not self.restarts):
            raise ValueError(
                f"{self.name}: mult must be >= 1 and needs restarts=true, got mult={self.mult!r}"
            )

    @property
    def reference_lr(self) -> float:
        return self.lr

    def value(self, t: float) -> float:
        if t < self.warmup:
            return self.lr * t / self.warmup
        u = t - self.warmup
        period = self.steps - self.warmup
        if not self.restarts:
            return float(self.end) if u >= period else _cosine(self.lr, self.end, u / period)
        u, period = self._position_in_cycle(u, period)
        return _cosine(self.lr, self.end, u / period)

    def _position_in_cycle(self, u: float, first: float) -> tuple[float, float]:
        """``(u - start of its cycle, length of its cycle)`` for warm restarts."""
        if self.mult == 1:
            return u - first * math.floor(u / first), first
        # Cycle n starts at first * (mult**n - 1) / (mult - 1); the log gives n up to rounding,
        # which the two loops settle exactly.
        n = max(0, math.floor(math.log(u * (self.mult - 1) / first + 1, self.mult)))
        start = first * (self.mult**n - 1) / (self.mult - 1)
        while n > 0 and start > u:
            n -= 1
            start = first * (self.mult**n - 1) / (self.mult - 1)
        while start + first * self.mult**n <= u:
            start += first * self.mult**n
            n += 1
        return u - start, first * self.mult**n


@register_schedule
@dataclass(frozen=True)
class OneCycle(Schedule):
    """The one-cycle policy (Smith & Topin 2018), exactly as PyTorch's ``OneCycleLR`` computes
    it for ``max_lr=lr, total_steps=steps``: up from ``lr / div`` to ``lr`` over the first
    ``pct_start`` of training, then down to ``lr / (div * final_div)``.

    Here ``lr`` is the *peak*. Phase boundaries are PyTorch's: the peak is at step
    ``pct_start * steps - 1`` and the minimum at ``steps - 1``; with ``three_phase`` the LR
    returns to ``lr / div`` at ``2 * pct_start * steps - 2`` before the final descent.
    ``anneal`` is ``cos`` or ``linear``. After ``steps - 1`` the minimum holds (PyTorch raises).

    >>> s = OneCycle(lr=1.0, steps=101, pct_start=0.5, div=10.0, final_div=100.0)
    >>> round(s(0), 12), s(49.5), s(100), s(1000)
    (0.1, 1.0, 0.001, 0.001)
    """

    lr: float
    steps: float
    pct_start: float = 0.3
    div: float = 25.0
    final_div: float = 1e4
    anneal: str = "cos"
    three_phase: bool = False
    name = "one_cycle"

    def __post_init__(self) -> None:
        check_number(self.name, "lr", self.lr, positive=True)
        check_number(self.name, "steps", self.steps, positive=True)
        check_number(self.name, "pct_start", self.pct_start, positive=True, maximum=1.0)
        check_number(self.name, "div", self.div, positive=True)
        check_number(self.name, "final_div", self.final_div, positive=True)
        check_choice(self.name, "anneal", self.anneal, ("cos", "linear"))
        check_bool(self.name, "three_phase", self.three_phase)
        ends = [end for end, _, _ in self._phases()]
        if not all(b > a for a, b in zip([0.0, *ends], ends, strict=False)):
            raise ValueError(
                f"{self.name}: every phase needs at least one step; with steps={self.steps!r} "
                f"got pct_start={self.pct_start!r}"
            )

    @property
    def reference_lr(self) -> float:
        return self.lr

    def _phases(self) -> list[tuple[float, float, float]]:
        """``(end step, start value, end value)`` of each phase, as ``OneCycleLR`` builds them."""
        initial = self.lr / self.div
        minimum = initial / self.final_div
        up_end = float(self.pct_start * self.steps) - 1
        last = float(self.steps) - 1
        if self.three_phase:
            down_end = float(2 * self.pct_start * self.steps) - 2
            return [
                (up_end, initial, self.lr),
                (down_end, self.lr, initial),
                (last, initial, minimum),
            ]
        return [(up_end, initial, self.lr), (last, self.lr, minimum)]

    def value(self, t: float) -> float:
        phases = self._phases()
        start = 0.0
        for i, (end, high, low) in enumerate(phases):
            if t <= end or i == len(phases) - 1:
                fraction = min((t - start) / (end - start), 1.0)
                if self.anneal == "cos":
                    return _cosine(high, low, fraction)
                return (low - high) * fraction + high
            start = end
        raise AssertionError("unreachable: the last phase always returns")
