"""``lrlab find TASK``: an LR range test on a task, its suggestions, ready-to-paste specs."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lrlab.cli.common import (
    add_threads_argument,
    add_training_arguments,
    parse_key_values,
    plot_path,
    set_threads,
)

if TYPE_CHECKING:
    from lrlab.finder import RangeTest


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "find",
        help="LR range test: suggest a learning rate for a task and optimizer",
        description="Train from the task's initial weights while the LR ramps from --start "
        "to --end, stop when the smoothed loss blows up, and print each rule's suggestion "
        "(median and range over --repeats data orders), LipschitzLR's values at the same "
        "weights, and schedule specs using the recommended LR. Model, optimizer and RNGs are "
        "restored afterwards, so this is the run `lrlab run TASK --seed S` would start. A "
        "curve that cannot place an LR (flat, noisy, a minimum at the chart's edge, repeats "
        "a decade apart) prints a warning and sets doubtful in --json; `lrlab tune` measures "
        "the LR with short trained runs instead, at a few runs' cost.",
    )
    parser.add_argument(
        "task",
        metavar="TASK",
        help="a task from `lrlab tasks`, or your own: path/to/file.py:function",
    )
    parser.add_argument("--optimizer", default="sgd", metavar="NAME", help="default sgd")
    parser.add_argument(
        "--optimizer-arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra optimizer argument, e.g. momentum=0.5 (repeatable; the LR is searched)",
    )
    parser.add_argument("--start", type=float, default=1e-7, metavar="LR", help="1e-7")
    parser.add_argument("--end", type=float, default=10.0, metavar="LR", help="10")
    parser.add_argument("--steps", type=int, default=100, metavar="N", help="test steps (100)")
    parser.add_argument("--mode", default="exponential", choices=("exponential", "linear"))
    parser.add_argument(
        "--smoothing", type=float, default=0.98, metavar="BETA", help="EMA beta (0.98)"
    )
    parser.add_argument(
        "--diverge",
        type=float,
        default=4.0,
        metavar="X",
        help="stop when the smoothed loss exceeds X times its best (4)",
    )
    parser.add_argument(
        "--accumulation-steps", type=int, default=1, metavar="K", help="batches per step (1)"
    )
    parser.add_argument(
        "--repeats", type=int, default=1, metavar="N", help="data orders from the same weights"
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        metavar="S",
        help="initial weights and data order (repeat r uses S + r for the order); default 0",
    )
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument(
        "--epochs", type=int, metavar="N", help="the run's budget, for the one-cycle spec"
    )
    budget.add_argument(
        "--run-steps", type=int, metavar="N", help="the run's budget in steps, instead"
    )
    parser.add_argument("--batch-size", type=int, metavar="B", help="default: the task's")
    parser.add_argument("--model", metavar="NAME", help="one of the task's models")
    parser.add_argument("--split", metavar="NAME", help="holdout (default) or all")
    parser.add_argument(
        "--data-dir", metavar="DIR", help="where mnist, fashion-mnist and cifar10 live"
    )
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda", "auto"))
    add_training_arguments(parser, accumulation=False, checkpoints=False)
    add_threads_argument(parser)
    parser.add_argument("--no-lipschitz", action="store_true", help="skip LipschitzLR's values")
    parser.add_argument("--plot", metavar="FILE", help="write the chart (.png, .pdf, .svg)")
    parser.add_argument("--json", metavar="FILE", help="write the result as JSON")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from lrlab.tasks import get_task
    from lrlab.validate import MAX_STEPS, check_int, check_output_path

    plot = Path(plot_path(args.plot)) if args.plot is not None else None
    json_path = check_output_path("", "json", args.json) if args.json is not None else None
    if args.run_steps is not None:  # (the library calls it steps, like the test's --steps)
        check_int("", "run_steps", args.run_steps, minimum=1, maximum=MAX_STEPS)
    get_task(args.task)  # an unknown task or a bad reference: one line, before anything
    set_threads(args.threads)
    from lrlab.finder import find_on_task

    optimizer_args = parse_key_values(args.optimizer_arg, "--optimizer-arg")
    if args.weight_decay is not None:
        if "weight_decay" in optimizer_args:
            raise ValueError(
                "give --weight-decay once, not also as --optimizer-arg weight_decay=..., got "
                f"--weight-decay={args.weight_decay!r}"
            )
        optimizer_args["weight_decay"] = args.weight_decay
    result = find_on_task(
        args.task,
        args.optimizer,
        optimizer_args=optimizer_args,
        batch_size=args.batch_size,
        model=args.model,
        split=args.split,
        data_dir=args.data_dir,
        device=args.device,
        seed=args.seed,
        lipschitz=not args.no_lipschitz,
        epochs=args.epochs,
        run_steps=args.run_steps,
        start=args.start,
        end=args.end,
        steps=args.steps,
        mode=args.mode,
        smoothing=args.smoothing,
        diverge=args.diverge,
        accumulation_steps=args.accumulation_steps,
        repeats=args.repeats,
        decay_params=args.decay_params or "all",
        clip_norm=args.clip_norm,
        precision=args.precision or "fp32",
    )
    print(report(result))
    if plot is not None:
        from lrlab.plots import save_figure

        save_figure(result.plot().figure, plot)
        print(f"wrote {plot}", file=sys.stderr)
    if json_path is not None:
        json_path.write_text(json.dumps(result.to_dict(), indent=1, allow_nan=False) + "\n")
        print(f"wrote {json_path}", file=sys.stderr)
    if result.suggestions[result.recommended].lr is None:
        # No suggestion (the loss blew up within the burn-in): a one-line error, exit 2.
        return int(result.suggested_lr)
    return 0


def _lr(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def specs(lr: float, total_steps: int, steps_per_epoch: int) -> list[str]:
    """Schedule specs using ``lr``: constant; one-cycle with ``lr`` as its peak over the
    run's ``total_steps`` (fastai's ``fit_one_cycle(lr_max=...)`` use of a range test); and a
    triangular cyclic schedule from ``lr / 4`` to ``lr`` with half-cycles of 4 epochs (at
    most half the run), inside Smith's advice (base LR 3-4x below the maximum, step size 2-10
    epochs; "Cyclical Learning Rates for Training Neural Networks", 2017, section 3.3).

    >>> for spec in specs(0.1, 1000, 50):
    ...     print(spec)
    constant(lr=0.1)
    one_cycle(lr=0.1, steps=1000)
    cyclic(lr=0.025, max_lr=0.1, step_size=200)
    """
    step_size = max(1, min(4 * steps_per_epoch, total_steps // 2))
    return [
        f"constant(lr={lr:.3g})",
        f"one_cycle(lr={lr:.3g}, steps={total_steps})",
        f"cyclic(lr={lr / 4:.3g}, max_lr={lr:.3g}, step_size={step_size})",
    ]


def report(result: RangeTest) -> str:
    """What ``lrlab find`` prints: how the test went, each rule's suggestion (the recommended
    rule last), LipschitzLR's values, and specs with the recommended LR."""
    extra = result.extra
    repeats = len(result.curves)
    stops = ", ".join(
        f"{c.stop} at step {len(c.losses) - 1} (lr {c.lrs[-1]:.3g})"
        if c.stop != "completed"
        else "completed"
        for c in result.curves
    )
    lines = [
        f"{extra.get('task', 'range test')} / {extra.get('optimizer', '')}: {result.steps} steps "
        f"from {result.start:.3g} to {result.end:.3g} ({result.mode}), batch "
        f"{extra.get('batch_size', '?')}, {repeats} repeat{'s' * (repeats > 1)}, seed "
        f"{result.seed}: {stops} [{result.seconds:.2f} s]",
        "",
        f"{'rule':<18} {'suggested LR':>12}   {'range over repeats' if repeats > 1 else ''}",
    ]
    names = [n for n in result.suggestions if n != result.recommended] + [result.recommended]
    rows: list[tuple[str, float | None, str, str]] = []
    theory = (
        f"SGD theory ({extra.get('optimizer') or 'this optimizer'} scales its own steps), at "
        "the initial weights"
        if result.adaptive
        else "theory, at the initial weights"
    )
    for bound, value in result.lipschitz.items():
        rows.append((f"lipschitz {bound}", value, "", theory))
    for name in names:
        rule = result.suggestions[name]
        spread = f"{_lr(rule.low)} - {_lr(rule.high)}" if repeats > 1 else ""
        note = "<- recommended" if name == result.recommended else ""
        rows.append((name, rule.lr, spread, note))
    for name, value, spread, note in rows:
        lines.append(f"{name:<18} {_lr(value):>12}   {spread:<19}{note}".rstrip())
    lr = result.suggestions[result.recommended].lr
    if lr is not None:
        total = int(extra.get("total_steps", 1000))
        per_epoch = int(extra.get("steps_per_epoch", max(1, total // 10)))
        lines += ["", f"suggested_lr = {lr:.3g} ({result.recommended})"]
        lines += [f"  {spec}" for spec in specs(lr, total, per_epoch)]
    doubt = result.warning(tune_command(result))
    if doubt is not None:
        lines += ["", doubt]
    return "\n".join(lines)


def tune_command(result: RangeTest) -> str:
    """The ``lrlab tune`` command for the task and optimizer of ``result`` (a range test of
    `lrlab.find_on_task`; generic words for one of `lrlab.find`)."""
    task = result.extra.get("task") or "TASK"
    optimizer = result.extra.get("optimizer") or "NAME"
    return f"lrlab tune {task} --optimizer {optimizer}"
