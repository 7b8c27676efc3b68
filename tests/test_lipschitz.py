"""LipschitzLR: the paper's constant reproduced, the smooth bound proved on random networks,
the three update frequencies, the variants, the guards and exact resume."""

from __future__ import annotations

import io
import itertools
import math
import re

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import Tensor, nn

from lrlab import LipschitzLR
from lrlab.lipschitz import paper_constant, smooth_constant
from lrlab.tasks import TensorBatches

torch.set_default_dtype(torch.float32)


def _mlp(sizes: list[int], seed: int = 0, dtype: torch.dtype = torch.float32) -> nn.Sequential:
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers).to(dtype)


def _data(n: int, d: int, k: int, seed: int = 1) -> tuple[Tensor, Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=generator), torch.randint(0, k, (n,), generator=generator)


def _batches(x: Tensor, y: Tensor, size: int) -> list[tuple[Tensor, Tensor]]:
    return [(x[i : i + size], y[i : i + size]) for i in range(0, len(x), size)]


# --- the paper ---------------------------------------------------------------------------------


def test_paper_check_value() -> None:
    """Kz 206.695, max||w|| 43.257, k 10, m 128, lambda 1e-3 -> K 1.4966 -> LR 0.668."""
    k = paper_constant("cross_entropy", kz=206.695, m=128, classes=10, l2=1e-3, max_weight=43.257)
    assert k == pytest.approx(1.4966, abs=5e-5)
    assert 1 / k == pytest.approx(0.668, abs=5e-4)


def test_paper_formulas() -> None:
    assert paper_constant("bce", kz=10.0, m=5, classes=1) == 1.0
    assert paper_constant("mse", kz=10.0, m=5, classes=1, ka=7.0, y_norm=4.0) == 6.0
    assert paper_constant("cross_entropy", kz=8.0, m=2, classes=2, l2=0.5, max_weight=2.0) == 3.0


def test_paper_constant_as_the_authors_code_computes_it() -> None:
    """Kz = the largest Frobenius norm of a consecutive batch's activations; max||w|| over all
    weight tensors; m the batch size; LR = 1 / K; computed at construction (epoch 0)."""
    model = _mlp([6, 16, 12, 4])
    x, y = _data(70, 6, 4)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, weight_decay=1e-3)
    lip = LipschitzLR(
        optimizer, model, loss="cross_entropy", bound="paper", data=_batches(x, y, 32)
    )
    with torch.no_grad():
        kz = max(float(model[:-1](x[i : i + 32]).norm()) for i in range(0, 70, 32))
        max_weight = max(float(p.norm()) for p in model.parameters())
    expected = 3 * kz / (4 * 32) + 1e-3 * max_weight
    assert lip.history[0]["K"] == pytest.approx(expected, rel=1e-6)
    assert lip.get_last_lr() == [pytest.approx(1 / expected, rel=1e-6)]
    assert lip.l2 == 1e-3  # taken from the optimizer's weight_decay


# --- the smooth bound: properties over random networks -----------------------------------------


def _subproblem(loss: str, a: Tensor, y: Tensor, l2: float):  # type: ignore[no-untyped-def]
    """E(W, b) = loss(a W^T + b, y) + l2/2 (||W||^2 + ||b||^2): the final-layer subproblem."""
    functions = {
        "cross_entropy": nn.functional.cross_entropy,
        "bce": nn.functional.binary_cross_entropy_with_logits,
        "mse": nn.functional.mse_loss,
    }

    def energy(w: Tensor, b: Tensor) -> Tensor:
        penalty = 0.5 * l2 * (w.square().sum() + b.square().sum())
        return functions[loss](a @ w.T + b, y) + penalty

    def gradient(w: Tensor, b: Tensor) -> Tensor:
        w, b = w.detach().requires_grad_(), b.detach().requires_grad_()
        grads = torch.autograd.grad(energy(w, b), (w, b))
        return torch.cat([g.flatten() for g in grads])

    return energy, gradient


