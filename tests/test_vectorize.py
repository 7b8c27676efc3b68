"""Vectorised groups against the runs one by one: for every optimizer of the registry a few
members (seeds, LRs, a schedule, one made to diverge) trained together must give the records
`lrlab.engine.train_run` gives each alone; LipschitzLR too; and `plan_groups` says which runs can
train together, in groups that fit a memory budget, and why the others cannot."""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

import pytest
import torch
from torch import nn

from lrlab.engine import train_run
from lrlab.execution.worker import run_group
from lrlab.record import RunConfig, RunRecord, finite
from lrlab.studies import seed000
from lrlab.studies.runner import Options
from lrlab.vectorize import plan_groups, train_group
from lrlab.vectorize.model import unsupported_module
from lrlab.vectorize.plan import member_of

STEPS = 200


def assert_same(got: RunRecord, want: RunRecord, members: int, *, rel: float = 1e-5) -> None:
    """``got`` (vectorised) is ``want`` (alone): per-step losses within ``rel`` over the first
    200 steps, the same LRs, status, divergence step, error, epochs and ``extra``."""
    assert (got.status, got.diverged_at, got.steps, got.error) == (
        want.status,
        want.diverged_at,
        want.steps,
        want.error,
    )
    assert (got.config, got.metric, got.target, got.steps_per_epoch, got.device) == (
        want.config,
        want.metric,
        want.target,
        want.steps_per_epoch,
        want.device,
    )
    assert len(got.step_loss) == len(want.step_loss) == len(got.step_lr)
    for step, (a, b) in enumerate(zip(got.step_loss[:200], want.step_loss[:200], strict=True)):
        assert a is not None
        assert b is not None
        if math.isfinite(b):
            assert math.isclose(a, b, rel_tol=rel), (step, a, b)
        else:
            assert not math.isfinite(a), (step, a, b)
    assert got.step_lr == want.step_lr
    assert len(got.epochs) == len(want.epochs)
    for mine, theirs in zip(got.epochs, want.epochs, strict=True):
        assert (mine.epoch, mine.step, mine.lr) == (theirs.epoch, theirs.step, theirs.lr)
        for name in ("train_loss", "train_metric", "test_loss", "test_metric"):
            a, b = getattr(mine, name), getattr(theirs, name)
            assert (a is None) == (b is None), name
            if a is not None and math.isfinite(b):
                assert math.isclose(a, b, rel_tol=rel, abs_tol=1e-12), (name, a, b)
    extra = dict(got.extra)
    assert extra.pop("vectorized")["members"] == members
    assert extra == want.extra


def check_group(configs: list[RunConfig], *, path: str = "auto", rel: float = 1e-5) -> None:
    records = train_group(configs, path=path)  # type: ignore[arg-type]
    assert len(records) == len(configs)
    for config, record in zip(configs, records, strict=True):
        assert_same(record, train_run(config), len(configs), rel=rel)


# An LR that makes each optimizer diverge on the regression task (MSE): mid-run for the SGD
# family, at once for the adaptive ones (their step is bounded by the LR).
DIVERGING = {
    "sgd": 1.0,
    "momentum": 0.3,
    "ema-momentum": 1.0,
    "nesterov": 0.3,
    "keras-momentum": 0.3,
    "keras-nesterov": 0.3,
    "adagrad": 1e30,
    "rmsprop": 1e30,
    "adam": 1e30,
    "adamw": 1e3,
}


@pytest.mark.parametrize("optimizer", sorted(DIVERGING))
def test_members_equal_runs_alone(optimizer: str) -> None:
    base = {"task": "regression", "optimizer": optimizer, "steps": STEPS}
    configs = [
        RunConfig(**base, lr=0.01, seed=0),
        RunConfig(**base, lr=0.003, seed=1),
        RunConfig(**base, seed=2, schedule=f"cosine(lr=0.02, steps={STEPS})"),
        RunConfig(**base, lr=DIVERGING[optimizer], seed=3),
    ]
    records = train_group(configs)
    assert records[3].status == "diverged"
    assert [r.status for r in records[:3]] == ["done"] * 3
    for config, record in zip(configs, records, strict=True):
        assert_same(record, train_run(config), len(configs))


@pytest.mark.parametrize(
    ("task", "optimizer", "lrs"),
    [
        ("iris", "keras-momentum", (0.05, 0.2)),
        ("digits", "adam", (1e-3, 1e-2)),
        ("breast-cancer", "rmsprop", (1e-3, 1e-2)),
        ("quadratic", "sgd", (0.1, 0.3)),
    ],
)
def test_every_loss_and_model_kind(task: str, optimizer: str, lrs: tuple[float, float]) -> None:
    """Cross-entropy, BCE and MSE (batched MLP path), and a model that is no MLP (the member
    loop): per member, the run alone."""
    check_group([RunConfig(task, optimizer, lr=lr, seed=s, steps=60) for s, lr in enumerate(lrs)])


