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
    Cyclic,
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
    Wsd,
)

__version__ = "0.1.0"

# Public names that need torch, and the module each lives in.
_LAZY = {
    "ScheduleLR": "lrlab.torch_scheduler",
    "LipschitzLR": "lrlab.lipschitz",
    "Plateau": "lrlab.plateau",
    "PlateauLR": "lrlab.plateau",
    "KerasSGD": "lrlab.optimizers",
    "make_optimizer": "lrlab.optimizers",
    "OPTIMIZERS": "lrlab.optimizers",
}

if TYPE_CHECKING:
    from lrlab.lipschitz import LipschitzLR
    from lrlab.optimizers import OPTIMIZERS, KerasSGD, make_optimizer
    from lrlab.plateau import Plateau, PlateauLR
    from lrlab.torch_scheduler import ScheduleLR

__all__ = [
    "OPTIMIZERS",
    "Constant",
    "Cosine",
    "Cyclic",
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
    "Plateau",
    "PlateauLR",
    "Polynomial",
    "Scale",
    "Schedule",
    "ScheduleLR",
    "Seed000",
    "Step",
    "Warmup",
    "Wsd",
    "__version__",
    "make_optimizer",
]


__getattr__ = lazy_getattr("lrlab", _LAZY, globals())
