"""The range-test study: how good is the LR range test's suggested LR against a tuned one?
It writes docs/lr-finder.md (``lrlab study lr-finder --out docs``), the measurement that chose
`lrlab.RangeTest.suggested_lr`'s rule.

Under lrlab's honest protocol (`lrlab.compare`): the same optimizer at every LR of a log grid
(`GRID`: 0.001 ... 1, docs/lipschitz.md's), constant and one-cycle, runs on the tuning seeds
``0..S-1``, and the grid's LR is chosen as `lrlab report` chooses it, on the validation split
(most targets reached, then fewest median steps, then best final metric); it is then trained
on the fresh seeds ``1000..1000+S-1``. For every task x optimizer x fresh seed,
`lrlab.find_on_task` runs the range test from the weights that seed's run starts with (on the
training data only: lrlab's defaults, 100 steps from 1e-7 to 10), and each rule's suggestion,
and LipschitzLR's paper and smooth values at the same weights, are trained on that seed as a
constant LR and as the peak of a one-cycle schedule over the task's budget. Every number is
scored on the fresh seeds' test split, which chose nothing.

Runs go through lrlab's process pool into a SQLite store (`lrlab.studies.runner.run_configs`),
so an interrupted study resumes where it stopped (finished runs are not redone). `run_study`
writes ``OUT/lr-finder.md``, ``OUT/lr-finder/runs.csv`` and
``OUT/lr-finder/<task>-range-test.png``.
"""

from __future__ import annotations

import csv
import math
import statistics
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import lrlab
from lrlab import RunConfig
from lrlab.report import file_stem, median_with_misses, summarize
from lrlab.studies.runner import check_count, check_store, check_task, run_configs, save_plot

if TYPE_CHECKING:
    from lrlab import StoredRun
    from lrlab.studies.runner import Progress

NAME = "lr-finder"
TASKS = ("iris", "digits", "mnist5k", "breast-cancer", "regression")
OPTIMIZERS = ("sgd", "momentum", "adam")
SEEDS = 5
# 7 log-spaced LRs from 0.001 to 1 (``--lr-grid 1e-3:1:7``, as docs/lipschitz.md tunes).
GRID = (0.001, 0.00316228, 0.01, 0.0316228, 0.1, 0.316228, 1.0)
SMOOTHINGS = (0.98,)  # the EMA betas the rules are read at; the first is lrlab's default
SCHEDULES = ("constant", "one-cycle")
LIPSCHITZ = ("lipschitz paper", "lipschitz smooth")
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
    """One range test: each source's LR (``None`` where it gave none), its cost, and what the
    test itself says: its rules' names (the recommended first), the recommended rule, and the
    first LR its rules read (past the burn-in)."""

    task: str
    optimizer: str
    seed: int
    lrs: dict[str, float | None]
    seconds: float
    lipschitz_seconds: float
    steps: int
    total_steps: int
    steps_per_epoch: int
    rules: tuple[str, ...]
    recommended: str
    first_read: float


def rule_names(tests: Sequence[Test], smoothings: Sequence[float]) -> list[str]:
    """The rules' names, those read with a smoothing other than the first suffixed with it."""
    names = tests[0].rules if tests else ()
    return [n + ("" if i == 0 else f" @{b:g}") for i, b in enumerate(smoothings) for n in names]


def range_tests(
    tasks: Sequence[str],
    optimizers: Sequence[str],
    seeds: int,
    smoothings: Sequence[float],
    steps: int | None = None,
    echo: Callable[[str], None] | None = None,
) -> list[Test]:
    """One range test per task, optimizer, seed and smoothing (LipschitzLR's values and the
    cost from the first smoothing's), for runs of ``steps`` steps (default: the task's
    budget)."""
    tests = []
    for task in tasks:
        for optimizer in optimizers:
            for seed in fresh_seeds(seeds):
                result = lrlab.find_on_task(
                    task, optimizer, seed=seed, smoothing=smoothings[0], run_steps=steps
                )
                lrs: dict[str, float | None] = {n: r.lr for n, r in result.suggestions.items()}
                for bound, value in result.lipschitz.items():
                    lrs[f"lipschitz {bound}"] = value
                for beta in smoothings[1:]:
                    other = lrlab.find_on_task(
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
                        tuple(result.suggestions),
                        result.recommended,
                        result.lrs[result.curves[0].window[0]],
                    )
                )
        if echo is not None:
            echo(f"range tests: {task} done")
    return tests


