"""Vectorised sweeps: the runs of a sweep that differ only in seed, LR, schedule and optimizer
hyperparameter values, trained together as one model stacked along a leading member dimension.

`plan_groups` says which runs can train together (and why the others cannot);
`train_group` trains one group and returns one `RunRecord` per run, equal to what
`lrlab.engine.train_run` gives for that run alone (`lrlab.execution.worker.run_group` is its
plain-data form for a worker process). See `lrlab.vectorize.engine` for what a member keeps of
its own run.
"""

from __future__ import annotations

from lrlab.vectorize.engine import train_group
from lrlab.vectorize.plan import plan_groups

__all__ = ["plan_groups", "train_group"]
