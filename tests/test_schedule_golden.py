"""Golden values at the boundaries of every schedule, each checkable by hand."""

from __future__ import annotations

import math

import pytest

from lrlab.schedules import (
    Constant,
    Cosine,
    Cyclic,
    Exponential,
    InverseTime,
    Join,
    Linear,
    MultiStep,
    OneCycle,
    PerEpoch,
    Piecewise,
    Polynomial,
    Scale,
    Schedule,
    Seed000,
    Step,
    Warmup,
    Wsd,
)

GOLDEN: list[tuple[Schedule, dict[float, float]]] = [
    (Constant(lr=0.1), {0: 0.1, 1: 0.1, 10**9: 0.1}),
    # Keras' legacy decay, seed 000: 0.1 / (1 + 0.005 t); halves at t = 200.
    (InverseTime(lr=0.1, decay=0.005), {0: 0.1, 1: 0.1 / 1.005, 200: 0.05, 600: 0.025}),
    (
        InverseTime(lr=1.0, decay=1.0, every=10, staircase=True),
        {0: 1.0, 9: 1.0, 10: 0.5, 19: 0.5, 20: 1 / 3},
    ),
    (InverseTime(lr=1.0, decay=1.0, every=10), {0: 1.0, 5: 1 / 1.5, 10: 0.5}),
    (Step(lr=0.1, drop=0.5, every=10), {0: 0.1, 9: 0.1, 10: 0.05, 19: 0.05, 20: 0.025}),
    (MultiStep(lr=1.0, drop=0.1, milestones=(0, 5)), {0: 0.1, 4: 0.1, 5: 0.1 * 0.1}),
    (
        Piecewise(lr=0.5, boundaries=(10, 20), values=(0.25, 0.0)),
        {0: 0.5, 9.999: 0.5, 10: 0.25, 19: 0.25, 20: 0.0, 1e9: 0.0},
    ),
    (Exponential(lr=0.2, rate=0.99), {0: 0.2, 1: 0.2 * 0.99, 39: 0.2 * 0.99**39}),
    (Exponential(lr=1.0, rate=0.5, every=4), {0: 1.0, 2: 0.5**0.5, 4: 0.5, 8: 0.25}),
    (Exponential(lr=1.0, rate=0.5, every=4, staircase=True), {3: 1.0, 4: 0.5, 7: 0.5, 8: 0.25}),
    (Linear(lr=0.1, end=0.0, steps=100), {0: 0.1, 25: 0.075, 100: 0.0, 101: 0.0}),
    (Linear(lr=0.01, end=0.1, steps=10), {0: 0.01, 10: 0.1, 11: 0.1}),
    (Polynomial(lr=1.0, steps=10, end=0.5, power=2.0), {0: 1.0, 5: 0.625, 10: 0.5, 20: 0.5}),
    (Polynomial(lr=1.0, steps=4), {0: 1.0, 1: 0.75, 4: 0.0}),
    (Cosine(lr=1.0, steps=100, end=0.0), {0: 1.0, 50: 0.5, 100: 0.0, 150: 0.0}),
    (Cosine(lr=1.0, steps=100, end=0.2), {0: 1.0, 50: 0.6, 100: 0.2}),
    (Cosine(lr=1.0, steps=20, warmup=10), {0: 0.0, 5: 0.5, 10: 1.0, 15: 0.5, 20: 0.0}),
    (Cosine(lr=1.0, steps=10, restarts=True), {0: 1.0, 5: 0.5, 10: 1.0, 15: 0.5, 20: 1.0}),
    # Cycles of 10, 20, 40 steps starting at 0, 10, 30, 70.
    (
        Cosine(lr=1.0, steps=10, restarts=True, mult=2.0),
        {10: 1.0, 20: 0.5, 30: 1.0, 50: 0.5, 70: 1.0},
    ),
    # Peak at pct_start * steps - 1 = 29, minimum at steps - 1 = 99.
    (OneCycle(lr=1.0, steps=100, div=10.0, final_div=10.0), {0: 0.1, 29: 1.0, 99: 0.01, 500: 0.01}),
    (
        OneCycle(lr=1.0, steps=100, div=10.0, final_div=10.0, anneal="linear"),
        {0: 0.1, 14.5: 0.55, 29: 1.0, 64: 0.505, 99: 0.01},
    ),
    (
        OneCycle(lr=1.0, steps=100, pct_start=0.25, div=10.0, final_div=10.0, three_phase=True),
        {0: 0.1, 24: 1.0, 48: 0.1, 99: 0.01},
    ),
    # Warmup 10, stable to 80, linear decay over the last 20% to 0.
    (
        Wsd(lr=1.0, steps=100, warmup=10, decay=0.2),
        {0: 0.0, 5: 0.5, 10: 1.0, 79: 1.0, 80: 1.0, 90: 0.5, 95: 0.25, 100: 0.0, 500: 0.0},
    ),
    # 1 - sqrt cooldown: 1 - sqrt(1/4) = 0.5 a quarter of the way down.
    (
        Wsd(lr=1.0, steps=100, decay=40, end=0.2, shape="sqrt"),
        {60: 1.0, 70: 0.6, 100: 0.2},
    ),
    (Wsd(lr=1.0, steps=100, decay=40, shape="cosine"), {60: 1.0, 80: 0.5, 100: 0.0}),
    # Up 10, down 30: peaks at 10, 50, 90; troughs at 0, 40, 80.
    (
        Cyclic(lr=0.1, max_lr=1.0, step_size=10, step_size_down=30),
        {0: 0.1, 5: 0.55, 10: 1.0, 25: 0.55, 40: 0.1, 50: 1.0, 80: 0.1},
    ),
    (
        Cyclic(lr=0.5, max_lr=1.5, step_size=10, mode="triangular2"),
        {10: 1.5, 30: 1.0, 50: 0.75, 60: 0.5},
    ),
    (Cyclic(lr=0.5, max_lr=1.5, step_size=2, mode="exp_range", gamma=0.5), {1: 0.75, 2: 0.75}),
    # The seed's code: 0.01 * 0.05 ** (floor(1 + epoch) / 10).
    (Seed000(), {0: 0.01 * 0.05**0.1, 9: 0.01 * 0.05, 19: 0.01 * 0.05**2}),
    (Warmup(Constant(lr=0.1), steps=4, start=0.02), {0: 0.02, 2: 0.06, 4: 0.1, 100: 0.1}),
    (Warmup(Exponential(lr=1.0, rate=0.5), steps=2), {0: 0.0, 1: 0.5, 2: 1.0, 3: 0.5}),
    (
        Join(
            (Constant(lr=1.0), Step(lr=0.5, drop=0.5, every=10), Constant(lr=0.01)),
            boundaries=(5, 25),
        ),
        {0: 1.0, 4: 1.0, 5: 0.5, 14: 0.5, 15: 0.25, 24: 0.25, 25: 0.01},
    ),
    (Scale(Cosine(lr=1.0, steps=100), factor=0.1), {0: 0.1, 50: 0.05, 100: 0.0}),
    (
        PerEpoch(Step(lr=1.0, drop=0.5, every=2), steps_per_epoch=10),
        {0: 1.0, 19: 1.0, 20: 0.5, 39: 0.5, 40: 0.25},
    ),
    (
        PerEpoch(Exponential(lr=1.0, rate=0.25), steps_per_epoch=4, fractional=True),
        {0: 1.0, 2: 0.5, 4: 0.25},
    ),
    (
        PerEpoch(Seed000(), steps_per_epoch=30),
        {0: 0.01 * 0.05**0.1, 29: 0.01 * 0.05**0.1, 30: 0.01 * 0.05**0.2},
    ),
]


