"""What a range test costs: `lrlab.find` for 100 steps (snapshot and restore included) against
100 steps of a plain hand-written training loop on the same model, batches and optimizer.

The two are timed alternately in one process, several rounds, and the median of the per-round
ratios is reported (shared machines are noisy; a ratio measured side by side is what holds).
The range test runs all its steps (``diverge=None``, an LR ramp that stays trainable) and no
LipschitzLR pass; the plain loop is the minimal one: forward, loss, zero_grad, backward, step.

    .venv/bin/python benchmarks/range_test_overhead.py              # mnist5k b128, iris b5
    .venv/bin/python benchmarks/range_test_overhead.py --rounds 21
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from lrlab.finder import find
from lrlab.finder.state import Snapshot
from lrlab.optimizers import make_optimizer
from lrlab.tasks import get_task, load_task_data
from lrlab.tasks.task import loss_function

STEPS = 100


@dataclass(frozen=True)
class Case:
    task: str
    batch_size: int
    optimizer: str
    goal: float | None = None


CASES = [
    Case("mnist5k", 128, "sgd", goal=1.10),
    Case("mnist5k", 128, "adam", goal=1.10),
    Case("iris", 5, "sgd"),
]


def setup(case: Case, seed: int = 0) -> tuple[nn.Module, torch.optim.Optimizer, list[Any]]:
    task = get_task(case.task)
    data = load_task_data(case.task, None, None)
    torch.manual_seed(seed)
    model = task.build_model()
    optimizer = make_optimizer(case.optimizer, model.parameters())
    generator = torch.Generator().manual_seed(seed)
    batches: list[Any] = []
    while len(batches) < STEPS:
        order = torch.randperm(data.train_size, generator=generator)
        chunks = torch.split(order, case.batch_size)
        batches += [(data.x_train[i], data.y_train[i]) for i in chunks]
    return model, optimizer, batches[:STEPS]


def plain(
    model: nn.Module, optimizer: torch.optim.Optimizer, batches: list[Any], loss_fn: Any
) -> float:
    start = time.perf_counter()
    for x, y in batches:
        loss = loss_fn(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return time.perf_counter() - start


def range_test(
    model: nn.Module, optimizer: torch.optim.Optimizer, batches: list[Any], loss_fn: Any
) -> float:
    start = time.perf_counter()
    find(model, optimizer, batches, loss_fn, steps=STEPS, start=1e-6, end=1e-2, diverge=None)
    return time.perf_counter() - start


def snapshot_restore(model: nn.Module, optimizer: torch.optim.Optimizer) -> float:
    start = time.perf_counter()
    Snapshot(model, optimizer).restore()
    return time.perf_counter() - start


def measure(case: Case, rounds: int) -> dict[str, float]:
    loss_fn = loss_function(get_task(case.task).loss)
    model, optimizer, batches = setup(case)
    plain(model, optimizer, batches, loss_fn)  # warm-up, and optimizer state like a real run's
    ratios, steps, snapshots = [], [], []
    for round_ in range(rounds):
        order = (plain, range_test) if round_ % 2 == 0 else (range_test, plain)
        times = {f.__name__: f(model, optimizer, batches, loss_fn) for f in order}
        ratios.append(times["range_test"] / times["plain"])
        steps.append(times["plain"] / STEPS)
        snapshots.append(snapshot_restore(model, optimizer))
    return {
        "ratio": statistics.median(ratios),
        "low": min(ratios),
        "high": max(ratios),
        "step_ms": 1e3 * statistics.median(steps),
        "snapshot_steps": statistics.median(snapshots) / statistics.median(steps),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"{STEPS}-step range test / {STEPS} plain steps, median of {args.rounds} alternated "
        f"rounds, {args.threads} thread(s)"
    )
    for case in CASES:
        result = measure(case, args.rounds)
        goal = f"  goal <= {case.goal}" if case.goal else ""
        print(
            f"{case.task} b{case.batch_size} {case.optimizer}: ratio {result['ratio']:.3f} "
            f"[{result['low']:.3f}-{result['high']:.3f}], plain step {result['step_ms']:.2f} ms, "
            f"snapshot + restore = {result['snapshot_steps']:.2f} steps{goal}"
        )


if __name__ == "__main__":
    main()
