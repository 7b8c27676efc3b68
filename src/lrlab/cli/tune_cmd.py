"""``lrlab tune TASK``: the LR (or a schedule's peak LR) a tuned grid would choose, at a fifth
of its cost, chosen on the validation split; every trial stored, a killed tune resumes."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from lrlab.cli.common import (
    add_run_arguments,
    add_threads_argument,
    add_vectorize_argument,
    parse_key_values,
    parse_runtime_env,
    plot_path,
    set_threads,
    writing,
)
from lrlab.cli.compare_cmd import RUN_OPTIONS


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "tune",
        help="tune an optimizer's LR (or a schedule's peak LR) with short raced runs",
        description="A range test brackets the search; then the bracket's LRs race in rungs "
        "of successive halving (complete runs of 1/9, 1/3 and the whole budget, the schedule "
        "compressed to each), trained together as vectorised groups and scored on the "
        "validation split only; the answer is the centre of the LRs within noise of the "
        "best at full budget. Prints the LR, the schedule spec to paste, the evidence and "
        "the cost. Every trial is stored in --db: the same command again resumes.",
    )
    parser.add_argument(
        "task", metavar="TASK", help="a task from `lrlab tasks`, or your own: file.py:function"
    )
    parser.add_argument("--optimizer", default="sgd", metavar="NAME", help="default sgd")
    parser.add_argument(
        "--optimizer-arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra optimizer argument, e.g. momentum=0.5 (repeatable; the LR is tuned)",
    )
    parser.add_argument(
        "--schedule",
        default="constant",
        metavar="SPEC",
        help="the schedule whose peak LR is tuned, its LR left out or ?: constant (default), "
        "one_cycle, 'cosine(warmup=50)', 'wsd(decay=0.2)', 'cyclic(step_size=200)' "
        "(max_lr tuned, base max_lr/4)",
    )
    parser.add_argument(
        "--budget",
        type=float,
        default=7.0,
        metavar="RUNS",
        help="training steps tune may spend, in full runs of the task (7: a fifth of a 7-LR x "
        "5-seed grid); the plan takes about 5.5, the rest widens the search at an edge",
    )
    parser.add_argument("--seed", type=int, default=0, metavar="S", help="the trials' seed (0)")
    parser.add_argument(
        "--seeds",
        type=int,
        default=1,
        metavar="N",
        help="trials per LR (seeds S..S+N-1): noise from seeds instead of neighbouring LRs, at "
        "N times the cost (1)",
    )
    parser.add_argument(
        "--db",
        default="lrlab-tune.sqlite",
        metavar="FILE",
        help="the run store every trial goes into (default lrlab-tune.sqlite)",
    )
    parser.add_argument(
        "--plot", metavar="FILE", help="write the evidence chart (.png, .pdf, .svg)"
    )
    parser.add_argument("--json", metavar="FILE", help="write the result as JSON")
    add_run_arguments(parser, "of a full run")
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="K",
        help="processes per rung (1: each rung trains here as one vectorised group)",
    )
    add_threads_argument(parser)
    parser.add_argument("--executor", default="local", choices=("local", "ray"))
    parser.add_argument("--address", metavar="ADDR", help="Ray cluster address (--executor ray)")
    parser.add_argument(
        "--runtime-env", metavar="JSON", help="the Ray job's runtime_env as JSON (--executor ray)"
    )
    add_vectorize_argument(parser)
    parser.add_argument("--verbose", action="store_true", help="a line per finished trial")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from lrlab.tasks import get_task
    from lrlab.validate import check_output_path

    plot = Path(plot_path(args.plot)) if args.plot is not None else None
    json_path = check_output_path("", "json", args.json) if args.json is not None else None
    db = check_output_path("", "db", args.db)
    get_task(args.task)  # an unknown task or a bad reference: one line, before anything
    set_threads(args.threads)
    from lrlab.api import tune
    from lrlab.progress import SweepProgress

    progress = SweepProgress(verbose=args.verbose, label="tune: ", runs="trials")
    options = {name: getattr(args, name) for name in RUN_OPTIONS}
    try:
        result = tune(
            args.task,
            args.optimizer,
            schedule=args.schedule,
            budget=args.budget,
            seed=args.seed,
            seeds=args.seeds,
            db=db,
            workers=args.workers,
            threads=args.threads or 1,
            executor=args.executor,
            address=args.address,
            runtime_env=parse_runtime_env(args.runtime_env),
            progress=progress,
            vectorize=args.vectorize == "on",
            optimizer_args=parse_key_values(args.optimizer_arg, "--optimizer-arg"),
            **options,
        )
    except KeyboardInterrupt:
        progress.close()
        print(
            f"interrupted: the finished trials are stored in {db}; run the same command again "
            "to resume",
            file=sys.stderr,
        )
        return 130
    print(result.summary())
    if plot is not None:
        from lrlab.plots import save_figure

        with writing(plot):
            save_figure(result.plot().figure, plot)
        print(f"wrote {plot}", file=sys.stderr)
    if json_path is not None:
        with writing(json_path):
            json_path.write_text(json.dumps(result.to_dict(), indent=1, allow_nan=False) + "\n")
        print(f"wrote {json_path}", file=sys.stderr)
    return 0
