"""The optimizer registry (each name against its documented update rule), and `KerasSGD`
against its formula."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lrlab import KerasSGD, ScheduleLR, make_optimizer
from lrlab.optimizers import OPTIMIZERS
from lrlab.schedules import InverseTime


def _param() -> torch.nn.Parameter:
    return torch.nn.Parameter(torch.zeros(3))


def _rule(name: str, w: np.ndarray, grads: list[np.ndarray]) -> np.ndarray:
    """Each name's update rule as the module docstring and the source documents write it, in
    float64, with the seeds' values (lr 0.01, mu 0.9; AdaGrad and RMSprop eps 1e-7, seed 003's;
    Adam lr 0.001, betas 0.9/0.999, PyTorch's eps 1e-8; AdamW's decay 0.01) spelled out here,
    not read from the registry."""
    w = w.astype(np.float64).copy()
    b = v = h = m = np.zeros_like(w)
    for t, g in enumerate(grads, start=1):
        if name == "sgd":
            w = w - 0.01 * g
        elif name in ("momentum", "nesterov", "ema-momentum"):
            if name == "ema-momentum":  # b = mu b + (1 - mu) g, the buffer starting at g
                b = g if t == 1 else 0.9 * b + 0.1 * g
            else:  # b = mu b + g
                b = g if t == 1 else 0.9 * b + g
            w = w - 0.01 * (g + 0.9 * b if name == "nesterov" else b)
        elif name in ("keras-momentum", "keras-nesterov"):
            v = 0.9 * v - 0.01 * g
            w = w + (0.9 * v - 0.01 * g if name == "keras-nesterov" else v)
        elif name == "adagrad":
            h = h + g**2
            w = w - 0.01 * g / (np.sqrt(h) + 1e-7)
        elif name == "rmsprop":
            h = 0.99 * h + 0.01 * g**2
            w = w - 0.01 * g / (np.sqrt(h) + 1e-7)
        elif name in ("adam", "adamw"):
            if name == "adamw":
                w = w * (1 - 0.001 * 0.01)
            m = 0.9 * m + 0.1 * g
            h = 0.999 * h + 0.001 * g**2
            m_hat, h_hat = m / (1 - 0.9**t), h / (1 - 0.999**t)
            w = w - 0.001 * m_hat / (np.sqrt(h_hat) + 1e-8)
        else:
            raise AssertionError(name)
    return w


@pytest.mark.parametrize(
    "name",
    [
        "sgd",
        "momentum",
        "nesterov",
        "ema-momentum",
        "keras-momentum",
        "keras-nesterov",
        "adagrad",
        "rmsprop",
        "adam",
        "adamw",
    ],
)
def test_each_name_runs_its_documented_rule_with_the_seeds_values(name: str) -> None:
    """Built with no arguments, each optimizer takes the steps its formula takes with the
    source documents' values: five steps of random gradients, in float64."""
    rng = np.random.default_rng(1)
    w0 = rng.normal(size=6)
    grads = [rng.normal(size=6) for _ in range(5)]
    w = torch.nn.Parameter(torch.tensor(w0))
    optimizer = make_optimizer(name, [w])
    for g in grads:
        w.grad = torch.tensor(g)
        optimizer.step()
    np.testing.assert_allclose(w.detach().numpy(), _rule(name, w0, grads), rtol=1e-12, atol=1e-14)


def test_overrides() -> None:
    optimizer = make_optimizer("momentum", [_param()], lr=0.5, momentum=0.5, weight_decay=1e-4)
    assert optimizer.defaults["lr"] == 0.5
    assert optimizer.defaults["momentum"] == 0.5
    assert optimizer.defaults["weight_decay"] == 1e-4


