"""The range-test chart: loss against LR, the rules' suggestions and LipschitzLR's values."""

from __future__ import annotations

import math
import statistics
from typing import TYPE_CHECKING

from lrlab.plots import new_axes

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from lrlab.finder.core import RangeTest

_LIPSCHITZ_STYLE = {"paper": ":", "smooth": "-."}


def _column(curves: list[tuple[float, ...]], i: int) -> list[float]:
    return [c[i] for c in curves if i < len(c) and math.isfinite(c[i])]


def plot_range_test(result: RangeTest, ax: Axes | None = None) -> Axes:
    """Draw `RangeTest.plot`'s chart on ``ax`` (a new, unregistered figure when ``None``)."""
    import numpy as np

    ax = ax if ax is not None else new_axes(7.0, 4.2)
    lrs = result.lrs
    smoothed = [c.smoothed for c in result.curves]
    length = max(len(c) for c in smoothed)
    xs, median, low, high = [], [], [], []
    for i in range(length):
        column = _column(smoothed, i)
        if column:
            xs.append(lrs[i])
            median.append(statistics.median(column))
            low.append(min(column))
            high.append(max(column))
    for n, curve in enumerate(result.curves):
        ax.plot(
            curve.lrs,
            curve.losses,
            color="tab:blue",
            alpha=0.2,
            linewidth=0.8,
            label="loss" if n == 0 else None,
        )
    repeats = len(result.curves)
    if repeats > 1:
        ax.fill_between(
            xs, low, high, color="tab:blue", alpha=0.2, label=f"smoothed, range of {repeats}"
        )
    ax.plot(
        xs,
        median,
        color="tab:blue",
        linewidth=1.8,
        label="smoothed" + (" (median)" * (repeats > 1)),
    )

    colors = ("tab:red", "tab:green", "tab:purple", "tab:brown", "tab:pink", "tab:olive")
    for color, (name, rule) in zip(colors, result.suggestions.items(), strict=False):
        if rule.lr is None:
            continue
        y = float(np.interp(math.log10(rule.lr), np.log10(xs), median)) if xs else 0.0
        spread = rule.low is not None and rule.high is not None and rule.high > rule.low
        recommended = " (suggested)" if name == result.recommended else ""
        ax.errorbar(
            [rule.lr],
            [y],
            xerr=[[max(0.0, rule.lr - rule.low)], [max(0.0, rule.high - rule.lr)]]  # type: ignore[operator]
            if spread
            else None,
            fmt="o",
            color=color,
            markersize=7,
            capsize=3,
            zorder=4,
            label=f"{name} {rule.lr:.3g}{recommended}",
        )
    for bound, value in result.lipschitz.items():
        if value is not None:
            ax.axvline(
                value,
                color="black",
                linestyle=_LIPSCHITZ_STYLE.get(bound, "--"),
                linewidth=1.2,
                label=f"LipschitzLR {bound} {value:.3g}"
                + (" (SGD theory)" if result.adaptive else ""),
            )

    ax.set_xscale("log")
    shown = [v for v in result.lipschitz.values() if v is not None]
    left = min([lrs[0], *(v / 2 for v in shown)])
    right = max([lrs[-1], *(v * 2 for v in shown)])
    ax.set_xlim(left, right)
    if median:
        # From the lowest loss (raw or smoothed) up to the smoothed minimum, to the highest
        # smoothed loss before it, with a margin: the blow-up at the end would flatten the rest.
        lowest = median.index(min(median))
        raw = [v for c in result.curves for v in c.losses[: lowest + 1] if math.isfinite(v)]
        bottom = min([*low, *raw])
        top = max(high[: lowest + 1])
        margin = 0.1 * (top - bottom) or 0.1 * abs(top) or 1.0
        ax.set_ylim(bottom - margin, top + 3 * margin)
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss")
    ax.set_title(
        f"LR range test: {result.steps} steps, {result.start:.3g} to {result.end:.3g}"
        + (f", {repeats} repeats" if repeats > 1 else "")
    )
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize="small", loc="best")
    return ax
