"""lrlab: learning rates, measured.

The schedules are importable without torch; the PyTorch pieces load on first use, so
``import lrlab`` (and ``lrlab --help``) stay fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lrlab.lazy import lazy_getattr
from lrlab.schedules import (
    Constant,
    Cosine,
    Exponential,
    InverseTime,
    Join,
    Linear,
    MultiStep,
    OneCycle,
    PerEpoch,
    Piecewise,
    Polynomial,
    Scale,
    Schedule,
    Seed000,
    Step,
    Warmup,
)

__version__ = "0.1.0"

# Public names that need torch, and the module each lives in.
_LAZY = {
    "ScheduleLR": "lrlab.torch_scheduler",
    "LipschitzLR": "lrlab.lipschitz",
    "KerasSGD": "lrlab.optimizers",
    "make_optimizer": "lrlab.optimizers",
    "OPTIMIZERS": "lrlab.optimizers",
    "find": "lrlab.finder",
    "RangeTest": "lrlab.finder",
}

if TYPE_CHECKING:
    from lrlab.finder import RangeTest, find
    from lrlab.lipschitz import LipschitzLR
    from lrlab.optimizers import OPTIMIZERS, KerasSGD, make_optimizer
    from lrlab.torch_scheduler import ScheduleLR

__all__ = [
    "OPTIMIZERS",
    "Constant",
    "Cosine",
    "Exponential",
    "InverseTime",
    "Join",
    "KerasSGD",
    "Linear",
    "LipschitzLR",
    "MultiStep",
    "OneCycle",
    "PerEpoch",
    "Piecewise",
    "Polynomial",
    "RangeTest",
    "Scale",
    "Schedule",
    "ScheduleLR",
    "Seed000",
    "Step",
    "Warmup",
    "__version__",
    "find",
    "make_optimizer",
]


__getattr__ = lazy_getattr("lrlab", _LAZY, globals())
