"""The source documents' models, plus a small CNN and CIFAR's residual networks (ResNet-20,
and the ResNet-8 the image tasks offer as ``resnet``).

Every classifier ends in an ``nn.Linear`` producing logits (the softmax lives in the loss), so
LipschitzLR can find the final layer and its input activations.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor, nn

from lrlab.validate import ArgumentTypeError, check_choice, check_int, fail

Init = Literal["torch", "glorot_uniform", "he_normal"]


def mlp(sizes: Sequence[int], *, init: Init = "torch") -> nn.Sequential:
    """``Linear -> ReLU -> ... -> Linear`` through ``sizes`` (input, hidden..., output).

    ``init`` picks the weight initialisation, biases zero except for ``"torch"``:
    ``"glorot_uniform"`` is Keras' default (seed 000), ``"he_normal"`` draws
    ``N(0, 2 / fan_in)`` like seed 003's ``MultiLayerNet(weight_init_std="relu")``.

    >>> mlp([4, 4, 6, 3])
    Sequential(
      (0): Linear(in_features=4, out_features=4, bias=True)
      (1): ReLU()
      (2): Linear(in_features=4, out_features=6, bias=True)
      (3): ReLU()
      (4): Linear(in_features=6, out_features=3, bias=True)
    )
    """
    check_choice("mlp", "init", init, ("torch", "glorot_uniform", "he_normal"))
    if isinstance(sizes, str | bytes) or not isinstance(sizes, Sequence):
        raise ArgumentTypeError(f"mlp: sizes must be a list of integers, got sizes={sizes!r}")
    if len(sizes) < 2:
        raise fail("mlp", "sizes", list(sizes), ">= 2 positive integers")
    for i, size in enumerate(sizes):
        check_int("mlp", f"sizes[{i}]", size, minimum=1)
    layers: list[nn.Module] = []
    for i, (fan_in, fan_out) in enumerate(itertools.pairwise(sizes)):
        linear = nn.Linear(fan_in, fan_out)
        _initialise(linear, init)
        layers.append(linear)
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def _initialise(linear: nn.Linear, init: Init) -> None:
    if init == "torch":
        return
    with torch.no_grad():
        fan_out, fan_in = linear.weight.shape
        if init == "glorot_uniform":
            bound = math.sqrt(6.0 / (fan_in + fan_out))
            linear.weight.uniform_(-bound, bound)
        elif init == "he_normal":
            linear.weight.normal_(0.0, math.sqrt(2.0 / fan_in))
        else:
            raise ValueError(f"mlp: init must be torch, glorot_uniform or he_normal, got {init!r}")
        linear.bias.zero_()


class SmallCNN(nn.Module):
    """Two 3x3 conv blocks (``widths`` channels, ReLU, 2x2 max-pool), a ``hidden``-unit layer
    and a linear head: a quick baseline for 28x28 or 32x32 images.

    ``init="glorot_uniform"`` initialises every conv and linear weight as Keras does by default
    (zero biases), which is what the source documents' Keras code ran with; ``"torch"`` keeps
    PyTorch's defaults.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        image_size: int,
        widths: tuple[int, int] = (32, 64),
        hidden: int = 128,
        init: Init = "torch",
    ) -> None:
        super().__init__()
        first, second = widths
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, first, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(first, second, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
        )
        side = image_size // 4
        self.hidden = nn.Sequential(nn.Linear(second * side * side, hidden), nn.ReLU())
        self.head = nn.Linear(hidden, num_classes)
        if init == "glorot_uniform":
            for module in self.modules():
                if isinstance(module, nn.Conv2d | nn.Linear):
                    nn.init.xavier_uniform_(module.weight)
                    if module.bias is not None:
                        nn.init.zeros_(module.bias)
        elif init != "torch":
            raise ValueError(f"SmallCNN: init must be torch or glorot_uniform, got init={init!r}")

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.hidden(self.features(x)))  # type: ignore[no-any-return]


