"""What a task is: data + model + loss + metric + default budget and target.

`Task` is public and built with keyword arguments, by lrlab for its own tasks and by users
for theirs::

    task = lrlab.Task(
        name="my-cnn",
        model=lambda: MyCNN(),                  # a fresh model per run
        train=DataLoader(train_set, batch_size=64, shuffle=True),
        test=DataLoader(test_set, batch_size=256),
        loss="cross_entropy",                   # or any callable(outputs, targets) -> scalar
        metric="accuracy",                      # or callable(outputs, targets) -> float
        target=0.95,
        epochs=5,
    )

Data comes in two kinds, one loop for both (`lrlab.engine`): ``(x, y)`` tensors held in
memory, which the engine batches itself (shuffled per epoch from the run's seed, or drawn with
replacement), the fast path; or a ``DataLoader`` / any re-iterable, sized collection of
``(inputs, targets)`` batches, streamed as given (the loader owns batching and shuffling; the
engine seeds torch's global RNG per run, so a shuffling loader gives the same order for the
same seed). A stream without a ``len()`` (a ``DataLoader`` over an ``IterableDataset``, possibly
endless) needs ``epoch_steps``, the updates that make an epoch: the engine cycles the stream
(a new ``iter()`` whenever one ends) and closes an epoch, with its evaluation and the LR
controllers' epoch boundary, every ``epoch_steps`` updates.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sized
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, TypeAlias, cast

import numpy as np
import torch
from torch import Tensor, nn

from lrlab.tasks.bundled import random_split, stratified_split
from lrlab.validate import (
    MAX_STEPS,
    ArgumentTypeError,
    check_bool,
    check_choice,
    check_int,
    check_number,
)

LossKind = Literal["cross_entropy", "bce", "mse", "keras_cross_entropy"]
# Keras' backend epsilon, the clip of its categorical_crossentropy on probabilities.
KERAS_EPSILON = 1e-7
MetricKind = Literal["accuracy", "r2", "loss", "mae", "f1", "top5", "bits_per_byte"]
Sampling = Literal["shuffle", "replacement"]
LossFn: TypeAlias = Callable[[Any, Tensor], Tensor]
MetricFn: TypeAlias = Callable[[Any, Tensor], float]
Batches: TypeAlias = Iterable[tuple[Any, Tensor]]
Data: TypeAlias = tuple[Tensor, Tensor] | Batches

LOSS_KINDS: tuple[str, ...] = ("cross_entropy", "bce", "mse", "keras_cross_entropy")
METRIC_KINDS: tuple[str, ...] = ("accuracy", "r2", "loss", "mae", "f1", "top5", "bits_per_byte")
#: The metrics for which lower is better (a task's default ``higher_is_better``).
LOWER_IS_BETTER: tuple[str, ...] = ("loss", "mae", "bits_per_byte")
SAMPLINGS: tuple[str, ...] = ("shuffle", "replacement")
EVAL_CHUNK = 1024
#: The largest fraction of the training data a validation split may take.
MAX_VALIDATION = 0.5
#: The seed of the generator that draws validation rows (fixed: every run sees the same split).
VALIDATION_SEED = 1


@dataclass(frozen=True)
class TaskData:
    """A task's tensors, whole, in memory (the engine indexes batches out of them directly).

    ``transform`` turns a batch of stored inputs into model inputs (e.g. uint8 pixels to floats,
    so a 50 000-image set stays 4x smaller); ``augment`` changes training batches only.
    ``x_val``/``y_val``: the validation split, held out from training like the test split
    (``None`` without one). ``identity`` says what the data is, as plain data (the ``lm``
    corpus's name, size and SHA-256): every run's record keeps it as ``extra["data"]``, and
    a report says when one task's runs read different data.
    """

    x_train: Tensor
    y_train: Tensor
    x_test: Tensor | None
    y_test: Tensor | None
    num_outputs: int | None = None
    transform: Callable[[Tensor], Tensor] | None = None
    augment: Callable[[Tensor, torch.Generator], Tensor] | None = None
    x_val: Tensor | None = None
    y_val: Tensor | None = None
    identity: Mapping[str, Any] | None = None

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
            x_val=move(self.x_val),
            y_val=move(self.y_val),
        )

    def train_pass(self, batch_size: int) -> Batches:
        """The training set in consecutive, unshuffled, un-augmented batches (re-iterable)."""
        return TensorBatches(self.x_train, self.y_train, batch_size, self.transform)

    def test_batches(self) -> Batches | None:
        """The test set in chunks (``None`` without one)."""
        if self.x_test is None or self.y_test is None:
            return None
        return TensorBatches(self.x_test, self.y_test, EVAL_CHUNK, self.transform)

    def validation_batches(self) -> Batches | None:
        """The validation set in chunks (``None`` without one)."""
        if self.x_val is None or self.y_val is None:
            return None
        return TensorBatches(self.x_val, self.y_val, EVAL_CHUNK, self.transform)

    def carve(self, fraction: float, *, stratify: bool) -> TaskData:
        """The same data with ``fraction`` of the training rows moved to a validation split
        (replacing any): `validation_rows`, fixed whatever the run's seed."""
        train, held = validation_rows(self.y_train, fraction, stratify=stratify)
        rows = torch.from_numpy(train).to(self.x_train.device)
        held_rows = torch.from_numpy(held).to(self.x_train.device)
        return replace(
            self,
            x_train=self.x_train.index_select(0, rows),
            y_train=self.y_train.index_select(0, rows),
            x_val=self.x_train.index_select(0, held_rows),
            y_val=self.y_train.index_select(0, held_rows),
        )


@dataclass(frozen=True)
class StreamData:
    """A task's data as batches someone else makes: a ``DataLoader`` or any re-iterable,
    sized collection of ``(inputs, targets)``. Moved to the run's device batch by batch."""

    train: Batches
    test: Batches | None = None
    epoch_steps: int | None = None  # the task's, where the stream has no len()
    validation: Batches | None = None

    @property
    def steps_per_pass(self) -> int:
        """Batches in a pass over the training stream (``epoch_steps`` for one without a
        ``len()``)."""
        length = data_length(self.train)
        if length is None:
            if self.epoch_steps is None:
                raise ValueError("the training stream has no len(); give the task epoch_steps")
            return self.epoch_steps
        return length

    @property
    def batch_size(self) -> int | None:
        """The loader's batch size, when it says (a ``DataLoader`` does)."""
        size = getattr(self.train, "batch_size", None)
        return size if isinstance(size, int) else None

    def train_pass(self, batch_size: int) -> Batches:
        """The training batches as the loader gives them (``batch_size`` is the loader's); of
        a stream without a ``len()``, its first ``epoch_steps`` batches per pass."""
        if data_length(self.train) is None:
            return FirstBatches(self.train, self.steps_per_pass)
        return self.train

    def test_batches(self) -> Batches | None:
        return self.test

    def validation_batches(self) -> Batches | None:
        return self.validation


class TensorBatches:
    """Consecutive batches of in-memory tensors, re-iterable (one pass per iteration)."""

    def __init__(
        self,
        x: Tensor,
        y: Tensor,
        batch_size: int,
        transform: Callable[[Tensor], Tensor] | None = None,
    ) -> None:
        self.x, self.y, self.batch_size, self.transform = x, y, batch_size, transform

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        for start in range(0, self.x.shape[0], self.batch_size):
            inputs = self.x[start : start + self.batch_size]
            if self.transform is not None:
                inputs = self.transform(inputs)
            yield inputs, self.y[start : start + self.batch_size]

    def __len__(self) -> int:
        return -(-self.x.shape[0] // self.batch_size)


class FirstBatches:
    """The first ``count`` batches of a re-iterable stream, re-iterable (a fresh ``iter()``
    of the stream per pass)."""

    def __init__(self, batches: Batches, count: int) -> None:
        self.batches, self.count = batches, count

    def __iter__(self) -> Iterator[tuple[Any, Tensor]]:
        return itertools.islice(iter(self.batches), self.count)

    def __len__(self) -> int:
        return self.count


def data_length(data: object) -> int | None:
    """``len(data)``, or ``None`` for a collection without one (a ``DataLoader`` over an
    ``IterableDataset`` has ``__len__`` but raises ``TypeError`` from it)."""
    if not isinstance(data, Sized):
        return None
    try:
        return len(data)
    except TypeError:
        return None


AnyData = TaskData | StreamData


def _model_builders(
    name: str, model: Callable[[], nn.Module] | Mapping[str, Callable[[], nn.Module]]
) -> dict[str, Callable[[], nn.Module]]:
    if isinstance(model, Mapping):
        builders = dict(model)
        if not builders:
            raise ValueError(f"task {name}: model must name at least one model builder")
    else:
        builders = {"model": model}
    for key, builder in builders.items():
        if not callable(builder):
            raise ArgumentTypeError(
                f"task {name}: model must be a callable returning a fresh nn.Module "
                f"(or a dict of them), got model[{key!r}]={builder!r}"
            )
    return builders


def _check_data(name: str, role: str, data: object, epoch_steps: int | None = None) -> None:
    """Tensors ``(x, y)`` of equal length, or a re-iterable collection of batches: sized, or
    for training with ``epoch_steps`` given, of any length (an evaluation pass over a test
    stream without a ``len()`` runs until it ends)."""
    if data is None:
        return
    if isinstance(data, tuple) and len(data) == 2 and all(isinstance(t, Tensor) for t in data):
        x, y = data
        if x.shape[0] != y.shape[0]:
            raise ValueError(
                f"task {name}: {role} inputs and targets must have as many rows, got "
                f"{x.shape[0]} and {y.shape[0]}"
            )
        if x.shape[0] == 0:
            raise ValueError(f"task {name}: {role} has no samples")
        return
    if isinstance(data, Iterator | Tensor | str | bytes | Mapping) or not isinstance(
        data, Iterable
    ):
        raise ArgumentTypeError(
            f"task {name}: {role} must be (x, y) tensors, a DataLoader or a re-iterable "
            f"collection of (inputs, targets) batches, got {role}={type(data).__name__}"
        )
    if isinstance(data, tuple | list):  # held in memory: each item must be a batch
        for i, batch in enumerate(data):
            if not (isinstance(batch, tuple | list) and len(batch) == 2):
                raise ArgumentTypeError(
                    f"task {name}: {role} must be (x, y) tensors or arrays, a DataLoader or a "
                    f"collection of (inputs, targets) batches, got {role}[{i}]="
                    f"{type(batch).__name__}"
                )
    length = data_length(data)
    if length is None:
        if role == "train" and epoch_steps is None:
            raise ArgumentTypeError(
                f"task {name}: train has no len() (an IterableDataset?), so an epoch is not one "
                f"pass over it; give epoch_steps=N, the updates per epoch, got "
                f"train={type(data).__name__} and epoch_steps=None"
            )
        return
    if length == 0:
        raise ValueError(f"task {name}: {role} yields no batches")


def default_metric(loss: object) -> str:
    """Accuracy for classification losses, R^2 for MSE, the loss itself for a custom one."""
    if loss in ("cross_entropy", "keras_cross_entropy", "bce"):
        return "accuracy"
    return "r2" if loss == "mse" else "loss"


@dataclass(frozen=True, eq=False)
class Task:
    """A learning problem and its defaults: what a run trains, on what, judged how.

    Users build one with keyword arguments (see the module docstring): ``model`` a callable
    returning a freshly initialised ``nn.Module`` (or a dict of them, the first the default),
    ``train``/``test`` tensors ``(x, y)`` (numpy arrays are taken too, converted as PyTorch
    users expect: float64 to float32, integer labels to int64, others as they are) or a
    ``DataLoader`` / re-iterable sized collection of batches, ``loss`` a known kind or a
    callable ``(outputs, targets) -> scalar tensor`` (mean-reduced), ``metric`` a known kind
    (`METRIC_KINDS`) or a callable ``(outputs, targets) -> float`` over the whole test set
    (``higher_is_better`` says which way it points; by default lower is better for ``loss``
    and ``mae``, higher for the others), ``target`` the metric value that counts as solved
    (``>=``, or ``<=`` when lower is better; ``None``: no target), exactly one of ``epochs``
    and ``steps``, ``batch_size`` for tensor data;
    ``epoch_steps`` the updates per epoch (default: one pass over the training data; needed
    for a stream without a ``len()``, which the engine cycles).

    ``validation`` is the split a comparison chooses its settings on (never the test split):
    held-out data given like ``test``, or a fraction in ``(0, 0.5]`` of the training tensors
    carved off by `validation_rows` (the same rows for every run and seed; stratified by
    label for a classification loss), or ``None`` (no validation split). A run uses it unless
    its config says ``validation=False``, which trains on the whole training data as before
    validation splits existed (the source documents' reproductions do).

    lrlab's own tasks load their data lazily: ``load(split, data_dir) -> TaskData`` with the
    ``splits`` they offer; ``reference`` is the ``file.py:function`` or ``module:function``
    a task was built from (set by `lrlab.tasks.resolve_task`), which sweep workers use to
    build it again.
    """

    name: str
    model: Callable[[], nn.Module] | Mapping[str, Callable[[], nn.Module]] = field(repr=False)
    train: Data | None = field(default=None, repr=False)
    test: Data | None = field(default=None, repr=False)
    validation: Data | float | None = field(default=None, repr=False)
    loss: str | LossFn = "cross_entropy"
    metric: str | MetricFn | None = None
    target: float | None = None
    epochs: int | None = None
    steps: int | None = None
    batch_size: int = 32
    epoch_steps: int | None = None
    higher_is_better: bool | None = None
    summary: str = ""
    sampling: str = "shuffle"
    loader: Callable[[str, Path | None], AnyData] | None = field(default=None, repr=False)
    splits: tuple[str, ...] = ("holdout",)
    needs_data_dir: bool = False
    reference: str | None = None
    # Per model: a training-batch augmentation that belongs to that model's recipe (seed 004's
    # CNN trains on Keras' random affine images), used instead of the data's own.
    augmentations: Mapping[str, Callable[[Tensor, torch.Generator], Tensor]] = field(
        default_factory=dict, repr=False
    )

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValueError(f"Task: name must be a non-empty string, got name={self.name!r}")
        if not self.name.isprintable():  # a newline would break every one-line output
            raise ValueError(
                f"Task: name must be printable (no newline, tab or other control character), "
                f"got name={self.name!r}"
            )
        name = self.name
        object.__setattr__(self, "model", _model_builders(name, self.model))
        object.__setattr__(self, "train", _from_numpy(self.train))
        object.__setattr__(self, "test", _from_numpy(self.test))
        object.__setattr__(self, "validation", _from_numpy(self.validation))
        if (self.train is None) == (self.loader is None):
            raise ValueError(
                f"task {name}: give the training data as train=... (and no loader=), "
                f"got train={type(self.train).__name__}"
            )
        if self.epoch_steps is not None:
            check_int(f"task {name}", "epoch_steps", self.epoch_steps, minimum=1, maximum=MAX_STEPS)
        _check_data(name, "train", self.train, self.epoch_steps)
        _check_data(name, "test", self.test)
        if _is_tensors(self.train) and self.test is not None and not _is_tensors(self.test):
            raise ArgumentTypeError(
                f"task {name}: with train as (x, y) tensors, test must be tensors too"
            )
        self._check_validation()
        if isinstance(self.loss, str):
            check_choice(f"task {name}", "loss", self.loss, LOSS_KINDS)
        elif not callable(self.loss):
            raise ArgumentTypeError(
                f"task {name}: loss must be one of {', '.join(LOSS_KINDS)} or a callable, "
                f"got loss={self.loss!r}"
            )
        metric = self.metric if self.metric is not None else default_metric(self.loss)
        if isinstance(metric, str):
            check_choice(f"task {name}", "metric", metric, METRIC_KINDS)
        elif not callable(metric):
            raise ArgumentTypeError(
                f"task {name}: metric must be one of {', '.join(METRIC_KINDS)} or a callable, "
                f"got metric={metric!r}"
            )
        object.__setattr__(self, "metric", metric)
        if self.higher_is_better is None:
            object.__setattr__(self, "higher_is_better", metric not in LOWER_IS_BETTER)
        check_bool(f"task {name}", "higher_is_better", self.higher_is_better)
        if self.target is not None:
            object.__setattr__(self, "target", check_number(f"task {name}", "target", self.target))
        if (self.epochs is None) == (self.steps is None):
            raise ValueError(
                f"task {name}: give exactly one of epochs and steps, got "
                f"epochs={self.epochs!r}, steps={self.steps!r}"
            )
        for budget in ("epochs", "steps"):
            value = getattr(self, budget)
            if value is not None:
                check_int(f"task {name}", budget, value, minimum=1, maximum=MAX_STEPS)
        check_int(f"task {name}", "batch_size", self.batch_size, minimum=1)
        check_choice(f"task {name}", "sampling", self.sampling, SAMPLINGS)

    def _check_validation(self) -> None:
        name, validation = self.name, self.validation
        if validation is None:
            return
        if isinstance(validation, bool) or not isinstance(validation, int | float | tuple):
            _check_data(name, "validation", validation)
            if _is_tensors(self.train):
                raise ArgumentTypeError(
                    f"task {name}: with train as (x, y) tensors, validation must be tensors "
                    f"or a fraction of them, got validation={type(validation).__name__}"
                )
            return
        if isinstance(validation, tuple):
            _check_data(name, "validation", validation)
            return
        check_number(f"task {name}", "validation", validation, positive=True)
        if validation > MAX_VALIDATION:
            raise ValueError(
                f"task {name}: validation must be a fraction in (0, {MAX_VALIDATION}] of the "
                f"training data (or held-out data), got validation={validation!r}"
            )
        if self.train is not None and not _is_tensors(self.train):
            raise ArgumentTypeError(
                f"task {name}: a validation fraction is carved from training tensors; with a "
                f"DataLoader, give the validation data itself, got validation={validation!r}"
            )

    @property
    def classifies(self) -> bool:
        """Whether the loss is a classification loss (a validation split is stratified)."""
        return self.loss in ("cross_entropy", "keras_cross_entropy", "bce")

    # -- what runs see ----------------------------------------------------------------------

    @property
    def models(self) -> tuple[str, ...]:
        return tuple(self.model_builders)

    @property
    def model_builders(self) -> Mapping[str, Callable[[], nn.Module]]:
        return self.model  # type: ignore[return-value]  # normalised in __post_init__

    @property
    def default_model(self) -> str:
        return self.models[0]

    @property
    def metric_name(self) -> str:
        """The metric's name in records and reports (a callable's ``__name__``)."""
        metric = self.metric
        return metric if isinstance(metric, str) else getattr(metric, "__name__", "metric")

    @property
    def loss_name(self) -> str:
        loss = self.loss
        return loss if isinstance(loss, str) else getattr(loss, "__name__", "custom loss")

    @property
    def loss_kind(self) -> str | None:
        """The loss as one of the known kinds (LipschitzLR's bounds need one), else ``None``."""
        return self.loss if isinstance(self.loss, str) else None

    @property
    def streams(self) -> bool:
        """Whether the training data comes as batches (a DataLoader) rather than tensors."""
        return self.train is not None and not _is_tensors(self.train)

    def reached(self, value: float | None) -> bool:
        """Whether a metric value meets the target (never, without a target)."""
        if value is None or self.target is None or not math.isfinite(value):
            return False
        return value >= self.target if self.higher_is_better else value <= self.target

    def load(
        self, split: str | None = None, data_dir: Path | None = None, validation: bool = True
    ) -> AnyData:
        """The task's data: lrlab's loaders read theirs (``split``, ``data_dir``); a user's
        task hands over what it was given; with ``validation``, its validation split too
        (carved from the training data when the task gives a fraction)."""
        split = self.splits[0] if split is None else split
        if split not in self.splits:
            raise ValueError(
                f"task {self.name}: split must be one of {', '.join(self.splits)}, "
                f"got split={split!r}"
            )
        data = self._load(split, data_dir)
        if not validation:  # (a loader's own validation split too: `lrlab.tasks.lm`'s)
            if isinstance(data, TaskData):
                return replace(data, x_val=None, y_val=None)
            return replace(data, validation=None)
        held = self.validation
        if held is None:
            return data
        if isinstance(held, int | float):
            if not isinstance(data, TaskData):  # (__post_init__ refused it for user tasks)
                raise ValueError(f"task {self.name}: a validation fraction needs tensor data")
            return data.carve(float(held), stratify=self.classifies)
        if isinstance(data, TaskData) and isinstance(held, tuple) and _is_tensors(held):
            return replace(data, x_val=held[0], y_val=held[1])
        if isinstance(data, StreamData):
            return replace(data, validation=_as_batches(held))
        raise ValueError(f"task {self.name}: validation must be like its training data")

    def _load(self, split: str, data_dir: Path | None) -> AnyData:
        if self.loader is not None:
            return self.loader(split, data_dir)
        if isinstance(self.train, tuple) and _is_tensors(self.train):
            x, y = self.train
            test = self.test if isinstance(self.test, tuple) else (None, None)
            return TaskData(x, y, *test)
        return StreamData(
            self.train,  # type: ignore[arg-type]
            _as_batches(self.test) if self.test is not None else None,
            self.epoch_steps,
        )

    def build_model(self, name: str | None = None) -> nn.Module:
        name = self.default_model if name is None else name
        builder = self.model_builders.get(name)
        if builder is None:
            raise ValueError(
                f"task {self.name}: model must be one of {', '.join(self.models)}, "
                f"got model={name!r}"
            )
        model = builder()
        if not isinstance(model, nn.Module):
            raise ArgumentTypeError(
                f"task {self.name}: its model builder must return an nn.Module, got "
                f"{type(model).__name__}"
            )
        return model


def _as_batches(data: Data) -> Batches:
    """Held-out data as batches: tensors ``(x, y)`` in chunks, a DataLoader as it is."""
    if isinstance(data, tuple) and _is_tensors(data):
        return TensorBatches(data[0], data[1], EVAL_CHUNK)
    return cast(Batches, data)  # (a DataLoader or batches: `_check_data` checked it)


def validation_rows(
    targets: Tensor, fraction: float, *, stratify: bool
) -> tuple[np.ndarray, np.ndarray]:
    """The training rows kept and the rows held out as a validation split: ``fraction`` of
    the rows (rounded), stratified by label when ``stratify`` (each class gives its
    ``fraction``, as `lrlab.tasks.bundled.stratified_split`), at random otherwise; drawn with
    numpy's generator seeded 1 (the test split of lrlab's tasks is drawn with seed 0), so the
    split is the same for every run and every seed. Both in increasing order.

    >>> kept, held = validation_rows(torch.tensor([0, 0, 0, 0, 1, 1, 1, 1, 1, 1]), 0.5,
    ...                              stratify=True)
    >>> len(held), sorted(torch.tensor([0, 0, 0, 0, 1, 1, 1, 1, 1, 1])[held].tolist())
    (5, [0, 0, 1, 1, 1])
    """
    labels = targets.detach().cpu().numpy()
    if stratify:
        labels = labels.reshape(len(labels), -1)[:, 0]
        return stratified_split(labels, fraction, seed=VALIDATION_SEED)
    return random_split(len(labels), fraction, seed=VALIDATION_SEED)


def _from_numpy(data: object) -> object:
    """``(x, y)`` with numpy arrays in it as tensors, as PyTorch users expect them: float64
    to float32 (torch's default dtype), integer labels to int64 (what ``cross_entropy``
    takes), everything else as it is; any other data unchanged."""
    if not (isinstance(data, tuple) and len(data) == 2):
        return data
    import numpy

    if not any(isinstance(part, numpy.ndarray) for part in data):
        return data
    x, y = (torch.as_tensor(p) if isinstance(p, numpy.ndarray) else p for p in data)
    if isinstance(x, Tensor) and x.dtype == torch.float64 and isinstance(data[0], numpy.ndarray):
        x = x.float()
    if isinstance(y, Tensor) and isinstance(data[1], numpy.ndarray):
        if y.dtype == torch.float64:
            y = y.float()
        elif not y.is_floating_point() and not y.is_complex() and y.dtype != torch.bool:
            y = y.long()
    return x, y


def _is_tensors(data: object) -> bool:
    return isinstance(data, tuple) and len(data) == 2 and all(isinstance(t, Tensor) for t in data)


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
    return keras_cross_entropy_per_sample(logits, target).mean()


def keras_cross_entropy_per_sample(logits: Tensor, target: Tensor) -> Tensor:
    """`keras_cross_entropy` of each sample, unreduced (shape of ``target``)."""
    probabilities = torch.softmax(logits, dim=-1)
    # Keras divides by the sum (1 up to rounding) before clipping; kept for identical rounding.
    true = probabilities.gather(-1, target.unsqueeze(-1)).squeeze(-1) / probabilities.sum(-1)
    return -torch.log(true.clamp(KERAS_EPSILON, 1 - KERAS_EPSILON))


def cross_entropy(logits: Tensor, target: Tensor) -> Tensor:
    """PyTorch's ``cross_entropy``, mean over every prediction, with the classes last, as
    lrlab's models output them: logits ``(N, C)`` against targets ``(N,)``, or a sequence
    model's ``(N, T, C)`` (any leading dimensions) against ``(N, T)``, flattened to ``(N T,
    C)`` first (PyTorch itself would read dimension 1 as the classes).

    >>> logits = torch.tensor([[[0.0, 0.0], [0.0, math.log(3.0)]]])  # (1, 2, 2)
    >>> round(cross_entropy(logits, torch.tensor([[0, 1]])).item(), 6)  # (ln 2 + ln(4/3)) / 2
    0.490415
    """
    if logits.dim() > 2:
        return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1))
    return nn.functional.cross_entropy(logits, target)


