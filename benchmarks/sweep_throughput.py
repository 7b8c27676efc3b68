"""Sweep throughput: the same grid trained one by one (lrlab's process pool, as `lrlab compare`
runs it) and vectorised (`lrlab.vectorize`: the grid's groups on the same number of worker
processes), plus a single run's engine step against a plain hand-written loop.

    .venv/bin/python benchmarks/sweep_throughput.py                   # everything, 3 rounds
    .venv/bin/python benchmarks/sweep_throughput.py --tasks iris --rounds 1 --epochs 20

``seed-000`` is ``lrlab reproduce seed-000``'s runs (63, Keras momentum on Iris with three
schedules), trained as the reproduction's process pool would and vectorised.

The grid is docs/lipschitz.md's: ``--optimizers sgd,momentum,adam --lr-grid 1e-3:1:7
--seeds 5`` (105 runs) at each task's default budget (``--epochs`` shortens it). The two sides
alternate which goes first, round by round, and the ratio quoted is the median of the
per-round ratios; the load average before and after says how busy the (shared) machine was.
Every vectorised record is checked against its one-by-one twin: same status and divergence
step, largest relative difference of the per-step losses printed.

The single-run rows time `lrlab.engine.train_run` (its ``train_time`` per step) against
``benchmarks/engine_overhead.py``'s plain loop with torch.optim's defaults, alternately, the
median of per-round ratios.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import torch

from lrlab.cli.common import parse_lr_grid
from lrlab.execution import InProcess, LocalPool, Outcome
from lrlab.execution.worker import run_group, run_one
from lrlab.record import RunConfig, RunRecord
from lrlab.sweep import Sweep
from lrlab.vectorize import plan_groups

GOALS = {"iris": 20.0, "digits": 6.0, "mnist5k": 1.0, "seed-000": 10.0}
SINGLE_GOAL = 0.90


def grid(task: str, seeds: int, epochs: int | None) -> list[RunConfig]:
    """docs/lipschitz.md's grid on ``task``; ``seed-000``: that reproduction's runs (three
    schedules of Keras momentum on Iris, 20 seeds and the seed's own)."""
    if task == "seed-000":
        from lrlab.studies import seed000
        from lrlab.studies.runner import Options

        options = Options(out=Path("."), epochs=epochs)
        return [config for config, _ in seed000.plan(options).all_configs()]
    run: dict[str, Any] = {"epochs": epochs} if epochs else {}
    sweep = Sweep(
        task,
        ("sgd", "momentum", "adam"),
        seeds=tuple(range(seeds)),
        lr_grid=parse_lr_grid("1e-3:1:7"),
        run=run,
    )
    return sweep.configs()


def describe(task: str, seeds: int) -> str:
    if task == "seed-000":
        return "lrlab reproduce seed-000: 3 schedules of Keras momentum x 20 seeds"
    return f"sgd, momentum, adam x 7 LRs x {seeds} seeds"


def one_by_one(configs: Sequence[RunConfig], workers: int) -> tuple[float, list[RunRecord]]:
    records: list[RunRecord] = []

    def keep(outcome: Outcome) -> None:
        if outcome.record is None:
            raise RuntimeError(f"{outcome.config}: {outcome.error}")
        records.append(outcome.record)

    executor = LocalPool(workers) if workers > 1 else InProcess()
    start = time.perf_counter()
    executor.run(configs, keep)
    return time.perf_counter() - start, records


def _one_thread() -> None:
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)


def _results(results: list[tuple[str | None, str | None]]) -> list[RunRecord]:
    records = []
    for text, error in results:
        if text is None:
            raise RuntimeError(error)
        records.append(RunRecord.from_json(text))
    return records


def vectorised(
    configs: Sequence[RunConfig], workers: int
) -> tuple[float, list[RunRecord], list[int]]:
    """The grid's groups (and any run that must train alone) on ``workers`` spawned
    processes, largest groups first; the time includes planning and the processes' start."""
    start = time.perf_counter()
    groups, alone = plan_groups(configs, workers=workers)
    groups.sort(key=len, reverse=True)
    records: list[RunRecord] = []
    if workers == 1:
        _one_thread()
        for group in groups:
            records += _results(run_group([c.to_dict() for c in group]))
        for config, _ in alone:
            records += _results([run_one(config.to_dict())])
        return time.perf_counter() - start, records, [len(g) for g in groups]
    context = get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_one_thread) as pool:
        futures = [pool.submit(run_group, [c.to_dict() for c in g]) for g in groups]
        futures += [pool.submit(lambda_one, config.to_dict()) for config, _ in alone]
        for future in as_completed(futures):
            records += _results(future.result())
    return time.perf_counter() - start, records, [len(g) for g in groups]


