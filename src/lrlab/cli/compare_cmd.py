"""``lrlab compare TASK``: optimizers x schedules x seeds, stored, resumable, ranked."""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from typing import Any

from lrlab.cli.common import (
    add_optimistic_argument,
    add_run_arguments,
    add_threads_argument,
    add_training_arguments,
    add_vectorize_argument,
    parse_lr_grid,
    parse_method,
    parse_runtime_env,
    report_folder,
    set_threads,
    training_options,
    write_and_show_report,
)


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "compare",
        help="run optimizers x schedules x seeds on a task, store every run, rank them",
        description="Run the grid, storing each finished run in a SQLite file; the same command "
        "again skips finished runs (a killed sweep resumes) and retries failed ones. Then print "
        "the ranking and write the report (Markdown, CSV, PNG plots). A task of your own is "
        "checked on one batch first.",
        epilog="exit status: 0 every run finished (a diverged run is a result); 1 some runs "
        "failed (an error ended them: each is stored with its error, the report is written, and "
        "a line on stderr says how many and why); 2 the command, the task or the store is wrong "
        "(one line on stderr, nothing ran); 130 interrupted (Ctrl-C: the runs finished so far "
        "are stored, the same command resumes).",
    )
    parser.add_argument(
        "task",
        metavar="TASK",
        help="a task from `lrlab tasks`, or your own: path/to/file.py:function",
    )
    parser.add_argument(
        "--optimizers",
        default="",
        metavar="A,B,C",
        help="comma-separated optimizer names, e.g. sgd,momentum,adagrad,adam",
    )
    parser.add_argument(
        "--schedules",
        default="none",
        metavar="'S1;S2'",
        help="semicolon-separated schedule specs; 'none' is a constant LR, "
        "'lipschitz(...)' is LipschitzLR (default: none)",
    )
    parser.add_argument(
        "--method",
        action="append",
        default=[],
        metavar="OPT:SCHEDULE",
        help="an extra (optimizer, schedule) pair beyond the grid, e.g. "
        "'sgd:lipschitz(bound=smooth)' (repeatable)",
    )
    parser.add_argument(
        "--seeds",
        type=int,
        default=5,
        metavar="N",
        help="tuning seeds 0..N-1, on which each tuned method's LR grid runs (5)",
    )
    parser.add_argument(
        "--holdout-seeds",
        type=int,
        default=5,
        metavar="N",
        help="fresh seeds 1000..1000+N-1, on which every method runs at its chosen LR and is "
        "scored (5)",
    )
    add_optimistic_argument(parser)
    parser.add_argument(
        "--db", default="lrlab.sqlite", metavar="FILE", help="the run store (default lrlab.sqlite)"
    )
    parser.add_argument(
        "--lr-grid",
        metavar="GRID",
        help="tune each optimizer's LR: '1e-3,1e-2,0.1' or LOW:HIGH:COUNT (log)",
    )
    add_run_arguments(parser)
    add_training_arguments(parser)
    parser.add_argument(
        "--workers", type=int, default=None, metavar="K", help="parallel runs (default: CPU count)"
    )
    add_threads_argument(parser)
    parser.add_argument("--executor", default="local", choices=("local", "ray"))
    parser.add_argument(
        "--address",
        metavar="ADDR",
        help="Ray cluster address host:port (--executor ray; default: a local Ray instance)",
    )
    parser.add_argument(
        "--runtime-env",
        metavar="JSON",
        help='the Ray job\'s runtime_env as JSON, e.g. \'{"pip": ["lrlab[ray]"]}\' '
        "(--executor ray; lrlab adds your task's and plugins' folders to its py_modules)",
    )
    parser.add_argument("--out", metavar="DIR", help="report folder (default: next to --db)")
    add_vectorize_argument(parser)
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="a line per finished run, and why runs that train alone are not vectorised",
    )
    parser.set_defaults(handler=run)


def _schedules(text: str) -> tuple[str | None, ...]:
    items = [item.strip() for item in text.split(";") if item.strip()]
    if not items:
        raise ValueError(f"--schedules must name at least one schedule, got --schedules={text!r}")
    return tuple(None if item.lower() in ("none", "constant") else item for item in items)


RUN_OPTIONS = ("epochs", "steps", "batch_size", "model", "split", "sampling", "device", "data_dir")


def run(args: argparse.Namespace) -> int:
    from lrlab.api import compare
    from lrlab.validate import MAX_SEEDS, check_int, check_output_path

    # Everything the command line can get wrong, before the task is even loaded.
    check_int("", "seeds", args.seeds, minimum=1, maximum=MAX_SEEDS)
    db = check_output_path("", "db", args.db)
    out = check_output_path(
        "", "out", args.out if args.out is not None else report_folder(db), directory=True
    )
    set_threads(args.threads)
    from lrlab.progress import SweepProgress

    progress = SweepProgress(verbose=args.verbose, label=f"{args.task}: ", runs="runs")
    start = time.perf_counter()
    try:
        result = compare(
            args.task,
            optimizers=[o.strip() for o in args.optimizers.split(",") if o.strip()],
            schedules=_schedules(args.schedules),
            methods=[parse_method(text) for text in args.method],
            seeds=args.seeds,
            holdout_seeds=args.holdout_seeds,
            optimistic=args.optimistic,
            lr_grid=parse_lr_grid(args.lr_grid) if args.lr_grid else None,
            db=db,
            workers=args.workers,
            threads=args.threads or 1,
            executor=args.executor,
            address=args.address,
            runtime_env=parse_runtime_env(args.runtime_env),
            progress=progress,
            vectorize=args.vectorize == "on",
            **{name: getattr(args, name) for name in RUN_OPTIONS},
            **training_options(args),
        )
    except KeyboardInterrupt:
        progress.close()
        print(
            f"interrupted: {progress.finished} runs stored in {db}; run the same "
            "command again to resume",
            file=sys.stderr,
        )
        return 130
    elapsed = f"({time.perf_counter() - start:.0f} s)"
    write_and_show_report(result.runs, db, out, elapsed, optimistic=args.optimistic)
    failed = result.failed
    if not failed:
        return 0
    errors = Counter(run.error or "no error recorded" for run in failed)
    error = errors.most_common(1)[0][0]
    which = f"all with {error}" if len(errors) == 1 else f"{len(errors)} errors, e.g. {error}"
    print(
        f"lrlab: {len(failed)} of {len(result.runs)} runs failed ({which}; each in runs.csv); "
        "the same command again retries them",
        file=sys.stderr,
    )
    return 1
