"""Today's workloads at a study's budget: the ``lm`` transformer and a residual CNN, sized so a
study of many runs fits a 2-core machine (every command takes ``examples/workloads.py:NAME``).

- ``lm_short``: lrlab's ``lm`` task (a byte-level transformer on CPython's reference
  documentation, bits per byte) at 240 steps instead of 800 (about 28 s a run here), an epoch
  of 40 updates, and a target measured at that budget: AdamW at lr 3e-3 reaches 3.0 test bits
  per byte at step 240 (seed 0), 3.2 on validation; the target, 3.3, is what a good LR reaches
  by about two thirds of the budget.
- ``digits_resnet``: lrlab's ``digits`` task with ResNet-8 and its random shifts as its only
  model (``lrlab run digits --model resnet``), so a study that takes a task name runs the
  residual network; 30 epochs of 41 updates, about 10 s a run here.

Both are lrlab's own tasks with other defaults, not new data or models: their runs are the runs
``lrlab run lm --steps 240`` and ``lrlab run digits --model resnet`` give.
"""

from __future__ import annotations

import dataclasses

import lrlab
from lrlab.tasks import get_task
from lrlab.tasks.lm import lm_task


def lm_short() -> lrlab.Task:
    return lm_task(steps=240, epoch_steps=40, target=3.3, name="lm-short")


def digits_resnet() -> lrlab.Task:
    digits = get_task("digits")
    return dataclasses.replace(
        digits,
        name="digits-resnet",
        summary="scikit-learn's 8x8 digits, ResNet-8 with random shifts",
        model={"resnet": digits.model_builders["resnet"]},
        augmentations={"resnet": digits.augmentations["resnet"]},
        reference=None,
    )
