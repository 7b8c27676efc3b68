"""What a rung of `lrlab.tune` measures per trial, and the choice it makes from them.

**The objective** (`objective`, smaller is better) is read on the validation split only, from
a complete run of the rung's budget ``B``:

- for a task with a target: the step at which the validation metric first met the target,
  interpolated linearly between the two epoch ends around the crossing, as a fraction of ``B``
  (in ``(0, 1]``); a run that never met it scores ``1 + shortfall``, its final validation
  metric's distance to the target relative to the target (``|target - final| / |target|``),
  so a near miss ranks before a far one and every hit before every miss. This is the grid's
  own criterion (`lrlab.report.summary.choose_lr`: targets reached, then steps to target,
  then the final metric) as one number per run, finer than an epoch, that a curve can be
  drawn through;
- for a task without one: the final validation metric (negated when higher is better);
- a diverged or failed run, or one without a validation metric: ``inf``.

**The choice** (`choose`) is the centre of the LRs within noise of the best on a smoothed
curve of the objective against ``log10(lr)``, not the single best point:

1. *Smoothing*: local polynomial regression with a Gaussian kernel (LOESS: Cleveland 1979,
   "Robust locally weighted regression and smoothing scatterplots", JASA 74; Cleveland &
   Devlin 1988, "Locally weighted regression", JASA 83), evaluated on a fine grid between
   the finite points. Over a wide bracket (`WIDE`, 6 LRs or more: the first rung), local
   lines with the grid's spacing as bandwidth: a constant stays constant, a plateau flat,
   and a lone lucky score is averaged with its neighbours. Over the few LRs of a later rung,
   already centred on the optimum, the curvature is the signal, and local lines would
   flatten it: local parabolas over twice the spacing (three LRs: their parabola, whose
   vertex is the choice's centre when the noise is small). Cleveland's robustness
   iterations are left out: with ten points or fewer they also discount the two or three
   points of a real, narrow basin, or the one slow LR at an edge, and move the choice off a
   plateau's centre (measured on hand-made curves).
2. *Noise*: with several seeds per LR, the pooled standard error of the seeds' mean; with one,
   from neighbouring LRs by the difference-based estimator of Gasser, Sroka & Jennen-Steinmetz
   (1986, Biometrika 73; `lrlab.finder.doubt.neighbour_noise`), robust to the one or two
   places where the trend bends sharply (the cliff before divergence), from `NOISE_POINTS`
   (5) LRs on: with fewer, a second difference is the curve's own bend, not noise. Never
   below ``floor``, the objective's own resolution (half an epoch of a target's steps: the
   target is only checked at epoch ends).
3. *Within noise*: the LRs where the smoothed curve is at most one noise deviation above its
   minimum, the contiguous interval around the minimum that crosses no diverged point: the
   one-standard-error rule of model selection (Breiman, Friedman, Olshen & Stone 1984,
   "Classification and Regression Trees", section 3.4.3; Hastie, Tibshirani & Friedman,
   "The Elements of Statistical Learning", section 7.10), applied to an LR.
4. *The choice*: that interval's centre on the log axis, the LR furthest from both of its
   edges: on a flat plateau its middle, on a sharp optimum the optimum, and never the LR next
   to a cliff that one seed happened to survive.

``at_edge`` says when the best lies at or beyond the lowest or highest LR measured: the
smoothed minimum is at that LR and its neighbour scores worse by more than the noise (the
within-noise interval ends before it). A flat stretch that merely reaches the edge is not an
edge: any LR in it is as good. The tuner then widens its search.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from lrlab.finder.doubt import neighbour_noise
from lrlab.record import RunRecord

#: Points per spacing of the grid where the smoothed curve is evaluated.
_FINE = 16
#: From this many LRs on, the curve is smoothed with local lines over one grid spacing;
#: below, with local parabolas over two.
WIDE = 6
#: The fewest LRs the noise is estimated from (three pseudo-residuals for their median).
NOISE_POINTS = 5


@dataclass(frozen=True)
class Choice:
    """A choice among trials: ``lr`` (the centre of the within-noise interval), ``best`` (the
    smoothed curve's minimum), the interval ``low``-``high``, the noise ``sigma`` and the
    ``threshold`` (smoothed minimum + sigma), the smoothed value at each LR given (``nan``
    for a point left out: no value), and ``at_edge``: ``"low"``/``"high"`` when the best
    lies at or beyond the lowest/highest LR measured (see the module), else ``None``."""

    lr: float
    best: float
    low: float
    high: float
    sigma: float
    threshold: float
    lrs: tuple[float, ...]
    smoothed: tuple[float, ...]
    at_edge: str | None


def objective(record: RunRecord | None, budget: int) -> float:
    """A trial's score on the validation split, smaller is better (see the module).

    >>> from lrlab.record import EpochStats, RunConfig
    >>> def run(*metrics, target=0.9):
    ...     epochs = [EpochStats(i, 10 * (i + 1), 0.1, 1.0, m, None, None, 1.0, 1.0, 1.0, m)
    ...               for i, m in enumerate(metrics)]
    ...     return RunRecord(RunConfig("x"), "done", "accuracy", target, True, 10,
    ...                      steps=10 * len(metrics), epochs=epochs)
    >>> round(objective(run(0.5, 0.7, 0.95, 0.97), 40), 9)   # at step 20 + 10 * 0.2 / 0.25
    0.7
    >>> round(objective(run(0.5, 0.72), 20), 6)     # a miss by 0.18 / 0.9
    1.2
    >>> objective(run(0.5, 0.6, target=None), 20)   # no target: the final metric, negated
    -0.6
    """
    if record is None or record.status != "done" or not record.epochs:
        return math.inf
    metric = [e.val_metric for e in record.epochs]
    final = metric[-1]
    if final is None or not math.isfinite(final):
        return math.inf
    sign = -1.0 if record.higher_is_better else 1.0
    target = record.target
    if target is None:
        return sign * final
    previous_step, previous = 0, None
    for epoch, value in zip(record.epochs, metric, strict=True):
        if value is not None and record.reached(value):
            step = float(epoch.step)
            if previous is not None and math.isfinite(previous) and previous != value:
                fraction = (target - previous) / (value - previous)
                step = previous_step + (epoch.step - previous_step) * min(max(fraction, 0.0), 1.0)
            return step / budget
        previous_step, previous = epoch.step, value
    scale = abs(target) or 1.0
    return 1.0 + max(0.0, sign * (final - target)) / scale


def smooth(
    xs: Sequence[float],
    ys: Sequence[float],
    at: Sequence[float] | np.ndarray,
    bandwidth: float,
    degree: int = 1,
) -> list[float]:
    """Local polynomial regression of ``ys`` on ``xs`` (LOESS) with Gaussian weights of
    standard deviation ``bandwidth``, evaluated at each of ``at``: at each point, the value
    of the weighted least-squares polynomial of ``degree`` (at most one less than the number
    of points). A constant ``ys`` gives that constant, a line that line, and with
    ``degree=2`` three points their parabola.

    >>> [round(v, 9) for v in smooth([0.0, 1.0, 2.0], [1.0, 1.0, 1.0], [0.5, 1.5], 1.0)]
    [1.0, 1.0]
    >>> [round(v, 9) for v in smooth([0.0, 1.0, 2.0], [0.0, 1.0, 2.0], [0.5, 3.0], 1.0)]
    [0.5, 3.0]
    >>> [round(v, 9) for v in smooth([0.0, 1.0, 2.0], [1.0, 0.0, 1.0], [0.5, 1.0], 2.0, 2)]
    [0.25, 0.0]
    >>> [round(v, 3) for v in smooth(range(7), [3, 2, 1, -5, 1, 2, 3], [3], 1.0)]  # a spike
    [-1.269]
    """
    x = np.asarray(xs, dtype=float)
    y = np.asarray(ys, dtype=float)
    order = min(degree, len(x) - 1)
    values = []
    for point in at:
        root = np.sqrt(np.exp(-0.5 * ((x - point) / bandwidth) ** 2))
        basis = np.vander(x - point, order + 1, increasing=True)
        coefficients, *_ = np.linalg.lstsq(basis * root[:, None], y * root, rcond=None)
        values.append(float(coefficients[0]))
    return values


def choose(
    lrs: Sequence[float],
    values: Sequence[float],
    *,
    floor: float = 0.0,
    seed_noise: float | None = None,
    bandwidth: float | None = None,
) -> Choice | None:
    """The robust choice among ``lrs`` (any order, distinct, > 0) with objective ``values``
    (smaller is better, ``inf`` for a diverged trial): see the module. ``seed_noise``: the
    noise of a value measured from seeds (else estimated from neighbouring LRs); ``floor``:
    the least noise assumed; ``bandwidth``: the smoother's, in decades (default: the median
    spacing of the LRs, twice that for the local parabolas of fewer than `WIDE` LRs).
    ``None`` when no value is finite.

    A plateau from 1e-3 to 0.022 (LRs 10^(k/3)) between slower LRs and a diverged one: its
    centre.

    >>> lrs = [10 ** (k / 3) for k in range(-12, 1)]
    >>> values = [0.9, 0.7, 0.5, 0.3, 0.3, 0.3, 0.3, 0.3, 0.5, 0.8, math.inf, math.inf, 1.0]
    >>> c = choose(lrs, values, floor=0.02)
    >>> round(c.lr, 5), round(c.low, 5), round(c.high, 5), c.at_edge
    (0.00464, 0.00178, 0.01212, None)
    """
    order = sorted(range(len(lrs)), key=lambda i: lrs[i])
    xs = [math.log10(lrs[i]) for i in order]
    ys = [float(values[i]) for i in order]
    finite = [i for i, y in enumerate(ys) if math.isfinite(y)]
    if not finite:
        return None
    fx = [xs[i] for i in finite]
    fy = [ys[i] for i in finite]
    spacings = np.diff(xs)
    spacing = float(np.median(spacings)) if len(xs) > 1 else 1.0
    degree = 1 if len(fx) >= WIDE else 2
    width = bandwidth or spacing * (1.0 if degree == 1 else 2.0)
    neighbours = neighbour_noise(fx, fy) if len(fx) >= NOISE_POINTS else 0.0
    noise = seed_noise if seed_noise is not None else neighbours
    sigma = max(noise, floor, 1e-12 * max(1.0, max(abs(y) for y in fy)))  # ties are ties
    smoothed_at = dict(zip(finite, smooth(fx, fy, fx, width, degree), strict=True))
    # The finite stretches between diverged points; the fine grid runs inside each.
    stretches: list[list[int]] = []
    for i in finite:
        if stretches and stretches[-1][-1] == i - 1:
            stretches[-1].append(i)
        else:
            stretches.append([i])
    best_value, best_x, best_stretch = math.inf, xs[finite[0]], stretches[0]
    grids: list[tuple[list[int], np.ndarray, list[float]]] = []
    for stretch in stretches:
        lo, hi = xs[stretch[0]], xs[stretch[-1]]
        count = max(2, round((hi - lo) / width * _FINE) + 1) if hi > lo else 1
        grid = np.linspace(lo, hi, count)
        curve = smooth(fx, fy, grid, width, degree)
        grids.append((stretch, grid, curve))
        k = int(np.argmin(curve))
        if curve[k] < best_value:
            best_value, best_x, best_stretch = curve[k], float(grid[k]), stretch
    threshold = best_value + sigma
    grid, curve = next((g, c) for s, g, c in grids if s is best_stretch)
    k = int(np.argmin(np.abs(grid - best_x)))
    left = k
    while left > 0 and curve[left - 1] <= threshold:
        left -= 1
    right = k
    while right < len(grid) - 1 and curve[right + 1] <= threshold:
        right += 1
    low, high = float(grid[left]), float(grid[right])
    edge = None
    if len(xs) > 1 and best_x <= xs[0] + 1e-12 and high < xs[1]:
        edge = "low"
    elif len(xs) > 1 and best_x >= xs[-1] - 1e-12 and low > xs[-2]:
        edge = "high"
    smoothed = [math.nan] * len(lrs)
    for position, value in smoothed_at.items():
        smoothed[order[position]] = value
    return Choice(
        lr=10 ** ((low + high) / 2),
        best=10**best_x,
        low=10**low,
        high=10**high,
        sigma=sigma,
        threshold=float(threshold),
        lrs=tuple(float(lr) for lr in lrs),
        smoothed=tuple(smoothed),
        at_edge=edge,
    )


def seed_noise(values: Sequence[Sequence[float]]) -> float | None:
    """The noise of the mean over seeds at one LR, pooled over LRs: the root mean within-LR
    variance over the seeds' count (finite values only); ``None`` with fewer than 2 seeds
    anywhere.

    >>> round(seed_noise([[1.0, 3.0], [2.0, 2.0]]), 6)
    0.707107
    """
    variances, counts = [], []
    for group in values:
        finite = [v for v in group if math.isfinite(v)]
        if len(finite) >= 2:
            variances.append(float(np.var(finite, ddof=1)))
            counts.append(len(finite))
    if not variances:
        return None
    return math.sqrt(float(np.mean(variances)) / float(np.mean(counts)))


def choose_runs(
    records: Mapping[float, Sequence[RunRecord | None]], budget: int, steps_per_epoch: int
) -> Choice | None:
    """A rung's choice from its runs: ``records`` maps each LR to its seeds' records (``None``
    for a run that failed) of ``budget`` steps. Each run is scored by `objective`, on the
    validation split only; an LR's value is the median over its seeds (``inf`` once half of
    them diverged); the noise comes from the seeds when there are several (`seed_noise`), and
    when the best LR met the target it is at least half an epoch's steps (the target is
    checked at epoch ends). ``None`` when no LR has a value. When no LR met the target and all
    of them score within noise of each other, nothing in the range learned enough to rank
    it: the choice is marked ``at_edge="high"``, for the search to go up.

    A run's test metric is never read: the choice depends on the validation split only.
    """
    scores = {lr: [objective(r, budget) for r in runs] for lr, runs in records.items()}
    lrs = sorted(scores)
    values = [float(statistics.median(scores[lr])) for lr in lrs]
    targets = any(r is not None and r.target is not None for rs in records.values() for r in rs)
    reached = targets and min(values) < 1.0  # a miss's score has the metric's resolution
    floor = 0.5 * min(steps_per_epoch, budget) / budget if reached else 0.0
    choice = choose(lrs, values, floor=floor, seed_noise=seed_noise(list(scores.values())))
    if choice is None or not targets or reached:
        return choice
    finite = [lr for lr, v in zip(lrs, values, strict=True) if math.isfinite(v)]
    if choice.low <= finite[0] * (1 + 1e-9) and choice.high >= finite[-1] * (1 - 1e-9):
        # No LR met the target and none scores apart from the rest: too low to learn in
        # this budget (a diverging LR above would have scored inf), so the search goes up.
        return dataclasses.replace(choice, at_edge="high")
    return choice
