"""The training engine: one run of (task, optimizer, LR controller, seed, budget) -> `RunRecord`.

`lrlab.engine.planning` resolves and checks a run's config against its task before anything
trains, and `lrlab.engine.preflight` checks a user's task on one batch (`check_task`);
`lrlab.engine.loop` is the training loop (`train_run`); `lrlab.engine.bookkeeping` writes
what a run records, for this loop and the vectorised one alike; `lrlab.engine.flat` lays a
run's parameters out as one flat tensor.
"""

from __future__ import annotations

from lrlab.engine.bookkeeping import Bookkeeper, new_record, versions
from lrlab.engine.loop import Observer, train_run
from lrlab.engine.planning import (
    COMPATIBLE_LOSSES,
    CUDA_SYNC_EVERY,
    Plan,
    host_sync_every,
    plan,
    resolve_device,
    task_data,
)
from lrlab.engine.preflight import check_task

__all__ = [
    "COMPATIBLE_LOSSES",
    "CUDA_SYNC_EVERY",
    "Bookkeeper",
    "Observer",
    "Plan",
    "check_task",
    "host_sync_every",
    "new_record",
    "plan",
    "resolve_device",
    "task_data",
    "train_run",
    "versions",
]
