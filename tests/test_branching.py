"""Branching (`lrlab.engine.branching`, `lrlab.branch`): a run continued from another run's
state where their LRs part ends bit for bit as the same run trained from scratch (weights,
record), with the in-memory and the streamed batch paths, augmentation, dropout and batch norm,
the training options; where it continues from is the last epoch boundary before the LRs part;
what may not differ is refused in one line before anything trains."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import lrlab
from lrlab.engine import train_run
from lrlab.engine.branching import branch_step, lr_trace, train_branches
from lrlab.engine.loop import train_snapshots
from lrlab.engine.planning import plan, task_data
from lrlab.record import RunConfig, RunRecord
from lrlab.tasks import Task
from tests.test_checkpoints import Tracked, comparable, stream_task, tensor_task, weights


def same_run(record: RunRecord) -> dict[str, Any]:
    """What a run computed: `comparable` without where it branched from."""
    data = comparable(record)
    data["extra"].pop("branch", None)
    return data


def assert_branches_exactly(
    source: RunConfig, branches: list[RunConfig], make_task: Any, expected_at: list[int]
) -> None:
    builder = Tracked()
    task = make_task(builder)
    result = train_branches(source, branches, task=task)
    branched = weights(builder.last)  # the last branch's model, built last
    assert result.at == expected_at
    assert same_run(result.source) == same_run(train_run(source, task=task))
    for config, record, at in zip(branches, result.branches, result.at, strict=True):
        scratch = train_run(config, task=task)
        assert same_run(record) == same_run(scratch), config
        assert record.extra.get("branch") == ({"from": source.key(), "at": at} if at else None)
    got = weights(builder.last)  # the last branch trained from scratch
    assert all(torch.equal(got[name], branched[name]) for name in got)
    assert result.saved_steps == sum(expected_at)


def wsd(steps: int, decay: float = 0.25, shape: str = "linear", warmup: int = 4) -> str:
    return f"wsd(lr=0.05, steps={steps}, warmup={warmup}, decay={decay}, shape={shape})"


def test_cooldowns_at_shorter_budgets_and_other_shapes() -> None:
    """13 steps an epoch. The 20-step run's cooldown starts at update 15 (its LR parts at
    16), so it continues from 13; the 32-step sqrt run's LRs part at 25 -> 13 too; a run
    that parts in the first epoch trains from scratch; one equal to the source throughout
    (shorter) continues from its own last epoch boundary."""
    source = RunConfig(task="toy", optimizer="adam", seed=1, steps=52, schedule=wsd(52))
    branches = [
        dataclasses.replace(source, steps=20, schedule=wsd(20)),
        dataclasses.replace(source, steps=32, schedule=wsd(32, shape="sqrt")),
        dataclasses.replace(source, steps=40, schedule=wsd(40, warmup=2)),
        dataclasses.replace(source, steps=30, schedule=wsd(52)),
    ]
    assert_branches_exactly(source, branches, tensor_task, [13, 13, 0, 26])


@pytest.mark.parametrize(
    ("options", "at"),
    [
        ({"clip_norm": 0.5, "accumulation_steps": 2}, 35),  # 7 updates an epoch
        ({"sampling": "replacement", "decay_params": "matrices", "optimizer": "adamw"}, 26),
        ({"precision": "bf16", "optimizer": "momentum"}, 26),
    ],
)
def test_with_the_training_options(options: dict[str, Any], at: int) -> None:
    base: dict[str, Any] = {"task": "toy", "optimizer": "adam", "seed": 2, **options}
    source = RunConfig(**base, steps=60, schedule=wsd(60, decay=0.1))
    branch = dataclasses.replace(source, steps=40, schedule=wsd(40, decay=0.1))
    # the 40-step run decays from update 36 on: its LRs part at 37
    assert_branches_exactly(source, [branch], tensor_task, [at])


def test_a_constant_lr_source_and_a_streamed_task() -> None:
    """A constant-LR source (no schedule) and a decay branch, on a shuffling DataLoader (13
    batches a pass, a pass an epoch): the branch continues as the loader's third pass
    begins, which it draws from the RNGs as the source left them."""
    source = RunConfig(task="toy-stream", optimizer="adam", lr=0.05, seed=3, steps=45)
    branch = dataclasses.replace(
        source, steps=40, schedule="wsd(lr=0.05, steps=40, decay=10)", lr=None
    )
    assert_branches_exactly(source, [branch], stream_task, [26])


def test_a_branch_after_the_source_diverged_trains_from_scratch() -> None:
    task = tensor_task(Tracked())
    source = RunConfig(task="toy", optimizer="sgd", lr=1e4, seed=0, steps=40)
    branch = dataclasses.replace(source, steps=30, schedule="wsd(lr=1e4, steps=30, decay=5)")
    result = train_branches(source, [branch], task=task)
    assert result.source.status == "diverged"
    assert result.source.diverged_at is not None
    assert result.source.diverged_at < 26
    assert result.at == [0]
    assert same_run(result.branches[0]) == same_run(train_run(branch, task=task))


def test_snapshots_are_plain_data_taken_at_the_steps_asked() -> None:
    task = tensor_task(Tracked())
    config = RunConfig(task="toy", optimizer="adam", lr=0.01, seed=5, steps=39)
    record, snapshots = train_snapshots(config, task=task, snapshot_at=[13, 20, 100])
    assert [s.step for s in snapshots] == [13, 20]  # 100 is past the run's end
    assert all(s.key == config.key() for s in snapshots)
    state = snapshots[1].state()  # torch.load(..., weights_only=True)
    assert state["loop"]["step"] == 20
    assert same_run(record) == same_run(train_run(config, task=task))


@given(
    st.lists(st.sampled_from([0.1, 0.2, 0.3]), min_size=1, max_size=40),
    st.lists(st.sampled_from([0.1, 0.2, 0.3]), min_size=1, max_size=40),
    st.integers(1, 12),
)
def test_branch_step_is_an_epoch_boundary_before_the_lrs_part(
    source: list[float], branch: list[float], steps_per_epoch: int
) -> None:
    at = branch_step(source, branch, steps_per_epoch)
    assert at % steps_per_epoch == 0
    assert 0 <= at <= min(len(source), len(branch))
    assert source[:at] == branch[:at]
    parted = next(
        (i for i, (a, b) in enumerate(zip(source, branch, strict=False)) if a != b),
        min(len(source), len(branch)),
    )
    assert at > parted - steps_per_epoch  # the latest such boundary


def test_lr_trace_is_what_the_engine_records() -> None:
    task = tensor_task(Tracked())
    for config in (
        RunConfig(task="toy", optimizer="adam", lr=0.02, seed=0, steps=30, schedule=wsd(30)),
        RunConfig(task="toy", optimizer="adam", seed=0, steps=30, schedule=wsd(30)),
        RunConfig(task="toy", optimizer="momentum", seed=0, steps=30),  # the default LR
    ):
        resolved = plan(config, task_data(config, task), task)
        assert lr_trace(config, resolved) == train_run(config, task=task).step_lr


def test_what_may_not_differ_is_refused_before_training() -> None:
    task = tensor_task(Tracked())
    source = RunConfig(task="toy", optimizer="adam", seed=1, steps=40, schedule=wsd(40))
    with pytest.raises(ValueError, match=r"^branch: branches\[1\] differs from the source in "):
        train_branches(
            source,
            [
                dataclasses.replace(source, steps=20, schedule=wsd(20)),
                dataclasses.replace(source, steps=20, batch_size=4),
            ],
            task=task,
        )
    with pytest.raises(ValueError, match=r"in seed \(2 against 1\)"):
        train_branches(source, [dataclasses.replace(source, seed=2)], task=task)
    with pytest.raises(ValueError, match=r"^branch: schedule must be a closed-form schedule"):
        train_branches(
            source,
            [dataclasses.replace(source, schedule="plateau(lr=0.05, patience=0)")],
            task=task,
        )
    with pytest.raises(ValueError, match=r"^branch: give at least one branch"):
        train_branches(source, [], task=task)
    with pytest.raises(TypeError, match=r"^branch: branches\[0\] must be a RunConfig"):
        train_branches(source, ["wsd"], task=task)  # type: ignore[list-item]


def test_the_public_api_fills_in_each_branchs_horizon() -> None:
    """``lrlab.branch``: a schedule without ``steps`` runs over its own run's length."""
    result = lrlab.branch(
        "quadratic",
        lr=0.1,
        steps=40,
        schedule="wsd(lr=0.1, warmup=5, decay=0.2)",
        branches=[(20, "wsd(lr=0.1, warmup=5, decay=0.2)"), (30, "wsd(lr=0.1, decay=6)")],
    )
    assert [r.config.schedule for r in result.branches] == [
        "wsd(lr=0.1, steps=20, warmup=5, decay=0.2)",
        "wsd(lr=0.1, steps=30, decay=6)",
    ]
    assert result.at == [17, 0]  # the second has no warmup: it parts at once
    first = result.branches[0].config.schedule
    scratch = lrlab.train("quadratic", lr=0.1, steps=20, schedule=first)
    assert same_run(result.branches[0]) == same_run(scratch)
    with pytest.raises(TypeError, match=r"^branches\[0\] must be a \(steps, schedule\) pair"):
        lrlab.branch("quadratic", lr=0.1, steps=40, branches=[20])  # type: ignore[list-item]
    with pytest.raises(TypeError, match=r"^branches must be a list"):
        lrlab.branch("quadratic", lr=0.1, steps=40, branches="wsd")


def test_a_task_object_is_not_needed_by_name() -> None:
    """The task may be a `Task` object the registry does not know."""
    task: Task = tensor_task(Tracked())
    result = lrlab.branch(
        task,
        optimizer="adam",
        lr=0.05,
        steps=39,
        schedule=wsd(39),
        branches=[(26, wsd(26))],
    )
    assert result.at == [13]
