"""Reduce-on-plateau as plain Python: the rule, its state machine and a preview. No torch.

The decisions are PyTorch's ``ReduceLROnPlateau`` (``torch/optim/lr_scheduler.py``, torch 2.13)
line for line: at each epoch end, a metric better than ``best`` by more than the threshold
resets the count of bad epochs, any other value (NaN included) adds one; an epoch in cooldown
counts down and clears the bad count; more than ``patience`` bad epochs multiply every LR by
``factor`` (never below ``min_lr``, and not at all when the change is ``eps`` or less) and start
``cooldown``. lrlab adds a linear warmup before it, which PyTorch's ``SequentialLR`` cannot put
in front of ``ReduceLROnPlateau``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from lrlab.record import EpochStats
from lrlab.schedules.base import (
    call_spec,
    check_choice,
    check_int,
    check_number,
    freeze,
)
from lrlab.validate import ArgumentTypeError, check_lr, check_state

MODES = ("min", "max")
THRESHOLD_MODES = ("rel", "abs")
MONITORS = ("metric", "loss")


@dataclass(frozen=True)
class Plateau:
    """The ``plateau(...)`` spec: ``ReduceLROnPlateau``'s arguments, plus where the metric comes
    from and an optional warmup.

    - ``lr``: the initial LR (the optimizer's base LR when the run gives none); ``None``
      leaves it to ``--lr`` / ``--lr-grid`` or the optimizer's default.
    - ``mode``: ``min`` or ``max``; ``None`` follows the monitored value: the task's metric
      direction for ``monitor=metric``, ``min`` for ``monitor=loss``.
    - ``monitor``: ``metric`` (the task's test metric, or train metric without a test set:
      what targets are judged on) or ``loss`` (the test loss, else the train loss).
    - ``factor``, ``patience``, ``threshold``, ``threshold_mode``, ``cooldown``, ``min_lr``
      (a number, or one per param group), ``eps``: PyTorch's, with PyTorch's defaults.
    - ``warmup``: steps of linear warmup from 0 to the initial LR before the plateau rule
      starts (the first metric it sees is that of the first epoch ending after the warmup).

    A better metric is ``a < best * (1 - threshold)`` (``min``, ``rel``), ``a < best -
    threshold`` (``min``, ``abs``), ``a > best * (1 + threshold)`` (``max``, ``rel``) or
    ``a > best + threshold`` (``max``, ``abs``); ``best`` starts at ``inf`` (``-inf``).

    >>> Plateau(factor=0.5, patience=2).spec()
    'plateau(factor=0.5, patience=2)'
    >>> Plateau(factor=1.0)
    Traceback (most recent call last):
    ...
    ValueError: plateau: factor must be < 1, got factor=1.0
    """

    lr: float | None = None
    mode: str | None = None
    monitor: str = "metric"
    factor: float = 0.1
    patience: int = 10
    threshold: float = 1e-4
    threshold_mode: str = "rel"
    cooldown: int = 0
    min_lr: float | Sequence[float] = 0.0
    eps: float = 1e-8
    warmup: float = 0
    name: ClassVar[str] = "plateau"

    def __post_init__(self) -> None:
        owner = self.name
        if self.lr is not None:
            check_lr(owner, self.lr)
        if self.mode is not None:
            check_choice(owner, "mode", self.mode, MODES)
        check_choice(owner, "monitor", self.monitor, MONITORS)
        check_number(owner, "factor", self.factor, positive=True)
        if not self.factor < 1:
            raise ValueError(f"{owner}: factor must be < 1, got factor={self.factor!r}")
        check_int(owner, "patience", self.patience, minimum=0)
        check_number(owner, "threshold", self.threshold, nonnegative=True)
        check_choice(owner, "threshold_mode", self.threshold_mode, THRESHOLD_MODES)
        check_int(owner, "cooldown", self.cooldown, minimum=0)
        if isinstance(self.min_lr, Sequence) and not isinstance(self.min_lr, str | bytes):
            if not self.min_lr:
                raise ValueError(f"{owner}: min_lr must not be an empty list, got min_lr=[]")
            values = tuple(
                check_number(owner, f"min_lr[{i}]", v, nonnegative=True)
                for i, v in enumerate(self.min_lr)
            )
            freeze(self, min_lr=values)
        else:
            check_number(owner, "min_lr", self.min_lr, nonnegative=True)
        check_number(owner, "eps", self.eps, nonnegative=True)
        check_number(owner, "warmup", self.warmup, nonnegative=True)
        if self.lr is not None:
            floors = self.min_lr if isinstance(self.min_lr, tuple) else (self.min_lr,)
            check_floors(owner, list(floors), [self.lr] * len(floors))

    def spec(self) -> str:
        """This rule in the spec language (``plateau(...)``), defaults left out."""
        return call_spec(self.name, self)

    def resolved(self, higher_is_better: bool | None) -> Plateau:
        """This rule with ``mode`` filled in: ``mode`` if given, else ``min`` for
        ``monitor=loss``, else the metric's direction (``higher_is_better``)."""
        if self.mode is not None:
            return self
        if self.monitor == "loss":
            return dataclasses.replace(self, mode="min")
        if higher_is_better is None:
            raise ValueError(
                f"{self.name}: mode must be given (min or max) when the metric's direction is "
                "unknown, got mode=None"
            )
        return dataclasses.replace(self, mode="max" if higher_is_better else "min")

    @property
    def worst(self) -> float:
        """The starting ``best``: ``inf`` for ``min``, ``-inf`` for ``max``."""
        return math.inf if self._mode == "min" else -math.inf

    def is_better(self, a: float, best: float) -> bool:
        """Whether ``a`` improves on ``best`` by more than the threshold (PyTorch's
        ``_is_better``; any comparison with NaN is false)."""
        if self._mode == "min" and self.threshold_mode == "rel":
            return a < best * (1.0 - self.threshold)
        if self._mode == "min":
            return a < best - self.threshold
        if self.threshold_mode == "rel":
            return a > best * (self.threshold + 1.0)
        return a > best + self.threshold

    def min_lrs(self, groups: int) -> list[float]:
        """``min_lr`` for each of ``groups`` param groups."""
        if isinstance(self.min_lr, tuple):
            if len(self.min_lr) != groups:
                raise ValueError(
                    f"{self.name}: min_lr must have one entry per param group ({groups}), "
                    f"got min_lr={list(self.min_lr)!r}"
                )
            return list(self.min_lr)
        return [float(self.min_lr)] * groups  # type: ignore[arg-type]

    @property
    def _mode(self) -> str:
        if self.mode is None:
            raise ValueError(f"{self.name}: mode is not resolved yet, got mode=None")
        return self.mode


def check_floors(owner: str, min_lrs: Sequence[float], lrs: Sequence[float]) -> None:
    """Refuse a ``min_lr`` above the LR it would floor: the rule could never reduce that LR
    (``max(lr * factor, min_lr)`` would raise it), so the spec says something it cannot do."""
    for i, (floor, lr) in enumerate(zip(min_lrs, lrs, strict=True)):
        if floor > lr:
            where = f" of param group {i}" if len(lrs) > 1 else ""
            raise ValueError(
                f"{owner}: min_lr must be at most the LR{where} it floors, got min_lr={floor!r} "
                f"above lr={lr!r}"
            )


def reduce_lr(lr: float, factor: float, min_lr: float, eps: float) -> float:
    """One reduction: ``max(lr * factor, min_lr)``, unless that changes ``lr`` by ``eps`` or
    less (then ``lr``), as PyTorch's ``_reduce_lr``.

    >>> reduce_lr(0.1, 0.5, 0.0, 1e-8), reduce_lr(0.1, 0.5, 0.08, 1e-8)
    (0.05, 0.08)
    >>> reduce_lr(1e-9, 0.5, 0.0, 1e-8)  # a change of 5e-10 <= eps: none
    1e-09
    """
    new = max(lr * factor, min_lr)
    return new if lr - new > eps else lr


#: What `PlateauState.state_dict` holds besides the rule's spec.
STATE_KEYS = (
    "best",
    "num_bad_epochs",
    "cooldown_counter",
    "last_epoch",
    "updates",
    "base_lrs",
    "lrs",
)


class PlateauState:
    """The plateau rule's state over plain floats: PyTorch's counters (``best``,
    ``num_bad_epochs``, ``cooldown_counter``, ``last_epoch``), the updates done (for the
    warmup) and the plateau's current LR per param group.

    `lrs_now` gives the LRs for the next update, `update_done` counts an update and `observe`
    takes an epoch-end metric (ignored until the warmup is over).

    >>> state = PlateauState(Plateau(mode="min", factor=0.5, patience=1), [1.0])
    >>> [(state.observe(m), state.lrs_now()[0]) for m in (3.0, 3.0, 3.0, 2.0, 2.5, 2.5)]
    [(False, 1.0), (False, 1.0), (True, 0.5), (False, 0.5), (False, 0.5), (True, 0.25)]
    """

    def __init__(self, rule: Plateau, base_lrs: Sequence[float]) -> None:
        self.rule = rule
        self.best = rule.worst  # also checks that the mode is resolved
        self.base_lrs = [float(lr) for lr in base_lrs]
        self.min_lrs = rule.min_lrs(len(self.base_lrs))
        check_floors(rule.name, self.min_lrs, self.base_lrs)
        self.lrs = list(self.base_lrs)
        self.num_bad_epochs = 0
        self.cooldown_counter = 0
        self.last_epoch = 0
        self.updates = 0

    @property
    def warming_up(self) -> bool:
        return self.updates < self.rule.warmup

    def lrs_now(self) -> list[float]:
        """The LRs for the next update: ``base * updates / warmup`` during the warmup, then the
        plateau's."""
        if self.warming_up:
            return [base * self.updates / self.rule.warmup for base in self.base_lrs]
        return list(self.lrs)

    def update_done(self) -> None:
        self.updates += 1

    def observe(self, metric: float) -> bool:
        """An epoch ends with ``metric``: PyTorch's ``ReduceLROnPlateau.step(metric)``. Returns
        whether the LRs were reduced (``False`` during the warmup, which ignores metrics)."""
        if self.warming_up:
            return False
        rule = self.rule
        current = float(metric)
        self.last_epoch += 1
        if rule.is_better(current, self.best):
            self.best = current
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0  # bad epochs in cooldown do not count
        if self.num_bad_epochs > rule.patience:
            self.lrs = [
                reduce_lr(lr, rule.factor, floor, rule.eps)
                for lr, floor in zip(self.lrs, self.min_lrs, strict=True)
            ]
            self.cooldown_counter = rule.cooldown
            self.num_bad_epochs = 0
            return True
        return False

    def state_dict(self) -> dict[str, Any]:
        """Plain data (floats, ints, lists, a string): the rule's spec and every counter."""
        return {
            "rule": self.rule.spec(),
            "best": self.best,
            "num_bad_epochs": self.num_bad_epochs,
            "cooldown_counter": self.cooldown_counter,
            "last_epoch": self.last_epoch,
            "updates": self.updates,
            "base_lrs": list(self.base_lrs),
            "lrs": list(self.lrs),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what `state_dict` returned (the rule stays this object's); a state that is
        not one (a key missing, a counter below 0, LRs that are not one number >= 0 per param
        group) is a one-line error, and nothing is changed."""
        owner = self.rule.name
        check_state(owner, state, STATE_KEYS)
        for key in ("num_bad_epochs", "cooldown_counter", "last_epoch", "updates"):
            check_int(owner, key, state[key], minimum=0)
        best = state["best"]
        if not isinstance(best, int | float) or isinstance(best, bool) or math.isnan(best):
            raise ArgumentTypeError(f"{owner}: best must be a number, got best={best!r}")
        for key in ("base_lrs", "lrs"):
            values = state[key]
            if isinstance(values, str | bytes) or not isinstance(values, Sequence):
                raise ArgumentTypeError(
                    f"{owner}: {key} must be a list of LRs, got {key}={values!r}"
                )
            for i, value in enumerate(values):
                check_number(owner, f"{key}[{i}]", value, nonnegative=True)
        if len(state["lrs"]) != len(self.lrs) or len(state["base_lrs"]) != len(self.lrs):
            raise ValueError(
                f"{self.rule.name}: the state has {len(state['lrs'])} param groups, this "
                f"optimizer {len(self.lrs)}"
            )
        self.best = float(state["best"])
        self.num_bad_epochs = int(state["num_bad_epochs"])
        self.cooldown_counter = int(state["cooldown_counter"])
        self.last_epoch = int(state["last_epoch"])
        self.updates = int(state["updates"])
        self.base_lrs = [float(lr) for lr in state["base_lrs"]]
        self.lrs = [float(lr) for lr in state["lrs"]]


def monitored(monitor: str, stats: EpochStats) -> float:
    """The value the rule watches at an epoch end: the validation metric (``metric``) or
    loss (``loss``), else, for a run without a validation split, the training one; NaN when
    there is none. Never the test split: what decides the LR must not see what scores it."""
    if monitor == "metric":
        value = stats.val_metric if stats.val_loss is not None else stats.train_metric
    else:
        value = stats.val_loss if stats.val_loss is not None else stats.train_loss
    return math.nan if value is None else float(value)


def plateau_lrs(
    rule: Plateau, metrics: Sequence[float], *, lr: float, steps_per_epoch: int | None = None
) -> list[float]:
    """The LRs the rule (mode resolved) would set given one metric per epoch, starting from
    ``lr``: one per epoch (the LR of its updates) without ``steps_per_epoch``, else one per step
    over ``len(metrics)`` epochs. A warmup counts steps, so it needs ``steps_per_epoch``.

    >>> plateau_lrs(Plateau(mode="max", factor=0.5, patience=0), [0.5, 0.6, 0.6, 0.7], lr=1.0)
    [1.0, 1.0, 1.0, 0.5]
    >>> plateau_lrs(Plateau(mode="min", warmup=4), [1.0, 1.0], lr=1.0, steps_per_epoch=3)
    [0.0, 0.25, 0.5, 0.75, 1.0, 1.0]
    """
    if steps_per_epoch is None and rule.warmup:
        raise ValueError(
            f"{rule.name}: warmup counts steps, so a preview needs steps_per_epoch, "
            f"got warmup={rule.warmup!r} and steps_per_epoch=None"
        )
    state = PlateauState(rule, [lr])
    lrs = []
    for metric in metrics:
        for _ in range(steps_per_epoch or 1):
            lrs.append(state.lrs_now()[0])
            state.update_done()
        state.observe(metric)
    return lrs
