"""A single run's parameters as views of one flat tensor: an elementwise update rule then runs one
kernel per operation instead of one per parameter, with the same numbers. The vectorised groups
lay their stacked rows out the same way (`aligned_offsets`)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

# Bytes each parameter is aligned to inside a flat buffer: what PyTorch's CPU allocator gives a
# tensor of its own. BLAS kernels take other code paths (other summation orders) for
# misaligned operands, so a parameter must sit in the buffer as it would alone.
ALIGNMENT = 64


def aligned_offsets(numels: Sequence[int], element_size: int) -> tuple[list[int], int]:
    """Offsets (in elements) of tensors of ``numels`` elements packed one after another, each
    starting at a multiple of `ALIGNMENT` bytes, and the total size, padded likewise.

    >>> aligned_offsets([3, 16, 1], 4)
    ([0, 16, 32], 48)
    """
    step = max(1, ALIGNMENT // element_size)
    offsets, offset = [], 0
    for numel in numels:
        offsets.append(offset)
        offset += -(-numel // step) * step
    return offsets, offset


def flatten_parameters(params: Sequence[Tensor]) -> Tensor | None:
    """Make ``params`` views of one flat leaf tensor and their gradients views of its gradient;
    return that leaf, to give the optimizer in their place, or ``None`` when they cannot
    share one (mixed dtypes or devices, a frozen, sparse or non-float parameter).

    An elementwise update rule (every one in `OPTIMIZERS`, in torch's default implementation)
    computes on the flat tensor what it computes parameter by parameter, bit for bit, with one
    kernel per operation instead of one per parameter: Adam's step on seed 003's MLP takes
    about half the time. (torch's ``foreach`` implementation is the same work on one tensor;
    its CPU ``fused`` kernels round differently from the default for every registry rule with
    a state, and an element's rounding there depends on its position in the tensor, so they
    gain nothing that keeps the numbers.) Each parameter starts at a multiple of `ALIGNMENT`
    bytes, as a tensor of its own does; the padding between them stays zero. Backward
    accumulates into the gradient views in place, so clear the gradient with
    ``optimizer.zero_grad(set_to_none=False)`` (setting it to ``None`` would detach the views).

    >>> w, b = torch.ones(2, 3, requires_grad=True), torch.zeros(3, requires_grad=True)
    >>> flat = flatten_parameters([w, b])
    >>> flat.shape, w.data_ptr() - flat.data_ptr(), b.data_ptr() - flat.data_ptr()
    (torch.Size([32]), 0, 64)
    """
    params = list(params)
    if not params or any(
        not p.requires_grad or p.is_sparse or not p.is_floating_point() for p in params
    ):
        return None
    if len({(p.dtype, p.device) for p in params}) > 1:
        return None
    first = params[0]
    offsets, size = aligned_offsets([p.numel() for p in params], first.element_size())
    flat = torch.nn.Parameter(torch.zeros(size, dtype=first.dtype, device=first.device))
    flat.grad = torch.zeros_like(flat)
    with torch.no_grad():
        for p, offset in zip(params, offsets, strict=True):
            block = slice(offset, offset + p.numel())
            flat.data[block].copy_(p.reshape(-1))
            p.data = flat.data[block].view_as(p)
            p.grad = flat.grad[block].view_as(p)
    return flat
