"""The plots the source documents draw, from summaries: seed 003's smoothed loss curves, seed
004's LR per epoch, the test metric per epoch. Matplotlib is imported when one is drawn."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lrlab.report.summary import Summary, by_task, file_stem, smooth_curve


def _median_series(series: Sequence[Sequence[float | None]]) -> list[float]:
    """Pointwise median over runs of unequal length (a diverged run stops early)."""
    import numpy as np

    length = max((len(s) for s in series), default=0)
    table = np.full((len(series), length), np.nan)
    for i, values in enumerate(series):
        table[i, : len(values)] = [np.nan if v is None else v for v in values]
    with warnings.catch_warnings():  # an all-NaN column (every run diverged) is just NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        return [float(v) for v in np.nanmedian(table, axis=0)]


def plot_loss_curves(
    summaries: Sequence[Summary], ylim: tuple[float, float] | None = None, ax: Any = None
) -> Any:
    """Seed 003's figure: every method's smoothed training loss per iteration on one chart
    (median over seeds), with a marker every tenth of the run.

    Unless ``ylim`` is given, the y range runs from 0 to just above the highest *starting* loss
    of the methods with a run that did not diverge: a diverged curve leaves the chart rather
    than flattening every other one."""
    from lrlab.plots import new_axes

    ax = ax if ax is not None else new_axes(7.5, 4.5)
    markers = "oxsD^v<>pP*h"
    tops = []
    for i, summary in enumerate(summaries):
        curves = [
            smooth_curve([math.nan if v is None else v for v in r.step_loss])
            for r in summary.records
            if r.step_loss
        ]
        if not curves:
            continue
        median = _median_series(curves)
        every = max(len(median) // 10, 1)
        ax.plot(
            range(len(median)),
            median,
            marker=markers[i % len(markers)],
            markevery=every,
            markersize=4,
            linewidth=1.2,
            label=summary.label,
        )
        start = median[0] if median else math.nan
        if any(r.status != "diverged" for r in summary.records) and math.isfinite(start):
            tops.append(start)
    ax.set_xlabel("iterations")
    ax.set_ylabel("training loss (smoothed)")
    if ylim is not None:
        ax.set_ylim(*ylim)
    elif tops:
        ax.set_ylim(0, max(tops) * 1.1)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="x-small")
    return ax


def plot_per_epoch(summaries: Sequence[Summary], what: str, ax: Any = None) -> Any:
    """LR per epoch (seed 004's figures) or the test metric per epoch, median over seeds, on
    ``ax`` or a new figure."""
    from lrlab.plots import new_axes

    ax = ax if ax is not None else new_axes(7.5, 4.5)
    values_seen: list[float] = []
    for summary in summaries:
        series = [[(e.lr if what == "lr" else e.metric) for e in r.epochs] for r in summary.records]
        if not series:
            continue
        median = _median_series(series)
        ax.plot(range(1, len(median) + 1), median, marker=".", linewidth=1.2, label=summary.label)
        values_seen += [v for v in median if math.isfinite(v) and v > 0]
    ax.set_xlabel("epoch")
    ax.set_ylabel(
        "learning rate" if what == "lr" else (summaries[0].metric if summaries else "metric")
    )
    if what == "lr" and values_seen and max(values_seen) / min(values_seen) > 20:
        ax.set_yscale("log")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="x-small")
    return ax


def write_plots(
    summaries: Sequence[Summary], out: Path, loss_ylim: tuple[float, float] | None = None
) -> dict[str, list[str]]:
    """PNG files per task; returns ``{"task:kind": [file names]}``."""
    from lrlab.plots import save_figure

    titles = {
        "loss": "training loss",
        "lr": "learning rate per epoch",
        "metric": "test metric per epoch",
    }
    written: dict[str, list[str]] = {}
    stems: set[str] = set()
    for task, group in by_task(summaries).items():
        stem = file_stem(group[0].task_name or task)
        while stem in stems:  # two tasks of one name (two files' make_task)
            stem += "-2"
        stems.add(stem)
        for kind, title in titles.items():
            name = f"{stem}-{kind}.png"
            ax = (
                plot_loss_curves(group, loss_ylim)
                if kind == "loss"
                else plot_per_epoch(group, kind)
            )
            ax.set_title(f"{group[0].task_name or task}: {title}")
            save_figure(ax.figure, out / name)
            written[f"{task}:{kind}"] = [name]
    return written