@given(
    loss=st.sampled_from(["cross_entropy", "bce", "mse"]),
    norm=st.sampled_from(["frobenius", "spectral"]),
    width=st.integers(1, 12),
    depth=st.integers(0, 2),
    m=st.integers(1, 40),
    k=st.integers(1, 6),
    l2=st.sampled_from([0.0, 1e-3, 0.1]),
    seed=st.integers(0, 10_000),
)
def test_smooth_bound_is_a_lipschitz_constant_of_the_gradient(
    loss: str, norm: str, width: int, depth: int, m: int, k: int, l2: float, seed: int
) -> None:
    """||grad E(W1) - grad E(W2)|| <= L ||W1 - W2||, and a 1/L step never raises E."""
    k = max(k, 2) if loss == "cross_entropy" else k
    d_in = 5
    model = _mlp([d_in, *[width] * depth, k] if depth else [d_in, k], seed, torch.float64)
    generator = torch.Generator().manual_seed(seed)
    x = 3 * torch.randn(m, d_in, generator=generator, dtype=torch.float64)
    if loss == "cross_entropy":
        y = torch.randint(0, k, (m,), generator=generator)
    elif loss == "bce":
        y = torch.randint(0, 2, (m, k), generator=generator).double()
    else:
        y = 5 * torch.randn(m, k, generator=generator, dtype=torch.float64)
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0, weight_decay=l2)
    lip = LipschitzLR(optimizer, model, loss=loss, bound="smooth", norm=norm, data=[(x, y)])  # type: ignore[arg-type]
    smoothness = lip.history[0]["K"]
    head = model[-1]
    with torch.no_grad():
        a = model[:-1](x) if len(model) > 1 else x
    energy, gradient = _subproblem(loss, a, y, l2)
    w0, b0 = head.weight.detach(), head.bias.detach()
    for trial in range(4):
        g = torch.Generator().manual_seed(seed + trial)
        w1, b1 = (
            w0 + torch.randn(w0.shape, generator=g, dtype=w0.dtype),
            b0 + torch.randn(b0.shape, generator=g, dtype=b0.dtype),
        )
        w2, b2 = (
            w0 + 3 * torch.randn(w0.shape, generator=g, dtype=w0.dtype),
            b0 - torch.randn(b0.shape, generator=g, dtype=b0.dtype),
        )
        distance = torch.cat([(w1 - w2).flatten(), (b1 - b2).flatten()]).norm()
        change = (gradient(w1, b1) - gradient(w2, b2)).norm()
        assert change <= smoothness * distance * (1 + 1e-9) + 1e-12
    # The descent lemma at the head's own weights: E(theta - grad / L) <= E(theta).
    step = gradient(w0, b0) / smoothness
    w_new = w0 - step[: w0.numel()].reshape(w0.shape)
    b_new = b0 - step[w0.numel() :]
    assert float(energy(w_new, b_new)) <= float(energy(w0, b0)) + 1e-12
    assert lip.get_last_lr() == [pytest.approx(1 / smoothness)]


