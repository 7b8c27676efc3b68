"""Plots, drawn with matplotlib's Agg backend (no screen needed). Each function draws on the
``ax`` it is given, or on a new figure it creates, and returns the axes; nothing is shown."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from lrlab.schedules import Schedule


def new_axes(width: float = 6.4, height: float = 4.0) -> Axes:
    """A fresh figure (not registered with pyplot, so it needs no display) and its axes."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), layout="constrained")
    return figure.add_subplot()


def plot_schedule(
    schedule: Schedule,
    steps: int,
    *,
    steps_per_epoch: int | None = None,
    ax: Axes | None = None,
    label: str | None = None,
    log: bool = False,
) -> Axes:
    """Draw ``schedule`` over ``steps`` steps (x in epochs when ``steps_per_epoch`` is given)."""
    xs: list[float] = list(range(steps))
    if steps_per_epoch:
        xs = [t / steps_per_epoch for t in xs]
    return plot_lrs(
        xs,
        schedule.preview(steps),
        xlabel="epoch" if steps_per_epoch else "step",
        ax=ax,
        label=label or schedule.spec(),
        log=log,
    )


def plot_lrs(
    xs: Sequence[float],
    lrs: Sequence[float],
    *,
    xlabel: str,
    label: str,
    ax: Axes | None = None,
    log: bool = False,
) -> Axes:
    """Draw learning rates ``lrs`` against ``xs`` (steps or epochs, named by ``xlabel``)."""
    ax = ax if ax is not None else new_axes()
    ax.plot(xs, lrs, label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("learning rate")
    if log:
        ax.set_yscale("log")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    return ax


def save_figure(figure: Figure | Any, path: str | Path, dpi: int = 120) -> Path:
    """Write ``figure`` as a PNG, creating the parent directory; return the path (checked
    first by `lrlab.validate.check_output_path`: never a device, a FIFO or a folder)."""
    from lrlab.validate import check_output_path

    path = check_output_path("save_figure", "path", path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=dpi)
    return path
