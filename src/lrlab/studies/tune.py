"""The tune study: does `lrlab.tune`'s answer do as well as the full grid's, at a fifth of its
cost, on seeds neither of them saw? (``lrlab study tune``; issue 18's page, docs/tune.md.)

For every task x optimizer x schedule (a constant LR, or a one-cycle peak):

- **the grid**: every LR of ``lr_grid`` (docs/lr-finder.md's 7, 0.001 ... 1) on the tuning
  seeds ``0..seeds-1``, its LR chosen on the validation split as `lrlab compare` chooses it
  (`lrlab.report.choose_lrs`: targets reached, then steps to target, then the final metric);
- **tune**: `lrlab.tune` with its defaults (seed 0, its own range test, rungs and choice,
  validation split only);
- beside them, at the same scoring, the range test's recommended rule (``minimum``, from
  tune's own range test) and LipschitzLR's ``smooth`` value at the initial weights, each as
  the constant LR or the one-cycle peak;

then every source's LR on the fresh seeds `lrlab.HOLDOUT_SEEDS_FROM` and up (``holdout_seeds``
of them), scored on the test split: targets reached, median steps to target, median final
metric. No choice is scored on the data or the seeds that chose it. Cost: training steps
(the grid's runs; tune's trials and range test) and the seconds of those runs.

The goal (issue 18): wherever the grid's choice reaches the target on every fresh seed,
tune's does too, with median steps to target at most `GOAL_STEPS` (1.1) x the grid's and a
median final metric within the seed-to-seed spread (no worse than the grid's worst seed), at
most `GOAL_COST` (1/5) of the grid's steps. `run_study` writes ``OUT/tune.md`` and
``OUT/tune/cells.csv``; runs are stored (``OUT/tune/runs.sqlite``), so a rerun resumes.
"""

from __future__ import annotations

import csv
import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import lrlab
from lrlab import RunConfig
from lrlab.report import choose_lrs, final_spread, median_with_misses
from lrlab.studies.runner import check_count, check_store, check_task, run_configs

if TYPE_CHECKING:
    from lrlab import RunRecord, StoredRun, TuneResult
    from lrlab.studies.runner import Progress

NAME = "tune"
TASKS = ("iris", "digits", "mnist5k", "breast-cancer", "regression")
OPTIMIZERS = ("sgd", "momentum", "adam")
SCHEDULES = ("constant", "one_cycle")
SEEDS = 5
HOLDOUT_SEEDS = 5
GRID = (0.001, 0.00316228, 0.01, 0.0316228, 0.1, 0.316228, 1.0)
GOAL_STEPS = 1.1
GOAL_COST = 0.2
SOURCES = ("grid", "tune", "minimum", "lipschitz smooth")


@dataclass(frozen=True)
class Score:
    """One source's LR on the fresh seeds: its ``lr`` (``None``: it gave none), the runs,
    how many reached the target, the median steps to it (``None``: the median run missed),
    the final metric's median and quartiles (`lrlab.report.final_spread`) and its worst seed's
    (``None`` once a run diverged), the diverged runs, and what finding the LR cost (steps,
    seconds; 0 steps for LipschitzLR's value, a by-product of tune's range test)."""

    source: str
    lr: float | None
    runs: int
    reached: int
    steps: float | None
    final: float | None
    final_low: float | None
    final_high: float | None
    final_worst: float | None
    diverged: int
    cost_steps: int
    cost_seconds: float


@dataclass(frozen=True)
class Cell:
    """One task x optimizer x schedule: each source's `Score`, the task's full budget and
    whether higher is better."""

    task: str
    optimizer: str
    schedule: str
    total_steps: int
    higher_is_better: bool
    scores: dict[str, Score]

    @property
    def counts(self) -> bool:
        """Whether the goal applies: the grid's choice reached the target on every seed."""
        grid = self.scores["grid"]
        return grid.runs > 0 and grid.reached == grid.runs

    def misses(self, source: str = "tune") -> list[str]:
        """How ``source`` falls short of the goal in this cell (empty: it meets it)."""
        grid, score = self.scores["grid"], self.scores[source]
        found = []
        if score.reached < score.runs or score.runs == 0:
            found.append(f"reached {score.reached}/{score.runs}")
        elif grid.steps and score.steps is not None and score.steps > GOAL_STEPS * grid.steps:
            found.append(f"{score.steps / grid.steps:.2f}x the grid's steps")
        worst = grid.final_worst
        if (
            score.final is not None
            and worst is not None
            and _worse(score.final, worst, self.higher_is_better)
        ):
            found.append(f"final {score.final:.4g} worse than the grid's worst seed's {worst:.4g}")
        if grid.cost_steps and score.cost_steps > GOAL_COST * grid.cost_steps:
            found.append(f"cost {score.cost_steps / grid.cost_steps:.2f} of the grid's steps")
        return found


