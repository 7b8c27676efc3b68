"""A task of your own: a small CNN on scikit-learn's 8x8 digit images, served by a DataLoader
over a custom Dataset. Nothing here is built into lrlab; this is the file a user writes.

    lrlab run examples/digits_cnn.py:make_task --optimizer adam
    lrlab compare examples/digits_cnn.py:make_task --optimizers sgd,momentum,adam \\
        --lr-grid 1e-3:1:7 --seeds 3 --method "sgd:lipschitz(bound=smooth)"
    lrlab find examples/digits_cnn.py:make_task --optimizer sgd

`make_task` is called once per process (a sweep's workers call it again), so it builds the
data and returns an `lrlab.Task`; the model is a callable, so every run gets fresh weights
drawn from its seed.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.datasets import load_digits
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

import lrlab


class DigitImages(Dataset[tuple[Tensor, Tensor]]):
    """scikit-learn's digits as 1x8x8 float images in [0, 1] with integer labels."""

    def __init__(self, images: np.ndarray, labels: np.ndarray) -> None:
        self.images = torch.from_numpy(images.astype(np.float32) / 16.0).reshape(-1, 1, 8, 8)
        self.labels = torch.from_numpy(labels.astype(np.int64))

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        return self.images[index], self.labels[index]


class DigitsCNN(nn.Module):
    """Two 3x3 convolutions and a linear head (the head is what LipschitzLR watches)."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
        )
        self.head = nn.Linear(32 * 2 * 2, 10)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))  # type: ignore[no-any-return]


def make_task() -> lrlab.Task:
    digits = load_digits()
    order = np.random.default_rng(0).permutation(len(digits.target))  # a fixed split
    test, train = order[:360], order[360:]
    train_set = DigitImages(digits.data[train], digits.target[train])
    test_set = DigitImages(digits.data[test], digits.target[test])
    return lrlab.Task(
        name="digits-cnn",
        model=DigitsCNN,
        train=DataLoader(train_set, batch_size=32, shuffle=True),
        test=DataLoader(test_set, batch_size=360),
        loss="cross_entropy",
        metric="accuracy",
        target=0.95,
        epochs=10,
    )
