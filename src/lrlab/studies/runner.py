"""What every study shares: the reproductions' options, the runs an experiment plans, running
runs into a store (resumable, like ``lrlab compare``) and writing the one report; and the
plumbing a study needs below the public API (which data files are present, plots saved).

An experiment is two functions. ``plan(options)`` lists its arms and one `RunConfig` per arm
and seed; ``section(results, options)`` turns the finished runs into a report section
(Markdown, plots) and its verdict lines. `reproduce` runs the plans of all the experiments
asked for in one process pool, longest runs first, so ``lrlab reproduce all`` keeps both
cores busy to the end, and a run already in the store is never run again. `run_configs` is
that step alone, for studies that plan their own runs (``lrlab study``).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lrlab.errors import first_line
from lrlab.record import RunConfig, RunRecord
from lrlab.schedules import parse
from lrlab.validate import MAX_SEEDS, MAX_STEPS, MAX_WORKERS, check_int

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from lrlab.report import Summary
    from lrlab.schedules import Schedule
    from lrlab.store import StoredRun
    from lrlab.sweep import Progress as Progress  # for the studies' annotations
    from lrlab.tasks import TaskData

STORE_NAME = "reproduce.sqlite"
REPORT_NAME = "report.md"
DEFAULT_SEEDS = 5


@dataclass(frozen=True)
class Options:
    """The command line's knobs: ``seeds`` runs per method (seeds ``0..seeds-1``; ``None``:
    each experiment's own default, `DEFAULT_SEEDS` or more where runs are cheap); ``epochs``
    (and ``steps``, seeds 003 and 004) override the experiments' budgets; ``full`` asks for
    the published budgets where a CPU budget is the default (seed 004's 20 epochs, for a GPU);
    ``workers`` parallel runs; ``out`` the folder of the store, report and plots;
    ``vectorize``: train runs that differ only in seed, LR and schedule values together
    (`lrlab.sweep.run_missing`)."""

    out: Path
    seeds: int | None = None
    epochs: int | None = None
    steps: int | None = None
    workers: int = 1
    data_dir: str | None = None
    vectorize: bool = True
    full: bool = False

    def __post_init__(self) -> None:
        check_count("workers", self.workers)
        for name in ("seeds", "epochs", "steps"):
            value = getattr(self, name)
            if value is not None:
                check_count(name, value)

    @property
    def seed_list(self) -> tuple[int, ...]:
        return self.seeds_or(DEFAULT_SEEDS)

    def seeds_or(self, default: int) -> tuple[int, ...]:
        """Seeds ``0..N-1``: N from ``--seeds``, else ``default``."""
        return tuple(range(self.seeds if self.seeds is not None else default))


#: The bound of each count option (epochs bound too: every epoch is at least one step).
_MAXIMA = {
    "workers": MAX_WORKERS,
    "seeds": MAX_SEEDS,
    "holdout_seeds": MAX_SEEDS,
    "epochs": MAX_STEPS,
    "steps": MAX_STEPS,
    "budgets": MAX_STEPS,
    "warmup": MAX_STEPS,
}


def check_count(name: str, value: object, minimum: int = 1) -> int:
    """``value`` when it is an int in ``[minimum, bound]`` (the bound of ``name``'s kind of
    count); else a one-line error naming ``name``."""
    return check_int("", name, value, minimum=minimum, maximum=_MAXIMA[name])


@dataclass(frozen=True)
class Arm:
    """One configuration an experiment runs over seeds (an arm of the experiment; the report
    calls it a method). ``cost`` is a rough estimate of a run's seconds at the default
    budget, used only to start the longest runs first."""

    key: str
    label: str
    optimizer: str
    schedule: str | None = None
    lr: float | None = None
    optimizer_args: Mapping[str, Any] = field(default_factory=dict)
    cost: float = 1.0

    def config(self, seed: int, **run: Any) -> RunConfig:
        """The arm's run with ``seed``. A reproduction trains on the whole training data, as
        the source documents did (no validation split held out), unless ``run`` says so."""
        return RunConfig(
            optimizer=self.optimizer,
            schedule=self.schedule,
            lr=self.lr,
            optimizer_args=dict(self.optimizer_args),
            seed=seed,
            **{"validation": False, **run},
        )

    def lr_schedule(self, steps_per_epoch: int) -> Schedule:
        """The schedule the arm's spec describes, ``per_epoch(...)`` counted in epochs of
        ``steps_per_epoch`` steps (as the engine builds it); a ``ValueError`` for an arm at a
        constant LR."""
        if self.schedule is None:
            raise ValueError(f"arm {self.key}: no schedule (a constant LR)")
        return parse(self.schedule, steps_per_epoch=steps_per_epoch)


@dataclass
class Plan:
    """An experiment's arms, each arm's configs (one per seed, in seed order) and the facts
    its section needs (which task ran, why a part was skipped...)."""

    arms: dict[str, Arm] = field(default_factory=dict)
    configs: dict[str, list[RunConfig]] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)

    def add(self, arm: Arm, seeds: Sequence[int], **run: Any) -> None:
        self.arms[arm.key] = arm
        self.configs[arm.key] = [arm.config(seed, **run) for seed in seeds]

    def all_configs(self) -> list[tuple[RunConfig, float]]:
        return [
            (config, self.arms[key].cost)
            for key, configs in self.configs.items()
            for config in configs
        ]


@dataclass(frozen=True)
class Results:
    """An experiment's finished runs, by arm key, in seed order; ``out`` is where its
    plots go."""

    plan: Plan
    runs: dict[str, list[StoredRun]]
    out: Path

    def records(self, key: str) -> list[RunRecord]:
        """The arm's runs that produced a record (done or diverged)."""
        return [r.record for r in self.runs.get(key, []) if r.record is not None]

    def failed(self, key: str) -> list[StoredRun]:
        return [r for r in self.runs.get(key, []) if r.record is None]

    def summaries(self, keys: Sequence[str] | None = None) -> list[Summary]:
        """`lrlab.report.summarize` of each arm (for its plots), labelled with the
        experiment's own names, in the plan's order."""
        from dataclasses import replace

        from lrlab.report import summarize

        result = []
        for key in keys if keys is not None else list(self.plan.arms):
            runs = self.runs.get(key, [])
            if not any(r.record is not None for r in runs):
                continue
            (summary,) = summarize(runs)
            result.append(replace(summary, label=self.plan.arms[key].label))
        return result


@dataclass
class Section:
    """An experiment's part of the report: Markdown lines and its verdict lines (one line
    each, also printed at the end of the command); ``source``, the citation of the document
    whose numbers it sets beside lrlab's (its data file's ``source.citation``)."""

    title: str
    lines: list[str]
    verdicts: list[str]
    source: str = ""


@dataclass(frozen=True)
class Experiment:
    name: str
    title: str
    plan: Callable[[Options], Plan]
    section: Callable[[Results, Options], Section]


@dataclass(frozen=True)
class Reproduction:
    """What `reproduce` did: the report, each experiment's section, the run counts."""

    report: Path
    sections: list[Section]
    total: int
    ran: int
    elapsed: float


def reproduce(
    experiments: Sequence[Experiment], options: Options, progress: Progress | None = None
) -> Reproduction:
    """Plan every experiment, run what the store lacks, and write ``report.md``."""
    start = time.perf_counter()
    options.out.mkdir(parents=True, exist_ok=True)
    plans = [(experiment, experiment.plan(options)) for experiment in experiments]
    weighted = [item for _, plan in plans for item in plan.all_configs()]
    costs = {config.key(): cost for config, cost in reversed(weighted)}
    ran, finished = run_configs(
        options.out / STORE_NAME,
        [config for config, _ in weighted],
        workers=options.workers,
        vectorize=options.vectorize,
        cost=lambda config: costs[config.key()],
        progress=progress,
    )
    stored = {run.config.key(): run for run in finished}
    sections = []
    for experiment, plan in plans:
        runs = {
            key: [stored[c.key()] for c in configs if c.key() in stored]
            for key, configs in plan.configs.items()
        }
        results = Results(plan, runs, options.out)
        section = experiment.section(results, options)
        section.lines += _failures(results)
        sections.append(section)
    elapsed = time.perf_counter() - start
    total = len({config.key() for config, _ in weighted})
    report = options.out / REPORT_NAME
    report.write_text(_markdown(experiments, sections, options, stored, total, ran, elapsed))
    return Reproduction(report, sections, total, ran, elapsed)


def run_configs(
    db: Path,
    configs: Sequence[RunConfig],
    *,
    workers: int,
    vectorize: bool = True,
    threads: int = 1,
    cost: Callable[[RunConfig], float] | None = None,
    progress: Progress | None = None,
) -> tuple[int, list[StoredRun]]:
    """Run the ``configs`` the store at ``db`` has not finished on the local process pool
    (``workers`` at once, ``threads`` torch threads each; `lrlab.sweep.run_missing`: each
    stored as it ends, so a killed study resumes), the longest first when ``cost`` says;
    return how many ran now and the stored runs of ``configs``. ``vectorize=False`` trains
    every run alone, so its wall time is its own. Nothing to run opens no store."""
    if not configs:
        return 0, []
    from lrlab.execution import Executor, make_executor
    from lrlab.store import Store
    from lrlab.sweep import run_missing

    def executor_for(runs: int) -> Executor:
        return make_executor("local", workers=workers, threads=threads, runs=runs)

    with Store(db) as store:
        ran = run_missing(
            store,
            configs,
            executor_for,
            progress,
            cost=cost,
            vectorize=vectorize,
            workers=workers,
        )
        return ran, store.runs(keys=[config.key() for config in configs])


def check_store(db: Path) -> None:
    """Open the run store at ``db`` now (creating it when it does not exist), so that a file
    that is not an lrlab store, or one that cannot be written, is refused in one line before
    a study trains anything (`lrlab.store.Store`)."""
    from lrlab.store import Store

    with Store(db):
        pass


def _failures(results: Results) -> list[str]:
    """A note on runs that raised (no record): the tables leave them out."""
    failed = [run for key in results.plan.arms for run in results.failed(key)]
    if not failed:
        return []
    reasons = sorted({first_line(run.error or "unknown error") for run in failed})
    return [
        "",
        f"{len(failed)} runs failed without a record and are left out above (the next "
        f"`lrlab reproduce` retries them): {'; '.join(reasons)}",
    ]


def _markdown(
    experiments: Sequence[Experiment],
    sections: Sequence[Section],
    options: Options,
    stored: Mapping[str, StoredRun],
    total: int,
    ran: int,
    elapsed: float,
) -> str:
    names = " ".join(e.name for e in experiments)
    lines = [
        "# lrlab reproduce: the source documents' experiments beside their published numbers",
        "",
        f"Experiments: {names}. Seeds per method: "
        f"{options.seeds if options.seeds is not None else 'each experiment its own (below)'}. "
        f"Runs: {total} planned, {ran} run now, {total - ran} read from "
        f"`{STORE_NAME}` (a rerun skips finished runs). This pass took {elapsed:.0f} s with "
        f"{options.workers} worker(s), one torch thread each.",
    ]
    if options.epochs is not None or options.steps is not None:
        lines.append(
            f"Budgets overridden: epochs={options.epochs}, steps={options.steps} "
            "(the published numbers come from the full budgets)."
        )
    versions = sorted(
        {json.dumps(r.record.versions, sort_keys=True) for r in stored.values() if r.record}
    )
    for text in versions:
        data = json.loads(text)
        lines.append(
            f"Runs made with lrlab {data.get('lrlab')}, torch {data.get('torch')}, "
            f"Python {data.get('python')}, on {os.cpu_count()} CPU core(s) here."
        )
    lines += ["", "## Verdicts", ""]
    for section in sections:
        lines += [f"- {verdict}" for verdict in section.verdicts]
    lines += [
        "",
        "Verdict words: AGREES (lrlab's median is near every published value), PARTLY (a "
        "published value lies inside lrlab's spread but not at its median, or a claim holds "
        "in some seeds), DISAGREES (every published value lies beyond all of lrlab's runs).",
    ]
    for section in sections:
        lines += ["", f"## {section.title}", ""]
        if section.source:
            lines += [f"Source: {section.source}.", ""]
        lines += section.lines
    return "\n".join(lines).rstrip() + "\n"


# -- helpers the sections share ------------------------------------------------------------------


def last_epoch(record: RunRecord) -> tuple[float | None, float | None]:
    """The last epoch's running training loss and metric (what Keras prints at the end)."""
    if not record.epochs:
        return None, None
    epoch = record.epochs[-1]
    return epoch.train_loss, epoch.train_metric


def new_axes(width: float, height: float) -> Axes:
    """A fresh figure's axes, for a study's own plot (`lrlab.plots.new_axes`)."""
    from lrlab.plots import new_axes as axes

    return axes(width, height)


def save_plot(ax: Any, out: Path, name: str, title: str | None = None) -> str:
    """Save ``ax``'s figure as ``out/name`` (creating ``out``) and return the Markdown image
    line (its text: ``title``, else the axes' title)."""
    from lrlab.plots import save_figure

    save_figure(ax.figure, out / name)
    return f"![{title or ax.get_title() or name}]({name})"


def data_available(task: str, data_dir: str | None) -> tuple[bool, str]:
    """Whether the data files of ``task`` (one that reads them from a data directory:
    ``mnist``, ``cifar10``...) are in ``data_dir`` (or the default one), and what was found.
    Missing files mean the study's offline fallback; a corrupt file is an error
    (`lrlab.errors.DataError`), not a reason to skip."""
    from lrlab.data import resolve_data_dir
    from lrlab.errors import DataNotFoundError
    from lrlab.tasks import get_task

    directory = resolve_data_dir(data_dir)
    try:
        get_task(task).load(None, directory)
    except DataNotFoundError as error:
        return False, str(error)
    return True, f"{task} data files found in {directory}"


def check_task(task: str) -> None:
    """Refuse an unknown task name or a task reference that does not build, in one line
    (`lrlab.tasks.get_task`), before a study starts anything."""
    from lrlab.tasks import get_task

    get_task(task)


def tensor_data(task: str, split: str | None = None, data_dir: str | None = None) -> TaskData:
    """The in-memory tensors of one of lrlab's tasks (``x_train``, ``y_train``, ``x_test``,
    ``y_test``, ``train_size``), as a reproduction's run reads them: the whole training data,
    no validation split held out (`Arm.config`); cached per process."""
    from lrlab.tasks import load_tensor_data

    return load_tensor_data(task, split, data_dir, validation=False)


def errors(results: Results, key: str) -> list[str]:
    """The distinct first lines of the errors that ended the arm's runs."""
    texts = [r.error for r in results.runs.get(key, []) if r.error]
    texts += [r.error for r in results.records(key) if r.error]
    return sorted({first_line(t) for t in texts if t})
