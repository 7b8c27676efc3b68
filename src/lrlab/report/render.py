"""Rendering: the ranking as a terminal table (rich, fitted to the terminal's width), Markdown
and CSV (``csv.DictWriter``), the performance profiles of several tasks as a table;
`write_report` writes them with the plots."""

from __future__ import annotations

import csv
import io
import json
import math
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lrlab.plots import save_figure
from lrlab.report.plots import plot_profiles, write_plots
from lrlab.report.profiles import Profiles, Speedup, profiles
from lrlab.report.summary import (
    RANKING_RULE,
    Spread,
    Summary,
    by_task,
    final_spread,
    method_labels,
    methods,
    mixed_data,
    summarize,
)
from lrlab.store import StoredRun
from lrlab.validate import check_output_path


def _num(value: float | None, digits: int = 4) -> str:
    if value is None:
        return "-"
    return "miss" if math.isinf(value) else f"{value:.{digits}g}"


def _final(value: float | None, digits: int = 4) -> str:
    """A final metric: infinite is a diverged run's (`lrlab.report.summary.final_spread`)."""
    if value is not None and math.isinf(value):
        return "diverged"
    return _num(value, digits)


def _spread(spread: Spread, digits: int = 4, show: Any = _num) -> str:
    if spread.median is None:
        return "-"
    if spread.low == spread.high:
        return str(show(spread.median, digits))
    return f"{show(spread.median, digits)} [{show(spread.low, digits)}-{show(spread.high, digits)}]"


def _lr(summary: Summary) -> str:
    if summary.group == "no tuning" and summary.lr is None:
        return "computed"
    return _num(summary.lr, 3) + (" (edge)" if summary.lr_at_edge else "")


def rows(summaries: Sequence[Summary]) -> tuple[list[str], list[list[str]]]:
    """The ranking as a header and string rows (shared by the terminal and Markdown). A task
    without a target has no reached and to-target columns. A chosen LR at the edge of its
    grid reads ``(edge)`` (see `grid_warnings`); a final metric whose median or quartile is
    a diverged run reads ``diverged``."""
    metric = summaries[0].metric if summaries else "metric"
    targeted = bool(summaries) and summaries[0].target is not None
    header = ["#", "method", "tuning", "lr"]
    if targeted:
        header += ["reached", "steps to target", "time to target (s)"]
    header += [f"final {metric}", f"best {metric}", "diverged", "failed"]
    table = []
    for rank, s in enumerate(summaries, 1):
        row = [str(rank), s.label, s.tuning, _lr(s)]
        if targeted:
            row += [
                f"{s.reached}/{s.runs}",
                _num(s.steps_to_target)
                + (
                    f" [{_num(s.steps_spread.low)}-{_num(s.steps_spread.high)}]"
                    if s.steps_to_target is not None and s.steps_spread.low != s.steps_spread.high
                    else ""
                ),
                _num(s.time_to_target, 3),
            ]
        row += [_spread(s.final, show=_final), _spread(s.best), str(s.diverged), str(s.failed)]
        table.append(row)
    return header, table


def grid_warnings(summaries: Sequence[Summary]) -> list[str]:
    """One line per tuned method whose chosen LR is the lowest or highest of its grid: the
    best LR may lie beyond what was tried."""
    lines = []
    for s in summaries:
        if s.lr_at_edge:
            grid = sorted(lr for lr in s.grid if lr is not None)
            lines.append(
                f"warning: {s.title}: {s.base_label or s.label}: the chosen LR {s.lr:g} is the "
                f"{s.lr_at_edge} of the grid [{grid[0]:g}, {grid[-1]:g}]; widen --lr-grid"
            )
    return lines


