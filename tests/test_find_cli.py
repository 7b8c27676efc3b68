"""``lrlab find`` and `lrlab.finder.find_on_task`: a task's range test from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch.nn import functional as F

from lrlab.cli import main
from lrlab.cli.find_cmd import specs
from lrlab.finder import find_on_task, task_batches
from lrlab.schedules import parse
from lrlab.tasks import get_task, load_task_data


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_find_prints_the_table_and_specs_and_writes_json_and_plot(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    plot, data = tmp_path / "out" / "iris.png", tmp_path / "iris.json"
    code, out, err = _run(
        capsys,
        "find",
        "iris",
        "--optimizer",
        "momentum",
        "--steps",
        "40",
        "--repeats",
        "2",
        "--seed",
        "3",
        "--plot",
        str(plot),
        "--json",
        str(data),
    )
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("iris / momentum: 40 steps from 1e-07 to 10 (exponential)")
    assert lines[1] == ""
    assert lines[2].startswith("rule")
    table = lines[3 : lines.index("", 3)]
    names = [
        " ".join(line.split()[:2]) if line.startswith("lipschitz") else line.split()[0]
        for line in table
    ]
    assert names == ["lipschitz paper", "lipschitz smooth", "valley", "steepest", "minimum"]
    assert "<- recommended" in next(line for line in lines if line.startswith("minimum"))
    assert any(line.startswith("lipschitz paper") for line in lines)
    saved = json.loads(data.read_text())
    suggested = saved["suggested_lr"]
    assert isinstance(suggested, float)
    assert set(saved["suggestions"]) == {"valley", "steepest", "minimum"}
    assert f"suggested_lr = {suggested:.3g} (minimum)" in out
    pasted = [line.strip() for line in lines if line.startswith("  ")]
    assert pasted == specs(suggested, 4400, 22)  # iris: 22 steps an epoch (108 flowers), 200
    for spec in pasted[:2]:
        assert parse(spec)(0) > 0  # constant and one_cycle parse as lrlab schedules
    assert plot.read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--steps", "5"], "--steps must be an integer >= 10, got --steps=5"),
        (["--start", "1", "--end", "0.1"], "start must be below end"),
        (["--repeats", "0"], "repeats must be an integer >= 1"),
        (["--plot", "chart.txt"], "--plot must be a file ending in one of"),
        (["--optimizer", "adamm"], "unknown optimizer 'adamm' (did you mean 'adam'?)"),
        (["--batch-size", "0"], "--batch-size must be >= 1, got --batch-size=0"),
    ],
)
def test_user_errors_are_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = _run(capsys, "find", "iris", "--json", "out.json", *argv)
    assert code == 2
    assert err.count("\n") == 1
    assert message in err
    assert not (tmp_path / "out.json").exists()


def test_output_paths_are_checked_before_training(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = _run(capsys, "find", "mnist5k", "--json", str(tmp_path))
    assert code == 2
    assert "--json must be a file" in err
    code, _, err = _run(capsys, "find", "no-such-task", "--json", str(tmp_path / "a.json"))
    assert code == 2
    assert "unknown task 'no-such-task'" in err


def test_no_suggestion_is_an_error_after_the_files(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    data = tmp_path / "r.json"
    code, out, err = _run(
        capsys,
        "find",
        "digits",
        "--start",
        "1e4",
        "--end",
        "1e8",
        "--steps",
        "10",
        "--json",
        str(data),
    )
    assert code == 2
    assert "found no LR on any repeat" in err
    assert json.loads(data.read_text())["suggested_lr"] is None
    assert "suggested_lr =" not in out


def test_find_on_task_starts_from_the_runs_initial_weights() -> None:
    result = find_on_task("iris", "sgd", seed=3, steps=10, lipschitz=False)
    task = get_task("iris")
    torch.manual_seed(3)
    model = task.build_model()
    torch.manual_seed(3)  # find seeds the global generator with the seed, then draws batches
    inputs, targets = next(iter(task_batches(load_task_data("iris", None, None), 5)))
    assert result.curves[0].losses[0] == F.cross_entropy(model(inputs), targets).item()
    assert dict(result.extra) == {
        "task": "iris",
        "optimizer": "sgd",
        "model": "mlp",
        "batch_size": 5,
        "steps_per_epoch": 22,
        "total_steps": 4400,
    }


def test_specs() -> None:
    assert specs(0.05, 30, 10) == [
        "constant(lr=0.05)",
        "one_cycle(lr=0.05, steps=30)",
        "cyclic(lr=0.0125, max_lr=0.05, step_size=15)",
    ]