def token_cross_entropy(logits: Tensor, target: Tensor) -> Tensor:
    """Each prediction's cross-entropy, unreduced and flattened: logits ``(..., C)`` against
    targets ``(...)``, classes last."""
    return nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), target.reshape(-1), reduction="none"
    )


def loss_function(loss: str | LossFn) -> LossFn:
    """The mean-reduced PyTorch loss of a kind (logits in, classes last, as the models
    produce them), or a user's callable as it is."""
    if callable(loss):
        return loss
    if loss == "cross_entropy":
        return cross_entropy
    if loss == "keras_cross_entropy":
        return keras_cross_entropy
    if loss == "bce":
        return nn.functional.binary_cross_entropy_with_logits
    if loss == "mse":
        return nn.functional.mse_loss
    raise ValueError(f"loss must be one of {', '.join(LOSS_KINDS)}, got loss={loss!r}")


class MetricSum:
    """A metric over many batches, computed once at the end.

    ``add`` only keeps references to the (detached) outputs and targets: no kernel runs per
    batch, which matters on the training hot path. ``value`` concatenates and computes:
    ``accuracy`` (argmax of the logits, or ``logit > 0`` for one output), ``f1`` (macro F1 of
    those predictions: the mean over every class predicted or present of
    ``2 TP / (2 TP + FP + FN)``, scikit-learn's ``f1_score(average="macro")``), ``top5`` (the
    share of samples whose class is among the 5 largest outputs; 1 with 5 classes or fewer),
    ``r2`` (``1 - SSE / SST``), ``mae`` (the mean absolute error over every output), ``loss``
    (the mean loss over every sample added), ``bits_per_byte`` (the mean cross-entropy of the
    logits over every prediction, in bits: ``CE / ln 2``, whatever the training loss; each
    prediction's in the logits' dtype, batch by batch, the mean in float64), or a user's
    callable on the concatenated outputs and targets. Outputs holding a NaN have no
    prediction: accuracy, F1 and top-5 are then NaN, as R^2, MAE and the loss are.
    """

    def __init__(self, kind: str | MetricFn, loss: str | LossFn) -> None:
        self.kind = kind
        self.loss = loss
        self._outputs: list[Tensor] = []
        self._targets: list[Tensor] = []
        self.count = 0

    def add(self, outputs: Tensor, targets: Tensor) -> None:
        self._outputs.append(outputs.detach())
        self._targets.append(targets)
        self.count += int(targets.shape[0])

    def state(self) -> dict[str, Any]:
        """What was added so far (for a checkpoint taken mid-epoch)."""
        return {"outputs": list(self._outputs), "targets": list(self._targets), "count": self.count}

    def load(self, state: dict[str, Any], device: torch.device) -> None:
        """Restore what `state` returned, the tensors on ``device``."""
        self._outputs = [t.to(device) for t in state["outputs"]]
        self._targets = [t.to(device) for t in state["targets"]]
        self.count = int(state["count"])

    def value(self) -> float | None:
        if self.count == 0:
            return None
        with torch.no_grad():
            if self.kind == "bits_per_byte":
                # Batch by batch (an epoch of a language model's logits is large): each
                # prediction's cross-entropy in the logits' dtype, their mean in float64.
                losses = [
                    token_cross_entropy(outputs, targets)
                    for outputs, targets in zip(self._outputs, self._targets, strict=True)
                ]
                return float(torch.cat(losses).double().mean()) / math.log(2)
            outputs, targets = torch.cat(self._outputs), torch.cat(self._targets)
            if callable(self.kind):
                return float(self.kind(outputs, targets))
            if self.kind in ("accuracy", "f1", "top5"):
                return _classification(self.kind, outputs, targets)
            if self.kind == "mae":
                if outputs.numel() != targets.numel():
                    raise ValueError(
                        f"mae needs one target per output, got outputs of shape "
                        f"{tuple(outputs.shape)} and targets of shape {tuple(targets.shape)}"
                    )
                y = targets.double().reshape(outputs.shape)
                return float((outputs.double() - y).abs().mean())
            if self.kind == "r2":
                y = targets.double()
                sst = (y - y.mean()).square().sum()
                if not sst > 0:
                    return None
                return float(1.0 - (outputs.double() - y).square().sum() / sst)
            if callable(self.loss):
                return float(self.loss(outputs, targets))
            return float(
                loss_function(self.loss)(
                    outputs.double(),
                    targets.to(torch.float64) if targets.is_floating_point() else targets,
                )
            )


