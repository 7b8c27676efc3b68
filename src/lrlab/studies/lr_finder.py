"""Regenerate docs/lr-finder.md: how good is the range test's suggested LR against a tuned one?

For every task x optimizer x seed, `lrlab.finder.find_on_task` runs the range test from the
weights that seed's run starts with (lrlab's defaults: 100 steps from 1e-7 to 10), and each
rule's suggestion, and LipschitzLR's paper and smooth values at the same weights, are trained
with as a constant LR and as the peak of a one-cycle schedule over the task's budget. Against
them: the same optimizer at every LR of the 7-value log grid 0.001 ... 1 (docs/lipschitz.md's),
constant and one-cycle, 5 seeds each; the grid's best LR is chosen as `lrlab report` chooses it
(most targets reached, then fewest median steps, then best final metric, on the same seeds).

Runs go through lrlab's engine and process pool into a SQLite store, so an interrupted run of
this script resumes where it stopped (finished runs are not redone). Usage::

    .venv/bin/python scripts/lr_finder_results.py                       # everything
    .venv/bin/python scripts/lr_finder_results.py --tasks iris,digits   # a subset
    .venv/bin/python scripts/lr_finder_results.py --tasks examples/task.py:make_task,...

Writes docs/lr-finder.md, docs/lr-finder/runs.csv and docs/lr-finder/<task>-range-test.png.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import statistics
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from lrlab.cli.common import parse_lr_grid
from lrlab.finder import DEFAULT_RULES, RECOMMENDED, find_on_task, lr_ramp, rule_name
from lrlab.record import RunConfig
from lrlab.report.summary import file_stem
from lrlab.store import Store, StoredRun

TASKS = "iris,digits,mnist5k,breast-cancer,regression"
OPTIMIZERS = "sgd,momentum,adam"
GRID = "1e-3:1:7"
SCHEDULES = ("constant", "one-cycle")
LIPSCHITZ = ("lipschitz paper", "lipschitz smooth")


def rule_names(smoothings: list[float]) -> list[str]:
    """The rules' names, those read with a smoothing other than the first suffixed with it."""
    names = [rule_name(r) for r in DEFAULT_RULES]
    return [n + ("" if i == 0 else f" @{b:g}") for i, b in enumerate(smoothings) for n in names]


GOAL_STEPS = 1.25
GOAL_COST = 0.2


def schedule_spec(schedule: str, total_steps: int) -> str | None:
    """A constant LR, or one-cycle with the run's LR as its peak (ScheduleLR scales
    ``one_cycle(lr=1)`` by the run's base LR)."""
    return None if schedule == "constant" else f"one_cycle(lr=1, steps={total_steps})"


def paste(lr: float) -> float:
    """An LR as `lrlab find` prints it (3 significant digits), the value a user would use."""
    return float(f"{lr:.3g}")


@dataclass
class Test:
    """One range test: each source's LR (``None`` where it gave none) and its cost."""

    task: str
    optimizer: str
    seed: int
    lrs: dict[str, float | None]
    seconds: float
    lipschitz_seconds: float
    steps: int
    total_steps: int
    steps_per_epoch: int


def range_tests(
    tasks: list[str], optimizers: list[str], seeds: int, smoothings: list[float]
) -> list[Test]:
    """One range test per task, optimizer, seed and smoothing (LipschitzLR's values and the
    cost from the first smoothing's)."""
    tests = []
    for task in tasks:
        for optimizer in optimizers:
            for seed in range(seeds):
                result = find_on_task(task, optimizer, seed=seed, smoothing=smoothings[0])
                lrs: dict[str, float | None] = {n: r.lr for n, r in result.suggestions.items()}
                for bound, value in result.lipschitz.items():
                    lrs[f"lipschitz {bound}"] = value
                for beta in smoothings[1:]:
                    other = find_on_task(
                        task, optimizer, seed=seed, smoothing=beta, lipschitz=False
                    )
                    lrs.update({f"{n} @{beta:g}": r.lr for n, r in other.suggestions.items()})
                tests.append(
                    Test(
                        task,
                        optimizer,
                        seed,
                        {k: None if v is None else paste(v) for k, v in lrs.items()},
                        result.seconds,
                        result.lipschitz_seconds,
                        len(result.curves[0].losses),
                        int(result.extra["total_steps"]),
                        int(result.extra["steps_per_epoch"]),
                    )
                )
        print(f"range tests: {task} done", file=sys.stderr)
    return tests


