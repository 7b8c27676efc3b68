"""Hypothesis strategies: a valid instance of every schedule in `lrlab.schedules.SCHEDULES`,
with what each promises about its shape."""

from __future__ import annotations

import math
from dataclasses import dataclass

from hypothesis import strategies as st

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

lrs = st.floats(1e-6, 10.0)
fractions = st.floats(0.01, 1.0)
durations = st.integers(1, 500)


@dataclass(frozen=True)
class Case:
    schedule: Schedule
    nonincreasing: bool  # promised non-increasing from step `monotone_from` on
    monotone_from: float = 0
    peak: float | None = None  # promised never exceeded (None: the value at monotone_from)
    nondecreasing: bool = False  # promised non-decreasing (a linear ramp up)

    @property
    def upper(self) -> float:
        """The largest value the schedule promises (its peak)."""
        if self.peak is not None:
            return self.peak
        return self.schedule(self.monotone_from)


def _sorted_unique(values: list[int]) -> tuple[int, ...]:
    return tuple(sorted(set(values)))


constant = st.builds(Constant, lr=lrs).map(lambda s: Case(s, True))
inverse_time = st.builds(
    InverseTime, lr=lrs, decay=st.floats(0, 10), every=durations, staircase=st.booleans()
).map(lambda s: Case(s, True))
step = st.builds(Step, lr=lrs, drop=fractions, every=durations).map(lambda s: Case(s, True))
multistep = st.builds(
    MultiStep,
    lr=lrs,
    drop=fractions,
    milestones=st.lists(st.integers(0, 2000), min_size=1, max_size=5).map(_sorted_unique),
).map(lambda s: Case(s, True))
piecewise = (
    st.lists(st.integers(0, 2000), min_size=1, max_size=5)
    .map(_sorted_unique)
    .flatmap(
        lambda b: st.builds(
            Piecewise,
            lr=lrs,
            boundaries=st.just(b),
            values=st.lists(st.floats(0, 10), min_size=len(b), max_size=len(b)).map(tuple),
        )
    )
    .map(lambda s: Case(s, False, peak=max(s.lr, *s.values)))
)
exponential = st.builds(
    Exponential, lr=lrs, rate=st.floats(0.5, 1.0), every=durations, staircase=st.booleans()
).map(lambda s: Case(s, True))
linear = st.builds(Linear, lr=lrs, end=st.floats(0, 10), steps=durations).map(
    lambda s: Case(s, s.end <= s.lr, peak=max(s.lr, s.end), nondecreasing=s.end >= s.lr)
)
polynomial = st.builds(
    Polynomial, lr=lrs, steps=durations, end=st.just(0.0), power=st.floats(0.1, 5)
).map(lambda s: Case(s, True))
cosine = (
    st.integers(2, 1000)
    .flatmap(
        lambda n: st.builds(
            Cosine, lr=lrs, steps=st.just(n), end=st.just(0.0), warmup=st.integers(0, n - 1)
        )
    )
    .map(lambda s: Case(s, True, s.warmup))
)
cosine_restarts = st.builds(
    Cosine,
    lr=lrs,
    steps=st.integers(1, 300),
    end=st.just(0.0),
    restarts=st.just(True),
    mult=st.sampled_from([1.0, 1.5, 2.0, 3.0]),
).map(lambda s: Case(s, False, peak=s.lr))
one_cycle = st.builds(
    OneCycle,
    lr=lrs,
    steps=st.integers(20, 2000),
    pct_start=st.floats(0.1, 0.45),
    div=st.floats(2, 100),
    final_div=st.floats(1, 1e4),
    anneal=st.sampled_from(["cos", "linear"]),
    three_phase=st.booleans(),
).map(lambda s: Case(s, False, peak=s.lr))
seed000 = st.builds(Seed000, lr=lrs, drop=fractions, every=durations).map(lambda s: Case(s, True))


