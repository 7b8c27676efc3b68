"""The benchmark from Python (`lrlab.train`, `lrlab.compare`), the README's example run as it is
written, the layering (the report needs records only, not torch), and library errors that name
parameters while the CLI names flags."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

import lrlab
from lrlab.cli import main
from lrlab.record import RunConfig
from lrlab.store import Store
from tests.fakes import record

ROOT = Path(__file__).resolve().parents[1]


def test_compare_returns_the_ranking_summaries_frames_and_plots(tmp_path: Path) -> None:
    sweep: dict[str, Any] = {
        "optimizers": ["sgd", "adam"],
        "methods": [("sgd", "lipschitz(bound=smooth)")],
        "seeds": [0, 1],
        "lr_grid": [0.01, 0.1],
        "holdout_seeds": 2,
        "epochs": 2,
        "db": tmp_path / "runs.sqlite",
    }
    result = lrlab.compare("iris", **sweep, workers=1)
    # sgd and adam: 2 LRs x 2 tuning seeds; then the three methods on 2 fresh seeds.
    assert result.ran == 2 * 2 * 2 + 3 * 2
    assert sorted(result.ranking) == ["adam", "sgd", "sgd + lipschitz(bound=smooth)"]
    lipschitz = result.summary("sgd + lipschitz(bound=smooth)")
    assert lipschitz.group == "no tuning"
    assert lipschitz.lr == lipschitz.records[0].step_lr[0]
    assert lipschitz.seeds == (1000, 1001)
    adam = result.summary("adam")
    assert adam.group == "tuned"
    assert (adam.selected_on, adam.tuning_seeds, adam.seeds) == ("validation", (0, 1), (1000, 1001))
    assert adam.fresh
    assert {r.config.seed for r in adam.records} == {1000, 1001}
    assert {r.config.lr for r in adam.records} == {adam.lr}
    frame = result.to_pandas()
    assert list(frame["method"]) == result.ranking
    assert {"median_final", "median_steps_to_target", "budget"} <= set(frame.columns)
    assert len(result.to_pandas("runs")) == 14
    ax = result.plot("loss")
    assert ax.get_lines()
    files = result.write_report(tmp_path / "report")
    assert files.markdown.is_file()
    again = lrlab.compare("iris", **sweep, workers=2)  # the store has them all
    assert again.ran == 0
    assert again.ranking == result.ranking


def test_a_task_object_runs_in_this_process_only(tmp_path: Path) -> None:
    data = lrlab.Task(
        name="line",
        model=lambda: torch.nn.Linear(1, 1),
        train=(torch.linspace(-1, 1, 32)[:, None], torch.linspace(-1, 1, 32)[:, None] * 3),
        loss="mse",
        metric="loss",
        target=1e-3,
        epochs=20,
        batch_size=8,
    )
    result = lrlab.compare(data, optimizers=["sgd"], seeds=2, db=tmp_path / "a.sqlite", workers=1)
    assert result.ranking == ["sgd"]
    assert result.runs[0].config.task == "line"
    with pytest.raises(ValueError, match="a Task object runs in this process only") as info:
        lrlab.compare(data, optimizers=["sgd"], seeds=2, db=tmp_path / "b.sqlite", workers=2)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "b.sqlite").exists()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"optimizers": "sgd"}, "optimizers must be a list of optimizer names"),
        ({"optimizers": ["sgdd"]}, "unknown optimizer 'sgdd'"),
        ({"optimizers": ["sgd"], "lr_grid": [0.1, -1]}, r"lr_grid\[1\] must be > 0"),
        ({"optimizers": ["sgd"], "seeds": 0}, "seeds must be >= 1, got seeds=0"),
        ({"optimizers": ["sgd"], "workers": 0}, "workers must be >= 1, got workers=0"),
        ({"optimizers": ["sgd"], "epochs": 0}, "epochs must be >= 1, got epochs=0"),
        ({"optimizers": ["sgd"], "batch_size": -3}, "batch_size must be >= 1"),
        ({"optimizers": ["sgd"], "executor": "slurm"}, "executor must be one of local, ray"),
        (
            {"optimizers": ["sgd"], "schedules": ["warmup(cosine(lr=1), steps=5)"]},
            "missing argument steps",
        ),
        ({"optimizers": ["sgd"], "epoch": 3}, "unexpected argument 'epoch'"),
    ],
)
def test_compare_checks_everything_before_running(
    tmp_path: Path, kwargs: dict[str, object], message: str
) -> None:
    db = tmp_path / "never.sqlite"
    with pytest.raises(ValueError, match=message) as info:
        lrlab.compare("iris", db=db, **kwargs)  # type: ignore[arg-type]
    assert "\n" not in str(info.value)
    assert "--" not in str(info.value)  # the library names parameters, not flags
    assert not db.exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--workers", "0"], "--workers must be >= 1, got --workers=0"),
        (["--epochs", "0"], "--epochs must be >= 1, got --epochs=0"),
        (["--batch-size", "0"], "--batch-size must be >= 1, got --batch-size=0"),
        (["--lr-grid", "0.1,-1"], "--lr-grid values must be finite and > 0"),
    ],
)
def test_the_cli_names_flags_for_the_same_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    db = tmp_path / "never.sqlite"
    code = main(["compare", "iris", "--optimizers", "sgd", "--db", str(db), *argv])
    err = capsys.readouterr().err
    assert code == 2
    assert err == f"lrlab: error: {message}\n" or message in err
    assert not db.exists()


def test_the_readme_example_runs_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Python block under "Your own model and data" in the README, executed."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Your own model and data", 1)[1]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert blocks, "the README's section has no Python example"
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "readme_example"}
    exec(compile(blocks[0], "README.md", "exec"), namespace)
    result = namespace["result"]
    assert isinstance(result, lrlab.Comparison)
    assert result.ranking
    assert (tmp_path / "my-runs.sqlite").is_file()


BLOCK_TORCH = """
import sys

class BlockTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch is blocked in this test")
        return None

sys.meta_path.insert(0, BlockTorch())
"""


def test_the_report_needs_no_torch(tmp_path: Path) -> None:
    """`lrlab report` (and ``import lrlab.report``) in a process where importing torch fails:
    the report reads records only, its profiles over two stores and LR-sensitivity plots
    included."""
    db = tmp_path / "runs.sqlite"
    with Store(db) as store:
        for seed in range(3):
            config = RunConfig(task="iris", optimizer="adam", seed=seed, lr=0.01)
            store.put(config, record(config, [0.5, 0.8, 0.95]))
            lipschitz = RunConfig(task="iris", schedule="lipschitz(bound=smooth)", seed=seed)
            made = record(lipschitz, [0.6, 0.7, 0.8], lr=0.3)
            made.self_tuning = True
            made.initial_lr = 0.3
            store.put(lipschitz, made)
    other = tmp_path / "other.sqlite"
    with Store(other) as store:
        for lr in (0.001, 0.01):
            config = RunConfig(
                task="digits", optimizer="adam", lr=lr, schedule="cosine(lr=1, steps=30)"
            )
            store.put(config, record(config, [0.5, 0.95, 0.95], lr=lr))
    code = BLOCK_TORCH + (
        "import lrlab.report\n"
        "from lrlab.cli import main\n"
        f"code = main(['report', '--db', {str(db)!r}, '--db', {str(other)!r}, "
        f"'--out', {str(tmp_path / 'out')!r}])\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "sys.exit(code)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "adam" in result.stdout
    assert "none (3 runs)" in result.stdout  # the group comes from the records
    assert "performance profiles over 2 tasks" in result.stdout
    assert (tmp_path / "out" / "report.md").is_file()
    assert (tmp_path / "out" / "profile.png").is_file()
    assert (tmp_path / "out" / "digits-lr-sensitivity.png").is_file()


def test_version_1_records_still_read() -> None:
    config = RunConfig(task="iris", schedule="lipschitz(bound=paper)")
    data = record(config, [0.5]).to_dict()
    for key in ("self_tuning", "initial_lr", "task_name"):
        del data[key]
    data["version"] = 1
    old = lrlab.RunRecord.from_dict(data)
    assert old.self_tuning
    assert old.initial_lr == data["step_lr"][0]
    assert old.task_name == "iris"