def configs(tests: list[Test], seeds: int) -> list[RunConfig]:
    grid = parse_lr_grid(GRID)
    wanted: dict[str, RunConfig] = {}
    totals = {(t.task): t.total_steps for t in tests}
    pairs = sorted({(t.task, t.optimizer) for t in tests})
    for task, optimizer in pairs:
        for schedule in SCHEDULES:
            spec = schedule_spec(schedule, totals[task])
            for lr in grid:
                for seed in range(seeds):
                    config = RunConfig(task, optimizer, lr=lr, schedule=spec, seed=seed)
                    wanted[config.key()] = config
    for test in tests:
        for schedule in SCHEDULES:
            spec = schedule_spec(schedule, test.total_steps)
            for value in test.lrs.values():
                if value is not None:
                    config = RunConfig(
                        test.task, test.optimizer, lr=value, schedule=spec, seed=test.seed
                    )
                    wanted[config.key()] = config
    return list(wanted.values())


def run_pending(store: Store, wanted: list[RunConfig], workers: int) -> None:
    """The runs the store has not finished, one by one on lrlab's process pool (not as
    vectorised groups: the cost in seconds compares each run's own time with a range
    test's), each stored as it ends."""
    from lrlab.execution import Executor, make_executor
    from lrlab.progress import SweepProgress
    from lrlab.sweep import run_missing

    def executor_for(runs: int) -> Executor:
        return make_executor("local", workers=workers, threads=1, runs=runs)

    progress = SweepProgress(verbose=False)
    run_missing(store, wanted, executor_for, progress, vectorize=False, workers=workers)


# -- analysis ------------------------------------------------------------------------------------


def median_steps(steps: list[int | None]) -> float | None:
    """Median steps to target, a miss counting as infinite; ``None`` when the median is one."""
    ordered = sorted(math.inf if s is None else float(s) for s in steps)
    if not ordered:
        return None
    value = statistics.median(ordered)
    return None if math.isinf(value) else value


def log_median(values: list[float]) -> float:
    return math.exp(statistics.median(math.log(v) for v in values))


@dataclass
class Row:
    """A method's runs over the seeds in one cell (task, optimizer, schedule)."""

    source: str
    lrs: list[float]
    runs: list[StoredRun]
    seconds: float  # tuning + training, all seeds
    cost_runs: float  # in runs of the task's budget, all seeds

    @property
    def reached(self) -> int:
        return sum(r.record is not None and r.record.steps_to_target is not None for r in self.runs)

    @property
    def diverged(self) -> int:
        return sum(r.status == "diverged" for r in self.runs)

    @property
    def steps(self) -> float | None:
        return median_steps([r.record.steps_to_target if r.record else None for r in self.runs])


@dataclass
class Cell:
    task: str
    optimizer: str
    schedule: str
    seeds: int
    tuned: Row
    rows: dict[str, Row] = field(default_factory=dict)

    @property
    def counted(self) -> bool:
        """The goal applies where the tuned grid reaches the target on every seed."""
        return self.tuned.reached == self.seeds and self.tuned.steps is not None

    def ratio(self, source: str) -> float | None:
        row = self.rows.get(source)
        if row is None or row.steps is None or self.tuned.steps is None:
            return None
        return row.steps / self.tuned.steps

    def passes(self, source: str) -> bool:
        row = self.rows.get(source)
        ratio = self.ratio(source)
        return (
            row is not None
            and row.reached == self.seeds
            and ratio is not None
            and ratio <= GOAL_STEPS
            and row.cost_runs <= GOAL_COST * self.tuned.cost_runs
        )


