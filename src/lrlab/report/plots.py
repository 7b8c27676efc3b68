"""The plots the source documents draw, from summaries: seed 003's smoothed loss curves, seed
004's LR per epoch, the test metric per epoch; and the benchmark's own: the metric against
the LR per method (`plot_lr_sensitivity`) and performance profiles (`plot_profiles`).
Matplotlib is imported when one is drawn."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lrlab.plots import new_axes, save_figure
from lrlab.report.summary import Summary, by_task, file_stem, final_spread, smooth_curve
from lrlab.validate import check_choice

if TYPE_CHECKING:
    from lrlab.report.profiles import PerformanceProfile, Profiles


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
    if ax.get_legend_handles_labels()[0]:  # (none when every run failed)
        ax.legend(fontsize="x-small")
    return ax


def plot_per_epoch(summaries: Sequence[Summary], what: str, ax: Any = None) -> Any:
    """LR per epoch (seed 004's figures) or the test metric per epoch, median over seeds, on
    ``ax`` or a new figure; epochs numbered from 1, ticks on whole epochs.

    The LR axis is logarithmic when the positive LRs span more than a factor of 20; where an
    epoch's LR is 0 (a warmup from 0) it is "symlog" instead, linear below the smallest
    positive LR, so the zero stays on the chart at the bottom rather than falling off a log
    axis. The metric chart draws the task's target as a dashed line."""
    from matplotlib.ticker import MaxNLocator

    ax = ax if ax is not None else new_axes(7.5, 4.5)
    positive: list[float] = []
    zero = False
    for summary in summaries:
        series = [[(e.lr if what == "lr" else e.metric) for e in r.epochs] for r in summary.records]
        if not series:
            continue
        median = _median_series(series)
        ax.plot(range(1, len(median) + 1), median, marker=".", linewidth=1.2, label=summary.label)
        positive += [v for v in median if math.isfinite(v) and v > 0]
        zero = zero or any(v == 0 for v in median)
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(
        "learning rate" if what == "lr" else (summaries[0].metric if summaries else "metric")
    )
    if what == "lr" and positive and max(positive) / min(positive) > 20:
        if zero:
            ax.set_yscale("symlog", linthresh=min(positive))
        else:
            ax.set_yscale("log")
    target = summaries[0].target if summaries else None
    if what != "lr" and target is not None:
        ax.axhline(target, color="0.3", linestyle="--", linewidth=1, label=f"target {target:g}")
    ax.grid(True, alpha=0.3)
    if ax.get_legend_handles_labels()[0]:  # (none when every run failed)
        ax.legend(fontsize="x-small")
    return ax


def plot_lr_sensitivity(summaries: Sequence[Summary], metric: str = "test", ax: Any = None) -> Any:
    """One task's final ``metric`` (``"test"``, or ``"validation"`` where runs record one)
    against the LR, on ``ax`` or a new figure (log x-axis): per tuned method (named without
    its LR, by `Summary.key` where that is unique), the median over seeds at each LR of its
    grid (`Summary.grid_records`) with the interquartile band, its chosen LR (`Summary.lr`)
    marked with a star; a method tried at one LR is a point with its interquartile range as
    error bar. Methods that set their own LR (the "no tuning" group)
    are horizontal dotted lines at their median, marked at the first LR they used, named in
    the legend with it.

    A diverged run counts as the worst value (`lrlab.report.summary.final_spread`): an LR
    where the median run diverged is an ``x`` on the chart's worst edge (the bottom when
    higher is better), the band stops where a quartile diverged.
    """
    from matplotlib.transforms import blended_transform_factory

    check_choice("plot_lr_sensitivity", "metric", metric, ("test", "validation"))
    if metric == "validation" and not any(
        r.final_val_metric is not None
        for s in summaries
        for _, records in (s.grid_records or ((s.lr, s.records),))
        for r in records
    ):
        raise ValueError(
            "plot_lr_sensitivity: metric must be one the runs recorded, got metric='validation' "
            "(these runs have no validation split)"
        )
    ax = ax if ax is not None else new_axes(7.5, 4.5)
    higher = summaries[0].higher_is_better if summaries else True
    edge = blended_transform_factory(ax.transData, ax.transAxes)
    diverged_label = "median run diverged"
    for i, summary in enumerate(summaries):
        colour = f"C{i % 10}"
        if summary.group == "no tuning":
            spread = final_spread(summary.records, higher, metric)
            if spread.median is None or math.isinf(spread.median):
                continue
            own = "computed" if summary.lr is None else f"{summary.lr:.3g}"
            ax.axhline(
                spread.median,
                color=colour,
                linestyle=":",
                linewidth=1.4,
                label=f"{summary.label} (own LR {own})",
            )
            if summary.lr is not None and summary.lr > 0:
                ax.plot([summary.lr], [spread.median], marker="D", color=colour, markersize=5)
            continue
        grid = summary.grid_records or ((summary.lr, summary.records),)
        points = [(lr, final_spread(rs, higher, metric)) for lr, rs in grid if lr is not None]
        if not points:
            continue
        lrs = [lr for lr, _ in points]
        medians = [_finite(s.median) for _, s in points]
        lows = [_finite(s.low) for _, s in points]
        highs = [_finite(s.high) for _, s in points]
        label = _curve_label(summary, summaries)
        if len(points) == 1:
            low, high = lows[0], highs[0]
            ax.errorbar(
                lrs,
                medians,
                yerr=[[medians[0] - low], [high - medians[0]]]
                if math.isfinite(low + high + medians[0])
                else None,
                fmt="o",
                color=colour,
                capsize=3,
                label=label,
            )
        else:
            ax.plot(lrs, medians, marker="o", markersize=4, color=colour, label=label)
            ax.fill_between(lrs, lows, highs, color=colour, alpha=0.2, linewidth=0)
        for lr, spread in points:
            if spread.median is not None and math.isinf(spread.median):
                ax.plot(
                    [lr],
                    [0.03 if higher else 0.97],
                    marker="x",
                    color=colour,
                    transform=edge,
                    linestyle="none",
                    label=diverged_label,
                )
                diverged_label = "_"  # once in the legend
        chosen = dict(points).get(summary.lr) if summary.lr is not None else None
        if chosen is not None and chosen.median is not None and math.isfinite(chosen.median):
            ax.plot(
                [summary.lr],
                [chosen.median],
                marker="*",
                markersize=14,
                color=colour,
                markeredgecolor="black",
                linestyle="none",
            )
    if any(_placed(line) for line in ax.get_lines()):
        ax.set_xscale("log")
    else:  # no run finished (every one failed): nothing against the LR to draw
        ax.text(0.5, 0.5, "no finished run", transform=ax.transAxes, ha="center", va="center")
    ax.set_xlabel("learning rate (chosen: star)")
    name = summaries[0].metric if summaries else "metric"
    ax.set_ylabel(f"final {metric} {name} (median, IQR over seeds)")
    ax.grid(True, alpha=0.3)
    if ax.get_legend_handles_labels()[0]:  # (none when every run failed)
        ax.legend(fontsize="x-small")
    return ax


def _placed(line: Any) -> bool:
    """Whether a line has a point at a positive LR with a finite value (what a log axis of
    LRs can show)."""
    x = np.asarray(line.get_xdata(), dtype=float)
    y = np.asarray(line.get_ydata(), dtype=float)
    return bool(np.any((x > 0) & np.isfinite(x) & np.isfinite(y)))


def _curve_label(summary: Summary, summaries: Sequence[Summary]) -> str:
    """A curve against the LR named without the LR: the method's key (`Summary.key`) where
    no other method of the chart shares it, else its label as written."""
    if summary.key and [s.key for s in summaries].count(summary.key) == 1:
        return summary.key
    return summary.base_label or summary.label


def _finite(value: float | None) -> float:
    """A spread's value for drawing: NaN (not drawn) for none or a diverged one."""
    return value if value is not None and math.isfinite(value) else math.nan


def plot_profile(profile: PerformanceProfile, ax: Any = None) -> Any:
    """Each method's performance profile ``rho(tau)`` on ``[1, tau_max]`` (the exact step
    function, not read off the grid), on ``ax`` or a new figure; the legend gives each
    method's integrated score."""

    ax = ax if ax is not None else new_axes(6.0, 4.5)
    for method in profile.methods:
        ratios = profile.ratios[method]
        inside = sorted({r for r in ratios if 1 < r < profile.tau_max})
        taus = [1.0, *inside, profile.tau_max]
        ax.plot(
            taus,
            [profile.at(method, tau) for tau in taus],
            drawstyle="steps-post",
            linewidth=1.6,
            label=f"{method} ({profile.scores[method]:.3f})",
        )
    ax.set_xlim(1.0, profile.tau_max)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel(f"tau: {profile.cost} to target / the best method's")
    ax.set_ylabel(f"fraction of the {len(profile.tasks)} tasks within tau")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="x-small", title="method (score)", title_fontsize="x-small")
    return ax


