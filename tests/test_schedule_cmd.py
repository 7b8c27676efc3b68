"""``lrlab schedule`` previews of the new schedules, and of plateau from a CSV column or a stored
run, with one-line errors naming the file and column."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.optim.lr_scheduler import ReduceLROnPlateau

from lrlab.cli import main
from lrlab.record import EpochStats, RunConfig, RunRecord
from lrlab.schedules import parse
from lrlab.store import Store

VAL_LOSS = [1.0, 0.8, 0.8, 0.81, 0.79, 0.9, 0.95, 0.95]
ACCURACY = [0.5, 0.6, 0.6, 0.61, 0.6, 0.6, 0.7, 0.7]


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _rows(out: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(out)))


@pytest.fixture
def metrics_csv(tmp_path: Path) -> Path:
    path = tmp_path / "history.csv"
    lines = ["epoch,val_loss,accuracy"]
    lines += [f"{e},{v},{a}" for e, (v, a) in enumerate(zip(VAL_LOSS, ACCURACY, strict=True))]
    path.write_text("\n".join(lines) + "\n")
    return path


def _torch_lrs(metrics: list[float], lr: float, **options: object) -> list[float]:
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    scheduler = ReduceLROnPlateau(optimizer, **options)  # type: ignore[arg-type]
    lrs = []
    for metric in metrics:
        lrs.append(optimizer.param_groups[0]["lr"])
        scheduler.step(metric)
    return lrs


@pytest.mark.parametrize(
    "spec",
    [
        "wsd(lr=0.1, steps=60, warmup=5, decay=0.25, shape=sqrt)",
        "cyclic(lr=0.001, max_lr=0.01, step_size=7, mode=triangular2)",
    ],
)
def test_previews_of_the_new_schedules(capsys: pytest.CaptureFixture[str], spec: str) -> None:
    code, out, _ = _run(capsys, "schedule", spec, "--steps", "60", "--csv")
    assert code == 0
    assert [float(r["lr"]) for r in _rows(out)] == parse(spec).preview(60)


def test_plateau_from_a_csv_column(capsys: pytest.CaptureFixture[str], metrics_csv: Path) -> None:
    spec = "plateau(lr=0.1, mode=min, factor=0.5, patience=1)"
    code, out, _ = _run(capsys, "schedule", spec, "--metrics", f"{metrics_csv}:val_loss", "--csv")
    assert code == 0
    rows = _rows(out)
    assert [int(r["epoch"]) for r in rows] == list(range(len(VAL_LOSS)))
    assert [float(r["metric"]) for r in rows] == VAL_LOSS
    lrs = [float(r["lr"]) for r in rows]
    assert lrs == _torch_lrs(VAL_LOSS, 0.1, mode="min", factor=0.5, patience=1)
    assert lrs == [0.1, 0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025]

    code, out, _ = _run(capsys, "schedule", spec, "--metrics", f"{metrics_csv}:val_loss")
    assert out.splitlines()[:2] == ["epoch  metric     lr", "    0       1    0.1"]


def test_plateau_per_step_with_a_warmup(
    capsys: pytest.CaptureFixture[str], metrics_csv: Path
) -> None:
    spec = "plateau(lr=0.1, mode=max, factor=0.5, patience=0, warmup=4)"
    argv = ["schedule", spec, "--metrics", f"{metrics_csv}:accuracy", "--steps-per-epoch", "3"]
    code, out, _ = _run(capsys, *argv, "--epochs", "4", "--csv")
    assert code == 0
    rows = _rows(out)
    assert [int(r["step"]) for r in rows] == list(range(12))
    assert [int(r["epoch"]) for r in rows] == [t // 3 for t in range(12)]
    lrs = [float(r["lr"]) for r in rows]
    # Warmup over steps 0-3; epoch 0's end (step 3) is inside it; epoch 1 (0.6) is the first
    # metric seen, epoch 2 (0.6) is no better: halved from step 9.
    assert lrs == [0.0, 0.025, 0.05, 0.07500000000000001] + [0.1] * 5 + [0.05] * 3


def _store_run(db: Path) -> int:
    """A stored run whose validation split measured ``ACCURACY`` (loss 2 - accuracy) and
    whose test split measured something else, which a plateau rule must never see."""
    epochs = [
        EpochStats(e, 10 * (e + 1), 0.1, 1.0, 0.0, 9.0, 0.0, 0.1 * e, 0.1 * e, 2.0 - a, a)
        for e, a in enumerate(ACCURACY)
    ]
    record = RunRecord(
        config=RunConfig(task="iris", optimizer="sgd", lr=0.1),
        status="done",
        metric="accuracy",
        target=0.9,
        higher_is_better=True,
        steps_per_epoch=10,
        steps=80,
        epochs=epochs,
    )
    with Store(db) as store:
        store.put(record.config, record)
        return store.runs()[0].id


def test_plateau_from_a_stored_run(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    db = tmp_path / "runs.sqlite"
    run_id = _store_run(db)
    spec = "plateau(lr=0.1, factor=0.5, patience=1)"  # mode: the task's metric is accuracy
    code, out, _ = _run(capsys, "schedule", spec, "--run", f"{db}:{run_id}", "--csv")
    assert code == 0, out
    lrs = [float(r["lr"]) for r in _rows(out)]
    assert lrs == _torch_lrs(ACCURACY, 0.1, mode="max", factor=0.5, patience=1)
    assert lrs[-1] < 0.1

    # monitor=loss reads the validation loss (2 - accuracy here) and minimises it.
    spec = "plateau(lr=0.1, monitor=loss, factor=0.5, patience=1)"
    code, out, _ = _run(capsys, "schedule", spec, "--run", f"{db}:{run_id}", "--csv")
    losses = [2.0 - a for a in ACCURACY]
    assert [float(r["metric"]) for r in _rows(out)] == losses
    assert [float(r["lr"]) for r in _rows(out)] == _torch_lrs(
        losses, 0.1, mode="min", factor=0.5, patience=1
    )

    # A warmup counts steps: the run's steps per epoch fill them in.
    spec = "plateau(lr=0.1, factor=0.5, patience=1, warmup=5)"
    code, out, _ = _run(capsys, "schedule", spec, "--run", f"{db}:{run_id}", "--csv")
    rows = _rows(out)
    assert len(rows) == 80
    assert [float(r["lr"]) for r in rows[:6]] == [0.1 * t / 5 for t in range(5)] + [0.1]


def test_plateau_plot(
    capsys: pytest.CaptureFixture[str], metrics_csv: Path, tmp_path: Path
) -> None:
    target = tmp_path / "plateau.png"
    code, _, err = _run(
        capsys,
        "schedule",
        "plateau(lr=0.1, mode=min, patience=0)",
        "--metrics",
        f"{metrics_csv}:val_loss",
        "--plot",
        str(target),
    )
    assert code == 0
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert str(target) in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["plateau(lr=0.1, mode=min)"], "plateau depends on the run: give its metric per epoch"),
        (["plateau(mode=min)", "--metrics", "{csv}:val_loss"], "a preview starts from lr=..."),
        (["plateau(lr=0.1)", "--metrics", "{csv}:val_loss"], "mode must be given (min or max)"),
        (
            ["plateau(lr=0.1, mode=min)", "--metrics", "{csv}:loss"],
            "--metrics {csv}: no column 'loss' (columns: epoch, val_loss, accuracy)",
        ),
        (["plateau(lr=0.1, mode=min)", "--metrics", "{csv}"], "--metrics must look like FILE.csv:"),
        (
            ["plateau(lr=0.1, mode=min)", "--metrics", "{dir}/none.csv:val_loss"],
            "--metrics {dir}/none.csv: no such file",
        ),
        (
            ["plateau(lr=0.1, mode=min)", "--metrics", "{bad}:val_loss"],
            "--metrics {bad}:val_loss: line 3: 'n/a' is not a number",
        ),
        (
            ["plateau(lr=0.1, mode=min, warmup=10)", "--metrics", "{csv}:val_loss"],
            "warmup counts steps, so a preview needs steps_per_epoch",
        ),
        (
            ["plateau(lr=0.1, mode=min)", "--metrics", "{csv}:val_loss", "--steps", "5"],
            "plateau previews count epochs, one per metric value: use --epochs",
        ),
        (
            ["plateau(lr=0.1, mode=min)", "--metrics", "{csv}:val_loss", "--epochs", "9"],
            "--epochs must be between 1 and the 8 metric values, got --epochs=9",
        ),
        (["plateau(lr=0.1)", "--run", "{db}:x"], "--run {db}: ID must be a run's id, got 'x'"),
        (["plateau(lr=0.1)", "--run", "{db}:99"], "--run {db}: no run with id 99"),
        (["plateau(lr=0.1)", "--run", "{dir}/no.sqlite:1"], "--run {dir}/no.sqlite: no such file"),
        (["cosine(lr=0.1, steps=10)", "--metrics", "{csv}:val_loss"], "--metrics applies to plat"),
        (["plateau(lr=0.1, factor=3)", "--metrics", "{csv}:val_loss"], "factor must be < 1"),
    ],
)
def test_plateau_preview_errors_are_one_line(
    capsys: pytest.CaptureFixture[str],
    metrics_csv: Path,
    tmp_path: Path,
    argv: list[str],
    message: str,
) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("epoch,val_loss\n0,1.0\n1,n/a\n")
    db = tmp_path / "runs.sqlite"
    _store_run(db)
    names = {"csv": metrics_csv, "dir": tmp_path, "bad": bad, "db": db}
    code, out, err = _run(capsys, "schedule", *(a.format(**names) for a in argv))
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1
    assert message.format(**names) in err


def test_plateau_preview_does_not_import_torch(metrics_csv: Path) -> None:
    code = (
        "import sys\nfrom lrlab.cli import main\n"
        f"main(['schedule', 'plateau(lr=0.1, mode=min)', '--metrics', r'{metrics_csv}:val_loss'])\n"
        "print('torch' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip().splitlines()[-1] == "False"