def analyse(tests: list[Test], store: Store, seeds: int, sources: list[str]) -> list[Cell]:
    from lrlab.report import summarize

    runs = {run.config.key(): run for run in store.runs()}
    grid = parse_lr_grid(GRID)
    by_pair: dict[tuple[str, str], list[Test]] = defaultdict(list)
    for test in tests:
        by_pair[(test.task, test.optimizer)].append(test)
    cells = []
    for (task, optimizer), group in by_pair.items():
        total = group[0].total_steps
        for schedule in SCHEDULES:
            spec = schedule_spec(schedule, total)
            grid_runs = [
                runs[RunConfig(task, optimizer, lr=lr, schedule=spec, seed=seed).key()]
                for lr in grid
                for seed in range(seeds)
            ]
            (summary,) = summarize(grid_runs)
            best = [r for r in grid_runs if r.config.lr == summary.lr]
            tuned = Row(
                "tuned grid",
                [summary.lr or math.nan],
                best,
                sum(r.record.wall_time for r in grid_runs if r.record),
                float(len(grid_runs)),
            )
            cell = Cell(task, optimizer, schedule, seeds, tuned)
            for source in sources:
                chosen = [(t, t.lrs.get(source)) for t in group]
                if any(lr is None for _, lr in chosen):
                    continue
                source_runs = [
                    runs[RunConfig(task, optimizer, lr=lr, schedule=spec, seed=t.seed).key()]
                    for t, lr in chosen
                ]
                testing = [
                    t.lipschitz_seconds if source.startswith("lipschitz") else t.seconds
                    for t, _ in chosen
                ]
                # A range test step costs a training step (benchmarks/range_test_overhead.py);
                # LipschitzLR's eval pass over the training set is counted as a whole epoch
                # of steps (an upper bound: a forward pass is about a third of a step).
                cost_runs = len(chosen) + sum(
                    (t.steps_per_epoch if source.startswith("lipschitz") else t.steps)
                    / t.total_steps
                    for t, _ in chosen
                )
                cell.rows[source] = Row(
                    source,
                    [lr for _, lr in chosen if lr is not None],
                    source_runs,
                    sum(testing) + sum(r.record.wall_time for r in source_runs if r.record),
                    cost_runs,
                )
            cells.append(cell)
    return cells


# -- the document --------------------------------------------------------------------------------


def _num(value: float | None, digits: int = 3) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.{digits}g}"


def _lr_text(row: Row) -> str:
    if len(set(row.lrs)) == 1:
        return _num(row.lrs[0])
    return f"{_num(log_median(row.lrs))} [{_num(min(row.lrs))}-{_num(max(row.lrs))}]"


@dataclass
class Score:
    source: str
    passed: int  # cells meeting the whole goal
    all_reached: int  # cells where every seed reached the target
    counted: int
    reached: int  # seeds reaching the target, over the counted cells
    runs: int
    ratios: list[float]
    cost: list[float]

    @property
    def median_ratio(self) -> float | None:
        return statistics.median(self.ratios) if self.ratios else None


def scores(cells: list[Cell], sources: list[str]) -> list[Score]:
    result = []
    for source in sources:
        counted = [c for c in cells if c.counted and source in c.rows]
        ratios = [r for c in counted if (r := c.ratio(source)) is not None]
        result.append(
            Score(
                source,
                sum(c.passes(source) for c in counted),
                sum(c.rows[source].reached == c.seeds for c in counted),
                len(counted),
                sum(c.rows[source].reached for c in counted),
                sum(len(c.rows[source].runs) for c in counted),
                ratios,
                [c.rows[source].cost_runs / c.tuned.cost_runs for c in counted],
            )
        )
    return result