# scipy.stats.truncnorm.std(a=-2, b=2): the standard deviation of a unit normal truncated at
# +-2, by which Keras (2.2.0 on, keras-team/keras PR #9963) divides a truncated normal's scale.
TRUNCATED_STD = 0.87962566103423978


def keras_he_normal_(weight: Tensor) -> Tensor:
    """Keras' ``he_normal`` (Keras 2.2.0 and later, Keras 3): a normal truncated at two of its
    scale parameters, ``sigma = sqrt(2 / fan_in) / 0.8796...``, so that the *truncated*
    distribution has standard deviation ``sqrt(2 / fan_in)`` (``fan_in`` = input channels x
    kernel area). Keras 2.2.4's ``VarianceScaling(2, "fan_in", "normal")``, as the seed-004
    authors' models ran it. In place, from torch's global generator.

    >>> w = keras_he_normal_(torch.empty(64, 32, 3, 3))
    >>> bound = 2 * math.sqrt(2 / (32 * 9)) / TRUNCATED_STD
    >>> bool(w.abs().max() <= bound)
    True
    """
    fan_in = weight[0].numel()
    sigma = math.sqrt(2.0 / fan_in) / TRUNCATED_STD
    return nn.init.trunc_normal_(weight, 0.0, sigma, -2.0 * sigma, 2.0 * sigma)


def keras_glorot_uniform_(weight: Tensor) -> Tensor:
    """Keras' default ``glorot_uniform``: ``U(-limit, limit)``, ``limit = sqrt(6 / (fan_in +
    fan_out))`` (PyTorch's ``xavier_uniform_``). In place, from torch's global generator."""
    return nn.init.xavier_uniform_(weight)


class PaperCNN(nn.Module):
    """Seed 004's MNIST network, as its authors built it in Keras 2.2.4.

    The layers of ``MNIST/MNIST.ipynb`` (cell 8; the same in ``MNIST Momentum.ipynb`` and
    ``MNIST_Adam.ipynb``), drawn in ``MNIST/model.png`` and listed in the paper's Table 2
    (repository yrahul3910/adaptive-lr-dnn)::

        Conv 32 (3x3, valid) -> Conv 32 (valid) -> MaxPool 2 -> Dropout 0.2
        -> Conv 64 (same) -> Conv 64 (same) -> MaxPool 2 -> Dropout 0.25
        -> Conv 128 (same) -> Dropout 0.25 -> Flatten
        -> Dense 128 ReLU -> BatchNorm -> Dropout 0.25 -> Dense 10

    every convolution ReLU: 730,346 trainable parameters plus BatchNorm's 256 running
    statistics, the 730,602 Keras counts (the paper's "730K"); 28x28 -> 26 -> 24 -> 12 ->
    12 -> 12 -> 6 -> 6, so the flattened features are 128 x 6 x 6 = 4608. As the notebook
    initialises it: convolutions ``kernel_initializer='he_normal'`` (`keras_he_normal_`, the
    truncated normal with Keras' corrected scale: the authors' saved models carry
    ``keras_version`` 2.2.4), the Dense layers Keras' default ``glorot_uniform``, every bias
    zero, and ``BatchNormalization()`` at Keras' defaults, ``epsilon=1e-3`` and
    ``momentum=0.99`` (PyTorch's ``momentum=0.01``: PyTorch weighs the new batch, Keras the
    running value). The final softmax lives in the loss, so ``head`` (Dense 10) outputs logits
    and its input is what the authors' ``K.function(..., [model.layers[-2].output])`` read for
    Kz: the last Dropout's output (the BatchNorm output in inference mode).

    Differences that are PyTorch's, not the model's: features are flattened channels first
    (Keras flattens channels last; with i.i.d. initial weights the two networks have the same
    distribution), and PyTorch's running variance uses ``n / (n - 1)`` where Keras 2.2.4 uses
    ``n / (n - 1 - epsilon)``.

    >>> model = PaperCNN()
    >>> count_parameters(model), sum(b.numel() for b in model.buffers() if b.dim())
    (730346, 256)
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, image_size: int = 28) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 32, 3),
            nn.ReLU(),
            nn.Conv2d(32, 32, 3),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Dropout(0.2),
            nn.Conv2d(32, 64, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(64, 64, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Dropout(0.25),
            nn.Conv2d(64, 128, 3, padding=1),
            nn.ReLU(),
            nn.Dropout(0.25),
            nn.Flatten(),
        )
        side = (image_size - 4) // 4
        self.hidden = nn.Sequential(
            nn.Linear(128 * side * side, 128),
            nn.ReLU(),
            nn.BatchNorm1d(128, eps=1e-3, momentum=0.01),
            nn.Dropout(0.25),
        )
        self.head = nn.Linear(128, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                keras_he_normal_(module.weight)
            elif isinstance(module, nn.Linear):
                keras_glorot_uniform_(module.weight)
            if isinstance(module, nn.Conv2d | nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.hidden(self.features(x)))  # type: ignore[no-any-return]


class _BasicBlock(nn.Module):
    """He et al.'s CIFAR basic block; the shortcut pads channels with zeros (option A)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.stride = stride
        self.extra_channels = out_channels - in_channels

    def forward(self, x: Tensor) -> Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = x
        if self.stride != 1 or self.extra_channels:
            shortcut = x[:, :, :: self.stride, :: self.stride]
            pad = self.extra_channels // 2
            shortcut = nn.functional.pad(shortcut, (0, 0, 0, 0, pad, self.extra_channels - pad))
        return torch.relu(out + shortcut)