@st.composite
def _wsd(draw: st.DrawFn) -> Case:
    """Warmup and decay as counts (>= 1) or fractions of steps (< 1), W + D <= steps."""
    steps = draw(st.integers(2, 2000))
    warmup = draw(st.just(0) | st.integers(1, steps // 2) | st.floats(0.01, 0.49))
    decay = draw(st.integers(1, steps // 2) | st.floats(0.01, 0.5))
    lr = draw(lrs)
    schedule = Wsd(
        lr=lr,
        steps=steps,
        warmup=warmup,
        decay=decay,
        end=lr * draw(st.floats(0, 1)),
        shape=draw(st.sampled_from(["linear", "cosine", "sqrt"])),
    )
    return Case(schedule, True, schedule.warmup_steps)


wsd = _wsd()


@st.composite
def _cyclic(draw: st.DrawFn) -> Case:
    lr = draw(lrs)
    mode = draw(st.sampled_from(["triangular", "triangular2", "exp_range"]))
    schedule = Cyclic(
        lr=lr,
        max_lr=lr * draw(st.floats(1.0, 100.0)),
        step_size=draw(st.integers(1, 500) | st.floats(0.5, 500)),
        mode=mode,
        gamma=draw(st.floats(0.9, 1.0)) if mode == "exp_range" else 1.0,
        step_size_down=draw(st.none() | st.integers(1, 500) | st.floats(0.5, 500)),
    )
    return Case(schedule, False, peak=schedule.max_lr)


cyclic = _cyclic()

leaves = st.one_of(
    constant,
    inverse_time,
    step,
    multistep,
    piecewise,
    exponential,
    linear,
    polynomial,
    cosine,
    cosine_restarts,
    one_cycle,
    wsd,
    cyclic,
    seed000,
)
warmup = leaves.flatmap(
    lambda c: st.builds(
        Warmup, schedule=st.just(c.schedule), steps=durations, start=st.floats(0, 1e-3)
    ).map(lambda s: Case(s, False, peak=max(s.start, c.upper)))
)
join = st.lists(leaves, min_size=2, max_size=3).flatmap(
    lambda cases: st.builds(
        Join,
        schedules=st.just(tuple(c.schedule for c in cases)),
        boundaries=st.lists(
            st.integers(1, 3000), min_size=len(cases) - 1, max_size=len(cases) - 1, unique=True
        ).map(lambda b: tuple(sorted(b))),
    ).map(lambda s: Case(s, False, peak=max(c.upper for c in cases)))
)
scale = leaves.flatmap(
    lambda c: st.builds(Scale, schedule=st.just(c.schedule), factor=st.floats(0.01, 10)).map(
        lambda s: Case(s, c.nonincreasing, c.monotone_from, s.factor * c.upper, c.nondecreasing)
    )
)
per_epoch = leaves.flatmap(
    lambda c: st.builds(
        PerEpoch,
        schedule=st.just(c.schedule),
        steps_per_epoch=st.integers(1, 50),
        fractional=st.booleans(),
    ).map(
        lambda s: Case(
            s,
            c.nonincreasing,
            # Without fractional epochs, epoch e holds the inner value at e: an inner warmup
            # ending mid-epoch ends at the next whole epoch.
            (c.monotone_from if s.fractional else math.ceil(c.monotone_from)) * s.steps_per_epoch,
            c.upper,
            c.nondecreasing,
        )
    )
)

BY_NAME = {
    "constant": constant,
    "inverse_time": inverse_time,
    "step": step,
    "multistep": multistep,
    "piecewise": piecewise,
    "exponential": exponential,
    "linear": linear,
    "polynomial": polynomial,
    "cosine": st.one_of(cosine, cosine_restarts),
    "one_cycle": one_cycle,
    "wsd": wsd,
    "cyclic": cyclic,
    "seed000": seed000,
    "warmup": warmup,
    "join": join,
    "scale": scale,
    "per_epoch": per_epoch,
}
