"""Aggregation: stored runs grouped into methods, each summarised at its chosen LR over seeds
(medians and spread, steps- and time-to-target with success counts), ranked per task. Reads
records only: what a method is (tuned or not, its effective LR) the engine wrote there.

A *method* is everything about a run except its seed and LR (optimizer, its arguments,
schedule, budget, batch, model...). A tuned method ran a grid of LRs: the report keeps the LR
whose runs reached the target most often, then fastest (median steps to target), then with the
best median final metric, and states the tuning budget. Methods that set their own LR
(LipschitzLR, the LR-free peers) ran once per seed: the "no tuning" group.

A run that misses the target counts as a miss (an infinite time), never as its last value; a
median that falls on misses is shown as "-".

Runs whose task recorded what its data is (``extra["data"]``, e.g. the ``lm`` corpus's
SHA-256) are compared only as one measurement when they read the same data: a method whose
runs read several versions is labelled so, and `mixed_data` tells the renderers when a
task's methods did.
"""

from __future__ import annotations

import json
import math
import re
import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from lrlab.record import RunRecord
from lrlab.store import StoredRun

_VARYING = (
    "optimizer",
    "optimizer_args",
    "schedule",
    "epochs",
    "steps",
    "batch_size",
    "model",
    "split",
    "sampling",
)


def smooth_curve(values: Sequence[float]) -> list[float]:
    """Seed 003's ``smooth_curve`` ("Deep Learning from Scratch"): the series mirrored at both
    ends and convolved with an 11-point Kaiser window (beta 2); same length as the input.

    >>> [round(v, 6) for v in smooth_curve([1.0] * 12)][:3]
    [1.0, 1.0, 1.0]
    """
    import numpy as np

    x = np.asarray(values, dtype=float)
    if len(x) < 11:
        return list(x)
    window = 11
    padded = np.r_[x[window - 1 : 0 : -1], x, x[-1:-window:-1]]
    weights = np.kaiser(window, 2)
    smoothed = np.convolve(weights / weights.sum(), padded, mode="valid")
    return [float(v) for v in smoothed[5 : len(smoothed) - 5]]


@dataclass(frozen=True)
class Spread:
    """Median and interquartile range of the finite values; ``None`` when there are none."""

    median: float | None
    low: float | None
    high: float | None

    @classmethod
    def of(cls, values: Sequence[float | None]) -> Spread:
        finite = sorted(v for v in values if v is not None and math.isfinite(v))
        if not finite:
            return cls(None, None, None)
        if len(finite) == 1:
            return cls(finite[0], finite[0], finite[0])
        q1, _, q3 = statistics.quantiles(finite, n=4, method="inclusive")
        return cls(statistics.median(finite), q1, q3)


def spread_with_misses(values: Sequence[float | None]) -> Spread:
    """Median and interquartile range where ``None`` (a miss) is +infinity, so that the range
    belongs to the median beside it (``statistics.quantiles``' inclusive method); a quartile
    or median that falls on a miss is ``math.inf``.

    >>> spread_with_misses([100, 200, 300, None, None])
    Spread(median=300, low=200, high=inf)
    """
    ordered = sorted(math.inf if v is None else v for v in values)
    if not ordered:
        return Spread(None, None, None)

    def quantile(p: float) -> float:
        position = p * (len(ordered) - 1)
        below = math.floor(position)
        fraction = position - below
        low, high = ordered[below], ordered[min(below + 1, len(ordered) - 1)]
        if fraction == 0 or low == high:
            return low
        return math.inf if math.isinf(high) else low + (high - low) * fraction

    return Spread(quantile(0.5), quantile(0.25), quantile(0.75))


def _median_with_misses(values: Sequence[float | None]) -> float | None:
    """Median where ``None`` (a miss) is +infinity; ``None`` if the median is a miss."""
    ordered = sorted(math.inf if v is None else v for v in values)
    if not ordered:
        return None
    median = statistics.median(ordered)
    return None if math.isinf(median) else float(median)


