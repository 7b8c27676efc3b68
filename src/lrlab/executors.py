"""Where a sweep's runs execute: in this process, in a local process pool, or on Ray.

Every executor takes run configs and calls ``on_result(outcome)`` once per run, in the calling
process, as runs finish; the caller stores each outcome as it arrives. The configs may be a
lazy iterator: the local executors take the next one only when they have room to start it
(a sweep claims each run in the store at that moment). A run that raises becomes a ``failed``
outcome carrying the error; it never stops the others. A worker process that dies (killed,
out of memory) fails only the run that killed it, and a pool's workers exit on their own
when the process that started them dies (SIGKILL included), so a killed sweep leaves none.
"""

from __future__ import annotations

import functools
import itertools
import multiprocessing
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from multiprocessing import get_context
from multiprocessing.connection import wait as wait_for
from typing import TYPE_CHECKING, Any, Protocol

from lrlab.record import RunConfig, RunRecord
from lrlab.registry import first_line, import_plugins, plugin_sources
from lrlab.validate import MAX_WORKERS, ArgumentTypeError, check_choice, check_int, check_number

if TYPE_CHECKING:
    from lrlab.tasks import Task


@dataclass(frozen=True)
class Outcome:
    """A finished run: its record, or the error that ended it."""

    config: RunConfig
    record: RunRecord | None
    error: str | None


OnResult = Callable[[Outcome], None]

#: Trains a group of runs together in one process: config dicts in, `run_one`'s results out,
#: one per config, in order (a module-level function, so any process can run it).
GroupRunner = Callable[[Sequence[dict[str, Any]]], list[tuple[str | None, str | None]]]


class Executor(Protocol):
    """Runs configs, calling ``on_result`` once per run, in the calling process.

    ``run_groups`` takes units of work: a group of several configs is trained together as
    one vectorised model (`lrlab.vectorize`), a unit of one alone; ``run`` is every config a
    unit of its own."""

    def run(self, configs: Iterable[RunConfig], on_result: OnResult) -> None: ...

    def run_groups(self, groups: Iterable[Sequence[RunConfig]], on_result: OnResult) -> None: ...


def run_one(config_data: dict[str, Any], task: Task | None = None) -> tuple[str | None, str | None]:
    """Train one run from a plain config dict; return ``(record JSON, None)`` or
    ``(None, error)``. Plain data in and out, so any process or machine can run it
    (``task``: the `Task` object, in the process that has it)."""
    from lrlab.engine import train

    config = RunConfig.from_dict(config_data)
    try:
        return train(config, task=task).to_json(), None
    except Exception as error:  # a failing run is a result, not a crash of the sweep
        return None, failure(error)


def run_unit(
    configs_data: Sequence[dict[str, Any]],
    target: Callable[[dict[str, Any]], tuple[str | None, str | None]] = run_one,
) -> list[tuple[str | None, str | None]]:
    """One unit of work from plain config dicts: a single run through ``target``, several
    trained together as one vectorised group (`lrlab.vectorize.run_group`); a result per
    config, in order."""
    if len(configs_data) == 1:
        return [target(configs_data[0])]
    from lrlab.vectorize import run_group

    return run_group(configs_data)


def failure(error: Exception) -> str:
    """A failed run's error as a record keeps it: ``ClassName: first line``."""
    message = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


def _outcome(config: RunConfig, result: tuple[str | None, str | None]) -> Outcome:
    record_json, error = result
    record = RunRecord.from_json(record_json) if record_json is not None else None
    return Outcome(config, record, error)


def _init_worker(threads: int, plugins: Sequence[str] = ()) -> None:
    """A worker's set-up: torch's thread count, then the user modules that registered
    schedules, optimizers or controllers in the parent (so their names work here too)."""
    os.environ["OMP_NUM_THREADS"] = str(threads)
    import torch

    torch.set_num_threads(threads)
    import_plugins(list(plugins))


def _init_pool_worker(threads: int, plugins: Sequence[str] = ()) -> None:
    """A pool worker's set-up: `_init_worker`, and a thread that ends the worker as soon as
    the process that started it is gone, however it went (a SIGKILL runs no clean-up, and a
    worker busy with a run would otherwise train on, then wait forever for its next one)."""
    parent = multiprocessing.parent_process()
    if parent is not None:
        sentinel = parent.sentinel  # readable once the parent has exited

        def watch() -> None:
            wait_for([sentinel])
            os._exit(1)

        threading.Thread(target=watch, name="lrlab-parent-watch", daemon=True).start()
    _init_worker(threads, plugins)


