"""lrlab: learning rates, measured.

The schedules are importable without torch; the PyTorch pieces load on first use, so
``import lrlab`` (and ``lrlab --help``) stay fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lrlab._version import __version__
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
    register_schedule,
)
from lrlab.schedules import parse as parse_schedule

# Public names that need torch, and the module each lives in.
_LAZY = {
    "Task": "lrlab.tasks",
    "train": "lrlab.api",
    "branch": "lrlab.api",
    "Branched": "lrlab.engine.branching",
    "train_branches": "lrlab.engine.branching",
    "compare": "lrlab.api",
    "tune": "lrlab.api",
    "TuneResult": "lrlab.api",
    "Comparison": "lrlab.api",
    "RunRecord": "lrlab.record",
    "HOLDOUT_SEEDS_FROM": "lrlab.record",
    "RunConfig": "lrlab.record",
    "StoredRun": "lrlab.store",
    "register_optimizer": "lrlab.optimizers",
    "register_controller": "lrlab.controllers",
    "LRController": "lrlab.controllers",
    "ScheduleLR": "lrlab.torch_scheduler",
    "LipschitzLR": "lrlab.lipschitz",
    "LipschitzOptions": "lrlab.lipschitz",
    "Plateau": "lrlab.plateau",
    "PlateauLR": "lrlab.plateau",
    "KerasSGD": "lrlab.optimizers",
    "make_optimizer": "lrlab.optimizers",
    "OPTIMIZERS": "lrlab.optimizers",
    "find": "lrlab.finder",
    "find_on_task": "lrlab.finder",
    "RangeTest": "lrlab.finder",
    "weight_decay_groups": "lrlab.engine.groups",
}

if TYPE_CHECKING:
    from lrlab.api import Comparison, TuneResult, branch, compare, train, tune
    from lrlab.controllers import LRController, register_controller
    from lrlab.engine.branching import Branched, train_branches
    from lrlab.engine.groups import weight_decay_groups
    from lrlab.finder import RangeTest, find, find_on_task
    from lrlab.lipschitz import LipschitzLR, LipschitzOptions
    from lrlab.optimizers import OPTIMIZERS, KerasSGD, make_optimizer, register_optimizer
    from lrlab.plateau import Plateau, PlateauLR
    from lrlab.record import HOLDOUT_SEEDS_FROM, RunConfig, RunRecord
    from lrlab.store import StoredRun
    from lrlab.tasks import Task
    from lrlab.torch_scheduler import ScheduleLR

__all__ = [
    "HOLDOUT_SEEDS_FROM",
    "OPTIMIZERS",
    "Branched",
    "Comparison",
    "Constant",
    "Cosine",
    "Cyclic",
    "Exponential",
    "InverseTime",
    "Join",
    "KerasSGD",
    "LRController",
    "Linear",
    "LipschitzLR",
    "LipschitzOptions",
    "MultiStep",
    "OneCycle",
    "PerEpoch",
    "Piecewise",
    "Plateau",
    "PlateauLR",
    "Polynomial",
    "RangeTest",
    "RunConfig",
    "RunRecord",
    "Scale",
    "Schedule",
    "ScheduleLR",
    "Seed000",
    "Step",
    "StoredRun",
    "Task",
    "TuneResult",
    "Warmup",
    "Wsd",
    "__version__",
    "branch",
    "compare",
    "find",
    "find_on_task",
    "make_optimizer",
    "parse_schedule",
    "register_controller",
    "register_optimizer",
    "register_schedule",
    "train",
    "train_branches",
    "tune",
    "weight_decay_groups",
]


__getattr__ = lazy_getattr("lrlab", _LAZY, globals())