def test_chaotic_members_stay_on_their_runs() -> None:
    """Digits with momentum at an LR near the edge of stability amplifies a last-bit difference
    to 1e-2 within 200 steps; the members' training is bit for bit a run alone's, so their
    losses stay within a float's rounding (only the loss's own reduction may differ)."""
    configs = [RunConfig("digits", "momentum", lr=0.3, seed=s, steps=STEPS) for s in range(3)]
    check_group(configs, rel=1e-6)


def test_member_loop_runs_the_cnn_as_alone() -> None:
    configs = [
        RunConfig("mnist5k", "momentum", lr=lr, seed=s, steps=12, model="cnn", batch_size=32)
        for s, lr in enumerate((0.01, 0.05))
    ]
    records = train_group(configs)
    assert records[0].extra["vectorized"]["path"] == "loop"
    for config, record in zip(configs, records, strict=True):
        assert_same(record, train_run(config), 2, rel=0.0)


def test_torch_func_path_agrees_within_rounding() -> None:
    """``path="vmap"`` (torch.func's functional_call under vmap) rounds differently from a run
    alone, so it is not the default; on a calm run it stays within 1e-5."""
    configs = [
        RunConfig("iris", "sgd", lr=lr, seed=s, steps=60) for s, lr in enumerate((0.01, 0.03))
    ]
    check_group(configs, path="vmap")


@pytest.mark.parametrize(
    ("task", "spec", "steps"),
    [
        ("iris", "lipschitz(every=batch)", 60),
        ("iris", "lipschitz(every=epoch, source=train)", 60),
        ("iris", "lipschitz(every=batch, l2=0.01, scale=3)", 60),
        # The paper's bound after a pass over the data: its K hits 0 when every activation
        # dies, at the start of epoch 3 for seeds 0 and 2 and of epoch 2 for seed 1.
        ("digits", "lipschitz(bound=paper)", 140),
    ],
)
def test_lipschitz_members_equal_runs_alone(task: str, spec: str, steps: int) -> None:
    configs = [RunConfig(task, "sgd", schedule=spec, seed=s, steps=steps) for s in range(3)]
    check_group(configs)


def test_lipschitz_adamo_on_the_member_loop() -> None:
    spec = "lipschitz(variant=adamo, every=epoch, source=train)"
    configs = [RunConfig("digits", "ema-momentum", schedule=spec, seed=s, steps=60) for s in (0, 1)]
    check_group(configs, path="loop", rel=0.0)


def test_seed000_grid_is_one_group_and_equals_runs_alone() -> None:
    configs = [c for c, _ in seed000.plan(Options(out=None, seeds=2, epochs=2)).all_configs()]  # type: ignore[arg-type]
    groups, alone = plan_groups(configs)
    assert alone == []
    assert [len(g) for g in groups] == [len(configs)]
    check_group(groups[0])


def test_groups_and_reasons() -> None:
    iris = [
        RunConfig("iris", "momentum", lr=lr, seed=s, epochs=1) for lr in (0.1, 0.2) for s in (0, 1)
    ]
    mixed = [
        *iris,
        RunConfig("iris", "ema-momentum", lr=0.1, epochs=1),  # same rule, other dampening
        RunConfig("iris", "momentum", lr=0.1, epochs=1, batch_size=10),
        RunConfig("iris", "adam", lr=0.1, epochs=1),
        RunConfig("iris", "momentum", lr=0.1, epochs=1, schedule="lipschitz(every=batch)"),
        RunConfig("iris", "prodigy", epochs=1),
        RunConfig("iris", "momentum", lr=-1.0, epochs=1),
        RunConfig("iris", "momentum", lr=0.1, epochs=1, optimizer_args={"foreach": True}),
        RunConfig("iris", "sgd", lr=0.1, epochs=1, schedule="cosine(lr=0.1, steps=-3)"),
    ]
    groups, alone = plan_groups(mixed)
    assert [len(g) for g in groups] == [5, 1, 1, 1]
    assert groups[0] == [*iris, mixed[4]]
    reasons = [reason for _, reason in alone]
    assert reasons[0] == "optimizer 'prodigy' is a peer (its own package) without a stacked rule"
    assert reasons[1] == "invalid config: run: lr must be > 0, got lr=-1.0"
    assert reasons[2] == "optimizer argument foreach=True selects other kernels"
    assert reasons[3].startswith("invalid config: ")


def test_controllers_without_a_vectorised_form_train_alone() -> None:
    config = RunConfig("iris", "sgd", lr=0.1, epochs=1, schedule="plateau(patience=2)")
    groups, alone = plan_groups([config, RunConfig("iris", "sgd", lr=0.1, epochs=1)])
    assert alone == [(config, "controller PlateauController has no vectorised form")]
    assert len(groups) == 1
    with pytest.raises(ValueError, match=r"configs\[0\] cannot be vectorised: controller"):
        train_group([config])