class InProcess:
    """Runs one after another in this process (``workers=1``: no start-up cost). ``task``:
    a `Task` object the configs' task names (one that no other process could build)."""

    def __init__(self, threads: int = 1, task: Task | None = None) -> None:
        self.threads = check_int("InProcess", "threads", threads, minimum=1)
        self.task = task

    def run(self, configs: Iterable[RunConfig], on_result: OnResult) -> None:
        self.run_groups(([config] for config in configs), on_result)

    def run_groups(self, groups: Iterable[Sequence[RunConfig]], on_result: OnResult) -> None:
        import torch

        previous = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            for group in groups:
                if len(group) == 1:
                    results = [run_one(group[0].to_dict(), self.task)]
                else:
                    results = run_unit([config.to_dict() for config in group])
                for config, result in zip(group, results, strict=True):
                    on_result(_outcome(config, result))
        finally:
            torch.set_num_threads(previous)


class LocalPool:
    """A pool of ``workers`` processes (spawned, one torch thread each by default).

    At most ``workers`` runs are in flight, so when a worker dies (killed, out of memory) the
    suspects are only the runs then in flight: each is run again alone, in a fresh process,
    and only one that dies alone too is recorded as failed. ``target`` is what a worker runs
    per config (`run_one`; a module-level function of the config dict).
    """

    def __init__(
        self,
        workers: int,
        threads: int = 1,
        target: Callable[[dict[str, Any]], tuple[str | None, str | None]] = run_one,
        plugins: Sequence[str] | None = None,
    ) -> None:
        self.workers = check_int("LocalPool", "workers", workers, minimum=1)
        self.threads = check_int("LocalPool", "threads", threads, minimum=1)
        self.target = target
        self.plugins = tuple(plugin_sources() if plugins is None else plugins)

    def run(self, configs: Iterable[RunConfig], on_result: OnResult) -> None:
        self.run_groups(([config] for config in configs), on_result)

    def run_groups(self, groups: Iterable[Sequence[RunConfig]], on_result: OnResult) -> None:
        """Run each unit in a worker (a group trained together, one process per group). When
        a worker dies, the units then in flight are suspects: their runs go again alone."""
        queue = iter(groups)
        while True:
            suspects = self._run_pool(queue, self.workers, on_result)
            if suspects is None:
                return
            for config in (c for unit in suspects for c in unit):  # alone: its own death
                if self._run_pool(iter([[config]]), 1, on_result):
                    on_result(
                        Outcome(
                            config,
                            None,
                            "worker process died while running it (killed, or out of memory?)",
                        )
                    )

    def _run_pool(
        self, queue: Iterator[Sequence[RunConfig]], workers: int, on_result: OnResult
    ) -> list[Sequence[RunConfig]] | None:
        """Run units taken from ``queue``, one each time a worker is free, until it is
        exhausted (return ``None``) or a worker dies (return the units then in flight). No
        pool starts for an empty queue."""
        first = next(queue, None)
        if first is None:
            return None
        queue = itertools.chain([first], queue)
        context = get_context("spawn")  # fork after torch initialised threads can deadlock
        unit = functools.partial(run_unit, target=self.target)
        with ProcessPoolExecutor(
            workers,
            mp_context=context,
            initializer=_init_pool_worker,
            initargs=(self.threads, self.plugins),
        ) as pool:
            flight: dict[Future[list[tuple[str | None, str | None]]], Sequence[RunConfig]] = {}
            exhausted = False
            while not exhausted or flight:
                while not exhausted and len(flight) < workers:
                    group = next(queue, None)
                    if group is None:
                        exhausted = True
                        break
                    flight[pool.submit(unit, [c.to_dict() for c in group])] = group
                if not flight:
                    break
                finished, _ = wait(flight, return_when=FIRST_COMPLETED)
                for future in finished:
                    try:
                        results = future.result()
                    except BrokenProcessPool:
                        return list(flight.values())
                    group = flight.pop(future)
                    for config, result in zip(group, results, strict=True):
                        on_result(_outcome(config, result))
        return None