@dataclass
class Method:
    """The runs of one method (all LRs, all seeds)."""

    task: str
    identity: dict[str, Any]
    runs: list[StoredRun] = field(default_factory=list)

    @property
    def self_tuning(self) -> bool:
        """Whether the method sets its own LR (as the engine wrote in its records)."""
        return any(r.record.self_tuning for r in self.runs if r.record is not None)

    def by_lr(self) -> dict[float | None, list[StoredRun]]:
        groups: dict[float | None, list[StoredRun]] = defaultdict(list)
        for run in self.runs:
            groups[run.config.lr].append(run)
        return dict(groups)


@dataclass(frozen=True)
class Summary:
    """One method at its chosen LR, over its seeds."""

    task: str  # as runs name it: a task's name or a file.py:function reference
    label: str
    group: str  # "tuned" or "no tuning"
    lr: float | None
    grid: tuple[float | None, ...]
    runs: int  # at the chosen LR
    budget: int  # runs spent on the method, tuning included
    reached: int
    diverged: int
    failed: int
    steps_to_target: float | None
    steps_spread: Spread
    time_to_target: float | None
    final: Spread
    best: Spread
    metric: str
    higher_is_better: bool
    target: float | None
    records: tuple[RunRecord, ...]
    errors: tuple[str, ...]
    task_name: str = ""  # the task's own name, for titles
    data: tuple[str, ...] = ()  # the SHA-256s of the data its runs read (`data_identity`)

    @property
    def title(self) -> str:
        """The task as a heading: its name (its reference too, when that differs)."""
        name = self.task_name or self.task
        return name if name == self.task else f"{name} ({self.task})"

    @property
    def tuning(self) -> str:
        if self.group == "no tuning":
            return f"none ({self.runs} runs)"
        if len(self.grid) <= 1:
            return f"default LR ({self.runs} runs)"
        return f"{len(self.grid)} LRs x {self.runs} seeds = {self.budget} runs"


def data_identity(record: RunRecord) -> str | None:
    """The SHA-256 of the data a run read, when its task recorded one (``extra["data"]``,
    from `lrlab.tasks.TaskData.identity`); ``None`` otherwise."""
    data = record.extra.get("data")
    value = data.get("sha256") if isinstance(data, dict) else None
    return value if isinstance(value, str) else None


def mixed_data(group: Sequence[Summary]) -> tuple[str, ...]:
    """The distinct data SHA-256s that the runs of ``group`` (one task's methods) read, when
    there are more than one, sorted; ``()`` when they all read the same data (or none was
    recorded)."""
    found = sorted({sha for summary in group for sha in summary.data})
    return tuple(found) if len(found) > 1 else ()


def _score(runs: list[StoredRun], higher_is_better: bool) -> tuple[float, float, float]:
    """Sort key for choosing among a grid's LRs: most targets reached, then fewest median
    steps to target, then best median final metric (smaller is better)."""
    records = [r.record for r in runs if r.record is not None]
    reached = sum(r.steps_to_target is not None for r in records)
    misses: list[int | None] = [None] * (len(runs) - len(records))  # failed runs
    steps = _median_with_misses([r.steps_to_target for r in records] + misses)
    final = Spread.of([r.final_metric for r in records]).median
    final_key = -math.inf if final is None else (final if higher_is_better else -final)
    return (-reached, math.inf if steps is None else steps, -final_key)


def methods(runs: Sequence[StoredRun]) -> list[Method]:
    """Group runs into methods, in the order they first appear."""
    grouped: dict[str, Method] = {}
    for run in runs:
        data = run.config.to_dict()
        identity = {name: data[name] for name in _VARYING}
        key = json.dumps([run.config.task, identity], sort_keys=True)
        grouped.setdefault(key, Method(run.config.task, identity)).runs.append(run)
    return list(grouped.values())


