"""Issue 22: a user's task is checked on one batch before anything trains
(`lrlab.engine.preflight.check_task`). Each classic mistake is one line naming the user's
``file:line``, exit code 2 in the CLI, a `lrlab.errors.TaskError` in Python, with nothing
stored and no worker started; the check changes nothing a run computes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset

import lrlab
from lrlab.cli import main
from lrlab.engine import check_task, plan, task_data, train_run
from lrlab.errors import TaskError
from lrlab.record import RunConfig
from tests.user_task_sources import BAD_TASKS, MISTAKES, mistake_line


@pytest.fixture(scope="module")
def mistakes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding the task file of mistakes (imported once for the module's tests)."""
    folder = tmp_path_factory.mktemp("mistakes")
    (folder / "mistakes.py").write_text(MISTAKES)
    return folder


def _one_line(err: str) -> str:
    assert err.count("\n") == 1, err
    assert err.startswith("lrlab: error: "), err
    assert "Traceback" not in err
    return err.strip()


@pytest.mark.parametrize("name", list(BAD_TASKS))
def test_each_mistake_is_one_line_with_the_users_file_and_line(
    name: str, mistakes: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(mistakes)
    monkeypatch.delenv("LRLAB_TRACEBACK", raising=False)
    code = main(["run", f"mistakes.py:{name}", "--optimizer", "sgd", "--quiet"])
    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""
    line = _one_line(err)
    assert re.search(BAD_TASKS[name][0], line), line
    assert line.endswith(f"(mistakes.py:{mistake_line(name)})"), line


@pytest.mark.parametrize("command", ["compare", "find"])
@pytest.mark.parametrize(
    "name", ["labels_out_of_range", "dataset_raises_in_workers", "loss_detached"]
)
def test_compare_and_find_check_before_anything_runs(
    command: str,
    name: str,
    mistakes: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(mistakes)
    argv = [command, f"mistakes.py:{name}"]
    if command == "compare":
        argv += ["--optimizers", "sgd,adam", "--workers", "2", "--db", "runs.sqlite"]
    assert main(argv) == 2
    line = _one_line(capsys.readouterr().err)
    assert re.search(BAD_TASKS[name][0], line)
    assert f"mistakes.py:{mistake_line(name)}" in line
    assert not (mistakes / "runs.sqlite").exists()
    assert not (mistakes / "runs-report").exists()


def test_the_python_api_raises_a_task_error_chained_to_the_users_error(
    mistakes: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(mistakes)
    for call in (
        lambda: lrlab.train("mistakes.py:loss_raises"),
        lambda: lrlab.compare("mistakes.py:loss_raises", optimizers=["sgd"], db="api.sqlite"),
        lambda: lrlab.find_on_task("mistakes.py:loss_raises"),
    ):
        with pytest.raises(
            TaskError, match=r"^task loss: .*my loss is broken \(mistakes\.py:\d+\)$"
        ) as info:
            call()
        assert isinstance(info.value, ValueError)
        assert isinstance(info.value.__cause__, RuntimeError)
    assert not (mistakes / "api.sqlite").exists()


def test_lrlab_traceback_shows_the_users_traceback(
    mistakes: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(mistakes)
    monkeypatch.setenv("LRLAB_TRACEBACK", "1")
    with pytest.raises(TaskError) as info:
        main(["run", "mistakes.py:dataset_raises", "--optimizer", "sgd", "--quiet"])
    cause = info.value.__cause__
    assert isinstance(cause, KeyError)
    frames = [frame.name for frame in __import__("traceback").extract_tb(cause.__traceback__)]
    assert frames[-1] == "__getitem__"


# -- the check changes nothing --------------------------------------------------------------


class _Noisy(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Points with noise drawn from torch's global generator on every fetch."""

    def __init__(self) -> None:
        self.x = torch.randn(40, 4, generator=torch.Generator().manual_seed(1))
        self.y = (self.x[:, 0] > 0).long()

    def __len__(self) -> int:
        return 40

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[i] + 0.01 * torch.randn(4), self.y[i]


def _loader_task(calls: list[int]) -> lrlab.Task:
    def counted(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        return F.cross_entropy(outputs, targets)

    own = torch.Generator().manual_seed(7)  # the loader's own: no run seeds it
    return lrlab.Task(
        name="noisy",
        model=lambda: nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.3), nn.Linear(8, 2)),
        train=DataLoader(_Noisy(), batch_size=8, shuffle=True, generator=own),
        test=DataLoader(_Noisy(), batch_size=16),
        loss=counted,
        metric="accuracy",
        epochs=2,
    )


def _check(task: lrlab.Task, config: RunConfig) -> None:
    data = task_data(config, task)
    check_task(config, task, data, plan(config, data, task))


def test_a_checked_run_is_bit_identical_to_an_unchecked_one() -> None:
    calls: list[int] = []
    checked, plain = _loader_task(calls), _loader_task([])
    config = RunConfig(task="noisy", optimizer="momentum", lr=0.1, seed=3)
    before = torch.get_rng_state()
    _check(checked, config)
    assert calls  # the check ran the loss
    assert torch.equal(torch.get_rng_state(), before)
    one = train_run(config, task=checked)
    two = train_run(config, task=plain)
    assert one.step_loss == two.step_loss
    assert [e.metric for e in one.epochs] == [e.metric for e in two.epochs]
    assert [e.test_loss for e in one.epochs] == [e.test_loss for e in two.epochs]


def test_a_task_is_checked_once_per_process() -> None:
    calls: list[int] = []
    task = _loader_task(calls)
    config = RunConfig(task="noisy", optimizer="sgd", seed=0)
    _check(task, config)
    first = len(calls)
    _check(task, RunConfig(task="noisy", optimizer="adam", seed=5, lr=0.01))
    assert first > 0
    assert len(calls) == first
    _check(task, RunConfig(task="noisy", optimizer="sgd", batch_size=None, model="model"))
    assert len(calls) == first  # the default model named: the same check
    _check(task, RunConfig(task="noisy", optimizer="sgd", validation=False))
    assert len(calls) == 2 * first  # other data (no validation split): checked again


def test_a_dataloader_that_needs_its_worker_init_fn_is_not_refused() -> None:
    """Data a worker_init_fn sets up cannot be fetched here: the check leaves it to the run."""

    class Opened(Dataset[tuple[torch.Tensor, torch.Tensor]]):
        rows: torch.Tensor | None = None

        def __len__(self) -> int:
            return 16

        def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
            assert self.rows is not None, "open me first"
            return self.rows[i], torch.tensor(i % 2)

    def open_rows(worker: int) -> None:
        info = torch.utils.data.get_worker_info()
        info.dataset.rows = torch.ones(16, 4)  # type: ignore[union-attr]

    task = lrlab.Task(
        name="opened",
        model=lambda: nn.Linear(4, 2),
        train=DataLoader(Opened(), batch_size=4, num_workers=1, worker_init_fn=open_rows),
        epochs=1,
    )
    _check(task, RunConfig(task="opened", optimizer="sgd"))


def test_a_mistake_that_shows_later_fails_its_run_and_the_comparison_says_so(
    tmp_path: Path,
) -> None:
    """The check passes on the first batch (the loss's 1st call); the loss then raises at
    every 5th call: each run makes 4 (64 samples in batches of 16), so the 1st run fails at
    its last step and the 3rd at its first, stored as failed with the error, the others go
    on, and `Comparison.failed` lists the two."""
    calls: list[int] = []

    def wearing(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        if len(calls) % 5 == 0:
            raise RuntimeError(f"worn out at call {len(calls)}")
        return F.cross_entropy(outputs, targets)

    x = torch.randn(64, 4, generator=torch.Generator().manual_seed(0))
    task = lrlab.Task(
        name="wearing",
        model=lambda: nn.Linear(4, 2),
        train=(x, (x[:, 0] > 0).long()),
        loss=wearing,
        metric="accuracy",
        batch_size=16,
        epochs=1,
    )
    result = lrlab.compare(task, optimizers=["sgd", "adam"], holdout_seeds=2, db=tmp_path / "r.db")
    assert sorted(run.status for run in result.runs) == ["done", "done", "failed", "failed"]
    assert sorted(run.error or "" for run in result.failed) == [
        "RuntimeError: worn out at call 10",
        "RuntimeError: worn out at call 5",
    ]
