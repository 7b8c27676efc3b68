"""Step time of a run in bfloat16 autocast (``precision="bf16"``) against float32, on this CPU.

Both sides are `lrlab.engine.train_run` on the same task, model, batch, optimizer and seed,
differing only in ``precision``; timed alternately in one process, several rounds, the median
of the per-round ratios reported (shared machines are noisy; a ratio measured side by side is
what holds). The time is the run's ``train_time`` per step (evaluation left out).

    .venv/bin/python benchmarks/bf16_speed.py                     # the default cases
    .venv/bin/python benchmarks/bf16_speed.py --rounds 9 --case lm:default:32:100

A case is ``TASK:MODEL:BATCH:STEPS`` (``default``: the task's model). The default cases are
mnist5k's MLP and CNN, and the ``lm`` task's transformer where that task exists. Whether
bfloat16 is faster depends on the CPU: without native bfloat16 arithmetic (AVX512-BF16, AMX)
PyTorch converts to and from float32 around every matrix product, and autocast's casts cost
more than they save on small models.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

import torch
from engine_overhead import alternate

from lrlab.engine import train_run
from lrlab.record import RunConfig
from lrlab.tasks import TASKS


@dataclass(frozen=True)
class Case:
    task: str
    model: str | None
    batch_size: int
    steps: int

    @classmethod
    def parse(cls, text: str) -> Case:
        task, model, batch, steps = text.split(":")
        return cls(task, None if model == "default" else model, int(batch), int(steps))

    @property
    def label(self) -> str:
        return f"{self.task} {self.model or 'default'} b{self.batch_size}"

    def config(self, seed: int, **options: Any) -> RunConfig:
        """The case's run (Adam at its default LR) with the training ``options``."""
        return RunConfig(
            task=self.task,
            optimizer="adam",
            model=self.model,
            batch_size=self.batch_size,
            steps=self.steps,
            seed=seed,
            **options,
        )


def default_cases() -> list[Case]:
    cases = [Case("mnist5k", "mlp", 128, 150), Case("mnist5k", "cnn", 128, 40)]
    if "lm" in TASKS:
        cases.append(Case("lm", None, 32, 60))
    return cases


def step_time(case: Case, precision: str, seed: int) -> float:
    """Seconds per training step of one run in ``precision``."""
    record = train_run(case.config(seed, precision=precision))
    return record.train_time / record.steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--case", action="append", default=[], metavar="TASK:MODEL:BATCH:STEPS")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cases = [Case.parse(text) for text in args.case] or default_cases()
    print(
        f"torch {torch.__version__}, {args.threads} thread(s), {args.rounds} rounds, "
        "median of per-round ratios (bf16 / fp32 step time)"
    )
    print(f"{'case':28s} {'fp32 ms/step':>12s} {'bf16 ms/step':>12s} {'ratio':>6s} ratio IQR")
    for case in cases:
        timing = alternate(
            lambda seed, case=case: step_time(case, "fp32", seed),
            lambda seed, case=case: step_time(case, "bf16", seed),
            args.rounds,
        )
        q1, q3 = timing.quartiles()
        print(
            f"{case.label:28s} {timing.baseline * 1e3:12.3f} {timing.candidate * 1e3:12.3f} "
            f"{timing.ratio:6.3f} [{q1:.3f}-{q3:.3f}]"
        )


if __name__ == "__main__":
    main()