def terminal_table(summaries: Sequence[Summary], width: int | None = None) -> str:
    """The ranking as text, one table per task, fitted to ``width`` columns (default: the
    terminal's when standard output is one, else wide enough for every row on one line):
    the method and tuning columns wrap, the numbers never do."""
    from rich.table import Table

    console = _console(width)
    for group in by_task(summaries).values():
        header, table = rows(group)
        columns = {name: i for i, name in enumerate(header)}
        text_columns = {columns["method"], columns["tuning"]}
        spread_columns = {i for i, name in enumerate(header) if name.startswith(("final", "best"))}
        spread_columns |= {columns[name] for name in ("steps to target",) if name in columns}
        grid = Table(
            title=f"{group[0].title}: target {_target_text(group[0])}{_data_warning(group)}",
            title_justify="left",
            box=None,
            pad_edge=False,
            show_edge=False,
            padding=(0, 1),
        )
        for i, name in enumerate(header):
            name = _SHORT.get(name, name)
            text = i in text_columns  # method, tuning: wrap at spaces
            spread = i in spread_columns  # "median [q1-q3]": may break before the bracket
            grid.add_column(
                name,
                overflow="fold",
                justify="left" if text else "right",
                no_wrap=not (text or spread),
                min_width=10 if text else (7 if spread else len(name)),
                ratio=2 if i == columns["method"] else (1 if text or spread else None),
            )
        for row in table:
            grid.add_row(*row)
        console.print(grid)
        for line in provenance(group):
            console.print(line, overflow="fold")
        for line in grid_warnings(group):
            console.print(line, overflow="fold")
    return _text(console)


def provenance(summaries: Sequence[Summary]) -> list[str]:
    """Where a task's numbers come from (`Summary.provenance`): one line per distinct
    provenance, naming the methods it holds for (the tuned or the untuned methods as a group
    where it holds for all of them)."""
    texts: dict[str, list[Summary]] = {}
    for summary in summaries:
        texts.setdefault(summary.provenance, []).append(summary)
    if len(texts) == 1:
        return [f"Numbers: {next(iter(texts))}; test split."]
    lines = []
    for text, group in texts.items():
        kinds = {s.group for s in group}
        everyone = [s for s in summaries if s.group in kinds]
        if len(kinds) == 1 and len(group) == len(everyone) and len(group) > 1:
            who = "the tuned methods" if kinds == {"tuned"} else "the untuned methods"
        else:
            who = ", ".join(s.label for s in group)
        lines.append(f"Numbers of {who}: {text}; test split.")
    return lines


def _console(width: int | None) -> Any:
    """A rich console recording plain text ``width`` columns wide (default: the terminal's
    when standard output is one, else wide enough for every row on one line)."""
    from rich.console import Console

    if width is None:
        width = shutil.get_terminal_size((100, 24)).columns if sys.stdout.isatty() else 400
    return Console(width=width, record=True, file=io.StringIO(), color_system=None, soft_wrap=False)


def _text(console: Any) -> str:
    return "\n".join(line.rstrip() for line in console.export_text().splitlines()).rstrip()


# Column names for a terminal, where width is short (Markdown and CSV keep the long ones).
_SHORT = {
    "steps to target": "steps",
    "time to target (s)": "time (s)",
    "diverged": "div.",
    "failed": "fail.",
}


def _data_warning(group: Sequence[Summary]) -> str:
    """``"; runs read 2 different data (sha256 ab12cd34ef56, ...)"`` when one task's runs
    read different data (`mixed_data`), else ``""``."""
    found = mixed_data(group)
    if not found:
        return ""
    return f"; runs read {len(found)} different data (sha256 {', '.join(h[:12] for h in found)})"


def _target_text(summary: Summary) -> str:
    if summary.target is None:
        return "-"
    return f"{summary.metric} {'>=' if summary.higher_is_better else '<='} {summary.target:g}"


def markdown_table(header: Sequence[str], table: Sequence[Sequence[str]]) -> list[str]:
    """A Markdown table (``|`` inside cells escaped)."""

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    return [line(header), "|" + "|".join("---" for _ in header) + "|", *map(line, table)]


def _sources(source: str | Sequence[str]) -> str:
    return " ".join(f"--db {s}" for s in ([source] if isinstance(source, str) else source))


