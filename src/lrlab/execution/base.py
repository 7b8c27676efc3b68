"""What every executor shares: a finished run's `Outcome`, the plain data a worker returns for
a run, and the `Executor` protocol. No torch import here: the sweep and the store use these."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from lrlab.record import RunConfig, RunRecord

#: What a worker returns for one run, plain data so it crosses processes and machines:
#: ``(record JSON, None)``, or ``(None, error)`` for a run that raised.
Result = tuple[str | None, str | None]

#: Trains a group of runs together in one process: config dicts in, one `Result` per config,
#: in order (a module-level function, so any process can run it).
GroupRunner = Callable[[Sequence[dict[str, Any]]], list[Result]]


@dataclass(frozen=True)
class Outcome:
    """A finished run: its record, or the error that ended it."""

    config: RunConfig
    record: RunRecord | None
    error: str | None

    @classmethod
    def of(cls, config: RunConfig, result: Result) -> Outcome:
        """The outcome a worker's `Result` describes."""
        record_json, error = result
        record = RunRecord.from_json(record_json) if record_json is not None else None
        return cls(config, record, error)


OnResult = Callable[[Outcome], None]


class Executor(Protocol):
    """Runs configs, calling ``on_result`` once per run, in the calling process.

    ``run_groups`` takes units of work: a group of several configs is trained together as
    one vectorised model (`lrlab.vectorize`), a unit of one alone; ``run`` is every config a
    unit of its own."""

    def run(self, configs: Iterable[RunConfig], on_result: OnResult) -> None: ...

    def run_groups(self, groups: Iterable[Sequence[RunConfig]], on_result: OnResult) -> None: ...
