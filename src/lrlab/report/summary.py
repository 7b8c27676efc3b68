"""Aggregation: stored runs grouped into methods, each summarised at its chosen LR over seeds
(medians and spread, steps- and time-to-target with success counts), ranked per task. Reads
records only: what a method is (tuned or not, its effective LR) the engine wrote there.

A *method* is everything about a run except its seed and LR (optimizer, its arguments,
schedule, budget, batch, model...). A tuned method ran a grid of LRs: the report keeps the LR
whose runs reached the target most often, then fastest (median steps to target), then with the
best median final metric, and states the tuning budget; its label shows its schedule at that
LR (`schedule_at_lr`). Methods that set their own LR (LipschitzLR, the LR-free peers) ran once
per seed: the "no tuning" group. Methods are ranked per task by `rank_key` (`RANKING_RULE`).

A run that misses the target counts as a miss (an infinite time), never as its last value; a
median that falls on misses is shown as "-". A diverged run's final metric is the test metric
of the weights it had before its loss went non-finite, often a meaningless number (1.7e37):
`final_spread` counts it as the worst possible value instead, shown as "diverged".

Runs whose task recorded what its data is (``extra["data"]``, e.g. the ``lm`` corpus's
SHA-256) are compared only as one measurement when they read the same data: a method whose
runs read several versions is labelled so, and `mixed_data` tells the renderers when a
task's methods did.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import re
import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from lrlab.callspec import CallSpec, SpecError, parse_call
from lrlab.record import METHOD_FIELDS, RunRecord, Split
from lrlab.schedules import SCHEDULES, parse
from lrlab.store import StoredRun

_VARYING = METHOD_FIELDS


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


def median_with_misses(values: Sequence[float | None]) -> float | None:
    """Median where ``None`` (a miss) is +infinity; ``None`` if the median is a miss (or
    there are no values): the median steps or time to a target over seeds.

    >>> median_with_misses([300, None, 100]), median_with_misses([100, None, None])
    (300.0, None)
    """
    ordered = sorted(math.inf if v is None else v for v in values)
    if not ordered:
        return None
    median = statistics.median(ordered)
    return None if math.isinf(median) else float(median)


@dataclass
class Method:
    """The runs of one method (all LRs, all seeds): the runs that tune it (seeds below
    `lrlab.record.HOLDOUT_SEEDS_FROM`) and the runs that score its chosen setting on fresh
    seeds."""

    task: str
    identity: dict[str, Any]
    runs: list[StoredRun] = field(default_factory=list)

    @property
    def self_tuning(self) -> bool:
        """Whether the method sets its own LR (as the engine wrote in its records)."""
        return any(r.record.self_tuning for r in self.runs if r.record is not None)

    @property
    def tuning_runs(self) -> list[StoredRun]:
        return [r for r in self.runs if not r.config.fresh_seed]

    @property
    def fresh_runs(self) -> list[StoredRun]:
        return [r for r in self.runs if r.config.fresh_seed]

    def by_lr(self, runs: Sequence[StoredRun] | None = None) -> dict[float | None, list[StoredRun]]:
        groups: dict[float | None, list[StoredRun]] = defaultdict(list)
        for run in self.runs if runs is None else runs:
            groups[run.config.lr].append(run)
        return dict(groups)


def final_value(record: RunRecord, metric: str = "test") -> float | None:
    """A run's final ``"test"`` metric (`RunRecord.final_metric`: the test set's, else the
    training metric), ``"validation"`` metric (`RunRecord.final_val_metric`) or running
    ``"train"`` metric."""
    split: Split = (
        "validation" if metric == "validation" else "train" if metric == "train" else "test"
    )
    return record.final_metric_on(split)


def final_spread(
    records: Sequence[RunRecord], higher_is_better: bool, metric: str = "test"
) -> Spread:
    """Median and interquartile range of the runs' final ``metric`` (see `final_value`),
    where a diverged run counts as the worst value: ``-inf`` when higher is better, ``+inf``
    when lower is (a median or quartile that falls on one is infinite, shown "diverged");
    runs without the metric are left out. Quartiles interpolate as `spread_with_misses`.

    >>> from lrlab.record import EpochStats, RunConfig
    >>> def run(value, status="done"):
    ...     epoch = EpochStats(0, 10, 0.1, 1.0, value, 1.0, value, 1.0, 1.0)
    ...     return RunRecord(RunConfig("x"), status, "mse", None, False, 10, epochs=[epoch])
    >>> final_spread([run(1.0), run(2.0), run(1.7e37, "diverged")], higher_is_better=False)
    Spread(median=2.0, low=1.5, high=inf)
    """
    sign = -1.0 if higher_is_better else 1.0
    values: list[float | None] = []
    for record in records:
        value = final_value(record, metric)
        if record.status == "diverged":
            values.append(None)
        elif value is not None and math.isfinite(value):
            values.append(sign * value)
    spread = spread_with_misses(values)
    if spread.median is None or spread.low is None or spread.high is None:
        return spread
    if higher_is_better:  # back to the metric's sign; the quartiles swap places
        return Spread(-spread.median, -spread.high, -spread.low)
    return spread


def badness(value: float | None, higher_is_better: bool) -> float:
    """A metric value as a number where smaller is better: ``inf`` for ``None`` (no value)
    and for a diverged median (see `final_spread`)."""
    if value is None:
        return math.inf
    return -value if higher_is_better else value


@dataclass(frozen=True)
class Summary:
    """One method at its chosen LR, over its seeds.

    ``label`` names the method as run: its schedule at the chosen LR (`schedule_at_lr`);
    ``base_label`` as written, the same for every LR of its grid; ``key`` the method across
    tasks (`method_key`). ``grid_records`` holds the runs of every LR the method tried, by LR
    (the evidence for the choice, drawn by `lrlab.report.plot_lr_sensitivity`); ``records``
    the runs at the chosen LR that every number of the summary comes from: on fresh seeds
    (``fresh``, ``seeds``) where the store has them, else on the tuning seeds (optimistic).
    ``selected_on`` names the split the LR was chosen on (``None`` with nothing to choose).
    """

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
    key: str = ""
    base_label: str = ""
    grid_records: tuple[tuple[float | None, tuple[RunRecord, ...]], ...] = ()
    selected_on: Split | None = None  # where the LR was chosen (None: nothing to choose)
    tuning_seeds: tuple[int, ...] = ()  # the seeds that chose it
    seeds: tuple[int, ...] = ()  # the seeds every number comes from
    fresh: bool = False  # those seeds are fresh ones, not the seeds that chose the LR

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
        seeds = len(self.tuning_seeds) or self.runs
        text = f"{len(self.grid)} LRs x {seeds} seeds = {len(self.grid) * seeds} runs"
        return text + (f" + {self.runs} fresh" if self.fresh else "")

    @property
    def provenance(self) -> str:
        """Where the summary's numbers come from, in words."""
        seeds = _seed_text(self.seeds)
        if self.selected_on is None:
            return f"nothing tuned; {'fresh seeds' if self.fresh else 'seeds'} {seeds}"
        chosen = f"LR chosen on the {_SPLIT_TEXT[self.selected_on]} with seeds"
        if self.fresh:
            return f"{chosen} {_seed_text(self.tuning_seeds)}; scored on fresh seeds {seeds}"
        return f"{chosen} {seeds} and scored on them (optimistic)"

    @property
    def lr_at_edge(self) -> str | None:
        """``"lowest"`` or ``"highest"`` when a tuned method's chosen LR is the lowest or the
        highest of a grid of two or more LRs (the best may lie beyond it: widen the grid),
        else ``None``."""
        grid = sorted(lr for lr in self.grid if lr is not None)
        if self.group != "tuned" or len(grid) < 2 or self.lr is None:
            return None
        if self.lr == grid[0]:
            return "lowest"
        return "highest" if self.lr == grid[-1] else None

    @property
    def steps_trained(self) -> float | None:
        """Median over the runs of the steps they trained (a diverged run stops early)."""
        steps = [r.steps for r in self.records]
        return float(statistics.median(steps)) if steps else None


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


