"""Step time of lrlab's engine against a plain hand-written PyTorch loop.

Same task data, model and initial weights, batch size, optimizer and thread count; the two are
timed alternately in one process, several rounds, and the median of the per-round ratios is
reported (shared machines are noisy; a ratio measured side by side is what holds).

    .venv/bin/python benchmarks/engine_overhead.py            # mnist5k b128 and iris b5
    .venv/bin/python benchmarks/engine_overhead.py --rounds 21 --threads 1

The plain loop is the minimal one: shuffle, index, forward, loss, zero_grad, backward, step.
The DataLoader case serves the same tensors through ``DataLoader(TensorDataset(x, y),
batch_size, shuffle=True)`` to both: a user task's streaming path against a hand-written loop
over the same loader (goal <= 1.05).
The engine does that plus what a run records: the loss of every step (read on the host), the
LR trace, a running training metric and the divergence check. Evaluation is not timed (the
engine's ``train_time`` leaves it out, and the plain loop has none).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader, TensorDataset

from lrlab.engine import train_run
from lrlab.optimizers import make_optimizer
from lrlab.record import RunConfig
from lrlab.tasks import Task, get_task, load_tensor_data
from lrlab.tasks.task import loss_function


@dataclass(frozen=True)
class Case:
    task: str
    batch_size: int
    optimizer: str
    lr: float
    steps: int
    schedule: str | None = None
    goal: float | None = None
    loader: bool = False  # serve the data through a DataLoader (a user task's path)


CASES = [
    Case("mnist5k", 128, "sgd", 0.1, 640, goal=1.05),
    Case("mnist5k", 128, "sgd", 0.1, 640, goal=1.05, loader=True),
    Case("mnist5k", 128, "momentum", 0.1, 640, schedule="cosine(lr=0.1, steps=640)", goal=1.05),
    Case("iris", 5, "sgd", 0.05, 1200),
    Case("iris", 5, "keras-momentum", 0.1, 1200, schedule="inverse_time(lr=0.1, decay=0.005)"),
]


def plain_loop(case: Case, seed: int) -> float:
    """Seconds per step of the minimal hand-written loop (a schedule, if any, set by hand)."""
    task = get_task(case.task)
    data = load_tensor_data(case.task, None, None)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = task.build_model()
    optimizer = make_optimizer(case.optimizer, model.parameters(), lr=case.lr)
    scheduler = None
    if case.schedule:
        from lrlab import ScheduleLR
        from lrlab.schedules import parse

        scheduler = ScheduleLR(optimizer, parse(case.schedule))
    loss_fn = loss_function(task.loss)
    x, y = data.x_train, data.y_train
    generator = torch.Generator().manual_seed(seed)
    step = 0
    start = time.perf_counter()
    if case.loader:
        loader = DataLoader(TensorDataset(x, y), batch_size=case.batch_size, shuffle=True)
        while step < case.steps:
            for inputs, targets in loader:
                if step == case.steps:
                    break
                loss = loss_fn(model(inputs), targets)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                step += 1
        return (time.perf_counter() - start) / case.steps
    while step < case.steps:
        for index in torch.randperm(x.shape[0], generator=generator).split(case.batch_size):
            if step == case.steps:
                break
            loss = loss_fn(model(x[index]), y[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            step += 1
    return (time.perf_counter() - start) / case.steps


def loader_task(case: Case) -> Task:
    """The built-in task's tensors and model as a user's task served by a DataLoader."""
    task = get_task(case.task)
    data = load_tensor_data(case.task, None, None)
    loader = DataLoader(
        TensorDataset(data.x_train, data.y_train), batch_size=case.batch_size, shuffle=True
    )
    return Task(name=f"{case.task}-loader", model=task.build_model, train=loader, steps=1)


def engine(case: Case, seed: int) -> float:
    """Seconds per training step of `lrlab.engine.train_run` (its ``train_time``)."""
    config = RunConfig(
        task=case.task if not case.loader else f"{case.task}-loader",
        optimizer=case.optimizer,
        lr=case.lr,
        schedule=case.schedule,
        steps=case.steps,
        batch_size=None if case.loader else case.batch_size,
        seed=seed,
    )
    record = train_run(config, task=loader_task(case) if case.loader else None)
    return record.train_time / record.steps


@dataclass(frozen=True)
class Timing:
    """Two sides timed over rounds: seconds (per step) of the baseline and of the candidate
    each round, and the per-round ratios candidate / baseline."""

    baselines: list[float]
    candidates: list[float]
    ratios: list[float]

    @property
    def baseline(self) -> float:
        return statistics.median(self.baselines)

    @property
    def candidate(self) -> float:
        return statistics.median(self.candidates)

    @property
    def ratio(self) -> float:
        return statistics.median(self.ratios)

    def quartiles(self) -> tuple[float, float]:
        if len(self.ratios) < 2:
            return self.ratios[0], self.ratios[0]
        q1, _, q3 = statistics.quantiles(self.ratios, n=4)
        return q1, q3


def alternate(
    baseline: Callable[[int], float], candidate: Callable[[int], float], rounds: int
) -> Timing:
    """``baseline(round)`` against ``candidate(round)`` (each returning seconds), after a
    warm-up of each (data cached, kernels and allocator warm), alternating which goes first
    round by round so drift in the machine's load hits both alike."""
    candidate(0)
    baseline(0)
    timing = Timing([], [], [])
    for round_ in range(rounds):
        if round_ % 2:
            c, b = candidate(round_), baseline(round_)
        else:
            b, c = baseline(round_), candidate(round_)
        timing.ratios.append(c / b)
        timing.baselines.append(b)
        timing.candidates.append(c)
    return timing


def time_case(case: Case, rounds: int) -> Timing:
    """The engine (candidate) against the plain loop (baseline) on ``case``."""
    return alternate(lambda seed: plain_loop(case, seed), lambda seed: engine(case, seed), rounds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"torch {torch.__version__}, {args.threads} thread(s), {args.rounds} rounds, "
        "median of per-round ratios (engine / plain loop)"
    )
    print(
        f"{'case':58s} {'plain ms/step':>13s} {'engine ms/step':>14s} {'ratio':>6s} "
        f"{'ratio IQR':>13s} goal"
    )
    for case in CASES:
        timing = time_case(case, args.rounds)
        label = (
            f"{case.task} b{case.batch_size} {case.optimizer}"
            + (f" {case.schedule}" if case.schedule else "")
            + (" DataLoader" if case.loader else "")
        )
        goal = f"<= {case.goal}" if case.goal else "report"
        q1, q3 = timing.quartiles()
        print(
            f"{label:58s} {timing.baseline * 1e3:13.4f} "
            f"{timing.candidate * 1e3:14.4f} {timing.ratio:6.3f} "
            f"[{q1:.3f}-{q3:.3f}] {goal}"
        )


if __name__ == "__main__":
    main()