def lambda_one(config: dict[str, Any]) -> list[tuple[str | None, str | None]]:
    return [run_one(config)]


def compare_records(mine: list[RunRecord], theirs: list[RunRecord]) -> tuple[int, float]:
    """(runs whose status or divergence step differ, largest relative per-step loss
    difference over the others)."""
    by_key = {r.config.key(): r for r in theirs}
    mismatched, worst = 0, 0.0
    for record in mine:
        twin = by_key[record.config.key()]
        if (record.status, record.diverged_at) != (twin.status, twin.diverged_at):
            mismatched += 1
            continue
        for a, b in zip(record.step_loss, twin.step_loss, strict=True):
            if a is not None and b is not None and math.isfinite(b) and b != 0:
                worst = max(worst, abs(a - b) / abs(b))
    return mismatched, worst


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load {one:.1f} (5 min {five:.1f}) on {os.cpu_count()} cores"


def sweep_rows(
    tasks: Sequence[str], rounds: int, workers: int, seeds: int, epochs: int | None
) -> None:
    for task in tasks:
        configs = grid(task, seeds, epochs)
        print(f"\n{task}: {len(configs)} runs ({describe(task, seeds)}), {load()}")
        ratios, alone_times, vector_times = [], [], []
        for round_ in range(rounds):
            if round_ % 2:
                t_vec, mine, parts = vectorised(configs, workers)
                t_one, theirs = one_by_one(configs, workers)
            else:
                t_one, theirs = one_by_one(configs, workers)
                t_vec, mine, parts = vectorised(configs, workers)
            mismatched, worst = compare_records(mine, theirs)
            ratios.append(t_one / t_vec)
            alone_times.append(t_one)
            vector_times.append(t_vec)
            print(
                f"  round {round_ + 1}: one by one {t_one:7.1f} s, vectorised {t_vec:6.1f} s "
                f"(groups {parts}), ratio {t_one / t_vec:5.1f}x; status/divergence mismatches "
                f"{mismatched}, largest loss difference {worst:.1e}"
            )
        one, vec = statistics.median(alone_times), statistics.median(vector_times)
        print(
            f"  {task}: one by one {len(configs) / one:6.2f} runs/s, vectorised "
            f"{len(configs) / vec:6.2f} runs/s, median ratio {statistics.median(ratios):5.1f}x "
            f"(goal >= {GOALS.get(task, 1.0):g}x); {load()}"
        )


def single_rows(rounds: int) -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    from engine_overhead import Case, time_case

    print(f"\nsingle mnist5k b128 run: engine step / plain loop (torch.optim defaults), {load()}")
    for case in (
        Case("mnist5k", 128, "momentum", 0.05, 640),
        Case("mnist5k", 128, "adam", 0.001, 640),
    ):
        timing = time_case(case, rounds)
        q1, q3 = timing.quartiles()
        print(
            f"  {case.optimizer:9s} plain {timing.baseline * 1e3:6.3f} ms/step, engine "
            f"{timing.candidate * 1e3:6.3f} ms/step, median ratio "
            f"{timing.ratio:.3f} [{q1:.3f}-{q3:.3f}] (goal <= {SINGLE_GOAL})"
        )
    print(f"  {load()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="iris,digits,mnist5k,seed-000,single")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--single-rounds", type=int, default=9)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=None, help="shorter budget than the task's")
    args = parser.parse_args()
    _one_thread()
    print(f"torch {torch.__version__}, 1 thread per process, {args.workers} workers a side")
    tasks = [t for t in args.tasks.split(",") if t]
    sweep_rows(
        [t for t in tasks if t != "single"], args.rounds, args.workers, args.seeds, args.epochs
    )
    if "single" in tasks:
        single_rows(args.single_rounds)


if __name__ == "__main__":
    main()
