"""``lrlab run TASK --optimizer NAME``: train one run with a progress bar and a summary."""

from __future__ import annotations

import argparse
import math
import sys
from typing import TYPE_CHECKING, Any

from lrlab.cli.common import (
    add_threads_argument,
    add_training_arguments,
    parse_key_values,
    set_threads,
    training_options,
    writing,
)

if TYPE_CHECKING:
    from lrlab.record import EpochStats, RunConfig, RunRecord


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "run",
        help="train a task with an optimizer and an LR schedule or controller",
        description="Train one run and print a summary; --json writes the full record "
        "(per-step loss and LR, per-epoch metrics, wall time).",
    )
    parser.add_argument(
        "task",
        metavar="TASK",
        help="a task from `lrlab tasks`, or your own: path/to/file.py:function",
    )
    parser.add_argument(
        "--optimizer",
        required=True,
        metavar="NAME",
        help="sgd, momentum, nesterov, ema-momentum, keras-momentum, adagrad, rmsprop, adam, "
        "adamw; with lrlab[peers]: sgd-schedulefree, prodigy, dadapt-adam",
    )
    parser.add_argument(
        "--lr",
        type=float,
        metavar="X",
        help="base LR (default: the schedule's lr, else the optimizer's default)",
    )
    parser.add_argument(
        "--schedule",
        metavar="SPEC",
        help="an LR schedule, e.g. 'cosine(lr=0.1, steps=1000)' (default: constant)",
    )
    parser.add_argument(
        "--optimizer-arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra optimizer argument, e.g. momentum=0.5 (repeatable)",
    )
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--epochs", type=int, metavar="N", help="epochs (default: the task's)")
    budget.add_argument("--steps", type=int, metavar="N", help="optimizer steps instead of epochs")
    parser.add_argument("--batch-size", type=int, metavar="B", help="default: the task's")
    parser.add_argument("--seed", type=int, default=0, metavar="S", help="default 0")
    parser.add_argument("--model", metavar="NAME", help="one of the task's models")
    parser.add_argument(
        "--split",
        metavar="NAME",
        help="holdout (default) or, where offered, all (train on everything)",
    )
    parser.add_argument(
        "--sampling",
        choices=("shuffle", "replacement"),
        help="shuffled epochs or seed 003's sampling with replacement",
    )
    parser.add_argument(
        "--data-dir",
        metavar="DIR",
        help="where mnist, fashion-mnist and cifar10 live (default $LRLAB_DATA)",
    )
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda", "auto"))
    add_training_arguments(parser)
    add_threads_argument(parser)
    parser.add_argument("--json", metavar="FILE", help="write the full run record as JSON")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from lrlab.validate import check_output_path

    json_path = check_output_path("", "json", args.json) if args.json is not None else None
    optimizer_args = parse_key_values(args.optimizer_arg, "--optimizer-arg")
    set_threads(args.threads)
    from lrlab.api import train

    bar = None if args.quiet else ProgressBar()
    record = train(
        args.task,
        optimizer=args.optimizer,
        lr=args.lr,
        schedule=args.schedule,
        optimizer_args=optimizer_args,
        epochs=args.epochs,
        steps=args.steps,
        batch_size=args.batch_size,
        seed=args.seed,
        model=args.model,
        split=args.split,
        sampling=args.sampling,
        device=args.device,
        data_dir=args.data_dir,
        observer=bar,
        **training_options(args),
    )
    if bar is not None:
        bar.close()
    ran = record.config.schedule
    if args.schedule is not None and ran is not None and ran != args.schedule.strip():
        print(
            f"{args.schedule.strip()} ran as {ran} (its horizon is the run's length)",
            file=sys.stderr,
        )
    print(summary(record))
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        with writing(json_path):
            json_path.write_text(record.to_json())
        print(f"wrote {json_path}", file=sys.stderr)
    return 0


def _fmt(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}g}"


def summary(record: RunRecord) -> str:
    """A few lines a person reads after a run."""
    config = record.config
    lines = [
        f"{record.task_name or config.task} / {config.optimizer}"
        + (f" / {config.schedule}" if config.schedule else "")
        + f" / seed {config.seed}: {record.status}"
        + (f" at step {record.diverged_at}" if record.diverged_at is not None else "")
    ]
    epochs = len(record.epochs)
    lines.append(
        f"  {record.steps} steps, {epochs} epochs, {record.wall_time:.2f} s "
        f"(training {record.train_time:.2f} s) on {record.device}"
    )
    if record.epochs:
        last = record.epochs[-1]
        which = "test" if last.test_loss is not None else "train"
        lines.append(
            f"  final {which} {record.metric} {_fmt(last.metric)}, best "
            f"{_fmt(record.best_metric)}, final train loss {_fmt(last.train_loss)}"
        )
    reached = record.steps_to_target
    if record.target is None:
        return "\n".join(lines)
    target = f"target {record.metric} {'>=' if record.higher_is_better else '<='} {record.target:g}"
    if reached is None:
        final = record.final_metric
        why = " (the metric is nan)" if final is not None and math.isnan(final) else ""
        lines.append(f"  {target}: not reached{why}")
    else:
        lines.append(
            f"  {target}: reached at step {reached} "
            f"({record.time_to_target or 0.0:.2f} s of training)"
        )
    return "\n".join(lines)


class ProgressBar:
    """A tqdm bar over steps, showing the last epoch's loss and metric and the current LR."""

    def __init__(self) -> None:
        self._bar: Any = None

    def on_start(self, config: RunConfig, total_steps: int, steps_per_epoch: int) -> None:
        from tqdm import tqdm

        self._bar = tqdm(
            total=total_steps,
            unit="step",
            file=sys.stderr,
            mininterval=0.25,
            desc=f"{config.task} {config.optimizer}",
            dynamic_ncols=True,
        )

    def on_step(self, step: int, loss: float | None, lr: float) -> None:
        self._bar.update(1)

    def on_epoch(self, stats: EpochStats) -> None:
        metric = stats.metric
        self._bar.set_postfix_str(
            f"epoch {stats.epoch + 1} loss {_fmt(stats.train_loss)} "
            f"metric {_fmt(metric)} lr {stats.lr:.3g}",
            refresh=False,
        )
        # On CUDA losses are read in blocks, so on_step is not called every step.
        self._bar.n = stats.step

    def close(self) -> None:
        if self._bar is not None:
            self._bar.refresh()
            self._bar.close()