_SPLIT_TEXT = {
    "validation": "validation split",
    "train": "training metric (no validation split)",
    "test": "test split",
}


def _seed_text(seeds: Sequence[int]) -> str:
    """``0-4``, ``1000-1004``, or a list when they are not a range."""
    if not seeds:
        return "none"
    ordered = sorted(seeds)
    if ordered == list(range(ordered[0], ordered[-1] + 1)) and len(ordered) > 2:
        return f"{ordered[0]}-{ordered[-1]}"
    return ", ".join(str(seed) for seed in ordered)


#: How `rank_key` orders the methods of a task, as the report states it.
RANKING_RULE = (
    "Ranking: most runs reaching the target, then fewest median steps to target; ties are "
    "broken by the better median final metric (a diverged median is the worst), then by "
    "fewer median steps trained, then by name. A task without a target ranks by the median "
    "final metric, then steps trained, then name."
)


def rank_key(summary: Summary) -> tuple[float | str, ...]:
    """Sort key of `RANKING_RULE` (smaller ranks first)."""
    final = badness(summary.final.median, summary.higher_is_better)
    trained = math.inf if summary.steps_trained is None else summary.steps_trained
    if summary.target is None:
        return (final, trained, summary.label)
    steps = math.inf if summary.steps_to_target is None else summary.steps_to_target
    return (-summary.reached, steps, final, trained, summary.label)


