"""Vectorised groups inside sweeps: `lrlab compare` and `lrlab reproduce` train the members of
a group together by default, and the store ends up with the records the runs give alone."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

import lrlab
from lrlab.execution import InProcess, LocalPool, Outcome
from lrlab.record import RunConfig, RunRecord
from lrlab.store import Store
from lrlab.sweep import run_missing


def _same(got: RunRecord, want: RunRecord) -> None:
    assert (got.status, got.diverged_at, got.steps) == (want.status, want.diverged_at, want.steps)
    assert got.step_lr == want.step_lr
    for a, b in zip(got.step_loss, want.step_loss, strict=True):
        if a is None or b is None or not math.isfinite(a):
            assert a == b or (a is not None and b is not None and math.isnan(a) == math.isnan(b))
        else:
            assert a == pytest.approx(b, rel=1e-5)
    assert [e.test_metric for e in got.epochs] == [e.test_metric for e in want.epochs]
    assert got.steps_to_target == want.steps_to_target


class Plan:
    """A `lrlab.sweep.Progress` that keeps what it is told."""

    def __init__(self) -> None:
        self.groups: list[int] = []
        self.alone: list[tuple[RunConfig, str]] = []
        self.outcomes: list[Outcome] = []

    def start(self, total: int, stored: int, pending: int, store: Path) -> None:
        pass

    def grouped(self, groups: list[int], alone: list[tuple[RunConfig, str]]) -> None:
        self.groups, self.alone = groups, alone

    def update(self, outcome: Outcome) -> None:
        self.outcomes.append(outcome)

    def close(self) -> None:
        pass


@pytest.mark.parametrize("workers", [1, 2])
def test_a_vectorised_compare_stores_what_runs_alone_store(tmp_path: Path, workers: int) -> None:
    arguments = {
        "optimizers": ["sgd", "momentum", "adam"],
        "methods": [("sgd", "lipschitz(bound=smooth, every=batch)"), ("sgd", "plateau()")],
        "seeds": 2,
        "lr_grid": [0.01, 0.1, 1.0],
        "epochs": 3,
        "workers": workers,
        "optimistic": True,  # one sweep of the whole grid: every group in one plan
    }
    plan = Plan()
    together = lrlab.compare(
        "regression",
        db=tmp_path / "on.sqlite",
        progress=plan,
        **arguments,  # type: ignore[arg-type]
    )
    alone = lrlab.compare(
        "regression",
        db=tmp_path / "off.sqlite",
        vectorize=False,
        **arguments,  # type: ignore[arg-type]
    )
    assert together.ran == alone.ran == 3 * 3 * 2 + 2 + 3 * 2
    assert sum(plan.groups) == together.ran - len(plan.alone)
    assert {reason for _, reason in plan.alone} == {
        "controller PlateauController has no vectorised form"
    }
    records = {r.config.key(): r.record for r in alone.runs}
    vectorised = 0
    for run in together.runs:
        assert run.record is not None
        _same(run.record, records[run.config.key()])  # type: ignore[arg-type]
        vectorised += "vectorized" in run.record.extra
    assert vectorised == sum(plan.groups)
    assert any(r.record.status == "diverged" for r in together.runs if r.record)  # lr 1.0
    assert together.ranking == alone.ranking


def test_run_missing_resumes_groups_and_skips_finished_members(tmp_path: Path) -> None:
    configs = [
        RunConfig("iris", "momentum", lr=lr, seed=seed, epochs=2)
        for lr in (0.01, 0.1)
        for seed in range(3)
    ]
    with Store(tmp_path / "runs.sqlite") as store:
        store.put(*_alone(configs[1]))  # one member finished before the sweep
        plan = Plan()
        ran = run_missing(store, configs, InProcess(), plan)
        assert ran == 5
        assert plan.groups == [5]
        assert {o.config.key() for o in plan.outcomes} == {
            c.key() for c in configs[:1] + configs[2:]
        }
        assert run_missing(store, configs, InProcess(), Plan()) == 0
        assert len(store.runs()) == 6


def _alone(config: RunConfig) -> tuple[RunConfig, RunRecord]:
    from lrlab.engine import train_run

    return config, train_run(config)


def test_a_pool_trains_groups_in_its_workers(tmp_path: Path) -> None:
    configs = [
        RunConfig("iris", "adam", lr=lr, seed=seed, epochs=2)
        for lr in (0.001, 0.01, 0.1)
        for seed in range(4)
    ]
    outcomes: list[Outcome] = []
    LocalPool(2).run_groups([configs[:6], configs[6:], configs[:1]], outcomes.append)
    assert len(outcomes) == 13
    for outcome in outcomes:
        assert outcome.error is None
        assert outcome.record is not None
    members = [o for o in outcomes if "vectorized" in o.record.extra]  # type: ignore[union-attr]
    assert len(members) == 12


@pytest.mark.parametrize(("members", "batch", "classes"), [(30, 5, 3), (35, 32, 10), (3, 1, 2)])
def test_keras_loss_gradient_is_a_run_alones_bit_for_bit(
    members: int, batch: int, classes: int
) -> None:
    """Seed 000 runs Keras' clipped cross-entropy: its stacked gradient equals autograd's on
    each member's outputs alone, clipped samples (no gradient) included."""
    import torch

    from lrlab.tasks.task import keras_cross_entropy
    from lrlab.vectorize.losses import losses_and_gradient

    generator = torch.Generator().manual_seed(members)
    outputs = torch.randn(members, batch, classes, generator=generator) * 6
    targets = torch.randint(0, classes, (members, batch), generator=generator)
    outputs[0, 0, :2] = torch.tensor([0.0, 40.0])  # p_y ~ 4e-18: clipped
    targets[0, 0] = 0
    alone = []
    for row in range(members):
        leaf = outputs[row].clone().requires_grad_()
        keras_cross_entropy(leaf, targets[row]).backward()  # type: ignore[no-untyped-call]
        alone.append(leaf.grad)
    losses, gradient = losses_and_gradient("keras_cross_entropy", outputs, targets)
    assert torch.equal(gradient, torch.stack(alone))  # type: ignore[arg-type]
    assert gradient[0, 0].abs().sum() == 0
    for row in range(members):
        expected = keras_cross_entropy(outputs[row], targets[row])
        assert losses[row].item() == pytest.approx(expected.item(), rel=1e-6)