@pytest.mark.parametrize(
    ("loss", "k"), [("cross_entropy", 2), ("cross_entropy", 5), ("bce", 1), ("bce", 3), ("mse", 2)]
)
def test_smooth_bound_is_attained(loss: str, k: int) -> None:
    """At theta = 0 (a uniform softmax / sigmoid, where the loss's curvature in the logits is
    largest) the Hessian along the top direction reaches L: a smaller L would be wrong."""
    generator = torch.Generator().manual_seed(k)
    model = _mlp([5, 7, k], dtype=torch.float64)
    with torch.no_grad():
        model[-1].weight.zero_()
        model[-1].bias.zero_()
    x = torch.randn(24, 5, generator=generator, dtype=torch.float64)
    y = (
        torch.randint(0, k, (24,), generator=generator)
        if loss == "cross_entropy"
        else torch.rand(24, k, generator=generator, dtype=torch.float64)
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    lip = LipschitzLR(optimizer, model, loss=loss, norm="spectral", data=[(x, y)])  # type: ignore[arg-type]
    smoothness = lip.history[0]["K"]
    with torch.no_grad():
        a = torch.cat([model[:-1](x), torch.ones(24, 1, dtype=torch.float64)], dim=1)
    u = torch.linalg.eigh(a.T @ a).eigenvectors[:, -1]
    e = torch.zeros(k, dtype=torch.float64)
    e[0] = 1.0
    if loss == "cross_entropy":
        e[1] = -1.0  # the top eigenvector of diag(p) - p p^T at p = (1/2, 1/2, 0, ...)
    e = e / e.norm()
    if loss == "cross_entropy" and k > 2:
        # The worst case needs two classes at 1/2 and the rest at 0: push the others down.
        with torch.no_grad():
            model[-1].bias[2:] = -60.0
    energy, _ = _subproblem(loss, a[:, :-1], y, 0.0)
    w0, b0 = model[-1].weight.detach().clone(), model[-1].bias.detach().clone()
    direction = (torch.outer(e, u[:-1]), e * u[-1])
    _, (hw, hb) = torch.autograd.functional.hvp(energy, (w0, b0), direction)
    curvature = float(torch.cat([hw.flatten(), hb.flatten()]).norm())
    assert curvature <= smoothness * (1 + 1e-9)
    assert curvature >= smoothness * (1 - 1e-6)


def test_spectral_is_tighter_than_frobenius_and_mse_is_exact() -> None:
    model = _mlp([4, 8, 3], dtype=torch.float64)
    x = torch.randn(30, 4, dtype=torch.float64)
    y = torch.randn(30, 3, dtype=torch.float64)
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    constants = {}
    for norm in ("frobenius", "spectral"):
        lip = LipschitzLR(optimizer, model, loss="mse", norm=norm, data=[(x, y)])  # type: ignore[arg-type]
        constants[norm] = lip.history[0]["K"]
        lip.remove()
    assert constants["spectral"] < constants["frobenius"]
    # MSE's Hessian in (W, b) is exactly 2/(m k) [A, 1]^T [A, 1] (x) I: L equals its top eigenvalue.
    with torch.no_grad():
        a = torch.cat([model[:-1](x), torch.ones(30, 1, dtype=torch.float64)], dim=1)
    top = float(torch.linalg.eigvalsh(a.T @ a)[-1])
    assert constants["spectral"] == pytest.approx(2 * top / (30 * 3), rel=1e-10)
    assert smooth_constant("mse", sq_norm=top, m=30, outputs=3) == pytest.approx(
        constants["spectral"], rel=1e-10
    )


# --- update frequencies ------------------------------------------------------------------------


def _train_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    x: Tensor,
    y: Tensor,
    size: int,
    lrs: list[float] | None = None,
) -> None:
    for i in range(0, len(x), size):
        loss = nn.functional.cross_entropy(model(x[i : i + size]), y[i : i + size])
        optimizer.zero_grad()
        loss.backward()
        if lrs is not None:
            lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()


def _expected_smooth(model: nn.Sequential, x: Tensor, size: int) -> float:
    """max over consecutive batches of ||[A, 1]||_F^2 / (2 m), from the current weights."""
    with torch.no_grad():
        values = []
        for i in range(0, len(x), size):
            a = model[:-1](x[i : i + size])
            values.append((float(a.double().square().sum()) + a.shape[0]) / (2 * a.shape[0]))
    return max(values)


def test_every_epoch_from_a_fresh_pass() -> None:
    model = _mlp([6, 10, 3])
    x, y = _data(50, 6, 3)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    lip = LipschitzLR(optimizer, model, loss="cross_entropy", data=_batches(x, y, 16))
    for _ in range(3):
        expected = 1 / _expected_smooth(model, x, 16)
        assert lip.get_last_lr()[0] == pytest.approx(expected, rel=1e-6)
        _train_epoch(model, optimizer, x, y, 16)
        lip.step()
    assert [h["epoch"] for h in lip.history] == [0, 1, 2, 3]


