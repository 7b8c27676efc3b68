"""Where a sweep's runs execute: in this process, in a local process pool, or on Ray.

Bottom to top: `lrlab.execution.base` (the `Outcome` of a run, the `Executor` protocol; no
torch), `lrlab.execution.worker` (a run or a vectorised group from plain config dicts, what
every executor's workers call), then the executors: `lrlab.execution.local` (`InProcess`,
`LocalPool`) and `lrlab.execution.cluster` (`RayExecutor`, and everything else about Ray).
`make_executor` picks one.
"""

from __future__ import annotations

from typing import Any

from lrlab.execution.base import Executor, GroupRunner, OnResult, Outcome, Result
from lrlab.execution.cluster import RayExecutor
from lrlab.execution.local import InProcess, LocalPool
from lrlab.execution.worker import run_unit
from lrlab.tasks import TASKS, Task
from lrlab.validate import MAX_WORKERS, check_choice, check_int

__all__ = [
    "Executor",
    "GroupRunner",
    "InProcess",
    "LocalPool",
    "OnResult",
    "Outcome",
    "RayExecutor",
    "Result",
    "in_process_only",
    "make_executor",
]


def in_process_only(task: Task) -> bool:
    """Whether only this process can build ``task``: a `Task` object without a reference
    that is not one of the registered tasks."""
    return task.reference is None and TASKS.get(task.name) is not task


def make_executor(
    kind: str,
    *,
    workers: int,
    threads: int = 1,
    address: str | None = None,
    runs: int = 0,
    task: Task | None = None,
    runtime_env: dict[str, Any] | None = None,
) -> Executor:
    """The executor for ``kind`` (``local`` or ``ray``) with ``workers`` parallel runs.

    One run, or one worker, runs in this process. ``task``: a `Task` object the runs need
    that other processes cannot build (no reference): it runs here, one run after another.
    Ray: ``address`` (``None``: a local instance of ``workers`` CPUs) and ``runtime_env``.
    """
    check_choice("", "executor", kind, ("local", "ray"))
    check_int("", "workers", workers, minimum=1, maximum=MAX_WORKERS)
    check_int("", "threads", threads, minimum=1, maximum=MAX_WORKERS)
    if task is not None and in_process_only(task) and (kind == "ray" or workers > 1):
        raise ValueError(
            f"task {task.name}: a Task object runs in this process only (workers=1); "
            "to run it in parallel, give its reference 'path/to/file.py:function'"
        )
    if kind == "ray":
        return RayExecutor(
            address=address,
            threads=threads,
            local_cpus=workers,
            runtime_env=runtime_env,
            group_runner=run_unit,
        )
    if address is not None:
        raise ValueError(f"address is for executor=ray, got address={address!r}")
    if runtime_env is not None:
        raise ValueError(f"runtime_env is for executor=ray, got runtime_env={runtime_env!r}")
    if workers == 1 or runs == 1:
        return InProcess(threads, task)
    return LocalPool(workers, threads)
