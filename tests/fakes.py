"""Run records made by hand, for tests of the store and the report that need no training."""

from __future__ import annotations

from lrlab.record import EpochStats, RunConfig, RunRecord


def record(
    config: RunConfig,
    metrics: list[float],
    *,
    status: str = "done",
    steps_per_epoch: int = 10,
    target: float = 0.9,
    lr: float = 0.1,
    validation: list[float] | None = None,
) -> RunRecord:
    """A record whose test metric per epoch is ``metrics`` (loss falling, LR constant), and
    whose validation metric per epoch is ``validation`` (none without it)."""
    epochs = [
        EpochStats(
            epoch=i,
            step=(i + 1) * steps_per_epoch,
            lr=lr,
            train_loss=1.0 / (i + 1),
            train_metric=m,
            test_loss=1.0 / (i + 1),
            test_metric=m,
            train_time=0.5 * (i + 1),
            wall_time=0.6 * (i + 1),
            val_loss=None if validation is None else 1.0 / (i + 1),
            val_metric=None if validation is None else validation[i],
        )
        for i, m in enumerate(metrics)
    ]
    steps = len(metrics) * steps_per_epoch
    return RunRecord(
        config=config,
        status=status,
        metric="accuracy",
        target=target,  # type: ignore[arg-type]
        higher_is_better=True,
        steps_per_epoch=steps_per_epoch,
        steps=steps,
        epochs=epochs,
        step_loss=[2.0 / (1 + i) for i in range(steps)],
        step_lr=[lr] * steps,
        wall_time=0.6 * len(metrics),
        train_time=0.5 * len(metrics),
        versions={"lrlab": "0.1.0", "torch": "2.13.0", "python": "3.11.7"},
    )
