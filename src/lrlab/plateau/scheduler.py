"""`PlateauLR`: reduce-on-plateau for a PyTorch optimizer, in your own training loop."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any, SupportsFloat

from torch import Tensor
from torch.optim import Optimizer

from lrlab.plateau.core import STATE_KEYS, Plateau, PlateauState
from lrlab.validate import ArgumentTypeError, check_state


class PlateauLR:
    """PyTorch's ``ReduceLROnPlateau``, decision for decision, after an optional linear warmup,
    with a plain-data state.

    The arguments are ``ReduceLROnPlateau``'s, with its defaults (see `lrlab.plateau.Plateau`
    for their meaning); each param group starts from its LR when the scheduler is built.
    ``step(metric)`` at every epoch end sets the LRs exactly as ``ReduceLROnPlateau.step``
    does, and returns whether it reduced them. ``warmup=N`` first raises every group's LR
    linearly from 0 to its starting LR over ``N`` updates: call ``step_update()`` after each
    ``optimizer.step()`` (only needed with a warmup); metrics given before the warmup is over
    are ignored. Without a warmup it is a drop-in for ``ReduceLROnPlateau``.

    ``state_dict()`` is plain data (it loads with ``torch.load(..., weights_only=True)``) and
    ``load_state_dict`` resumes exactly, setting the groups' LRs itself, so the order of this
    call and ``optimizer.load_state_dict`` does not matter.

    Example::

        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        scheduler = PlateauLR(optimizer, "min", factor=0.5, patience=2, warmup=500)
        for epoch in range(epochs):
            for x, y in loader:
                loss_fn(model(x), y).backward()
                optimizer.step()
                optimizer.zero_grad()
                scheduler.step_update()
            scheduler.step(validation_loss(model))
    """

    def __init__(
        self,
        optimizer: Optimizer,
        mode: str = "min",
        factor: float = 0.1,
        patience: int = 10,
        threshold: float = 1e-4,
        threshold_mode: str = "rel",
        cooldown: int = 0,
        min_lr: float | Sequence[float] = 0.0,
        eps: float = 1e-8,
        warmup: float = 0,
    ) -> None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(
                f"PlateauLR: optimizer must be a torch.optim.Optimizer, got optimizer={optimizer!r}"
            )
        self.optimizer = optimizer
        self.rule = Plateau(
            mode=mode,
            factor=factor,
            patience=patience,
            threshold=threshold,
            threshold_mode=threshold_mode,
            cooldown=cooldown,
            min_lr=min_lr,
            eps=eps,
            warmup=warmup,
        )
        self.state = PlateauState(self.rule, [float(g["lr"]) for g in optimizer.param_groups])
        self._last_lr: list[float] = []
        self._apply()

    def step(self, metric: SupportsFloat) -> bool:
        """An epoch ended with ``metric`` (a number or a 0-d tensor): reduce the LRs if the
        rule says so. Returns whether it did."""
        if not self.state.warming_up:
            # Like ReduceLROnPlateau, reduce from the groups' LRs as they are now.
            self.state.lrs = [float(g["lr"]) for g in self.optimizer.param_groups]
        try:
            value = float(metric)
        except (TypeError, ValueError):  # a string, None, a tensor of several values
            raise ArgumentTypeError(
                f"plateau: metric must be a number or a 0-d tensor, got metric={metric!r}"
            ) from None
        reduced = self.state.observe(value)
        if reduced:
            self._apply()
        return reduced

    def step_update(self) -> None:
        """Count one optimizer update; during the warmup, set the next update's LRs."""
        self.state.update_done()
        if self.state.updates <= self.rule.warmup:
            self._apply()

    def get_last_lr(self) -> list[float]:
        """The LRs this scheduler last set, one per param group."""
        return list(self._last_lr)

    @property
    def best(self) -> float:
        return self.state.best

    @property
    def num_bad_epochs(self) -> int:
        return self.state.num_bad_epochs

    @property
    def cooldown_counter(self) -> int:
        return self.state.cooldown_counter

    @property
    def last_epoch(self) -> int:
        """Metrics observed so far (``ReduceLROnPlateau.last_epoch``)."""
        return self.state.last_epoch

    def state_dict(self) -> dict[str, Any]:
        """The rule's spec and every counter, as plain data."""
        return self.state.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the counters and LRs, and set the groups' LRs to them (a dict that is not
        a `state_dict` of this scheduler is a one-line error naming what is wrong)."""
        check_state("PlateauLR", state_dict, STATE_KEYS)
        saved = state_dict.get("rule")
        if saved is not None and saved != self.rule.spec():
            warnings.warn(
                f"PlateauLR: loading the state of {saved} into {self.rule.spec()}; the "
                "decisions follow the new rule",
                UserWarning,
                stacklevel=2,
            )
        self.state.load_state_dict(state_dict)
        self._apply()

    def _apply(self) -> None:
        lrs = self.state.lrs_now()
        for group, lr in zip(self.optimizer.param_groups, lrs, strict=True):
            if isinstance(group["lr"], Tensor):
                group["lr"].fill_(lr)
            else:
                group["lr"] = lr
        self._last_lr = lrs
