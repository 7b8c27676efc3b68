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
from lrlab.registry import import_plugins, plugin_sources
from lrlab.validate import check_choice, check_int

if TYPE_CHECKING:
    from lrlab.tasks import Task


@dataclass(frozen=True)
class Outcome:
    """A finished run: its record, or the error that ended it."""

    config: RunConfig
    record: RunRecord | None
    error: str | None


OnResult = Callable[[Outcome], None]


class Executor(Protocol):
    """Runs configs, calling ``on_result`` once per run, in the calling process."""

    def run(self, configs: Iterable[RunConfig], on_result: OnResult) -> None: ...


def run_one(config_data: dict[str, Any], task: Task | None = None) -> tuple[str | None, str | None]:
    """Train one run from a plain config dict; return ``(record JSON, None)`` or
    ``(None, error)``. Plain data in and out, so any process or machine can run it
    (``task``: the `Task` object, in the process that has it)."""
    from lrlab.engine import train

    config = RunConfig.from_dict(config_data)
    try:
        return train(config, task=task).to_json(), None
    except Exception as error:  # a failing run is a result, not a crash of the sweep
        message = str(error).strip().splitlines()[0] if str(error).strip() else ""
        return None, f"{type(error).__name__}: {message}" if message else type(error).__name__


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
        import torch

        previous = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            for config in configs:
                on_result(_outcome(config, run_one(config.to_dict(), self.task)))
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
        queue = iter(configs)
        while True:
            suspects = self._run_pool(queue, self.workers, on_result)
            if suspects is None:
                return
            for config in suspects:  # alone, so a death can only be this run's
                if self._run_pool(iter([config]), 1, on_result):
                    on_result(
                        Outcome(
                            config,
                            None,
                            "worker process died while running it (killed, or out of memory?)",
                        )
                    )

    def _run_pool(
        self, queue: Iterator[RunConfig], workers: int, on_result: OnResult
    ) -> list[RunConfig] | None:
        """Run configs taken from ``queue``, one each time a worker is free, until it is
        exhausted (return ``None``) or a worker dies (return the runs then in flight). No
        pool starts for an empty queue."""
        first = next(queue, None)
        if first is None:
            return None
        queue = itertools.chain([first], queue)
        context = get_context("spawn")  # fork after torch initialised threads can deadlock
        with ProcessPoolExecutor(
            workers,
            mp_context=context,
            initializer=_init_pool_worker,
            initargs=(self.threads, self.plugins),
        ) as pool:
            flight: dict[Future[tuple[str | None, str | None]], RunConfig] = {}
            exhausted = False
            while not exhausted or flight:
                while not exhausted and len(flight) < workers:
                    config = next(queue, None)
                    if config is None:
                        exhausted = True
                        break
                    flight[pool.submit(self.target, config.to_dict())] = config
                finished, _ = wait(flight, return_when=FIRST_COMPLETED)
                for future in finished:
                    try:
                        result = future.result()
                    except BrokenProcessPool:
                        return list(flight.values())
                    on_result(_outcome(flight.pop(future), result))
        return None


class RayExecutor:
    """Runs on a Ray cluster (``pip install 'lrlab[ray]'``): ``address`` of an existing
    cluster (``ray://host:10001`` or ``auto``), or a local Ray instance when ``None``. Each run
    asks for ``cpus_per_run`` CPUs; lrlab must be importable on the workers (install it there,
    or pass a ``runtime_env`` with ``working_dir``/``pip``)."""

    def __init__(
        self,
        address: str | None = None,
        cpus_per_run: float = 1.0,
        threads: int = 1,
        runtime_env: dict[str, Any] | None = None,
        local_cpus: int | None = None,
        plugins: Sequence[str] | None = None,
    ) -> None:
        try:
            import ray  # noqa: F401
        except ImportError:
            raise ValueError("executor=ray needs Ray: pip install 'lrlab[ray]'") from None
        self.address, self.cpus_per_run, self.threads = address, cpus_per_run, threads
        self.runtime_env, self.local_cpus = runtime_env, local_cpus
        self.plugins = tuple(plugin_sources() if plugins is None else plugins)

    def run(self, configs: Iterable[RunConfig], on_result: OnResult) -> None:
        import ray

        started_here = not ray.is_initialized()
        if started_here:
            options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
            if self.address is None:
                options["num_cpus"] = self.local_cpus or os.cpu_count() or 1
            if self.runtime_env:
                options["runtime_env"] = self.runtime_env
            ray.init(address=self.address, **options)
        try:
            remote = ray.remote(num_cpus=self.cpus_per_run, max_retries=1)(_ray_task)
            refs = {remote.remote(c.to_dict(), self.threads, self.plugins): c for c in configs}
            waiting = list(refs)
            while waiting:
                done, waiting = ray.wait(waiting, num_returns=1)
                for ref in done:
                    config = refs[ref]
                    try:
                        result = ray.get(ref)
                    except Exception as error:  # the task's process died, or Ray gave up
                        on_result(
                            Outcome(
                                config,
                                None,
                                f"ray: {type(error).__name__}: "
                                f"{str(error).splitlines()[0] if str(error) else ''}",
                            )
                        )
                        continue
                    on_result(_outcome(config, result))
        finally:
            if started_here:
                ray.shutdown()


def _ray_task(
    config_data: dict[str, Any], threads: int, plugins: Sequence[str] = ()
) -> tuple[str | None, str | None]:
    _init_worker(threads, plugins)
    return run_one(config_data)


def make_executor(
    kind: str,
    *,
    workers: int,
    threads: int = 1,
    address: str | None = None,
    runs: int = 0,
    task: Task | None = None,
) -> Executor:
    """The executor for ``kind`` (``local`` or ``ray``) with ``workers`` parallel runs.

    One run, or one worker, runs in this process. ``task``: a `Task` object the runs need
    that other processes cannot build (no reference): it runs here, one run after another.
    """
    check_choice("", "executor", kind, ("local", "ray"))
    check_int("", "workers", workers, minimum=1)
    check_int("", "threads", threads, minimum=1)
    if task is not None and task.reference is None and (kind == "ray" or workers > 1):
        from lrlab.tasks import TASKS

        if TASKS.get(task.name) is not task:
            raise ValueError(
                f"task {task.name}: a Task object runs in this process only (workers=1); "
                "to run it in parallel, give its reference 'path/to/file.py:function'"
            )
    if kind == "ray":
        return RayExecutor(address=address, threads=threads, local_cpus=workers)
    if address is not None:
        raise ValueError(f"address is for executor=ray, got address={address!r}")
    if workers == 1 or runs == 1:
        return InProcess(threads, task)
    return LocalPool(workers, threads)