def _worse(value: float, bound: float, higher_is_better: bool) -> bool:
    return value < bound if higher_is_better else value > bound


def _worst(records: Sequence[RunRecord], higher_is_better: bool) -> float | None:
    """The worst final metric over the seeds; ``None`` when a run diverged or has none."""
    finals = [r.final_metric for r in records]
    if any(r.status == "diverged" for r in records) or not finals or None in finals:
        return None
    values = [float(f) for f in finals if f is not None]
    return min(values) if higher_is_better else max(values)


def paste(lr: float) -> float:
    """An LR as `lrlab find` and `lrlab tune` print it (3 significant digits)."""
    return float(f"{lr:.3g}")


def run_config(
    task: str, optimizer: str, schedule: str, lr: float, seed: int, total: int, steps: int | None
) -> RunConfig:
    """A full run at ``lr`` (the constant LR or the one-cycle peak), as `lrlab.tune`'s
    `lrlab.TuneResult.run_config` writes it, so equal LRs share their runs."""
    if schedule == "constant":
        return RunConfig(task=task, optimizer=optimizer, lr=lr, seed=seed, steps=steps)
    spec = f"one_cycle(lr={lr!r}, steps={total})"
    return RunConfig(task=task, optimizer=optimizer, schedule=spec, seed=seed, steps=steps)


def grid_configs(
    task: str,
    optimizer: str,
    schedule: str,
    grid: Sequence[float],
    seeds: int,
    total: int,
    steps: int | None,
) -> list[RunConfig]:
    """The grid on the tuning seeds, as `lrlab compare` runs it (a one-cycle's peak set by
    each run's LR)."""
    spec = None if schedule == "constant" else f"one_cycle(lr=1, steps={total})"
    return [
        RunConfig(task=task, optimizer=optimizer, lr=lr, schedule=spec, seed=seed, steps=steps)
        for lr in grid
        for seed in range(seeds)
    ]


def score(
    source: str,
    lr: float | None,
    runs: Sequence[StoredRun],
    higher_is_better: bool,
    cost: tuple[int, float],
) -> Score:
    """``source``'s fresh-seed runs on the test split (`Score`)."""
    records: list[RunRecord] = [r.record for r in runs if r.record is not None]
    failed = len(runs) - len(records)
    spread = final_spread(records, higher_is_better)
    return Score(
        source=source,
        lr=lr,
        runs=len(runs),
        reached=sum(r.steps_to_target is not None for r in records),
        steps=median_with_misses([r.steps_to_target for r in records] + [None] * failed),
        final=spread.median,
        final_low=spread.low,
        final_high=spread.high,
        final_worst=_worst(records, higher_is_better),
        diverged=sum(r.status == "diverged" for r in records),
        cost_steps=cost[0],
        cost_seconds=cost[1],
    )