def method_labels(group: list[Method]) -> dict[int, str]:
    """Short names: optimizer (+ its arguments) (+ schedule), plus whatever else varies."""
    varying = [
        name for name in _VARYING[3:] if len({json.dumps(m.identity[name]) for m in group}) > 1
    ]
    labels = {}
    for method in group:
        identity = method.identity
        label = identity["optimizer"]
        arguments = identity["optimizer_args"]
        if arguments:
            label += "(" + ", ".join(f"{k}={v}" for k, v in arguments.items()) + ")"
        if identity["schedule"]:
            label += " + " + identity["schedule"]
        extras = [f"{name}={identity[name]}" for name in varying if identity[name] is not None]
        if extras:
            label += " [" + ", ".join(extras) + "]"
        labels[id(method)] = label
    return labels


def summarize(runs: Sequence[StoredRun]) -> list[Summary]:
    """Every method at its chosen LR, ranked within each task."""
    summaries: list[Summary] = []
    by_task: dict[str, list[Method]] = defaultdict(list)
    for method in methods(runs):
        by_task[method.task].append(method)
    for group in by_task.values():
        labels = method_labels(group)
        task_summaries = [_summary(method, labels[id(method)]) for method in group]
        task_summaries.sort(
            key=lambda s: (
                -s.reached,
                math.inf if s.steps_to_target is None else s.steps_to_target,
                -(s.final.median if s.final.median is not None else -math.inf)
                * (1 if s.higher_is_better else -1),
            )
        )
        summaries.extend(task_summaries)
    return summaries


def _summary(method: Method, label: str) -> Summary:
    lrs = method.by_lr()
    records_any = [r.record for r in method.runs if r.record is not None]
    higher = records_any[0].higher_is_better if records_any else True
    chosen_lr = min(lrs, key=lambda lr: _score(lrs[lr], higher))
    chosen = lrs[chosen_lr]
    records = [r.record for r in chosen if r.record is not None]
    failed = sum(r.status == "failed" for r in chosen)
    steps = [r.steps_to_target for r in records] + [None] * failed
    times = [r.time_to_target for r in records] + [None] * failed
    group = "no tuning" if method.self_tuning else "tuned"
    effective_lr = chosen_lr
    if effective_lr is None and records:
        effective_lr = records[0].initial_lr
    data = tuple(sorted({sha for r in records_any if (sha := data_identity(r)) is not None}))
    if len(data) > 1:
        label += f" [{len(data)} data versions]"
    return Summary(
        task=method.task,
        label=label,
        group=group,
        lr=effective_lr,
        grid=tuple(sorted(lrs, key=lambda v: -1.0 if v is None else v)),
        runs=len(chosen),
        budget=len(method.runs),
        reached=sum(r.steps_to_target is not None for r in records),
        diverged=sum(r.status == "diverged" for r in chosen),
        failed=failed,
        steps_to_target=_median_with_misses(steps),
        steps_spread=spread_with_misses(steps),
        time_to_target=_median_with_misses(times),
        final=Spread.of([r.final_metric for r in records]),
        best=Spread.of([r.best_metric for r in records]),
        metric=records[0].metric if records else "metric",
        higher_is_better=higher,
        target=records[0].target if records else None,
        records=tuple(records),
        errors=tuple(r.error for r in chosen if r.error),
        task_name=next((r.task_name for r in records_any if r.task_name), method.task),
        data=data,
    )


def file_stem(name: str) -> str:
    """A task's name made safe as a file name (a reference holds slashes and a colon).

    >>> file_stem("examples/digits_cnn.py:make_task")
    'examples-digits_cnn.py-make_task'
    """
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.")
    return stem or "task"


def by_task(summaries: Sequence[Summary]) -> dict[str, list[Summary]]:
    """Summaries grouped by task, in order."""
    grouped: dict[str, list[Summary]] = defaultdict(list)
    for summary in summaries:
        grouped[summary.task].append(summary)
    return dict(grouped)
