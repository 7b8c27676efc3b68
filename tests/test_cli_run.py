"""``lrlab run``, ``lrlab tasks`` and ``lrlab download`` from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lrlab.cli import main
from lrlab.record import RunRecord
from lrlab.tasks import TASKS


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_run_prints_a_summary_and_writes_the_record(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    target = tmp_path / "out" / "run.json"
    code, out, err = _run(
        capsys,
        "run",
        "iris",
        "--optimizer",
        "momentum",
        "--lr",
        "0.05",
        "--epochs",
        "3",
        "--seed",
        "2",
        "--json",
        str(target),
        "--optimizer-arg",
        "momentum=0.5",
    )
    assert code == 0
    assert "iris / momentum / seed 2: done" in out
    assert "66 steps, 3 epochs" in out  # 108 training flowers (12 validate) in batches of 5
    assert "target accuracy >= 0.9" in out
    assert "step/s" in err or "step" in err  # the progress bar went to stderr
    record = RunRecord.from_json(target.read_text())
    assert record.config.optimizer_args == {"momentum": 0.5}
    assert len(record.step_loss) == 66
    assert json.loads(target.read_text())["status"] == "done"


def test_run_quiet_with_a_schedule(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(
        capsys,
        "run",
        "quadratic",
        "--optimizer",
        "sgd",
        "--schedule",
        "exponential(lr=0.2, rate=0.99, every=1)",
        "--quiet",
    )
    assert code == 0
    assert err == ""
    assert "quadratic / sgd / exponential(lr=0.2, rate=0.99, every=1) / seed 0: done" in out
    assert "reached at step 21" in out


def test_divergence_is_a_result_not_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(
        capsys, "run", "mnist5k", "--optimizer", "sgd", "--lr", "1e6", "--steps", "20", "--quiet"
    )
    assert code == 0
    assert ": diverged at step" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "iriss", "--optimizer", "sgd"], "unknown task 'iriss'"),
        (["run", "iris", "--optimizer", "adamm"], "unknown optimizer 'adamm'"),
        (
            ["run", "iris", "--optimizer", "sgd", "--schedule", "warmup(cosine(lr=0.1), steps=5)"],
            "cosine: missing argument steps",
        ),
        (
            ["run", "iris", "--optimizer", "sgd", "--optimizer-arg", "momentum"],
            "--optimizer-arg must look like KEY=VALUE",
        ),
        (
            ["run", "iris", "--optimizer", "adam", "--optimizer-arg", "momentum=0.9"],
            "optimizer 'adam' takes no argument 'momentum'",
        ),
        (["run", "iris", "--optimizer", "sgd", "--threads", "0"], "--threads must be >= 1"),
        (["run", "iris", "--optimizer", "sgd", "--split", "everything"], "split must be one of"),
    ],
)
def test_run_user_errors(capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    code, _out, err = _run(capsys, *argv, "--quiet")
    assert code == 2
    assert err.startswith("lrlab: error: ")
    assert err.count("\n") == 1
    assert message in err


@pytest.mark.parametrize("task", ["mnist", "fashion-mnist", "cifar10"])
def test_missing_data_says_where_it_looked(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, task: str
) -> None:
    code, _, err = _run(
        capsys, "run", task, "--optimizer", "sgd", "--data-dir", str(tmp_path), "--quiet"
    )
    assert code == 2
    assert err.count("\n") == 1
    assert str(tmp_path) in err
    assert f"lrlab download {task}" in err


def test_missing_data_uses_lrlab_data_variable(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LRLAB_DATA", str(tmp_path / "from-env"))
    code, _, err = _run(capsys, "run", "mnist", "--optimizer", "sgd", "--quiet")
    assert code == 2
    assert str(tmp_path / "from-env") in err


def test_tasks_lists_every_task_with_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "tasks")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == [
        "task",
        "loss",
        "metric",
        "batch",
        "budget",
        "target",
        "models",
        "data",
    ]
    for name in TASKS:
        assert any(line.startswith(name + " ") for line in lines)
    assert any(
        line.startswith("iris ") and "200 epochs" in line and " 5 " in line for line in lines
    )


def test_download_from_a_local_mirror(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The command end to end against a file:// mirror holding files with the right MD5s."""
    from lrlab.data import remote
    from lrlab.data.idx import file_md5
    from lrlab.data.remote import RemoteFile
    from tests.test_tasks import write_mnist

    mirror = tmp_path / "mirror"
    write_mnist(mirror, 20, 10, gz=True)
    files = [
        RemoteFile(p.name, file_md5(p), ("https://example.invalid/" + p.name,))
        for p in sorted(mirror.iterdir())
    ]
    monkeypatch.setitem(remote.KNOWN, "mnist", files)
    code, out, _ = _run(
        capsys,
        "download",
        "mnist",
        "--data-dir",
        str(tmp_path / "data"),
        "--base-url",
        mirror.as_uri(),
    )
    assert code == 0
    assert f"mnist: ready in {tmp_path / 'data' / 'mnist'}" in out
    assert sorted(p.name for p in (tmp_path / "data" / "mnist").iterdir()) == sorted(
        f.name for f in files
    )