def _score(
    runs: list[StoredRun], higher_is_better: bool, split: Split = "test"
) -> tuple[float, float, float]:
    """Sort key for choosing among a grid's LRs, on ``split``'s metric: most targets
    reached, then fewest median steps to target, then best median final metric (`badness`:
    smaller is better, a diverged median the worst)."""
    records = [r.record for r in runs if r.record is not None]
    reached = sum(r.steps_to_target_on(split) is not None for r in records)
    misses: list[int | None] = [None] * (len(runs) - len(records))  # failed runs
    steps = median_with_misses([r.steps_to_target_on(split) for r in records] + misses)
    final = final_spread(records, higher_is_better, split).median
    return (-reached, math.inf if steps is None else steps, badness(final, higher_is_better))


def methods(runs: Sequence[StoredRun]) -> list[Method]:
    """Group runs into methods (`lrlab.record.RunConfig.method_id`), in the order they
    first appear."""
    grouped: dict[str, Method] = {}
    for run in runs:
        method = grouped.setdefault(
            run.config.method_id(), Method(run.config.task, run.config.method())
        )
        method.runs.append(run)
    return list(grouped.values())


def _optimizer_label(identity: dict[str, Any]) -> str:
    label = str(identity["optimizer"])
    arguments = identity["optimizer_args"]
    if arguments:
        label += "(" + ", ".join(f"{k}={v}" for k, v in arguments.items()) + ")"
    return label


def method_labels(
    group: list[Method], lrs: dict[int, float | None] | None = None
) -> dict[int, str]:
    """Short names: optimizer (+ its arguments) (+ schedule), plus whatever else varies.
    With ``lrs`` (``{id(method): chosen LR}``), a tuned method's schedule is shown at its
    chosen LR (`schedule_at_lr`)."""
    varying = [
        name for name in _VARYING[3:] if len({json.dumps(m.identity[name]) for m in group}) > 1
    ]
    labels = {}
    for method in group:
        identity = method.identity
        label = _optimizer_label(identity)
        schedule = identity["schedule"]
        lr = (lrs or {}).get(id(method))
        if schedule and lr is not None and not method.self_tuning:
            records = [r.record for r in method.runs if r.record is not None]
            schedule = schedule_at_lr(
                schedule,
                lr,
                steps_per_epoch=records[0].steps_per_epoch if records else None,
                horizon=max((r.steps for r in records), default=0),
            )
        if schedule:
            label += " + " + schedule
        extras = [f"{name}={identity[name]}" for name in varying if identity[name] is not None]
        if extras:
            label += " [" + ", ".join(extras) + "]"
        labels[id(method)] = label
    return labels


def method_key(identity: dict[str, Any]) -> str:
    """A method's name across tasks: the optimizer with its arguments, plus its schedule with
    every number left out (LRs, horizons, rates and milestones are set per task), keeping the
    names of schedules and controllers and their word and true/false arguments; the run
    options that vary within a task (budget, batch, model...) are left out too.

    >>> method_key({"optimizer": "sgd", "optimizer_args": {"momentum": 0.9},
    ...             "schedule": "warmup(cosine(lr=0.1, steps=1000), steps=50)"})
    'sgd(momentum=0.9) + warmup(cosine)'
    >>> method_key({"optimizer": "sgd", "optimizer_args": {},
    ...             "schedule": "lipschitz(bound=smooth, max_lr=10)"})
    'sgd + lipschitz(bound=smooth)'
    """

    label = _optimizer_label(identity)
    schedule = identity["schedule"]
    if schedule:
        with contextlib.suppress(SpecError):  # not the spec language: shown as written
            schedule = _write(_without_numbers(parse_call(schedule)), bare=True)
        label += " + " + schedule
    return label


def _without_numbers(value: object) -> object:
    """A parsed spec value with its numbers (and lists left empty by that) taken out;
    ``None`` for a value that is all numbers."""

    if isinstance(value, CallSpec):
        args = tuple(v for v in map(_without_numbers, value.args) if v is not None)
        kept = {k: _without_numbers(v) for k, v in value.kwargs.items()}
        kwargs = {k: v for k, v in kept.items() if v is not None}
        return CallSpec(value.name, args, kwargs)
    if isinstance(value, tuple | list):
        items = tuple(v for v in map(_without_numbers, value) if v is not None)
        return items or None
    return value if isinstance(value, str | bool) else None


