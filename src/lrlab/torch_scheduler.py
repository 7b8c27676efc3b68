"""`ScheduleLR`: any lrlab schedule as a ``torch.optim.lr_scheduler.LRScheduler``."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

from torch import Tensor
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from lrlab.schedules import Schedule, parse
from lrlab.validate import (
    MAX_LR,
    ArgumentTypeError,
    check_instance,
    check_int,
    check_lr,
    check_number,
    check_state,
)


class ScheduleLR(LRScheduler):
    """Drive an optimizer's learning rates from an lrlab schedule, one ``step()`` per
    optimizer step.

    After ``k`` calls of ``step()`` every param group ``g`` has
    ``lr = schedule(k) * base_lr_g / schedule.reference_lr``: a group whose base LR (its ``lr``
    when the scheduler was built) equals the schedule's reference LR follows the schedule's
    values exactly, a group with twice that base LR gets twice the values. Each LR is computed
    from the closed form at ``k``, never from the previous LR, so ``state_dict()`` holds only
    the step count and base LRs, and a resumed run sees bit-identical LRs.

    ``schedule`` is a `Schedule` or a spec string, parsed by `lrlab.schedules.parse`
    (``"cosine(lr=0.1, steps=1000, warmup=50)"``). A param group added to the optimizer later
    (``optimizer.add_param_group``) joins at its next ``step()``, with its ``initial_lr``, else
    its ``lr``, as its base LR (what PyTorch's schedulers would have taken, had it been there
    when they were built).

    It is a real ``LRScheduler``: use it in a plain loop, or return it from a Lightning
    ``configure_optimizers`` with ``"interval": "step"``.

    Example::

        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        scheduler = ScheduleLR(optimizer, Cosine(lr=0.1, steps=1000))
        for batch in loader:
            loss_fn(model(batch.x), batch.y).backward()
            optimizer.step()
            optimizer.zero_grad()
            scheduler.step()
    """

    def __init__(
        self, optimizer: Optimizer, schedule: Schedule | str, last_epoch: int = -1
    ) -> None:
        check_instance("ScheduleLR", "optimizer", optimizer, Optimizer, "a torch Optimizer")
        if isinstance(schedule, str):
            schedule = parse(schedule)
        check_instance(
            "ScheduleLR", "schedule", schedule, Schedule, "an lrlab Schedule or a spec string"
        )
        check_lr("ScheduleLR", schedule.reference_lr, "schedule.reference_lr")
        check_int("ScheduleLR", "last_epoch", last_epoch, minimum=-1)
        key = "lr" if last_epoch == -1 else "initial_lr"
        for i, group in enumerate(optimizer.param_groups):
            if key not in group:  # torch's KeyError, said in one line
                raise ValueError(
                    f"ScheduleLR: last_epoch={last_epoch} resumes a scheduler, which needs "
                    f"'initial_lr' in every param group (build it with last_epoch=-1, then "
                    f"load_state_dict), got param group {i} without it"
                )
            _check_base_lr(f"param_groups[{i}]['{key}']", group[key])
        self.schedule = schedule
        super().__init__(optimizer, last_epoch)

    def _lrs_at(self, step: int) -> list[float | Tensor]:
        self._join_new_groups()
        value = self.schedule(step)
        reference = self.schedule.reference_lr
        # base / reference is exactly 1.0 for a group at the reference LR, so its LR is exactly
        # the schedule's value.
        return [value * (base / reference) for base in self.base_lrs]

    def _join_new_groups(self) -> None:
        """Give param groups added since the last step a base LR: their ``initial_lr``, else
        their ``lr`` (set as their ``initial_lr``, as `LRScheduler` does for the groups it
        starts with)."""
        groups = self.optimizer.param_groups
        for i in range(len(self.base_lrs), len(groups)):
            group = groups[i]
            _check_base_lr(f"param_groups[{i}]['lr']", group.get("initial_lr", group["lr"]))
            group.setdefault("initial_lr", group["lr"])
            self.base_lrs.append(group["initial_lr"])

    def get_lr(self) -> list[float | Tensor]:
        return self._lrs_at(self.last_epoch)

    def _get_closed_form_lr(self) -> list[float | Tensor]:
        return self._lrs_at(self.last_epoch)

    def state_dict(self) -> dict[str, Any]:
        """Plain data only (loads with ``torch.load(..., weights_only=True)``): the step count,
        the base LRs, the last LRs and the schedule's spec string."""
        return {
            "last_epoch": self.last_epoch,
            "_step_count": self._step_count,
            "base_lrs": list(self.base_lrs),
            "_last_lr": list(self._last_lr),
            "schedule": self.schedule.spec(),
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the step count and base LRs, and set the groups' LRs to the schedule's value
        there (so the order of this call and ``optimizer.load_state_dict`` does not matter)."""
        check_state("ScheduleLR", state_dict, ("last_epoch", "_step_count", "base_lrs"))
        check_int("ScheduleLR", "last_epoch", state_dict["last_epoch"], minimum=0)
        check_int("ScheduleLR", "_step_count", state_dict["_step_count"], minimum=0)
        base_lrs = state_dict["base_lrs"]
        groups = len(self.optimizer.param_groups)
        if isinstance(base_lrs, str | bytes) or not isinstance(base_lrs, Sequence):
            raise ArgumentTypeError(
                f"ScheduleLR: base_lrs must be a list of {groups} LRs, got base_lrs={base_lrs!r}"
            )
        if len(base_lrs) != groups:
            raise ValueError(
                f"ScheduleLR: base_lrs must hold one LR per param group ({groups}), "
                f"got base_lrs={list(base_lrs)!r}"
            )
        for i, lr in enumerate(base_lrs):
            _check_base_lr(f"base_lrs[{i}]", lr)
        saved_schedule = state_dict.get("schedule")
        if saved_schedule is not None and saved_schedule != self.schedule.spec():
            warnings.warn(
                f"ScheduleLR: loading the state of schedule {saved_schedule} into "
                f"{self.schedule.spec()}; the LRs follow the new schedule",
                UserWarning,
                stacklevel=2,
            )
        self.last_epoch = int(state_dict["last_epoch"])
        self._step_count = int(state_dict["_step_count"])
        self.base_lrs = list(state_dict["base_lrs"])
        lrs = self._lrs_at(self.last_epoch)
        for group, lr in zip(self.optimizer.param_groups, lrs, strict=True):
            if isinstance(group["lr"], Tensor):
                group["lr"].fill_(lr)
            else:
                group["lr"] = lr
        self._last_lr = [lr.clone() if isinstance(lr, Tensor) else lr for lr in lrs]


def _check_base_lr(name: str, value: object) -> None:
    """A param group's base LR: a number in ``[0, MAX_LR]`` (0 freezes the group)."""
    if isinstance(value, Tensor) and value.numel() == 1:
        value = value.item()
    check_number("ScheduleLR", name, value, nonnegative=True, maximum=MAX_LR)
