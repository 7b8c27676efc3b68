"""wsd and cyclic in Keras 3 through the adapter: against Keras' own schedules where Keras has
an equivalent, in training, and through serialisation.

Keras 3 has no warmup-stable-decay and no cyclical schedule (TensorFlow Addons'
``CyclicalLearningRate`` needed TensorFlow and is end-of-life), so only wsd's stage-free forms,
which are Keras' ``PolynomialDecay`` and ``CosineDecay`` with warmup, have a Keras reference.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from lrlab import keras_adapter
from lrlab.schedules import Cyclic, Schedule, Wsd
from tests.test_keras_adapter import (
    BATCHES,
    EPOCHS,
    LR,
    TOLERANCE,
    _adapter_values,
    _fit,
    _keras_values,
    _model,
    _sum_float32,
    _weight,
    floatx,
    keras,
)

__all__ = ["floatx"]  # the fixture, used by name below

STEPS = 1200
# Largest |adapter - Keras| / lr over steps 0..1199 (keras 3.15.1, torch backend): linear
# 0 (float64) and 7.5e-8 (float32), cosine with warmup 1.4e-16 and 1.1e-7: the tolerances of
# tests/test_keras_adapter.py hold with the same headroom.

# name -> (Keras schedule factory, the lrlab wsd that equals it, Keras accepts a step array)
CASES: dict[str, tuple[Callable[[], Any], Schedule, bool]] = {
    # No warmup, no stable stage: the decay over the whole run is Keras' linear PolynomialDecay.
    "PolynomialDecay-as-wsd-linear": (
        lambda: keras.optimizers.schedules.PolynomialDecay(
            LR, decay_steps=1000, end_learning_rate=0.001, power=1.0
        ),
        Wsd(lr=LR, steps=1000, decay=1000, end=0.001),
        True,
    ),
    # Warmup then decay, no stable stage: Keras' CosineDecay with a warmup from 0.
    "CosineDecay-warmup-as-wsd-cosine": (
        lambda: keras.optimizers.schedules.CosineDecay(
            0.0, decay_steps=900, alpha=0.01, warmup_target=LR, warmup_steps=100
        ),
        Wsd(lr=LR, steps=1000, warmup=100, decay=900, end=0.01 * LR, shape="cosine"),
        False,
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_wsd_matches_keras_where_keras_has_it(case: str, floatx: str) -> None:
    make_keras, schedule, vectorized = CASES[case]
    expected = _keras_values(make_keras(), STEPS, vectorized)
    got = _adapter_values(schedule, STEPS)
    gap = float(np.max(np.abs(got - expected))) / LR
    assert gap <= TOLERANCE[floatx], f"{case} ({floatx}): max |gap| / lr = {gap:.3g}"


# A different LR at (almost) every step of the 30 updates below.
TRAINED = [
    Wsd(lr=0.1, steps=30, warmup=5, decay=0.5, end=0.01, shape="sqrt"),
    Cyclic(lr=0.01, max_lr=0.1, step_size=4, step_size_down=6, mode="triangular2"),
    Cyclic(lr=0.01, max_lr=0.1, step_size=3, mode="exp_range", gamma=0.97),
]


@pytest.mark.parametrize("schedule", TRAINED, ids=str)
def test_training_uses_the_schedule_at_every_iteration(schedule: Schedule) -> None:
    model = _model(keras_adapter.keras_schedule(schedule))
    _fit(model)
    steps = EPOCHS * BATCHES
    assert int(model.optimizer.iterations) == steps
    assert float(model.optimizer.learning_rate) == float(np.float32(schedule(steps)))
    # Update k used schedule(k): w = -(s(0) + ... + s(29)), accumulated in float32.
    assert _weight(model) == pytest.approx(_sum_float32(schedule.preview(steps)), rel=1e-6)


@pytest.mark.parametrize("schedule", TRAINED, ids=str)
def test_config_round_trip(schedule: Schedule) -> None:
    adapter = keras_adapter.keras_schedule(schedule)
    assert adapter.get_config() == {"spec": schedule.spec()}
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(adapter))
    assert restored.schedule == schedule
