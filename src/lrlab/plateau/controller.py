"""Reduce-on-plateau inside lrlab's engine: the ``plateau(...)`` spec of ``--schedule``.

``plateau(factor=0.5, patience=3, warmup=200)`` builds a `PlateauController`: a `PlateauLR` on
the run's optimizer, told of every update (for the warmup) and, at every epoch end, of the
monitored value the engine has just measured, so the next epoch runs at the LR it decides.
Unlike LipschitzLR it does not compute an LR: it starts from the run's base LR (``lr=`` in the
spec, ``--lr``, or each value of ``--lr-grid``), so a comparison tunes it like a schedule.
"""

from __future__ import annotations

from typing import Any

from lrlab.callspec import CallSpec
from lrlab.controllers import LRController, TrainingContext
from lrlab.plateau.core import Plateau, check_floors, monitored
from lrlab.plateau.scheduler import PlateauLR
from lrlab.record import EpochStats
from lrlab.schedules.parse import from_call


class PlateauController(LRController):
    """`PlateauLR` driven by the engine's hooks; the mode follows the task's metric unless the
    spec gives one."""

    def __init__(self, rule: Plateau) -> None:
        self.rule = rule
        self.spec = rule.spec()
        self.scheduler: PlateauLR | None = None
        self.reductions: list[dict[str, Any]] = []

    @property
    def initial_lr(self) -> float | None:
        return self.rule.lr

    def check_lr(self, lr: float) -> None:
        """A ``min_lr`` above ``lr`` is refused (the rule could never reduce it)."""
        floors = self.rule.min_lr if isinstance(self.rule.min_lr, tuple) else (self.rule.min_lr,)
        check_floors(self.rule.name, list(floors), [lr] * len(floors))

    def start(self, context: TrainingContext) -> None:
        rule = self.rule.resolved(context.higher_is_better)
        self.rule = rule
        self.scheduler = PlateauLR(
            context.optimizer,
            mode=str(rule.mode),
            factor=rule.factor,
            patience=rule.patience,
            threshold=rule.threshold,
            threshold_mode=rule.threshold_mode,
            cooldown=rule.cooldown,
            min_lr=rule.min_lr,
            eps=rule.eps,
            warmup=rule.warmup,
        )

    def after_update(self, step: int) -> None:
        if self.scheduler is not None:
            self.scheduler.step_update()

    def on_epoch_end(self, epoch: int, step: int, stats: EpochStats) -> None:
        if self.scheduler is not None and self.scheduler.step(monitored(self.rule.monitor, stats)):
            self.reductions.append(
                {"epoch": epoch, "step": step, "lr": self.scheduler.get_last_lr()[0]}
            )

    def state_dict(self) -> dict[str, Any]:
        """The scheduler's state and the reductions so far (the run's summary)."""
        if self.scheduler is None:
            return {}
        return {"scheduler": self.scheduler.state_dict(), "reductions": list(self.reductions)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.scheduler is not None and state:
            self.scheduler.load_state_dict(state["scheduler"])
            self.reductions = [dict(r) for r in state["reductions"]]

    def summary(self) -> dict[str, Any]:
        """The mode used and every reduction: after which epoch, at which step, to which LR."""
        return {"mode": self.rule.mode, "monitor": self.rule.monitor, "reductions": self.reductions}


def from_spec(call: CallSpec) -> PlateauController:
    """``plateau(...)`` -> a controller; arguments checked by name and value."""
    return PlateauController(from_call(Plateau, call))
