"""The rung plan of `lrlab.tune`: which LRs run at which budget, as pure functions of the run's
length, the range test's answer and the results so far (so a rerun recomputes the same plan
from the store and resumes; `lrlab.tuning.core`).

- **LRs** lie on one global log grid, `PER_DECADE` (3) points a decade: ``grid_lr(k) =
  10 ** (k / 3)`` to 6 significant digits (..., 0.01, 0.0215443, 0.0464159, 0.1, ...). A
  grid shared by every tune keeps a trial's key the same when the range test moves a little.
- **Rung budgets** (`rung_steps`): successive halving's geometric budgets (Jamieson &
  Talwalkar 2016; Li et al. 2017, "Hyperband", JMLR 18), ``B_k = round(T / eta ** (K - 1 -
  k))`` for rungs ``k = 0 .. K - 1`` of a run of ``T`` steps: with ``eta = 3`` and ``K = 3``,
  ``T/9``, ``T/3`` and ``T``.
- **Counts** (`rung_counts`): the first rung runs the bracket's LRs; each next rung keeps
  ``ceil(n / eta)``, but at least `FINAL_LRS` (3), the fewest a curve and its noise can be
  read from.
- **Survivors** (`survivors`): not the ``n`` best-ranked LRs, but ``n`` grid LRs around the
  rung's robust choice (`lrlab.tuning.choice`): the objective is a smooth function of
  ``log(lr)`` with one basin, so the best of the next rung lies in this one's basin. When
  the LRs within noise of this rung's best span ``n`` grid points or more, the next rung
  spreads its ``n`` LRs over that span (what a short run could not tell apart, a longer one
  settles); otherwise it runs the ``n`` consecutive LRs centred on the choice (`window`).
  With an even ``n``, the extra LR goes below: the best LR of a longer run is lower than a
  shorter run's, if it moves at all (Wu, Ren, Liao & Grosse 2018, "Understanding
  Short-Horizon Bias in Stochastic Meta-Optimization"; measured for LLM training horizons
  by Bjorck et al. 2024, "Scaling Optimal LR Across Token Horizons").
- **The bracket** (`bracket`): from the LR ``m`` at the range test's smoothed loss minimum,
  ``[m / 10**2.5, m * 10**0.5]`` (3 decades) for a constant LR and ``[m / 100, m * 10]``
  for a schedule's peak. The tuned grid's best LR lay between ``m / 860`` and ``m / 1.1``
  (constant) and between ``m / 27`` and ``4.1 m`` (one-cycle peak) on the 32 cells of
  docs/lr-finder.md, all but three iris cells inside these brackets; the search widens
  itself when the best is at an edge.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

#: Points of the global LR grid per decade.
PER_DECADE = 3
#: The fewest LRs a rung after the first runs.
FINAL_LRS = 3
#: The bracket around the range test's minimum ``m``, in decades below and above it: for a
#: constant LR, and for a schedule's peak.
CONSTANT_BRACKET = (2.5, 0.5)
PEAK_BRACKET = (2.0, 1.0)
#: Grid indices never go past these LRs (1e-8 and 100).
LOWEST, HIGHEST = -8 * PER_DECADE, 2 * PER_DECADE


def grid_lr(index: int) -> float:
    """The LR at ``index`` of the global grid: ``10 ** (index / PER_DECADE)``, 6 digits.

    >>> [grid_lr(k) for k in (-3, -2, -1, 0)]
    [0.1, 0.215443, 0.464159, 1.0]
    """
    return float(f"{10 ** (index / PER_DECADE):.6g}")


def grid_index(lr: float) -> float:
    """The (fractional) grid position of ``lr``.

    >>> grid_index(0.1), round(grid_index(0.3), 3)
    (-3.0, -1.569)
    """
    return math.log10(lr) * PER_DECADE


def rung_steps(total: int, eta: int, rungs: int) -> tuple[int, ...]:
    """Each rung's budget in steps: ``round(total / eta ** (rungs - 1 - k))``, at least 1.

    >>> rung_steps(640, 3, 3)
    (71, 213, 640)
    >>> rung_steps(4400, 3, 3)
    (489, 1467, 4400)
    """
    return tuple(max(1, round(total / eta ** (rungs - 1 - k))) for k in range(rungs))


def rung_counts(first: int, eta: int, rungs: int) -> tuple[int, ...]:
    """How many LRs each rung runs: ``first``, then ``max(FINAL_LRS, ceil(n / eta))`` (never
    more than the rung before).

    >>> rung_counts(10, 3, 3)
    (10, 4, 3)
    >>> rung_counts(27, 3, 4)
    (27, 9, 3, 3)
    """
    counts = [first]
    for _ in range(rungs - 1):
        counts.append(min(counts[-1], max(FINAL_LRS, math.ceil(counts[-1] / eta))))
    return tuple(counts)


def bracket(minimum_lr: float, constant: bool) -> list[int]:
    """The grid indices of the first rung: from ``minimum_lr / 10 ** below`` to
    ``minimum_lr * 10 ** above`` (`CONSTANT_BRACKET` or `PEAK_BRACKET`), both snapped to the
    grid, so ``(below + above) * PER_DECADE + 1`` LRs.

    >>> [grid_lr(k) for k in bracket(0.0955, constant=True)][::3]
    [0.000215443, 0.00215443, 0.0215443, 0.215443]
    >>> len(bracket(0.0955, constant=False))
    10
    """
    below, above = CONSTANT_BRACKET if constant else PEAK_BRACKET
    low = round(grid_index(minimum_lr) - below * PER_DECADE)
    count = round((below + above) * PER_DECADE) + 1
    low = min(max(low, LOWEST), HIGHEST - count + 1)
    return list(range(low, low + count))


def window(indices: Sequence[int], centre: float, count: int) -> list[int]:
    """``count`` consecutive indices of ``indices`` (sorted, consecutive) centred on the grid
    position ``centre``; with an even ``count`` the extra one below; clamped to ``indices``.

    >>> window(range(-12, -2), -7.0, 3), window(range(-12, -2), -7.0, 4)
    ([-8, -7, -6], [-9, -8, -7, -6])
    >>> window(range(-12, -2), -2.5, 3)
    [-5, -4, -3]
    """
    ordered = sorted(indices)
    if count >= len(ordered):
        return ordered
    start = (
        math.floor(centre - (count - 1) / 2 + 1e-9)
        if count % 2 == 0
        else round(centre - (count - 1) / 2)
    )
    start = min(max(start, ordered[0]), ordered[-1] - count + 1)
    return list(range(start, start + count))


def survivors(indices: Sequence[int], low: float, high: float, count: int) -> list[int]:
    """The ``count`` grid indices of ``indices`` the next rung runs, from this rung's choice:
    the LRs within noise of its best span grid positions ``low`` to ``high``. When that span
    holds ``count`` grid points, they are spread evenly over it (the next rung, longer, settles
    what this one could not tell apart); when it is narrower, the ``count`` consecutive
    indices centred on it (`window`). Clamped to ``indices``.

    >>> survivors(range(-12, -2), -7.4, -6.9, 3)      # narrow: the window around -7.15
    [-8, -7, -6]
    >>> survivors(range(-12, -2), -8.0, -3.8, 3)      # wide: spread over it
    [-8, -6, -4]
    >>> survivors(range(-12, -2), -13.0, -8.0, 3)     # clamped to the LRs searched
    [-12, -10, -8]
    """
    ordered = sorted(indices)
    low, high = max(low, ordered[0]), min(high, ordered[-1])
    if count < 2 or high - low < count - 1:
        return window(ordered, (low + high) / 2, count)
    step = (high - low) / (count - 1)
    picked = [math.floor(low + step * i + 0.5) for i in range(count)]
    return [min(max(i, ordered[0]), ordered[-1]) for i in picked]


def plan_cost(counts: Sequence[int], steps: Sequence[int], seeds: int) -> int:
    """Training steps of the rungs: ``sum(n_k * B_k) * seeds``.

    >>> plan_cost((10, 4, 3), (71, 213, 640), 1)
    3482
    """
    return sum(n * b for n, b in zip(counts, steps, strict=True)) * seeds
