"""What a task is: data + model + loss + metric + default batch size, budget and target."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor, nn

LossKind = Literal["cross_entropy", "bce", "mse", "keras_cross_entropy"]
LOSS_KINDS: tuple[LossKind, ...] = ("cross_entropy", "bce", "mse", "keras_cross_entropy")
# Keras' backend epsilon, the clip of its categorical_crossentropy on probabilities.
KERAS_EPSILON = 1e-7
MetricKind = Literal["accuracy", "r2", "loss"]
Sampling = Literal["shuffle", "replacement"]


@dataclass(frozen=True)
class TaskData:
    """A task's tensors, whole, in memory (the engine indexes batches out of them directly).

    ``transform`` turns a batch of stored inputs into model inputs (e.g. uint8 pixels to floats,
    so a 50 000-image set stays 4x smaller); ``augment`` changes training batches only.
    """

    x_train: Tensor
    y_train: Tensor
    x_test: Tensor | None
    y_test: Tensor | None
    num_outputs: int
    transform: Callable[[Tensor], Tensor] | None = None
    augment: Callable[[Tensor, torch.Generator], Tensor] | None = None

    @property
    def train_size(self) -> int:
        return int(self.x_train.shape[0])

    def to(self, device: torch.device) -> TaskData:
        """The same data on ``device``."""

        def move(t: Tensor | None) -> Tensor | None:
            return None if t is None else t.to(device)

        return replace(
            self,
            x_train=self.x_train.to(device),
            y_train=self.y_train.to(device),
            x_test=move(self.x_test),
            y_test=move(self.y_test),
        )


@dataclass(frozen=True)
class Task:
    """A named learning problem and its defaults.

    ``load(split, data_dir)`` gives the `TaskData`; ``build_model(name)`` a freshly initialised
    model (under whatever RNG state the caller set). ``target`` is the metric value that counts
    as solved: reached when ``metric >= target`` (``<=`` for the ``loss`` metric).
    """

    name: str
    summary: str
    loss: LossKind
    metric: MetricKind
    batch_size: int
    target: float
    loader: Callable[[str, Path | None], TaskData] = field(repr=False)
    model_builders: Mapping[str, Callable[[], nn.Module]] = field(repr=False)
    epochs: int | None = None
    steps: int | None = None
    splits: tuple[str, ...] = ("holdout",)
    sampling: Sampling = "shuffle"
    needs_data_dir: bool = False
    # Per model: a training-batch augmentation that belongs to that model's recipe (seed 004's
    # CNN trains on Keras' random affine images), used instead of the data's own.
    augmentations: Mapping[str, Callable[[Tensor, torch.Generator], Tensor]] = field(
        default_factory=dict, repr=False
    )

    def __post_init__(self) -> None:
        if (self.epochs is None) == (self.steps is None):
            raise ValueError(f"task {self.name}: give exactly one of epochs and steps")

    @property
    def models(self) -> tuple[str, ...]:
        return tuple(self.model_builders)

    @property
    def default_model(self) -> str:
        return self.models[0]

    @property
    def higher_is_better(self) -> bool:
        return self.metric != "loss"

    def reached(self, value: float | None) -> bool:
        """Whether a metric value meets the target."""
        if value is None:
            return False
        return value >= self.target if self.higher_is_better else value <= self.target

    def load(self, split: str | None = None, data_dir: Path | None = None) -> TaskData:
        split = split or self.splits[0]
        if split not in self.splits:
            raise ValueError(
                f"task {self.name}: split must be one of {', '.join(self.splits)}, "
                f"got split={split!r}"
            )
        return self.loader(split, data_dir)

    def build_model(self, name: str | None = None) -> nn.Module:
        name = name or self.default_model
        builder = self.model_builders.get(name)
        if builder is None:
            raise ValueError(
                f"task {self.name}: model must be one of {', '.join(self.models)}, "
                f"got model={name!r}"
            )
        return builder()


def keras_cross_entropy(logits: Tensor, target: Tensor) -> Tensor:
    """Keras' ``categorical_crossentropy`` of a softmax output, mean over the batch:
    ``-log(clip(softmax(z)_y, 1e-7, 1 - 1e-7))``.

    Keras clips the *probabilities* (Keras 2.2.4 ``tensorflow_backend.categorical_crossentropy``
    with ``from_logits=False``, what a ``Dense(k, activation='softmax')`` model compiled with
    ``loss='categorical_crossentropy'`` runs; Keras 3 the same), so a sample whose true-class
    probability is below 1e-7 costs ``-ln(1e-7) = 16.12`` and sends *no* gradient, where
    PyTorch's ``cross_entropy`` sends ``softmax(z) - y`` however wrong the sample is. Seed 004's
    LR of about 2.6 trains its CNN under Keras' loss and blows it up under PyTorch's.

    >>> z = torch.tensor([[0.0, 40.0], [0.0, 0.0]], requires_grad=True)
    >>> loss = keras_cross_entropy(z, torch.tensor([0, 0]))
    >>> round(loss.item(), 4), round((-math.log(1e-7) + math.log(2)) / 2, 4)
    (8.4056, 8.4056)
    >>> loss.backward(); z.grad[0].tolist()  # the clipped sample sends nothing
    [0.0, 0.0]
    """
    probabilities = torch.softmax(logits, dim=-1)
    # Keras divides by the sum (1 up to rounding) before clipping; kept for identical rounding.
    true = probabilities.gather(-1, target.unsqueeze(-1)).squeeze(-1) / probabilities.sum(-1)
    return -torch.log(true.clamp(KERAS_EPSILON, 1 - KERAS_EPSILON)).mean()


def loss_function(kind: LossKind) -> Callable[[Tensor, Tensor], Tensor]:
    """The mean-reduced PyTorch loss of a kind (logits in, as the models produce them);
    ``keras_cross_entropy`` is `keras_cross_entropy`."""
    if kind == "cross_entropy":
        return nn.functional.cross_entropy
    if kind == "keras_cross_entropy":
        return keras_cross_entropy
    if kind == "bce":
        return nn.functional.binary_cross_entropy_with_logits
    if kind == "mse":
        return nn.functional.mse_loss
    raise ValueError(f"loss must be one of {', '.join(LOSS_KINDS)}, got loss={kind!r}")


class MetricSum:
    """A metric over many batches, computed once at the end.

    ``add`` only keeps references to the (detached) outputs and targets: no kernel runs per
    batch, which matters on the training hot path. ``value`` concatenates and computes:
    ``accuracy`` (argmax of the logits, or ``logit > 0`` for one output), ``r2``
    (``1 - SSE / SST``) or ``loss`` (the mean loss over every sample added).
    """

    def __init__(self, kind: MetricKind, loss: LossKind) -> None:
        self.kind = kind
        self.loss = loss
        self._outputs: list[Tensor] = []
        self._targets: list[Tensor] = []
        self.count = 0

    def add(self, outputs: Tensor, targets: Tensor) -> None:
        self._outputs.append(outputs.detach())
        self._targets.append(targets)
        self.count += int(targets.shape[0])

    def value(self) -> float | None:
        if self.count == 0:
            return None
        with torch.no_grad():
            outputs, targets = torch.cat(self._outputs), torch.cat(self._targets)
            if self.kind == "accuracy":
                if outputs.shape[-1] == 1:
                    predicted = (outputs > 0).to(targets.dtype)
                else:
                    predicted = outputs.argmax(dim=-1)
                return float((predicted == targets).double().mean())
            if self.kind == "r2":
                y = targets.double()
                sst = (y - y.mean()).square().sum()
                if not sst > 0:
                    return None
                return float(1.0 - (outputs.double() - y).square().sum() / sst)
            return float(
                loss_function(self.loss)(
                    outputs.double(),
                    targets.to(torch.float64) if targets.is_floating_point() else targets,
                )
            )


def evaluate(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    loss: LossKind,
    metric: MetricKind,
    transform: Callable[[Tensor], Tensor] | None = None,
    batch_size: int = 1024,
) -> tuple[float, float | None]:
    """Mean loss and metric of ``model`` on ``(x, y)`` in eval mode, in chunks."""
    metrics = MetricSum(metric, loss)
    losses = MetricSum("loss", loss)
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for start in range(0, x.shape[0], batch_size):
            inputs, targets = x[start : start + batch_size], y[start : start + batch_size]
            if transform is not None:
                inputs = transform(inputs)
            outputs = model(inputs)
            metrics.add(outputs, targets)
            losses.add(outputs, targets)
    model.train(was_training)
    mean_loss = losses.value()
    return (math.nan if mean_loss is None else mean_loss), metrics.value()
