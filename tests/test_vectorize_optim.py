"""The stacked update rules against torch.optim on the same numbers: members with their own LRs
(changed every step, as a schedule does) and their own hyperparameters, stacked as rows, must
come out bit for bit equal to one torch optimizer per member."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from lrlab.optimizers import OPTIMIZERS, make_optimizer
from lrlab.vectorize.optim import (
    AdamRule,
    SGDRule,
    StackedRule,
    param_group,
    rule_for,
    unsupported,
)

SHAPES = [(4, 3), (3,), (17,)]

# The registry's own rules (the peers come from their packages and train alone).
REGISTRY = [name for name, entry in OPTIMIZERS.items() if entry.elementwise]


def _run_both(
    name: str, args: list[dict[str, Any]], steps: int = 30, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Members' parameters after ``steps`` updates: stacked rule vs one optimizer each."""
    generator = torch.Generator().manual_seed(seed)
    members = len(args)
    initial = [[torch.randn(s, generator=generator) for s in SHAPES] for _ in range(members)]
    lrs = torch.rand(steps, members, generator=generator, dtype=torch.float64) * 0.1 + 0.001
    scales = [3.0, 1e-3, 1.0, 50.0]
    grads = [
        [
            [torch.randn(s, generator=generator) * scales[t % len(scales)] for s in SHAPES]
            for _ in range(members)
        ]
        for t in range(steps)
    ]

    references = []
    optimizers = []
    for i in range(members):
        params = [p.clone().requires_grad_() for p in initial[i]]
        references.append(params)
        optimizers.append(make_optimizer(name, params, **args[i]))
    stacked = torch.stack([torch.cat([p.reshape(-1) for p in member]) for member in initial])
    rule_type = rule_for(optimizers[0])
    assert not isinstance(rule_type, str), rule_type
    rule = rule_type([o.param_groups[0] for o in optimizers], stacked)
    for t in range(steps):
        for i in range(members):
            optimizers[i].param_groups[0]["lr"] = float(lrs[t, i])
            for p, g in zip(references[i], grads[t][i], strict=True):
                p.grad = g.clone()
            optimizers[i].step()
        flat_grads = torch.stack(
            [torch.cat([g.reshape(-1) for g in grads[t][i]]) for i in range(members)]
        )
        rule.step(stacked, flat_grads, lrs[t])
    expected = torch.stack([torch.cat([p.detach().reshape(-1) for p in m]) for m in references])
    return stacked, expected


CASES: list[tuple[str, list[dict[str, Any]]]] = [
    *((name, [{}, {}, {}]) for name in REGISTRY),
    ("sgd", [{"weight_decay": 0.01}, {"weight_decay": 0.1}, {"weight_decay": 1.0}]),
    ("momentum", [{"momentum": 0.9}, {"momentum": 0.5}, {"momentum": 0.99}]),
    ("momentum", [{"weight_decay": 1e-3, "maximize": True}] * 3),
    ("ema-momentum", [{"dampening": 0.9}, {"dampening": 0.5}, {"dampening": 0.0}]),
    ("nesterov", [{"weight_decay": 1e-2}, {"momentum": 0.8, "weight_decay": 0.1}] * 2),
    ("keras-momentum", [{"momentum": 0.9}, {"momentum": 0.0}, {"weight_decay": 0.0}]),
    ("keras-nesterov", [{"weight_decay": 0.01}, {"weight_decay": 0.02, "momentum": 0.5}]),
    ("adagrad", [{"lr_decay": 0.01}, {"lr_decay": 0.0}, {"initial_accumulator_value": 0.1}]),
    ("adagrad", [{"eps": 1e-10, "weight_decay": 0.1}, {"weight_decay": 0.01}]),
    ("rmsprop", [{"centered": True}, {"centered": True, "alpha": 0.9}, {"centered": True}]),
    ("rmsprop", [{"momentum": 0.9}, {"momentum": 0.5, "eps": 1e-3}, {"momentum": 0.1}]),
    ("rmsprop", [{"weight_decay": 0.01, "maximize": True}] * 3),
    ("adam", [{"betas": (0.9, 0.999)}, {"betas": (0.8, 0.99)}, {"betas": (0.0, 0.9)}]),
    ("adam", [{"amsgrad": True}, {"amsgrad": True, "eps": 1e-3}, {"amsgrad": True}]),
    ("adam", [{"weight_decay": 0.01}, {"weight_decay": 0.1}, {"weight_decay": 1.0}]),
    ("adamw", [{"weight_decay": 0.01}, {"weight_decay": 0.1}, {"betas": (0.5, 0.5)}]),
    ("adamw", [{"maximize": True, "amsgrad": True}] * 3),
]


