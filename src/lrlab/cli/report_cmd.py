"""``lrlab report --db FILE [--db FILE ...]``: regenerate the tables and plots from the
stores alone; over two or more tasks with a target, with performance profiles."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from lrlab.cli.common import add_optimistic_argument, report_folder, write_and_show_report


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "report",
        help="regenerate the ranking, tables and plots from run stores",
        description="Read every run in the stores and write report.md, summary.csv, runs.csv "
        "and the PNG plots; print the ranking. Over two or more tasks with a target (from one "
        "store or several), also the performance profiles of the methods (AlgoPerf's score, "
        "speedups over --baseline).",
    )
    parser.add_argument(
        "--db",
        required=True,
        action="append",
        metavar="FILE",
        help="a run store (repeat to report several together; a run in two stores counts once)",
    )
    parser.add_argument(
        "--out", metavar="DIR", help="report folder (default: next to the first --db)"
    )
    parser.add_argument(
        "--task", metavar="TASK", help="only this task's runs (its name or its file.py:function)"
    )
    parser.add_argument(
        "--baseline",
        metavar="METHOD",
        help="the method the profiles' speedups are over, as the profile table names it "
        "(default: the tuned plain-sgd method that reaches the target on the most tasks; if "
        "none reaches any, the tuned method that reaches the most)",
    )
    add_optimistic_argument(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from lrlab.store import Store
    from lrlab.validate import check_output_path

    dbs = [Path(db) for db in args.db]
    for db in dbs:
        if not db.is_file():  # (a FIFO or a device is never opened: it could block)
            raise ValueError(f"--db {db}: {'not a plain file' if db.exists() else 'no such file'}")
    out = check_output_path(
        "", "out", args.out if args.out is not None else report_folder(dbs[0]), directory=True
    )
    runs = []
    seen: set[str] = set()
    for db in dbs:
        with Store(db, readonly=True) as store:
            for stored in store.runs():
                key = stored.config.key()
                if key not in seen:  # the same run in two stores counts once (the first)
                    seen.add(key)
                    runs.append(stored)
    if args.task is not None:
        runs = [
            run
            for run in runs
            if args.task in (run.config.task, run.record.task_name if run.record else None)
        ]
    if not runs:
        where = ", ".join(str(db) for db in dbs)
        raise ValueError(f"--db {where}: no runs" + (f" of task {args.task}" if args.task else ""))
    return write_and_show_report(runs, dbs, out, baseline=args.baseline, optimistic=args.optimistic)