class ResNet(nn.Module):
    """He et al.'s CIFAR residual network (2016, section 4.2), at any depth ``6 n + 2``: a 3x3
    conv stem (16 channels, BatchNorm, ReLU), three stages of ``n`` = ``blocks`` basic blocks
    (``widths`` channels, 16/32/64; the first block of stages 2 and 3 halves the image with
    stride 2 and widens the shortcut by zero channels, option A), global average pooling and
    a linear head. Every conv and linear weight He-normal (``kaiming_normal_``), BatchNorm at
    ``(1, 0)``.

    It runs on any image of at least 3x3: stride 2 twice takes 32x32 to 8x8, 28x28 to 7x7
    and 8x8 to 2x2 before the pooling, so the same network serves CIFAR-10, MNIST and
    scikit-learn's 8x8 digits. ``blocks=3`` is ResNet-20 (`ResNet20`); ``blocks=1``,
    ResNet-8 (75 k parameters), is the ``resnet`` model of the image tasks.

    >>> ResNet(10, 1, blocks=1)(torch.zeros(2, 1, 8, 8)).shape
    torch.Size([2, 10])
    """

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 3,
        *,
        blocks: int = 3,
        widths: tuple[int, int, int] = (16, 32, 64),
    ) -> None:
        super().__init__()
        check_int("ResNet", "blocks", blocks, minimum=1)
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(),
        )
        layers: list[nn.Module] = []
        channels = widths[0]
        for stage, width in enumerate(widths):
            for block in range(blocks):
                stride = 2 if stage > 0 and block == 0 else 1
                layers.append(_BasicBlock(channels, width, stride))
                channels = width
        self.blocks = nn.Sequential(*layers)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(channels, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d | nn.Linear):
                nn.init.kaiming_normal_(module.weight)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.pool(self.blocks(self.stem(x))))  # type: ignore[no-any-return]


class ResNet20(ResNet):
    """ResNet-20 for 32x32 images (He et al. 2016, section 4.2): `ResNet` with three basic
    blocks per stage (16, 32, 64 channels); 0.27 M parameters. The model of seed 004's
    CIFAR-10 experiment."""

    def __init__(self, num_classes: int = 10, in_channels: int = 3) -> None:
        super().__init__(num_classes, in_channels, blocks=3)


class Scalar(nn.Module):
    """One trainable scalar ``w``; ``forward`` returns it once per input row, shape (B, 1).

    With an MSE loss against targets of -1 this is seed 002's ``loss = (w + 1)^2``."""

    def __init__(self, initial: float) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor(float(initial)))

    def forward(self, x: Tensor) -> Tensor:
        return self.w.expand(x.shape[0], 1)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
