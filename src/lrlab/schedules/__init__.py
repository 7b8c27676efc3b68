"""Learning-rate schedules as exact, closed-form, pure functions of the step.

Every schedule is a frozen dataclass: ``schedule(t)`` gives the LR at step ``t``,
``schedule.preview(n)`` the first ``n`` values, ``schedule.spec()`` a string `parse` turns back
into an equal schedule. No torch import here: one schedule object serves the PyTorch adapter
(`lrlab.ScheduleLR`), the Keras adapter and the CLI preview alike.
"""

from lrlab.schedules.base import Schedule, register_schedule
from lrlab.schedules.decays import (
    Constant,
    Exponential,
    InverseTime,
    Linear,
    MultiStep,
    Piecewise,
    Polynomial,
    Seed000,
    Step,
)

from lrlab.schedules.cyclic import Cosine, Cyclic, OneCycle  # isort: skip
from lrlab.schedules.wsd import Wsd  # isort: skip
from lrlab.schedules.compose import Join, PerEpoch, Scale, Warmup  # isort: skip
from lrlab.schedules.parse import SCHEDULES, build, parse  # isort: skip

__all__ = [
    "SCHEDULES",
    "Constant",
    "Cosine",
    "Cyclic",
    "Exponential",
    "InverseTime",
    "Join",
    "Linear",
    "MultiStep",
    "OneCycle",
    "PerEpoch",
    "Piecewise",
    "Polynomial",
    "Scale",
    "Schedule",
    "Seed000",
    "Step",
    "Warmup",
    "Wsd",
    "build",
    "parse",
    "register_schedule",
]