def test_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown optimizer 'adamm'") as info:
        make_optimizer("adamm", [_param()])
    for name in OPTIMIZERS:
        assert name in str(info.value)
    assert "did you mean 'adam'" in str(info.value)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"momentum": 0.9}, "optimizer 'adam' takes no argument 'momentum'"),
        ({"lr": -1.0}, r"adam: lr must be > 0, got lr=-1.0"),
        ({"lr": float("nan")}, r"adam: lr must be a finite number, got lr=nan"),
    ],
)
def test_bad_arguments(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_optimizer("adam", [_param()], **kwargs)  # type: ignore[arg-type]


def _keras_reference(
    w0: np.ndarray, grads: list[np.ndarray], lrs: list[float], mu: float, nesterov: bool
) -> np.ndarray:
    """Keras 2 / seed 000 / seed 003 momentum in float64: v = mu v - lr g; w += v."""
    w, v = w0.astype(np.float64).copy(), np.zeros_like(w0, dtype=np.float64)
    for g, lr in zip(grads, lrs, strict=True):
        v = mu * v - lr * g
        w = w + (mu * v - lr * g if nesterov else v)
    return w


@pytest.mark.parametrize("nesterov", [False, True])
def test_keras_sgd_follows_its_formula_with_a_changing_lr(nesterov: bool) -> None:
    rng = np.random.default_rng(0)
    w0 = rng.normal(size=5)
    grads = [rng.normal(size=5) for _ in range(50)]
    lrs = [0.1 / (1 + 0.05 * i) for i in range(50)]
    w = torch.nn.Parameter(torch.tensor(w0, dtype=torch.float64))
    optimizer = KerasSGD([w], lr=lrs[0], momentum=0.9, nesterov=nesterov)
    for g, lr in zip(grads, lrs, strict=True):
        optimizer.param_groups[0]["lr"] = lr
        w.grad = torch.tensor(g)
        optimizer.step()
    expected = _keras_reference(w0, grads, lrs, 0.9, nesterov)
    np.testing.assert_allclose(w.detach().numpy(), expected, rtol=1e-13, atol=1e-13)


def _trajectory(name: str, schedule: InverseTime | None) -> torch.Tensor:
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1).double()
    optimizer = make_optimizer(name, model.parameters(), lr=0.1)
    scheduler = ScheduleLR(optimizer, schedule) if schedule else None
    x, y = torch.randn(32, 4, dtype=torch.float64), torch.randn(32, 1, dtype=torch.float64)
    for _ in range(40):
        torch.nn.functional.mse_loss(model(x), y).backward()
        optimizer.step()
        optimizer.zero_grad()
        if scheduler:
            scheduler.step()
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_both_momentum_forms_agree_at_a_constant_lr() -> None:
    torch.testing.assert_close(
        _trajectory("momentum", None), _trajectory("keras-momentum", None), rtol=1e-12, atol=1e-12
    )


def test_momentum_forms_part_ways_when_the_lr_changes() -> None:
    decay = InverseTime(lr=0.1, decay=0.2)
    torch_form = _trajectory("momentum", decay)
    keras_form = _trajectory("keras-momentum", decay)
    assert (torch_form - keras_form).abs().max() > 1e-3


def test_keras_sgd_weight_decay_and_validation() -> None:
    w = torch.nn.Parameter(torch.ones(2, dtype=torch.float64))
    optimizer = KerasSGD([w], lr=0.1, momentum=0.0, weight_decay=0.5)
    w.grad = torch.zeros(2, dtype=torch.float64)
    optimizer.step()
    torch.testing.assert_close(w.detach(), torch.full((2,), 1 - 0.1 * 0.5, dtype=torch.float64))
    with pytest.raises(ValueError, match="KerasSGD: momentum must be >= 0"):
        KerasSGD([w], momentum=-0.1)
    with pytest.raises(ValueError, match="nesterov must be true or false"):
        KerasSGD([w], nesterov=1)  # type: ignore[arg-type]


def test_keras_sgd_state_round_trip() -> None:
    w = torch.nn.Parameter(torch.ones(2))
    optimizer = KerasSGD([w], lr=0.1)
    w.grad = torch.ones(2)
    optimizer.step()
    state = optimizer.state_dict()
    clone = KerasSGD([torch.nn.Parameter(torch.ones(2))], lr=0.1)
    clone.load_state_dict(state)
    assert torch.equal(clone.state_dict()["state"][0]["velocity"], state["state"][0]["velocity"])