def best_rule(table: list[Score]) -> Score:
    """Reliability first, as the goal's first clause: the most cells where every seed reached
    the target, then the most cells meeting the whole goal, then the smallest median steps
    ratio. (LipschitzLR's values are not candidates: they are not rules of the range test.)"""
    rules = [s for s in table if s.source not in LIPSCHITZ]
    return min(
        rules,
        key=lambda s: (
            -s.all_reached,
            -s.passed,
            s.median_ratio if s.median_ratio is not None else math.inf,
        ),
    )


def failures(cells: list[Cell], source: str) -> list[str]:
    lines = []
    for cell in cells:
        if not cell.counted or source not in cell.rows or cell.passes(source):
            continue
        row = cell.rows[source]
        ratio = cell.ratio(source)
        why = []
        if row.reached < cell.seeds:
            why.append(f"reached {row.reached}/{cell.seeds}")
        if ratio is not None and ratio > GOAL_STEPS:
            why.append(
                f"{ratio:.2f}x the tuned steps ({_num(row.steps)} vs {_num(cell.tuned.steps)})"
            )
        if ratio is None and row.reached == cell.seeds:
            why.append("no median steps")
        if row.cost_runs > GOAL_COST * cell.tuned.cost_runs:
            why.append(f"cost {row.cost_runs / cell.tuned.cost_runs:.2f} of the grid's runs")
        lines.append(
            f"- {cell.task}, {cell.optimizer}, {cell.schedule}: {'; '.join(why)} "
            f"(LR {_lr_text(row)} against the grid's {_num(cell.tuned.lrs[0])})"
        )
    return lines


INTRO = """\
# The LR range test, measured

`lrlab find` (and `lrlab.find`) runs the LR range test: train from the initial weights while
the LR grows exponentially from `1e-7` to `10` over 100 steps, smooth the loss (bias-corrected
EMA, beta {beta}), stop when it exceeds 4x its best, and read suggestions off the smoothed curve
against `log10(lr)`. Everything the test touched (weights, buffers, gradients, optimizer state
and param groups, train/eval modes, the torch, numpy and Python RNGs) is restored exactly
afterwards. This page measures how good its suggestions are, and picks the one `suggested_lr`
returns.

Regenerate everything here (finished runs are kept in `docs/lr-finder/runs.sqlite` and not
redone; the task list is an argument, so new tasks can be added):

```bash
.venv/bin/python scripts/lr_finder_results.py --tasks {tasks}
```

## Setup

- Tasks at their defaults (`lrlab tasks`): {task_list}; {seeds} seeds each; optimizers {opts}.
- For each task, optimizer and seed, one range test (lrlab's defaults, `repeats=1`) from the
  weights that seed's run starts with, on that run's training batches shuffled with the seed.
  Each rule's suggestion, rounded to the 3 digits `lrlab find` prints, is trained with as a
  **constant LR** and as the **peak of a one-cycle schedule** over the task's whole budget
  (`one_cycle(lr=..., steps=...)`, PyTorch's OneCycleLR shape). LipschitzLR's `paper` and
  `smooth` values at the same weights are trained the same way (as fixed LRs: this measures
  the value the range-test chart shows, not the LipschitzLR scheduler of docs/lipschitz.md).
- The rules: `valley` (fastai's, exactly as `fastai/callback/schedule.py` computes it),
  `steepest` (the most negative slope of the smoothed loss against `log10(lr)`) and `minimum`
  (a tenth of the LR at the smoothed minimum, fastai's), all read after a burn-in of 10 steps
  and before the last 5.{variants} The rules and the test's settings are the published ones
  (fastai's smoothing, burn-in and stop); this page chooses among them and tunes none of them
  on these tasks.
- The baseline: the same optimizer and schedule at every LR of the grid {grid} (7 log-spaced
  values, as in docs/lipschitz.md) x {seeds} seeds; its best LR is chosen the way `lrlab
  report` chooses (most targets reached, then fewest median steps to target, then best median
  final metric), **on the same seeds it is scored on**: an optimistic baseline.
- The goal (lrlab issue 9): the recommended rule reaches the target on {seeds}/{seeds} seeds
  wherever the tuned grid does, with median steps to target <= {goal_steps}x the tuned best's,
  at <= 1/5 of the grid's cost, counted in runs of the task's budget (a range test plus one
  run per seed, against 7 runs per seed; a range-test step costs a training step, see
  `benchmarks/range_test_overhead.py`), with the seconds shown beside.
- Steps to target are counted at epoch ends, as everywhere in lrlab; a miss counts as
  infinitely many steps. Seconds are wall-clock seconds of the runs (`RunRecord.wall_time`) plus
  the range tests', on a 2-core machine shared with other jobs (noisy; the counts in runs are
  exact).
"""