def test_every_epoch_from_the_training_batches() -> None:
    model = _mlp([6, 10, 3])
    x, y = _data(48, 6, 3)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    lip = LipschitzLR(optimizer, model, loss="cross_entropy", source="train")
    assert lip.get_last_lr() == [0.5]  # no data given: epoch 0 keeps the optimizer's LR
    captured: list[float] = []
    hook = model[-1].register_forward_hook(
        lambda mod, inp, out: captured.append(
            (float(inp[0].detach().double().square().sum()) + inp[0].shape[0])
            / (2 * inp[0].shape[0])
        )
    )
    _train_epoch(model, optimizer, x, y, 16)
    with torch.no_grad():
        model(x)  # an evaluation-style forward in no_grad: not a training batch
    hook.remove()
    lip.step()
    assert lip.get_last_lr()[0] == pytest.approx(1 / max(captured[:3]), rel=1e-6)


def test_every_batch_uses_that_batch() -> None:
    model = _mlp([6, 10, 3])
    x, y = _data(48, 6, 3)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    lip = LipschitzLR(optimizer, model, loss="cross_entropy", every="batch")
    expected: list[float] = []
    used: list[float] = []
    for i in range(0, 48, 16):
        expected.append(1 / _expected_smooth(model, x[i : i + 16], 16))
        loss = nn.functional.cross_entropy(model(x[i : i + 16]), y[i : i + 16])
        optimizer.zero_grad()
        loss.backward()
        used.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        lip.step()
    assert used == pytest.approx(expected, rel=1e-6)
    assert lip.steps == 3


def test_param_groups_keep_their_ratios() -> None:
    model = _mlp([4, 6, 2])
    x, y = _data(20, 4, 2)
    optimizer = torch.optim.SGD(
        [{"params": model[0].parameters(), "lr": 0.1}, {"params": model[2].parameters(), "lr": 0.3}]
    )
    lip = LipschitzLR(optimizer, model, loss="cross_entropy", data=[(x, y)])
    first, second = lip.get_last_lr()
    assert second == pytest.approx(3 * first)


# --- variants ----------------------------------------------------------------------------------


def test_adamo_starts_at_x_then_follows_an_ema_of_k() -> None:
    model = _mlp([6, 10, 3])
    x, y = _data(32, 6, 3)
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0, momentum=0.9, dampening=0.9)
    lip = LipschitzLR(
        optimizer,
        model,
        loss="cross_entropy",
        bound="paper",
        variant="adamo",
        initial_lr=0.5,
        data=_batches(x, y, 16),
    )
    assert lip.get_last_lr() == [0.5]
    k1 = 1 / 0.5
    for _ in range(3):
        _train_epoch(model, optimizer, x, y, 16)
        with torch.no_grad():
            kz = max(float(model[:-1](x[i : i + 16]).norm()) for i in (0, 16))
        k1 = 0.9 * k1 + 0.1 * (2 * kz / (3 * 16))
        lip.step()
        assert lip.get_last_lr()[0] == pytest.approx(1 / k1, rel=1e-6)


@pytest.mark.parametrize("variant", ["adam", "rmsprop"])
def test_experimental_variants_follow_the_authors_code(variant: str) -> None:
    model = _mlp([6, 10, 3])
    x, y = _data(32, 6, 3)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-3)
    with pytest.raises(ValueError, match=f"variant={variant} is experimental"):
        LipschitzLR(
            optimizer,
            model,
            loss="cross_entropy",
            bound="paper",
            variant=variant,  # type: ignore[arg-type]
            data=[(x, y)],
        )
    lip = LipschitzLR(
        optimizer,
        model,
        loss="cross_entropy",
        bound="paper",
        variant=variant,  # type: ignore[arg-type]
        experimental=True,
        data=[(x, y)],
    )
    with torch.no_grad():
        a = model[:-1](x).double()
        kz, s = float(a.norm()), float(a.square().norm())
        max_w = max(float(p.norm()) for p in model.parameters())
    ratio = 2 / (3 * 32)
    k_ = ratio * kz + 1e-3 * max_w
    s_ = ratio**2 * s + 2e-3 * max_w * ratio * kz
    if variant == "adam":
        expected = (math.sqrt(0.001 * s_) + 1e-7) / (0.1 * k_)
    else:
        expected = (math.sqrt(0.1 * s_) + 1e-7) / kz
    assert lip.get_last_lr()[0] == pytest.approx(expected, rel=1e-6)
    with pytest.raises(ValueError, match="defined for bound=paper with cross_entropy only"):
        LipschitzLR(
            optimizer,
            model,
            loss="mse",
            bound="paper",
            variant=variant,  # type: ignore[arg-type]
            experimental=True,
            data=[(x, y)],
        )


