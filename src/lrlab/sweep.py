"""Sweeps: the grid of runs a comparison performs, and running whatever a store lacks.

`Sweep` is the grid: optimizers x schedules x seeds (x an LR grid for the methods that take
one). Methods whose learning rate is not a hyperparameter, an adaptive controller that
computes its own (LipschitzLR) and the learning-rate-free optimizers, run once per seed
whatever ``lr_grid`` says; that is their "no tuning" group in the report. Every other method
runs every LR of the grid with every seed, so each tuned method gets the same budget.

`run_missing` is the one way lrlab runs a list of configs: it skips what the store has
finished, runs the rest on an executor (longest first when costs are given) and stores each
outcome as it arrives; `lrlab compare`, `lrlab.compare` and `lrlab reproduce` all use it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from lrlab.controllers import build_controller, controller_entry
from lrlab.execution import Outcome
from lrlab.optimizers import check_optimizer_args, optimizer_entry
from lrlab.record import HOLDOUT_SEEDS_FROM, RunConfig
from lrlab.store import Lease
from lrlab.validate import MAX_RUNS, check_lr
from lrlab.vectorize import plan_groups

if TYPE_CHECKING:
    from lrlab.execution import Executor
    from lrlab.store import Store

#: Seconds between looks at the store while every run left is held by another sweep.
POLL = 1.0


def is_self_tuning(optimizer: str, schedule: str | None) -> bool:
    """Whether a method sets its own LR: an adaptive controller that computes it, or an
    LR-free optimizer. Unknown names are a ``ValueError``."""

    if schedule is not None:
        entry = controller_entry(schedule)
        if entry is not None and not entry.takes_lr:
            return True
    return optimizer_entry(optimizer).lr_free


@dataclass(frozen=True)
class Sweep:
    """The grid of runs a comparison performs. ``None`` in ``schedules`` means a constant LR
    (the optimizer's default, or each grid value). ``run`` holds the other `RunConfig`
    fields every run shares (epochs, steps, batch_size, model, ...); ``extra`` the
    (optimizer, schedule) pairs beyond the grid.

    Two protocols. The honest one: `tuning_configs` (each tuned method's LR grid on the
    tuning ``seeds``) chooses every method's LR, then `fresh_configs` runs each method at
    its choice on ``fresh_seeds`` (`lrlab.record.HOLDOUT_SEEDS_FROM` and up), where it is
    scored. The optimistic one: `configs`, every method on ``seeds``, chosen and scored on
    the same runs."""

    task: str
    optimizers: tuple[str, ...]
    schedules: tuple[str | None, ...] = (None,)
    seeds: tuple[int, ...] = (0,)
    lr_grid: tuple[float, ...] | None = None
    run: dict[str, Any] = field(default_factory=dict)
    extra: tuple[tuple[str, str | None], ...] = ()
    fresh_seeds: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if not self.optimizers and not self.extra:
            raise ValueError(
                "optimizers must be at least one optimizer name (or give methods), "
                "got optimizers=[]"
            )
        if not self.seeds:
            raise ValueError("seeds must be at least 1, got seeds=0")
        if not self.schedules:
            raise ValueError("schedules must hold at least one schedule (None: constant)")
        if self.fresh_seeds:
            for seed in self.seeds:
                if seed >= HOLDOUT_SEEDS_FROM:
                    raise ValueError(
                        f"seeds must be below {HOLDOUT_SEEDS_FROM} (the fresh seeds start "
                        f"there), got a seed {seed}"
                    )
            for seed in self.fresh_seeds:
                if seed < HOLDOUT_SEEDS_FROM:
                    raise ValueError(
                        f"fresh seeds start at {HOLDOUT_SEEDS_FROM}, got "
                        f"fresh_seeds={list(self.fresh_seeds)}"
                    )
        if self.lr_grid is not None:
            if not self.lr_grid:
                raise ValueError("lr_grid must hold at least one LR, got lr_grid=[]")
            for i, lr in enumerate(self.lr_grid):
                check_lr("", lr, f"lr_grid[{i}]")

        args = self.run.get("optimizer_args")
        for name in [*self.optimizers, *(o for o, _ in self.extra)]:
            optimizer_entry(name)  # an unknown name fails before anything runs
            if args:
                check_optimizer_args(name, args)  # shared by all: every optimizer must take it
        for spec in [*self.schedules, *(s for _, s in self.extra)]:
            if spec is not None:
                build_controller(spec, steps_per_epoch=1)  # a bad spec, too
        per_seed = sum(len(self._lrs(o, s)) for o, s in self.methods())
        runs = per_seed * len(self.seeds) + len(self.methods()) * len(self.fresh_seeds)
        if runs > MAX_RUNS:
            raise ValueError(
                f"a comparison holds at most {MAX_RUNS} runs, got {runs} (methods x LRs x seeds)"
            )

    def _lrs(self, optimizer: str, schedule: str | None) -> tuple[float | None, ...]:
        """The base LRs a method runs at: each of the grid's, or its own (``None``)."""
        tuned = self.lr_grid is not None and not is_self_tuning(optimizer, schedule)
        return self.lr_grid if tuned and self.lr_grid else (None,)

    def methods(self) -> list[tuple[str, str | None]]:
        """The grid's (optimizer, schedule) pairs, then the extra ones, without repeats."""
        pairs = [(o, s) for o in self.optimizers for s in self.schedules] + list(self.extra)
        return list(dict.fromkeys(pairs))

    def configs(self) -> list[RunConfig]:
        """Every run of the grid on ``seeds``, seeds innermost (so partial results cover
        every method): the optimistic protocol's runs."""
        return [
            self._config(optimizer, schedule, lr, seed)
            for optimizer, schedule in self.methods()
            for lr in self._lrs(optimizer, schedule)
            for seed in self.seeds
        ]

    def tuning_configs(self) -> list[RunConfig]:
        """The runs that choose the LR of each method with an LR to choose (a grid, and a
        method that takes an LR): its grid on ``seeds``."""
        return [
            self._config(optimizer, schedule, lr, seed)
            for optimizer, schedule in self.methods()
            if len(lrs := self._lrs(optimizer, schedule)) > 1
            for lr in lrs
            for seed in self.seeds
        ]

    def fresh_configs(self, chosen: Mapping[str, float | None]) -> list[RunConfig]:
        """Every method at its LR on ``fresh_seeds``: ``chosen`` maps a method
        (`lrlab.record.RunConfig.method_id`) to the LR its tuning runs chose; a method with
        nothing to choose runs at its own LR (its schedule's, the optimizer's default, or the
        grid's only value)."""
        configs = []
        for optimizer, schedule in self.methods():
            lrs = self._lrs(optimizer, schedule)
            lr = lrs[0]
            if len(lrs) > 1:
                method = self._config(optimizer, schedule, None, 0).method_id()
                if method not in chosen:
                    raise ValueError(
                        f"sweep: no LR chosen for {optimizer} {schedule or ''}; "
                        "run its tuning configs first"
                    )
                lr = chosen[method]
            configs += [self._config(optimizer, schedule, lr, seed) for seed in self.fresh_seeds]
        return configs

    def _config(
        self, optimizer: str, schedule: str | None, lr: float | None, seed: int
    ) -> RunConfig:
        return RunConfig(
            task=self.task, optimizer=optimizer, lr=lr, schedule=schedule, seed=seed, **self.run
        )


class Progress(Protocol):
    """What `run_missing` reports while it runs (the CLI draws a progress bar)."""

    def start(self, total: int, stored: int, pending: int, store: Path) -> None: ...

    def grouped(self, groups: list[int], alone: list[tuple[RunConfig, str]]) -> None:
        """How the pending runs will train: the sizes of the vectorised groups, and each
        run that trains alone with the reason."""

    def update(self, outcome: Outcome) -> None: ...

    def close(self) -> None: ...


def run_missing(
    store: Store,
    configs: Sequence[RunConfig],
    executor: Executor | Callable[[int], Executor],
    progress: Progress | None = None,
    *,
    cost: Callable[[RunConfig], float] | None = None,
    poll: float = POLL,
    vectorize: bool = True,
    workers: int = 1,
) -> int:
    """Run the ``configs`` the store has not finished (done or diverged; failed runs run
    again), each once, storing every outcome as it arrives; return how many ran here.

    With ``vectorize`` (the default), runs that differ only in seed, LR and schedule (or
    optimizer hyperparameter) values train together as one vectorised model, a group per
    worker task (`lrlab.vectorize.plan_groups`, sized for ``workers``); each member's record
    equals its run alone. The rest run one by one, and ``progress.grouped`` says why.

    Each run is claimed in the store (`lrlab.store.Store.claim`) just before it starts, so
    sweeps that share a store split the work: a run another live sweep holds is left to it,
    and once everything left is held elsewhere this one waits (polling every ``poll``
    seconds) until those runs are stored, or takes over the ones whose sweep died. The store
    ends with each run exactly once.

    ``executor`` runs them, or builds the executor from the number of units pending (so a
    single one needs no process pool); it pulls each unit from an iterator as it has room,
    which is when its runs are claimed. With ``cost``, the longest units start first
    (stable: the given order within equal costs), which keeps every worker busy to the end.
    """

    finished = store.finished_keys()
    unique: dict[str, RunConfig] = {}
    for config in configs:
        unique.setdefault(config.key(), config)
    pending = [config for key, config in unique.items() if key not in finished]
    if progress is not None:
        progress.start(len(unique), len(unique) - len(pending), len(pending), store.path)
    if not pending:
        if progress is not None:
            progress.close()
        return 0
    units = _units(pending, vectorize, workers, progress)
    if cost is not None:
        units.sort(key=lambda unit: -sum(cost(config) for config in unit) / len(unit))
    runner: Executor | None = None
    lease = Lease.new()
    order = [[config.key() for config in unit] for unit in units]
    settled: set[str] = set()  # stored by another sweep while this one ran (or waited)
    busy: set[str] = set()  # seen held by another sweep
    ran: set[str] = set()

    def on_result(outcome: Outcome) -> None:
        store.put(outcome.config, outcome.record, outcome.error)
        if progress is not None:
            progress.update(outcome)

    def settle(keys: frozenset[str]) -> None:
        """Count runs another sweep stored as finished here too (the progress bar moves)."""
        new = keys - settled
        settled.update(new)
        if progress is not None and new:
            for run in store.runs(keys=new):
                progress.update(Outcome(run.config, run.record, run.error))

    def left(unit: list[str]) -> list[str]:
        return [key for key in unit if key not in settled and key not in ran]

    def claims() -> Iterator[list[RunConfig]]:
        """The units this sweep may start, their runs claimed as the executor asks for the
        unit (a run another sweep holds or has stored is dropped from it)."""
        for unit in order:
            claimed = []
            for key in left(unit):
                claim = store.claim([key], lease, seen_busy=busy)
                settle(claim.finished)
                busy.update(claim.busy)
                if claim.key is not None:
                    ran.add(claim.key)
                    claimed.append(unique[claim.key])
            if claimed:
                yield claimed

    try:
        with store.holding(lease):
            while True:
                if runner is None:
                    runner = executor(len(units)) if callable(executor) else executor
                runner.run_groups(claims(), on_result)
                if not any(left(unit) for unit in order):
                    break
                time.sleep(poll)  # the rest is held by other sweeps: wait for them
    finally:
        if progress is not None:
            progress.close()
    return len(ran)


def _units(
    pending: list[RunConfig], vectorize: bool, workers: int, progress: Progress | None
) -> list[list[RunConfig]]:
    """The pending runs as units of work: vectorised groups and runs alone, in the order of
    their first run."""
    if not vectorize or len(pending) < 2:
        return [[config] for config in pending]

    groups, alone = plan_groups(pending, workers=workers)
    if progress is not None:
        progress.grouped([len(group) for group in groups], alone)
    units = [list(group) for group in groups] + [[config] for config, _ in alone]
    position = {config.key(): i for i, config in enumerate(pending)}
    units.sort(key=lambda unit: min(position[config.key()] for config in unit))
    return units
