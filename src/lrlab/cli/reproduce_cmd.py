"""``lrlab reproduce SEED``: run a source document's experiment over seeds and write a report
with the published numbers beside lrlab's distribution."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from lrlab.cli.common import add_vectorize_argument
from lrlab.studies import NAMES

SEEDS = NAMES


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "reproduce",
        help="reproduce the source documents' experiments beside their published numbers",
        description="Run a source document's experiment over seeds, store every run in "
        "OUT/reproduce.sqlite (a rerun skips finished runs) and write OUT/report.md and its "
        "plots: the published numbers beside lrlab's median [min-max] and a verdict. The "
        "verdict lines are printed at the end; seed-002 alone prints its 40 lines in the "
        "seed's own format on stdout and its verdict on stderr.",
    )
    parser.add_argument("seed", choices=(*SEEDS, "all"), help="which experiment (all: every one)")
    parser.add_argument("--data-dir", metavar="DIR", help="where MNIST / CIFAR-10 files are")
    parser.add_argument(
        "--out", default="reproduce", metavar="DIR", help="report, plots and store (reproduce)"
    )
    parser.add_argument(
        "--seeds",
        type=int,
        metavar="N",
        help="seeds 0..N-1 for every experiment (default: 5, seed-000 20)",
    )
    parser.add_argument(
        "--epochs",
        type=int,
        metavar="N",
        help="override every experiment's epochs (seed-003: N epochs instead of 2000 steps)",
    )
    parser.add_argument(
        "--steps",
        type=int,
        metavar="N",
        help="seed-003's iterations (default 2000) and seed-004's steps per run (default 240)",
    )
    parser.add_argument(
        "--full",
        action="store_true",
        help="the published budgets where the default is a CPU one (seed-004: the paper's 20 "
        "epochs of 235 steps, for a GPU: --device is not needed, runs use cuda when present)",
    )
    parser.add_argument(
        "--workers", type=int, metavar="K", help="parallel runs (default: CPU count)"
    )
    add_vectorize_argument(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from lrlab.progress import SweepProgress
    from lrlab.studies import seed002
    from lrlab.studies.experiments import EXPERIMENTS
    from lrlab.studies.runner import Options, reproduce
    from lrlab.validate import MAX_SEEDS, check_input_dir, check_int, check_output_path

    if args.seeds is not None:
        check_int("", "seeds", args.seeds, minimum=1, maximum=MAX_SEEDS)
    if args.data_dir is not None:
        check_input_dir("", "data_dir", args.data_dir)
    options = Options(
        vectorize=args.vectorize == "on",
        out=check_output_path("", "out", args.out, directory=True),
        seeds=args.seeds,
        epochs=args.epochs,
        steps=args.steps,
        workers=args.workers if args.workers is not None else (os.cpu_count() or 1),
        data_dir=args.data_dir,
        full=args.full,
    )
    names = list(EXPERIMENTS) if args.seed == "all" else [args.seed]
    only_002 = names == ["seed-002"]
    if only_002:
        for epoch in seed002.run():
            sys.stdout.write(epoch.line() + "\n")
        sys.stdout.flush()
    result = reproduce(
        [EXPERIMENTS[name] for name in names],
        options,
        SweepProgress(verbose=False, label="reproduce: "),
    )
    verdicts = sys.stderr if only_002 else sys.stdout
    for section in result.sections:
        for line in section.verdicts:
            print(line, file=verdicts)
    print(
        f"report: {result.report} ({result.ran} runs now, {result.total - result.ran} from "
        f"the store, {result.elapsed:.0f} s)",
        file=sys.stderr,
    )
    return 0
