"""``lrlab study NAME``: the studies that are not source documents (those are ``lrlab
reproduce``), each a module of `lrlab.studies` that writes its own page.

The command is a registry: `STUDIES` holds one `Study` per name, with the function that adds
its options and the one that runs it; a new study adds its entry here. ``lrlab study NAME
[OPTIONS]`` parses in two steps: the name here, the options with the study's own parser,
built only when that study runs (or shows its ``--help``), so neither ``lrlab --help`` nor the
other studies import a study's module.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lrlab.cli.common import OneLineParser, parse_lr_grid, set_threads


@dataclass(frozen=True)
class Study:
    """One ``lrlab study NAME``: its one-line ``help``, the ``description`` its ``--help``
    prints, ``arguments`` adding its options to its parser, ``run`` running it from the
    parsed arguments (the exit code)."""

    name: str
    help: str
    description: str
    arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


def _names(text: str, option: str) -> list[str]:
    """A comma-separated list, empty items dropped; an empty list is an error."""
    names = [item.strip() for item in text.split(",") if item.strip()]
    if not names:
        raise ValueError(f"{option} must name at least one, got {option}={text!r}")
    return names


def _numbers(text: str, option: str) -> list[float]:
    try:
        return [float(item) for item in _names(text, option)]
    except ValueError:
        raise ValueError(
            f"{option} must be comma-separated numbers, got {option}={text!r}"
        ) from None


def _lr_finder_arguments(parser: argparse.ArgumentParser) -> None:
    from lrlab.studies import lr_finder as study  # (no torch at import: it loads lazily)

    parser.add_argument(
        "--tasks",
        default=",".join(study.TASKS),
        metavar="LIST",
        help=f"tasks or file.py:function references, comma-separated ({','.join(study.TASKS)})",
    )
    parser.add_argument(
        "--optimizers",
        default=",".join(study.OPTIMIZERS),
        metavar="LIST",
        help=f"comma-separated ({','.join(study.OPTIMIZERS)})",
    )
    parser.add_argument(
        "--seeds", type=int, default=study.SEEDS, metavar="N", help=f"seeds 0..N-1 ({study.SEEDS})"
    )
    parser.add_argument(
        "--lr-grid",
        default="1e-3:1:7",
        metavar="GRID",
        help="the tuned baseline's LRs: a comma list or LOW:HIGH:COUNT, log-spaced (1e-3:1:7)",
    )
    parser.add_argument(
        "--smoothing",
        default=",".join(f"{b:g}" for b in study.SMOOTHINGS),
        metavar="BETAS",
        help="EMA betas to read the rules at, comma-separated; the first is the test's own "
        f"({','.join(f'{b:g}' for b in study.SMOOTHINGS)})",
    )
    parser.add_argument(
        "--steps", type=int, metavar="N", help="every run's budget in steps (default: the task's)"
    )
    parser.add_argument(
        "--out",
        default="studies",
        metavar="DIR",
        help="where lr-finder.md and lr-finder/ go (studies; the repository's page: docs)",
    )
    parser.add_argument(
        "--db", metavar="FILE", help="the run store (default OUT/lr-finder/runs.sqlite)"
    )
    parser.add_argument(
        "--workers", type=int, metavar="K", help="parallel runs (default: CPU count)"
    )


def _run_lr_finder(args: argparse.Namespace) -> int:
    from lrlab.progress import SweepProgress
    from lrlab.studies.lr_finder import run_study
    from lrlab.validate import MAX_SEEDS, check_int, check_output_path

    check_int("", "seeds", args.seeds, minimum=1, maximum=MAX_SEEDS)
    out = check_output_path("", "out", args.out, directory=True)
    db = check_output_path("", "db", args.db) if args.db is not None else None
    set_threads(None)  # the range tests run here, one torch thread like every run
    page = run_study(
        Path(out),
        tasks=_names(args.tasks, "--tasks"),
        optimizers=_names(args.optimizers, "--optimizers"),
        seeds=args.seeds,
        lr_grid=parse_lr_grid(args.lr_grid),
        smoothings=_numbers(args.smoothing, "--smoothing"),
        steps=args.steps,
        workers=args.workers if args.workers is not None else (os.cpu_count() or 1),
        db=db,
        progress=SweepProgress(verbose=False, label="lr-finder: "),
        echo=lambda line: print(line, file=sys.stderr),
    )
    print(f"wrote {page}", file=sys.stderr)
    return 0


def _tune_arguments(parser: argparse.ArgumentParser) -> None:
    from lrlab.studies import tune as study  # (no torch at import: it loads lazily)

    parser.add_argument("--tasks", default=",".join(study.TASKS), metavar="LIST")
    parser.add_argument("--optimizers", default=",".join(study.OPTIMIZERS), metavar="LIST")
    parser.add_argument(
        "--schedules", default=",".join(study.SCHEDULES), metavar="LIST", help="constant,one_cycle"
    )
    parser.add_argument(
        "--seeds", type=int, default=study.SEEDS, metavar="N", help="the grid's tuning seeds"
    )
    parser.add_argument(
        "--holdout-seeds",
        type=int,
        default=study.HOLDOUT_SEEDS,
        metavar="M",
        help="fresh seeds 1000..1000+M-1, every number is scored on",
    )
    parser.add_argument("--lr-grid", default="1e-3:1:7", metavar="GRID", help="the grid's LRs")
    parser.add_argument("--steps", type=int, metavar="N", help="every run's budget in steps")
    parser.add_argument("--out", default="studies", metavar="DIR", help="where tune.md goes")
    parser.add_argument("--db", metavar="FILE", help="the run store (OUT/tune/runs.sqlite)")
    parser.add_argument("--workers", type=int, metavar="K", help="parallel runs (CPU count)")


def _run_tune(args: argparse.Namespace) -> int:
    from lrlab.progress import SweepProgress
    from lrlab.studies.tune import run_study
    from lrlab.validate import check_output_path

    out = check_output_path("", "out", args.out, directory=True)
    db = check_output_path("", "db", args.db) if args.db is not None else None
    set_threads(None)
    page = run_study(
        Path(out),
        tasks=_names(args.tasks, "--tasks"),
        optimizers=_names(args.optimizers, "--optimizers"),
        schedules=_names(args.schedules, "--schedules"),
        seeds=args.seeds,
        holdout_seeds=args.holdout_seeds,
        lr_grid=parse_lr_grid(args.lr_grid),
        steps=args.steps,
        workers=args.workers if args.workers is not None else (os.cpu_count() or 1),
        db=db,
        progress=SweepProgress(verbose=False, label="tune study: "),
        echo=lambda line: print(line, file=sys.stderr),
    )
    print(f"wrote {page}", file=sys.stderr)
    return 0


def _wsd_arguments(parser: argparse.ArgumentParser) -> None:
    from lrlab.studies import wsd as study

    parser.add_argument("--task", default=study.TASK, help=f"the task ({study.TASK})")
    parser.add_argument(
        "--optimizer", default=study.OPTIMIZER, help=f"the optimizer ({study.OPTIMIZER})"
    )
    parser.add_argument(
        "--budgets",
        default=",".join(map(str, study.BUDGETS)),
        metavar="LIST",
        help=f"the run lengths in steps ({','.join(map(str, study.BUDGETS))})",
    )
    parser.add_argument(
        "--seeds",
        type=int,
        default=study.SEEDS,
        metavar="N",
        help=f"tuning seeds 0..N-1, the peak LRs are chosen with ({study.SEEDS})",
    )
    parser.add_argument(
        "--holdout-seeds",
        type=int,
        default=study.HOLDOUT_SEEDS,
        metavar="M",
        help=f"fresh seeds 1000..1000+M-1, every number is scored on ({study.HOLDOUT_SEEDS})",
    )
    parser.add_argument(
        "--lr-grid",
        default=",".join(f"{v:g}" for v in study.LR_GRID),
        metavar="GRID",
        help="the peak LRs tried: a comma list or LOW:HIGH:COUNT, log-spaced",
    )
    parser.add_argument(
        "--warmup", type=int, default=study.WARMUP, metavar="N", help="warmup steps"
    )
    parser.add_argument(
        "--no-branch",
        action="store_true",
        help="skip the branched runs (continued from the longest run's checkpoints)",
    )
    parser.add_argument("--out", default="studies", metavar="DIR", help="where wsd.md goes")
    parser.add_argument("--db", metavar="FILE", help="the run store (OUT/wsd/runs.sqlite)")
    parser.add_argument("--workers", type=int, metavar="K", help="parallel runs (CPU count)")


def _run_wsd(args: argparse.Namespace) -> int:
    from lrlab.progress import SweepProgress
    from lrlab.studies.wsd import run_study
    from lrlab.validate import check_output_path

    out = check_output_path("", "out", args.out, directory=True)
    db = check_output_path("", "db", args.db) if args.db is not None else None
    set_threads(None)
    budgets: list[Any] = [  # (a fraction goes on, to be refused naming budgets)
        int(v) if math.isfinite(v) and v == int(v) else v
        for v in _numbers(args.budgets, "--budgets")
    ]
    page = run_study(
        Path(out),
        task=args.task,
        optimizer=args.optimizer,
        budgets=budgets,
        seeds=args.seeds,
        holdout_seeds=args.holdout_seeds,
        lr_grid=parse_lr_grid(args.lr_grid),
        warmup=args.warmup,
        workers=args.workers if args.workers is not None else (os.cpu_count() or 1),
        db=db,
        branch=not args.no_branch,
        progress=SweepProgress(verbose=False, label="wsd: "),
        echo=lambda line: print(line, file=sys.stderr),
    )
    print(f"wrote {page}", file=sys.stderr)
    return 0


STUDIES: dict[str, Study] = {
    study.name: study
    for study in (
        Study(
            "lr-finder",
            help="the range test's suggestions against tuned LR grids (docs/lr-finder.md)",
            description="Run the LR range test on every task x optimizer x seed, train each "
            "rule's suggestion (and LipschitzLR's values) as a constant LR and as a one-cycle "
            "peak against the best LR of a tuned grid, and write OUT/lr-finder.md with "
            "OUT/lr-finder/runs.csv and each task's range-test chart. Runs are stored "
            "(--db): a rerun skips finished runs.",
            arguments=_lr_finder_arguments,
            run=_run_lr_finder,
        ),
        Study(
            "tune",
            help="lrlab tune's choice against the full grid's, on fresh seeds (docs/tune.md)",
            description="For every task x optimizer x schedule, run lrlab tune and the 7-LR "
            "grid (its LR chosen on the validation split), then both choices, the range test's "
            "and LipschitzLR's, on fresh seeds scored on the test split; write OUT/tune.md and "
            "OUT/tune/cells.csv. Runs are stored (--db): a rerun skips finished runs.",
            arguments=_tune_arguments,
            run=_run_tune,
        ),
        Study(
            "wsd",
            help="warmup-stable-decay against cosine on the lm task (docs/wsd.md)",
            description="Tune each schedule's peak LR on the validation split at the middle "
            "budget, run cosine and WSD (linear and 1-sqrt cooldowns, 10% and 20%) at every "
            "budget on fresh seeds, continue the shorter budgets from the longest run's "
            "checkpoints, and write OUT/wsd.md with the published claims beside lrlab's "
            "numbers. Runs are stored (--db): a rerun skips finished runs.",
            arguments=_wsd_arguments,
            run=_run_wsd,
        ),
    )
}
"""Every study ``lrlab study`` runs, by name."""


def add_parser(commands: Any) -> None:
    studies = "; ".join(f"{study.name}: {study.help}" for study in STUDIES.values())
    parser = commands.add_parser(
        "study",
        help="run a study beyond the source documents and write its page",
        description="Run one of lrlab's studies (measurements that are not a source "
        f"document's experiment; those are `lrlab reproduce`) and write its page. {studies}. "
        "`lrlab study STUDY --help` lists a study's options.",
    )
    parser.add_argument("study", choices=list(STUDIES), metavar="STUDY", help=studies)
    parser.add_argument(
        "options",
        nargs=argparse.REMAINDER,
        metavar="OPTIONS",
        help="the study's options (lrlab study STUDY --help)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Parse the study's own options into ``args`` (so errors name its flags) and run it."""
    study = STUDIES[args.study]
    parser = OneLineParser(prog=f"lrlab study {study.name}", description=study.description)
    study.arguments(parser)
    parser.parse_args(args.options, namespace=args)
    return study.run(args)
