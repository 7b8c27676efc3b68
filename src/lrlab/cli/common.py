"""Small helpers the subcommands share."""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

from lrlab.validate import MAX_WORKERS, check_int


class OneLineParser(argparse.ArgumentParser):
    """argparse, with its usage errors on one line (the usage itself is in ``--help``)."""

    def error(self, message: str) -> NoReturn:
        first = message.splitlines()[0] if message else "bad usage"
        self.exit(2, f"{self.prog}: error: {first} (see {self.prog} --help)\n")


def add_threads_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        metavar="N",
        help="torch threads per run (default 1: on 2 cores one thread per run and runs in "
        "parallel beats threads fighting over the cores)",
    )


#: The most torch threads a run may ask for (far beyond any machine's cores).
MAX_THREADS = MAX_WORKERS


def check_threads(threads: int | None) -> int:
    """``--threads`` (default 1), checked: an integer in ``[1, MAX_THREADS]``."""
    if threads is None:
        return 1
    return check_int("", "threads", threads, minimum=1, maximum=MAX_THREADS)


def add_optimistic_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--optimistic",
        action="store_true",
        help="the optimistic protocol lrlab used before validation splits: choose each "
        "method's LR on the test split with the seeds it then reports (the default chooses "
        "on the validation split and scores on fresh seeds)",
    )


def add_vectorize_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--vectorize",
        default="on",
        choices=("on", "off"),
        help="on (default): runs that differ only in seed, LR and schedule values train "
        "together as one vectorised model, each run's record as it gives alone; off: one by one",
    )


def add_run_arguments(parser: argparse.ArgumentParser, what: str = "per run") -> None:
    """The options every run of a sweep shares (``RUN_OPTIONS`` of ``lrlab compare``): its
    budget (``--epochs`` or ``--steps``), batch size, model, split, sampling, data folder and
    device."""
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--epochs", type=int, metavar="N", help=f"epochs {what} (task default)")
    budget.add_argument("--steps", type=int, metavar="N", help=f"optimizer steps {what}")
    parser.add_argument("--batch-size", type=int, metavar="B")
    parser.add_argument("--model", metavar="NAME")
    parser.add_argument("--split", metavar="NAME")
    parser.add_argument("--sampling", choices=("shuffle", "replacement"))
    parser.add_argument("--data-dir", metavar="DIR")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda", "auto"))


def add_training_arguments(
    parser: argparse.ArgumentParser, *, accumulation: bool = True, checkpoints: bool = True
) -> None:
    """The engine's training options (`lrlab.train`'s): clipping, weight decay by parameter
    group, accumulation, precision and, where runs train, checkpoints."""
    parser.add_argument(
        "--clip-norm",
        type=float,
        metavar="X",
        help="clip the gradients' global norm to X before each update (default: no clipping)",
    )
    parser.add_argument(
        "--weight-decay",
        type=float,
        metavar="X",
        help="the optimizer's weight_decay (as --optimizer-arg weight_decay=X)",
    )
    parser.add_argument(
        "--decay-params",
        choices=("all", "matrices", "no-bias-norm-embed"),
        help="the parameters weight decay applies to: all (default), matrices (nanoGPT, "
        "timm: no biases, no 1-D weights), no-bias-norm-embed (nor norm layers, embeddings)",
    )
    if accumulation:
        parser.add_argument(
            "--accumulation-steps",
            type=int,
            metavar="K",
            help="micro-batches of --batch-size per update (default 1); steps count updates",
        )
    parser.add_argument(
        "--precision",
        choices=("fp32", "bf16"),
        help="fp32 (default) or bf16: forward and loss under bfloat16 autocast",
    )
    if checkpoints:
        parser.add_argument(
            "--checkpoint-dir",
            metavar="DIR",
            help="write mid-run checkpoints here and resume a killed run from its latest "
            "(compare: DIR holds every run's; given only an interval, <db stem>-checkpoints)",
        )
        parser.add_argument(
            "--checkpoint-every",
            type=int,
            metavar="N",
            help="a checkpoint every N updates (default: every 60 s)",
        )
        parser.add_argument(
            "--checkpoint-seconds",
            type=float,
            metavar="S",
            help="a checkpoint every S seconds",
        )


