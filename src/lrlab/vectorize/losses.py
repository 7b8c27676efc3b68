"""Losses and metrics of stacked members: tensors whose first dimension is the member.

Each function computes, member by member, what lrlab's one-run code computes on that member's
slice: `member_losses` is ``loss_function(kind)(outputs[i], targets[i])`` (PyTorch's mean
reduction), `member_metrics` is ``MetricSum(kind, loss).value()`` over every sample of a member.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.nn import functional

from lrlab.tasks.task import (
    KERAS_EPSILON,
    LossKind,
    MetricKind,
    MetricSum,
    keras_cross_entropy_per_sample,
)


def _per_sample(kind: LossKind, outputs: Tensor, targets: Tensor) -> Tensor:
    """Unreduced losses, shape ``(N, elements)``: one per sample (cross-entropy) or per output
    (MSE, BCE), which is what PyTorch's mean reduction averages over."""
    members = outputs.shape[0]
    if kind == "cross_entropy":
        classes = outputs.shape[-1]
        values = functional.cross_entropy(
            outputs.reshape(-1, classes), targets.reshape(-1), reduction="none"
        )
    elif kind == "keras_cross_entropy":
        values = keras_cross_entropy_per_sample(outputs, targets)
    elif kind == "bce":
        values = functional.binary_cross_entropy_with_logits(outputs, targets, reduction="none")
    elif kind == "mse":
        values = functional.mse_loss(outputs, targets, reduction="none")
    else:
        raise ValueError(f"loss must be cross_entropy, bce or mse, got loss={kind!r}")
    return values.reshape(members, -1)


def member_losses(kind: LossKind, outputs: Tensor, targets: Tensor) -> Tensor:
    """Each member's mean loss, shape ``(N,)``, differentiable."""
    return _per_sample(kind, outputs, targets).mean(1)


def losses_and_gradient(kind: LossKind, outputs: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
    """Each member's mean loss ``(N,)`` and its gradient with respect to the member's outputs,
    computed by the kernels autograd runs for one member's loss (the batched MLP path has no
    graph), so the gradient is bit for bit a run alone's:

    - cross-entropy over B samples: NLL's backward, ``-1/B`` at each target (PyTorch's
      ``-grad / total_weight``), through ``_log_softmax_backward_data``: ``(softmax - onehot)/B``
    - MSE over E = B k outputs: ``(2 / E) (a - y)`` (``mse_loss_backward``)
    - BCE with logits: ``(sigmoid(a) - y) / E``, the sigmoid taken member by member

    The loss values are mean reductions over each member's slice; their last bit may differ
    from PyTorch's one-member reduction (NLL sums in its own cascade order), which changes
    nothing else: the gradient does not read them.
    """
    if kind == "cross_entropy":
        members, batch, classes = outputs.shape
        log_probs = outputs.reshape(-1, classes).log_softmax(1)
        index = targets.reshape(-1, 1)
        losses = -log_probs.gather(1, index).view(members, batch).mean(1)
        upstream = torch.zeros_like(log_probs).scatter_(1, index, -1 / batch)
        gradient = torch._log_softmax_backward_data(upstream, log_probs, 1, log_probs.dtype)
        return losses, gradient.view(outputs.shape)
    if kind == "keras_cross_entropy":
        return member_losses(kind, outputs, targets), _keras_gradient(outputs, targets)
    elements = outputs[0].numel()
    losses = member_losses(kind, outputs, targets)
    if kind == "mse":
        return losses, (outputs - targets).mul_(2.0 / elements)
    if kind == "bce":
        # Member by member: an elementwise kernel rounds an element differently in its
        # vectorised body and its scalar tail, and which one an element falls in depends on
        # the tensor's length (sigmoid's two paths differ in the last bit).
        sigmoid = torch.stack([member.sigmoid() for member in outputs.unbind(0)])
        return losses, (sigmoid - targets).div_(elements)
    raise ValueError(f"loss must be cross_entropy, bce or mse, got loss={kind!r}")


def _keras_gradient(outputs: Tensor, targets: Tensor) -> Tensor:
    """The gradient of `keras_cross_entropy` (each member's mean over its B samples) with
    respect to the outputs, step by step as autograd takes it for one member, each step
    elementwise IEEE arithmetic or a per-row kernel (softmax and its backward), so bit for bit
    a run alone's: ``-1/B``, through ``log`` (``g / t``), the clip's mask, ``t = p_y / s``
    (``g / s`` to ``p_y``, ``-g (p_y / s) / s`` to every ``p``), then softmax's backward."""
    members, batch, classes = outputs.shape
    probabilities = torch.softmax(outputs.reshape(-1, classes), dim=-1)
    index = targets.reshape(-1, 1)
    true = probabilities.gather(1, index).squeeze(1)
    total = probabilities.sum(-1)
    ratio = true / total
    upstream = -(torch.ones_like(ratio) / batch)
    inside = (ratio >= KERAS_EPSILON) & (ratio <= 1 - KERAS_EPSILON)
    clipped = ratio.clamp(KERAS_EPSILON, 1 - KERAS_EPSILON)
    upstream = torch.where(inside, upstream / clipped, torch.zeros_like(upstream))
    to_probabilities = torch.zeros_like(probabilities).scatter_(
        1, index, (upstream / total).unsqueeze(1)
    )
    to_probabilities = to_probabilities + (-upstream * (ratio / total)).unsqueeze(1)
    gradient = torch._softmax_backward_data(to_probabilities, probabilities, 1, probabilities.dtype)
    return gradient.view(members, batch, classes)


def member_metrics(
    kind: MetricKind, loss: LossKind, outputs: Tensor, targets: Tensor
) -> list[float | None]:
    """`MetricSum(kind, loss).value()` of each member's samples (``outputs`` ``(N, M, ...)``).

    Accuracy is computed for all members at once (a count of hits over M in float64 is exact
    whatever the summation order; NaN for a member with a NaN output); the other metrics
    member by member with `MetricSum` itself, so every value is bit for bit a run alone's."""
    members = outputs.shape[0]
    if outputs.shape[1] == 0:
        return [None] * members
    if kind == "accuracy":
        if outputs.shape[-1] == 1:
            predicted = (outputs > 0).to(targets.dtype)
        else:
            predicted = outputs.argmax(dim=-1)
        hits = (predicted == targets).double().reshape(members, -1).mean(1).tolist()
        broken = outputs.reshape(members, -1).isnan().any(1).tolist()
        return [math.nan if nan else float(v) for v, nan in zip(hits, broken, strict=True)]
    values = []
    for member in range(members):
        metric = MetricSum(kind, loss)
        metric.add(outputs[member], targets[member])
        values.append(metric.value())
    return values
