"""``lrlab report --db FILE``: regenerate the tables and plots from the store alone."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from lrlab.cli.common import report_folder, write_and_show_report


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "report",
        help="regenerate the ranking, tables and plots from a run store",
        description="Read every run in the store and write report.md, summary.csv, runs.csv "
        "and the PNG plots; print the ranking.",
    )
    parser.add_argument("--db", required=True, metavar="FILE", help="the run store")
    parser.add_argument("--out", metavar="DIR", help="report folder (default: next to --db)")
    parser.add_argument(
        "--task", metavar="TASK", help="only this task's runs (its name or its file.py:function)"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from lrlab.store import Store
    from lrlab.validate import check_output_path

    db = Path(args.db)
    if not db.is_file():  # (a FIFO or a device is never opened: it could block)
        raise ValueError(f"--db {db}: {'not a plain file' if db.exists() else 'no such file'}")
    out = check_output_path(
        "", "out", args.out if args.out is not None else report_folder(db), directory=True
    )
    with Store(db, readonly=True) as store:
        runs = store.runs()
    if args.task is not None:
        runs = [
            run
            for run in runs
            if args.task in (run.config.task, run.record.task_name if run.record else None)
        ]
    if not runs:
        raise ValueError(f"--db {db}: no runs" + (f" of task {args.task}" if args.task else ""))
    return write_and_show_report(runs, db, out)
