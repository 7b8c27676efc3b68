"""Source files of user plugins, written by tests into temporary folders and imported from
there (by the test process, pool workers or Ray workers) as a user's own modules would be."""

HALVING = """
from dataclasses import dataclass

from lrlab.schedules import Schedule, register_schedule


@register_schedule
@dataclass(frozen=True)
class Halving(Schedule):
    \"\"\"lr * 0.5 ** floor(t / every)\"\"\"

    lr: float
    every: int
    name = "halving"

    @property
    def reference_lr(self) -> float:
        return self.lr

    def value(self, t: float) -> float:
        return self.lr * 0.5 ** (t // self.every)
"""

# Halving, and an optimizer and a controller registered at the module's top level.
PLUGIN = (
    HALVING
    + """
import torch

from lrlab import LRController, register_controller, register_optimizer


class Heavy(torch.optim.SGD):
    pass


register_optimizer("heavy-sgd", Heavy, defaults={"lr": 0.05, "momentum": 0.5})


class Freeze(LRController):
    \"\"\"Sets LR 0.02 at the first update and keeps it (computes its own LR).\"\"\"

    spec = "freeze()"

    def start(self, context):
        self.groups = context.optimizer.param_groups

    def before_update(self, step, inputs, targets):
        for group in self.groups:
            group["lr"] = 0.02


register_controller("freeze", lambda: Freeze(), takes_lr=False)
"""
)
