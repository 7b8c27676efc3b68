"""Seed 000's two experiments run by Keras 3 itself (``pip install lrlab[keras]``, any backend;
tested on torch), to set lrlab's runs beside the real thing.

The seed's code (Keras 2): ``Sequential`` of ``Dense(4, relu)``, ``Dense(6, relu)``,
``Dense(3, softmax)``, Glorot-uniform kernels and zero biases, ``categorical_crossentropy``
on all 150 unscaled Iris samples, batch 5, shuffled every epoch, 200 epochs, and

- A: ``SGD(lr=0.1, momentum=0.9, decay=0.005)``: Keras 2's legacy ``decay`` is
  ``lr / (1 + decay * iterations)``, here Keras 3's ``InverseTimeDecay(0.1, 1, 0.005)``
  called with the optimizer's iteration count, the same number;
- B: ``SGD(lr=0.01, momentum=0.9)`` with ``LearningRateScheduler(step_decay)``, the seed's
  ``step_decay`` verbatim.

`run` either lets Keras draw the initial weights and the batch order from its own seeded
generators (``keras.utils.set_random_seed``, as a user of Keras would), or takes them (the
weights and the per-epoch permutations of an lrlab run), so a run can be compared step by step
with lrlab's. Keras 3 logs running means of the loss within an epoch; the per-step losses are
recovered from them (``k * mean_k - (k - 1) * mean_{k-1}``, exact up to float32 rounding).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lrlab.studies.runner import tensor_data

EXPERIMENTS = ("A", "B-code")
BATCH = 5


def step_decay(epoch: int) -> float:
    """Seed 000's schedule, verbatim: ``0.01 * pow(0.05, floor(1 + epoch) / 10)``."""
    init_lrate = 0.01
    drop = 0.05
    epochs_drop = 10
    return init_lrate * math.pow(drop, math.floor(1 + epoch) / epochs_drop)


@dataclass
class KerasRun:
    """What Keras printed per epoch (running loss and accuracy) and each step's batch loss."""

    epoch_loss: list[float] = field(default_factory=list)
    epoch_accuracy: list[float] = field(default_factory=list)
    step_loss: list[float] = field(default_factory=list)


def _keras() -> Any:
    os.environ.setdefault("KERAS_BACKEND", "torch")
    import keras

    return keras


def iris() -> tuple[np.ndarray, np.ndarray]:
    """All 150 Iris samples, unscaled (float32), and one-hot targets, in the file's order:
    the data of lrlab's ``iris`` task with ``split="all"``, as seed 000 trains."""
    data = tensor_data("iris", "all")
    x, y = data.x_train.numpy().copy(), data.y_train.numpy()
    return x, np.eye(3, dtype=np.float32)[y]


def model(experiment: str, weights: Sequence[np.ndarray] | None = None) -> Any:
    """The seed's network, compiled for ``experiment`` (``"A"`` or ``"B-code"``)."""
    keras = _keras()
    if experiment not in EXPERIMENTS:
        raise ValueError(f"experiment must be A or B-code, got experiment={experiment!r}")
    layers = keras.layers
    net = keras.Sequential(
        [
            keras.Input((4,)),
            layers.Dense(4, activation="relu"),
            layers.Dense(6, activation="relu"),
            layers.Dense(3, activation="softmax"),
        ]
    )
    if weights is not None:
        net.set_weights([np.asarray(w, dtype=np.float32) for w in weights])
    if experiment == "A":
        rate: Any = keras.optimizers.schedules.InverseTimeDecay(0.1, 1, 0.005)
    else:
        rate = 0.01
    net.compile(
        optimizer=keras.optimizers.SGD(learning_rate=rate, momentum=0.9),
        loss="categorical_crossentropy",
        metrics=["accuracy"],
    )
    return net


def run(
    experiment: str,
    epochs: int,
    *,
    seed: int | None = None,
    weights: Sequence[np.ndarray] | None = None,
    orders: Sequence[np.ndarray] | None = None,
) -> KerasRun:
    """Train the seed's network in Keras for ``epochs`` epochs.

    ``seed`` seeds Keras (initial weights and shuffling, when not given); ``weights`` are the
    initial ``get_weights()`` list; ``orders`` one permutation of the 150 samples per epoch
    (then each epoch is a ``fit`` call without shuffling, ``initial_epoch`` counting on, so
    ``LearningRateScheduler`` sees the same epoch numbers as in one call).
    """
    keras = _keras()
    if seed is not None:
        keras.utils.set_random_seed(seed)
    x, y = iris()
    net = model(experiment, weights)
    result = KerasRun()
    running: list[float] = []

    class Log(keras.callbacks.Callback):  # type: ignore[misc,name-defined]
        def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            running.clear()

        def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
            mean = float((logs or {})["loss"])
            count = len(running) + 1
            before = running[-1] if running else 0.0
            result.step_loss.append(count * mean - (count - 1) * before)
            running.append(mean)

        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            result.epoch_loss.append(float((logs or {})["loss"]))
            result.epoch_accuracy.append(float((logs or {})["accuracy"]))

    callbacks: list[Any] = [Log()]
    if experiment == "B-code":
        callbacks.append(keras.callbacks.LearningRateScheduler(step_decay))
    if orders is None:
        net.fit(x, y, batch_size=BATCH, epochs=epochs, verbose=0, callbacks=callbacks)
        return result
    if len(orders) < epochs:
        raise ValueError(f"orders must give one permutation per epoch, got {len(orders)}")
    for epoch in range(epochs):
        order = np.asarray(orders[epoch])
        net.fit(
            x[order],
            y[order],
            batch_size=BATCH,
            epochs=epoch + 1,
            initial_epoch=epoch,
            shuffle=False,
            verbose=0,
            callbacks=callbacks,
        )
    return result
