"""Suggestion rules: small pure functions from a range test's curve to a learning rate.

A rule takes the LRs and the *smoothed* losses of one curve (already cut to the part the rules
read, see `window`) and returns a `Suggestion` naming itself, or ``None`` when the curve gives it
nothing to go on. Any function of that shape plugs into `lrlab.find` (``rules=...``).

Slopes are taken against ``log10(lr)``, the axis the LRs are spaced on in an exponential ramp
and the one people read the chart on. Lightning's ``_LRFinder.suggestion``
(``src/lightning/pytorch/tuner/lr_finder.py``) takes ``torch.gradient(losses, spacing=[lrs])``,
the slope against the *linear* LR, which divides each difference by a step that grows 20-fold
per decade and so favours the smallest LRs; torch-lr-finder's ``plot`` (``torch_lr_finder/
lr_finder.py``) takes ``np.gradient(losses)`` against the step index, which is ``log10(lr)`` up
to a constant only for an exponential ramp.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np

# The part of a curve the rules read, as fastai's ``Learner.lr_find`` cuts it
# (``fastai/callback/schedule.py``: ``recorder.lrs[num_it//10:-5]``, then up to the first NaN):
# the first tenth of the planned steps is burn-in (the smoothed loss still carries its start),
# and the last points before the stop are the blow-up itself.
BURN_IN_FRACTION = 0.1
SKIP_END = 5


@dataclass(frozen=True)
class Suggestion:
    """A rule's answer for one curve: the suggested ``lr`` and the ``index`` of the point it was
    read at, counted in the sequence the rule was given (``minimum`` suggests a tenth of the LR
    at that point)."""

    rule: str
    lr: float
    index: int


Rule = Callable[[Sequence[float], Sequence[float]], Suggestion | None]


def rule_name(rule: Rule) -> str:
    """The name a rule's suggestions go by: its function name (a ``functools.partial``'s
    underlying function's).

    >>> rule_name(valley), rule_name(partial(steepest))
    ('valley', 'steepest')
    """
    target = rule.func if isinstance(rule, partial) else rule
    return str(getattr(target, "__name__", type(target).__name__))


def window(steps: int, smoothed: Sequence[float]) -> tuple[int, int]:
    """``(begin, end)``: the slice of a curve the rules read. ``begin`` skips the burn-in,
    ``steps // 10`` points of the ``steps`` planned; ``end`` drops the last `SKIP_END` points
    recorded and stops before the first non-finite value. Empty (``begin >= end``) when the
    test stopped too early.

    >>> window(100, [1.0] * 100)
    (10, 95)
    >>> window(100, [1.0] * 40 + [math.nan])
    (10, 36)
    >>> window(10, [1.0, math.inf])
    (1, 1)
    """
    begin = int(steps * BURN_IN_FRACTION)
    end = len(smoothed) - SKIP_END
    for i, value in enumerate(smoothed):
        if not math.isfinite(value):
            end = min(end, i)
            break
    return begin, max(begin, end)


def steepest(lrs: Sequence[float], losses: Sequence[float]) -> Suggestion | None:
    """The LR where the smoothed loss falls fastest per decade: ``argmin d loss / d log10(lr)``,
    with numpy's second-order central differences (``np.gradient`` on the uneven ``log10``
    grid, one-sided at the ends). ``None`` for fewer than 2 points or a loss that never falls.

    fastai's ``steep`` (``fastai/callback/schedule.py``) takes forward differences against
    ``log(lr)`` and returns the left point; the central difference does not shift the answer
    half a step towards smaller LRs.

    >>> steepest([1e-3, 1e-2, 1e-1, 1.0], [1.0, 0.9, 0.5, 0.45])
    Suggestion(rule='steepest', lr=0.01, index=1)
    >>> steepest([1e-3, 1e-2], [1.0, 1.5]) is None
    True
    """
    if len(lrs) < 2:
        return None
    slopes = np.gradient(np.asarray(losses, dtype=float), np.log10(np.asarray(lrs, dtype=float)))
    index = int(np.argmin(slopes))
    if not slopes[index] < 0:
        return None
    return Suggestion("steepest", float(lrs[index]), index)


def valley(lrs: Sequence[float], losses: Sequence[float]) -> Suggestion | None:
    """fastai's ``valley`` rule exactly as ``fastai/callback/schedule.py`` computes it: find the
    longest strictly decreasing run of the smoothed loss (``lds[i]``, the longest decreasing
    subsequence ending at ``i``, by the same O(n^2) loops, updating the best end inside the
    inner loop as fastai does), then, with ``start = end - lds[end]`` and
    ``sections = (end - start) / 3``, take the point ``start + int(sections) +
    int(sections / 2)``: about half-way down the valley, nearer its top. ``None`` for fewer
    than 2 points.

    fastai's ``start`` is one before the valley's first point and is ``-1`` for a curve that
    falls from its first point; for two points the index is then ``-1``, which Python and
    torch read as the last point, and so does this function (the index reported is that one).

    >>> valley([1, 2, 3, 4, 5, 6, 7], [5, 4, 6, 3, 2, 7, 1])
    Suggestion(rule='valley', lr=3.0, index=2)
    >>> valley([1, 2], [2.0, 1.0])
    Suggestion(rule='valley', lr=2.0, index=1)
    """
    n = len(losses)
    if n < 2:
        return None
    max_start, max_end = 0, 0
    lds = [1] * n
    for i in range(1, n):
        for j in range(0, i):
            if (losses[i] < losses[j]) and (lds[i] < lds[j] + 1):
                lds[i] = lds[j] + 1
            if lds[max_end] < lds[i]:
                max_end = i
                max_start = max_end - lds[max_end]
    sections = (max_end - max_start) / 3
    index = (max_start + int(sections) + int(sections / 2)) % n
    return Suggestion("valley", float(lrs[index]), index)


def minimum(lrs: Sequence[float], losses: Sequence[float]) -> Suggestion | None:
    """A tenth of the LR at the smoothed loss's minimum: fastai's ``minimum``
    (``fastai/callback/schedule.py``, ``lrs[losses.argmin()] / 10``), the "one order of
    magnitude before the minimum" of its course. ``index`` is the minimum's point. ``None``
    for fewer than 2 points.

    >>> minimum([0.01, 0.1, 1.0], [2.0, 1.0, 3.0])
    Suggestion(rule='minimum', lr=0.01, index=1)
    """
    if len(lrs) < 2:
        return None
    index = int(np.argmin(np.asarray(losses, dtype=float)))
    return Suggestion("minimum", float(lrs[index]) / 10.0, index)
