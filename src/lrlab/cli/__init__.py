"""The ``lrlab`` command. Each subcommand imports what it needs (torch, matplotlib) only when
it runs, so ``lrlab --help`` stays fast."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from lrlab.cli import (
    compare_cmd,
    download_cmd,
    find_cmd,
    report_cmd,
    reproduce_cmd,
    run_cmd,
    schedule_cmd,
    tasks_cmd,
)

_COMMANDS = (
    schedule_cmd,
    run_cmd,
    tasks_cmd,
    compare_cmd,
    report_cmd,
    download_cmd,
    reproduce_cmd,
    find_cmd,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lrlab",
        description="Learning rates, measured: schedules, optimizers, LipschitzLR, benchmarks.",
    )
    parser.add_argument("--version", action="version", version=_version())
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in _COMMANDS:
        command.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``lrlab``; return the exit code (2 for a user error, with a one-line message)."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except ValueError as error:
        if os.environ.get("LRLAB_TRACEBACK"):
            raise
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        print(f"lrlab: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("lrlab: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`lrlab schedule ... | head`): not an error worth a traceback.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _version() -> str:
    from lrlab import __version__

    return f"lrlab {__version__}"