@pytest.mark.parametrize(
    ("module", "reason"),
    [
        (nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4)), "BatchNorm1d '1' normalises by"),
        (nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5)), "Dropout '1' draws random masks"),
        (nn.LSTM(4, 4), "LSTM is a recurrent layer"),
    ],
)
def test_models_with_batch_state_are_refused(module: nn.Module, reason: str) -> None:
    assert (unsupported_module(module) or "").startswith(reason)


def test_memory_budget_splits_a_group_and_each_part_trains_as_alone() -> None:
    configs = [RunConfig("iris", "adam", lr=0.01 * (i + 1), seed=i, steps=30) for i in range(5)]
    member = member_of(configs[0])
    assert not isinstance(member, str)
    groups, alone = plan_groups(configs, memory_budget=2 * member.member_bytes + 1)
    assert alone == []
    assert [len(g) for g in groups] == [2, 2, 1]
    assert [c for g in groups for c in g] == configs
    for group in groups:
        check_group(group)
    assert [len(g) for g in plan_groups(configs, workers=2)[0]] == [3, 2]
    three = [*configs, RunConfig("iris", "sgd", lr=0.1, steps=30), RunConfig("digits", "sgd")]
    assert [len(g) for g in plan_groups(three, workers=2)[0]] == [3, 2, 1, 1]
    with pytest.raises(ValueError, match="memory_budget must be a number of bytes >= 1"):
        plan_groups(configs, memory_budget=0)


def test_train_group_refuses_configs_of_different_groups() -> None:
    assert train_group([]) == []
    with pytest.raises(ValueError, match=r"configs\[1\] differs from configs\[0\] in batch_size"):
        train_group(
            [RunConfig("iris", "sgd", epochs=1), RunConfig("iris", "sgd", epochs=1, batch_size=7)]
        )
    with pytest.raises(ValueError, match="path must be auto, mlp, vmap or loop"):
        train_group([RunConfig("iris", "sgd", epochs=1)], path="fast")  # type: ignore[arg-type]


def test_run_group_is_plain_data_and_timing_is_shared() -> None:
    configs = [RunConfig("iris", "sgd", lr=lr, seed=1, epochs=2) for lr in (0.05, 0.1)]
    results = run_group([c.to_dict() for c in configs])
    records = [RunRecord.from_json(text) for text, error in results if text and not error]
    assert [r.config for r in records] == configs
    assert all(r.extra["vectorized"] == {"members": 2, "path": "mlp"} for r in records)
    assert all(0 < r.train_time <= r.wall_time for r in records)
    assert all(0 < e.train_time <= e.wall_time for r in records for e in r.epochs)
    failed = run_group([configs[0].to_dict(), {**configs[1].to_dict(), "batch_size": 3}])
    assert [text for text, _ in failed] == [None, None]
    assert all(
        (error or "").startswith("ValueError: train_group: configs[1] differs")
        for _, error in failed
    )
    json.dumps(results)


def test_vectorised_records_round_trip() -> None:
    record = train_group([RunConfig("digits", "sgd", lr=0.1, steps=5)])[0]
    assert RunRecord.from_json(record.to_json()) == record


def test_record_to_dict_is_asdict_with_finite_floats() -> None:
    """The record's fast `to_dict` (a group's records are written all at once at its end)
    gives what ``asdict`` then replacing non-finite floats gives."""
    config = RunConfig("regression", "sgd", lr=1.0, schedule="lipschitz(every=batch)", steps=30)
    records = [*train_group([config]), *train_group([dataclasses.replace(config, schedule=None)])]
    records += train_group([RunConfig("regression", "sgd", lr=1e4, steps=30)])
    assert records[2].status == "diverged"
    for record in records:
        assert record.to_dict() == finite(dataclasses.asdict(record))


def _assert_no_torch_state_leak() -> None:
    """train_group leaves the global RNG alone (models are built under fork_rng)."""
    before = torch.random.get_rng_state()
    train_group([RunConfig("iris", "sgd", lr=0.1, steps=3)])
    assert torch.equal(before, torch.random.get_rng_state())


def test_global_rng_untouched() -> None:
    _assert_no_torch_state_leak()


def test_options_differ_in_kind_are_separate_groups() -> None:
    configs: list[dict[str, Any]] = [
        {"optimizer_args": {"momentum": 0.9}},
        {"optimizer_args": {"momentum": 0.5}},
        {"optimizer_args": {"momentum": 0.9, "nesterov": True}},
    ]
    runs = [RunConfig("iris", "sgd", lr=0.1, epochs=1, **c) for c in configs]
    groups, _ = plan_groups(runs)
    assert groups == [runs[:2], runs[2:]]
    check_group(runs[:2])