def _classification(kind: str, outputs: Tensor, targets: Tensor) -> float:
    """`MetricSum`'s ``accuracy``, ``f1`` and ``top5`` (NaN when an output is NaN)."""
    if bool(outputs.isnan().any()):
        return math.nan
    if kind == "top5":
        if outputs.shape[-1] <= 5:  # one logit: two classes
            return 1.0
        top = outputs.topk(5, dim=-1).indices
        return float((top == targets.unsqueeze(-1)).any(-1).double().mean())
    if outputs.shape[-1] == 1:
        predicted = (outputs > 0).to(targets.dtype)
    else:
        predicted = outputs.argmax(dim=-1)
    if kind == "accuracy":
        return float((predicted == targets).double().mean())
    p, t = predicted.reshape(-1).long(), targets.reshape(-1).long()
    low = int(torch.minimum(p.min(), t.min()))
    p, t = p - low, t - low
    size = int(torch.maximum(p.max(), t.max())) + 1
    hits = torch.bincount(t[p == t], minlength=size).double()
    counts = (torch.bincount(p, minlength=size) + torch.bincount(t, minlength=size)).double()
    seen = counts > 0
    return float((2 * hits[seen] / counts[seen]).mean())


def to_device(value: Any, device: torch.device) -> Any:
    """Tensors (also inside tuples, lists and dicts) moved to ``device``; others unchanged."""
    if isinstance(value, Tensor):
        return value.to(device, non_blocking=True)
    if isinstance(value, tuple | list):
        return type(value)(to_device(v, device) for v in value)
    if isinstance(value, dict):
        return {k: to_device(v, device) for k, v in value.items()}
    return value


