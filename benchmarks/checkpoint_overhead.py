"""What mid-run checkpoints cost a run: at the default interval, and per checkpoint written.

Three measurements per case, all `lrlab.engine.train_run` on the same task, model, batch,
optimizer and seed, in one process:

1. **Always on**: a run with ``checkpoint_dir`` at the default interval (every
   ``DEFAULT_SECONDS`` = 60 s) against the same run without, timed alternately over rounds,
   the median of the per-round ratios of wall time (what checkpointing costs between
   writes: the clock read after each update, the epoch's generator state, looking for a
   checkpoint to resume from and deleting them at the end). The runs are shorter than the
   interval, so no write happens in them.
2. **A write**: the median seconds per checkpoint written, from runs writing one every
   ``--every`` updates (``record.extra["checkpoint"]``), and the checkpoint's size.
3. **At the default interval**: (1) plus one write per ``DEFAULT_SECONDS`` of training,
   as a share of a run's time (goal <= 2%). And the ratio measured directly with a write
   every ``--every`` updates, for scale.

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
from pathlib import Path

import torch
from bf16_speed import Case
from engine_overhead import alternate

from lrlab.engine import train_run
from lrlab.engine.checkpoint import DEFAULT_SECONDS
from lrlab.tasks import TASKS

GOAL = 0.02


def default_cases() -> list[Case]:
    cases = [Case("mnist5k", "mlp", 128, 600), Case("mnist5k", "cnn", 128, 80)]
    if "lm" in TASKS:
        cases.append(Case("lm", None, 32, 100))
    return cases


def run(case: Case, seed: int, folder: Path | None, every: int | None) -> tuple[float, dict]:
    """Wall seconds of one run, and its checkpoint summary."""
    config = case.config(
        seed, checkpoint_dir=None if folder is None else str(folder), checkpoint_every=every
    )
    start = time.perf_counter()
    record = train_run(config)
    return time.perf_counter() - start, record.extra.get("checkpoint", {})


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=11)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--every", type=int, default=25, help="updates between writes (2., 3.)")
    parser.add_argument("--case", action="append", default=[], metavar="TASK:MODEL:BATCH:STEPS")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cases = [Case.parse(text) for text in args.case] or default_cases()
    print(
        f"torch {torch.__version__}, {args.threads} thread(s), {args.rounds} rounds; "
        f"default interval {DEFAULT_SECONDS:g} s; medians"
    )
    print(
        f"{'case':24s} {'run s':>6s} {'always-on [IQR]':>24s} {'write ms':>8s} {'size KB':>7s} "
        f"{'at default':>10s} {f'every {args.every}':>9s} goal"
    )
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        for case in cases:
            always = alternate(
                lambda seed, case=case: run(case, seed, None, None)[0],
                lambda seed, case=case: run(case, seed, folder, None)[0],
                args.rounds,
            )
            often = alternate(
                lambda seed, case=case: run(case, seed, None, None)[0],
                lambda seed, case=case: run(case, seed, folder, args.every)[0],
                args.rounds,
            )
            writes = []
            for seed in range(args.rounds):
                info = run(case, seed, folder, args.every)[1]
                writes.append(info["seconds"] / info["writes"])
            write = statistics.median(writes)
            size = checkpoint_bytes(case, folder, args.every)
            at_default = always.ratio - 1 + write / DEFAULT_SECONDS
            q1, q3 = always.quartiles()
            spread = f"[{q1 - 1:+.1%} {q3 - 1:+.1%}]"
            print(
                f"{case.label:24s} {always.baseline:6.2f} {always.ratio - 1:+8.2%} {spread:>15s} "
                f"{write * 1e3:8.2f} {size / 1024:7.0f} {at_default:+10.2%} "
                f"{often.ratio - 1:+9.2%} <= {GOAL:.0%}"
            )


if __name__ == "__main__":
    main()
