"""LipschitzLR inside lrlab's engine: the ``lipschitz(...)`` spec of ``--schedule``.

``lipschitz(bound=smooth, every=epoch)`` builds a `LipschitzController`; its arguments are
the fields of `lrlab.lipschitz.options.LipschitzOptions` (``loss`` among them only for a task
whose loss is a function of its own). The engine supplies the model, optimizer, loss and, for passes
over the training set, the training tensors in consecutive unshuffled batches, without
augmentation (as the authors' code passes ``x_train``).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from lrlab.callspec import CallSpec, SpecError
from lrlab.controllers import LRController, TrainingContext
from lrlab.lipschitz.options import OPTIONS, LipschitzOptions, unknown_option
from lrlab.lipschitz.scheduler import LipschitzLR
from lrlab.tasks.task import Task


class LipschitzController(LRController):
    """`LipschitzLR` driven by the engine's hooks."""

    def __init__(self, spec: str, options: LipschitzOptions) -> None:
        self.spec = spec
        self.options = options
        self.every = options.every
        self.scheduler: LipschitzLR | None = None

    @property
    def initial_lr(self) -> float | None:
        # AdaMo starts at x; otherwise LipschitzLR sets the LR itself before the first step.
        return float(self.options.initial_lr) if self.options.variant == "adamo" else None

    def check_task(self, task: Task) -> None:
        if task.loss_kind is None and self.options.loss is None:
            raise ValueError(
                f"lipschitz: the bounds need a known loss kind (cross_entropy, bce, mse), and "
                f"task {task.name}'s loss is the function {task.loss_name}; declare the kind "
                "it computes with lipschitz(loss=...)"
            )

    def check_accumulation(self, steps: int, *, streams: bool) -> None:
        """K is computed for a batch of the update's size: a pass over the tensors in batches
        of that size (``source=eval``) can, the training forwards (``every=batch``,
        ``source=train``) and a loader's own batches see micro-batches only."""
        if steps == 1:
            return
        if self.every == "batch" or self.options.source == "train" or streams:
            where = (
                "the task's loader"
                if streams
                else f"every={self.every}, source={self.options.source}"
            )
            raise ValueError(
                f"lipschitz: K needs the update's whole batch, and with {where} it sees "
                f"micro-batches; use source=eval on a task of tensors, or accumulation_steps=1, "
                f"got accumulation_steps={steps}"
            )

    def start(self, context: TrainingContext) -> None:
        loss = self.options.loss or context.loss
        if loss is None:  # check_task refused this before the run started
            raise ValueError("lipschitz: the task's loss is custom; declare lipschitz(loss=...)")
        # Keras' clipped cross-entropy has the softmax-CE gradient wherever it is not clipped
        # (and none where it is): the bounds are those of cross_entropy.
        if loss == "keras_cross_entropy":
            loss = "cross_entropy"
        batches = context.data.train_pass(context.batch_size)
        options = replace(self.options, loss=loss)
        self.scheduler = LipschitzLR(
            context.optimizer, context.model, data=batches, options=options
        )

    def on_epoch_start(self, epoch: int, step: int) -> None:
        if self.scheduler is not None and self.every == "epoch" and epoch > 0:
            self.scheduler.step()

    def after_update(self, step: int) -> None:
        if self.scheduler is not None and self.every == "batch":
            self.scheduler.step()

    def state_dict(self) -> dict[str, Any]:
        return self.scheduler.state_dict() if self.scheduler is not None else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.scheduler is not None and state:
            self.scheduler.load_state_dict(state)

    def summary(self) -> dict[str, Any]:
        if self.scheduler is None:
            return {}
        return {
            "history": self.scheduler.history,
            "head": self.scheduler.head_name,
            "l2": self.scheduler.l2,
        }

    def close(self) -> None:
        if self.scheduler is not None:
            self.scheduler.remove()


def from_spec(call: CallSpec) -> LipschitzController:
    """``lipschitz(...)`` -> a controller, arguments checked by name (values by LipschitzLR)."""
    if call.args:
        raise SpecError(
            f"{call.name}: takes keyword arguments only "
            f"({', '.join(OPTIONS)}), got {len(call.args)} positional"
        )
    problem = unknown_option(call.kwargs)
    if problem is not None:
        raise SpecError(f"{call.name}: {problem}")
    options = LipschitzOptions.of(**call.kwargs)  # (the values, checked)
    parts = ", ".join(f"{k}={_format(v)}" for k, v in call.kwargs.items())
    return LipschitzController(f"{call.name}({parts})", options)


def _format(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if not isinstance(value, str) else value