class RayExecutor:
    """Runs on Ray (``pip install 'lrlab[ray]'``): the cluster at ``address`` (``host:port``,
    ``ray://host:10001`` or ``auto``), or a local instance of ``local_cpus`` CPUs when
    ``None``. See `lrlab.ray_cluster` for the checks made before anything is submitted and
    how the user's code reaches the workers.

    Each run is one Ray task asking for ``cpus_per_run`` CPUs (default ``threads``, the torch
    threads it uses), so a node runs as many at once as it has CPUs; `run_groups` makes a
    group of runs one task (``group_runner`` trains them together, e.g. as one vectorised
    model). A task whose worker process or node dies (killed, out of memory, a node lost) is
    retried by Ray on any node up to ``max_retries`` times, and only then its runs are
    recorded as failed; each run's outcome is reported once. ``runtime_env``: the job's Ray
    ``runtime_env`` (e.g. ``{"pip": [...]}``),
    to which lrlab adds the user's code as ``py_modules``; lrlab itself must import on the
    workers (installed there, or shipped this way). ``connect_timeout``: seconds every node
    has to answer the probe. A program that called ``ray.init`` itself keeps its session:
    lrlab uses it as it is (its address and ``runtime_env``) and leaves it running.
    """

    def __init__(
        self,
        address: str | None = None,
        cpus_per_run: float | None = None,
        threads: int = 1,
        runtime_env: dict[str, Any] | None = None,
        local_cpus: int | None = None,
        plugins: Sequence[str] | None = None,
        max_retries: int = 3,
        connect_timeout: float = 120.0,
        group_runner: GroupRunner | None = None,
    ) -> None:
        try:
            import ray  # noqa: F401
        except ImportError:
            raise ValueError("executor=ray needs Ray: pip install 'lrlab[ray]'") from None
        if address is not None and (not isinstance(address, str) or not address.strip()):
            raise ValueError(f"RayExecutor: address must be host:port, got address={address!r}")
        if runtime_env is not None and not isinstance(runtime_env, dict):
            raise ArgumentTypeError(
                f"RayExecutor: runtime_env must be a dict, got runtime_env={runtime_env!r}"
            )
        self.address = address.strip() if address is not None else None
        self.threads = check_int("RayExecutor", "threads", threads, minimum=1)
        self.cpus_per_run = float(
            check_number("RayExecutor", "cpus_per_run", cpus_per_run, positive=True)
            if cpus_per_run is not None
            else self.threads
        )
        self.runtime_env = dict(runtime_env or {})
        self.local_cpus = (
            check_int("RayExecutor", "local_cpus", local_cpus, minimum=1)
            if local_cpus is not None
            else None
        )
        self.plugins = tuple(plugin_sources() if plugins is None else plugins)
        self.max_retries = check_int("RayExecutor", "max_retries", max_retries, minimum=0)
        self.connect_timeout = check_number(
            "RayExecutor", "connect_timeout", connect_timeout, positive=True
        )
        self.group_runner = group_runner

    def run(self, configs: Iterable[RunConfig], on_result: OnResult) -> None:
        self.run_groups([[config] for config in configs], on_result)

    def run_groups(self, groups: Iterable[Sequence[RunConfig]], on_result: OnResult) -> None:
        """Run each group of configs as one Ray task (one process on one node): trained
        together by ``group_runner``, or one after another without one. A group whose task
        Ray gives up on fails as a whole."""
        import ray

        from lrlab.ray_cluster import UserCode, check_workers, connect, run_on_worker

        # All taken at once: the code to ship is fixed when the job starts, and Ray queues
        # the tasks itself.
        units = [list(group) for group in groups if group]
        if not units:
            return
        code = UserCode.of([c.task for unit in units for c in unit], self.plugins)
        started_here = connect(self.address, code.runtime_env(self.runtime_env), self.local_cpus)
        try:
            check_workers(self.address, code, self.cpus_per_run, self.connect_timeout)
            remote = ray.remote(num_cpus=self.cpus_per_run, max_retries=self.max_retries)(
                run_on_worker
            )
            refs = {
                remote.remote(
                    [c.to_dict() for c in unit], self.threads, code, self.group_runner
                ): unit
                for unit in units
            }
            waiting = list(refs)
            while waiting:
                done, waiting = ray.wait(waiting, num_returns=1)
                for ref in done:
                    unit = refs[ref]
                    try:
                        results = ray.get(ref)
                    except Exception as error:  # its process or node died more than it may
                        for config in unit:
                            on_result(Outcome(config, None, self._lost(error)))
                        continue
                    for config, result in zip(unit, results, strict=True):
                        on_result(_outcome(config, result))
        finally:
            if started_here:
                ray.shutdown()

    def _lost(self, error: Exception) -> str:
        """A run Ray gave up on: its process or node died ``max_retries + 1`` times, or (a
        bug, not a run's error: `run_one` returns those) the task raised."""
        from ray.exceptions import RayTaskError

        if isinstance(error, RayTaskError):
            cause = getattr(error, "cause", None) or error
            return f"ray: {type(cause).__name__}: {first_line(cause)}"
        return (
            f"ray: {type(error).__name__} (retried {self.max_retries} times): {first_line(error)}"
        )


def in_process_only(task: Task) -> bool:
    """Whether only this process can build ``task``: a `Task` object without a reference
    that is not one of the registered tasks."""
    from lrlab.tasks import TASKS

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
