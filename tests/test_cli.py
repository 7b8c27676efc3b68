"""The ``lrlab`` command: schedule preview, seed-002 reproduction and user errors."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from pathlib import Path

import pytest

from lrlab.cli import main
from lrlab.studies import seed002


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_schedule_table(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(
        capsys, "schedule", "exponential(lr=0.2, rate=0.99, every=1)", "--steps", "3"
    )
    assert code == 0
    assert out.split("\n") == [
        "step       lr",
        "   0      0.2",
        "   1    0.198",
        "   2  0.19602",
        "",
    ]


def test_schedule_csv_with_epochs(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(
        capsys,
        "schedule",
        "per_epoch(step(lr=0.1, drop=0.5, every=2))",
        "--epochs",
        "4",
        "--steps-per-epoch",
        "3",
        "--csv",
    )
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == 12
    assert [float(r["lr"]) for r in rows] == [0.1] * 6 + [0.05] * 6
    assert [int(r["epoch"]) for r in rows] == [t // 3 for t in range(12)]


def test_schedule_csv_is_full_precision(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = _run(
        capsys, "schedule", "inverse_time(lr=0.1, decay=0.005)", "--steps", "10", "--csv"
    )
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [float(r["lr"]) for r in rows] == [0.1 / (1 + 0.005 * t) for t in range(10)]


def test_schedule_every(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = _run(
        capsys, "schedule", "constant(lr=1)", "--steps", "25", "--every", "10", "--csv"
    )
    assert [r["step"] for r in csv.DictReader(io.StringIO(out))] == ["0", "10", "20", "24"]


def test_schedule_plot(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    target = tmp_path / "plots" / "cosine.png"
    code, _, err = _run(
        capsys, "schedule", "cosine(lr=0.1, steps=100, warmup=10)", "--plot", str(target)
    )
    assert code == 0
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert str(target) in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["schedule", "expo(lr=0.2)"], "unknown schedule 'expo'"),
        (["schedule", "exponential(lr=0.2, rat=0.99)"], "unknown argument 'rat'"),
        (["schedule", "exponential(lr=-0.2, rate=0.99)"], "lr must be > 0, got lr=-0.2"),
        (["schedule", "step(lr=0.1, drop=0.5, every=0)"], "every must be > 0, got every=0"),
        (["schedule", "cosine(lr=0.1, steps=nan)"], "steps must be a finite number, got steps=nan"),
        (["schedule", "constant(lr=0.1)", "--steps", "0"], "--steps must be >= 1"),
        (["schedule", "constant(lr=0.1)", "--epochs", "3"], "--epochs needs --steps-per-epoch"),
        (["schedule", "per_epoch(constant(lr=0.1))"], "missing argument steps_per_epoch"),
        (["schedule", "constant(lr=0.1)", "--steps-per-epoch", "0"], "--steps-per-epoch must be"),
    ],
)
def test_user_errors_are_one_line_exit_2(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, out, err = _run(capsys, *argv)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith("lrlab: error: ")
    assert message in err


def test_error_from_the_installed_command_has_no_traceback() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "lrlab", "schedule", "exponential(lr=0.2, rate=-1)"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr == "lrlab: error: exponential: rate must be > 0, got rate=-1\n"
    assert "Traceback" not in result.stderr


def test_reproduce_seed002_matches_every_published_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the report goes to ./reproduce
    code, out, _ = _run(capsys, "reproduce", "seed-002")
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == 40
    for epoch, published in seed002.PUBLISHED.items():
        assert lines[epoch] == published
    assert all(line.startswith(f"After {i} epoch,w is ") for i, line in enumerate(lines))


def test_seed002_golden_table() -> None:
    """The SPEC's table, to the printed digit."""
    table = {
        0: (2.600000, 36.000000, 0.200000),
        1: (1.174400, 12.959999, 0.198000),
        2: (0.321948, 4.728015, 0.196020),
        3: (-0.191126, 1.747547, 0.194060),
        4: (-0.501926, 0.654277, 0.192119),
        5: (-0.691392, 0.248077, 0.190198),
        16: (-0.997660, 0.000013, 0.170292),
        17: (-0.998449, 0.000005, 0.168589),
        18: (-0.998967, 0.000002, 0.166903),
        19: (-0.999308, 0.000001, 0.165234),
        20: (-0.999535, 0.000000, 0.163581),
        28: (-0.999977, 0.000000, 0.150944),
        39: (-0.999999, 0.000000, 0.135146),
    }
    history = seed002.run()
    for epoch, (w, loss, lr) in table.items():
        row = history[epoch]
        assert (f"{row.w:f}", f"{row.loss:f}", f"{row.lr:f}") == (f"{w:f}", f"{loss:f}", f"{lr:f}")


def test_help_does_not_import_torch() -> None:
    code = (
        "import sys\nfrom lrlab.cli import build_parser\n"
        "build_parser().format_help()\nprint('torch' in sys.modules, 'matplotlib' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False False"
