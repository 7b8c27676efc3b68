"""The chart of a tune's evidence: validation metric against LR per rung, the choice, the
range of LRs within noise of the best, the range test's curve and LipschitzLR's values."""

from __future__ import annotations

import math
import statistics
from typing import TYPE_CHECKING

from lrlab.plots import new_axes

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from lrlab.tuning.result import TuneResult

_LIPSCHITZ_STYLE = {"paper": ":", "smooth": "-."}


def plot_tune(result: TuneResult, ax: Axes | None = None) -> Axes:
    """Draw `TuneResult.plot`'s chart on ``ax`` (a new, unregistered figure when ``None``)."""
    ax = ax if ax is not None else new_axes(7.5, 4.5)
    colors = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown")
    points = []
    for rung in result.rungs:
        metrics, values = rung.metrics(), rung.values()
        kept = [(lr, m) for lr, m in metrics.items() if m is not None and math.isfinite(values[lr])]
        gone = [lr for lr, v in values.items() if not math.isfinite(v)]
        points.append((rung, [lr for lr, _ in kept], [m for _, m in kept], gone))
    finite = [y for _, _, ys, _ in points for y in ys]
    bottom, top = (min(finite), max(finite)) if finite else (0.0, 1.0)
    for (rung, xs, ys, gone), color in zip(points, colors * len(points), strict=False):
        label = f"rung {rung.index + 1}: {rung.steps} steps"
        ax.plot(xs, ys, "o-", color=color, markersize=4, label=label)
        if gone:  # diverged (or failed): at the bottom of the chart
            ax.plot(gone, [bottom] * len(gone), "x", color=color, label=f"{label}, diverged")
    low, high = result.flat
    ax.axvspan(low, high, color="tab:green", alpha=0.12, label="within noise at full budget")
    ax.axvline(result.lr, color="black", linewidth=1.6, label=f"chosen lr {result.lr:.3g}")
    if result.target is not None and bottom <= result.target <= top:
        ax.axhline(result.target, color="grey", linestyle="--", linewidth=0.8, label="target")
    theory = " (SGD theory)" if result.adaptive else ""
    for bound, value in result.lipschitz.items():
        if value is not None:
            ax.axvline(
                value,
                color="dimgrey",
                linestyle=_LIPSCHITZ_STYLE.get(bound, "--"),
                linewidth=1.1,
                label=f"LipschitzLR {bound} {value:.3g}{theory}",
            )
    ax.set_xscale("log")
    shown = [v for v in result.lipschitz.values() if v is not None]
    left = min([result.searched[0], *shown]) / 3
    right = max([result.searched[1], *shown]) * 3
    ax.set_xlim(left, right)
    ax.set_xlabel("learning rate" + ("" if result.constant else " (the schedule's peak)"))
    ax.set_ylabel(f"final validation {result.metric}")
    ax.grid(True, which="both", alpha=0.25)
    twin = ax.twinx()
    curves = [c.smoothed for c in result.range_test.curves]
    length = max((len(c) for c in curves), default=0)
    xs_test, ys_test = [], []
    for i in range(length):
        column = [c[i] for c in curves if i < len(c) and math.isfinite(c[i])]
        if column and left <= result.range_test.lrs[i] <= right:
            xs_test.append(result.range_test.lrs[i])
            ys_test.append(statistics.median(column))
    twin.plot(xs_test, ys_test, color="silver", linewidth=1.2, label="range test (smoothed loss)")
    if ys_test:
        lowest = min(ys_test)
        start = ys_test[0]
        span = abs(start - lowest) or abs(start) or 1.0
        twin.set_ylim(lowest - 0.2 * span, start + 1.5 * span)
    twin.set_ylabel("range test: training loss", color="grey")
    lines, labels = ax.get_legend_handles_labels()
    more, more_labels = twin.get_legend_handles_labels()
    ax.legend(lines + more, labels + more_labels, fontsize="x-small", loc="best")
    ax.set_title(f"tune: {result.task} / {result.optimizer} / {result.schedule}")
    return ax
