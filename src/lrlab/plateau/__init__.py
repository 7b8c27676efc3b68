"""Reduce-on-plateau: PyTorch's ``ReduceLROnPlateau`` decisions, after an optional warmup.

`Plateau` (the rule, the ``plateau(...)`` spec), `PlateauState` (its state machine) and
`plateau_lrs` (a preview from a metric sequence) are plain Python; `PlateauLR` drives a
PyTorch optimizer from a training loop and loads torch on first use.
"""

from typing import TYPE_CHECKING

from lrlab.lazy import lazy_getattr
from lrlab.plateau.core import Plateau, PlateauState, monitored, plateau_lrs, reduce_lr

if TYPE_CHECKING:
    from lrlab.plateau.scheduler import PlateauLR

__all__ = ["Plateau", "PlateauLR", "PlateauState", "monitored", "plateau_lrs", "reduce_lr"]

__getattr__ = lazy_getattr("lrlab.plateau", {"PlateauLR": "lrlab.plateau.scheduler"}, globals())