def study_cell(
    task: str,
    optimizer: str,
    schedule: str,
    *,
    db: Path,
    grid: Sequence[float],
    seeds: int,
    holdout_seeds: int,
    steps: int | None,
    workers: int,
    progress: Progress | None,
) -> Cell:
    """One cell: tune, the grid on the tuning seeds, then every source on the fresh seeds."""
    tuned: TuneResult = lrlab.tune(
        task, optimizer, schedule=None if schedule == "constant" else schedule, db=db, steps=steps
    )
    total = tuned.total_steps
    wanted = grid_configs(task, optimizer, schedule, grid, seeds, total, steps)
    _, grid_runs = run_configs(db, wanted, workers=workers, progress=progress)
    grid_lr = next(iter(choose_lrs(grid_runs).values()))
    minimum = tuned.range_test.suggestions.get("minimum")
    lrs: dict[str, float | None] = {
        "grid": grid_lr,
        "tune": tuned.lr,
        "minimum": paste(minimum.lr) if minimum is not None and minimum.lr else None,
        "lipschitz smooth": paste(value) if (value := tuned.lipschitz.get("smooth")) else None,
    }
    fresh = range(lrlab.HOLDOUT_SEEDS_FROM, lrlab.HOLDOUT_SEEDS_FROM + holdout_seeds)
    configs = {
        source: [run_config(task, optimizer, schedule, lr, s, total, steps) for s in fresh]
        for source, lr in lrs.items()
        if lr is not None
    }
    _, stored = run_configs(
        db, [c for group in configs.values() for c in group], workers=workers, progress=progress
    )
    by_key = {run.config.key(): run for run in stored}
    higher = tuned.higher_is_better
    grid_cost = (
        sum(r.record.steps for r in grid_runs if r.record is not None),
        sum(r.record.wall_time for r in grid_runs if r.record is not None),
    )
    costs = {
        "grid": grid_cost,
        "tune": (tuned.cost_steps, tuned.compute_seconds),
        "minimum": (tuned.range_test_steps, tuned.range_test.seconds),
        "lipschitz smooth": (0, tuned.range_test.lipschitz_seconds),
    }
    scores = {
        source: score(
            source,
            lrs[source],
            [by_key[c.key()] for c in configs.get(source, []) if c.key() in by_key],
            higher,
            costs[source],
        )
        for source in SOURCES
    }
    return Cell(task, optimizer, schedule, total, higher, scores)


def run_study(
    out: str | Path,
    *,
    tasks: Sequence[str] = TASKS,
    optimizers: Sequence[str] = OPTIMIZERS,
    schedules: Sequence[str] = SCHEDULES,
    seeds: int = SEEDS,
    holdout_seeds: int = HOLDOUT_SEEDS,
    lr_grid: Sequence[float] = GRID,
    steps: int | None = None,
    workers: int = 1,
    db: str | Path | None = None,
    progress: Progress | None = None,
    echo: Callable[[str], None] | None = None,
) -> Path:
    """Run the study and write ``out/tune.md`` (and ``out/tune/cells.csv``); return the
    page's path. ``tasks`` x ``optimizers`` x ``schedules`` (``constant``, ``one_cycle``);
    the grid on ``seeds`` tuning seeds over ``lr_grid``; every source scored on ``holdout_seeds``
    fresh seeds; ``steps`` overrides the tasks' budgets. Runs are kept in ``db`` (default
    ``out/tune/runs.sqlite``) and not redone; ``echo`` gets a line per finished cell.
    Every argument is checked before anything runs."""
    for name, value in {"tasks": tasks, "optimizers": optimizers, "schedules": schedules}.items():
        if isinstance(value, str | bytes) or not isinstance(value, Sequence) or not value:
            raise ValueError(f"{name} must be a non-empty list, got {name}={value!r}")
    for task in tasks:
        check_task(task)
    for optimizer in optimizers:
        lrlab.OPTIMIZERS.lookup(optimizer)
    for schedule in schedules:
        if schedule not in SCHEDULES:
            raise ValueError(f"schedules must be among {', '.join(SCHEDULES)}, got {schedule!r}")
    check_count("seeds", seeds)
    check_count("holdout_seeds", holdout_seeds)
    check_count("workers", workers)
    if steps is not None:
        check_count("steps", steps)
    if not lr_grid or any(not (0 < float(lr) < math.inf) for lr in lr_grid):
        raise ValueError(f"lr_grid values must be finite and > 0, got lr_grid={lr_grid!r}")
    folder = Path(out) / NAME
    store = Path(db) if db is not None else folder / "runs.sqlite"
    folder.mkdir(parents=True, exist_ok=True)
    check_store(store)
    cells = []
    for task in tasks:
        for optimizer in optimizers:
            for schedule in schedules:
                cell = study_cell(
                    task,
                    optimizer,
                    schedule,
                    db=store,
                    grid=lr_grid,
                    seeds=seeds,
                    holdout_seeds=holdout_seeds,
                    steps=steps,
                    workers=workers,
                    progress=progress,
                )
                cells.append(cell)
                if echo is not None:
                    echo(f"{task} / {optimizer} / {schedule}: " + _verdict_line(cell))
    write_csv(cells, folder / "cells.csv")
    page = Path(out) / f"{NAME}.md"
    page.write_text(document(cells, tasks, seeds, holdout_seeds, lr_grid, steps), encoding="utf-8")
    return page