@pytest.mark.parametrize(
    ("name", "args"), CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)]
)
def test_stacked_rule_equals_torch_optim_bit_for_bit(name: str, args: list[dict[str, Any]]) -> None:
    stacked, expected = _run_both(name, args)
    assert torch.isfinite(expected).all()
    assert torch.equal(stacked, expected), (stacked - expected).abs().max()


def test_select_keeps_members_state() -> None:
    """Dropping a member mid-run leaves the others exactly where they would have been."""
    generator = torch.Generator().manual_seed(1)
    params = torch.randn(3, 10, generator=generator)
    groups = [make_optimizer("adam", [torch.zeros(1)], lr=0.1).param_groups[0] for _ in range(3)]
    groups[2] = make_optimizer("adam", [torch.zeros(1)], betas=(0.5, 0.9)).param_groups[0]
    whole, part = AdamRule(groups, params.clone()), AdamRule(groups, params.clone())
    full, kept = params.clone(), params.clone()
    lr = torch.tensor([0.1, 0.2, 0.3], dtype=torch.float64)
    keep = torch.tensor([0, 2])
    for t in range(6):
        grads = torch.randn(3, 10, generator=generator)
        whole.step(full, grads, lr)
        if t < 3:
            part.step(kept, grads, lr)
        else:
            part.step(kept, grads[keep], lr[keep])
        if t == 2:
            part.select(keep)
            kept = kept.index_select(0, keep)
    assert torch.equal(kept, full[[0, 2]])


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        ({"foreach": True}, "foreach=True selects other kernels"),
        ({"differentiable": True}, "differentiable=True selects other kernels"),
    ],
)
def test_unsupported_options_are_named(args: dict[str, Any], reason: str) -> None:
    # torch's class itself: lrlab's registry refuses differentiable=True before this point
    optimizer = torch.optim.SGD([torch.zeros(2, requires_grad=True)], 0.01, 0.9, **args)
    assert rule_for(optimizer) == f"optimizer argument {reason}"


def test_unknown_optimizer_class_and_keys() -> None:
    optimizer = torch.optim.Adamax([torch.zeros(2, requires_grad=True)])
    assert rule_for(optimizer) == "optimizer Adamax has no stacked update rule"
    assert unsupported(SGDRule, {"lr": 0.1, "decoupled": 1}) is not None


def test_members_whose_options_differ_in_kind_are_refused() -> None:
    plain = make_optimizer("sgd", [torch.zeros(1)]).param_groups[0]
    heavy = make_optimizer("momentum", [torch.zeros(1)]).param_groups[0]
    with pytest.raises(ValueError, match="differ in kind"):
        SGDRule([plain, heavy], torch.zeros(2, 4))


def test_every_registry_optimizer_has_a_rule() -> None:
    for name in REGISTRY:
        rule = rule_for(make_optimizer(name, [torch.zeros(1, requires_grad=True)]))
        assert isinstance(rule, type), name
        assert issubclass(rule, StackedRule), name


@pytest.mark.parametrize("name", sorted(REGISTRY))
@pytest.mark.parametrize(
    ("lr", "args"),
    [(None, {}), (0.3, {"weight_decay": 0.5}), (0.1, {"maximize": True, "foreach": False})],
)
def test_param_group_is_the_one_torch_builds(
    name: str, lr: float | None, args: dict[str, Any]
) -> None:
    if name.startswith("keras") and "foreach" in args:
        args = {k: v for k, v in args.items() if k != "foreach" and k != "maximize"}
    built = make_optimizer(name, [torch.zeros(1, requires_grad=True)], lr=lr, **args)
    cls, group = param_group(name, lr, args)
    assert cls is type(built)
    assert group == {k: v for k, v in built.param_groups[0].items() if k != "params"}


def test_param_group_refuses_what_make_optimizer_refuses() -> None:
    with pytest.raises(ValueError, match="optimizer 'sgd' takes no argument 'betas'"):
        param_group("sgd", None, {"betas": (0.9, 0.99)})
    with pytest.raises(ValueError, match="optimizer 'prodigy' is a peer"):
        param_group("prodigy", None, {})
