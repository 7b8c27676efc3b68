"""The update rules the source documents compare, and the peers, by name (`OPTIMIZERS`,
`make_optimizer`; see `lrlab.optimizers.registry`), Keras' momentum (`KerasSGD`), and the
train/eval protocol of schedule-free optimizers (`set_optimizer_mode`)."""

from __future__ import annotations

from lrlab.optimizers.keras_sgd import KerasSGD
from lrlab.optimizers.modes import TrainEvalOptimizer, needs_train_eval, set_optimizer_mode
from lrlab.optimizers.registry import (
    OPTIMIZERS,
    PEERS,
    PEERS_EXTRA,
    RESERVED_ARGS,
    OptimizerEntry,
    check_entry_args,
    check_optimizer_args,
    known_optimizers,
    lr_free,
    make_optimizer,
    optimizer_entry,
    register_optimizer,
)

__all__ = [
    "OPTIMIZERS",
    "PEERS",
    "PEERS_EXTRA",
    "RESERVED_ARGS",
    "KerasSGD",
    "OptimizerEntry",
    "TrainEvalOptimizer",
    "check_entry_args",
    "check_optimizer_args",
    "known_optimizers",
    "lr_free",
    "make_optimizer",
    "needs_train_eval",
    "optimizer_entry",
    "register_optimizer",
    "set_optimizer_mode",
]