def plot_profiles(profiles: Profiles, axes: Sequence[Any] | None = None) -> Any:
    """The steps and seconds profiles side by side, on the two ``axes`` given or on a new
    figure; returns the two axes."""
    if axes is None:
        from matplotlib.figure import Figure

        figure = Figure(figsize=(12.0, 4.5), layout="constrained")
        axes = figure.subplots(1, 2)
    if len(axes) != 2:
        raise ValueError(f"plot_profiles: axes must be two axes, got {len(axes)}")
    plot_profile(profiles.steps, axes[0]).set_title("steps to target")
    plot_profile(profiles.seconds, axes[1]).set_title("training seconds to target")
    return axes


def write_plots(
    summaries: Sequence[Summary], out: Path, loss_ylim: tuple[float, float] | None = None
) -> dict[str, list[str]]:
    """PNG files per task; returns ``{"task:kind": [file names]}``."""

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
        if any(len(s.grid_records) > 1 for s in group):  # a grid to draw against
            validated = any(r.has_validation for s in group for _, rs in s.grid_records for r in rs)
            for metric in ("validation", "test") if validated else ("test",):
                ax = plot_lr_sensitivity(group, metric)
                ax.set_title(f"{group[0].task_name or task}: final {metric} metric against the LR")
                name = f"{stem}-lr-sensitivity{'-validation' if metric == 'validation' else ''}.png"
                save_figure(ax.figure, out / name)
                written[f"{task}:sensitivity-{metric}"] = [name]
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
