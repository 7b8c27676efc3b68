"""The progress of a sweep on a terminal: what the store already has, how the runs train
(vectorised groups, and why a run trains alone), then a bar of runs finished, diverged and
failed with the time left. It implements `lrlab.sweep.Progress` for ``lrlab compare``,
``lrlab reproduce`` and the studies."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lrlab.execution import Outcome
    from lrlab.record import RunConfig


class SweepProgress:
    """The sweep's progress: a line saying what the store already has, then a bar of runs
    finished, diverged and failed, and the time left (`lrlab.sweep.Progress`)."""

    def __init__(self, *, verbose: bool, label: str = "", runs: str = "runs") -> None:
        self.verbose, self.label, self.runs = verbose, label, runs
        self.finished = 0
        self.counts = {"done": 0, "diverged": 0, "failed": 0}
        self._bar: Any = None
        self._pending = 0

    def start(self, total: int, stored: int, pending: int, store: Path) -> None:
        """A new batch of runs (a comparison's tuning runs, then its fresh-seed runs): its
        line, and a bar of its own."""
        print(
            f"{self.label}{total} {self.runs}, {stored} already in {store}, {pending} to run",
            file=sys.stderr,
        )
        self._pending = pending
        self.counts = dict.fromkeys(self.counts, 0)

    def _open(self) -> Any:
        """The bar, drawn at the first finished run (lines about the plan come first)."""
        from tqdm import tqdm

        if self._bar is None and self._pending:
            self._bar = tqdm(
                total=self._pending,
                unit="run",
                file=sys.stderr,
                dynamic_ncols=True,
                desc="sweep",
                smoothing=0.1,
            )
        return self._bar

    def grouped(self, groups: list[int], alone: list[tuple[RunConfig, str]]) -> None:
        """One line on how the runs train, groups or none; with ``--verbose``, why the runs
        that train alone are alone, counted by reason (``vectorised: no group (66 runs
        alone): 66 a DataLoader's batches ...``)."""
        reasons = Counter(reason for _, reason in alone)
        if groups:
            line = (
                f"vectorised: {sum(groups)} runs in {len(groups)} group(s) of "
                f"{min(groups)}-{max(groups)}, {len(alone)} alone"
            )
        elif alone:
            line = f"vectorised: no group ({len(alone)} runs alone)"
            if self.verbose:
                line += ": " + "; ".join(f"{n} {reason}" for reason, n in reasons.most_common())
                reasons = Counter()  # (said on this line)
        else:
            return
        print(f"{self.label}{line}", file=sys.stderr)
        if self.verbose:
            for reason, count in reasons.most_common():
                print(f"  {count} alone: {reason}", file=sys.stderr)

    def update(self, outcome: Outcome) -> None:
        status = (
            "failed" if outcome.error else (outcome.record.status if outcome.record else "failed")
        )
        self.counts[status] += 1
        self.finished += 1
        if self._open() is None:
            return
        self._bar.set_postfix_str(
            ", ".join(f"{k} {v}" for k, v in self.counts.items()), refresh=False
        )
        self._bar.update(1)
        if self.verbose:
            config, record = outcome.config, outcome.record
            detail = (
                (outcome.error or "")
                if status == "failed"
                else (
                    f"final {record.metric} {record.final_metric:.4g}, {record.wall_time:.1f} s"
                    if record and record.final_metric is not None
                    else ""
                )
            )
            self._bar.write(
                f"{status:8s} {config.optimizer} {config.schedule or ''} "
                f"lr={config.lr} seed={config.seed} {detail}".replace("  ", " ")
            )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
