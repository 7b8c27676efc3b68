"""What mid-run checkpoints cost a run: at the default interval, and per checkpoint written.

Three measurements per case, all `lrlab.engine.train_run` on the same task, model, batch,
optimizer and seed, in one process:

1. **Always on**: a run with ``checkpoint_dir`` at the default interval (every
   ``DEFAULT_SECONDS`` = 60 s) against the same run without, timed alternately over rounds,
   the median of the per-round ratios of the process's CPU time (what checkpointing costs
   between writes: the clock read after each update, the epoch's generator state, looking
   for a checkpoint to resume from and deleting them at the end; CPU time, because this
   work is all CPU and wall time on a shared machine swings by more than it). The runs are
   shorter than the interval, so no write happens in them.
2. **A write**: the median wall seconds per checkpoint written (flushed to disk), from runs
   writing one every ``--every`` updates (``record.extra["checkpoint"]``), and its size.
3. **At the default interval**: one write per ``DEFAULT_SECONDS`` of training plus the work
   between writes timed directly (the clock read per update against the step's time, the
   per-run work), as a share of a run's time (goal <= 2%). The CPU-time ratio of (1) checks
   it (on a shared machine its spread is wider than the overhead), and the wall-time ratio
   with a write every ``--every`` updates gives the scale of a write.

    .venv/bin/python benchmarks/checkpoint_overhead.py
    .venv/bin/python benchmarks/checkpoint_overhead.py --rounds 9 --every 50

A case is ``TASK:MODEL:BATCH:STEPS`` (``default``: the task's model); the default cases are
mnist5k's MLP and CNN, and the ``lm`` task where it exists.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import tempfile
import time
import timeit
from pathlib import Path

import torch
from bf16_speed import Case
from engine_overhead import alternate

from lrlab.engine import train_run
from lrlab.engine.checkpoint import DEFAULT_SECONDS, Checkpoints
from lrlab.tasks import TASKS

GOAL = 0.02


def default_cases() -> list[Case]:
    cases = [Case("mnist5k", "mlp", 128, 600), Case("mnist5k", "cnn", 128, 80)]
    if "lm" in TASKS:
        cases.append(Case("lm", None, 32, 100))
    return cases


def run(case: Case, seed: int, folder: Path | None, every: int | None) -> tuple[float, float, dict]:
    """Wall and CPU seconds of one run, and its checkpoint summary."""
    config = case.config(
        seed, checkpoint_dir=None if folder is None else str(folder), checkpoint_every=every
    )
    start, cpu = time.perf_counter(), time.process_time()
    record = train_run(config)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    return wall, cpu, record.extra.get("checkpoint", {})


def checkpoint_bytes(case: Case, folder: Path, every: int) -> int:
    """The size of the checkpoint a run of ``case`` leaves after its update ``every``."""

    class Stop(Exception):
        pass

    class StopAfter:
        def on_start(self, *args: object) -> None: ...

        def on_epoch(self, stats: object) -> None: ...

        def on_step(self, step: int, loss: object, lr: object) -> None:
            if step == every:
                raise Stop

    config = case.config(0, checkpoint_dir=str(folder), checkpoint_every=every)
    with contextlib.suppress(Stop):
        train_run(config, observer=StopAfter())
    files = list(folder.glob("run-*.pt"))
    size = max(path.stat().st_size for path in files)
    for path in files:
        path.unlink()
    return size


def between_writes(folder: Path) -> tuple[float, float]:
    """Seconds of what checkpointing adds between writes, timed directly: per update (the
    clock read and the due check) and per run (looking for a checkpoint to resume from,
    deleting the run's at the end); the per-epoch generator state is a few tenths of a
    microsecond more."""
    checkpoints = Checkpoints(folder, "k" * 200)
    last = time.perf_counter()
    count = 200_000
    per_update = (
        timeit.timeit(lambda: checkpoints.due(7, time.perf_counter() - last), number=count) / count
    )

    def one_run() -> None:
        other = Checkpoints(folder, "x" * 200)
        other.load()
        other.clear()

    return per_update, timeit.timeit(one_run, number=2000) / 2000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=11)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--every", type=int, default=25, help="updates between writes (2., 3.)")
    parser.add_argument("--case", action="append", default=[], metavar="TASK:MODEL:BATCH:STEPS")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cases = [Case.parse(text) for text in args.case] or default_cases()
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        per_update, per_run = between_writes(folder)
        print(
            f"torch {torch.__version__}, {args.threads} thread(s), {args.rounds} rounds; "
            f"default interval {DEFAULT_SECONDS:g} s; medians. Between writes, timed "
            f"directly: {per_update * 1e6:.2f} us per update, {per_run * 1e6:.0f} us per run"
        )
        print(
            f"{'case':20s} {'ms/step':>7s} {'write ms':>8s} {'size KB':>7s} {'at default':>10s} "
            f"{'goal':>6s} | ratios: {'always-on CPU [IQR]':>25s} {f'every {args.every}':>9s}"
        )
        for case in cases:
            always = alternate(
                lambda seed, case=case: run(case, seed, None, None)[1],
                lambda seed, case=case: run(case, seed, folder, None)[1],
                args.rounds,
            )
            often = alternate(
                lambda seed, case=case: run(case, seed, None, None)[0],
                lambda seed, case=case: run(case, seed, folder, args.every)[0],
                args.rounds,
            )
            writes, steps = [], []
            for seed in range(args.rounds):
                wall, _, info = run(case, seed, folder, args.every)
                writes.append(info["seconds"] / info["writes"])
                steps.append((wall - info["seconds"]) / case.steps)
            write, step = statistics.median(writes), statistics.median(steps)
            size = checkpoint_bytes(case, folder, args.every)
            # One write per interval, the clock read every update, the per-run work spread
            # over a run of one interval.
            at_default = write / DEFAULT_SECONDS + per_update / step + per_run / DEFAULT_SECONDS
            q1, q3 = always.quartiles()
            spread = f"{always.ratio - 1:+.2%} [{q1 - 1:+.1%} {q3 - 1:+.1%}]"
            print(
                f"{case.label:20s} {step * 1e3:7.2f} {write * 1e3:8.2f} {size / 1024:7.0f} "
                f"{at_default:+10.3%} {f'<= {GOAL:.0%}':>6s} | {'':8s}{spread:>25s} "
                f"{often.ratio - 1:+9.2%}"
            )


if __name__ == "__main__":
    main()
