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


# --- dropout and batch norm before the head: what the smooth bound guarantees --------------------


def _dropout_net(p: float = 0.75, seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(6, 32), nn.ReLU(), nn.BatchNorm1d(32), nn.Dropout(p), nn.Linear(32, 4)
    )


def _smooth_from(activations: list[Tensor]) -> float:
    """max over batches of ||[A, 1]||_F^2 / (2m), softmax cross-entropy."""
    return max(
        (float(a.double().square().sum()) + a.shape[0]) / (2 * a.shape[0]) for a in activations
    )


def test_smooth_pass_sees_what_training_sees() -> None:
    """bound=smooth's fresh pass runs in training mode (dropout masks, batch statistics), as
    the head sees its inputs while it trains, and leaves no trace: batch norm's running
    statistics and the global RNG come back as they were."""
    model = _dropout_net()
    x, y = _data(64, 6, 4)
    batches = _batches(x, y, 16)
    torch.manual_seed(7)
    state = torch.get_rng_state()
    with torch.no_grad():
        model.train()
        expected = _smooth_from([model[:-1](inputs) for inputs, _ in batches])
    norm = model[2]
    torch.manual_seed(0)
    model[2].reset_running_stats()
    running = (norm.running_mean.clone(), norm.running_var.clone())
    torch.set_rng_state(state)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    lip = LipschitzLR(optimizer, model, loss="cross_entropy", data=batches)
    assert lip.get_last_lr()[0] == pytest.approx(1 / expected, rel=1e-6)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(norm.running_mean, running[0])
    assert torch.equal(norm.running_var, running[1])
    assert int(norm.num_batches_tracked) == 0
    assert model.training


def test_eval_mode_would_miss_dropout_scaling() -> None:
    """With dropout 0.75 before the head a training batch's ||A||^2 is about 1 / (1 - p) = 4
    times the eval-mode one (inverted dropout scales the kept units by 4): the eval-mode L an
    eval pass would give understates the training curvature; the training-mode L does not.
    (A batch norm whose running statistics lag its batch statistics widens the gap further.)
    """
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 64), nn.ReLU(), nn.Dropout(0.75), nn.Linear(64, 4))
    x, y = _data(512, 6, 4)
    batches = _batches(x, y, 128)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    lip = LipschitzLR(optimizer, model, loss="cross_entropy", data=batches)
    model.eval()
    with torch.no_grad():
        eval_l = _smooth_from([model[:-1](inputs) for inputs, _ in batches])
    ratio = (1 / lip.get_last_lr()[0]) / eval_l
    assert 3 < ratio < 4.5


@given(seed=st.integers(0, 10_000), p=st.sampled_from([0.25, 0.5, 0.75]))
def test_every_batch_step_descends_with_dropout(seed: int, p: float) -> None:
    """every=batch: the LR comes from the training batch's own head input (its dropout mask
    and batch statistics), so a step of that size on the head alone does not raise that
    batch's loss at those activations: the descent lemma, with dropout before the head."""
    model = _dropout_net(p=p, seed=seed).double()
    generator = torch.Generator().manual_seed(seed)
    x = 3 * torch.randn(32, 6, generator=generator, dtype=torch.float64)
    y = torch.randint(0, 4, (32,), generator=generator)
    head = model[-1]
    optimizer = torch.optim.SGD(head.parameters(), lr=1.0)
    seen: list[Tensor] = []
    hook = head.register_forward_hook(lambda mod, inp, out: seen.append(inp[0].detach()))
    lip = LipschitzLR(optimizer, model, loss="cross_entropy", every="batch")
    loss = nn.functional.cross_entropy(model(x), y)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    hook.remove()
    lip.remove()
    with torch.no_grad():
        after = nn.functional.cross_entropy(head(seen[0]), y)
    assert after.item() <= loss.item() + 1e-12


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


def test_adamo_epoch_one_as_the_authors_logged_it() -> None:
    """`MNIST Momentum.ipynb` logged LR 1.4273 at epoch 1, after `K1 = 0.1` at epoch 0 and one
    epoch's K = 9 Kz / (10 * 256): with K1 = x, lrlab computes their number from their Kz;
    with K1 = 1 / x the same Kz gives 0.107."""
    logged = 1.4273421500884764
    kz = (1 / logged - 0.9 * 0.1) / 0.1 * 10 * 256 / 9  # the Kz behind the logged LR
    head = nn.Linear(128, 10)  # the head's input is the data itself: Kz = ||x||_F
    x = torch.full((256, 128), kz / math.sqrt(256 * 128), dtype=torch.float64)
    data = [(x, torch.zeros(256, dtype=torch.long))]
    lrs = {}
    for start in ("paper", "inverse"):
        optimizer = torch.optim.SGD(head.parameters(), lr=1.0)
        lip = LipschitzLR(
            optimizer,
            head.double(),
            loss="cross_entropy",
            bound="paper",
            variant="adamo",
            initial_lr=0.1,
            k1_start=start,  # type: ignore[arg-type]
            data=data,
        )
        lip.step()
        lip.remove()
        lrs[start] = lip.get_last_lr()[0]
    assert round(kz, 1) == 1736.8
    assert lrs["paper"] == pytest.approx(logged, rel=1e-12)
    assert lrs["inverse"] == pytest.approx(1 / (0.9 / 0.1 + 0.9 * kz / 2560), rel=1e-12)
    assert lrs["inverse"] < 0.11


@pytest.mark.parametrize(("k1_start", "k1"), [("paper", 0.5), ("inverse", 2.0)])
def test_adamo_starts_at_x_then_follows_an_ema_of_k(k1_start: str, k1: float) -> None:
    """Epoch 0 at x = 0.5 with K1 = x (the authors' `MNIST Momentum.ipynb`: `K1 = 0.1; return
    0.1`) or K1 = 1 / x, then K1 <- 0.9 K1 + 0.1 K and LR = 1 / K1 at every epoch start."""
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
        k1_start=k1_start,  # type: ignore[arg-type]
        data=_batches(x, y, 16),
    )
    assert lip.get_last_lr() == [0.5]
    assert lip.history[0]["K1"] == k1
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