#: `add_training_arguments`' destinations: the run options they set.
TRAINING_OPTIONS = (
    "clip_norm",
    "weight_decay",
    "decay_params",
    "accumulation_steps",
    "precision",
    "checkpoint_dir",
    "checkpoint_every",
    "checkpoint_seconds",
)


def training_options(args: argparse.Namespace) -> dict[str, Any]:
    """The training options given on the command line (the ones left out take the
    library's defaults)."""
    return {
        name: getattr(args, name)
        for name in TRAINING_OPTIONS
        if getattr(args, name, None) is not None
    }


def set_threads(threads: int | None) -> None:
    """Set torch's intra-op threads (default 1) before torch does any work."""
    count = check_threads(threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(count))
    import torch

    torch.set_num_threads(count)


def parse_key_values(items: list[str], option: str) -> dict[str, object]:
    """``["momentum=0.5", "nesterov=true"]`` -> ``{"momentum": 0.5, "nesterov": True}``.

    Values are read as the spec language reads them (`lrlab.callspec.parse_value`: numbers,
    true/false, ``[lists]``, words), ``none`` as ``None``; text that is none of these stays
    text, for the optimizer's signature check to judge. A name given twice is an error.

    >>> parse_key_values(["betas=[0.9, 0.99]", "foreach=none", "mode=fast"], "--optimizer-arg")
    {'betas': [0.9, 0.99], 'foreach': None, 'mode': 'fast'}
    >>> parse_key_values(["momentum=0.5", "momentum=0.9"], "--optimizer-arg")
    Traceback (most recent call last):
    ...
    ValueError: --optimizer-arg momentum given twice, got --optimizer-arg momentum=0.9
    """
    result: dict[str, object] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"{option} must look like KEY=VALUE, got {option}={item!r}")
        if key in result:
            raise ValueError(f"{option} {key} given twice, got {option} {item}")
        result[key] = _literal(text.strip())
    return result


def _literal(text: str) -> object:
    from lrlab.callspec import SpecError, parse_value
    from lrlab.validate import check_plain

    if text.lower() in ("none", "null"):
        return None
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    try:
        value = check_plain("", "value", parse_value(text))
    except (SpecError, TypeError):  # not a value of the language (or a call): plain text
        return text
    return list(value) if isinstance(value, tuple) else value


@contextlib.contextmanager
def writing(path: str | Path) -> Iterator[None]:
    """Name ``path`` in an ``OSError`` raised while writing it that names no file (a full
    disk's ``write`` does not), so the one-line error says where."""
    try:
        yield
    except OSError as error:
        if error.filename is not None or isinstance(error, BrokenPipeError):
            raise
        raise OSError(error.errno, error.strerror or str(error), str(path)) from None


def report_folder(db: Path) -> Path:
    """Where a report goes by default: ``<db stem>-report`` beside the store."""
    return db.with_name(db.stem + "-report")


def write_and_show_report(
    runs: list[Any],
    db: Path | list[Path],
    out: Path | None,
    note: str = "",
    *,
    baseline: str | None = None,
    optimistic: bool = False,
) -> int:
    """Write the report of ``runs`` from the store(s) ``db`` (default folder: `report_folder`
    of the first), print the ranking, the performance profiles when the report has them,
    and where the files are."""
    from lrlab.report import profile_text, report_profiles, terminal_table, write_report

    stores = db if isinstance(db, list) else [db]
    out = out or report_folder(stores[0])
    with writing(out):
        summaries, files = write_report(
            runs, out, source=[str(s) for s in stores], baseline=baseline, optimistic=optimistic
        )
    print(terminal_table(summaries))
    profile = report_profiles(summaries, baseline)
    if profile is not None:
        print("\n" + profile_text(profile))
    print(
        f"\nreport: {files.markdown}\nplots: {', '.join(str(p) for p in files.plots)}\n"
        f"tables: {', '.join(str(p) for p in files.csv)}" + (f"\n{note}" if note else "")
    )
    return 0