@pytest.mark.parametrize(("schedule", "expected"), GOLDEN, ids=lambda x: getattr(x, "name", ""))
def test_golden_values(schedule: Schedule, expected: dict[float, float]) -> None:
    for t, value in expected.items():
        assert schedule(t) == pytest.approx(value, rel=1e-12, abs=1e-15), f"t={t}"


def test_seed000_is_not_a_staircase() -> None:
    """The seed's code drops a little every epoch; the text's step decay holds for 10."""
    as_run = Seed000()
    assert len({as_run(epoch) for epoch in range(10)}) == 10
    as_meant = Step(lr=0.1, drop=0.5, every=10)
    assert {as_meant(epoch) for epoch in range(10)} == {0.1}


def test_exponential_equals_seed002_formula_exactly() -> None:
    schedule = Exponential(lr=0.2, rate=0.99, every=1)
    assert [schedule(e) for e in range(40)] == [0.2 * 0.99 ** (e / 1) for e in range(40)]


def test_inverse_time_is_keras_legacy_decay() -> None:
    """Keras 2's SGD: ``lr * (1. / (1. + decay * iterations))``; equal to the last ulp or two."""
    schedule = InverseTime(lr=0.1, decay=0.005)
    for i in range(6000):  # 200 epochs of 30 batches, seed 000's run
        assert math.isclose(schedule(i), 0.1 * (1.0 / (1.0 + 0.005 * i)), rel_tol=4e-16)


def test_reference_lr_of_compositions() -> None:
    inner = Cosine(lr=0.3, steps=10)
    assert Warmup(inner, steps=5).reference_lr == 0.3
    assert Scale(inner, factor=2.0).reference_lr == 0.3
    assert Join((inner, Constant(lr=0.01)), boundaries=(10,)).reference_lr == 0.3
    assert PerEpoch(inner, steps_per_epoch=3).reference_lr == 0.3
    assert OneCycle(lr=0.7, steps=100).reference_lr == 0.7