def run_config(
    task: str, optimizer: str, lr: float, spec: str | None, seed: int, steps: int | None
) -> RunConfig:
    """One run of the study: ``optimizer`` at ``lr`` (constant, or a one-cycle peak) on
    ``task``'s defaults, ``steps`` overriding its budget."""
    return RunConfig(task, optimizer, lr=lr, schedule=spec, seed=seed, steps=steps)


def fresh_seeds(count: int) -> range:
    """The fresh seeds everything is scored on (`lrlab.HOLDOUT_SEEDS_FROM` up)."""
    return range(lrlab.HOLDOUT_SEEDS_FROM, lrlab.HOLDOUT_SEEDS_FROM + count)


def grid_configs(
    tests: Sequence[Test], seeds: int, grid: Sequence[float], steps: int | None = None
) -> list[RunConfig]:
    """The tuning runs: the grid for each task, optimizer and schedule on the tuning seeds
    ``0..seeds-1``."""
    wanted: dict[str, RunConfig] = {}
    totals = {t.task: t.total_steps for t in tests}
    pairs = sorted({(t.task, t.optimizer) for t in tests})
    for task, optimizer in pairs:
        for schedule in SCHEDULES:
            spec = schedule_spec(schedule, totals[task])
            for lr in grid:
                for seed in range(seeds):
                    config = run_config(task, optimizer, lr, spec, seed, steps)
                    wanted[config.key()] = config
    return list(wanted.values())


def chosen_lrs(
    tests: Sequence[Test],
    stored: Sequence[StoredRun],
    seeds: int,
    grid: Sequence[float],
    steps: int | None = None,
) -> dict[tuple[str, str, str], float]:
    """Each cell's (task, optimizer, schedule) grid LR, chosen on the validation split with
    the tuning seeds (`lrlab.report.summarize`)."""
    runs = {run.config.key(): run for run in stored}
    totals = {t.task: t.total_steps for t in tests}
    chosen = {}
    for task, optimizer in sorted({(t.task, t.optimizer) for t in tests}):
        for schedule in SCHEDULES:
            spec = schedule_spec(schedule, totals[task])
            grid_runs = [
                runs[run_config(task, optimizer, lr, spec, seed, steps).key()]
                for lr in grid
                for seed in range(seeds)
            ]
            (summary,) = summarize(grid_runs)
            chosen[(task, optimizer, schedule)] = float(summary.lr or math.nan)
    return chosen


def fresh_configs(
    tests: Sequence[Test],
    chosen: dict[tuple[str, str, str], float],
    seeds: int,
    steps: int | None = None,
) -> list[RunConfig]:
    """The scored runs, on the fresh seeds: each cell's chosen grid LR, and each range
    test's suggestions on its own seed."""
    wanted: dict[str, RunConfig] = {}
    totals = {t.task: t.total_steps for t in tests}
    for (task, optimizer, schedule), lr in chosen.items():
        spec = schedule_spec(schedule, totals[task])
        for seed in fresh_seeds(seeds):
            config = run_config(task, optimizer, lr, spec, seed, steps)
            wanted[config.key()] = config
    for test in tests:
        for schedule in SCHEDULES:
            spec = schedule_spec(schedule, test.total_steps)
            for value in test.lrs.values():
                if value is not None:
                    config = run_config(test.task, test.optimizer, value, spec, test.seed, steps)
                    wanted[config.key()] = config
    return list(wanted.values())


# -- analysis ------------------------------------------------------------------------------------


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
        """Median steps to target over the seeds, a miss counting as infinitely many."""
        return median_with_misses(
            [r.record.steps_to_target if r.record else None for r in self.runs]
        )


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


