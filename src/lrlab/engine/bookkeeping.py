"""What a run writes into its `RunRecord` as it trains, written once: the engine's loop
(`lrlab.engine.loop`) keeps one `Bookkeeper` for its run, the vectorised loop
(`lrlab.vectorize.engine`) one per member, so a member's record is built by the same code as
the run's alone.

Per step: the loss of the batch (read before its update) and the LR of the update, in the
traces ``step_loss`` / ``step_lr``; the first non-finite loss ends the run as ``diverged`` at
that step (its loss and LR recorded, nothing after it). Per epoch: the LR of its first update,
the mean of its finite training losses, the running training metric and the held-out metrics
(validation and test) the loop measured, and the time so far (`EpochStats`). At the end: the
steps done, the times, the controller's summary and the first LR.
"""

from __future__ import annotations

import math
import platform
from collections.abc import Sequence

import torch

from lrlab._version import __version__
from lrlab.controllers import LRController, controller_entry
from lrlab.errors import first_line
from lrlab.optimizers import optimizer_entry
from lrlab.record import EpochStats, RunConfig, RunRecord
from lrlab.tasks import AnyData, Task, TaskData


def versions() -> dict[str, str]:
    return {"lrlab": __version__, "torch": torch.__version__, "python": platform.python_version()}


def new_record(
    config: RunConfig,
    task: Task,
    steps_per_epoch: int,
    device: torch.device,
    data: AnyData | None = None,
) -> RunRecord:
    """A run's record before its first step: what the report needs to know about the run's
    task and method (its metric and target, whether it sets its own LR), and what its data
    is (`TaskData.identity`, as ``extra["data"]``)."""
    entry = controller_entry(config.schedule) if config.schedule else None
    record = RunRecord(
        config=config,
        status="done",
        metric=task.metric_name,
        target=task.target,
        higher_is_better=bool(task.higher_is_better),
        steps_per_epoch=steps_per_epoch,
        device=str(device),
        versions=versions(),
        self_tuning=optimizer_entry(config.optimizer).lr_free
        or (entry is not None and not entry.takes_lr),
        task_name=task.name,
    )
    if isinstance(data, TaskData) and data.identity is not None:
        record.extra["data"] = dict(data.identity)
    return record


class Bookkeeper:
    """Writes one run's traces, divergence, epochs and end into its `RunRecord`."""

    def __init__(self, record: RunRecord) -> None:
        self.record = record

    @property
    def diverged(self) -> bool:
        return self.record.status == "diverged"

    def add_losses(self, first: int, values: Sequence[float]) -> int | None:
        """Record the losses of steps ``first, first + 1, ...``; at the first non-finite one,
        stop: return its step (the caller ends the run there with `diverge`), else ``None``.
        A finite sum means every value is finite (the common case, one check)."""
        if math.isfinite(sum(values)):
            self.record.step_loss.extend(values)
            return None
        for offset, value in enumerate(values):
            if not math.isfinite(value):
                return first + offset
            self.record.step_loss.append(value)
        return None  # (a sum that overflowed: every value finite and recorded)

    def add_lrs(self, values: Sequence[float]) -> None:
        """Record the LRs of the next updates."""
        self.record.step_lr.extend(values)

    def diverge(
        self, step: int, loss: float, lr: float, error: BaseException | None = None
    ) -> None:
        """End the run as ``diverged`` at ``step``: the traces hold every step before it,
        then this step's ``loss`` (non-finite, or NaN when ``error``, an ``ArithmeticError``
        from the LR controller, stopped it) and ``lr``; nothing after."""
        record = self.record
        del record.step_loss[step:], record.step_lr[step:]
        record.status = "diverged"
        record.diverged_at = step
        record.step_loss.append(loss)
        record.step_lr.append(float(lr))
        if error is not None:
            record.error = first_line(error)

    def close_epoch(
        self,
        epoch: int,
        begin: int,
        end: int,
        *,
        lr: float,
        train_metric: float | None,
        test_loss: float | None,
        test_metric: float | None,
        train_time: float,
        wall_time: float,
        val_loss: float | None = None,
        val_metric: float | None = None,
    ) -> EpochStats:
        """Append the statistics of the epoch of steps ``[begin, end)``: the LR of its first
        update (``lr`` when none was recorded: the LR it would have had), the mean of its
        finite training losses, and what the loop measured."""
        record = self.record
        trace = record.step_lr
        losses = [v for v in record.step_loss[begin:end] if v is not None and math.isfinite(v)]
        stats = EpochStats(
            epoch=epoch,
            step=end,
            lr=trace[begin] if begin < len(trace) else float(lr),
            train_loss=sum(losses) / len(losses) if losses else None,
            train_metric=train_metric,
            test_loss=test_loss,
            test_metric=test_metric,
            train_time=train_time,
            wall_time=wall_time,
            val_loss=val_loss,
            val_metric=val_metric,
        )
        record.epochs.append(stats)
        return stats

    def finish(
        self, steps: int, train_time: float, wall_time: float, controller: LRController | None
    ) -> RunRecord:
        """What the record learns when its run ends: the steps done, the times, the
        controller's summary, the first LR."""
        record = self.record
        record.steps = steps
        record.train_time = train_time
        record.wall_time = wall_time
        if controller is not None:
            record.extra["controller"] = {"spec": controller.spec, **controller.summary()}
        if record.step_lr:
            record.initial_lr = record.step_lr[0]
        return record
