"""Rendering: the ranking as a terminal table (rich, fitted to the terminal's width), Markdown
and CSV (``csv.DictWriter``); `write_report` writes them with the plots."""

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

from lrlab.report.plots import write_plots
from lrlab.report.summary import (
    Spread,
    Summary,
    by_task,
    method_labels,
    methods,
    mixed_data,
    summarize,
)
from lrlab.store import StoredRun


def _num(value: float | None, digits: int = 4) -> str:
    if value is None:
        return "-"
    return "miss" if math.isinf(value) else f"{value:.{digits}g}"


def _spread(spread: Spread, digits: int = 4) -> str:
    if spread.median is None:
        return "-"
    if spread.low == spread.high:
        return _num(spread.median, digits)
    return f"{_num(spread.median, digits)} [{_num(spread.low, digits)}-{_num(spread.high, digits)}]"


def rows(summaries: Sequence[Summary]) -> tuple[list[str], list[list[str]]]:
    """The ranking as a header and string rows (shared by the terminal and Markdown)."""
    metric = summaries[0].metric if summaries else "metric"
    header = [
        "#",
        "method",
        "tuning",
        "lr",
        "reached",
        "steps to target",
        "time to target (s)",
        f"final {metric}",
        f"best {metric}",
        "diverged",
        "failed",
    ]
    table = []
    for rank, s in enumerate(summaries, 1):
        table.append(
            [
                str(rank),
                s.label,
                s.tuning,
                "computed" if s.group == "no tuning" and s.lr is None else _num(s.lr, 3),
                f"{s.reached}/{s.runs}",
                _num(s.steps_to_target)
                + (
                    f" [{_num(s.steps_spread.low)}-{_num(s.steps_spread.high)}]"
                    if s.steps_to_target is not None and s.steps_spread.low != s.steps_spread.high
                    else ""
                ),
                _num(s.time_to_target, 3),
                _spread(s.final),
                _spread(s.best),
                str(s.diverged),
                str(s.failed),
            ]
        )
    return header, table


def terminal_table(summaries: Sequence[Summary], width: int | None = None) -> str:
    """The ranking as text, one table per task, fitted to ``width`` columns (default: the
    terminal's when standard output is one, else wide enough for every row on one line):
    the method and tuning columns wrap, the numbers never do."""
    from rich.console import Console
    from rich.table import Table

    if width is None:
        width = shutil.get_terminal_size((100, 24)).columns if sys.stdout.isatty() else 400
    console = Console(
        width=width,
        record=True,
        file=io.StringIO(),
        color_system=None,
        soft_wrap=False,
    )
    for group in by_task(summaries).values():
        header, table = rows(group)
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
            text = i in (1, 2)  # method, tuning: wrap at spaces
            spread = i in (5, 7, 8)  # "median [q1-q3]": may break before the bracket
            grid.add_column(
                name,
                overflow="fold",
                justify="left" if text else "right",
                no_wrap=not (text or spread),
                min_width=10 if text else (7 if spread else len(name)),
                ratio=2 if i == 1 else (1 if text or spread else None),
            )
        for row in table:
            grid.add_row(*row)
        console.print(grid)
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


def markdown(
    summaries: Sequence[Summary],
    runs: Sequence[StoredRun],
    plots: dict[str, list[str]],
    source: str,
) -> str:
    """The report: per task, the ranking, how it was tuned, the plots, every LR of the grids."""
    lines = ["# lrlab comparison", "", f"Regenerate with `lrlab report --db {source}`.", ""]
    versions = sorted({json.dumps(r.record.versions, sort_keys=True) for r in runs if r.record})
    for version in versions:
        data = json.loads(version)
        lines.append(
            f"Runs made with lrlab {data.get('lrlab')}, torch {data.get('torch')}, "
            f"Python {data.get('python')}."
        )
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
        lines += ["", *markdown_table(*rows(group))]
        lines += [
            "",
            "Medians over seeds, [interquartile range]. `reached`: runs whose metric "
            "met the target; steps and time to target count a miss as infinite, so a "
            "median that falls on misses shows `-`, a quartile `miss`. `tuning`: the runs "
            "each method spent, its LR search included. Tuned methods report the grid LR that "
            "reached the target most often, then fastest, then with the best median final "
            "metric, chosen on the same seeds it reports (an optimistic estimate for "
            "them); `no tuning` methods (LipschitzLR, the LR-free peers) ran once per seed "
            "and their `lr` column shows the first LR they used.",
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
            final = Spread.of([r.final_metric for r in records])
            diverged = sum(r.status == "diverged" for r in group)
            table.append(
                [label, _num(lr, 3), f"{reached}/{len(group)}", _spread(final), str(diverged)]
            )
    if not table:
        return []
    return markdown_table(["method", "lr", "reached", "final metric", "diverged"], table)


SUMMARY_COLUMNS = (
    "task",
    "rank",
    "method",
    "group",
    "lr",
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
    source: str,
    loss_ylim: tuple[float, float] | None = None,
) -> tuple[list[Summary], ReportFiles]:
    """Summaries of ``runs`` and the report files under ``out`` (created)."""
    out.mkdir(parents=True, exist_ok=True)
    summaries = summarize(runs)
    plots = write_plots(summaries, out, loss_ylim)
    report = out / "report.md"
    report.write_text(markdown(summaries, runs, plots, source))
    csv_files = write_csv(summaries, runs, out)
    return summaries, ReportFiles(
        report, csv_files, [out / p for names in plots.values() for p in names]
    )
