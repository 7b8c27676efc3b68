"""``lrlab tasks``: the tasks and their defaults."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "tasks",
        help="list the tasks and their defaults",
        description="List the tasks: data, loss, metric, defaults.",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from lrlab.tasks import TASKS

    header = ["task", "loss", "metric", "batch", "budget", "target", "models", "data"]
    rows: list[list[str]] = []
    for task in TASKS.values():
        budget = f"{task.epochs} epochs" if task.epochs is not None else f"{task.steps} steps"
        data = "--data-dir" if task.needs_data_dir else "bundled"
        rows.append(
            [
                task.name,
                task.loss_name,
                task.metric_name,
                str(task.batch_size),
                budget,
                "-" if task.target is None else f"{task.target:g}",
                ",".join(task.models),
                data,
            ]
        )
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        sys.stdout.write(
            "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() + "\n"
        )
    sys.stdout.write("\n")
    for task in TASKS.values():
        sys.stdout.write(f"{task.name}: {task.summary}\n")
    sys.stdout.write(
        "\nYour own task: TASK may be path/to/file.py:function or package.module:function, "
        "the function returning an lrlab.Task (see examples/).\n"
    )
    return 0