def parse_method(text: str) -> tuple[str, str | None]:
    """``"sgd:lipschitz(bound=smooth)"`` -> ``("sgd", "lipschitz(bound=smooth)")``; a bare
    optimizer name means a constant LR.

    >>> parse_method("momentum:cosine(lr=0.1, steps=100)")
    ('momentum', 'cosine(lr=0.1, steps=100)')
    """
    optimizer, _, schedule = text.partition(":")
    if not optimizer.strip():
        raise ValueError(f"--method must look like OPTIMIZER[:SCHEDULE], got --method={text!r}")
    schedule = schedule.strip()
    return optimizer.strip(), (None if schedule.lower() in ("", "none", "constant") else schedule)


def parse_runtime_env(text: str | None) -> dict[str, Any] | None:
    """``--runtime-env JSON`` (a Ray job's runtime_env): a JSON object, or ``None``."""
    import json

    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        value = None
    if not isinstance(value, dict):
        raise ValueError(f"--runtime-env must be a JSON object, got --runtime-env={text!r}")
    return value


def parse_lr_grid(text: str) -> tuple[float, ...]:
    """``"1e-3,1e-2,0.1"`` (a list) or ``"1e-4:1:9"`` (9 log-spaced values from 1e-4 to 1).

    >>> parse_lr_grid("0.001:0.1:3")
    (0.001, 0.01, 0.1)
    """
    text = text.strip()
    try:
        if ":" in text:
            low_text, high_text, count_text = text.split(":")
            low, high, count = float(low_text), float(high_text), int(count_text)
            if not (0 < low < high and math.isfinite(high) and 2 <= count <= 1000):
                raise ValueError
            if math.isfinite(high / low):  # (the expression stored grids were made with)
                ratio = math.log10(high / low) / (count - 1)
                return tuple(float(f"{low * 10 ** (ratio * i):.6g}") for i in range(count))
            first = math.log10(low)  # 1e-300:1e300: the ratio overflows, its log does not
            ratio = (math.log10(high) - first) / (count - 1)
            return tuple(float(f"{10 ** (first + ratio * i):.6g}") for i in range(count))
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ValueError(
            f"--lr-grid must be a comma list of LRs or LOW:HIGH:COUNT, got --lr-grid={text!r}"
        ) from None
    if not values or any(not (math.isfinite(v) and v > 0) for v in values):
        raise ValueError(f"--lr-grid values must be finite and > 0, got --lr-grid={text!r}")
    return tuple(sorted(set(values)))


_PARAMETER_ERROR = re.compile(r"^(?:run: )?(\w+)(\[\d+\])? must be (.*), got \1(\[\d+\])?=(.*)$")


def flag_message(message: str, args: argparse.Namespace) -> str:
    """A library error naming a parameter (``lr_grid must be ..., got lr_grid=...``) in the
    terms of the command line (``--lr-grid must be ..., got --lr-grid=...``), when the
    command has that flag; other messages unchanged."""
    match = _PARAMETER_ERROR.match(message)
    if match is None:
        return message
    name = match.group(1)
    dest = {"methods": "method"}.get(name, name)
    if not hasattr(args, dest):
        return message
    flag = "--" + dest.replace("_", "-")
    index = match.group(2) or ""
    return (
        f"{flag}{index} must be {match.group(3)}, got {flag}{match.group(4) or ''}={match.group(5)}"
    )


def plot_path(text: str) -> str:
    """``--plot FILE``, checked before anything is computed: a file lrlab may write, in a
    format matplotlib writes (``.png`` added when it has no suffix, as matplotlib would)."""
    from matplotlib.backend_bases import FigureCanvasBase

    from lrlab.validate import check_output_path, fail

    path = check_output_path("", "plot", text)
    formats = FigureCanvasBase.get_supported_filetypes()
    if not path.suffix:
        path = check_output_path("", "plot", path.with_name(path.name + ".png"))
    elif path.suffix[1:].lower() not in formats:
        known = ", ".join(f".{suffix}" for suffix in sorted(formats))
        raise fail("", "plot", text, f"a file ending in one of {known}")
    return str(path)
