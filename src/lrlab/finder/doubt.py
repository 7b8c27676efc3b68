"""When a range test's answer is in doubt: measured signs that its curve cannot place an LR.

A range test reads one noisy training-loss curve. Four signs, each a number measured on the
part of the curve the rules read (`lrlab.finder.rules.window`), say that its suggestion is
not to be trusted:

- ``flat``: the smoothed loss fell less than `FLAT_DROP` (5%) of its first value before its
  minimum. The rules then read a minimum that is barely one: on lrlab's own tasks the two
  curves below 5% (digits and mnist5k with plain SGD: 2.2% and 4.6%) are the ones where the
  recommended rule took 2.2-2.3x the tuned best's steps (docs/lr-finder.md).
- ``noisy``: the LRs whose smoothed loss lies within two noise deviations of its minimum span
  more than `NOISE_DECADES` (one decade): where the minimum is, and so every rule reading it,
  is uncertain by more than 10x. The noise of one loss, ``sigma``, is estimated from the raw
  losses' second differences (`neighbour_noise`: Gasser, Sroka & Jennen-Steinmetz 1986,
  "Residual variance and residual pattern in nonlinear regression", Biometrika 73), and the
  smoothed curve's from it as an EMA's: ``sigma * sqrt((1 - beta) / (1 + beta))``.
- ``spread``: over repeats, the recommended rule's suggestions span more than a factor
  `SPREAD` (10, a decade).
- ``edge``: the smoothed minimum is among the first `EDGE_POINTS` (3) points read (the loss
  only rose: ``start`` is too high), or among the last 3 of a test that ran to its ``end``
  without blowing up: the minimum may lie beyond what the chart shows (iris and breast-cancer
  with SGD, where the suggestion was 10-30x the tuned grid's best).

Each sign is a `Doubt` naming itself and its measurement; `doubts` returns them, in that order.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from lrlab.finder.core import Curve, RangeTest

FLAT_DROP = 0.05
NOISE_DECADES = 1.0
SPREAD = 10.0
EDGE_POINTS = 3


@dataclass(frozen=True)
class Doubt:
    """One sign of doubt: its ``kind`` (``flat``, ``noisy``, ``spread`` or ``edge``), the
    ``value`` measured and what it means, in words (``detail``)."""

    kind: str
    value: float
    detail: str


def neighbour_noise(xs: Sequence[float], ys: Sequence[float]) -> float:
    """The noise of one value of ``ys`` about a smooth trend in ``xs`` (increasing, evenly
    spaced or not), from consecutive triples (Gasser et al. 1986): pseudo-residuals
    ``e_i = (a_i y_(i-1) + c_i y_(i+1) - y_i) / sqrt(a_i^2 + c_i^2 + 1)`` with ``a_i, c_i``
    the weights that interpolate ``x_i`` linearly between its neighbours; robustly, their
    median absolute value / 0.6745 (the standard deviation for normal noise, undisturbed by
    the one or two places where the trend itself bends sharply); 0 for fewer than 3 points.

    >>> neighbour_noise([0, 1, 2, 3], [0.0, 2.0, 4.0, 6.0])
    0.0
    >>> round(neighbour_noise([0, 1, 2], [0.0, 1.0, 0.0]), 4)
    1.2105
    """
    if len(xs) < 3:
        return 0.0
    residuals = []
    for i in range(1, len(xs) - 1):
        width = xs[i + 1] - xs[i - 1]
        a = (xs[i + 1] - xs[i]) / width
        c = (xs[i] - xs[i - 1]) / width
        residual = a * ys[i - 1] + c * ys[i + 1] - ys[i]
        residuals.append(abs(residual) / math.sqrt(a * a + c * c + 1.0))
    return float(np.median(residuals)) / 0.6745


def noise_of(lrs: Sequence[float] | np.ndarray, losses: Sequence[float]) -> float:
    """`neighbour_noise` of a range test's losses against ``log10(lr)``."""
    return neighbour_noise([math.log10(lr) for lr in lrs], list(losses))


def curve_doubts(curve: Curve, smoothing: float) -> list[Doubt]:
    """The ``flat``, ``noisy`` and ``edge`` signs of one curve (see the module)."""
    begin, end = curve.window
    smoothed = np.asarray(curve.smoothed[begin:end], dtype=float)
    if len(smoothed) < 3:
        return []
    lrs = np.asarray(curve.lrs[begin:end], dtype=float)
    lowest = int(np.argmin(smoothed))
    first, minimum = float(smoothed[0]), float(smoothed[lowest])
    found: list[Doubt] = []
    drop = (first - minimum) / abs(first) if first else 0.0
    if drop < FLAT_DROP:
        found.append(Doubt("flat", drop, f"the smoothed loss fell {drop:.1%} before its minimum"))
    raw = noise_of(lrs, curve.losses[begin:end])
    sigma = raw * math.sqrt((1.0 - smoothing) / (1.0 + smoothing))
    near = lrs[smoothed <= minimum + 2.0 * sigma]
    span = math.log10(float(near.max()) / float(near.min()))
    if span > NOISE_DECADES:
        found.append(
            Doubt(
                "noisy",
                span,
                f"the smoothed loss stays within its noise of the minimum over {span:.1f} "
                "decades of LR",
            )
        )
    at_start = lowest < EDGE_POINTS
    at_end = lowest >= len(smoothed) - EDGE_POINTS and curve.stop == "completed"
    if at_start or at_end:
        side = "start" if at_start else "end"
        found.append(
            Doubt(
                "edge",
                float(lrs[lowest]),
                f"the smoothed minimum (lr {lrs[lowest]:.3g}) is at the chart's {side}",
            )
        )
    return found


def doubts(result: RangeTest) -> tuple[Doubt, ...]:
    """Every sign of doubt of ``result`` (one per kind: a curve's sign counts for the test,
    the first curve that shows it gives its value), in the order flat, noisy, spread, edge."""
    found: dict[str, Doubt] = {}
    for curve in result.curves:
        for doubt in curve_doubts(curve, result.smoothing):
            found.setdefault(doubt.kind, doubt)
    rule = result.suggestions.get(result.recommended)
    if rule is not None and rule.low is not None and rule.high is not None and rule.low > 0:
        ratio = rule.high / rule.low
        if ratio > SPREAD:
            found["spread"] = Doubt(
                "spread",
                ratio,
                f"the {result.recommended} rule's suggestions span {ratio:.0f}x over repeats",
            )
    order = ("flat", "noisy", "spread", "edge")
    return tuple(found[kind] for kind in order if kind in found)


def warning(result: RangeTest, command: str | None = None) -> str | None:
    """One line saying why the test is in doubt and pointing to ``lrlab tune`` (``command``:
    the tune command to suggest), or ``None`` when it shows no sign."""
    found = doubts(result)
    if not found:
        return None
    signs = "; ".join(f"{d.kind}: {d.detail}" for d in found)
    hint = command or "lrlab tune"
    return f"warning: this range test is in doubt ({signs}); `{hint}` tunes the LR with short runs"
