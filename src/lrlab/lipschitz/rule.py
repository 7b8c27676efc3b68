"""From per-batch activation statistics to a learning rate: the part of LipschitzLR that needs
no framework, shared by `lrlab.LipschitzLR` (PyTorch) and
``lrlab.keras_adapter.LipschitzLRCallback`` (Keras 3).

Statistics come as ``columns[c][j]``, statistic ``c`` of batch ``j`` (`COLUMNS` order: sample
count ``m``, ``||A||_F^2``, ``sum A^4``, ``||a_L||_F^2``, ``||y||_F^2``), with the batches'
``||[A, 1]||_2^2`` beside them when the spectral norm is wanted. The formulas are
`lrlab.lipschitz.bounds`'; the EMAs of the variants live here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from lrlab.lipschitz.bounds import (
    Loss,
    checked_rate,
    paper_constant,
    paper_second_moment,
    smooth_constant,
)
from lrlab.lipschitz.options import LipschitzOptions

# Column indices of the per-batch statistics.
M, A2, A4, OUT2, Y2 = range(5)
COLUMNS = 5
# The authors' Adam/RMSprop variants add Keras' K.epsilon() to sqrt(K2).
KERAS_EPSILON = 1e-7


@dataclass
class Rule:
    """LipschitzLR's settings and running state (``k1``, ``k2``): see `lrlab.LipschitzLR` for
    what each option means. ``beta2`` must be resolved (0.999 for Adam, 0.9 for RMSprop)."""

    loss: Loss
    bound: str
    variant: str
    scale: float
    l2: float
    max_lr: float | None
    beta: float
    beta2: float
    initial_lr: float
    k1_start: str
    k1: float = 0.0  # the EMA of K (adamo, adam)
    k2: float = 0.0  # the EMA of the second-moment term (adam, rmsprop)

    @classmethod
    def of(cls, options: LipschitzOptions, l2: float) -> Rule:
        """The rule of ``options`` (whose ``loss`` must be known by now) with the L2
        coefficient ``l2`` resolved."""
        if options.loss is None:
            raise ValueError("LipschitzLR: loss must be cross_entropy, bce or mse, got loss=None")
        return cls(
            options.loss,
            options.bound,
            options.variant,
            options.scale,
            float(l2),
            options.max_lr,
            options.beta,
            options.beta2_resolved,
            options.initial_lr,
            options.k1_start,
        )

    def start(self) -> float | None:
        """AdaMo's epoch 0: K1 = x (``k1_start="paper"``) or 1 / x, and the LR x; ``None``
        for the other variants, whose first LR comes from K.

        >>> options = LipschitzOptions(loss="cross_entropy", bound="paper", variant="adamo")
        >>> rule = Rule.of(options, l2=0.0)
        >>> rule.start(), rule.k1
        (0.1, 0.1)
        """
        if self.variant != "adamo":
            return None
        self.k1 = self.initial_lr if self.k1_start == "paper" else 1.0 / self.initial_lr
        return self.initial_lr

    def rate(
        self,
        columns: list[list[float]],
        spectral: list[float] | None,
        *,
        classes: int,
        max_weight: float,
        record: dict[str, float],
    ) -> float:
        """K (or L), the variant's EMAs and the LR; writes ``kz``, ``K``, ``K1``, ``K2`` and
        ``lr`` into ``record``. ``max_weight`` is the largest Frobenius norm of the weight
        tensors (used when ``l2 > 0``)."""
        m = columns[M]
        kz = math.sqrt(max(columns[A2]))
        record["kz"] = kz
        if self.bound == "paper":
            constant = paper_constant(
                self.loss,
                kz=kz,
                m=int(max(m)),
                classes=classes,
                l2=self.l2,
                max_weight=max_weight,
                ka=math.sqrt(max(columns[OUT2])),
                y_norm=math.sqrt(max(columns[Y2])),
            )
        else:
            squares = spectral or [a2 + mj for a2, mj in zip(columns[A2], m, strict=True)]
            constant = max(
                smooth_constant(self.loss, sq_norm=sq, m=int(mj), outputs=classes, l2=self.l2)
                for sq, mj in zip(squares, m, strict=True)
            )
        record["K"] = constant
        if self.variant == "sgd":
            lr = checked_rate(constant, scale=self.scale, max_lr=self.max_lr, what="K")
        elif self.variant == "adamo":
            self.k1 = self.beta * self.k1 + (1 - self.beta) * constant
            record["K1"] = self.k1
            lr = checked_rate(self.k1, scale=self.scale, max_lr=self.max_lr, what="K1")
        else:
            s = math.sqrt(max(columns[A4]))
            lr = self._second_moment_rate(s, constant, kz, int(max(m)), classes, max_weight, record)
        record["lr"] = lr
        return lr

    def _second_moment_rate(
        self,
        s: float,
        constant: float,
        kz: float,
        m: int,
        classes: int,
        max_weight: float,
        record: dict[str, float],
    ) -> float:
        """The authors' Adam (``(sqrt(K2) + eps) / K1``) and RMSprop (``(sqrt(K2) + eps) / Kz``)
        rates, EMAs starting at 0 without bias correction, as their code runs (``MNIST/
        MNIST_Adam.ipynb``); ``s`` is ``||A o A||_F``."""
        second = paper_second_moment(
            s=s, kz=kz, m=m, classes=classes, l2=self.l2, max_weight=max_weight
        )
        self.k2 = self.beta2 * self.k2 + (1 - self.beta2) * second
        record["K2"] = self.k2
        if self.variant == "adam":
            self.k1 = self.beta * self.k1 + (1 - self.beta) * constant
            record["K1"] = self.k1
            denominator = self.k1
        else:
            denominator = kz
        scaled = (math.sqrt(self.k2) + KERAS_EPSILON) * self.scale
        return checked_rate(denominator, scale=scaled, max_lr=self.max_lr, what=self.variant)