def markdown(
    summaries: Sequence[Summary],
    runs: Sequence[StoredRun],
    plots: dict[str, list[str]],
    source: str | Sequence[str],
    profile: Profiles | None = None,
) -> str:
    """The report: the performance profiles over the tasks (when given), then per task the
    ranking, how it was tuned, the plots, every LR of the grids."""
    lines = ["# lrlab comparison", "", f"Regenerate with `lrlab report {_sources(source)}`.", ""]
    versions = sorted({json.dumps(r.record.versions, sort_keys=True) for r in runs if r.record})
    for version in versions:
        data = json.loads(version)
        lines.append(
            f"Runs made with lrlab {data.get('lrlab')}, torch {data.get('torch')}, "
            f"Python {data.get('python')}."
        )
    if profile is not None:
        lines += ["", *profile_markdown(profile, plots.get("profile", []))]
    for task, group in by_task(summaries).items():
        first = next((s.records[0] for s in group if s.records), None)
        lines += ["", f"## {group[0].title}", ""]
        if first is not None:
            config = first.config
            budget = (
                f"{config.steps} steps"
                if config.steps
                else f"{len(first.epochs)} epochs ({first.steps} steps)"
            )
            lines.append(
                f"Target: {_target_text(group[0])}, checked at the end of each epoch. "
                f"Budget: {budget}, {first.steps_per_epoch} steps per epoch. "
                f"Seeds per method: {max(s.runs for s in group)}."
            )
        found = mixed_data(group)
        if found:
            versions_by_method = "; ".join(
                f"{s.label}: {', '.join(h[:12] for h in s.data)}" for s in group if s.data
            )
            lines += [
                "",
                f"**Different data.** These runs read {len(found)} different versions of the "
                "task's data (SHA-256 in each record's `extra.data`), so their numbers are not "
                f"one measurement: {versions_by_method}.",
            ]
        lines += ["", *markdown_table(*rows(group)), ""]
        lines += [f"- {line}" for line in provenance(group)]
        for warning in grid_warnings(group):
            lines += ["", f"**{warning}**"]
        targeted = group[0].target is not None
        lines += [
            "",
            "Medians over seeds, [interquartile range]. "
            + (
                "`reached`: runs whose metric met the target; steps and time to target count "
                "a miss as infinite, so a median that falls on misses shows `-`, a quartile "
                "`miss`. "
                if targeted
                else "The task has no target: no steps to target, the ranking is by final metric. "
            )
            + "A diverged run's final metric counts as the worst (`diverged` where a median "
            "or quartile falls on one). `tuning`: the runs each method spent, its LR search "
            "and its fresh-seed runs included. A tuned method's LR is the grid LR that "
            + ("reached the target most often, then fastest, then with " if targeted else "had ")
            + "the best median final metric on the validation split (the training metric "
            "for a task without one), with the tuning seeds; every number shown then comes "
            "from its runs at that LR on fresh seeds, on the test split, which chose nothing. "
            "Where a method has no fresh-seed runs, its numbers come from the seeds that "
            "chose its LR, and the lines above the table say so: an optimistic estimate. "
            "The method's label shows its schedule at its LR, and `(edge)` marks an LR at the "
            "end of the grid. `no tuning` methods (LipschitzLR, the LR-free peers) ran once "
            "per seed and their `lr` column shows the first LR they used. " + RANKING_RULE,
        ]
        together = [r for s in group for r in s.records if "vectorized" in r.extra]
        if together:
            sizes = sorted({r.extra["vectorized"]["members"] for r in together})
            lines += [
                "",
                f"{len(together)} of the runs shown were trained together, in groups of "
                f"{sizes[0]}-{sizes[-1]} (`vectorize`): their times are each member's share of "
                "its group's time, so compare times only between runs of groups of one size "
                "(steps are the same as alone; `vectorize=off` times each run alone).",
            ]
        errors = [e for s in group for e in s.errors]
        if errors:
            lines += ["", "Failures: " + "; ".join(sorted(set(errors)))]
        for title, name in (
            (
                "Final validation metric against the LR, where each LR was chosen (median "
                "and interquartile band over the tuning seeds)",
                "sensitivity-validation",
            ),
            (
                "Final test metric against the LR (median and interquartile band over seeds)",
                "sensitivity-test",
            ),
            ("Training loss (smoothed, median over seeds)", "loss"),
            ("Learning rate per epoch", "lr"),
            ("Test metric per epoch", "metric"),
        ):
            for path in plots.get(f"{task}:{name}", []):
                lines += ["", f"### {title}", "", f"![{title}]({path})"]
        grid_lines = _grid_table(task, runs)
        if grid_lines:
            lines += ["", "### Every LR of the grids", "", *grid_lines]
    return "\n".join(lines) + "\n"


def _grid_table(task: str, runs: Sequence[StoredRun]) -> list[str]:
    table = []
    for method in methods([r for r in runs if r.config.task == task]):
        lrs = method.by_lr()
        if len(lrs) <= 1:
            continue
        label = method_labels([method])[id(method)]
        for lr, group in sorted(lrs.items(), key=lambda kv: kv[0] or 0.0):
            records = [r.record for r in group if r.record is not None]
            reached = sum(r.steps_to_target is not None for r in records)
            higher = records[0].higher_is_better if records else True
            final = final_spread(records, higher)
            diverged = sum(r.status == "diverged" for r in group)
            table.append(
                [
                    label,
                    _num(lr, 3),
                    f"{reached}/{len(group)}",
                    _spread(final, show=_final),
                    str(diverged),
                ]
            )
    if not table:
        return []
    return markdown_table(["method", "lr", "reached", "final metric", "diverged"], table)


