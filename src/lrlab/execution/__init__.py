"""Where a sweep's runs execute: in this process, in a local process pool, or on Ray.

Bottom to top: `lrlab.execution.base` (the `Outcome` of a run, the `Executor` protocol; no
torch), `lrlab.execution.worker` (a run or a vectorised group from plain config dicts, what
every executor's workers call), then the executors: `lrlab.execution.local` (`InProcess`,
`LocalPool`) and `lrlab.execution.cluster` (`RayExecutor`, and everything else about Ray).
`make_executor` picks one. The executors are imported on first use, so the sweep and the
store can use `Outcome` without importing torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lrlab.execution.base import Executor, GroupRunner, OnResult, Outcome, Result
from lrlab.lazy import lazy_getattr
from lrlab.validate import check_choice, check_int

if TYPE_CHECKING:
    from lrlab.execution.cluster import RayExecutor
    from lrlab.execution.local import InProcess, LocalPool
    from lrlab.tasks import Task

__all__ = [
    "Executor",
    "GroupRunner",
    "InProcess",
    "LocalPool",
    "OnResult",
    "Outcome",
    "RayExecutor",
    "Result",
    "make_executor",
]

__getattr__ = lazy_getattr(
    "lrlab.execution",
    {
        "InProcess": "lrlab.execution.local",
        "LocalPool": "lrlab.execution.local",
        "RayExecutor": "lrlab.execution.cluster",
    },
    globals(),
)


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
    check_int("", "workers", workers, minimum=1)
    check_int("", "threads", threads, minimum=1)
    if task is not None and task.reference is None and (kind == "ray" or workers > 1):
        from lrlab.tasks import TASKS  # (torch: only for a Task object, which has it already)

        if TASKS.get(task.name) is not task:
            raise ValueError(
                f"task {task.name}: a Task object runs in this process only (workers=1); "
                "to run it in parallel, give its reference 'path/to/file.py:function'"
            )
    if kind == "ray":
        from lrlab.execution.cluster import RayExecutor
        from lrlab.execution.worker import run_unit

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
    from lrlab.execution.local import InProcess, LocalPool

    if workers == 1 or runs == 1:
        return InProcess(threads, task)
    return LocalPool(workers, threads)