def analyse(
    tests: Sequence[Test],
    stored: Sequence[StoredRun],
    seeds: int,
    sources: Sequence[str],
    grid: Sequence[float],
    steps: int | None = None,
) -> list[Cell]:
    """The cells (task x optimizer x schedule) from the stored runs: the tuned grid's LR
    (chosen on the tuning seeds' validation split) and each source's runs, all on the fresh
    seeds. A method's cost counts what chose its LR (the grid's runs; the range tests) plus
    one scored run per seed, for both alike."""
    runs = {run.config.key(): run for run in stored}
    by_pair: dict[tuple[str, str], list[Test]] = defaultdict(list)
    for test in tests:
        by_pair[(test.task, test.optimizer)].append(test)
    cells = []
    for (task, optimizer), group in by_pair.items():
        total = group[0].total_steps
        for schedule in SCHEDULES:
            spec = schedule_spec(schedule, total)
            grid_runs = [
                runs[run_config(task, optimizer, lr, spec, seed, steps).key()]
                for lr in grid
                for seed in range(seeds)
            ]
            (summary,) = summarize(grid_runs)
            lr = float(summary.lr or math.nan)
            best = [
                runs[run_config(task, optimizer, lr, spec, seed, steps).key()]
                for seed in fresh_seeds(seeds)
            ]
            tuned = Row(
                "tuned grid",
                [lr],
                best,
                sum(r.record.wall_time for r in [*grid_runs, *best] if r.record),
                float(len(grid_runs) + len(best)),
            )
            cell = Cell(task, optimizer, schedule, seeds, tuned)
            for source in sources:
                chosen = [(t, t.lrs.get(source)) for t in group]
                if any(lr is None for _, lr in chosen):
                    continue
                source_runs = [
                    runs[run_config(task, optimizer, lr, spec, t.seed, steps).key()]
                    for t, lr in chosen
                    if lr is not None
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

Regenerate everything here (finished runs are kept in `{store}` and not
redone; the task list is an argument, so new tasks can be added):

```bash
{command}
```

## Setup

{tasks_line}
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
- The baseline: the same optimizer and schedule at every LR of the grid {grid} ({n} log-spaced
  values, as in docs/lipschitz.md) x {seeds} tuning seeds; its LR is chosen the way `lrlab
  compare` chooses, **on the validation split** (a tenth of the training data held out: most
  targets reached, then fewest median steps to target, then best median final metric), and
  then trained on the {seeds} fresh seeds. The range tests run from the fresh seeds' initial
  weights, on their training data only. **Every number below is scored on the fresh seeds'
  test split**, which chose nothing (the first edition of this page chose the grid's LR on
  the seeds and test split it reported: an optimistic baseline).
- The goal (lrlab issue 9): the recommended rule reaches the target on {seeds}/{seeds} seeds
  wherever the tuned grid does, with median steps to target <= {goal_steps}x the tuned best's,
  at <= 1/5 of the grid's cost, counted in runs of the task's budget (a range test plus one
  scored run per seed, against {n} tuning runs plus one scored run per seed; a range-test step
  costs a training step, see `benchmarks/range_test_overhead.py`), with the seconds shown
  beside.
- Steps to target are counted at epoch ends, as everywhere in lrlab; a miss counts as
  infinitely many steps. Seconds are wall-clock seconds of the runs (`RunRecord.wall_time`) plus
  the range tests', on a 2-core machine shared with other jobs (noisy; the counts in runs are
  exact).