def document(
    cells: list[Cell],
    tests: list[Test],
    tasks: list[str],
    optimizers: list[str],
    seeds: int,
    smoothings: list[float],
) -> str:
    table = scores(cells, [*rule_names(smoothings), *LIPSCHITZ])
    best = best_rule(table)
    variants = ""
    if len(smoothings) > 1:
        variants = (
            " The same rules are also read off the curve smoothed with beta "
            + ", ".join(f"{b:g}" for b in smoothings[1:])
            + " (a lighter EMA lags less behind the raw loss; rows `RULE @BETA`)."
        )
    lines = [
        INTRO.format(
            beta=f"{smoothings[0]:g}",
            variants=variants,
            tasks=",".join(tasks),
            task_list=", ".join(f"`{t}`" for t in tasks),
            seeds=seeds,
            opts=", ".join(optimizers),
            grid=", ".join(_num(v) for v in parse_lr_grid(GRID)),
            goal_steps=GOAL_STEPS,
        )
    ]
    lines += _verdict(cells, tests, table, best, seeds)
    lines += _per_task(cells, tasks)
    lines += _cost(cells, tests, best.source)
    lines += [
        "",
        "Per-run numbers (every grid LR and every suggestion): [lr-finder/runs.csv]"
        "(lr-finder/runs.csv).",
        "",
    ]
    return "\n".join(lines)


def _share(part: int, whole: int) -> str:
    return f"{part}/{whole}"


