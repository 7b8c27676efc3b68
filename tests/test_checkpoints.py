"""Mid-run checkpoints: a run killed at any step resumes from its latest checkpoint and ends bit
for bit as the uninterrupted run (weights, record, what its observer saw); bad checkpoints are
refused or skipped as documented; a sweep resumes its unfinished runs from theirs; a real
SIGKILL mid-run (slow)."""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lrlab
from lrlab.cli import main
from lrlab.controllers import CONTROLLERS, ControllerEntry, LRController
from lrlab.engine import train_run
from lrlab.engine.checkpoint import Checkpoints, CheckpointWarning, run_digest
from lrlab.record import EpochStats, RunConfig, RunRecord
from lrlab.tasks import Task

ROOT = Path(__file__).resolve().parents[1]


class Tracked:
    """Builds the toy model (batch norm, dropout: buffers and RNG draws) and keeps it."""

    def __init__(self) -> None:
        self.last: nn.Module | None = None

    def __call__(self) -> nn.Module:
        self.last = nn.Sequential(
            nn.Linear(4, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 3)
        )
        return self.last


def jitter(inputs: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """An augmentation drawing from the run's own generator."""
    return inputs + 0.01 * torch.randn(inputs.shape, generator=generator)


_generator = torch.Generator().manual_seed(0)
X = torch.randn(100, 4, generator=_generator)
Y = torch.randint(0, 3, (100,), generator=_generator)


def tensor_task(builder: Tracked) -> Task:
    return Task(
        name="toy",
        model=builder,
        train=(X, Y),
        test=(X[:30], Y[:30]),
        epochs=3,
        batch_size=8,
        augmentations={"default": jitter},
    )


def stream_task(builder: Tracked) -> Task:
    loader = DataLoader(TensorDataset(X, Y), batch_size=8, shuffle=True)
    return Task(name="toy-stream", model=builder, train=loader, test=(X[:30], Y[:30]), steps=30)


class Kill(Exception):
    """Stands for the process dying at a step."""


class Calls:
    """An observer keeping every call; raises `Kill` once the loss of step ``at`` is in."""

    def __init__(self, at: int | None = None) -> None:
        self.at, self.calls = at, []  # type: ignore[var-annotated]

    def on_start(self, config: RunConfig, total_steps: int, steps_per_epoch: int) -> None:
        self.calls.append(("start", total_steps, steps_per_epoch))

    def on_step(self, step: int, loss: float | None, lr: float) -> None:
        self.calls.append(("step", step, loss, lr))
        if step == self.at:
            raise Kill

    def on_epoch(self, stats: EpochStats) -> None:
        self.calls.append(("epoch", stats.epoch, stats.train_loss, stats.test_metric))


def comparable(record: RunRecord) -> dict[str, Any]:
    """A record without its times and how it was checkpointed (what the run computed)."""
    data = record.to_dict()
    for epoch in data["epochs"]:
        del epoch["train_time"], epoch["wall_time"]
    del data["train_time"], data["wall_time"]
    data["extra"].pop("checkpoint", None)
    for name in ("checkpoint_dir", "checkpoint_every", "checkpoint_seconds"):
        data["config"].pop(name)
    return data


def weights(model: nn.Module | None) -> dict[str, torch.Tensor]:
    assert model is not None
    return {name: value.clone() for name, value in model.state_dict().items()}


def assert_resumes_exactly(
    config: RunConfig, make_task: Any, kills: list[int], directory: Path
) -> None:
    builder = Tracked()
    task = make_task(builder)
    observer = Calls()
    reference = train_run(config, task=task, observer=observer)
    expected = weights(builder.last)
    for at in kills:
        folder = directory / f"kill-{at}"
        checkpointed = dataclasses.replace(config, checkpoint_dir=str(folder), checkpoint_every=4)
        with pytest.raises(Kill):
            train_run(checkpointed, task=task, observer=Calls(at))
        left = list(folder.glob("run-*.pt")) if folder.exists() else []
        assert bool(left) == (at >= 4)  # the first is written after update 3
        resumed_observer = Calls()
        resumed = train_run(checkpointed, task=task, observer=resumed_observer)
        assert comparable(resumed) == comparable(reference), at
        got = weights(builder.last)
        assert all(torch.equal(got[name], expected[name]) for name in expected), at
        assert resumed_observer.calls == observer.calls, at  # what happened before, replayed
        assert resumed.extra["checkpoint"]["resumed_at"] == ([at // 4 * 4] if at >= 4 else [])
        assert not list(folder.iterdir()), "a finished run deletes its checkpoints"


@pytest.mark.parametrize(
    "schedule",
    [
        None,
        "cosine(lr=0.1, steps=39)",
        "plateau(lr=0.05, factor=0.5, patience=0)",
        "lipschitz(bound=smooth, every=batch)",
    ],
)
def test_killed_run_resumes_bit_for_bit(schedule: str | None, tmp_path: Path) -> None:
    """Kills mid-epoch, right after a checkpoint, at an epoch's last update (13 steps an
    epoch) and at the run's last: each resumed run equals the uninterrupted one."""
    config = RunConfig(
        task="toy",
        optimizer="adam" if schedule is None else "momentum",
        lr=0.05 if schedule is None else None,
        schedule=schedule,
        seed=1,
        clip_norm=1.0,
    )
    assert_resumes_exactly(config, tensor_task, [2, 8, 12, 25, 38], tmp_path)


@pytest.mark.parametrize(
    "options",
    [
        {"accumulation_steps": 3, "precision": "bf16"},
        {
            "sampling": "replacement",
            "decay_params": "matrices",
            "optimizer_args": {"weight_decay": 0.1},
        },
        {"schedule": "lipschitz(bound=smooth, source=train)"},
    ],
)
def test_resume_with_the_training_options(options: dict[str, Any], tmp_path: Path) -> None:
    config = RunConfig(task="toy", optimizer="adamw", seed=2, **options)
    assert_resumes_exactly(config, tensor_task, [5, 13], tmp_path)


@pytest.mark.parametrize("accumulation", [1, 3])
def test_resume_mid_pass_of_a_shuffling_loader(accumulation: int, tmp_path: Path) -> None:
    """The loader's pass is drawn again from the RNG state it began with and taken up to
    where the checkpoint left it (13 batches a pass; 30 updates cross passes)."""
    config = RunConfig(task="toy-stream", optimizer="adam", seed=3, accumulation_steps=accumulation)
    assert_resumes_exactly(config, stream_task, [6, 17, 29], tmp_path)


# -- what a checkpoint holds, and bad ones ------------------------------------------------------


def killed_run(tmp_path: Path, at: int = 9) -> tuple[RunConfig, Task, Checkpoints]:
    """A run of the toy task killed after step ``at`` with checkpoints every 4 updates."""
    task = tensor_task(Tracked())
    config = RunConfig(
        task="toy",
        optimizer="sgd",
        lr=0.05,
        seed=4,
        checkpoint_dir=str(tmp_path),
        checkpoint_every=4,
    )
    with pytest.raises(Kill):
        train_run(config, task=task, observer=Calls(at))
    return config, task, Checkpoints(tmp_path, config.key())


def test_checkpoint_is_plain_data_with_a_header(tmp_path: Path) -> None:
    config, _, checkpoints = killed_run(tmp_path)
    assert checkpoints.latest.name == f"run-{run_digest(config.key())}.pt"
    assert checkpoints.previous.exists()  # the one before is kept
    payload = torch.load(checkpoints.latest, weights_only=True)  # no pickled object in it
    assert payload["header"] == {
        "format": 1,
        "lrlab": lrlab.__version__,
        "key": config.key(),
        "step": 8,
    }
    assert torch.load(checkpoints.previous, weights_only=True)["header"]["step"] == 4
    assert sorted(payload["state"]) == [
        "controller",
        "loop",
        "model",
        "optimizer",
        "record",
        "rng",
        "running",
    ]


def test_corrupt_checkpoint_falls_back_to_the_previous_then_to_scratch(tmp_path: Path) -> None:
    reference = train_run(
        RunConfig(task="toy", optimizer="sgd", lr=0.05, seed=4), task=tensor_task(Tracked())
    )
    config, task, checkpoints = killed_run(tmp_path)
    checkpoints.latest.write_bytes(checkpoints.latest.read_bytes()[:200])  # truncated
    with pytest.warns(CheckpointWarning, match=r"is corrupt .*; resuming from the previous one"):
        resumed = train_run(config, task=task)
    assert resumed.extra["checkpoint"]["resumed_at"] == [4]
    assert comparable(resumed) == comparable(reference)

    config, task, checkpoints = killed_run(tmp_path)
    torch.save({"header": "nonsense", "state": {}}, checkpoints.latest)
    checkpoints.previous.write_bytes(b"not a checkpoint at all")
    with pytest.warns(CheckpointWarning) as caught:
        resumed = train_run(config, task=task)
    messages = [str(w.message) for w in caught]
    assert "its header is missing or incomplete" in messages[0]
    assert messages[1].endswith("starting the run from scratch")
    assert resumed.extra["checkpoint"]["resumed_at"] == []
    assert comparable(resumed) == comparable(reference)


def test_checkpoint_with_a_pickled_object_is_not_unpickled(tmp_path: Path) -> None:
    config, task, checkpoints = killed_run(tmp_path)
    payload = torch.load(checkpoints.latest, weights_only=True)
    payload["state"]["evil"] = Path("/")  # an object: weights_only refuses to build it
    torch.save(payload, checkpoints.latest)
    with pytest.warns(CheckpointWarning, match=r"is corrupt \(.*Weights only load failed"):
        resumed = train_run(config, task=task)
    assert resumed.extra["checkpoint"]["resumed_at"] == [4]


def test_checkpoint_of_another_run_or_a_newer_lrlab_is_refused(tmp_path: Path) -> None:
    config, task, checkpoints = killed_run(tmp_path)
    other = dataclasses.replace(config, seed=5)
    shutil.copy(checkpoints.latest, Checkpoints(tmp_path, other.key()).latest)
    with pytest.raises(
        ValueError, match=r"^checkpoint .*\.pt is another run's \(its config key is "
    ):
        train_run(other, task=task)

    payload = torch.load(checkpoints.latest, weights_only=True)
    payload["header"]["lrlab"] = "99.0.0"
    torch.save(payload, checkpoints.latest)
    with pytest.raises(ValueError, match=r"written by lrlab 99\.0\.0 .* newer than this lrlab"):
        train_run(config, task=task)


def test_cli_refuses_another_runs_checkpoint_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["run", "iris", "--optimizer", "sgd", "--steps", "5", "--quiet"]
    first = RunConfig(task="iris", optimizer="sgd", steps=5)
    second = RunConfig(task="iris", optimizer="sgd", steps=5, seed=1)
    tmp_path.mkdir(exist_ok=True)
    Checkpoints(tmp_path, first.key()).save({"x": torch.zeros(1)}, 1)
    os.replace(
        Checkpoints(tmp_path, first.key()).latest, Checkpoints(tmp_path, second.key()).latest
    )
    code = main([*args, "--seed", "1", "--checkpoint-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1
    assert "is another run's" in err


def test_cli_options_reach_the_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run.json"
    code = main(
        [
            "run", "iris", "--optimizer", "adamw", "--steps", "6", "--quiet",
            "--clip-norm", "0.5", "--weight-decay", "0.2", "--decay-params", "matrices",
            "--accumulation-steps", "2", "--precision", "bf16",
            "--checkpoint-dir", str(tmp_path / "ckpt"), "--checkpoint-every", "2",
            "--json", str(out),
        ]
    )  # fmt: skip
    assert code == 0
    record = RunRecord.from_json(out.read_text())
    config = record.config
    assert (config.clip_norm, config.decay_params, config.accumulation_steps) == (
        0.5,
        "matrices",
        2,
    )
    assert config.precision == "bf16"
    assert config.optimizer_args == {"weight_decay": 0.2}
    assert record.extra["checkpoint"]["writes"] == 3
    capsys.readouterr()
    code = main(["run", "iris", "--optimizer", "sgd", "--clip-norm", "0", "--quiet"])
    assert code == 2
    assert capsys.readouterr().err == (
        "lrlab: error: --clip-norm must be > 0, got --clip-norm=0.0\n"
    )
    code = main(["run", "iris", "--optimizer", "sgd", "--accumulation-steps", "0", "--quiet"])
    assert code == 2
    assert (
        "--accumulation-steps must be >= 1, got --accumulation-steps=0" in capsys.readouterr().err
    )


# -- a sweep resumes its unfinished runs ---------------------------------------------------------


class CrashOnce(LRController):
    """A constant LR that crashes its run once, at the update `CRASH` names (then forgets)."""

    def after_update(self, step: int) -> None:
        if CRASH and step == CRASH[0]:
            CRASH.clear()
            raise RuntimeError(f"crashed at step {step}")


CRASH: list[int] = []


def test_sweep_resumes_a_crashed_run_from_its_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(CONTROLLERS._entries, "crash_once", ControllerEntry(CrashOnce, True))
    common: dict[str, Any] = {
        "optimizers": ["momentum"],
        "schedules": ["crash_once()"],
        "seeds": 2,
        "lr_grid": [0.05],
        "steps": 40,
        "workers": 1,
        "optimistic": True,  # one phase: the tuning runs are the runs
    }
    reference = lrlab.compare("iris", db=tmp_path / "reference.sqlite", **common)
    CRASH.append(23)
    db = tmp_path / "killed.sqlite"
    first = lrlab.compare("iris", db=db, checkpoint_every=10, **common)
    assert sorted(run.error is not None for run in first.runs) == [False, True]
    folder = tmp_path / "killed-checkpoints"  # beside the store, given an interval alone
    assert len(list(folder.glob("run-*.pt"))) == 2  # the crashed run's latest and previous
    again = lrlab.compare("iris", db=db, checkpoint_every=10, **common)
    assert again.ran == 1
    records = {run.config.seed: run.record for run in again.runs}
    expected = {run.config.seed: run.record for run in reference.runs}
    assert all(record is not None for record in records.values())
    assert {seed: comparable(r) for seed, r in records.items()} == {  # type: ignore[arg-type]
        seed: comparable(r)
        for seed, r in expected.items()  # type: ignore[arg-type]
    }
    resumed = [r.extra["checkpoint"]["resumed_at"] for r in records.values()]  # type: ignore[union-attr]
    assert sorted(resumed) == [[], [20]]
    assert not list(folder.iterdir())


# -- a real kill -------------------------------------------------------------------------------


def _wait_for(path: Path, pattern: str, process: subprocess.Popen[bytes]) -> Iterator[Path]:
    while process.poll() is None:
        found = list(path.glob(pattern))
        if found:
            yield from found
            return
        time.sleep(0.05)


@pytest.mark.slow
def test_sigkill_mid_run_then_the_same_command_resumes(tmp_path: Path) -> None:
    """``lrlab compare`` with checkpoints, SIGKILLed while a run's checkpoint exists (the
    run is mid-way: a finished run deletes its own), then run again: its runs equal an
    uninterrupted comparison's, one of them resumed."""
    args = [
        "compare", "digits", "--optimizers", "momentum", "--seeds", "2", "--lr-grid", "0.05",
        "--epochs", "40", "--batch-size", "16", "--workers", "1", "--optimistic",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "lrlab"]
    checkpoints = tmp_path / "ckpt"
    killed = [*args, "--db", str(tmp_path / "killed.sqlite"), "--checkpoint-dir", str(checkpoints)]
    killed += ["--checkpoint-every", "50", "--out", str(tmp_path / "report-killed")]
    process = subprocess.Popen([*command, *killed], env=env, cwd=tmp_path)
    try:
        assert next(_wait_for(checkpoints, "run-*.pt", process), None) is not None
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL
    subprocess.run([*command, *killed], env=env, cwd=tmp_path, check=True, capture_output=True)
    reference = [*args, "--db", str(tmp_path / "reference.sqlite"), "--vectorize", "off"]
    reference += ["--out", str(tmp_path / "report-reference")]
    subprocess.run([*command, *reference], env=env, cwd=tmp_path, check=True, capture_output=True)
    from lrlab.store import Store

    with Store(tmp_path / "killed.sqlite") as store:
        resumed = {run.config.seed: run.record for run in store.runs()}
    with Store(tmp_path / "reference.sqlite") as store:
        expected = {run.config.seed: run.record for run in store.runs()}
    assert {s: comparable(r) for s, r in resumed.items()} == {  # type: ignore[arg-type]
        s: comparable(r)
        for s, r in expected.items()  # type: ignore[arg-type]
    }
    assert any(r.extra["checkpoint"]["resumed_at"] for r in resumed.values())  # type: ignore[union-attr]
