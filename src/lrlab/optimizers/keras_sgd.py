"""`KerasSGD`: momentum in Keras' (and the seeds') form, the one update rule of the source
documents that ``torch.optim`` lacks."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer

from lrlab.validate import check_bool, check_number


class KerasSGD(Optimizer):
    """SGD with momentum in Keras' (and the seeds') form, the LR inside the velocity:

    ``v = momentum * v - lr * g;  w = w + v``  (``nesterov``: ``w = w + momentum * v - lr * g``),

    with ``v = 0`` at the start and ``g`` the gradient plus ``weight_decay * w``. This is
    Keras 2's ``SGD(momentum=..., nesterov=...)`` and seed 003's ``Momentum``; ``torch.optim.SGD``
    keeps the LR outside its buffer (``b = mu b + g; w -= lr b``), which differs once the LR
    changes during training.
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float = 0.01,
        momentum: float = 0.9,
        nesterov: bool = False,
        weight_decay: float = 0.0,
    ) -> None:
        check_number("KerasSGD", "lr", lr, nonnegative=True)
        check_number("KerasSGD", "momentum", momentum, nonnegative=True)
        check_number("KerasSGD", "weight_decay", weight_decay, nonnegative=True)
        check_bool("KerasSGD", "nesterov", nesterov)
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "nesterov": nesterov,
            "weight_decay": weight_decay,
        }
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            grads: list[Tensor] = [p.grad for p in params if p.grad is not None]
            if group["weight_decay"]:
                grads = list(torch._foreach_add(grads, params, alpha=group["weight_decay"]))
            velocities = []
            for p in params:
                state = self.state[p]
                if "velocity" not in state:
                    state["velocity"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                velocities.append(state["velocity"])
            lr, mu = group["lr"], group["momentum"]
            torch._foreach_mul_(velocities, mu)
            torch._foreach_add_(velocities, grads, alpha=-lr)
            if group["nesterov"]:
                torch._foreach_add_(params, velocities, alpha=mu)
                torch._foreach_add_(params, grads, alpha=-lr)
            else:
                torch._foreach_add_(params, velocities)
        return loss
