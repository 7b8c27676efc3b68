"""``lrlab.keras_adapter.LipschitzLRCallback``: the same LR as the PyTorch `LipschitzLR` on the
same weights and data, the paper's check value, and the LR Keras trains with."""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from lrlab import LipschitzLR, keras_adapter
from lrlab.models import PaperCNN
from lrlab.tasks import load_task_data

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")
if keras.backend.backend() != "torch":  # pragma: no cover - CI runs the torch backend
    pytest.skip("the Keras adapter is tested on the torch backend", allow_module_level=True)

from tests.test_paper_cnn import _copy_weights, _keras_model  # noqa: E402


def _pair(seed: int = 0) -> tuple[nn.Sequential, Any]:
    """A PyTorch net and the Keras net with its weights: Dense 12 ReLU -> BatchNorm -> Dense 3
    (softmax in Keras; PyTorch's head gives logits)."""
    torch.manual_seed(seed)
    ours = nn.Sequential(
        nn.Linear(6, 12), nn.ReLU(), nn.BatchNorm1d(12, eps=1e-3, momentum=0.01), nn.Linear(12, 3)
    )
    with torch.no_grad():  # running statistics away from (0, 1), so inference mode differs
        ours[2].running_mean.uniform_(0, 1)
        ours[2].running_var.uniform_(0.5, 2)
    theirs = keras.Sequential(
        [
            keras.Input((6,)),
            keras.layers.Dense(12, activation="relu"),
            keras.layers.BatchNormalization(),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    weights = [
        ours[0].weight.T,
        ours[0].bias,
        ours[2].weight,
        ours[2].bias,
        ours[2].running_mean,
        ours[2].running_var,
        ours[3].weight.T,
        ours[3].bias,
    ]
    theirs.set_weights([w.detach().numpy().astype("float32") for w in weights])
    theirs.compile(optimizer=keras.optimizers.SGD(learning_rate=0.01), loss="mse")
    return ours, theirs


def _data(n: int = 70) -> tuple[np.ndarray, np.ndarray]:
    generator = np.random.default_rng(3)
    x = (2 * generator.standard_normal((n, 6))).astype("float32")
    return x, generator.integers(0, 3, n)


def _keras_lrs(callback: Any, model: Any, epochs: int) -> list[float]:
    callback.set_model(model)
    callback.on_train_begin()
    lrs = []
    for epoch in range(epochs):
        callback.on_epoch_begin(epoch)
        lrs.append(float(model.optimizer.learning_rate))
    return lrs


@pytest.mark.parametrize(
    "options",
    [
        {"bound": "paper"},
        {"bound": "paper", "l2": 1e-3},
        {"bound": "smooth"},
        {"bound": "smooth", "norm": "spectral", "scale": 0.5},
        {"bound": "paper", "variant": "adamo", "initial_lr": 0.1},
        {"bound": "smooth", "variant": "adamo", "initial_lr": 0.1, "k1_start": "inverse"},
        {"bound": "paper", "variant": "adam", "experimental": True},
        {"bound": "paper", "variant": "rmsprop", "experimental": True},
    ],
)
def test_same_lr_as_pytorch(options: dict[str, Any]) -> None:
    """Three epoch starts on the same weights and data (no training between, so the EMAs of
    the variants are what moves): Keras' callback and PyTorch's LipschitzLR agree."""
    ours, theirs = _pair()
    x, y = _data()
    batches = [
        (torch.from_numpy(x[i : i + 32]), torch.from_numpy(y[i : i + 32]))
        for i in range(0, len(x), 32)
    ]
    optimizer = torch.optim.SGD(ours.parameters(), lr=0.01)
    lip = LipschitzLR(optimizer, ours, loss="cross_entropy", data=batches, **options)
    torch_lrs = [lip.get_last_lr()[0]]
    for _ in range(2):
        lip.step()
        torch_lrs.append(lip.get_last_lr()[0])
    callback = keras_adapter.LipschitzLRCallback(x, batch_size=32, **options)
    running = [np.array(v) for v in theirs.non_trainable_variables]
    assert _keras_lrs(callback, theirs, 3) == pytest.approx(torch_lrs, rel=1e-5)
    assert [h["epoch"] for h in callback.history] == [0, 1, 2]
    for variable, before in zip(theirs.non_trainable_variables, running, strict=True):
        assert np.array_equal(np.array(variable), before)  # a training-mode pass leaves no trace


def test_the_papers_check_value() -> None:
    """Kz 206.695 (m = 128), max||w|| 43.257, k 10, lambda 1e-3 -> K 1.4966 -> LR 0.668."""
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(10, activation="softmax")])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.01), loss="mse")
    kernel = np.full((64, 10), 43.257 / math.sqrt(640), "float64")
    model.set_weights([kernel.astype("float32"), np.zeros(10, "float32")])
    x = np.full((128, 64), 206.695 / math.sqrt(128 * 64), "float32")  # ||x||_F = Kz
    callback = keras_adapter.LipschitzLRCallback(
        x, batch_size=128, bound="paper", l2=1e-3, loss="cross_entropy"
    )
    (lr,) = _keras_lrs(callback, model, 1)
    assert callback.history[0]["K"] == pytest.approx(1.4966, abs=5e-5)
    assert lr == pytest.approx(0.668, abs=5e-4)


