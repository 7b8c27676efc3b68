"""Branching: runs that share a beginning train it once.

Runs that differ only in their schedule and length, and whose schedules give the same LRs for
their first updates (a warmup-stable-decay run and its shorter-budget siblings, whose cooldowns
start at different steps; two cooldown shapes from one stable phase), are the same run up to
the first update where their LRs part: same weights, same optimizer state, same batches, same
random draws. `train_branches` trains the longest of them (the *source*) once, takes a
`Snapshot` where each other run (a *branch*) parts from it, and continues each branch from its
snapshot under its own schedule. Each branch ends bit for bit where the same run trained from
scratch ends (the tests check it); it saves the steps it did not train again.

The snapshot is taken at the last epoch boundary at or before the step where the LRs part,
so the epoch that holds it is whole in both runs (an epoch's batch order is drawn for the
epoch's length; an epoch cut short by a shorter run would draw another). A branch that
parts from the source in its first epoch trains from scratch (``at == 0``).

What may differ between the source and a branch: ``lr`` and ``schedule`` (a closed-form
schedule, or none: a constant LR), ``steps``/``epochs``, and where checkpoints go. Everything
else must be equal; an adaptive controller (LipschitzLR, plateau) is refused, its LRs being
unknown until it trains. This is how the warmup-stable-decay papers run their cooldowns:
continued from checkpoints of one constant-LR run (Hägele et al. 2024, section 3; Hu et al.
2024, MiniCPM, section 4.1).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from lrlab.controllers import ScheduleController, build_controller
from lrlab.engine.loop import Snapshot, train_snapshots
from lrlab.engine.planning import Plan, plan, task_data
from lrlab.optimizers import optimizer_entry
from lrlab.record import RunConfig, RunRecord
from lrlab.tasks import Task, get_task

#: The fields a branch may change: its LRs (checked to be the source's up to where it
#: continues), its length, and where things live.
MAY_DIFFER = (
    "lr",
    "schedule",
    "steps",
    "epochs",
    "checkpoint_dir",
    "checkpoint_every",
    "checkpoint_seconds",
)


@dataclass(frozen=True)
class Branched:
    """The outcome of `train_branches`: the source run's record, each branch's record (in
    the order given) and the step each branch continued from (0: trained from scratch)."""

    source: RunRecord
    branches: list[RunRecord]
    at: list[int]

    @property
    def saved_steps(self) -> int:
        """The updates the branches did not train again."""
        return sum(self.at)


def lr_trace(config: RunConfig, resolved: Plan) -> list[float]:
    """The LR of each update of the run ``config`` (its first param group's), computed as
    the engine computes it, without training: a schedule's closed form scaled by the run's
    base LR (`lrlab.ScheduleLR`), or the constant LR. ``ValueError`` for a controller whose
    LRs are known only as it trains."""
    steps = resolved.total_steps
    if config.schedule is None:
        lr = config.lr
        if lr is None:
            lr = optimizer_entry(config.optimizer).defaults.get("lr")
        if lr is None:
            raise ValueError(
                f"branch: a run without a schedule needs an lr, got lr=None for optimizer="
                f"{config.optimizer!r}"
            )
        return [float(lr)] * steps
    controller = build_controller(config.schedule, steps_per_epoch=resolved.steps_per_epoch)
    if not isinstance(controller, ScheduleController):
        raise ValueError(
            f"branch: schedule must be a closed-form schedule (its LRs known before training), "
            f"got schedule={config.schedule!r}"
        )
    schedule = controller.schedule
    reference = schedule.reference_lr
    base = config.lr if config.lr is not None else reference
    return [schedule(step) * (base / reference) for step in range(steps)]


def branch_step(source: list[float], branch: list[float], steps_per_epoch: int) -> int:
    """Where a branch continues from the source: the last epoch boundary at or before the
    first update whose LR differs (or before the shorter run ends).

    >>> branch_step([1.0] * 10, [1.0] * 7 + [0.5] * 3, steps_per_epoch=3)
    6
    >>> branch_step([1.0] * 10, [1.0] * 6, steps_per_epoch=4)
    4
    """
    length = min(len(source), len(branch))
    part = next((i for i in range(length) if source[i] != branch[i]), length)
    return part - part % steps_per_epoch


def check_branches(source: RunConfig, branches: Sequence[RunConfig]) -> None:
    """Refuse, in one line naming the field, a branch that differs from the source in
    anything but `MAY_DIFFER`."""
    if not branches:
        raise ValueError("branch: give at least one branch, got branches=[]")
    mine = dataclasses.asdict(source)
    for index, branch in enumerate(branches):
        if not isinstance(branch, RunConfig):
            raise TypeError(f"branch: branches[{index}] must be a RunConfig, got {branch!r}")
        theirs = dataclasses.asdict(branch)
        for name, value in theirs.items():
            if name not in MAY_DIFFER and value != mine[name]:
                raise ValueError(
                    f"branch: branches[{index}] differs from the source in {name} "
                    f"({value!r} against {mine[name]!r}); a branch continues the source run, "
                    "so only its lr, schedule and length may differ"
                )


def train_branches(
    source: RunConfig, branches: Sequence[RunConfig], *, task: Task | None = None
) -> Branched:
    """Train ``source`` once and each of ``branches`` from the source's state where its LRs
    part from the source's (see the module's docstring); `lrlab.branch` builds the configs
    from `lrlab.train`'s arguments, this takes them as a sweep or a study builds them.
    Everything is checked before anything trains. A branch that parts from the source after
    the source diverged or ended trains from scratch, as one that parts in the first epoch
    does."""
    branches = list(branches)
    check_branches(source, branches)
    task = task if task is not None else get_task(source.task)
    runs = [source, *branches]
    plans = [plan(config, task_data(config, task), task) for config in runs]
    traces = [lr_trace(config, resolved) for config, resolved in zip(runs, plans, strict=True)]
    steps_per_epoch = plans[0].steps_per_epoch
    at = [branch_step(traces[0], trace, steps_per_epoch) for trace in traces[1:]]
    record, snapshots = train_snapshots(source, task=task, snapshot_at={s for s in at if s})
    taken: dict[int, Snapshot] = {snapshot.step: snapshot for snapshot in snapshots}
    records, used = [], []
    for config, step in zip(branches, at, strict=True):
        start = taken.get(step)
        branch, _ = train_snapshots(config, task=task, start=start)
        records.append(branch)
        used.append(step if start is not None else 0)
    return Branched(record, records, used)
