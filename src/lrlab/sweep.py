"""A comparison grid: optimizers x schedules x seeds (x an LR grid for the methods that take one).

Methods whose learning rate is not a hyperparameter, LipschitzLR (its LR is computed) and the
learning-rate-free peers, run once per seed whatever ``lr_grid`` says; that is their "no
tuning" group in the report. Every other method runs every LR of the grid with every seed, so
each tuned method gets the same budget.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from lrlab.callspec import parse_call
from lrlab.controllers import ADAPTIVE, sets_own_lr
from lrlab.record import RunConfig


def is_self_tuning(optimizer: str, schedule: str | None) -> bool:
    """Whether a method sets its own LR: an adaptive controller that computes it (LipschitzLR,
    not reduce-on-plateau, which starts from the LR it is given), or an LR-free optimizer."""
    name = parse_call(schedule).name if schedule is not None else None
    if name in ADAPTIVE and sets_own_lr(name):
        return True
    from lrlab.optimizers import lr_free

    return lr_free(optimizer)


def parse_method(text: str) -> tuple[str, str | None]:
    """``"sgd:lipschitz(bound=smooth)"`` -> ``("sgd", "lipschitz(bound=smooth)")``; a bare
    optimizer name means a constant LR.

    >>> parse_method("momentum:cosine(lr=0.1, steps=100)")
    ('momentum', 'cosine(lr=0.1, steps=100)')
    """
    optimizer, _, schedule = text.partition(":")
    if not optimizer.strip():
        raise ValueError(f"--method must look like OPTIMIZER[:SCHEDULE], got --method={text!r}")
    schedule = schedule.strip()
    return optimizer.strip(), (None if schedule.lower() in ("", "none", "constant") else schedule)


def parse_lr_grid(text: str) -> tuple[float, ...]:
    """``"1e-3,1e-2,0.1"`` (a list) or ``"1e-4:1:9"`` (9 log-spaced values from 1e-4 to 1).

    >>> parse_lr_grid("0.001:0.1:3")
    (0.001, 0.01, 0.1)
    """
    text = text.strip()
    try:
        if ":" in text:
            low_text, high_text, count_text = text.split(":")
            low, high, count = float(low_text), float(high_text), int(count_text)
            if not (0 < low < high and math.isfinite(high) and count >= 2):
                raise ValueError
            ratio = math.log10(high / low) / (count - 1)
            return tuple(float(f"{low * 10 ** (ratio * i):.6g}") for i in range(count))
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ValueError(
            f"--lr-grid must be a comma list of LRs or LOW:HIGH:COUNT, got --lr-grid={text!r}"
        ) from None
    if not values or any(not (math.isfinite(v) and v > 0) for v in values):
        raise ValueError(f"--lr-grid values must be finite and > 0, got --lr-grid={text!r}")
    return tuple(sorted(set(values)))


@dataclass(frozen=True)
class Sweep:
    """The grid of runs a ``compare`` performs. ``None`` in ``schedules`` means a constant LR
    (the optimizer's default, or each grid value)."""

    task: str
    optimizers: tuple[str, ...]
    schedules: tuple[str | None, ...] = (None,)
    seeds: tuple[int, ...] = (0,)
    lr_grid: tuple[float, ...] | None = None
    run: dict[str, Any] = field(default_factory=dict)  # epochs, steps, batch_size, model, ...
    extra: tuple[tuple[str, str | None], ...] = ()  # (optimizer, schedule) pairs beyond the grid

    def __post_init__(self) -> None:
        if not self.optimizers and not self.extra:
            raise ValueError("--optimizers must name at least one optimizer")
        if not self.seeds:
            raise ValueError("--seeds must be at least 1")
        from lrlab.optimizers import optimizer_entry

        for name in [*self.optimizers, *(o for o, _ in self.extra)]:
            optimizer_entry(name)  # an unknown name fails before anything runs

    def methods(self) -> list[tuple[str, str | None]]:
        """The grid's (optimizer, schedule) pairs, then the extra ones, without repeats."""
        pairs = [(o, s) for o in self.optimizers for s in self.schedules] + list(self.extra)
        return list(dict.fromkeys(pairs))

    def configs(self) -> list[RunConfig]:
        """Every run of the grid, seeds innermost (so partial results cover every method)."""
        configs = []
        for optimizer, schedule in self.methods():
            tuned = self.lr_grid is not None and not is_self_tuning(optimizer, schedule)
            lrs: tuple[float | None, ...] = self.lr_grid if tuned and self.lr_grid else (None,)
            for lr in lrs:
                for seed in self.seeds:
                    configs.append(
                        RunConfig(
                            task=self.task,
                            optimizer=optimizer,
                            lr=lr,
                            schedule=schedule,
                            seed=seed,
                            **self.run,
                        )
                    )
        return configs
