"""What `lrlab tune` costs against the grid it replaces, in one run: training steps and
wall-clock seconds, as ratios.

    .venv/bin/python benchmarks/tune_cost.py                          # iris and mnist5k
    .venv/bin/python benchmarks/tune_cost.py --tasks iris --optimizers sgd --rounds 3

For each task x optimizer x schedule, two things run from empty stores, in this process
(the order alternating round by round):

- the grid as ``lrlab compare TASK --optimizers OPT --schedules S --lr-grid 1e-3:1:7
  --seeds 5`` runs it (`lrlab.compare`, vectorised, its default workers), its 35 runs only
  (``optimistic=True``: the fresh-seed runs that score a choice are not part of finding it,
  and `tune` runs none either);
- ``lrlab tune TASK --optimizer OPT --schedule S`` (`lrlab.tune`, its defaults).

Steps are the steps the runs trained (a diverged run stops early; `tune`'s include its range
test); seconds are each call's wall-clock. The ratio quoted is tune / grid, the median over
rounds. The grid's LR, chosen on the validation split as `lrlab compare` chooses it
(`lrlab.report.choose_lrs`), is printed beside tune's for reference: whether tune's answer
is as good is the study's question (scored on fresh seeds), not this benchmark's. The load
average before and after says how busy the (shared) machine was.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import lrlab
from lrlab.cli.common import parse_lr_grid
from lrlab.report import choose_lrs

GRID = "1e-3:1:7"
SEEDS = 5
GOAL_STEPS = 0.2  # issue 18: at most a fifth of the grid's training steps


def grid_cost(
    task: str, optimizer: str, schedule: str | None, db: Path
) -> tuple[int, float, float]:
    """The grid's steps, seconds and its LR chosen on the validation split."""
    began = time.perf_counter()
    result = lrlab.compare(
        task,
        optimizers=[optimizer],
        schedules=[schedule],
        lr_grid=parse_lr_grid(GRID),
        seeds=SEEDS,
        optimistic=True,
        db=db,
    )
    seconds = time.perf_counter() - began
    steps = sum(run.record.steps for run in result.runs if run.record is not None)
    chosen = choose_lrs(result.runs)
    lr = next(iter(chosen.values()))
    return steps, seconds, float(lr or 0.0)


def tune_cost(task: str, optimizer: str, schedule: str | None, db: Path) -> lrlab.TuneResult:
    return lrlab.tune(task, optimizer, schedule=schedule, db=db)


def main() -> None:
    parser = argparse.ArgumentParser(
        description="tune's cost against the 7-LR x 5-seed grid's, as ratios (steps, seconds)"
    )
    parser.add_argument("--tasks", default="iris,mnist5k", metavar="LIST")
    parser.add_argument("--optimizers", default="sgd,adam", metavar="LIST")
    parser.add_argument(
        "--schedules",
        default="constant;one_cycle",
        metavar="'S1;S2'",
        help="schedules with their LR left out (constant;one_cycle)",
    )
    parser.add_argument("--rounds", type=int, default=1, metavar="N", help="rounds (1)")
    args = parser.parse_args()
    tasks = [t for t in args.tasks.split(",") if t]
    optimizers = [o for o in args.optimizers.split(",") if o]
    schedules = [s.strip() for s in args.schedules.split(";") if s.strip()]
    print(f"cpus {os.cpu_count()}, load before {os.getloadavg()[0]:.2f}")
    header = (
        f"{'task':<10} {'optimizer':<9} {'schedule':<10} {'grid steps':>10} {'tune steps':>10} "
        f"{'ratio':>6}  {'grid s':>7} {'tune s':>7} {'ratio':>6}  {'grid lr':>8} {'tune lr':>8}"
    )
    print(header)
    steps_ratios, seconds_ratios = [], []
    for task in tasks:
        for optimizer in optimizers:
            for text in schedules:
                schedule = None if text == "constant" else text
                grid_spec = None if schedule is None else f"{schedule}(lr=1)"
                rows = []
                for round_ in range(args.rounds):
                    with tempfile.TemporaryDirectory() as folder:
                        grid_db, tune_db = Path(folder) / "grid.sqlite", Path(folder) / "t.sqlite"
                        if round_ % 2 == 0:
                            grid = grid_cost(task, optimizer, grid_spec, grid_db)
                            tuned = tune_cost(task, optimizer, schedule, tune_db)
                        else:
                            tuned = tune_cost(task, optimizer, schedule, tune_db)
                            grid = grid_cost(task, optimizer, grid_spec, grid_db)
                    rows.append((grid, tuned))
                step_ratio = statistics.median(t.cost_steps / g[0] for g, t in rows)
                second_ratio = statistics.median(t.seconds / g[1] for g, t in rows)
                steps_ratios.append(step_ratio)
                seconds_ratios.append(second_ratio)
                (grid_steps, grid_seconds, grid_lr), tuned = rows[-1]
                print(
                    f"{task:<10} {optimizer:<9} {text:<10} {grid_steps:>10} "
                    f"{tuned.cost_steps:>10} {step_ratio:>6.3f}  {grid_seconds:>7.1f} "
                    f"{tuned.seconds:>7.1f} {second_ratio:>6.3f}  {grid_lr:>8.3g} "
                    f"{tuned.lr:>8.3g}",
                    flush=True,
                )
    print(
        f"steps ratio: median {statistics.median(steps_ratios):.3f}, max "
        f"{max(steps_ratios):.3f} (goal <= {GOAL_STEPS}); seconds ratio: median "
        f"{statistics.median(seconds_ratios):.3f}, max {max(seconds_ratios):.3f} (goal < 1)"
    )
    print(f"load after {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