# --- heads and guards --------------------------------------------------------------------------


class _ConvLast(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.conv = nn.Conv1d(1, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(self.fc(x).unsqueeze(1)).squeeze(1)


def test_head_found_named_or_refused() -> None:
    optimizer_for = lambda m: torch.optim.SGD(m.parameters(), lr=0.1)  # noqa: E731
    model = _ConvLast()
    with pytest.raises(
        ValueError, match=re.escape("final trainable layer 'conv' is Conv1d, not nn.Linear")
    ):
        LipschitzLR(optimizer_for(model), model, loss="mse", bound="smooth", source="train")
    lip = LipschitzLR(optimizer_for(model), model, loss="mse", source="train", head="fc")
    assert lip.head is model.fc
    with pytest.raises(ValueError, match="no submodule 'head'; its Linear layers are fc"):
        LipschitzLR(optimizer_for(model), model, loss="mse", source="train", head="head")
    frozen = _mlp([3, 3])
    for p in frozen.parameters():
        p.requires_grad_(False)
    with pytest.raises(ValueError, match="has no trainable layer"):
        LipschitzLR(
            torch.optim.SGD([nn.Parameter(torch.zeros(1))]), frozen, loss="mse", source="train"
        )


def test_zero_activations_are_clamped_or_refused() -> None:
    model = _mlp([4, 6, 3])
    with torch.no_grad():
        model[0].weight.zero_()
        model[0].bias.fill_(-1.0)  # ReLU(-1) = 0: every activation is zero
    x, y = _data(16, 4, 3)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match=r"K is 0 <= 0 \(all-zero activations"):
        LipschitzLR(optimizer, model, loss="cross_entropy", bound="paper", data=[(x, y)])
    lip = LipschitzLR(
        optimizer, model, loss="cross_entropy", bound="paper", max_lr=2.0, data=[(x, y)]
    )
    assert lip.get_last_lr() == [2.0]
    lip.remove()
    smooth = LipschitzLR(optimizer, model, loss="cross_entropy", bound="smooth", data=[(x, y)])
    assert smooth.get_last_lr() == [2.0]  # the bias column keeps L >= 1/2: no clamp needed


def test_non_finite_activations_raise() -> None:
    model = _mlp([4, 6, 3])
    x, y = _data(16, 4, 3)
    x[3, 0] = math.nan
    with pytest.raises(FloatingPointError, match="activations are not finite"):
        LipschitzLR(
            torch.optim.SGD(model.parameters(), lr=0.1), model, loss="cross_entropy", data=[(x, y)]
        )


def test_paper_mse_sign_error_is_refused_or_clamped() -> None:
    model = _mlp([4, 6, 1])
    x = torch.randn(16, 4)
    y = 100 + torch.randn(16, 1)  # ||y|| far above ||a_L||: K_a - ||y|| < 0
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match=re.escape("MSE bound K_a - ||y|| turning negative")):
        LipschitzLR(optimizer, model, loss="mse", bound="paper", data=[(x, y)])
    lip = LipschitzLR(optimizer, model, loss="mse", bound="paper", max_lr=0.05, data=[(x, y)])
    assert lip.get_last_lr() == [0.05]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"data": []}, "data yielded no batches"),
        ({"source": "eval"}, "source=eval needs data"),
        ({"bound": "exact"}, "bound must be one of paper, smooth, got bound='exact'"),
        ({"scale": 0}, "scale must be > 0, got scale=0"),
        ({"max_lr": -1.0}, "max_lr must be > 0"),
        ({"l2": -0.1}, "l2 must be a finite number >= 0"),
        ({"beta": 1.0}, r"beta must be in \[0, 1\)"),
        ({"bound": "paper", "norm": "spectral"}, "norm=spectral needs bound=smooth"),
        ({"bound": "paper", "loss": "mse", "every": "batch"}, "paper's MSE bound needs"),
        ({"loss": "hinge"}, "loss must be one of cross_entropy, bce, mse"),
    ],
)
def test_bad_arguments(kwargs: dict[str, object], message: str) -> None:
    model = _mlp([4, 3])
    arguments: dict[str, object] = {"loss": "cross_entropy", **kwargs}
    with pytest.raises(ValueError, match=message):
        LipschitzLR(torch.optim.SGD(model.parameters(), lr=0.1), model, **arguments)  # type: ignore[arg-type]