def _speedup(speedup: Speedup | None) -> str:
    if speedup is None or speedup.value is None:
        return "-"
    return f"{speedup.value:.3g}x ({speedup.tasks}/{speedup.of})"


def profile_rows(profile: Profiles) -> tuple[list[str], list[list[str]]]:
    """The profiles as a table: per method (best steps score first), the tasks it reached,
    its integrated scores by steps and by seconds, its speedups over the baseline."""
    baseline = profile.baseline or "-"
    header = [
        "method",
        "reached",
        "score (steps)",
        "score (seconds)",
        f"speedup over {baseline} (steps)",
        "(seconds)",
    ]
    steps, seconds = profile.steps, profile.seconds
    table = [
        [
            method,
            f"{steps.reached(method)}/{len(steps.tasks)}",
            f"{steps.scores[method]:.3f}",
            f"{seconds.scores[method]:.3f}",
            _speedup(profile.speedups.get(method)),
            _speedup(profile.time_speedups.get(method)),
        ]
        for method in sorted(steps.methods, key=lambda m: (-steps.scores[m], m))
    ]
    return header, table


def profile_markdown(profile: Profiles, plot_files: Sequence[str] = ()) -> list[str]:
    """The Markdown section of the performance profiles."""
    steps = profile.steps
    lines = [
        f"## Performance profiles over {len(steps.tasks)} tasks",
        "",
        *markdown_table(*profile_rows(profile)),
        "",
        "Each method's cost on a task is its median over seeds of steps (or training seconds) "
        "to the target, a miss when that median is one; its ratio r to the best method's cost "
        "on the task, and rho(tau) the fraction of tasks with r <= tau (Dolan & Moré 2002). "
        f"`score`: AlgoPerf's integrated profile, the area under rho over tau in [1, "
        f"{steps.tau_max:g}] (trapezoid rule at {len(steps.taus)} points) over "
        f"{steps.tau_max - 1:g}: 1 for the fastest method on every task, 0 for one never "
        f"within {steps.tau_max:g}x the best. `speedup`: geometric mean over the tasks both "
        "it and the baseline reach (counted in brackets) of the baseline's cost over the "
        "method's (above 1: faster than the baseline). Methods are matched across tasks by "
        "their label without what is set per task (the LR, the schedule's numbers, run "
        "options that vary); a method not run on a task counts as a miss there.",
    ]
    if profile.left_out:
        lines += ["", "Left out (no target): " + ", ".join(profile.left_out) + "."]
    for path in plot_files:
        lines += ["", f"![Performance profiles]({path})"]
    return lines


def report_profiles(summaries: Sequence[Summary], baseline: str | None = None) -> Profiles | None:
    """The performance profiles a report shows: over the tasks with a target, when there are
    two or more of them (one task's profile is its ranking's ratios); ``None`` otherwise."""
    targeted = {s.task for s in summaries if s.target is not None}
    if len(targeted) < 2:
        if baseline is not None:
            raise ValueError(
                "baseline must be left out: performance profiles need two or more tasks with "
                f"a target (these runs have {len(targeted)}), got baseline={baseline!r}"
            )
        return None
    return profiles(summaries, baseline=baseline)


def profile_text(profile: Profiles, width: int | None = None) -> str:
    """The profiles' table as terminal text."""
    from rich.table import Table

    console = _console(width)
    header, table = profile_rows(profile)
    grid = Table(
        title=f"performance profiles over {len(profile.steps.tasks)} tasks",
        title_justify="left",
        box=None,
        pad_edge=False,
        show_edge=False,
        padding=(0, 1),
    )
    for i, name in enumerate(header):
        grid.add_column(name, overflow="fold", justify="left" if i == 0 else "right")
    for row in table:
        grid.add_row(*row)
    console.print(grid)
    return _text(console)


