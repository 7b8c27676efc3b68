"""LR controllers: what sets the learning rate inside the engine's loop.

A controller is either a schedule (`ScheduleController`, a pure function of the step) or an
adaptive rule that looks at the model, the batch and the loss (LipschitzLR). The engine calls,
per run::

    start(context)                       once, after the optimizer exists
    on_epoch_start(epoch, step)          at the start of every epoch
    before_update(step, inputs, targets) after backward (and clipping), before
                                         optimizer.step(): set the LR (inputs, targets: the
                                         update's batch; with accumulation over a loader,
                                         its last micro-batch)
    after_update(step)                   after optimizer.step()
    on_epoch_end(epoch, step, stats)     after each epoch's metrics are measured

so a new controller plugs in without touching the loop.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import Tensor, device, nn
from torch.optim import Optimizer

from lrlab.callspec import CallSpec, SpecError, parse_call
from lrlab.record import EpochStats
from lrlab.registry import Registry, caller_source
from lrlab.schedules import SCHEDULES, Schedule, build
from lrlab.schedules.parse import missing_horizon
from lrlab.tasks.task import AnyData, LossKind, Task
from lrlab.torch_scheduler import ScheduleLR


@dataclass(frozen=True)
class TrainingContext:
    """What a controller may look at: the run's model, optimizer, data (on the run's device),
    loss kind, batching (``batch_size``: an update's, all its micro-batches), and whether the
    task's metric improves upwards."""

    model: nn.Module
    optimizer: Optimizer
    data: AnyData
    loss: LossKind | None  # None: the task's loss is a custom function
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

    def check_task(self, task: Task) -> None:
        """Refuse, with a one-line ``ValueError``, a task this controller cannot drive
        (called before the model is built)."""

    def check_lr(self, lr: float) -> None:
        """Refuse, with a one-line ``ValueError``, a base LR this controller cannot start from
        (a comparison calls it with each LR of its grid before any run)."""

    def check_accumulation(self, steps: int, *, streams: bool) -> None:
        """Refuse, with a one-line ``ValueError``, updates of ``steps`` micro-batches each
        (gradient accumulation; ``streams``: the task's batches come from a loader) when this
        controller reads what a forward pass sees and would see only a micro-batch."""

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

    def check_horizon(self, total_steps: int, base_lr: float) -> None:
        """Refuse, before training, a schedule whose LR for a group at ``base_lr`` overflows
        (or passes `lrlab.validate.MAX_LR`) at some step of a run of ``total_steps``."""
        self.schedule.check_steps(total_steps, scale=base_lr / self.schedule.reference_lr)

    def start(self, context: TrainingContext) -> None:
        groups = context.optimizer.param_groups
        self.check_horizon(context.total_steps, max(float(g["lr"]) for g in groups))
        self._scheduler = ScheduleLR(context.optimizer, self.schedule)

    def after_update(self, step: int) -> None:
        if self._scheduler is not None:
            self._scheduler.step()

    def state_dict(self) -> dict[str, Any]:
        return self._scheduler.state_dict() if self._scheduler is not None else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self._scheduler is not None and state:
            self._scheduler.load_state_dict(state)

    def skip_to(self, step: int) -> None:
        """Set the LRs to the schedule's at update ``step``, as if ``step`` updates had
        been made (a run continued from another run's state, `lrlab.engine.branching`)."""
        if self._scheduler is not None:
            state = self._scheduler.state_dict()
            state.update(last_epoch=step, _step_count=step + 1)
            self._scheduler.load_state_dict(state)


@dataclass(frozen=True)
class ControllerEntry:
    """An adaptive LR controller a spec can name.

    ``factory`` builds it from the spec's keyword arguments (``lipschitz(bound=smooth)`` ->
    ``factory(bound="smooth")``), or, when ``takes_spec``, from the parsed `CallSpec` itself;
    a ``"module:function"`` string is imported on first use, so naming a controller costs
    nothing until a run builds it. ``takes_lr``: whether the controller starts from a base LR
    that a comparison tunes over its LR grid (a plateau rule), or computes its own
    (LipschitzLR: such methods run once per seed, in the "no tuning" group).
    """

    factory: Callable[..., LRController] | str
    takes_lr: bool
    takes_spec: bool = False

    def build(self, call: CallSpec) -> LRController:
        factory = self.factory
        if isinstance(factory, str):
            module, _, function = factory.partition(":")
            factory = getattr(importlib.import_module(module), function)
        if self.takes_spec:
            controller = factory(call)
        else:
            if call.args:
                raise SpecError(
                    f"{call.name}: takes keyword arguments only, got {len(call.args)} positional"
                )
            controller = factory(**call.kwargs)
        if not isinstance(controller, LRController):
            raise TypeError(
                f"controller {call.name!r}: its factory returned {type(controller).__name__}, "
                "not an LRController"
            )
        return controller


#: Adaptive controllers by spec name: lrlab's, the ones users register, installed entry
#: points (group ``lrlab.controllers``).
def _entry_point_controller(name: str, value: object) -> ControllerEntry:
    """An ``lrlab.controllers`` entry point: a `ControllerEntry`, or a factory taking the
    spec's keyword arguments (a controller that starts from the run's LR)."""
    if isinstance(value, ControllerEntry):
        return value
    if callable(value):
        return ControllerEntry(value, takes_lr=True)
    raise ValueError(f"lrlab.controllers entry point {name!r} must be callable, got {value!r}")


CONTROLLERS: Registry[ControllerEntry] = Registry(
    "LR controller", "lrlab.controllers", _entry_point_controller
)
CONTROLLERS.register(
    "lipschitz",
    ControllerEntry("lrlab.lipschitz.controller:from_spec", takes_lr=False, takes_spec=True),
)
CONTROLLERS.register(
    "plateau",
    ControllerEntry("lrlab.plateau.controller:from_spec", takes_lr=True, takes_spec=True),
)


def register_controller(
    name: str,
    factory: Callable[..., LRController],
    *,
    takes_lr: bool = True,
    replace: bool = False,
) -> ControllerEntry:
    """Make an `LRController` available as ``name(...)`` in ``--schedule`` specs and sweeps.

    ``factory(**kwargs)`` gets the spec's keyword arguments and returns a fresh controller
    (check them there, so a bad spec fails before a sweep starts: lrlab builds one controller
    when it parses the spec). ``takes_lr=False`` for a rule that computes its own LR (such
    methods run once per seed in a comparison, whatever the LR grid). Register at a module's
    top level: sweep workers import that module again to see the name.
    """
    if not callable(factory):
        raise TypeError(f"register_controller: factory must be callable, got factory={factory!r}")
    if not isinstance(takes_lr, bool):
        raise TypeError(f"register_controller: takes_lr must be true or false, got {takes_lr!r}")
    if name in SCHEDULES:
        raise ValueError(f"register_controller: {name!r} is a schedule's name")
    entry = ControllerEntry(factory, takes_lr)
    CONTROLLERS.register(name, entry, replace=replace, source=caller_source(1))
    return entry


def controller_entry(spec: str) -> ControllerEntry | None:
    """The adaptive controller a spec names, or ``None`` for a schedule (or a bad spec)."""
    return CONTROLLERS.find(parse_call(spec).name)


def build_controller(
    spec: str, *, steps_per_epoch: int | None = None, total_steps: int | None = None
) -> LRController:
    """The controller a ``--schedule`` spec names: an adaptive rule from `CONTROLLERS`, else
    a schedule (``per_epoch(...)`` gets ``steps_per_epoch``; a schedule whose spec leaves
    its horizon out gets ``total_steps``, see `run_spec`)."""
    call: CallSpec = parse_call(spec)
    entry = CONTROLLERS.find(call.name)
    if entry is not None:
        return entry.build(call)
    if call.name not in SCHEDULES:
        known = ", ".join([*SCHEDULES, *CONTROLLERS])
        raise SpecError(f"unknown schedule {call.name!r}; known: {known}")
    return ScheduleController(build(call, steps_per_epoch=steps_per_epoch, horizon=total_steps))


def run_spec(spec: str, *, steps_per_epoch: int, total_steps: int) -> str:
    """The spec a run of ``total_steps`` steps records and runs: a schedule whose spec leaves
    its horizon out (`lrlab.Schedule.horizon`) runs its course over the whole run, and the
    spec says so (``cosine(lr=0.1)`` -> ``cosine(lr=0.1, steps=1000)``, written by
    `lrlab.Schedule.spec`); any other spec is returned as given, so stored runs keep their
    keys. `lrlab.train` and `lrlab.compare` put this spec in every run's config.

    >>> run_spec("cosine(lr=0.1, warmup=10)", steps_per_epoch=50, total_steps=500)
    'cosine(lr=0.1, steps=500, warmup=10)'
    >>> run_spec("cosine(lr=0.1, steps=100)", steps_per_epoch=50, total_steps=500)
    'cosine(lr=0.1, steps=100)'
    """
    call = parse_call(spec)
    cls = SCHEDULES.find(call.name) if CONTROLLERS.find(call.name) is None else None
    if cls is None or missing_horizon(cls, call) is None:
        return spec
    return build(call, steps_per_epoch=steps_per_epoch, horizon=total_steps).spec()
