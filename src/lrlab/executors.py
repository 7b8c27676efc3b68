"""Where a sweep's runs execute: in this process, in a local process pool, or on Ray.

Every executor takes run configs and calls ``on_result(outcome)`` once per run, in the calling
process, as runs finish; the caller stores each outcome as it arrives. A run that raises
becomes a ``failed`` outcome carrying the error; it never stops the others. A worker process
that dies (killed, out of memory) fails only the run that killed it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from multiprocessing import get_context
from typing import Any

from lrlab.record import RunConfig, RunRecord


@dataclass(frozen=True)
class Outcome:
    """A finished run: its record, or the error that ended it."""

    config: RunConfig
    record: RunRecord | None
    error: str | None


OnResult = Callable[[Outcome], None]


def run_one(config_data: dict[str, Any]) -> tuple[str | None, str | None]:
    """Train one run from a plain config dict; return ``(record JSON, None)`` or
    ``(None, error)``. Plain data in and out, so any process or machine can run it."""
    from lrlab.engine import train

    config = RunConfig.from_dict(config_data)
    try:
        return train(config).to_json(), None
    except Exception as error:  # a failing run is a result, not a crash of the sweep
        return None, failure(error)


def failure(error: Exception) -> str:
    """A failed run's error as a record keeps it: ``ClassName: first line``."""
    message = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


def _outcome(config: RunConfig, result: tuple[str | None, str | None]) -> Outcome:
    record_json, error = result
    record = RunRecord.from_json(record_json) if record_json is not None else None
    return Outcome(config, record, error)


def _init_worker(threads: int) -> None:
    os.environ["OMP_NUM_THREADS"] = str(threads)
    import torch

    torch.set_num_threads(threads)


class InProcess:
    """Runs one after another in this process (``--workers 1``: no start-up cost)."""

    def __init__(self, threads: int = 1) -> None:
        self.threads = threads

    def run(self, configs: Sequence[RunConfig], on_result: OnResult) -> None:
        _init_worker(self.threads)
        for config in configs:
            on_result(_outcome(config, run_one(config.to_dict())))


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
    ) -> None:
        if workers < 1:
            raise ValueError(f"--workers must be >= 1, got --workers={workers}")
        self.workers, self.threads, self.target = workers, threads, target

    def run(self, configs: Sequence[RunConfig], on_result: OnResult) -> None:
        queue = list(reversed(configs))
        while queue:
            suspects = self._run_pool(queue, self.workers, on_result)
            for config in suspects:  # alone, so a death can only be this run's
                if self._run_pool([config], 1, on_result):
                    on_result(
                        Outcome(
                            config,
                            None,
                            "worker process died while running it (killed, or out of memory?)",
                        )
                    )

    def _run_pool(
        self, queue: list[RunConfig], workers: int, on_result: OnResult
    ) -> list[RunConfig]:
        """Run configs popped from ``queue`` until it is empty or a worker dies; return the
        runs that were in flight when one died."""
        context = get_context("spawn")  # fork after torch initialised threads can deadlock
        with ProcessPoolExecutor(
            workers, mp_context=context, initializer=_init_worker, initargs=(self.threads,)
        ) as pool:
            flight: dict[Future[tuple[str | None, str | None]], RunConfig] = {}
            while queue or flight:
                while queue and len(flight) < workers:
                    config = queue.pop()
                    flight[pool.submit(self.target, config.to_dict())] = config
                finished, _ = wait(flight, return_when=FIRST_COMPLETED)
                for future in finished:
                    try:
                        result = future.result()
                    except BrokenProcessPool:
                        return list(flight.values())
                    on_result(_outcome(flight.pop(future), result))
        return []


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
    ) -> None:
        try:
            import ray  # noqa: F401
        except ImportError:
            raise ValueError("--executor ray needs Ray: pip install 'lrlab[ray]'") from None
        self.address, self.cpus_per_run, self.threads = address, cpus_per_run, threads
        self.runtime_env, self.local_cpus = runtime_env, local_cpus

    def run(self, configs: Sequence[RunConfig], on_result: OnResult) -> None:
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
            refs = {remote.remote(c.to_dict(), self.threads): c for c in configs}
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


def _ray_task(config_data: dict[str, Any], threads: int) -> tuple[str | None, str | None]:
    _init_worker(threads)
    return run_one(config_data)


def make_executor(
    kind: str, *, workers: int, threads: int = 1, address: str | None = None, runs: int = 0
) -> InProcess | LocalPool | RayExecutor:
    """The executor for ``--executor`` (``local`` or ``ray``) and ``--workers``."""
    if kind == "ray":
        return RayExecutor(address=address, threads=threads, local_cpus=workers)
    if kind != "local":
        raise ValueError(f"--executor must be local or ray, got --executor={kind}")
    if address is not None:
        raise ValueError("--address is for --executor ray")
    if workers == 1 or runs == 1:
        return InProcess(threads)
    return LocalPool(workers, threads)
