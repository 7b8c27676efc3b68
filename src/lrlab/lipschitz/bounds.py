"""The constants LipschitzLR turns into a learning rate, as plain functions of batch statistics.

Notation: a batch of ``m`` samples reaches the final ``nn.Linear`` (``k`` outputs) as the
``m x d`` activation matrix ``A``; ``[A, 1]`` appends the bias column.

``bound="paper"`` (Yedida & Saha 2019, as the authors' code runs it): a Lipschitz constant *K*
of the loss, with ``Kz = ||A||_F`` (largest over the batches seen):

- softmax cross-entropy: ``K = (k - 1) Kz / (k m)``
- sigmoid binary cross-entropy: ``K = Kz / (2 m)``
- MSE, ``E = ||a_L - y||^2 / (2m)``: ``K = (K_a - ||y||) Kz / m``, ``K_a`` bounding ``||a_L||``
- an L2 term ``(lambda / 2) ||w||^2`` adds ``lambda * max ||w||_F`` over the weight tensors

and LR = 1 / K. These are *not* true bounds: the cross-entropy and BCE "maxima" are taken at a
uniform softmax / sigmoid (the gradient's factor ``p - y`` can reach ``sqrt(2)``, not
``(k - 1) / k``), the MSE bound has the wrong sign (the triangle inequality gives
``K_a + ||y||``, and ``K_a - ||y||`` can be zero or negative), and 1 / (Lipschitz constant of
the loss) is not the classical descent step, which is 1 / (Lipschitz constant of the
*gradient*). They are kept exactly as published, so the paper's numbers can be reproduced.

``bound="smooth"``: the smoothness constant *L* of the loss as a function of the final layer's
weight and bias, given ``A`` (the Hessian with respect to them is
``(1/m) sum_i (a_i a_i^T) (x) H_i`` with ``H_i`` the loss's Hessian in the logits), matched to
PyTorch's mean reductions:

- ``cross_entropy`` (mean over ``m``): ``||H_i||_2 <= 1/2`` so ``L <= ||[A, 1]||_2^2 / (2 m)``
- ``binary_cross_entropy_with_logits`` (mean over ``m k``): ``sigma (1 - sigma) <= 1/4`` so
  ``L <= ||[A, 1]||_2^2 / (4 m k)``
- ``mse_loss`` (mean over ``m k``, no 1/2): ``L = 2 ||[A, 1]||_2^2 / (m k)``, exactly
- an L2 term ``(lambda / 2) ||w||^2`` (PyTorch's ``weight_decay=lambda``) adds ``lambda``

and LR = scale / L. What that guarantees, exactly: for the batch whose ``A`` L was computed
from, a gradient step of size ``scale / L`` (``scale <= 1``) on the final layer's weight and
bias does not increase that batch's loss as a function of those parameters with ``A`` held
fixed (the descent lemma). ``A`` is what the head received in that forward pass: after
dropout's masks and ``1 / (1 - p)`` scaling and batch norm's statistics, which is why
LipschitzLR measures it in training mode. Nothing is guaranteed for another batch, for the
same batch after the lower layers move, or for the lower layers' own steps. Keras' clipped
cross-entropy (``keras_cross_entropy``) has this gradient wherever it does not clip and none
where it does, so it is bounded as ``cross_entropy``, but it is not smooth at the clip.
``||[A, 1]||_2`` is the spectral norm; the Frobenius norm bounds it from above, so using it
keeps L a true upper bound (on ReLU activations the two differ by about 10%, and Frobenius
costs 1/40 as much).
"""

from __future__ import annotations

import math
from typing import Literal

Loss = Literal["cross_entropy", "bce", "mse"]
LOSSES: tuple[Loss, ...] = ("cross_entropy", "bce", "mse")


