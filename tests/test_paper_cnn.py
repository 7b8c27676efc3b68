"""Seed 004's MNIST CNN (``paper-cnn``): its layers against the authors' Keras definition run by
Keras 3 itself, Keras' initialisers, and the epoch-0 LR the paper's bound gives it."""

from __future__ import annotations

import math
import os
import statistics

import numpy as np
import pytest
import torch
from torch import nn

from lrlab.models import TRUNCATED_STD, PaperCNN, count_parameters, keras_he_normal_
from lrlab.tasks import get_task, load_task_data


def test_layers_and_sizes() -> None:
    torch.manual_seed(0)
    model = PaperCNN()
    assert count_parameters(model) == 730_346
    assert sum(b.numel() for b in model.buffers() if b.dim()) == 256  # Keras counts 730,602
    x = torch.rand(3, 1, 28, 28)
    assert model.features(x).shape == (3, 128 * 6 * 6)
    assert model(x).shape == (3, 10)
    norm = model.hidden[2]
    assert isinstance(norm, nn.BatchNorm1d)
    assert (norm.eps, norm.momentum) == (1e-3, 0.01)  # Keras' epsilon 1e-3, momentum 0.99
    dropouts = [m.p for m in model.modules() if isinstance(m, nn.Dropout)]
    assert dropouts == [0.2, 0.25, 0.25, 0.25]


def test_initialisation_is_keras() -> None:
    torch.manual_seed(0)
    model = PaperCNN()
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    for conv in convs:
        conv.weight.requires_grad_(False)
        fan_in = conv.weight[0].numel()
        target = math.sqrt(2 / fan_in)  # he_normal's standard deviation after truncation
        assert float(conv.weight.abs().max()) <= 2 * target / TRUNCATED_STD
        if conv.weight.numel() > 30_000:
            assert float(conv.weight.std()) == pytest.approx(target, rel=0.02)
        assert not conv.bias.any()
    for linear in (model.hidden[0], model.head):
        linear.weight.requires_grad_(False)
        limit = math.sqrt(6 / (linear.in_features + linear.out_features))
        assert float(linear.weight.abs().max()) <= limit
        assert float(linear.weight.abs().max()) > 0.99 * limit
        assert not linear.bias.any()


def test_he_normal_has_keras_3_distribution() -> None:
    """Keras 3's he_normal (truncated at two scales, scale divided by 0.8796) and ours: the
    same bound and the same standard deviation on 200k draws."""
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    shape_torch, shape_keras = (64, 32, 3, 3), (3, 3, 32, 64)
    theirs = np.asarray(keras.initializers.HeNormal(seed=1)(shape_keras)).ravel()
    torch.manual_seed(1)
    ours = keras_he_normal_(torch.empty(shape_torch)).numpy().ravel()
    bound = 2 * math.sqrt(2 / (32 * 9)) / TRUNCATED_STD
    for sample in (theirs, ours):
        assert np.abs(sample).max() <= bound * (1 + 1e-6)
        assert np.abs(sample).max() > 0.99 * bound
    assert ours.std() == pytest.approx(theirs.std(), rel=0.01)
    assert ours.std() == pytest.approx(math.sqrt(2 / (32 * 9)), rel=0.01)


def _keras_model(keras: object) -> object:
    """`MNIST/MNIST.ipynb` cell 8, as the authors wrote it (channels last)."""
    k = keras
    layers = k.layers  # type: ignore[attr-defined]
    model = k.Sequential(  # type: ignore[attr-defined]
        [
            layers.Input((28, 28, 1)),
            layers.Conv2D(32, (3, 3), activation="relu", kernel_initializer="he_normal"),
            layers.Conv2D(32, (3, 3), activation="relu", kernel_initializer="he_normal"),
            layers.MaxPool2D((2, 2)),
            layers.Dropout(0.20),
            layers.Conv2D(64, (3, 3), activation="relu", padding="same"),
            layers.Conv2D(64, (3, 3), activation="relu", padding="same"),
            layers.MaxPool2D(pool_size=(2, 2)),
            layers.Dropout(0.25),
            layers.Conv2D(128, (3, 3), activation="relu", padding="same"),
            layers.Dropout(0.25),
            layers.Flatten(),
            layers.Dense(128, activation="relu"),
            layers.BatchNormalization(),
            layers.Dropout(0.25),
            layers.Dense(10, activation="softmax"),
        ]
    )
    return model


