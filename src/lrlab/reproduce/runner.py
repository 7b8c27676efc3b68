"""What every reproduction shares: the options, the runs an experiment plans, running them
(stored and resumable, like ``lrlab compare``) and writing the one report.

An experiment is two functions. ``plan(options)`` lists its methods and one `RunConfig` per
method and seed; ``section(results, options)`` turns the finished runs into a report section
(Markdown, plots) and its verdict lines. `reproduce` runs the plans of all the experiments
asked for in one process pool, longest runs first, so ``lrlab reproduce all`` keeps both
cores busy to the end, and a run already in the store is never run again.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lrlab.record import RunConfig, RunRecord
from lrlab.report.render import markdown_table as markdown_table  # the seeds use it
from lrlab.validate import MAX_SEEDS, MAX_STEPS, MAX_WORKERS, check_int

if TYPE_CHECKING:
    from lrlab.report import Summary
    from lrlab.store import Store, StoredRun
    from lrlab.sweep import Progress

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
        _check_count("workers", self.workers)
        for name in ("seeds", "epochs", "steps"):
            value = getattr(self, name)
            if value is not None:
                _check_count(name, value)

    @property
    def seed_list(self) -> tuple[int, ...]:
        return self.seeds_or(DEFAULT_SEEDS)

    def seeds_or(self, default: int) -> tuple[int, ...]:
        """Seeds ``0..N-1``: N from ``--seeds``, else ``default``."""
        return tuple(range(self.seeds if self.seeds is not None else default))


#: The bound of each count option (epochs bound too: every epoch is at least one step).
_MAXIMA = {"workers": MAX_WORKERS, "seeds": MAX_SEEDS, "epochs": MAX_STEPS, "steps": MAX_STEPS}


def _check_count(name: str, value: object) -> None:
    check_int("", name, value, minimum=1, maximum=_MAXIMA[name])


@dataclass(frozen=True)
class Method:
    """One configuration an experiment runs over seeds. ``cost`` is a rough estimate of a
    run's seconds at the default budget, used only to start the longest runs first."""

    key: str
    label: str
    optimizer: str
    schedule: str | None = None
    lr: float | None = None
    optimizer_args: Mapping[str, Any] = field(default_factory=dict)
    cost: float = 1.0

    def config(self, seed: int, **run: Any) -> RunConfig:
        return RunConfig(
            optimizer=self.optimizer,
            schedule=self.schedule,
            lr=self.lr,
            optimizer_args=dict(self.optimizer_args),
            seed=seed,
            **run,
        )


@dataclass
class Plan:
    """An experiment's methods, each method's configs (one per seed, in seed order) and the
    facts its section needs (which task ran, why a part was skipped...)."""

    methods: dict[str, Method] = field(default_factory=dict)
    configs: dict[str, list[RunConfig]] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)

    def add(self, method: Method, seeds: Sequence[int], **run: Any) -> None:
        self.methods[method.key] = method
        self.configs[method.key] = [method.config(seed, **run) for seed in seeds]

    def all_configs(self) -> list[tuple[RunConfig, float]]:
        return [
            (config, self.methods[key].cost)
            for key, configs in self.configs.items()
            for config in configs
        ]


@dataclass(frozen=True)
class Results:
    """An experiment's finished runs, by method key, in seed order; ``out`` is where its
    plots go."""

    plan: Plan
    runs: dict[str, list[StoredRun]]
    out: Path

    def records(self, key: str) -> list[RunRecord]:
        """The method's runs that produced a record (done or diverged)."""
        return [r.record for r in self.runs.get(key, []) if r.record is not None]

    def failed(self, key: str) -> list[StoredRun]:
        return [r for r in self.runs.get(key, []) if r.record is None]

    def summaries(self, keys: Sequence[str] | None = None) -> list[Summary]:
        """`lrlab.report.summarize` of each method (for its plots), labelled with the
        experiment's own names, in the plan's order."""
        from dataclasses import replace

        from lrlab.report import summarize

        result = []
        for key in keys if keys is not None else list(self.plan.methods):
            runs = self.runs.get(key, [])
            if not any(r.record is not None for r in runs):
                continue
            (summary,) = summarize(runs)
            result.append(replace(summary, label=self.plan.methods[key].label))
        return result


@dataclass
class Section:
    """An experiment's part of the report: Markdown lines and its verdict lines (one line
    each, also printed at the end of the command)."""

    title: str
    lines: list[str]
    verdicts: list[str]


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
    stored: dict[str, StoredRun] = {}
    ran = 0
    if weighted:
        from lrlab.store import Store

        with Store(options.out / STORE_NAME) as store:
            ran = _run_missing(store, weighted, options, progress)
            keys = [config.key() for config, _ in weighted]
            stored = {run.config.key(): run for run in store.runs(keys=keys)}
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


def _run_missing(
    store: Store,
    weighted: list[tuple[RunConfig, float]],
    options: Options,
    progress: Progress | None,
) -> int:
    """Run the configs the store has not finished, longest first; store each as it ends."""
    from lrlab.executors import make_executor
    from lrlab.sweep import run_missing

    costs = {config.key(): cost for config, cost in reversed(weighted)}
    return run_missing(
        store,
        [config for config, _ in weighted],
        lambda runs: make_executor("local", workers=options.workers, runs=runs),
        progress,
        cost=lambda config: costs[config.key()],
        vectorize=options.vectorize,
        workers=options.workers,
    )


def _failures(results: Results) -> list[str]:
    """A note on runs that raised (no record): the tables leave them out."""
    failed = [run for key in results.plan.methods for run in results.failed(key)]
    if not failed:
        return []
    reasons = sorted({(run.error or "unknown error").splitlines()[0] for run in failed})
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
        lines += ["", f"## {section.title}", "", *section.lines]
    return "\n".join(lines).rstrip() + "\n"


# -- helpers the sections share ------------------------------------------------------------------


def last_epoch(record: RunRecord) -> tuple[float | None, float | None]:
    """The last epoch's running training loss and metric (what Keras prints at the end)."""
    if not record.epochs:
        return None, None
    epoch = record.epochs[-1]
    return epoch.train_loss, epoch.train_metric


def save_plot(ax: Any, out: Path, name: str, title: str | None = None) -> str:
    """Save ``ax``'s figure as ``out/name`` and return the Markdown image line (its text:
    ``title``, else the axes' title)."""
    from lrlab.plots import save_figure

    save_figure(ax.figure, out / name)
    return f"![{title or ax.get_title() or name}]({name})"


def errors(results: Results, key: str) -> list[str]:
    """The distinct first lines of the errors that ended the method's runs."""
    texts = [r.error for r in results.runs.get(key, []) if r.error]
    texts += [r.error for r in results.records(key) if r.error]
    return sorted({t.splitlines()[0] for t in texts if t})
