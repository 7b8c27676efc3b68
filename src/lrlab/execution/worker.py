"""The worker side of every executor: set a worker process up, run one run or one vectorised
group from plain config dicts, and hand back plain `Result` data. The local pool, the process
itself (`InProcess`) and Ray's workers all call these, so a run is trained the same way
wherever it runs."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import torch

from lrlab.engine import train_run
from lrlab.errors import describe
from lrlab.execution.base import Result
from lrlab.record import RunConfig
from lrlab.registry import import_plugins
from lrlab.vectorize import train_group

if TYPE_CHECKING:
    from lrlab.tasks import Task


def init_worker(threads: int, plugins: Sequence[str] = ()) -> None:
    """A worker's set-up: torch's thread count, then the user modules that registered
    schedules, optimizers or controllers in the parent (so their names work here too)."""
    os.environ["OMP_NUM_THREADS"] = str(threads)
    torch.set_num_threads(threads)
    import_plugins(list(plugins))


def run_one(config_data: dict[str, Any], task: Task | None = None) -> Result:
    """Train one run from a plain config dict; return ``(record JSON, None)`` or
    ``(None, error)``. Plain data in and out, so any process or machine can run it
    (``task``: the `Task` object, in the process that has it)."""
    config = RunConfig.from_dict(config_data)
    try:
        return train_run(config, task=task).to_json(), None
    except Exception as error:  # a failing run is a result, not a crash of the sweep
        return None, describe(error)


def run_group(configs_data: Sequence[dict[str, Any]]) -> list[Result]:
    """`lrlab.vectorize.train_group` on plain config dicts: ``(record JSON, None)`` per
    config, or ``(None, error)`` for every config if the group fails."""
    configs = [RunConfig.from_dict(d) for d in configs_data]
    try:
        return [(record.to_json(), None) for record in train_group(configs)]
    except Exception as error:  # a failing group is a result, not a crash of the sweep
        return [(None, describe(error)) for _ in configs]


def run_unit(
    configs_data: Sequence[dict[str, Any]],
    target: Callable[[dict[str, Any]], Result] = run_one,
) -> list[Result]:
    """One unit of work from plain config dicts: a single run through ``target``, several
    trained together as one vectorised group (`run_group`); a result per config, in order."""
    if len(configs_data) == 1:
        return [target(configs_data[0])]
    return run_group(configs_data)