def test_evaluation_forwards_and_removed_hooks_do_not_count() -> None:
    model = _mlp([4, 6, 3])
    x, _y = _data(16, 4, 3)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    lip = LipschitzLR(optimizer, model, loss="cross_entropy", source="train")
    model.eval()
    model(x)
    model.train()
    with torch.no_grad():
        model(x)
    with pytest.raises(ValueError, match="no batches were seen since the last update"):
        lip.step()
    lip.remove()
    model(x)
    assert len(lip._training_stats) == 0


# --- resume ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "mode",
    [
        {"source": "eval"},
        {"source": "train"},
        {"every": "batch"},
        {"variant": "adamo", "bound": "paper"},
    ],
)
def test_resume_is_exact(mode: dict[str, str]) -> None:
    """Train through a mid-epoch checkpoint: same LRs, bit-identical weights."""
    x, y = _data(96, 6, 3)

    def build() -> tuple[nn.Sequential, torch.optim.Optimizer, LipschitzLR]:
        model = _mlp([6, 12, 3], seed=5)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        lip = LipschitzLR(
            optimizer, model, loss="cross_entropy", max_lr=0.5, data=TensorBatches(x, y, 32), **mode
        )  # type: ignore[arg-type]
        return model, optimizer, lip

    def run(
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        lip: LipschitzLR,
        steps: range,
        lrs: list[float],
    ) -> None:
        for step in steps:
            i = (step % 3) * 32
            loss = nn.functional.cross_entropy(model(x[i : i + 32]), y[i : i + 32])
            optimizer.zero_grad()
            loss.backward()
            lrs.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            if lip.every == "batch" or step % 3 == 2:
                lip.step()

    straight = build()
    straight_lrs: list[float] = []
    run(*straight, range(12), straight_lrs)

    first = build()
    resumed_lrs: list[float] = []
    run(*first, range(7), resumed_lrs)
    buffer = io.BytesIO()
    torch.save(
        {
            "model": first[0].state_dict(),
            "optimizer": first[1].state_dict(),
            "lipschitz": first[2].state_dict(),
        },
        buffer,
    )
    buffer.seek(0)
    checkpoint = torch.load(buffer, weights_only=True)
    second = build()
    second[0].load_state_dict(checkpoint["model"])
    second[1].load_state_dict(checkpoint["optimizer"])
    second[2].load_state_dict(checkpoint["lipschitz"])
    run(*second, range(7, 12), resumed_lrs)

    assert resumed_lrs == straight_lrs
    for a, b in zip(
        second[0].state_dict().values(), straight[0].state_dict().values(), strict=True
    ):
        assert torch.equal(a, b)


def test_remove_restores_the_head() -> None:
    """Attaching wraps the head's forward; removing restores it, also when two schedulers
    watch one head and are removed in either order."""
    model = _mlp([4, 6, 3])
    head = model[-1]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    first = LipschitzLR(optimizer, model, loss="cross_entropy", source="train")
    second = LipschitzLR(optimizer, model, loss="cross_entropy", source="train")
    x, _ = _data(8, 4, 3)
    model(x)
    assert len(first._training_stats) == len(second._training_stats) == 1
    second.remove()
    model(x)
    assert (len(first._training_stats), len(second._training_stats)) == (2, 1)
    first.remove()
    assert "forward" not in head.__dict__
    assert torch.equal(model(x), model[:-1](x) @ head.weight.T + head.bias)