"""


@dataclass(frozen=True)
class Settings:
    """What a run of the study was asked for: the page states it and the command that
    regenerates it."""

    tasks: tuple[str, ...]
    optimizers: tuple[str, ...]
    seeds: int
    grid: tuple[float, ...]
    smoothings: tuple[float, ...]
    steps: int | None
    out: Path
    db: Path

    def command(self) -> str:
        """The ``lrlab study lr-finder`` command line that regenerates the page (options at
        their defaults left out)."""
        parts = ["lrlab study lr-finder", f"--out {self.out}", f"--tasks {','.join(self.tasks)}"]
        if self.optimizers != OPTIMIZERS:
            parts.append(f"--optimizers {','.join(self.optimizers)}")
        if self.seeds != SEEDS:
            parts.append(f"--seeds {self.seeds}")
        if self.grid != GRID:
            parts.append(f"--lr-grid {','.join(f'{v:g}' for v in self.grid)}")
        if self.smoothings != SMOOTHINGS:
            parts.append(f"--smoothing {','.join(f'{b:g}' for b in self.smoothings)}")
        if self.steps is not None:
            parts.append(f"--steps {self.steps}")
        if self.db != default_db(self.out):
            parts.append(f"--db {self.db}")
        return " ".join(parts)


def default_db(out: Path) -> Path:
    """Where the study keeps its runs unless told: ``OUT/lr-finder/runs.sqlite``."""
    return out / NAME / "runs.sqlite"


def document(cells: list[Cell], tests: list[Test], settings: Settings) -> str:
    """The page: setup, verdict, per-task results and costs, from the cells alone."""
    table = scores(cells, [*rule_names(tests, settings.smoothings), *LIPSCHITZ])
    best = best_rule(table)
    seeds = settings.seeds
    variants = ""
    if len(settings.smoothings) > 1:
        variants = (
            " The same rules are also read off the curve smoothed with beta "
            + ", ".join(f"{b:g}" for b in settings.smoothings[1:])
            + " (a lighter EMA lags less behind the raw loss; rows `RULE @BETA`)."
        )
    budget = f", each run {settings.steps} steps" if settings.steps is not None else ""
    task_list = ", ".join(f"`{t}`" for t in settings.tasks)
    opts = ", ".join(settings.optimizers)
    tasks_line = (
        f"- Tasks at their defaults (`lrlab tasks`){budget}: {task_list}; {seeds} seeds each; "
        f"optimizers {opts}."
    )
    lines = [
        INTRO.format(
            beta=f"{settings.smoothings[0]:g}",
            variants=variants,
            command=settings.command(),
            store=settings.db,
            tasks_line=tasks_line,
            seeds=seeds,
            grid=", ".join(_num(v) for v in settings.grid),
            n=len(settings.grid),
            goal_steps=GOAL_STEPS,
        )
    ]
    lines += _verdict(cells, tests, table, best, seeds)
    lines += _per_task(cells, list(settings.tasks))
    lines += _cost(cells, tests, best.source, len(settings.grid))
    lines += [
        "",
        f"Per-run numbers (every grid LR and every suggestion): [{NAME}/runs.csv]"
        f"({NAME}/runs.csv).",
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
    recommended = tests[0].recommended if tests else best.source
    if best.source != recommended:
        verdict += (
            f". NOTE: the code currently recommends `{recommended}`; these measurements favour "
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
    first = tests[0].first_read  # the first LR the rules read (after the burn-in)
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


def _cost(cells: list[Cell], tests: list[Test], source: str, grid_count: int) -> list[str]:
    lines = [
        "## What it costs",
        "",
        f"Per task and optimizer, constant LR, all seeds: the grid ({grid_count} LRs x seeds) "
        f"against a range test plus one run per seed at `{source}`'s LR. In runs of the task's "
        "budget (a 100-step range test is 100 / budget of a run) and in seconds.",
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


def plots(cells: list[Cell], tasks: Sequence[str], folder: Path, seeds: int) -> None:
    """Each task's range test (SGD, seed 0, repeated over `seeds` data orders), with the
    tuned grid's best constant LR for SGD marked, as ``folder/<task>-range-test.png``."""
    for task in tasks:
        result = lrlab.find_on_task(task, "sgd", seed=0, repeats=seeds)
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
        save_plot(ax, folder, f"{file_stem(task)}-range-test.png")