def _verdict(
    cells: list[Cell], tests: list[Test], table: list[Score], best: Score, seeds: int
) -> list[str]:
    """The verdict: the table per source, the rule lrlab recommends and why, where it fails
    against the goal and by how much, and what the other sources did; every number computed
    from the runs."""
    counted = [c for c in cells if c.counted]
    lines = [
        "## Verdict",
        "",
        f"{len(counted)} of the {len(cells)} task x optimizer x schedule cells count (the "
        f"tuned grid reached the target on all {seeds} seeds there). Per source, over those "
        "cells:",
        "",
        f"| source | cells where {seeds}/{seeds} seeds reached the target | cells meeting the "
        "whole goal | seeds reaching the target | median steps vs tuned (median over cells) "
        "| cost in runs vs the grid (median) |",
        "|---|---|---|---|---|---|",
    ]
    for score in table:
        lines.append(
            f"| {score.source} | {_share(score.all_reached, score.counted)} | "
            f"{_share(score.passed, score.counted)} | {_share(score.reached, score.runs)} | "
            f"{_num(score.median_ratio)}x | "
            f"{_num(statistics.median(score.cost) if score.cost else None, 2)} |"
        )
    optimizers = list(dict.fromkeys(c.optimizer for c in cells))
    lines += [
        "",
        "By optimizer: cells where every seed reached the target / cells meeting the whole "
        "goal, of those that count:",
        "",
        "| source | " + " | ".join(optimizers) + " |",
        "|---|" + "---|" * len(optimizers),
    ]
    for score in table:
        row = []
        for optimizer in optimizers:
            mine = [c for c in counted if c.optimizer == optimizer and score.source in c.rows]
            every = sum(c.rows[score.source].reached == seeds for c in mine)
            row.append(f"{every} / {sum(c.passes(score.source) for c in mine)} of {len(mine)}")
        lines.append(f"| {score.source} | " + " | ".join(row) + " |")
    rules = [s for s in table if s.source not in LIPSCHITZ]
    verdict = (
        f"**lrlab recommends `{best.source}`** (`RangeTest.suggested_lr`, printed last by "
        f"`lrlab find`). Reliability comes first, as in the goal's first clause: it reached the "
        f"target on all {seeds} seeds in {best.all_reached} of {best.counted} cells and on "
        f"{best.reached} of {best.runs} seeds, "
        + (
            "the most of the rules"
            if best.all_reached == max(s.all_reached for s in rules)
            else "not the most of the rules"
        )
        + f"; it meets the whole goal in {best.passed} cells, and its median run takes "
        f"{_num(best.median_ratio)}x the tuned best's steps (median over cells)"
    )
    if best.source != RECOMMENDED:
        verdict += (
            f". NOTE: the code currently recommends `{RECOMMENDED}`; these measurements favour "
            f"`{best.source}` (update `lrlab.finder.core.RECOMMENDED`)"
        )
    lines += ["", verdict + ".", ""]
    misses = failures(cells, best.source)
    if not misses:
        return [*lines, f"`{best.source}` meets the goal in every cell that counts.", ""]
    short = [c for c in counted if best.source in c.rows and c.rows[best.source].reached < seeds]
    slow = [
        r
        for c in counted
        if best.source in c.rows
        and c.rows[best.source].reached == seeds
        and (r := c.ratio(best.source)) is not None
        and r > GOAL_STEPS
    ]
    lines += [
        f"**No rule meets the goal everywhere.** `{best.source}` misses it in {len(misses)} of "
        f"{best.counted} cells: in {len(short)} a seed missed the target, and in {len(slow)} "
        f"all seeds reached it but the median run took more than {GOAL_STEPS}x the tuned "
        + (
            f"best's steps (median {_num(statistics.median(slow))}x, at most "
            f"{_num(max(slow))}x there)."
            if slow
            else "best's steps."
        ),
        "",
        f"Where `{best.source}` falls short of the goal:",
        "",
        *misses,
        "",
    ]
    lines += _others(cells, tests, table, best)
    return lines


def _others(cells: list[Cell], tests: list[Test], table: list[Score], best: Score) -> list[str]:
    """What the other sources did, and the one-cycle finding."""
    lines = ["What the others did:", ""]
    first = lr_ramp(1e-7, 10.0, 100)[10]  # the first LR the rules read, with the defaults
    for score in table:
        if score.source == best.source:
            continue
        text = (
            f"- `{score.source}`: {score.all_reached}/{score.counted} cells with every seed "
            f"reaching the target, {score.passed} meeting the goal, {score.reached}/"
            f"{score.runs} seeds, median steps {_num(score.median_ratio)}x the tuned best's"
        )
        lrs = [t.lrs.get(score.source) for t in tests]
        found = [v for v in lrs if v is not None]
        early = sum(v < 10 * first for v in found)
        if early and not score.source.startswith("lipschitz"):
            text += (
                f"; in {early} of {len(found)} range tests its LR came from the first decade "
                f"the rules read (below {10 * first:.2g}), where the smoothed loss still moves "
                "with single batches rather than with the LR"
            )
        diverged = sum(c.rows[score.source].diverged for c in cells if score.source in c.rows)
        if diverged:
            text += f"; {diverged} runs diverged"
        lines.append(text + ".")
    pairs: dict[tuple[str, str], dict[str, float]] = defaultdict(dict)
    for cell in cells:
        pairs[(cell.task, cell.optimizer)][cell.schedule] = cell.tuned.lrs[0]
    ratios = [p["one-cycle"] / p["constant"] for p in pairs.values() if len(p) == 2]
    if ratios:
        lines += [
            "",
            f"As a one-cycle peak, the suggestions are too low: the tuned one-cycle peak is a "
            f"median {_num(statistics.median(ratios))}x the tuned constant LR (range "
            f"{_num(min(ratios))}-{_num(max(ratios))}x over task x optimizer), while a range "
            "test suggests one LR for both.",
        ]
    return [*lines, ""]