def evaluate(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    loss: str | LossFn,
    metric: str | MetricFn,
    transform: Callable[[Tensor], Tensor] | None = None,
    batch_size: int = EVAL_CHUNK,
) -> tuple[float, float | None]:
    """Mean loss and metric of ``model`` on tensors ``(x, y)`` in eval mode, in chunks."""
    batches = TensorBatches(x, y, batch_size, transform)
    return evaluate_batches(model, batches, loss=loss, metric=metric)


def evaluate_batches(
    model: nn.Module,
    batches: Iterable[tuple[Any, Tensor]],
    *,
    loss: str | LossFn,
    metric: str | MetricFn,
    device: torch.device | None = None,
) -> tuple[float, float | None]:
    """Mean loss and metric of ``model`` over ``batches`` in eval mode (no gradients), each
    batch moved to ``device`` first when given."""
    metrics = MetricSum(metric, loss)
    losses = MetricSum("loss", loss)
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for inputs, targets in batches:
            if device is not None:
                inputs, targets = to_device(inputs, device), to_device(targets, device)
            outputs = model(inputs)
            metrics.add(outputs, targets)
            losses.add(outputs, targets)
    model.train(was_training)
    mean_loss = losses.value()
    return (math.nan if mean_loss is None else mean_loss), metrics.value()