def test_paper_cnn_in_keras_gets_the_pytorch_lr() -> None:
    """The authors' network in Keras 3 (their notebook's layers) and PaperCNN with the same
    weights: the paper's bound from the head's input in inference mode, batch 256, agrees."""
    torch.manual_seed(0)
    ours = PaperCNN()
    theirs = _keras_model(keras)
    _copy_weights(ours, theirs)
    theirs.compile(optimizer=keras.optimizers.SGD(learning_rate=0.001), loss="mse")
    data = load_task_data("mnist5k", None, None)
    x = data.x_train[:512].view(512, 1, 28, 28)
    batches = [(x[i : i + 256], data.y_train[i : i + 256]) for i in (0, 256)]
    optimizer = torch.optim.SGD(ours.parameters(), lr=0.001)
    lip = LipschitzLR(optimizer, ours, loss="cross_entropy", bound="paper", data=batches)
    callback = keras_adapter.LipschitzLRCallback(
        x.permute(0, 2, 3, 1).numpy(), batch_size=256, bound="paper"
    )
    (lr,) = _keras_lrs(callback, theirs, 1)
    assert lr == pytest.approx(lip.get_last_lr()[0], rel=1e-5)
    assert 1 < lr < 5


def test_fit_trains_at_the_lr_of_each_epoch_start() -> None:
    _, model = _pair()
    x, y = _data()
    targets = keras.utils.to_categorical(y, 3)
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=0.01), loss="categorical_crossentropy"
    )
    callback = keras_adapter.LipschitzLRCallback(x, batch_size=32, bound="smooth")
    model.fit(x, targets, batch_size=32, epochs=3, verbose=0, callbacks=[callback])
    lrs = [h["lr"] for h in callback.history]
    assert [h["epoch"] for h in callback.history] == [0, 1, 2]
    assert len(set(lrs)) == 3  # the weights moved, so did K
    assert float(model.optimizer.learning_rate) == pytest.approx(lrs[-1], rel=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"bound": "tight"}, "bound must be one of paper, smooth, got bound='tight'"),
        ({"batch_size": 0}, "batch_size must be >= 1, got batch_size=0"),
        ({"bound": "paper", "loss": "mse"}, "the paper's MSE bound needs the targets, got y=None"),
        ({"variant": "adam"}, "variant=adam is experimental"),
    ],
)
def test_bad_arguments_fail_when_built(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        keras_adapter.LipschitzLRCallback(np.ones((4, 6), "float32"), **kwargs)


def test_head_must_be_dense() -> None:
    model = keras.Sequential(
        [keras.Input((6,)), keras.layers.Dense(4), keras.layers.BatchNormalization()]
    )
    callback = keras_adapter.LipschitzLRCallback(np.ones((4, 6), "float32"))
    callback.set_model(model)
    with pytest.raises(ValueError, match="is BatchNormalization, not Dense"):
        callback.on_train_begin()
    callback = keras_adapter.LipschitzLRCallback(np.ones((4, 6), "float32"), head="nope")
    callback.set_model(model)
    with pytest.raises(ValueError, match="the model has no layer 'nope'"):
        callback.on_train_begin()