def run_study(
    out: str | Path,
    *,
    tasks: Sequence[str] = TASKS,
    optimizers: Sequence[str] = OPTIMIZERS,
    seeds: int = SEEDS,
    lr_grid: Sequence[float] = GRID,
    smoothings: Sequence[float] = SMOOTHINGS,
    steps: int | None = None,
    workers: int = 1,
    db: str | Path | None = None,
    progress: Progress | None = None,
    echo: Callable[[str], None] | None = None,
) -> Path:
    """Run the study and write ``out/lr-finder.md`` (with ``out/lr-finder/runs.csv`` and each
    task's range-test chart); return the page's path.

    ``tasks`` (names or ``file.py:function`` references) x ``optimizers`` x ``seeds`` (seeds
    ``0..seeds-1``): one range test each, the rules read at every EMA beta of ``smoothings``
    (the first is the test's own), each suggestion trained against the ``lr_grid``, constant
    and as a one-cycle peak; ``steps`` overrides the tasks' budgets (``None``: each task's
    own). Runs train one by one (not vectorised: each run's wall time is its own) on
    ``workers`` processes and are kept in ``db`` (default ``out/lr-finder/runs.sqlite``); a
    run already there is not redone. ``progress`` follows the runs, ``echo`` gets a line per
    task whose range tests are done. Every argument is checked before anything runs.
    """
    settings = _settings(out, tasks, optimizers, seeds, lr_grid, smoothings, steps, db)
    check_count("workers", workers)
    check_store(settings.db)
    tests = range_tests(
        settings.tasks, settings.optimizers, seeds, settings.smoothings, steps, echo
    )
    tuning = grid_configs(tests, seeds, settings.grid, steps)
    _, tuned = run_configs(settings.db, tuning, workers=workers, vectorize=False, progress=progress)
    chosen = chosen_lrs(tests, tuned, seeds, settings.grid, steps)
    scored = fresh_configs(tests, chosen, seeds, steps)
    _, fresh = run_configs(settings.db, scored, workers=workers, vectorize=False, progress=progress)
    stored = [*tuned, *fresh]
    sources = [*rule_names(tests, settings.smoothings), *LIPSCHITZ]
    cells = analyse(tests, stored, seeds, sources, settings.grid, steps)
    folder = settings.out / NAME
    plots(cells, settings.tasks, folder, seeds)
    folder.mkdir(parents=True, exist_ok=True)
    write_csv(cells, folder / "runs.csv")
    page = settings.out / f"{NAME}.md"
    page.write_text(document(cells, tests, settings), encoding="utf-8")
    return page


def _settings(
    out: str | Path,
    tasks: Sequence[str],
    optimizers: Sequence[str],
    seeds: int,
    lr_grid: Sequence[float],
    smoothings: Sequence[float],
    steps: int | None,
    db: str | Path | None,
) -> Settings:
    """The study's arguments, checked (one line naming the first bad one)."""
    names = {"tasks": tasks, "optimizers": optimizers, "lr_grid": lr_grid}
    for name, value in {**names, "smoothings": smoothings}.items():
        if isinstance(value, str | bytes) or not isinstance(value, Sequence) or not value:
            raise ValueError(f"{name} must be a non-empty list, got {name}={value!r}")
    for task in tasks:
        check_task(task)
    for optimizer in optimizers:
        lrlab.OPTIMIZERS.lookup(optimizer)
    check_count("seeds", seeds)
    if steps is not None:
        check_count("steps", steps)
    for lr in lr_grid:
        if isinstance(lr, bool) or not isinstance(lr, int | float) or not (0 < lr < math.inf):
            raise ValueError(f"lr_grid values must be finite and > 0, got lr_grid={lr_grid!r}")
    for beta in smoothings:
        if isinstance(beta, bool) or not isinstance(beta, int | float) or not (0 <= beta < 1):
            raise ValueError(f"smoothings must be in [0, 1), got smoothings={smoothings!r}")
    folder = Path(out)
    return Settings(
        tuple(tasks),
        tuple(optimizers),
        seeds,
        tuple(float(v) for v in lr_grid),
        tuple(float(b) for b in smoothings),
        steps,
        folder,
        Path(db) if db is not None else default_db(folder),
    )