def _verdict_line(cell: Cell) -> str:
    if not cell.counts:
        return "the grid's choice missed the target on a fresh seed: the goal does not apply"
    misses = cell.misses()
    return "tune meets the goal" if not misses else "tune misses: " + "; ".join(misses)


def _num(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}g}"


def document(
    cells: Sequence[Cell],
    tasks: Sequence[str],
    seeds: int,
    holdout_seeds: int,
    lr_grid: Sequence[float],
    steps: int | None,
) -> str:
    """The page: how it was measured, the verdict (the cells that miss first), then every
    cell's sources side by side."""
    counted = [c for c in cells if c.counts]
    met = [c for c in counted if not c.misses()]
    ratios = [
        c.scores["tune"].cost_steps / c.scores["grid"].cost_steps
        for c in cells
        if c.scores["grid"].cost_steps
    ]
    budget = f", {steps} steps a run" if steps is not None else ""
    lines = [
        "# lrlab tune, measured",
        "",
        "Regenerate (finished runs are kept in `tune/runs.sqlite` and not redone):",
        "",
        "```bash",
        f"lrlab study tune --tasks {','.join(tasks)} --seeds {seeds} "
        f"--holdout-seeds {holdout_seeds}" + (f" --steps {steps}" if steps is not None else ""),
        "```",
        "",
        f"The grid: {', '.join(f'{lr:g}' for lr in lr_grid)} x {seeds} tuning seeds, its LR "
        f"chosen on the validation split; tune, the range test's `minimum` and LipschitzLR's "
        f"`smooth` value beside it; every source's LR on {holdout_seeds} fresh seeds (1000 and "
        "up), "
        f"scored on the test split{budget}.",
        "",
        "## Verdict",
        "",
        f"{len(counted)} of {len(cells)} cells count (the grid's choice reached the target on "
        f"every fresh seed); tune meets the goal in {len(met)} of them. Tune's cost: "
        + (
            f"a median {statistics.median(ratios):.2f} of the grid's training steps (at most "
            f"{max(ratios):.2f})."
            if ratios
            else "-"
        ),
        "",
    ]
    ordered = sorted(cells, key=lambda c: (not c.counts, not c.misses()))
    for cell in ordered:
        lines.append(f"- {cell.task}, {cell.optimizer}, {cell.schedule}: {_verdict_line(cell)}")
    lines += ["", "## Every cell", ""]
    head = "| task | optimizer | schedule | source | LR | reached | steps to target | final |"
    lines += [head + " diverged | cost (steps) |", "|" + "---|" * 10]
    for cell in cells:
        for source in SOURCES:
            s = cell.scores[source]
            spread = f" [{_num(s.final_low, 4)}-{_num(s.final_high, 4)}]" if s.runs > 1 else ""
            lines.append(
                f"| {cell.task} | {cell.optimizer} | {cell.schedule} | {source} | {_num(s.lr)} "
                f"| {s.reached}/{s.runs} | {_num(s.steps, 4)} | {_num(s.final, 4)}{spread} "
                f"| {s.diverged} | {s.cost_steps} |"
            )
    return "\n".join(lines) + "\n"


def write_csv(cells: Sequence[Cell], path: Path) -> None:
    """One row per cell and source."""
    fields = ["task", "optimizer", "schedule", "total_steps", "counts", "source", "lr"]
    fields += ["runs", "reached", "steps", "final", "final_low", "final_high", "final_worst"]
    fields += ["diverged"]
    fields += ["cost_steps", "cost_seconds"]
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(fields)
        for cell in cells:
            for source in SOURCES:
                s = cell.scores[source]
                row = [cell.task, cell.optimizer, cell.schedule, cell.total_steps, cell.counts]
                row += [source, s.lr, s.runs, s.reached, s.steps, s.final, s.final_low]
                row += [s.final_high, s.final_worst, s.diverged, s.cost_steps]
                row += [f"{s.cost_seconds:.3f}"]
                writer.writerow(row)