def _copy_weights(ours: PaperCNN, theirs: object) -> None:
    """Our weights into the Keras model: kernels (out, in, h, w) -> (h, w, in, out); the first
    Dense's rows reordered from our channels-first flatten to Keras' channels-last one."""
    convs = [m for m in ours.modules() if isinstance(m, nn.Conv2d)]
    keras_layers = theirs.layers  # type: ignore[attr-defined]
    keras_convs = [layer for layer in keras_layers if type(layer).__name__ == "Conv2D"]
    for conv, layer in zip(convs, keras_convs, strict=True):
        layer.set_weights(
            [conv.weight.detach().permute(2, 3, 1, 0).numpy(), conv.bias.detach().numpy()]
        )
    dense1, norm, head = ours.hidden[0], ours.hidden[2], ours.head
    kernel = dense1.weight.detach().reshape(128, 128, 6, 6).permute(2, 3, 1, 0).reshape(-1, 128)
    keras_dense = [layer for layer in keras_layers if type(layer).__name__ == "Dense"]
    keras_dense[0].set_weights([kernel.numpy(), dense1.bias.detach().numpy()])
    keras_dense[1].set_weights([head.weight.detach().T.numpy(), head.bias.detach().numpy()])
    keras_norm = next(
        layer for layer in keras_layers if "BatchNormalization" in type(layer).__name__
    )
    keras_norm.set_weights(
        [t.detach().numpy() for t in (norm.weight, norm.bias, norm.running_mean, norm.running_var)]
    )


def test_forward_equals_the_authors_keras_model() -> None:
    """Same weights, same digits: Keras 3 running the notebook's layer list and PaperCNN give
    the same softmax, and the same activations at the head's input (what Kz reads), in
    inference mode; batch-norm statistics are perturbed so they matter."""
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "torch":  # pragma: no cover
        pytest.skip("tested on the torch backend")
    torch.manual_seed(0)
    ours = PaperCNN().eval()
    with torch.no_grad():
        ours.hidden[2].running_mean.uniform_(0, 1)
        ours.hidden[2].running_var.uniform_(0.5, 2)
        ours.hidden[2].weight.uniform_(0.5, 1.5)
    theirs = _keras_model(keras)
    _copy_weights(ours, theirs)
    data = load_task_data("mnist5k", None, None)
    x = data.x_train[:16].view(16, 1, 28, 28)
    keras_input = x.permute(0, 2, 3, 1).numpy()
    probabilities = keras.ops.convert_to_numpy(theirs(keras_input, training=False))
    with torch.no_grad():
        mine = torch.softmax(ours(x), dim=-1).numpy()
        head_input = ours.hidden(ours.features(x)).numpy()
    assert np.abs(probabilities - mine).max() < 1e-5
    penultimate = keras.Model(theirs.inputs[0], theirs.layers[-2].output)
    keras_head_input = keras.ops.convert_to_numpy(penultimate(keras_input, training=False))
    assert np.abs(keras_head_input - head_input).max() < 1e-4 * np.abs(head_input).max()


@pytest.mark.slow
def test_epoch_zero_lr_is_the_papers() -> None:
    """The paper's bound at initialisation on the 4000 offline digits, batch 256, eval mode:
    1 / K = 10 * 256 / (9 * Kz); the authors logged 2.624 at epoch 0 and 1.93-2.95 over 20
    epochs. Median over three initialisations (2.75, 2.60 and 1.50)."""
    task, data = get_task("mnist5k"), load_task_data("mnist5k", None, None)
    lrs = []
    for seed in range(3):
        torch.manual_seed(seed)
        model = task.build_model("paper-cnn").eval()
        with torch.no_grad():
            kz = max(
                float(
                    model[1].hidden(model[1].features(model[0](data.x_train[i : i + 256]))).norm()
                )
                for i in range(0, data.train_size, 256)
            )
        lrs.append(10 * 256 / (9 * kz))
    assert 1.93 <= statistics.median(lrs) <= 2.95
