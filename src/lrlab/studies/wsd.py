"""The warmup-stable-decay study: WSD against cosine on the ``lm`` task, the claims of Hägele et
al. 2024 and MiniCPM (Hu et al. 2024) beside lrlab's measurements. It writes docs/wsd.md
(``lrlab study wsd --out docs``).

The claims (their words are in ``data/wsd.toml``): a constant LR followed by a short cooldown
(about 20% of training, best in the ``1 - sqrt`` shape) matches or beats cosine's final loss
(Hägele et al.); a decay over about 10% of training reaches a loss comparable to cosine's
(MiniCPM); and one stable run can be continued into a cooldown at several budgets, so it
serves them all.

The protocol is lrlab's honest one. Schedules: ``cosine`` to a tenth of the peak (the
Chinchilla convention Hägele et al. compare against) and ``wsd`` with linear and ``1 - sqrt``
cooldowns over 10% and 20% of the run (to zero), all with the same linear warmup. Each
schedule's peak LR is chosen by `lrlab.compare` on the validation split at the middle budget
with the tuning seeds (a small log grid), and then every schedule runs at its chosen peak at
every budget on fresh seeds; every number of the page is a fresh-seed run's final bits per
byte on the test split. "Matches or beats" is judged seed by seed, against cosine on the same
fresh seed, within the tolerance of ``data/wsd.toml`` (about the seed-to-seed spread).

Branching (``branch=True``): on every fresh seed, the longest budget's ``wsd 1-sqrt 20%`` run
is trained once more with each shorter budget's run branching off it where the shorter run's
cooldown starts (`lrlab.train_branches`: before it the two runs have the same warmup and
the same constant LR, so the same state); each branched run must end bit for bit where the
stored run trained from scratch ends, and the page states the steps this saves.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import lrlab
from lrlab import RunConfig
from lrlab.report import plot_per_epoch, summarize
from lrlab.studies.published import load
from lrlab.studies.runner import (
    check_count,
    check_store,
    check_task,
    new_axes,
    run_configs,
    save_plot,
)
from lrlab.studies.verdict import Overall, count_holding, spread

if TYPE_CHECKING:
    from lrlab import StoredRun
    from lrlab.studies.runner import Progress

NAME = "wsd"
TASK = "lm"
OPTIMIZER = "adamw"
BUDGETS = (200, 400, 800)
HOLDOUT_SEEDS = 3
SEEDS = 1
LR_GRID = (5e-4, 1e-3, 2e-3, 4e-3)
WARMUP = 20
COSINE = "cosine"
#: The schedules by label, each a spec at peak 1 for a run of ``{steps}`` steps (ScheduleLR
#: scales it by the run's LR).
SCHEDULES = {
    COSINE: "cosine(lr=1, steps={steps}, warmup={warmup}, end=0.1)",
    "wsd linear 10%": "wsd(lr=1, steps={steps}, warmup={warmup}, decay=0.1)",
    "wsd linear 20%": "wsd(lr=1, steps={steps}, warmup={warmup}, decay=0.2)",
    "wsd 1-sqrt 10%": "wsd(lr=1, steps={steps}, warmup={warmup}, decay=0.1, shape=sqrt)",
    "wsd 1-sqrt 20%": "wsd(lr=1, steps={steps}, warmup={warmup}, decay=0.2, shape=sqrt)",
}
BRANCHED = "wsd 1-sqrt 20%"


def spec(label: str, steps: int, warmup: int = WARMUP) -> str:
    return SCHEDULES[label].format(steps=steps, warmup=warmup)


def fresh_seeds(count: int) -> range:
    return range(lrlab.HOLDOUT_SEEDS_FROM, lrlab.HOLDOUT_SEEDS_FROM + count)


@dataclass(frozen=True)
class Settings:
    task: str
    optimizer: str
    budgets: tuple[int, ...]
    seeds: int  # tuning seeds
    holdout_seeds: int  # fresh seeds
    lr_grid: tuple[float, ...]
    warmup: int
    out: Path
    db: Path

    @property
    def middle(self) -> int:
        """The budget the peak LRs are tuned at."""
        return self.budgets[len(self.budgets) // 2]

    def command(self) -> str:
        parts = [f"lrlab study wsd --out {self.out}"]
        if self.task != TASK:
            parts.append(f"--task {self.task}")
        if self.optimizer != OPTIMIZER:
            parts.append(f"--optimizer {self.optimizer}")
        if self.budgets != BUDGETS:
            parts.append(f"--budgets {','.join(map(str, self.budgets))}")
        if self.seeds != SEEDS:
            parts.append(f"--seeds {self.seeds}")
        if self.holdout_seeds != HOLDOUT_SEEDS:
            parts.append(f"--holdout-seeds {self.holdout_seeds}")
        if self.lr_grid != LR_GRID:
            parts.append(f"--lr-grid {','.join(f'{v:g}' for v in self.lr_grid)}")
        if self.warmup != WARMUP:
            parts.append(f"--warmup {self.warmup}")
        if self.db != self.out / NAME / "runs.sqlite":
            parts.append(f"--db {self.db}")
        return " ".join(parts)


@dataclass(frozen=True)
class Cell:
    """One schedule at one budget: its fresh-seed runs (by seed) and its chosen peak."""

    label: str
    budget: int
    lr: float
    runs: dict[int, StoredRun]

    def final(self, seed: int) -> float | None:
        run = self.runs.get(seed)
        return None if run is None or run.record is None else run.record.final_metric

    def finals(self) -> list[float | None]:
        return [self.final(seed) for seed in sorted(self.runs)]


def tune_peaks(settings: Settings, workers: int, progress: Progress | None) -> dict[str, float]:
    """Each schedule's peak LR, chosen by `lrlab.compare` on the validation split with the
    tuning seeds at the middle budget (its fresh-seed runs there are the middle budget's)."""
    middle = settings.middle
    result = lrlab.compare(
        settings.task,
        methods=[(settings.optimizer, spec(label, middle, settings.warmup)) for label in SCHEDULES],
        seeds=settings.seeds,
        lr_grid=settings.lr_grid,
        holdout_seeds=settings.holdout_seeds,
        steps=middle,
        db=settings.db,
        workers=workers,
        progress=progress,
    )
    by_spec = {spec(label, middle, settings.warmup): label for label in SCHEDULES}
    peaks = {}
    for summary in result.summaries:
        config = summary.records[0].config
        if summary.lr is None or config.schedule not in by_spec:
            raise ValueError(f"wsd: no peak LR was chosen for {summary.label}")
        peaks[by_spec[config.schedule]] = float(summary.lr)
    return peaks


def configs(settings: Settings, peaks: dict[str, float]) -> list[RunConfig]:
    """Every schedule at its peak at every budget on the fresh seeds."""
    return [
        RunConfig(
            settings.task,
            settings.optimizer,
            lr=peaks[label],
            schedule=spec(label, budget, settings.warmup),
            seed=seed,
            steps=budget,
        )
        for budget in settings.budgets
        for label in SCHEDULES
        for seed in fresh_seeds(settings.holdout_seeds)
    ]


def cells(settings: Settings, peaks: dict[str, float], stored: Sequence[StoredRun]) -> list[Cell]:
    runs = {run.config.key(): run for run in stored}
    result = []
    for budget in settings.budgets:
        for label in SCHEDULES:
            by_seed = {}
            for seed in fresh_seeds(settings.holdout_seeds):
                key = RunConfig(
                    settings.task,
                    settings.optimizer,
                    lr=peaks[label],
                    schedule=spec(label, budget, settings.warmup),
                    seed=seed,
                    steps=budget,
                ).key()
                if key in runs:
                    by_seed[seed] = runs[key]
            result.append(Cell(label, budget, peaks[label], by_seed))
    return result


def metric_of(table: list[Cell]) -> tuple[str, bool]:
    """The runs' metric name and whether higher is better (bits per byte and ``False`` for
    the ``lm`` task)."""
    for cell in table:
        for run in cell.runs.values():
            if run.record is not None:
                return run.record.metric, run.record.higher_is_better
    return "metric", False


def holds(cell: Cell, baseline: Cell, tolerance: float, higher: bool = False) -> list[bool]:
    """Per fresh seed: ``cell``'s final metric matches or beats ``baseline``'s within
    ``tolerance`` (``higher``: higher is better; else lower, as bits per byte); a run
    without a final metric does not."""
    flags = []
    for seed in sorted(baseline.runs):
        mine, theirs = cell.final(seed), baseline.final(seed)
        if mine is None or theirs is None or not math.isfinite(mine):
            flags.append(False)
        else:
            flags.append(mine >= theirs - tolerance if higher else mine <= theirs + tolerance)
    return flags


def differences(cell: Cell, baseline: Cell) -> list[float]:
    """Per fresh seed, ``cell``'s final metric minus ``baseline``'s (where both have one)."""
    out = []
    for seed in sorted(baseline.runs):
        mine, theirs = cell.final(seed), baseline.final(seed)
        if mine is not None and theirs is not None:
            out.append(mine - theirs)
    return out


@dataclass(frozen=True)
class Verdict:
    claim: str
    overall: Overall
    text: str


def verdicts(table: list[Cell], budgets: Sequence[int], tolerance: float) -> list[Verdict]:
    """The claims against the cells: per budget and fresh seed, does the claim hold?"""
    at = {(c.label, c.budget): c for c in table}
    _, higher = metric_of(table)
    out = []

    def claim(name: str, label: str, against: str, words: str) -> None:
        flags: list[bool] = []
        parts = []
        for budget in budgets:
            mine, base = at[(label, budget)], at[(against, budget)]
            these = holds(mine, base, tolerance, higher)
            flags += these
            diff = differences(mine, base)
            median = statistics.median(diff) if diff else None
            parts.append(
                f"{budget} steps: {sum(these)}/{len(these)} seeds, median difference "
                f"{'-' if median is None else f'{median:+.3f}'}"
            )
        result = count_holding(flags)
        out.append(Verdict(name, result, f"{words}: {'; '.join(parts)}"))

    claim(
        "cooldown",
        "wsd 1-sqrt 20%",
        COSINE,
        "WSD with a 20% 1-sqrt cooldown matches or beats cosine",
    )
    claim("short", "wsd linear 10%", COSINE, "WSD with a 10% linear decay matches or beats cosine")
    claim(
        "shape",
        "wsd 1-sqrt 20%",
        "wsd linear 20%",
        "the 1-sqrt cooldown matches or beats the linear one (20%)",
    )
    return out


@dataclass(frozen=True)
class Branch:
    """A shorter budget's run continued from the longest run's state where its cooldown
    starts (`lrlab.branch`), against the same run trained from scratch, on one fresh seed."""

    budget: int
    seed: int
    start: int  # the step the branch continued from
    identical: bool  # its step losses and epoch metrics equal the scratch run's
    branched: float | None
    scratch: float | None


@dataclass(frozen=True)
class Branching:
    """Every branch, and the seconds they took with their sources."""

    branches: list[Branch]
    seconds: float
    scratch_steps: int  # the steps of the same runs trained from scratch

    @property
    def saved(self) -> int:
        return sum(b.start for b in self.branches)


def _plot_schedules(settings: Settings, peaks: dict[str, float], folder: Path) -> str:
    ax = new_axes(7.5, 4.0)
    budget = settings.budgets[-1]
    for label in SCHEDULES:
        schedule = lrlab.parse_schedule(spec(label, budget, settings.warmup))
        values = [peaks[label] * schedule(t) for t in range(budget)]
        ax.plot(range(budget), values, label=f"{label} (peak {peaks[label]:.3g})")
    ax.set_xlabel("step")
    ax.set_ylabel("learning rate")
    ax.set_title(f"The schedules at {budget} steps, each at its chosen peak")
    ax.legend(fontsize="small")
    return save_plot(ax, folder, "schedules.png")


def _plot_curves(table: list[Cell], budget: int, folder: Path) -> str:
    runs = [r for c in table if c.budget == budget for r in c.runs.values()]
    ax = plot_per_epoch(summarize(runs), "metric")
    metric = metric_of(table)[0].replace("_", " ")
    ax.set_title(f"Test {metric} per epoch at {budget} steps (median over fresh seeds)")
    return save_plot(ax, folder, f"curves-{budget}.png")


def document(
    settings: Settings,
    peaks: dict[str, float],
    table: list[Cell],
    found: list[Verdict],
    branching: Branching | None,
    images: list[str],
    tolerance: float,
) -> str:
    source = load(NAME)
    claims = {
        name: source.text(f"claims.{name}.wording") for name in ("cooldown", "short", "branch")
    }
    cited = {name: source.text(f"claims.{name}.source") for name in ("cooldown", "short", "branch")}
    metric, higher = metric_of(table)
    metric = metric.replace("_", " ")
    better = "higher" if higher else "lower"
    task = (
        "a byte-level transformer on CPython's reference documentation, next-byte "
        "cross-entropy, scored in bits per byte"
        if settings.task == TASK
        else f"scored in {metric}"
    )
    lines = [
        "# Warmup-stable-decay against cosine, measured",
        "",
        f"Source: {source.text('source.citation')}.",
        "",
        "The claims (lrlab's summary of each, with the section it summarises):",
        "",
        *[f"- {claims[name]} ({cited[name]})." for name in claims],
        "",
        "Regenerate everything here (runs are kept in the store and not redone):",
        "",
        "```bash",
        settings.command(),
        "```",
        "",
        "## Setup",
        "",
        f"- Task `{settings.task}` (`lrlab tasks`): {task} ({better} is "
        f"better); optimizer `{settings.optimizer}`; budgets "
        f"{', '.join(map(str, settings.budgets))} steps.",
        f"- Schedules, all with a linear warmup over the first {settings.warmup} steps: "
        "`cosine` to a tenth of the peak (the convention Hägele et al. compare against), and "
        "`wsd` holding the peak and then cooling down to zero over the last 10% or 20% of the "
        "run, linearly or in the `1 - sqrt` shape (`lrlab.Wsd`).",
        f"- Each schedule's peak LR is chosen by `lrlab compare` on the **validation split** "
        f"at {settings.middle} steps over {', '.join(f'{v:g}' for v in settings.lr_grid)} "
        f"with {settings.seeds} tuning seed(s); every schedule then runs at its peak at "
        f"every budget on {settings.holdout_seeds} **fresh seeds** "
        f"({', '.join(map(str, fresh_seeds(settings.holdout_seeds)))}), and every number below is "
        f"their final {metric} on the **test split**, which chose nothing.",
        f'- "Matches or beats": per fresh seed, within {tolerance:g} {metric} of the '
        "schedule it is compared with on the same seed (about the seed-to-seed spread of the "
        "lm task); a "
        "claim AGREES when it holds on every seed at every budget, PARTLY on some.",
        "",
        "## Results",
        "",
        f"Final test {metric}, median [min-max] over the fresh seeds; the chosen peak LR "
        "in the header.",
        "",
        "| budget | " + " | ".join(f"{label} ({peaks[label]:.3g})" for label in SCHEDULES) + " |",
        "|---|" + "---|" * len(SCHEDULES),
    ]
    at = {(c.label, c.budget): c for c in table}
    for budget in settings.budgets:
        row = [spread(at[(label, budget)].finals(), 4) for label in SCHEDULES]
        lines.append(f"| {budget} | " + " | ".join(row) + " |")
    lines += ["", "## Verdicts", ""]
    for verdict in found:
        lines.append(f"- **{verdict.overall}**: {verdict.text}.")
    if branching is not None:
        lines += _branching_lines(settings, branching)
    lines += ["", *images, ""]
    return "\n".join(lines)


def run_study(
    out: str | Path,
    *,
    task: str = TASK,
    optimizer: str = OPTIMIZER,
    budgets: Sequence[int] = BUDGETS,
    seeds: int = SEEDS,
    holdout_seeds: int = HOLDOUT_SEEDS,
    lr_grid: Sequence[float] = LR_GRID,
    warmup: int = WARMUP,
    workers: int = 1,
    db: str | Path | None = None,
    branch: bool = True,
    progress: Progress | None = None,
    echo: Callable[[str], None] | None = None,
) -> Path:
    """Run the study and write ``out/wsd.md`` with its plots in ``out/wsd/``; return the page.

    Every argument is checked before anything runs; runs are stored in ``db`` (default
    ``out/wsd/runs.sqlite``), so a rerun resumes."""
    settings = _settings(out, task, optimizer, budgets, seeds, holdout_seeds, lr_grid, warmup, db)
    check_count("workers", workers)
    check_store(settings.db)
    peaks = tune_peaks(settings, workers, progress)
    if echo is not None:
        echo("peaks: " + ", ".join(f"{k} {v:g}" for k, v in peaks.items()))
    _, stored = run_configs(
        settings.db, configs(settings, peaks), workers=workers, progress=progress
    )
    table = cells(settings, peaks, stored)
    tolerance = load(NAME).number("tolerance.value")
    found = verdicts(table, settings.budgets, tolerance)
    branching = _branches(settings, peaks, table) if branch and len(settings.budgets) > 1 else None
    folder = settings.out / NAME
    images = [
        _plot_schedules(settings, peaks, folder),
        _plot_curves(table, settings.budgets[-1], folder),
    ]
    page = settings.out / f"{NAME}.md"
    page.write_text(
        document(settings, peaks, table, found, branching, images, tolerance), encoding="utf-8"
    )
    return page


def _branching_lines(settings: Settings, branching: Branching) -> list[str]:
    branches = branching.branches
    same = all(b.identical for b in branches)
    longest = settings.budgets[-1]
    per_budget = []
    for budget in settings.budgets[:-1]:
        these = [b for b in branches if b.budget == budget]
        per_budget.append(
            f"{budget} steps continued from step {these[0].start} of the {longest}-step run "
            f"on {sum(b.identical for b in these)}/{len(these)} seeds bit for bit the run "
            f"from scratch (final {spread([b.branched for b in these], 4)} against "
            f"{spread([b.scratch for b in these], 4)})"
        )
    return [
        f"- **{'AGREES' if same else 'DISAGREES'}** (branching, `{BRANCHED}`, `lrlab.branch`): "
        + "; ".join(per_budget)
        + f". {branching.saved} of {branching.scratch_steps} steps were not trained again "
        f"({branching.saved / branching.scratch_steps:.0%}); the {longest}-step runs and their "
        f"branches took {branching.seconds:.0f} s."
    ]


def _branches(settings: Settings, peaks: dict[str, float], table: list[Cell]) -> Branching:
    """Each shorter budget's `BRANCHED` run continued from the longest one's state where
    its own cooldown starts (`lrlab.engine.branching`), on every fresh seed, against the
    stored runs from scratch."""
    longest = settings.budgets[-1]
    at = {(c.label, c.budget): c for c in table}
    out, seconds = [], 0.0
    for seed in fresh_seeds(settings.holdout_seeds):
        source, *branches = (
            RunConfig(
                settings.task,
                settings.optimizer,
                lr=peaks[BRANCHED],
                schedule=spec(BRANCHED, budget, settings.warmup),
                seed=seed,
                steps=budget,
            )
            for budget in (longest, *settings.budgets[:-1])
        )
        began = time.perf_counter()
        result = lrlab.train_branches(source, branches)
        seconds += time.perf_counter() - began
        for config, record, start in zip(branches, result.branches, result.at, strict=True):
            stored = at[(BRANCHED, config.steps)].runs.get(seed)  # type: ignore[index]
            scratch = stored.record if stored is not None else None
            identical = (
                scratch is not None
                and record.step_loss == scratch.step_loss
                and [e.metric for e in record.epochs] == [e.metric for e in scratch.epochs]
            )
            out.append(
                Branch(
                    config.steps,  # type: ignore[arg-type]
                    seed,
                    start,
                    identical,
                    record.final_metric,
                    None if scratch is None else scratch.final_metric,
                )
            )
    return Branching(out, seconds, sum(settings.budgets) * settings.holdout_seeds)


def _settings(
    out: str | Path,
    task: str,
    optimizer: str,
    budgets: Sequence[int],
    seeds: int,
    holdout_seeds: int,
    lr_grid: Sequence[float],
    warmup: int,
    db: str | Path | None,
) -> Settings:
    check_task(task)
    lrlab.OPTIMIZERS.lookup(optimizer)
    for name, value in (("budgets", budgets), ("lr_grid", lr_grid)):
        if isinstance(value, str | bytes) or not isinstance(value, Sequence) or not value:
            raise ValueError(f"{name} must be a non-empty list, got {name}={value!r}")
    for budget in budgets:
        check_count("budgets", budget)
    ordered = tuple(sorted(set(budgets)))
    check_count("seeds", seeds)
    check_count("holdout_seeds", holdout_seeds)
    check_count("warmup", warmup, minimum=0)
    if warmup >= ordered[0] - round(0.2 * ordered[0]):
        raise ValueError(
            f"warmup must end before the shortest budget's cooldown starts, got warmup={warmup} "
            f"and budgets={list(ordered)}"
        )
    for lr in lr_grid:
        if isinstance(lr, bool) or not isinstance(lr, int | float) or not (0 < lr < math.inf):
            raise ValueError(f"lr_grid values must be finite and > 0, got lr_grid={lr_grid!r}")
    folder = Path(out)
    return Settings(
        task,
        optimizer,
        ordered,
        seeds,
        holdout_seeds,
        tuple(float(v) for v in lr_grid),
        warmup,
        folder,
        Path(db) if db is not None else folder / NAME / "runs.sqlite",
    )
