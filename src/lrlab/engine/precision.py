"""The arithmetic a training step runs in: `RunConfig.precision`.

- ``"fp32"``: everything in float32 (the default).
- ``"bf16"``: the forward pass and the loss under ``torch.autocast(device, dtype=bfloat16)``
  (PyTorch's automatic mixed precision: matrix products and convolutions in bfloat16, losses,
  softmax and reductions in float32, as autocast's op lists say); the weights, gradients and
  optimizer state stay float32 and the backward pass follows the forward's dtypes. bfloat16
  keeps float32's exponent range, so no loss scaling is needed (unlike float16). Held-out
  evaluation runs in float32: the metrics are those of the float32 weights.
"""

from __future__ import annotations

import contextlib

import torch

from lrlab.validate import check_choice

#: The precisions a run may ask for, the default first.
PRECISIONS: tuple[str, ...] = ("fp32", "bf16")


def check_precision(owner: str, value: object) -> str:
    """``value``, checked: one of `PRECISIONS`."""
    return check_choice(owner, "precision", value, PRECISIONS)


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager[object]:
    """The context a forward pass and its loss run in: autocast to bfloat16 on ``device``'s
    type for ``"bf16"``, nothing for ``"fp32"``."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