SUMMARY_COLUMNS = (
    "task",
    "rank",
    "method",
    "group",
    "lr",
    "lr_at_edge",
    "grid_size",
    "runs",
    "budget",
    "reached",
    "diverged",
    "failed",
    "median_steps_to_target",
    "median_time_to_target",
    "median_final",
    "final_q1",
    "final_q3",
    "median_best",
    "metric",
    "target",
)
RUN_COLUMNS = (
    "id",
    "task",
    "optimizer",
    "schedule",
    "lr",
    "seed",
    "status",
    "error",
    "steps",
    "wall_time",
    "final_metric",
    "best_metric",
    "steps_to_target",
    "time_to_target",
    "config",
)


def summary_rows(summaries: Sequence[Summary]) -> list[dict[str, object]]:
    """One plain row per method (the columns of ``summary.csv`` and of ``to_pandas``)."""
    table: list[dict[str, object]] = []
    for task, group in by_task(summaries).items():
        for rank, s in enumerate(group, 1):
            table.append(
                {
                    "task": task,
                    "rank": rank,
                    "method": s.label,
                    "group": s.group,
                    "lr": s.lr,
                    "lr_at_edge": s.lr_at_edge,
                    "grid_size": len(s.grid),
                    "runs": s.runs,
                    "budget": s.budget,
                    "reached": s.reached,
                    "diverged": s.diverged,
                    "failed": s.failed,
                    "median_steps_to_target": s.steps_to_target,
                    "median_time_to_target": s.time_to_target,
                    "median_final": s.final.median,
                    "final_q1": s.final.low,
                    "final_q3": s.final.high,
                    "median_best": s.best.median,
                    "metric": s.metric,
                    "target": s.target,
                }
            )
    return table


def run_rows(runs: Sequence[StoredRun]) -> list[dict[str, object]]:
    """One plain row per run (the columns of ``runs.csv``)."""
    table: list[dict[str, object]] = []
    for run in runs:
        r = run.record
        table.append(
            {
                "id": run.id,
                "task": run.config.task,
                "optimizer": run.config.optimizer,
                "schedule": run.config.schedule,
                "lr": run.config.lr,
                "seed": run.config.seed,
                "status": run.status,
                "error": run.error,
                "steps": r.steps if r else None,
                "wall_time": r.wall_time if r else None,
                "final_metric": r.final_metric if r else None,
                "best_metric": r.best_metric if r else None,
                "steps_to_target": r.steps_to_target if r else None,
                "time_to_target": r.time_to_target if r else None,
                "config": json.dumps(run.config.to_dict(), sort_keys=True),
            }
        )
    return table


def write_csv(summaries: Sequence[Summary], runs: Sequence[StoredRun], out: Path) -> list[Path]:
    """``summary.csv`` (one row per method) and ``runs.csv`` (one row per run)."""
    written = []
    for name, columns, table in (
        ("summary.csv", SUMMARY_COLUMNS, summary_rows(summaries)),
        ("runs.csv", RUN_COLUMNS, run_rows(runs)),
    ):
        path = out / name
        with path.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns)
            writer.writeheader()
            writer.writerows(table)
        written.append(path)
    return written


@dataclass(frozen=True)
class ReportFiles:
    markdown: Path
    csv: list[Path]
    plots: list[Path]


def write_report(
    runs: Sequence[StoredRun],
    out: Path,
    *,
    source: str | Sequence[str],
    loss_ylim: tuple[float, float] | None = None,
    baseline: str | None = None,
    optimistic: bool = False,
) -> tuple[list[Summary], ReportFiles]:
    """Summaries of ``runs`` and the report files under ``out`` (created; checked first by
    `lrlab.validate.check_output_path`): report.md, summary.csv, runs.csv, the plots per task
    and, over two or more tasks with a target, the performance profiles (``profile.png``;
    speedups over ``baseline``, see `lrlab.report.profiles.profiles`). ``source``: the
    store(s) the runs came from; ``optimistic``: `summarize`'s."""
    out = check_output_path("write_report", "out", out, directory=True)
    summaries = summarize(runs, optimistic=optimistic)
    profile = report_profiles(summaries, baseline)  # a bad baseline: before any file
    out.mkdir(parents=True, exist_ok=True)
    plots = write_plots(summaries, out, loss_ylim)
    if profile is not None:
        axes = plot_profiles(profile)
        save_figure(axes[0].figure, out / "profile.png")
        plots["profile"] = ["profile.png"]
    report = out / "report.md"
    report.write_text(markdown(summaries, runs, plots, source, profile))
    csv_files = write_csv(summaries, runs, out)
    return summaries, ReportFiles(
        report, csv_files, [out / p for names in plots.values() for p in names]
    )
