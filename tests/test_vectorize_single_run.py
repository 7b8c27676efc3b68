"""A single run's faster optimizer (issue 10, item 5): the engine hands a registry optimizer one
flat, aligned tensor instead of the model's parameters; runs must come out bit for bit as with
the model's own parameters. torch's fused kernels are not used: they compute other numbers."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from lrlab.engine import loop as engine
from lrlab.engine import train_run
from lrlab.engine.flat import ALIGNMENT, flatten_parameters
from lrlab.optimizers import OPTIMIZERS, make_optimizer
from lrlab.record import RunConfig, RunRecord

# The registry's own rules (the peers come from their packages and train alone).
REGISTRY = [name for name, entry in OPTIMIZERS.items() if entry.elementwise]


def _numbers(record: RunRecord) -> tuple[Any, ...]:
    return (
        record.status,
        record.diverged_at,
        record.step_loss,
        record.step_lr,
        [(e.train_loss, e.train_metric, e.test_loss, e.test_metric, e.lr) for e in record.epochs],
        record.extra,
    )


def _plain(config: RunConfig, monkeypatch: pytest.MonkeyPatch) -> RunRecord:
    """The run on the model's own parameters."""
    with monkeypatch.context() as patch:
        patch.setattr(engine, "flatten_parameters", lambda params: None)
        return train_run(config)


@pytest.mark.parametrize("optimizer", sorted(REGISTRY))
@pytest.mark.parametrize(("task", "steps"), [("iris", 120), ("mnist5k", 12)])
def test_flat_parameters_give_the_same_run(
    optimizer: str, task: str, steps: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = RunConfig(task, optimizer, lr=0.02, steps=steps, seed=3)
    assert _numbers(train_run(config)) == _numbers(_plain(config, monkeypatch))


@pytest.mark.parametrize(
    ("optimizer", "args", "schedule"),
    [
        ("adamw", {"weight_decay": 0.1, "amsgrad": True}, None),
        ("rmsprop", {"centered": True, "momentum": 0.5}, "cosine(lr=0.01, steps=60)"),
        ("sgd", {"weight_decay": 0.01}, "lipschitz(every=batch)"),  # reads the parameters
        ("momentum", {"fused": True}, None),  # the run's own switch wins
    ],
)
def test_flat_parameters_with_options_and_controllers(
    optimizer: str, args: dict[str, Any], schedule: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = RunConfig(
        "regression", optimizer, lr=0.01, schedule=schedule, optimizer_args=args, steps=60
    )
    assert _numbers(train_run(config)) == _numbers(_plain(config, monkeypatch))


@pytest.mark.parametrize("name", ["sgd", "momentum", "ema-momentum", "adam", "adagrad"])
def test_fused_kernels_compute_other_numbers(name: str) -> None:
    """Why the engine leaves torch's fused CPU kernels alone: with an LR that changes, each
    rule with a state rounds differently from the default (plain SGD's agrees, and is not
    faster on one tensor)."""
    generator = torch.Generator().manual_seed(0)
    start = torch.randn(10_007, generator=generator)
    grads = [torch.randn(10_007, generator=generator) * s for s in (3.0, 1e-3, 1.0)]
    results = []
    for options in ({}, {"fused": True}):
        flat = torch.nn.Parameter(start.clone())
        optimizer = make_optimizer(name, [flat], lr=0.05, **options)
        for step in range(30):
            flat.grad = grads[step % 3].clone()
            optimizer.param_groups[0]["lr"] = 0.05 / (1 + step)
            optimizer.step()
        results.append(flat.detach())
    assert torch.equal(results[0], results[1]) == (name == "sgd")


def test_flatten_parameters_aligns_and_shares_storage() -> None:
    params = [torch.randn(s, requires_grad=True) for s in ((5, 3), (7,), (1,), (4, 4))]
    values = [p.detach().clone() for p in params]
    flat = flatten_parameters(params)
    assert flat is not None
    assert flat.grad is not None
    for p, value in zip(params, values, strict=True):
        assert torch.equal(p, value)
        assert p.data_ptr() % ALIGNMENT == 0
        assert p.grad is not None
        assert p.grad.data_ptr() - flat.grad.data_ptr() == p.data_ptr() - flat.data_ptr()
    with torch.no_grad():
        flat.add_(1.0)
    assert torch.equal(params[1], values[1] + 1)
    (params[0].sum() * 2).backward()
    assert torch.equal(params[0].grad, torch.full((5, 3), 2.0))


def test_flatten_refuses_what_cannot_share_a_buffer() -> None:
    assert flatten_parameters([]) is None
    assert flatten_parameters([torch.zeros(2, requires_grad=True), torch.zeros(2)]) is None
    mixed = [
        torch.zeros(2, requires_grad=True),
        torch.zeros(2, dtype=torch.float64).requires_grad_(),
    ]
    assert flatten_parameters(mixed) is None
