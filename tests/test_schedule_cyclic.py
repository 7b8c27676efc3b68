"""Cyclical LRs against ``torch.optim.lr_scheduler.CyclicLR``, bit for bit, in every mode."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch.optim import lr_scheduler as torch_schedulers

from lrlab import ScheduleLR
from lrlab.schedules import Cyclic, parse
from tests.strategies import Case, cyclic

STEPS = 2500

CONFIGS = [
    Cyclic(lr=0.001, max_lr=0.1, step_size=200),
    Cyclic(lr=0.001, max_lr=0.1, step_size=150, mode="triangular2"),
    Cyclic(lr=0.001, max_lr=0.1, step_size=100, mode="exp_range", gamma=0.999),
    # Asymmetric cycles, and a step size that is not a whole number of steps.
    Cyclic(lr=0.01, max_lr=0.5, step_size=60, step_size_down=240),
    Cyclic(lr=0.01, max_lr=0.5, step_size=37.5, step_size_down=10, mode="triangular2"),
    Cyclic(lr=1e-4, max_lr=3e-3, step_size=7, step_size_down=300, mode="exp_range", gamma=0.9995),
    Cyclic(lr=0.1, max_lr=0.1, step_size=5),  # max_lr = lr: constant
]


def _torch_lrs(schedule: Cyclic, steps: int) -> list[float]:
    """The LR PyTorch's CyclicLR sets before each of ``steps`` updates."""
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=schedule.lr)
    scheduler = torch_schedulers.CyclicLR(
        optimizer,
        base_lr=schedule.lr,
        max_lr=schedule.max_lr,
        step_size_up=schedule.step_size,  # type: ignore[arg-type]
        step_size_down=schedule.step_size_down,  # type: ignore[arg-type]
        mode=schedule.mode,  # type: ignore[arg-type]
        gamma=schedule.gamma,
        cycle_momentum=False,
    )
    lrs = []
    for _ in range(steps):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return lrs


@pytest.mark.parametrize("schedule", CONFIGS, ids=str)
def test_equals_torch_cyclic_lr_exactly(schedule: Cyclic) -> None:
    expected = _torch_lrs(schedule, STEPS)
    assert schedule.preview(STEPS) == expected
    # ... and through the PyTorch adapter, one step() per update.
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=schedule.lr)
    adapter = ScheduleLR(optimizer, schedule)
    got = []
    for _ in range(STEPS):
        got.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        adapter.step()
    assert got == expected


@given(case=cyclic)
def test_equals_torch_for_drawn_arguments(case: Case) -> None:
    schedule = case.schedule
    assert isinstance(schedule, Cyclic)
    steps = 600
    assert schedule.preview(steps) == _torch_lrs(schedule, steps)


@given(case=cyclic, t=st.floats(0, 1e7))
def test_stays_between_lr_and_max_lr(case: Case, t: float) -> None:
    schedule = case.schedule
    assert isinstance(schedule, Cyclic)
    assert schedule.lr <= schedule(t) <= schedule.max_lr * (1 + 1e-15)


def test_peaks_and_troughs() -> None:
    s = Cyclic(lr=0.1, max_lr=1.0, step_size=10, step_size_down=30)
    assert [s(t) for t in (0, 10, 40, 50, 80)] == [0.1, 1.0, 0.1, 1.0, 0.1]
    assert s(25) == pytest.approx(0.55)
    t2 = Cyclic(lr=0.5, max_lr=1.5, step_size=10, mode="triangular2")
    assert [t2(10 + 20 * k) for k in range(4)] == [1.5, 1.0, 0.75, 0.625]
    exp = Cyclic(lr=0.5, max_lr=1.5, step_size=10, mode="exp_range", gamma=0.5)
    assert exp(10) == 0.5 + 0.5**10


def test_triangular2_far_out_underflows_instead_of_overflowing() -> None:
    """PyTorch's 1 / 2.0 ** (cycle - 1) raises OverflowError past cycle 1025; this one reaches
    ``lr`` and stays there."""
    s = Cyclic(lr=0.01, max_lr=0.1, step_size=1, mode="triangular2")
    assert s(3000) == 0.01
    assert s(10**7 + 1) == 0.01


def test_the_range_test_spec_parses() -> None:
    """``lrlab find`` prints ``cyclic(lr=..., max_lr=..., step_size=...)``."""
    assert parse("cyclic(lr=0.001, max_lr=0.01, step_size=2000)") == Cyclic(
        lr=0.001, max_lr=0.01, step_size=2000
    )
    s = Cyclic(lr=0.001, max_lr=0.01, step_size=100, mode="exp_range", gamma=0.99)
    assert parse(s.spec()) == s
    assert s.spec() == "cyclic(lr=0.001, max_lr=0.01, step_size=100, mode=exp_range, gamma=0.99)"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("cyclic(lr=0.1, max_lr=0.01, step_size=10)", r"max_lr must be >= lr \(0.1\)"),
        ("cyclic(lr=0.1, max_lr=1, step_size=0)", r"step_size must be > 0, got step_size=0"),
        (
            "cyclic(lr=0.1, max_lr=1, step_size=5, step_size_down=-2)",
            r"step_size_down must be > 0, got step_size_down=-2",
        ),
        ("cyclic(lr=0.1, max_lr=1, step_size=5, mode=cosine)", r"mode must be one of triangular"),
        (
            "cyclic(lr=0.1, max_lr=1, step_size=5, gamma=0.9)",
            r"gamma applies to mode=exp_range only, got gamma=0.9 with mode=triangular",
        ),
        (
            "cyclic(lr=0.1, max_lr=1, step_size=5, mode=exp_range, gamma=1.5)",
            r"gamma must be <= 1, got gamma=1.5",
        ),
    ],
)
def test_bad_arguments_are_one_line_errors(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        parse(spec)
    assert "\n" not in str(info.value)
