"""Warmup-stable-decay against an independent, straightforward implementation of its published
definition, at every step."""

from __future__ import annotations

import math

import pytest

from lrlab.schedules import Wsd, parse


def published_wsd(
    step: int, *, lr: float, steps: int | float, warmup: float, decay: float, end: float, shape: str
) -> float:
    """MiniCPM's WSD(T; s) (Hu et al. 2024, section 4): ``s / W * eta`` in the warmup, ``eta``
    until ``T``, ``f(s - T) * eta`` after, with ``f`` written as Hägele et al.'s
    ``wsd_schedule`` writes its cooldowns (epfml/schedules-and-scaling, src/optim/utils.py):
    a factor of the peak from 1 down to ``final_lr_factor``. ``warmup`` and ``decay`` are
    step counts here."""
    final = end / lr
    hold = steps - decay
    if step < warmup:
        factor = step / warmup
    elif step < hold:
        factor = 1.0
    elif step < steps:
        progress = (step - hold) / decay
        if shape == "linear":
            factor = final + (1 - final) * (1 - progress)
        elif shape == "cosine":
            factor = final + (1 - final) * (1 + math.cos(math.pi * progress)) * 0.5
        else:
            factor = final + (1 - final) * (1 - math.sqrt(progress))
    else:
        factor = final
    return lr * factor


# (schedule, its warmup and decay in steps, worked out by hand)
CONFIGS: list[tuple[Wsd, float, float]] = [
    (Wsd(lr=0.1, steps=1000), 0, 100),  # the defaults: no warmup, the last 10% to 0
    (Wsd(lr=0.1, steps=1000, warmup=50, decay=0.2, shape="sqrt"), 50, 200),
    (Wsd(lr=3e-4, steps=2000, warmup=0.05, decay=300, end=3e-5, shape="cosine"), 100, 300),
    (Wsd(lr=1.0, steps=333, warmup=7, decay=0.15, end=0.25, shape="sqrt"), 7, 49.95),
    (Wsd(lr=0.5, steps=100, warmup=40, decay=60, shape="linear"), 40, 60),  # no stable stage
    (Wsd(lr=0.02, steps=500, decay=1, end=0.001), 0, 1),  # a one-step decay
    (Wsd(lr=2.0, steps=1200, warmup=100, decay=0.5, end=2.0), 100, 600),  # end = lr: flat
]


@pytest.mark.parametrize(("schedule", "warmup", "decay"), CONFIGS, ids=str)
def test_matches_the_published_definition_at_every_step(
    schedule: Wsd, warmup: float, decay: float
) -> None:
    assert schedule.warmup_steps == pytest.approx(warmup, rel=1e-15)
    assert schedule.decay_steps == pytest.approx(decay, rel=1e-15)
    for step in range(int(schedule.steps) + 50):
        expected = published_wsd(
            step,
            lr=schedule.lr,
            steps=schedule.steps,
            warmup=warmup,
            decay=decay,
            end=schedule.end,
            shape=schedule.shape,
        )
        assert schedule(step) == pytest.approx(expected, rel=1e-12, abs=1e-15 * schedule.lr), (
            f"step {step}"
        )


def test_boundaries() -> None:
    s = Wsd(lr=0.1, steps=1000, warmup=100, decay=0.2, end=0.01)
    assert s(0) == 0.0
    assert s(50) == pytest.approx(0.05)
    assert s(100) == 0.1  # the warmup ends at the peak
    assert s(799) == 0.1
    assert s(800) == 0.1  # the decay starts at the peak...
    assert s(900) == pytest.approx(0.055)
    assert s(1000) == 0.01  # ...and ends at `end`, where it stays
    assert s(10**9) == 0.01


def test_sqrt_cooldown_drops_faster_than_linear_at_first() -> None:
    """Hägele et al.'s 1 - sqrt cooldown leaves the peak steeply and ends gently."""
    linear = Wsd(lr=1.0, steps=100, decay=50)
    root = Wsd(lr=1.0, steps=100, decay=50, shape="sqrt")
    assert root(51) < linear(51)
    assert root(75) == pytest.approx(1 - math.sqrt(0.5))
    assert root(99) < linear(99)  # 1 - sqrt(0.98) = 0.0101 < 0.02
    assert root(100) == linear(100) == 0.0


def test_a_count_of_one_is_one_step_and_a_fraction_scales_with_steps() -> None:
    assert Wsd(lr=1.0, steps=100, decay=1).decay_steps == 1
    assert Wsd(lr=1.0, steps=100, decay=0.5).decay_steps == 50
    assert Wsd(lr=1.0, steps=100, decay=100).decay_steps == 100


def test_spec_round_trip_keeps_the_given_form() -> None:
    s = parse("wsd(lr=0.1, steps=1000, warmup=0.05, decay=0.2, shape=sqrt)")
    assert s == Wsd(lr=0.1, steps=1000, warmup=0.05, decay=0.2, shape="sqrt")
    assert s.spec() == "wsd(lr=0.1, steps=1000, warmup=0.05, decay=0.2, shape=sqrt)"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("wsd(lr=0.1)", r"wsd: missing argument steps"),
        ("wsd(lr=0, steps=10)", r"wsd: lr must be > 0, got lr=0"),
        ("wsd(lr=0.1, steps=10, decay=0)", r"wsd: decay must be > 0, got decay=0"),
        ("wsd(lr=0.1, steps=10, warmup=-1)", r"wsd: warmup must be >= 0, got warmup=-1"),
        ("wsd(lr=0.1, steps=10, end=0.2)", r"wsd: end must be <= 0.1, got end=0.2"),
        ("wsd(lr=0.1, steps=10, shape=exp)", r"shape must be one of linear, cosine, sqrt"),
        (
            "wsd(lr=0.1, steps=100, warmup=60, decay=0.5)",
            r"wsd: warmup \+ decay \(60 \+ 50 steps\) must be <= steps \(100\), got warmup=60",
        ),
    ],
)
def test_bad_arguments_are_one_line_errors(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        parse(spec)
    assert "\n" not in str(info.value)
