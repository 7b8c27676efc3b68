"""LipschitzLR's options, one typed object: the PyTorch scheduler (`lrlab.LipschitzLR`), the
engine's controller (the ``lipschitz(...)`` spec) and the Keras callback
(``lrlab.keras_adapter.LipschitzLRCallback``) all take a `LipschitzOptions`, so each option is
named, typed, defaulted and checked in one place. No framework import here.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any, Literal

from lrlab.lipschitz.bounds import LOSSES, Loss
from lrlab.validate import ArgumentTypeError, check_choice, check_number

Bound = Literal["paper", "smooth"]
Every = Literal["epoch", "batch"]
Source = Literal["eval", "train"]
Norm = Literal["frobenius", "spectral"]
Variant = Literal["sgd", "adamo", "adam", "rmsprop"]
K1Start = Literal["paper", "inverse"]


@dataclass(frozen=True)
class LipschitzOptions:
    """What LipschitzLR computes and when (see `lrlab.LipschitzLR` for the method).

    - ``loss``: the bound's loss kind (``cross_entropy``, ``bce``, ``mse``); ``None`` where
      the caller supplies it (the engine takes the task's).
    - ``bound``: ``"smooth"`` (the final layer's smoothness constant, a provable descent step
      for that layer) or ``"paper"`` (the published constant, as its authors' code computes
      it).
    - ``every``/``source``: ``"epoch"`` with ``"eval"`` (a fresh pass over the data each epoch,
      the paper), ``"epoch"`` with ``"train"`` (the previous epoch's training batches, no extra
      pass) or ``"batch"`` (each training batch; the source is then ``"train"``).
    - ``scale``: the LR is ``scale / K``. ``l2``: lambda of a ``(lambda / 2) ||w||^2`` term
      (``None``: the optimizer's ``weight_decay``). ``norm``: ``"frobenius"`` (an upper bound,
      fast) or ``"spectral"`` (exact; ``bound="smooth"`` only). ``max_lr``: clamp a K <= 0
      or an LR above it to ``max_lr`` (``None``: refuse them).
    - ``variant``: ``"sgd"``; ``"adamo"`` (the paper's momentum variant: ``initial_lr`` at
      epoch 0, then an EMA ``K1`` of K with ``beta``; ``k1_start`` is K1 during epoch 0,
      ``"paper"`` = x as the authors' code does, ``"inverse"`` = 1 / x); ``"adam"`` and
      ``"rmsprop"`` (EMAs of a second-moment bound with ``beta2``, default 0.999 for Adam and
      0.9 for RMSprop; ``bound="paper"`` with cross-entropy, behind ``experimental=True``).
    - ``head``: the name of the module whose input activations are watched (``None``: the
      model's final ``nn.Linear``, or the Keras model's last ``Dense``).

    Every value is checked when the object is made, with a one-line ``ValueError`` naming
    the option; a spec is therefore refused before a sweep starts.

    >>> LipschitzOptions(bound="paper", every="batch").source
    'train'
    >>> LipschitzOptions(scale=0)
    Traceback (most recent call last):
    ...
    ValueError: LipschitzLR: scale must be > 0, got scale=0
    """

    loss: Loss | None = None
    bound: Bound = "smooth"
    every: Every = "epoch"
    source: Source = "eval"
    scale: float = 1.0
    l2: float | None = None
    norm: Norm = "frobenius"
    max_lr: float | None = None
    variant: Variant = "sgd"
    beta: float = 0.9
    beta2: float | None = None
    initial_lr: float = 0.1
    k1_start: K1Start = "paper"
    experimental: bool = False
    head: str | None = None

    def __post_init__(self) -> None:
        loss, bound, variant = self.loss, self.bound, self.variant
        if loss is not None:
            _choice("loss", loss, LOSSES)
        _choice("bound", bound, ("paper", "smooth"))
        _choice("every", self.every, ("epoch", "batch"))
        _choice("source", self.source, ("eval", "train"))
        _choice("norm", self.norm, ("frobenius", "spectral"))
        _choice("variant", variant, ("sgd", "adamo", "adam", "rmsprop"))
        _choice("k1_start", self.k1_start, ("paper", "inverse"))
        _positive("scale", self.scale)
        _positive("initial_lr", self.initial_lr)
        if self.max_lr is not None:
            _positive("max_lr", self.max_lr)
        l2 = self.l2
        if l2 is not None and not (_is_number(l2) and math.isfinite(l2) and l2 >= 0):
            raise ValueError(f"LipschitzLR: l2 must be a finite number >= 0, got l2={l2!r}")
        if not (_is_number(self.beta) and 0 <= self.beta < 1):
            raise ValueError(f"LipschitzLR: beta must be in [0, 1), got beta={self.beta!r}")
        beta2 = self.beta2
        if beta2 is not None and not (_is_number(beta2) and 0 <= beta2 < 1):
            raise ValueError(f"LipschitzLR: beta2 must be in [0, 1), got beta2={beta2!r}")
        if not isinstance(self.experimental, bool):
            raise ValueError(
                "LipschitzLR: experimental must be true or false, "
                f"got experimental={self.experimental!r}"
            )
        if self.head is not None and not isinstance(self.head, str):
            raise ArgumentTypeError(
                f"LipschitzLR: head must be a module's name, got head={self.head!r}"
            )
        if self.every == "batch":  # a batch's K comes from that training batch by definition
            object.__setattr__(self, "source", "train")
        if bound == "paper" and self.norm == "spectral":
            raise ValueError(
                "LipschitzLR: bound=paper uses the Frobenius norm (as published); "
                "norm=spectral needs bound=smooth"
            )
        if bound == "paper" and loss == "mse" and self.source != "eval":
            raise ValueError(
                "LipschitzLR: the paper's MSE bound needs ||y||, which only a pass "
                "over data sees; use every=epoch, source=eval, or bound=smooth"
            )
        if variant in ("adam", "rmsprop"):
            if not self.experimental:
                raise ValueError(
                    f"LipschitzLR: variant={variant} is experimental (it diverged "
                    "on ResNets in the paper); pass experimental=True to use it"
                )
            if bound != "paper" or (loss is not None and loss != "cross_entropy"):
                raise ValueError(
                    f"LipschitzLR: variant={variant} is defined for bound=paper "
                    f"with cross_entropy only, got bound={bound}, loss={loss}"
                )

    @classmethod
    def of(cls, options: LipschitzOptions | None = None, /, **changes: Any) -> LipschitzOptions:
        """``options`` (default: the defaults) with ``changes``, each a field's name: an
        unknown name is a one-line ``ValueError`` that suggests the closest one."""
        if options is not None and not isinstance(options, LipschitzOptions):
            raise ArgumentTypeError(
                f"LipschitzLR: options must be a LipschitzOptions, got options={options!r}"
            )
        problem = unknown_option(changes)
        if problem is not None:
            raise ValueError(f"LipschitzLR: {problem}")
        return replace(options or cls(), **changes)

    @property
    def beta2_resolved(self) -> float:
        """``beta2``, or its default for the variant (0.999 for Adam, else 0.9)."""
        if self.beta2 is not None:
            return self.beta2
        return 0.999 if self.variant == "adam" else 0.9

    def given(self) -> Mapping[str, Any]:
        """The options that differ from their defaults (what a spec needs to say)."""
        return {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if getattr(self, f.name) != f.default
        }


#: The options' names, in order.
OPTIONS: tuple[str, ...] = tuple(f.name for f in fields(LipschitzOptions))


def unknown_option(names: Iterable[str]) -> str | None:
    """Why ``names`` are not all options (the first that is not, with the closest option
    suggested), or ``None``.

    >>> unknown_option(["bound", "bund"]).split(";")[0]
    "unknown argument 'bund' (did you mean 'bound'?)"
    """
    for name in names:
        if name not in OPTIONS:
            close = difflib.get_close_matches(name, OPTIONS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            return f"unknown argument {name!r}{hint}; expected one of {', '.join(OPTIONS)}"
    return None


def _choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    check_choice("LipschitzLR", name, value, choices)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _positive(name: str, value: object) -> None:
    check_number("LipschitzLR", name, value, positive=True)