def _per_task(cells: list[Cell], tasks: list[str]) -> list[str]:
    lines = ["## Results", ""]
    lines += [
        "Per cell: the tuned grid's best LR, then each source's LR (median over seeds "
        "[range]), targets reached, median steps to target [interquartile range], the ratio "
        "to the tuned best's steps, and diverged runs. `-`: the median run missed.",
        "",
    ]
    for task in tasks:
        task_cells = [c for c in cells if c.task == task]
        if not task_cells:
            continue
        record = next(r.record for r in task_cells[0].tuned.runs if r.record)
        target = f"{record.metric} {'>=' if record.higher_is_better else '<='} {record.target:g}"
        lines += [
            f"### {task}",
            "",
            f"Target {target}; {record.steps_per_epoch} steps per epoch, {record.steps} steps "
            "per run.",
            "",
            f"![range test on {task}](lr-finder/{file_stem(task)}-range-test.png)",
            "",
            "| optimizer | schedule | method | LR | reached | steps to target | vs tuned | "
            "diverged |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for cell in task_cells:
            rows = [cell.tuned, *cell.rows.values()]
            for row in rows:
                ratio = None if row is cell.tuned else cell.ratio(row.source)
                steps = [
                    r.record.steps_to_target
                    for r in row.runs
                    if r.record and r.record.steps_to_target is not None
                ]
                spread = ""
                if len(steps) >= 2 and min(steps) != max(steps):
                    q1, _, q3 = statistics.quantiles(steps, n=4, method="inclusive")
                    spread = f" [{q1:.0f}-{q3:.0f}]"
                mark = (
                    " ✓"
                    if row is not cell.tuned and cell.counted and cell.passes(row.source)
                    else ""
                )
                lines.append(
                    f"| {cell.optimizer} | {cell.schedule} | {row.source}{mark} | "
                    f"{_lr_text(row)} | "
                    f"{row.reached}/{len(row.runs)} | {_num(row.steps, 4)}{spread} | "
                    f"{_num(ratio, 3) + 'x' if ratio is not None else '-'} | {row.diverged} |"
                )
        lines.append("")
    lines += ["✓: meets the goal in that cell (the grid reached all seeds there).", ""]
    return lines


def _cost(cells: list[Cell], tests: list[Test], source: str) -> list[str]:
    lines = [
        "## What it costs",
        "",
        f"Per task and optimizer, constant LR, all seeds: the grid (7 LRs x seeds) against a "
        f"range test plus one run per seed at `{source}`'s LR. In runs of the task's budget (a "
        "100-step range test is 100 / budget of a run) and in seconds.",
        "",
        "| task | optimizer | grid runs | grid s | test + run (runs) | range tests s | "
        "test + run s | fraction of the grid (runs) | fraction (s) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    fractions: list[tuple[float, float]] = []
    for cell in cells:
        if cell.schedule != "constant" or source not in cell.rows:
            continue
        row = cell.rows[source]
        fractions.append((row.cost_runs / cell.tuned.cost_runs, row.seconds / cell.tuned.seconds))
        testing = sum(
            t.seconds for t in tests if t.task == cell.task and t.optimizer == cell.optimizer
        )
        lines.append(
            f"| {cell.task} | {cell.optimizer} | {cell.tuned.cost_runs:.0f} | "
            f"{cell.tuned.seconds:.1f} | {row.cost_runs:.2f} | {testing:.2f} | "
            f"{row.seconds:.1f} | {row.cost_runs / cell.tuned.cost_runs:.3f} | "
            f"{row.seconds / cell.tuned.seconds:.3f} |"
        )
    if fractions:
        runs, seconds = [f for f, _ in fractions], [s for _, s in fractions]
        lines += [
            "",
            f"In runs, a range test and one run per seed cost {min(runs):.3f}-{max(runs):.3f} "
            f"of the grid (goal <= {GOAL_COST}); in seconds a median "
            f"{statistics.median(seconds):.3f} "
            f"({min(seconds):.3f}-{max(seconds):.3f}: single runs timed on a shared machine).",
        ]
    return lines


def write_csv(cells: list[Cell], path: Path) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            [
                "task",
                "optimizer",
                "schedule",
                "method",
                "seed",
                "lr",
                "status",
                "steps_to_target",
                "final_metric",
                "wall_time",
            ]
        )
        for cell in cells:
            grid_runs = [cell.tuned, *cell.rows.values()]
            for row in grid_runs:
                for run in sorted(row.runs, key=lambda r: r.config.seed):
                    record = run.record
                    writer.writerow(
                        [
                            cell.task,
                            cell.optimizer,
                            cell.schedule,
                            row.source,
                            run.config.seed,
                            run.config.lr,
                            run.status,
                            record.steps_to_target if record else "",
                            _num(record.final_metric, 4) if record else "",
                            f"{record.wall_time:.3f}" if record else "",
                        ]
                    )


def plots(cells: list[Cell], tasks: list[str], out: Path, seeds: int) -> None:
    """Each task's range test (SGD, seed 0, repeated over `seeds` data orders), with the
    tuned grid's best constant LR for SGD marked."""
    from lrlab.plots import save_figure

    for task in tasks:
        result = find_on_task(task, "sgd", seed=0, repeats=seeds)
        ax = result.plot()
        tuned = next(
            (
                c.tuned.lrs[0]
                for c in cells
                if c.task == task and c.optimizer == "sgd" and c.schedule == "constant"
            ),
            None,
        )
        if tuned is not None:
            ax.axvline(
                tuned,
                color="tab:orange",
                linewidth=2,
                alpha=0.7,
                label=f"tuned grid best {tuned:.3g}",
            )
            ax.legend(fontsize="small", loc="lower left")
        ax.set_title(f"{task}, SGD: range test over {seeds} data orders (seed 0 weights)")
        save_figure(ax.figure, out / f"{file_stem(task)}-range-test.png")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default=TASKS, help=f"comma-separated (default {TASKS})")
    parser.add_argument("--optimizers", default=OPTIMIZERS, help=f"default {OPTIMIZERS}")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--db", default="docs/lr-finder/runs.sqlite")
    parser.add_argument("--doc", default="docs/lr-finder.md")
    parser.add_argument(
        "--smoothing",
        default="0.98",
        help="EMA betas to read the rules at, comma-separated; the first is lrlab's default",
    )
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    optimizers = [o.strip() for o in args.optimizers.split(",") if o.strip()]
    doc = Path(args.doc)
    out = doc.with_suffix("")
    out.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    smoothings = [float(b) for b in args.smoothing.split(",") if b.strip()]
    sources = [*rule_names(smoothings), *LIPSCHITZ]
    tests = range_tests(tasks, optimizers, args.seeds, smoothings)
    with Store(args.db) as store:
        run_pending(store, configs(tests, args.seeds), args.workers)
        cells = analyse(tests, store, args.seeds, sources)
    plots(cells, tasks, out, args.seeds)
    write_csv(cells, out / "runs.csv")
    doc.write_text(document(cells, tests, tasks, optimizers, args.seeds, smoothings))
    print(f"wrote {doc} ({time.perf_counter() - began:.0f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
