"""Optimizers whose weights for evaluation differ from those they train at (schedule-free
methods): ``optimizer.train()`` before training steps, ``optimizer.eval()`` before evaluating
or saving. The engine and the range test switch any optimizer with that protocol."""

from __future__ import annotations

from typing import Protocol, TypeGuard


class TrainEvalOptimizer(Protocol):
    """An optimizer whose weights for evaluation differ from those it trains at (schedule-free
    methods): ``train()`` before training steps, ``eval()`` before evaluating or saving."""

    def train(self) -> object: ...

    def eval(self) -> object: ...


def needs_train_eval(optimizer: object) -> TypeGuard[TrainEvalOptimizer]:
    """Whether ``optimizer`` has the ``train()``/``eval()`` protocol (callable ``train`` and
    ``eval`` attributes). Checked by shape, not by class, so any optimizer that adopts the
    protocol is honoured; ``torch.optim.Optimizer`` itself has neither method."""
    return callable(getattr(optimizer, "train", None)) and callable(
        getattr(optimizer, "eval", None)
    )


def set_optimizer_mode(optimizer: object, *, training: bool) -> None:
    """Put an optimizer with the ``train()``/``eval()`` protocol in training or evaluation
    mode (for schedule-free methods this moves the model's weights between the point
    gradients are taken at and the average that is evaluated); a no-op for any other."""
    if needs_train_eval(optimizer):
        if training:
            optimizer.train()
        else:
            optimizer.eval()
