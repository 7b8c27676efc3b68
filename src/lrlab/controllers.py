"""LR controllers: what sets the learning rate inside the engine's loop.

A controller is either a schedule (`ScheduleController`, a pure function of the step) or an
adaptive rule that looks at the model, the batch and the loss (LipschitzLR). The engine calls,
per run::

    start(context)                       once, after the optimizer exists
    on_epoch_start(epoch, step)          at the start of every epoch
    before_update(step, inputs, targets) after backward, before optimizer.step(): set the LR
    after_update(step)                   after optimizer.step()
    on_epoch_end(epoch, step, stats)     after each epoch's metrics are measured

so a new controller plugs in without touching the loop.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from torch import Tensor, device, nn
from torch.optim import Optimizer

from lrlab.callspec import CallSpec, SpecError, parse_call
from lrlab.record import EpochStats
from lrlab.schedules import SCHEDULES, Schedule, build
from lrlab.tasks.task import LossKind, TaskData
from lrlab.torch_scheduler import ScheduleLR


@dataclass(frozen=True)
class TrainingContext:
    """What a controller may look at: the run's model, optimizer, data (on the run's device),
    loss kind, batching, and whether the task's metric improves upwards."""

    model: nn.Module
    optimizer: Optimizer
    data: TaskData
    loss: LossKind
    batch_size: int
    steps_per_epoch: int
    total_steps: int
    device: device
    higher_is_better: bool = True


class LRController:
    """Base class: every hook does nothing. Subclasses set ``param_group["lr"]``."""

    spec: str = ""

    @property
    def initial_lr(self) -> float | None:
        """The base LR to build the optimizer with when the run gives none (``None``: the
        optimizer's default)."""
        return None

    def start(self, context: TrainingContext) -> None:
        """Called once, after the optimizer is built and before the first step."""

    def on_epoch_start(self, epoch: int, step: int) -> None:
        """Called at the start of each epoch (``step`` updates done so far)."""

    def before_update(self, step: int, inputs: Tensor, targets: Tensor) -> None:
        """Called after ``loss.backward()`` and before ``optimizer.step()`` of update ``step``."""

    def after_update(self, step: int) -> None:
        """Called after ``optimizer.step()`` of update ``step``."""

    def on_epoch_end(self, epoch: int, step: int, stats: EpochStats) -> None:
        """Called at the end of each epoch (``step`` updates done so far) once its metrics
        are measured, before the next epoch starts: the next epoch's LR may depend on them."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what `state_dict` returned."""

    def summary(self) -> dict[str, Any]:
        """Anything worth keeping in the run record (plain data)."""
        return {}

    def close(self) -> None:
        """Release what ``start`` attached (hooks); called when the run ends."""


class ScheduleController(LRController):
    """A schedule, applied through `lrlab.ScheduleLR` (one ``step()`` per update)."""

    def __init__(self, schedule: Schedule) -> None:
        self.schedule = schedule
        self.spec = schedule.spec()
        self._scheduler: ScheduleLR | None = None

    @property
    def initial_lr(self) -> float:
        return self.schedule.reference_lr

    def start(self, context: TrainingContext) -> None:
        self._scheduler = ScheduleLR(context.optimizer, self.schedule)

    def after_update(self, step: int) -> None:
        if self._scheduler is not None:
            self._scheduler.step()

    def state_dict(self) -> dict[str, Any]:
        return self._scheduler.state_dict() if self._scheduler is not None else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self._scheduler is not None and state:
            self._scheduler.load_state_dict(state)


# Adaptive controllers by spec name: "module:function", the function taking the parsed
# CallSpec. Imported only when named, so a schedule-only run never loads them.
ADAPTIVE: dict[str, str] = {
    "lipschitz": "lrlab.lipschitz.controller:from_spec",
    "plateau": "lrlab.plateau.controller:from_spec",
}

Factory = TypeVar("Factory", bound=Callable[..., LRController])


def takes_base_lr(factory: Factory) -> Factory:
    """Mark an adaptive controller's factory as starting from the run's base LR (``--lr``,
    ``--lr-grid``) rather than computing its own: a sweep tunes it like a schedule. Unmarked
    factories (LipschitzLR) set their own LR and run once per seed."""
    factory.takes_base_lr = True  # type: ignore[attr-defined]
    return factory


def adaptive_factory(name: str) -> Callable[[CallSpec], LRController]:
    """The factory `ADAPTIVE` names for ``name`` (imports its module)."""
    module, function = ADAPTIVE[name].split(":")
    factory: Callable[[CallSpec], LRController] = getattr(importlib.import_module(module), function)
    return factory


def sets_own_lr(name: str) -> bool:
    """Whether the adaptive controller ``name`` computes its LR itself (see `takes_base_lr`)."""
    return not getattr(adaptive_factory(name), "takes_base_lr", False)


def build_controller(spec: str, *, steps_per_epoch: int | None = None) -> LRController:
    """The controller a ``--schedule`` spec names: an adaptive rule from `ADAPTIVE`, else a
    schedule (``per_epoch(...)`` gets ``steps_per_epoch``)."""
    call: CallSpec = parse_call(spec)
    if call.name not in ADAPTIVE and call.name not in SCHEDULES:
        known = ", ".join([*SCHEDULES, *ADAPTIVE])
        raise SpecError(f"unknown schedule {call.name!r}; known: {known}")
    if call.name in ADAPTIVE:
        return adaptive_factory(call.name)(call)
    return ScheduleController(build(call, steps_per_epoch=steps_per_epoch))