class _Rounded(float):
    """A scaled LR, written to the 6 significant digits a label shows."""

    def __repr__(self) -> str:
        return f"{float(self):.6g}"


def _write(value: object, bare: bool = False) -> str:
    """A parsed spec value written back in the spec language, positional arguments kept
    positional (``bare``: a call without arguments as its name alone)."""

    if isinstance(value, CallSpec):
        parts = [_write(v, bare) for v in value.args]
        parts += [f"{k}={_write(v, bare)}" for k, v in value.kwargs.items()]
        return value.name if bare and not parts else f"{value.name}({', '.join(parts)})"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value if value.isidentifier() else repr(value)
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_write(v, bare) for v in value) + "]"
    return repr(value)


#: Schedule fields that hold an LR (scaled with the base LR, as `lrlab.ScheduleLR` scales the
#: whole schedule); the others are steps, fractions and factors.
_LR_FIELDS = ("lr", "end", "max_lr", "start", "values")


def schedule_at_lr(
    spec: str, lr: float, *, steps_per_epoch: int | None = None, horizon: int = 0
) -> str:
    """The schedule a run with base LR ``lr`` follows, written as ``spec`` is: its LR-valued
    arguments times ``lr / reference_lr`` (a param group at a base LR other than the
    schedule's reference gets the schedule's values scaled by that ratio, `lrlab.ScheduleLR`),
    to 6 significant digits. The rewrite is checked against the scaled schedule at steps
    spread over ``[0, horizon)``; a spec it cannot rewrite (a controller, a schedule not
    registered here, LR-valued fields it does not know) reads ``spec at lr=LR``.

    >>> schedule_at_lr("warmup(cosine(lr=0.1, steps=1000, end=0.001), 50)", 0.03, horizon=1000)
    'warmup(cosine(lr=0.03, steps=1000, end=0.0003), 50)'
    >>> schedule_at_lr("plateau(patience=2)", 0.03)
    'plateau(patience=2) at lr=0.03'
    """

    fallback = f"{spec} at lr={lr:.4g}"
    try:
        schedule = parse(spec, steps_per_epoch=steps_per_epoch)
        factor = lr / schedule.reference_lr
    except (ValueError, ZeroDivisionError):
        return fallback
    if math.isclose(factor, 1.0, rel_tol=1e-9):
        return spec
    call = _scaled(parse_call(spec), factor)
    if call is None:
        return fallback
    text = _write(call)
    end = max(horizon, 2)
    probes = sorted({0, 1, *range(0, end, max(end // 100, 1)), end - 1})
    try:
        scaled = parse(text, steps_per_epoch=steps_per_epoch)
        same = all(
            math.isclose(scaled(t), factor * schedule(t), rel_tol=1e-5, abs_tol=1e-12)
            for t in probes
        )
    except ValueError:
        return fallback
    return text if same else fallback


def _scaled(call: Any, factor: float) -> Any:
    """A parsed schedule spec with its `_LR_FIELDS` (and those of the schedules inside it)
    times ``factor``, positional arguments named by the schedule's fields; ``None`` for a
    name that is not a schedule here."""

    cls: Any = SCHEDULES.find(call.name)
    if cls is None or not dataclasses.is_dataclass(cls):
        return None
    names = [f.name for f in dataclasses.fields(cls) if f.init]

    def scale(name: str, value: object) -> object:
        if isinstance(value, CallSpec):
            return _scaled(value, factor)
        if isinstance(value, tuple) and value and all(isinstance(v, CallSpec) for v in value):
            inner = tuple(_scaled(v, factor) for v in value)
            return None if None in inner else inner
        if name in _LR_FIELDS and isinstance(value, int | float) and not isinstance(value, bool):
            return _Rounded(f"{value * factor:.6g}")
        if name in _LR_FIELDS and isinstance(value, tuple):
            return tuple(scale(name, v) for v in value)
        return value

    args = tuple(scale(names[i] if i < len(names) else "", v) for i, v in enumerate(call.args))
    kwargs = {k: scale(k, v) for k, v in call.kwargs.items()}
    if None in args or None in kwargs.values():
        return None
    return CallSpec(call.name, args, kwargs)


def summarize(runs: Sequence[StoredRun], *, optimistic: bool = False) -> list[Summary]:
    """Every method at its chosen LR, ranked within each task by `rank_key`.

    The honest protocol (the default): each method's LR is chosen by `choose_lr` on the
    validation split (the training metric for a task without one) with its tuning seeds, and
    every number of its summary comes from its runs at that LR on fresh seeds
    (`lrlab.record.HOLDOUT_SEEDS_FROM` and up), on the test split. A method without such runs
    in the store is scored on its tuning runs and says so (`Summary.fresh` is false).
    ``optimistic``: choose on the test split with the seeds it then reports, as lrlab did
    before validation splits existed (an optimistic estimate, and named as one)."""
    summaries: list[Summary] = []
    by_task: dict[str, list[Method]] = defaultdict(list)
    for method in methods(runs):
        by_task[method.task].append(method)
    for group in by_task.values():
        chosen = {id(method): choose_lr(method, optimistic=optimistic) for method in group}
        lrs = {key: lr for key, (lr, _) in chosen.items()}
        labels = method_labels(group, lrs)
        base_labels = method_labels(group)
        task_summaries = [
            _summary(
                method,
                labels[id(method)],
                base_labels[id(method)],
                *chosen[id(method)],
                optimistic=optimistic,
            )
            for method in group
        ]
        summaries.extend(sorted(task_summaries, key=rank_key))
    return summaries


def _higher_is_better(method: Method) -> bool:
    return next((r.record.higher_is_better for r in method.runs if r.record is not None), True)


def selection_split(runs: Sequence[StoredRun], *, optimistic: bool = False) -> Split:
    """The split an LR is chosen on: ``"validation"`` when the runs measured one, else
    ``"train"`` (never the test split, which scores the choice); ``"test"`` when
    ``optimistic``."""
    if optimistic:
        return "test"
    records = [r.record for r in runs if r.record is not None]
    return "validation" if any(r.has_validation for r in records) else "train"


def choose_lr(method: Method, *, optimistic: bool = False) -> tuple[float | None, Split]:
    """The LR of the method's tuning runs that scores best (`_score`) on `selection_split`,
    and that split. A method with fresh-seed runs only (nothing to tune: one LR, or an LR it
    sets itself) keeps theirs."""
    runs = method.tuning_runs or method.runs
    split = selection_split(runs, optimistic=optimistic)
    lrs = method.by_lr(runs)
    higher = _higher_is_better(method)
    return min(lrs, key=lambda lr: _score(lrs[lr], higher, split)), split


def choose_lrs(runs: Sequence[StoredRun], *, optimistic: bool = False) -> dict[str, float | None]:
    """`choose_lr` of every method of ``runs``, by `lrlab.record.RunConfig.method_id`."""
    return {
        method.runs[0].config.method_id(): choose_lr(method, optimistic=optimistic)[0]
        for method in methods(runs)
    }


def _summary(
    method: Method,
    label: str,
    base_label: str,
    chosen_lr: float | None,
    selected_on: Split,
    *,
    optimistic: bool,
) -> Summary:
    tuning = method.tuning_runs or method.runs
    lrs = method.by_lr(tuning)
    fresh = [] if optimistic else method.by_lr(method.fresh_runs).get(chosen_lr, [])
    records_any = [r.record for r in method.runs if r.record is not None]
    higher = _higher_is_better(method)
    chosen = fresh or lrs[chosen_lr]
    records = [r.record for r in chosen if r.record is not None]
    failed = sum(r.status == "failed" for r in chosen)
    steps = [r.steps_to_target for r in records] + [None] * failed
    times = [r.time_to_target for r in records] + [None] * failed
    group = "no tuning" if method.self_tuning else "tuned"
    effective_lr = chosen_lr
    if effective_lr is None and records:
        effective_lr = records[0].initial_lr
    tuned = [r for r in tuning if not r.config.fresh_seed]
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
        steps_to_target=median_with_misses(steps),
        steps_spread=spread_with_misses(steps),
        time_to_target=median_with_misses(times),
        final=final_spread(records, higher),
        best=Spread.of([r.best_metric for r in records]),
        metric=records[0].metric if records else "metric",
        higher_is_better=higher,
        target=records[0].target if records else None,
        records=tuple(records),
        errors=tuple(r.error for r in chosen if r.error),
        task_name=next((r.task_name for r in records_any if r.task_name), method.task),
        key=method_key(method.identity),
        base_label=base_label,
        grid_records=tuple(
            (lr, tuple(r.record for r in group if r.record is not None))
            for lr, group in sorted(lrs.items(), key=lambda kv: -1.0 if kv[0] is None else kv[0])
        ),
        selected_on=selected_on if len(lrs) > 1 else None,
        tuning_seeds=tuple(sorted({r.config.seed for r in tuned})),
        seeds=tuple(sorted({r.config.seed for r in chosen})),
        fresh=bool(fresh),
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