def paper_constant(
    loss: Loss,
    *,
    kz: float,
    m: int,
    classes: int,
    l2: float = 0.0,
    max_weight: float = 0.0,
    ka: float = 0.0,
    y_norm: float = 0.0,
) -> float:
    """The paper's K for one update: the loss term plus ``l2 * max_weight``.

    ``kz`` is ``||A||_F``, ``m`` the batch size, ``classes`` the number of outputs ``k``;
    ``ka`` and ``y_norm`` (``||a_L||_F`` and ``||y||_F``) are used by MSE only.

    The paper's check value: Kz 206.695, max||w|| 43.257, k 10, m 128, lambda 1e-3:

    >>> K = paper_constant("cross_entropy", kz=206.695, m=128, classes=10, l2=1e-3,
    ...                    max_weight=43.257)
    >>> round(K, 4), round(1 / K, 3)
    (1.4966, 0.668)
    >>> paper_constant("bce", kz=64.0, m=32, classes=1)
    1.0
    """
    if loss == "cross_entropy":
        term = (classes - 1) * kz / (classes * m)
    elif loss == "bce":
        term = kz / (2 * m)
    elif loss == "mse":
        term = (ka - y_norm) * kz / m
    else:
        raise ValueError(f"loss must be one of {', '.join(LOSSES)}, got loss={loss!r}")
    return term + l2 * max_weight


def smooth_constant(loss: Loss, *, sq_norm: float, m: int, outputs: int, l2: float = 0.0) -> float:
    """The smoothness constant L of the mean-reduced PyTorch loss in the final layer's weight
    and bias, given ``sq_norm = ||[A, 1]||^2`` (spectral, or Frobenius as an upper bound).

    >>> smooth_constant("cross_entropy", sq_norm=256.0, m=128, outputs=10)
    1.0
    >>> smooth_constant("bce", sq_norm=256.0, m=32, outputs=2)
    1.0
    >>> smooth_constant("mse", sq_norm=64.0, m=32, outputs=1, l2=0.5)
    4.5
    """
    if loss == "cross_entropy":
        term = sq_norm / (2 * m)
    elif loss == "bce":
        term = sq_norm / (4 * m * outputs)
    elif loss == "mse":
        term = 2 * sq_norm / (m * outputs)
    else:
        raise ValueError(f"loss must be one of {', '.join(LOSSES)}, got loss={loss!r}")
    return term + l2


def paper_second_moment(
    *, s: float, kz: float, m: int, classes: int, l2: float, max_weight: float
) -> float:
    """The authors' Adam/RMSprop second-moment term for softmax cross-entropy, with
    ``s = ||A o A||_F``: ``((k-1) / (k m))^2 S + 2 lambda max||w|| (k-1) Kz / (k m)``.

    >>> paper_second_moment(s=100.0, kz=10.0, m=1, classes=2, l2=0.0, max_weight=0.0)
    25.0
    """
    ratio = (classes - 1) / (classes * m)
    return ratio**2 * s + 2 * l2 * max_weight * ratio * kz


class NonPositiveBound(ValueError, ArithmeticError):
    """K came out ``<= 0`` and no ``max_lr`` clamps the LR: all-zero activations (a network
    whose ReLUs all died) or the paper's MSE sign error. A ``ValueError`` for the caller, and
    an ``ArithmeticError`` like a non-finite K, so a training loop can treat either as the run
    breaking down."""


def checked_rate(constant: float, *, scale: float, max_lr: float | None, what: str) -> float:
    """``scale / constant``, refusing what would be a silent NaN or infinite LR.

    A constant that is not finite is an error (the activations have blown up). A constant
    ``<= 0`` (all-zero activations without an L2 term, or the paper's MSE sign error), or a
    rate above ``max_lr``, gives ``max_lr`` when one is set and is an error otherwise.

    >>> checked_rate(2.0, scale=1.0, max_lr=None, what="K")
    0.5
    >>> checked_rate(0.0, scale=1.0, max_lr=3.0, what="K")
    3.0
    """
    if not math.isfinite(constant):
        raise FloatingPointError(
            f"LipschitzLR: {what} is {constant!r}: the final layer's input activations are not "
            "finite (the run has diverged)"
        )
    if constant <= 0:
        if max_lr is None:
            raise NonPositiveBound(
                f"LipschitzLR: {what} is {constant:.6g} <= 0 (all-zero activations, or the "
                "paper's MSE bound K_a - ||y|| turning negative); set max_lr to clamp the LR, "
                "or use bound=smooth"
            )
        return max_lr
    rate = scale / constant
    return min(rate, max_lr) if max_lr is not None else rate
