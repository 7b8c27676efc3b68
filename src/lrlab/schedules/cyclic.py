"""Schedules shaped by a horizon or a cycle: cosine (with warmup and warm restarts), one-cycle and
the cyclical LRs of Smith 2017."""

from __future__ import annotations

import math
from dataclasses import dataclass

from lrlab.schedules.base import (
    Schedule,
    check_bool,
    check_choice,
    check_duration,
    check_number,
    register_schedule,
)
from lrlab.validate import fail


def half_cosine(start: float, end: float, fraction: float) -> float:
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
    horizon = "steps"

    def __post_init__(self) -> None:
        check_number(self.name, "lr", self.lr, positive=True)
        check_duration(self.name, "steps", self.steps)
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
            return float(self.end) if u >= period else half_cosine(self.lr, self.end, u / period)
        u, period = self._position_in_cycle(u, period)
        return half_cosine(self.lr, self.end, u / period)

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
    horizon = "steps"

    def __post_init__(self) -> None:
        check_number(self.name, "lr", self.lr, positive=True)
        check_duration(self.name, "steps", self.steps)
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
                    return half_cosine(high, low, fraction)
                return (low - high) * fraction + high
            start = end
        raise AssertionError("unreachable: the last phase always returns")


CYCLIC_MODES = ("triangular", "triangular2", "exp_range")


@register_schedule
@dataclass(frozen=True)
class Cyclic(Schedule):
    """Cyclical learning rates (Smith 2017, "Cyclical Learning Rates for Training Neural
    Networks", arXiv 1506.01186): the LR goes up from ``lr`` towards ``max_lr`` over
    ``step_size`` steps and back down over ``step_size_down`` (default ``step_size``), again
    and again. Exactly PyTorch's ``CyclicLR(base_lr=lr, max_lr, step_size_up=step_size,
    step_size_down, mode, gamma)`` LR, computed as its ``get_lr`` does
    (``torch/optim/lr_scheduler.py``, torch 2.13); lrlab does not cycle momentum.

    With ``C = step_size + step_size_down`` and ``r = step_size / C``:

    - ``cycle = floor(1 + t / C)`` (from 1) and ``x = 1 + t / C - cycle`` (0 to 1 in a cycle);
    - ``h = x / r`` while rising (``x <= r``), else ``(x - 1) / (r - 1)``: 0 -> 1 -> 0;
    - ``lr(t) = lr + (max_lr - lr) * h * scale`` with ``scale = 1`` (``triangular``),
      ``1 / 2 ** (cycle - 1)`` (``triangular2``: the amplitude halves every cycle) or
      ``gamma ** t`` (``exp_range``; ``t`` counts every step from 0, as PyTorch's code does,
      not the steps of the current cycle its docstring mentions).

    ``lr(0) = lr``, ``lr(step_size) = max_lr`` (the first peak), back to ``lr`` at ``C``.
    ``gamma`` only applies to ``exp_range``.

    >>> s = Cyclic(lr=0.1, max_lr=1.0, step_size=10)
    >>> s(0), s(5), s(10), s(15), s(20), s(30)
    (0.1, 0.55, 1.0, 0.55, 0.1, 1.0)
    >>> s = Cyclic(lr=0.1, max_lr=1.0, step_size=10, mode="triangular2")
    >>> s(10), s(30), s(50)
    (1.0, 0.55, 0.325)
    >>> s = Cyclic(lr=0.1, max_lr=1.0, step_size=1, step_size_down=3)
    >>> s(0), s(1), round(s(2), 12), s(4)
    (0.1, 1.0, 0.7, 0.1)
    """

    lr: float
    max_lr: float
    step_size: float
    mode: str = "triangular"
    gamma: float = 1.0
    step_size_down: float | None = None
    name = "cyclic"

    def __post_init__(self) -> None:
        check_number(self.name, "lr", self.lr, positive=True)
        check_number(self.name, "max_lr", self.max_lr, positive=True)
        if not self.max_lr >= self.lr:
            raise ValueError(
                f"{self.name}: max_lr must be >= lr ({self.lr!r}), got max_lr={self.max_lr!r}"
            )
        check_number(self.name, "step_size", self.step_size, positive=True)
        if self.step_size_down is not None:
            check_number(self.name, "step_size_down", self.step_size_down, positive=True)
        down = self.step_size if self.step_size_down is None else self.step_size_down
        if not math.isfinite(self.step_size + down):  # the cycle's length, C
            raise fail(self.name, "step_size + step_size_down", self.step_size + down, "finite")
        check_choice(self.name, "mode", self.mode, CYCLIC_MODES)
        check_number(self.name, "gamma", self.gamma, positive=True, maximum=1.0)
        if self.gamma != 1 and self.mode != "exp_range":
            raise ValueError(
                f"{self.name}: gamma applies to mode=exp_range only, got gamma={self.gamma!r} "
                f"with mode={self.mode}"
            )

    @property
    def reference_lr(self) -> float:
        return self.lr

    def value(self, t: float) -> float:
        # PyTorch's arithmetic, operation for operation, so the values agree to the last bit.
        up = float(self.step_size)
        down = float(self.step_size_down) if self.step_size_down is not None else up
        total = up + down
        ratio = up / total
        cycle = math.floor(1 + t / total)
        x = 1.0 + t / total - cycle
        height = x / ratio if x <= ratio else (x - 1) / (ratio - 1)
        base_height = (self.max_lr - self.lr) * height
        if self.mode == "triangular":
            scale = 1.0
        elif self.mode == "triangular2":
            # PyTorch's 1 / (2.0 ** (cycle - 1)), the same value, without its OverflowError
            # past cycle 1025 (this underflows to 0 instead).
            scale = 0.5 ** (cycle - 1)
        else:
            scale = self.gamma**t
        return float(self.lr + base_height * scale)
