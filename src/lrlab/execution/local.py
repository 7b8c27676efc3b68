"""Runs on this machine: one after another in this process (`InProcess`), or in a pool of
worker processes (`LocalPool`).

Both call ``on_result(outcome)`` once per run, in the calling process, as runs finish; the
caller stores each outcome as it arrives. The configs may be a lazy iterator: they take the
next one only when they have room to start it (a sweep claims each run in the store at that
moment). A run that raises becomes a ``failed`` outcome carrying the error; it never stops the
others. A worker process that dies (killed, out of memory) fails only the run that killed it,
and a pool's workers exit on their own when the process that started them dies (SIGKILL
included), ending the processes they started (a ``DataLoader``'s workers) first, so a killed
sweep leaves none. A Ctrl-C is the parent's: the workers ignore it (`_quiet_start`), and the
parent kills them and theirs.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import multiprocessing
import os
import signal
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context
from multiprocessing.connection import wait as wait_for
from typing import TYPE_CHECKING, Any

import torch

from lrlab.execution.base import OnResult, Outcome, Result
from lrlab.execution.worker import init_worker, run_one, run_unit
from lrlab.keeper import descendants, kill_tree
from lrlab.record import RunConfig
from lrlab.registry import plugin_sources
from lrlab.validate import check_int

if TYPE_CHECKING:
    from lrlab.tasks import Task


def _init_pool_worker(
    threads: int, plugins: Sequence[str] = (), start_method: str | None = None
) -> None:
    """A pool worker's set-up: Ctrl-C ignored (the parent handles it and ends the workers;
    it was blocked while the worker started, `_quiet_start`), the parent's start method for
    the processes a run starts (a ``DataLoader``'s workers fork, as in the user's own
    program, rather than inherit spawn from this process's own start), `init_worker`, and a
    thread that ends the worker as soon as the process that started it is gone, however it
    went (a SIGKILL runs no clean-up, and a worker busy with a run would otherwise train on,
    then wait forever for its next one)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    multiprocessing.set_start_method(start_method, force=True)
    parent = multiprocessing.parent_process()
    if parent is not None:
        sentinel = parent.sentinel  # readable once the parent has exited

        def watch() -> None:
            wait_for([sentinel])
            kill_tree(descendants(os.getpid()))  # its DataLoader's workers, now, too
            os._exit(1)

        threading.Thread(target=watch, name="lrlab-parent-watch", daemon=True).start()
    init_worker(threads, plugins)


class InProcess:
    """Runs one after another in this process (``workers=1``: no start-up cost). ``task``:
    a `Task` object the configs' task names (one that no other process could build)."""

    def __init__(self, threads: int = 1, task: Task | None = None) -> None:
        self.threads = check_int("InProcess", "threads", threads, minimum=1)
        self.task = task

    def run(self, configs: Iterable[RunConfig], on_result: OnResult) -> None:
        self.run_groups(([config] for config in configs), on_result)

    def run_groups(self, groups: Iterable[Sequence[RunConfig]], on_result: OnResult) -> None:
        previous = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            for group in groups:
                if len(group) == 1:
                    results = [run_one(group[0].to_dict(), self.task)]
                else:
                    results = run_unit([config.to_dict() for config in group])
                for config, result in zip(group, results, strict=True):
                    on_result(Outcome.of(config, result))
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
        target: Callable[[dict[str, Any]], Result] = run_one,
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
            initargs=(self.threads, self.plugins, multiprocessing.get_start_method(True)),
        ) as pool:
            try:
                flight: dict[Future[list[Result]], Sequence[RunConfig]] = {}
                exhausted = False
                while not exhausted or flight:
                    while not exhausted and len(flight) < workers:
                        group = next(queue, None)
                        if group is None:
                            exhausted = True
                            break
                        with _quiet_start():  # (submit starts a worker when none is free)
                            future = pool.submit(unit, [c.to_dict() for c in group])
                        flight[future] = group
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
                            on_result(Outcome.of(config, result))
            except BaseException:  # Ctrl-C, or on_result failed: end the workers, now
                _kill_workers(pool)
                raise
        return None


@contextlib.contextmanager
def _quiet_start() -> Iterator[None]:
    """SIGINT blocked in this thread while the block starts processes, so each starts with it
    blocked (a signal mask survives fork and exec) and a Ctrl-C during its start-up (an
    import of torch, seconds) cannot print its ``KeyboardInterrupt`` traceback; here the
    signal waits and arrives once the block ends. The worker then ignores it
    (`_init_pool_worker`)."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _kill_workers(pool: ProcessPoolExecutor) -> None:
    """SIGKILL the pool's worker processes and the processes they started (they ignore
    Ctrl-C, and a pool's shutdown would wait for their runs to finish) and let the pool drop
    its queue. (``_processes`` is the
    pool's own map of pid to process; no public way reaches them.)"""
    processes = dict(getattr(pool, "_processes", None) or {})
    kill_tree([p for pid in processes for p in (pid, *descendants(pid))])
    for process in processes.values():
        with contextlib.suppress(OSError, ValueError, AssertionError):
            process.join(5)
    pool.shutdown(wait=False, cancel_futures=True)
