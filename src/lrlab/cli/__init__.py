"""The ``lrlab`` command. Each subcommand imports what it needs (torch, matplotlib) only when
it runs, so ``lrlab --help`` stays fast.

Errors, and which ones a user sees as one line (exit code 2) rather than a traceback:

- ``ValueError`` (its subclasses included: `lrlab.callspec.SpecError`, the store's errors,
  `lrlab.validate.ArgumentTypeError`) is lrlab's contract for "the input is wrong": every
  check of an argument, a spec, a data file or a store raises one, naming the parameter (or
  file) and its value. Its first line is printed, library parameter names turned into the
  command's flags (`lrlab.cli.common.flag_message`).
- ``OSError`` is the system refusing something the user controls: a path (permission denied,
  a parent that is a file, no such file), a full disk, a device. Printed as one line naming
  the file when the error has one. (``BrokenPipeError``, a reader that went away, exits 0.)
- Usage errors (an unknown flag, a value argparse cannot convert) are argparse's, one line.
- A task of the user's is checked on one batch before anything trains
  (`lrlab.engine.check_task`): its mistakes (labels out of range, a model that returns a
  tuple, a loss without a gradient...) are `lrlab.errors.TaskError`, a ``ValueError`` whose
  line names the user's ``file:line``.
- Anything else (``TypeError``, ``KeyError``, ``OverflowError``, ``RecursionError``...) is a
  bug in lrlab, since user input is checked before it can reach such an error: it keeps its
  traceback so it can be reported. ``LRLAB_TRACEBACK=1`` shows the traceback of the kinds
  above too (for a task's mistake, the user's own traceback first).

Exit codes, for every command:

- 0: done. For ``compare``: every run finished; a diverged run is a result, not an error.
- 1: ``compare`` ran, but some runs failed (an error ended them mid-training; each is
  stored with its error, the report is written, a line on stderr says how many and the
  commonest error; the same command again retries them).
- 2: a user error before anything ran: a bad argument, task, spec, data file or store
  (one line on stderr).
- 130: interrupted (Ctrl-C): a sweep's finished runs are stored and the same command
  resumes. After a Ctrl-C or a SIGKILL, no process the command started outlives it by more
  than a few seconds (pool workers and their ``DataLoader`` workers, a local Ray instance).
"""

from __future__ import annotations

import argparse
import contextlib
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
    study_cmd,
    tasks_cmd,
    tune_cmd,
)
from lrlab.cli.common import OneLineParser, flag_message
from lrlab.errors import first_line

_COMMANDS = (
    schedule_cmd,
    run_cmd,
    tasks_cmd,
    compare_cmd,
    report_cmd,
    download_cmd,
    reproduce_cmd,
    study_cmd,
    find_cmd,
    tune_cmd,
)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
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
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        _refuse_empty(parser, args)
        return int(args.handler(args))
    except ValueError as error:
        if os.environ.get("LRLAB_TRACEBACK"):
            raise
        _error(flag_message(first_line(error), args) or type(error).__name__)
        return 2
    except KeyboardInterrupt:
        print("lrlab: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`lrlab schedule ... | head`): not an error worth a traceback.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as error:
        if os.environ.get("LRLAB_TRACEBACK"):
            raise
        _error(os_message(error))
        return 2


def _refuse_empty(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """An empty (or blank) value given to any option or argument is an error, never taken for
    the option's absence: ``--json ''`` would otherwise write nothing, ``--model ''`` train
    the default model."""
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    for action in commands[args.command]._actions:
        value = getattr(args, action.dest, None)
        values = value if isinstance(value, list) else [value]
        for item in values:
            if isinstance(item, str) and not item.strip() and item != action.default:
                flag = action.option_strings[-1] if action.option_strings else action.dest
                raise ValueError(f"{flag} must not be empty, got {flag}={item!r}")


def os_message(error: OSError) -> str:
    """An ``OSError`` in one line, naming the file when it has one.

    >>> os_message(PermissionError(13, "Permission denied", "runs.sqlite"))
    'runs.sqlite: Permission denied'
    >>> os_message(OSError(28, "No space left on device"))
    'No space left on device'
    """
    reason = first_line(error.strerror or error) or type(error).__name__
    if error.filename is None:
        return reason
    target = os.fsdecode(error.filename)
    if error.filename2 is not None:
        target += f" -> {os.fsdecode(error.filename2)}"
    return f"{target}: {reason}"


def _error(message: str) -> None:
    with contextlib.suppress(OSError):  # stderr itself gone: nothing left to tell
        print(f"lrlab: error: {message}", file=sys.stderr)


def _version() -> str:
    from lrlab._version import __version__

    return f"lrlab {__version__}"
