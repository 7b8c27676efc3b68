"""``lrlab schedule SPEC``: preview a schedule as a table, CSV or PNG before training.

``plateau(...)`` depends on the run, so its preview replays a metric sequence: one value per
epoch from a CSV column (``--metrics FILE.csv:COLUMN``) or the per-epoch values of a run in an
lrlab store (``--run FILE.sqlite:ID``, the ``id`` column of the report's ``runs.csv``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lrlab.cli.common import plot_path
from lrlab.validate import MAX_STEPS

if TYPE_CHECKING:
    from lrlab.plateau import Plateau


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "schedule",
        help="preview a schedule: (step, lr) as a table or CSV, optionally a PNG plot",
        description="Print a schedule's LR per step. SPEC is a call such as "
        "'exponential(lr=0.2, rate=0.99, every=1)' or 'cosine(lr=0.1, steps=1000, warmup=50)'. "
        "A 'plateau(lr=..., ...)' spec replays a metric per epoch (--metrics or --run) and "
        "prints the LR of each epoch (of each step with --steps-per-epoch).",
    )
    parser.add_argument(
        "spec", metavar="SPEC", help="the schedule, e.g. 'step(lr=0.1, drop=0.5, every=10)'"
    )
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--steps", type=int, metavar="N", help="steps to show (default 100)")
    length.add_argument(
        "--epochs",
        type=int,
        metavar="E",
        help="epochs to show (with --steps-per-epoch; for plateau: the first E metrics)",
    )
    parser.add_argument(
        "--steps-per-epoch",
        type=int,
        metavar="S",
        help="steps per epoch, for per_epoch(...) schedules and --epochs",
    )
    metrics = parser.add_mutually_exclusive_group()
    metrics.add_argument(
        "--metrics",
        metavar="FILE.csv:COLUMN",
        help="plateau: one metric per epoch, from this column of a CSV file with a header row",
    )
    metrics.add_argument(
        "--run",
        metavar="FILE.sqlite:ID",
        help="plateau: the per-epoch metric of run ID in an lrlab store (mode from its task)",
    )
    parser.add_argument(
        "--every",
        type=int,
        default=1,
        metavar="K",
        help="print every K-th step only (the last step is always printed)",
    )
    parser.add_argument("--csv", action="store_true", help="print CSV instead of a table")
    parser.add_argument("--plot", metavar="FILE", help="also write a PNG plot of the schedule")
    parser.set_defaults(handler=run)


#: The most steps a preview evaluates (and a table prints, with ``--every 1``): a run's most.
MAX_PREVIEW_STEPS = MAX_STEPS


def run(args: argparse.Namespace) -> int:
    from lrlab.callspec import parse_call
    from lrlab.validate import check_int

    spe = args.steps_per_epoch
    if spe is not None:
        check_int("", "steps_per_epoch", spe, minimum=1, maximum=MAX_PREVIEW_STEPS)
    check_int("", "every", args.every, minimum=1)
    if args.plot:
        args.plot = plot_path(args.plot)
    call = parse_call(args.spec)
    if call.name == "plateau":
        return _run_plateau(args, call)
    if args.metrics or args.run:
        flag = "--metrics" if args.metrics else "--run"
        raise ValueError(f"{flag} applies to plateau(...) previews only, got {call.name}(...)")
    from lrlab.schedules import build

    if args.epochs is not None:
        if spe is None:
            raise ValueError("--epochs needs --steps-per-epoch")
        check_int("", "epochs", args.epochs, minimum=1, maximum=MAX_PREVIEW_STEPS // spe)
        steps = args.epochs * spe
    else:
        steps = 100 if args.steps is None else args.steps
        check_int("", "steps", steps, minimum=1, maximum=MAX_PREVIEW_STEPS)

    schedule = build(call, steps_per_epoch=spe, horizon=steps)  # a horizon left out: steps
    lrs = schedule.preview(steps)
    shown = [t for t in range(steps) if t % args.every == 0 or t == steps - 1]
    _print_rows(shown, lrs, spe, csv=args.csv)
    if args.plot:
        from lrlab.plots import plot_schedule

        _save(plot_schedule(schedule, steps, steps_per_epoch=spe), args.plot)
    return 0


def _run_plateau(args: argparse.Namespace, call: Any) -> int:
    """Replay one metric per epoch through the plateau rule; print the LR per epoch (per step
    with ``--steps-per-epoch``, or when the rule has a warmup and the run gives it)."""
    from lrlab.plateau import Plateau, plateau_lrs
    from lrlab.schedules.parse import from_call

    rule = from_call(Plateau, call)
    if args.steps is not None:
        raise ValueError(
            "plateau previews count epochs, one per metric value: use --epochs, "
            f"got --steps={args.steps}"
        )
    lr = rule.lr
    if lr is None:
        raise ValueError("plateau: a preview starts from lr=..., give it in the spec, got lr=None")
    spe = args.steps_per_epoch
    if args.metrics:
        metrics, higher_is_better = _csv_column(args.metrics), None
    elif args.run:
        metrics, higher_is_better, run_spe = _stored_run(args.run, rule.monitor)
        spe = spe or (run_spe if rule.warmup else None)
    else:
        raise ValueError(
            "plateau depends on the run: give its metric per epoch with --metrics FILE.csv:COLUMN "
            "or --run FILE.sqlite:ID"
        )
    if args.epochs is not None:
        if not 1 <= args.epochs <= len(metrics):
            raise ValueError(
                f"--epochs must be between 1 and the {len(metrics)} metric values, "
                f"got --epochs={args.epochs}"
            )
        metrics = metrics[: args.epochs]
    if spe and len(metrics) * spe > MAX_PREVIEW_STEPS:
        raise ValueError(
            f"--steps-per-epoch must be <= {MAX_PREVIEW_STEPS // len(metrics)} for "
            f"{len(metrics)} epochs (a preview shows at most {MAX_PREVIEW_STEPS} steps), "
            f"got --steps-per-epoch={spe}"
        )
    rule = rule.resolved(higher_is_better)
    lrs = plateau_lrs(rule, metrics, lr=lr, steps_per_epoch=spe)
    shown = [i for i in range(len(lrs)) if i % args.every == 0 or i == len(lrs) - 1]
    if spe:
        _print_rows(shown, lrs, spe, csv=args.csv)
    else:
        _print_epochs(shown, metrics, lrs, csv=args.csv)
    if args.plot:
        _save(_plot_plateau(rule, lrs, spe), args.plot)
    return 0


def _plot_plateau(rule: Plateau, lrs: list[float], spe: int | None) -> Any:
    from lrlab.plots import plot_lrs

    xs = [i / spe for i in range(len(lrs))] if spe else list(range(len(lrs)))
    return plot_lrs(xs, lrs, xlabel="epoch", label=rule.spec(), log=True)


def _save(ax: Any, path: str) -> None:
    from lrlab.cli.common import writing
    from lrlab.plots import save_figure

    with writing(path):
        save_figure(ax.figure, path)
    print(f"wrote {path}", file=sys.stderr)


def _split_source(text: str, option: str, form: str) -> tuple[Path, str]:
    """``FILE:PART`` -> (FILE, PART), splitting at the last colon."""
    path, sep, part = text.rpartition(":")
    if not sep or not path or not part:
        raise ValueError(f"{option} must look like {form}, got {option}={text!r}")
    if not Path(path).is_file():  # (a FIFO or a device is never opened: it could block)
        what = "not a plain file" if Path(path).exists() else "no such file"
        raise ValueError(f"{option} {path}: {what}")
    return Path(path), part


def _csv_column(text: str) -> list[float]:
    """The numbers in one column of a CSV file with a header row, one per epoch."""
    import csv

    path, column = _split_source(text, "--metrics", "FILE.csv:COLUMN")
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        names = reader.fieldnames or []
        if column not in names:
            raise ValueError(
                f"--metrics {path}: no column {column!r} (columns: {', '.join(names) or 'none'})"
            )
        values = []
        for row_number, row in enumerate(reader, start=2):
            cell = (row.get(column) or "").strip()
            try:
                values.append(float(cell))
            except ValueError:
                raise ValueError(
                    f"--metrics {path}:{column}: line {row_number}: {cell!r} is not a number"
                ) from None
    if not values:
        raise ValueError(f"--metrics {path}:{column}: no values")
    return values


def _stored_run(text: str, monitor: str) -> tuple[list[float], bool, int]:
    """A stored run's monitored value per epoch, whether its metric improves upwards, and its
    steps per epoch."""
    from lrlab.plateau import monitored
    from lrlab.store import Store

    path, part = _split_source(text, "--run", "FILE.sqlite:ID")
    try:
        run_id = int(part)
    except ValueError:
        raise ValueError(f"--run {path}: ID must be a run's id, got {part!r}") from None
    with Store(path, readonly=True) as store:
        found = [r for r in store.runs() if r.id == run_id]
    if not found:
        raise ValueError(f"--run {path}: no run with id {run_id}")
    record = found[0].record
    if record is None or not record.epochs:
        raise ValueError(f"--run {path}:{run_id}: the run has no epochs ({found[0].status})")
    metrics = [monitored(monitor, e) for e in record.epochs]
    return metrics, record.higher_is_better, record.steps_per_epoch


def _print_rows(steps: list[int], lrs: list[float], spe: int | None, *, csv: bool) -> None:
    """One row per shown step: step, epoch (when steps per epoch are known) and LR.

    CSV gives the LR at full precision (``repr``), the table at 8 significant digits.
    """
    header = ["step", "epoch", "lr"] if spe else ["step", "lr"]
    rows = []
    for t in steps:
        lr = repr(lrs[t]) if csv else f"{lrs[t]:.8g}"
        rows.append([str(t), str(t // spe), lr] if spe else [str(t), lr])
    _write_table(header, rows, csv=csv)


def _print_epochs(epochs: list[int], metrics: list[float], lrs: list[float], *, csv: bool) -> None:
    """One row per shown epoch: epoch, the metric at its end and the LR it ran at."""
    rows = [
        [str(e), repr(metrics[e]), repr(lrs[e])]
        if csv
        else [str(e), f"{metrics[e]:.6g}", f"{lrs[e]:.8g}"]
        for e in epochs
    ]
    _write_table(["epoch", "metric", "lr"], rows, csv=csv)


def _write_table(header: list[str], rows: list[list[str]], *, csv: bool) -> None:
    if csv:
        lines = [",".join(row) for row in [header, *rows]]
    else:
        widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
        lines = [
            "  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True))
            for row in [header, *rows]
        ]
    sys.stdout.write("\n".join(lines) + "\n")
