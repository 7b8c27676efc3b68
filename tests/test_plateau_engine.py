"""``plateau(...)`` in ``lrlab run`` and ``lrlab compare``: the engine feeds it each epoch's
test metric, the LR trace is what torch's ReduceLROnPlateau sets for those metrics, a warmup
runs in front of it, and a sweep tunes its LR."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import torch
from torch.optim.lr_scheduler import ReduceLROnPlateau

from lrlab.cli import main
from lrlab.engine import train_run
from lrlab.plateau import monitored
from lrlab.record import EpochStats, RunConfig
from lrlab.store import Store
from lrlab.sweep import Sweep, is_self_tuning


def _torch_epoch_lrs(
    epochs: list[EpochStats], monitor: str, lr: float, **options: object
) -> list[float]:
    """The LR of every epoch when torch's ReduceLROnPlateau sees these epoch-end values."""
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    scheduler = ReduceLROnPlateau(optimizer, **options)  # type: ignore[arg-type]
    lrs = []
    for stats in epochs:
        lrs.append(optimizer.param_groups[0]["lr"])
        scheduler.step(monitored(monitor, stats))
    return lrs


@pytest.mark.parametrize(
    ("spec", "monitor", "options"),
    [
        # accuracy: the mode follows the task (max)
        (
            "plateau(factor=0.5, patience=1)",
            "metric",
            {"mode": "max", "factor": 0.5, "patience": 1},
        ),
        (
            "plateau(monitor=loss, factor=0.5, patience=1, cooldown=1)",
            "loss",
            {"mode": "min", "factor": 0.5, "patience": 1, "cooldown": 1},
        ),
    ],
)
def test_run_follows_reduce_lr_on_plateau_on_the_recorded_metrics(
    spec: str, monitor: str, options: dict[str, object]
) -> None:
    record = train_run(
        RunConfig(task="iris", optimizer="adam", lr=0.02, schedule=spec, epochs=12, seed=1)
    )
    assert record.status == "done"
    expected = _torch_epoch_lrs(record.epochs, monitor, 0.02, **options)
    assert [e.lr for e in record.epochs] == expected
    assert len(set(expected)) > 1, "the case should reduce the LR at least once"
    # Within an epoch the LR holds; it changes only at epoch boundaries.
    per_step = [record.step_lr[e.step - 1] for e in record.epochs]
    assert per_step == expected
    controller = record.extra["controller"]
    assert controller["mode"] == options["mode"]
    changes = [after for before, after in itertools.pairwise(expected) if after != before]
    assert [r["lr"] for r in controller["reductions"]][: len(changes)] == changes


def test_warmup_then_plateau_in_the_engine() -> None:
    record = train_run(
        RunConfig(
            task="iris",
            optimizer="sgd",
            schedule="plateau(lr=0.3, factor=0.5, patience=0, warmup=30)",
            epochs=6,
            seed=0,
        )
    )
    assert record.steps_per_epoch == 22
    assert record.step_lr[:31] == [0.3 * t / 30 for t in range(30)] + [0.3]
    # Epoch 0 ends at step 22, inside the warmup: ignored. From epoch 1's end on, torch's rule.
    expected = _torch_epoch_lrs(
        record.epochs[1:], "metric", 0.3, mode="max", factor=0.5, patience=0
    )
    assert [e.lr for e in record.epochs[2:]] == expected[1:]


def test_the_mode_follows_the_metric_direction() -> None:
    """The quadratic's metric is its loss: lower is better, so the mode is min."""
    record = train_run(
        RunConfig(
            task="quadratic", optimizer="sgd", schedule="plateau(lr=0.2, patience=0)", steps=5
        )
    )
    assert record.extra["controller"]["mode"] == "min"
    given = train_run(
        RunConfig(
            task="quadratic",
            optimizer="sgd",
            schedule="plateau(lr=0.2, patience=0, mode=max)",
            steps=5,
        )
    )
    assert given.extra["controller"]["mode"] == "max"


def test_a_sweep_tunes_plateau_like_a_schedule() -> None:
    assert not is_self_tuning("sgd", "plateau(factor=0.5)")
    assert is_self_tuning("sgd", "lipschitz(bound=smooth)")
    assert is_self_tuning("prodigy", "plateau(factor=0.5)")  # an LR-free optimizer stays one
    sweep = Sweep(
        task="iris",
        optimizers=("sgd",),
        schedules=("plateau(factor=0.5, patience=1)", "lipschitz(bound=smooth)"),
        seeds=(0, 1),
        lr_grid=(0.01, 0.1),
    )
    lrs: dict[str | None, list[float | None]] = {}
    for config in sweep.configs():
        lrs.setdefault(config.schedule, []).append(config.lr)
    assert lrs["plateau(factor=0.5, patience=1)"] == [0.01, 0.01, 0.1, 0.1]
    assert lrs["lipschitz(bound=smooth)"] == [None, None]


def test_compare_runs_plateau_after_a_warmup_on_an_lr_grid(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    db = tmp_path / "runs.sqlite"
    spec = "plateau(factor=0.5, patience=1, warmup=24)"
    code = main(
        [
            "compare",
            "iris",
            "--optimizers",
            "adam",
            "--schedules",
            spec,
            "--lr-grid",
            "0.01,0.05",
            "--seeds",
            "1",
            "--epochs",
            "4",
            "--workers",
            "1",
            "--db",
            str(db),
            "--optimistic",
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "iris: 2 runs, 0 already in" in err
    with Store(db) as store:
        runs = store.runs()
    assert sorted(r.config.lr for r in runs) == [0.01, 0.05]  # type: ignore[type-var]
    for run in runs:
        assert run.record is not None
        base = run.config.lr
        assert run.record.step_lr[:25] == [base * t / 24 for t in range(24)] + [base]
    assert "2 LRs x 1 seeds = 2 runs" in out


def test_compare_refuses_a_bad_plateau_spec_before_running(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    db = tmp_path / "runs.sqlite"
    code = main(
        [
            "compare",
            "iris",
            "--optimizers",
            "sgd",
            "--schedules",
            "plateau(factor=2)",
            "--db",
            str(db),
        ]
    )
    _, err = capsys.readouterr()
    assert code == 2
    assert "plateau: factor must be < 1, got factor=2" in err
    assert not db.exists()
