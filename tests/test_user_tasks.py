"""Users' own tasks: `lrlab.Task` by keyword, tensors and DataLoaders through one loop,
custom losses and metrics, LipschitzLR on them, and tasks given as ``file.py:function``."""

from __future__ import annotations

import math
import random
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, IterableDataset, TensorDataset

import lrlab
from lrlab.cli import main
from lrlab.engine import loop as engine
from lrlab.models import mlp
from lrlab.record import RunConfig
from lrlab.tasks import get_task, load_tensor_data

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "digits_cnn.py"


def _iris_tensors() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """lrlab's iris as its loader reads it: 120 training flowers, 30 test (no validation)."""
    data = load_tensor_data("iris", None, None, validation=False)
    assert data.x_test is not None
    assert data.y_test is not None
    return data.x_train, data.y_train, data.x_test, data.y_test


def _iris_model() -> nn.Module:
    return mlp([4, 4, 6, 3], init="glorot_uniform")


def test_a_task_of_tensors_trains_exactly_like_the_built_in_one() -> None:
    """The built-in tasks are instances of the same Task: a user's copy of iris, tensors,
    validation fraction and model alike, gives the built-in's numbers to the bit."""
    x, y, xt, yt = _iris_tensors()
    mine = lrlab.Task(
        name="my-iris",
        model=_iris_model,
        train=(x, y),
        test=(xt, yt),
        validation=0.1,
        target=0.9,
        epochs=3,
        batch_size=5,
    )
    ours = lrlab.train("iris", optimizer="momentum", lr=0.05, seed=3, epochs=3)
    theirs = lrlab.train(mine, optimizer="momentum", lr=0.05, seed=3)
    assert theirs.step_loss == ours.step_loss
    assert [e.test_metric for e in theirs.epochs] == [e.test_metric for e in ours.epochs]
    assert [e.val_metric for e in theirs.epochs] == [e.val_metric for e in ours.epochs]
    assert all(e.val_metric is not None for e in ours.epochs)
    assert theirs.task_name == "my-iris"
    assert theirs.steps_to_target == ours.steps_to_target


def _hand_loop(
    loader: DataLoader[tuple[torch.Tensor, ...]], steps: int, seed: int, lr: float
) -> list[float]:
    """The plain PyTorch loop a user would write over the same loader."""
    torch.manual_seed(seed)
    model = _iris_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    losses: list[float] = []
    while len(losses) < steps:
        for inputs, targets in loader:
            if len(losses) == steps:
                break
            loss = nn.functional.cross_entropy(model(inputs), targets)
            losses.append(loss.item())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return losses


@pytest.mark.parametrize("shuffle", [False, True])
def test_a_dataloader_task_equals_a_hand_written_loop(shuffle: bool) -> None:
    x, y, xt, yt = _iris_tensors()
    loader = DataLoader(TensorDataset(x, y), batch_size=16, shuffle=shuffle)
    task = lrlab.Task(
        name="iris-loader",
        model=_iris_model,
        train=loader,
        test=DataLoader(TensorDataset(xt, yt), batch_size=7),
        epochs=2,
    )
    record = lrlab.train(task, optimizer="sgd", lr=0.1, seed=5, epochs=3)
    steps = 3 * len(loader)
    assert record.steps == steps == len(record.step_loss)
    assert record.steps_per_epoch == len(loader)
    assert record.step_loss == pytest.approx(_hand_loop(loader, steps, 5, 0.1), abs=0)
    assert len(record.epochs) == 3
    assert record.epochs[-1].test_metric is not None


def test_dataloader_runs_are_reproducible_and_leave_the_callers_rng_alone() -> None:
    x, y, _, _ = _iris_tensors()
    loader = DataLoader(TensorDataset(x, y), batch_size=16, shuffle=True)
    task = lrlab.Task(name="shuffled", model=_iris_model, train=loader, steps=30)
    torch.manual_seed(123)
    np.random.seed(7)  # noqa: NPY002 (the global generators are what must stay untouched)
    random.seed(9)
    before = (torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate())  # noqa: NPY002
    first = lrlab.train(task, optimizer="adam", seed=2)
    after = (torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate())  # noqa: NPY002
    assert torch.equal(before[0], after[0])
    assert np.array_equal(before[1], after[1])
    assert before[2] == after[2]
    assert lrlab.train(task, optimizer="adam", seed=2).step_loss == first.step_loss
    assert lrlab.train(task, optimizer="adam", seed=4).step_loss != first.step_loss


def test_a_steps_budget_that_ends_mid_pass_continues_the_pass() -> None:
    x, y, _, _ = _iris_tensors()
    loader = DataLoader(TensorDataset(x, y), batch_size=50)  # 3 batches a pass
    task = lrlab.Task(name="short", model=_iris_model, train=loader, steps=7)
    record = lrlab.train(task, optimizer="sgd", lr=0.1)
    assert record.steps == 7
    assert [e.step for e in record.epochs] == [3, 6, 7]


def test_custom_loss_and_metric_callables() -> None:
    x, y, xt, yt = _iris_tensors()
    calls: list[int] = []

    def smoothed_ce(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        return nn.functional.cross_entropy(outputs, targets, label_smoothing=0.1)

    def top2(outputs: torch.Tensor, targets: torch.Tensor) -> float:
        best = outputs.topk(2, dim=-1).indices
        return float((best == targets[:, None]).any(dim=-1).double().mean())

    task = lrlab.Task(
        name="custom",
        model=_iris_model,
        train=(x, y),
        test=(xt, yt),
        loss=smoothed_ce,
        metric=top2,
        target=0.8,
        epochs=2,
        batch_size=10,
    )
    record = lrlab.train(task, optimizer="adam", lr=0.01)
    assert len(calls) >= record.steps
    assert record.metric == "top2"
    assert record.higher_is_better
    assert all(0 <= (e.test_metric or 0) <= 1 for e in record.epochs)
    # The test loss is the custom loss on the whole test set, in eval mode.
    model = _iris_model()
    assert math.isfinite(record.epochs[-1].test_loss or math.nan)
    del model


def test_lipschitz_needs_a_declared_loss_kind_for_a_custom_loss() -> None:
    x, y, _, _ = _iris_tensors()

    def my_loss(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(outputs, targets)

    task = lrlab.Task(name="custom", model=_iris_model, train=(x, y), loss=my_loss, epochs=2)
    with pytest.raises(
        ValueError, match=r"declare the kind it computes with lipschitz\(loss="
    ) as info:
        lrlab.train(task, schedule="lipschitz(bound=smooth)")
    assert "\n" not in str(info.value)
    declared = lrlab.train(task, schedule="lipschitz(bound=smooth, loss=cross_entropy)")
    plain = lrlab.train(
        lrlab.Task(name="ce", model=_iris_model, train=(x, y), epochs=2),
        schedule="lipschitz(bound=smooth)",
    )
    assert declared.step_lr == plain.step_lr


def test_lipschitz_runs_on_a_dataloader_task() -> None:
    x, y, _, _ = _iris_tensors()
    loader = DataLoader(TensorDataset(x, y), batch_size=20)
    task = lrlab.Task(name="loader", model=_iris_model, train=loader, epochs=3)
    per_epoch = lrlab.train(task, schedule="lipschitz(bound=smooth)")
    assert per_epoch.status == "done"
    assert per_epoch.self_tuning
    assert len(per_epoch.extra["controller"]["history"]) == 3  # one LR per epoch
    per_batch = lrlab.train(task, schedule="lipschitz(bound=paper, every=batch)")
    assert per_batch.status == "done"
    assert per_batch.self_tuning
    assert len(set(per_batch.step_lr)) > 1  # a new LR every batch


class _Endless(IterableDataset[tuple[torch.Tensor, torch.Tensor]]):
    """Iris rows, reshuffled every pass, forever (a stream with no len() and no end): each
    ``iter()`` starts from the global torch generator, as a DataLoader's shuffle does."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        while True:
            for row in torch.randperm(len(self.y)).tolist():
                yield self.x[row], self.y[row]


def test_a_stream_without_a_length_needs_epoch_steps_and_then_trains() -> None:
    """A DataLoader over an endless IterableDataset: refused without ``epoch_steps`` (one
    line naming it), and with it, epochs of that many updates, the same batches as a hand
    loop over the same loader, evaluation and LipschitzLR's per-epoch pass included."""
    x, y, xt, yt = _iris_tensors()
    loader = DataLoader(_Endless(x, y), batch_size=16)
    with pytest.raises(TypeError, match=r"train has no len.*give epoch_steps=N") as info:
        lrlab.Task(name="stream", model=_iris_model, train=loader, epochs=2)
    assert "\n" not in str(info.value)
    task = lrlab.Task(
        name="stream",
        model=_iris_model,
        train=loader,
        test=DataLoader(TensorDataset(xt, yt), batch_size=7),
        epochs=3,
        epoch_steps=5,
    )
    record = lrlab.train(task, optimizer="sgd", lr=0.1, seed=5)
    assert record.steps == 15 == len(record.step_loss)
    assert record.steps_per_epoch == 5
    assert [e.step for e in record.epochs] == [5, 10, 15]
    assert record.epochs[-1].test_metric is not None
    torch.manual_seed(5)  # the engine seeds the global generator per run: so the hand loop
    model = _iris_model()
    stream = iter(loader)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    expected = []
    for _ in range(15):
        inputs, targets = next(stream)
        loss = nn.functional.cross_entropy(model(inputs), targets)
        expected.append(loss.item())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert record.step_loss == expected
    lipschitz = lrlab.train(task, schedule="lipschitz(bound=paper)", seed=1, epochs=2)
    assert lipschitz.status in ("done", "diverged")
    assert len(lipschitz.extra["controller"]["history"]) >= 1  # its fresh pass ended


def test_a_tasks_epoch_steps_sets_the_epoch_of_sized_data_too() -> None:
    x, y, _, _ = _iris_tensors()
    task = lrlab.Task(
        name="short-epochs",
        model=_iris_model,
        train=(x, y),
        batch_size=5,
        epochs=4,
        epoch_steps=10,
    )
    record = lrlab.train(task, optimizer="sgd", lr=0.05)
    assert record.steps_per_epoch == 10
    assert [e.step for e in record.epochs] == [10, 20, 30, 40]
    with pytest.raises(ValueError, match="epoch_steps must be >= 1, got epoch_steps=0"):
        lrlab.Task(name="bad", model=_iris_model, train=(x, y), epochs=1, epoch_steps=0)


class _TwoInputs(nn.Module):
    """A model of two inputs, which it unpacks from the batch's inputs (a list, as a
    DataLoader collates tuples)."""

    def __init__(self) -> None:
        super().__init__()
        self.left, self.right, self.head = nn.Linear(2, 4), nn.Linear(2, 4), nn.Linear(8, 3)

    def forward(self, inputs: list[torch.Tensor]) -> torch.Tensor:
        left, right = inputs
        return self.head(torch.cat([self.left(left), self.right(right)], 1).relu())


def test_inputs_may_be_a_structure_the_model_unpacks() -> None:
    x, y, xt, yt = _iris_tensors()
    pairs = [((row[:2], row[2:]), label) for row, label in zip(x, y, strict=True)]
    tests = [((row[:2], row[2:]), label) for row, label in zip(xt, yt, strict=True)]
    task = lrlab.Task(
        name="two-inputs",
        model=_TwoInputs,
        train=DataLoader(pairs, batch_size=10, shuffle=True),  # type: ignore[arg-type]
        test=DataLoader(tests, batch_size=30),  # type: ignore[arg-type]
        target=0.9,
        epochs=30,
    )
    record = lrlab.train(task, optimizer="adam", lr=0.01, seed=0)
    assert record.status == "done"
    assert record.best_metric is not None
    assert record.best_metric >= 0.9
    smooth = lrlab.train(task, schedule="lipschitz(bound=smooth)", seed=0, epochs=2)
    assert smooth.status == "done"  # the head's input is found through the structure too


TENSORS = (torch.zeros(3, 2), torch.zeros(3))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "give the training data as train="),
        ({"train": "data"}, "train must be .x, y. tensors, a DataLoader"),
        ({"train": (torch.zeros(3, 2), torch.zeros(4))}, "as many rows, got 3 and 4"),
        ({"train": iter([(torch.zeros(1, 2), torch.zeros(1))])}, "a re-iterable collection"),
        ({"train": []}, "train yields no batches"),
        ({"train": (torch.zeros(3, 2), torch.zeros(3)), "loss": "hinge"}, "loss must be one of"),
        ({"train": (torch.zeros(3, 2), torch.zeros(3)), "metric": 3}, "metric must be one of"),
        ({"train": (torch.zeros(3, 2), torch.zeros(3)), "steps": 5}, "exactly one of epochs"),
        (
            {"train": (torch.zeros(3, 2), torch.zeros(3)), "batch_size": 0},
            "batch_size must be >= 1",
        ),
        (
            {"train": (torch.zeros(3, 2), torch.zeros(3)), "target": math.nan},
            "target must be a finite",
        ),
        ({"train": (torch.zeros(3, 2), torch.zeros(3)), "model": 5}, "model must be a callable"),
    ],
)
def test_bad_tasks_are_one_line_errors(kwargs: dict[str, object], message: str) -> None:
    arguments: dict[str, object] = {"name": "bad", "model": _iris_model, "epochs": 1, **kwargs}
    with pytest.raises(ValueError, match=message) as info:
        lrlab.Task(**arguments)  # type: ignore[arg-type]
    assert "\n" not in str(info.value)


def test_dataloader_tasks_refuse_options_the_loader_owns() -> None:
    x, y, _, _ = _iris_tensors()
    task = lrlab.Task(
        name="loader", model=_iris_model, train=DataLoader(TensorDataset(x, y), 8), epochs=1
    )
    with pytest.raises(ValueError, match="leave batch_size out, got batch_size=4"):
        lrlab.train(task, batch_size=4)
    with pytest.raises(ValueError, match="sampling=replacement needs tensor data"):
        lrlab.train(task, sampling="replacement")


# -- divergence and the two ways losses are read ------------------------------------------------


@pytest.mark.parametrize("sync_every", [1, 4])
def test_divergence_at_step_zero_is_step_zero_on_both_paths(
    monkeypatch: pytest.MonkeyPatch, sync_every: int
) -> None:
    """A loss that is not finite from the very first batch ends the run at step 0, whether the
    host reads every loss (CPU) or reads them in blocks (the GPU path, forced here)."""
    monkeypatch.setattr(engine, "host_sync_every", lambda device: sync_every)
    x, y, _, _ = _iris_tensors()
    poisoned = x.clone()
    poisoned[:] = math.inf
    task = lrlab.Task(name="inf", model=_iris_model, train=(poisoned, y), epochs=2)
    record = lrlab.train(task, optimizer="sgd", lr=0.1)
    assert record.status == "diverged"
    assert record.diverged_at == 0
    assert record.steps == 0
    assert len(record.step_loss) == len(record.step_lr) == 1


@pytest.mark.parametrize("sync_every", [1, 7])
def test_both_paths_record_the_same_run_and_report_every_step(
    monkeypatch: pytest.MonkeyPatch, sync_every: int
) -> None:
    seen: list[tuple[int, float | None, float]] = []

    class Watch:
        def on_start(self, config: RunConfig, total: int, per_epoch: int) -> None:
            pass

        def on_step(self, step: int, loss: float | None, lr: float) -> None:
            seen.append((step, loss, lr))

        def on_epoch(self, stats: object) -> None:
            pass

    reference = lrlab.train("regression", optimizer="sgd", lr=1.0, seed=1, epochs=3)
    assert reference.status == "diverged"
    assert reference.diverged_at is not None
    monkeypatch.setattr(engine, "host_sync_every", lambda device: sync_every)
    record = lrlab.train("regression", optimizer="sgd", lr=1.0, seed=1, epochs=3, observer=Watch())
    assert record.diverged_at == reference.diverged_at
    assert record.steps == reference.steps
    assert len(record.step_loss) == len(record.step_lr) == record.diverged_at + 1
    assert [s for s, _, _ in seen] == list(range(len(record.step_loss)))
    finite = [v for v in record.step_loss if v is not None and math.isfinite(v)]
    assert finite == reference.step_loss[: len(finite)]


# -- tasks from references ----------------------------------------------------------------------


def _write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text))
    return path


def test_a_reference_builds_the_task_and_is_stored_with_the_run(tmp_path: Path) -> None:
    task = get_task(f"{EXAMPLE}:make_task")
    assert task.name == "digits-cnn"
    assert task.reference == f"{EXAMPLE}:make_task"
    assert get_task(f"{EXAMPLE}:make_task") is task  # built once per process
    record = lrlab.train(f"{EXAMPLE}:make_task", optimizer="adam", steps=5)
    assert record.config.task == f"{EXAMPLE}:make_task"
    assert record.task_name == "digits-cnn"


@pytest.mark.parametrize(
    ("source", "ref", "message"),
    [
        (None, "missing.py:make", "task file 'DIR/missing.py' does not exist"),
        ("raise RuntimeError('boom')\n", "bad.py:make", "raised on import: RuntimeError: boom"),
        ("x = 1\n", "bad.py:make", "has no function 'make'"),
        ("def make():\n    return 42\n", "bad.py:make", "must return an lrlab.Task, got int"),
        ("def make():\n    raise KeyError('k')\n", "bad.py:make", "raised: KeyError"),
        (None, "no_such_module_xyz:make", "task module 'no_such_module_xyz' failed to import"),
    ],
)
def test_bad_references_are_one_line_cli_errors(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    source: str | None,
    ref: str,
    message: str,
) -> None:
    if source is not None:
        _write(tmp_path / ref.split(":")[0], source)
    target = str(tmp_path / ref) if ".py" in ref else ref
    code = main(["run", target, "--optimizer", "sgd", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1
    assert "Traceback" not in err
    assert message.replace("DIR", str(tmp_path)) in err


@pytest.mark.slow
def test_the_example_runs_and_compares_from_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The README's commands for a user's own task: `run`, then `compare` in a process pool
    (each worker builds the task again from its reference)."""
    ref = f"{EXAMPLE}:make_task"
    assert main(["run", ref, "--optimizer", "adam", "--epochs", "1", "--quiet"]) == 0
    assert "digits-cnn / adam / seed 0: done" in capsys.readouterr().out
    db = tmp_path / "runs.sqlite"
    argv = ["compare", ref, "--optimizers", "sgd,adam", "--seeds", "2", "--epochs", "1"]
    argv += ["--lr-grid", "0.01,0.1", "--db", str(db), "--workers", "2"]
    argv += ["--method", "sgd:lipschitz(bound=smooth)", "--holdout-seeds", "2"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "digits-cnn" in out
    assert "sgd + lipschitz(bound=smooth)" in out
    result = lrlab.compare(
        ref,
        optimizers=["sgd", "adam"],
        methods=[("sgd", "lipschitz(bound=smooth)")],
        seeds=2,
        lr_grid=[0.01, 0.1],
        db=db,
        epochs=1,
        holdout_seeds=2,
    )
    assert result.ran == 0  # every run came from the store
    # 2 optimizers x 2 LRs x 2 tuning seeds, then 3 methods x 2 fresh seeds
    assert len(result.runs) == 8 + 6
    assert {r.record.task_name for r in result.runs if r.record} == {"digits-cnn"}
    assert (tmp_path / "runs-report" / "digits-cnn-loss.png").is_file()


def test_the_range_test_takes_a_user_task(capsys: pytest.CaptureFixture[str]) -> None:
    """`lrlab find file.py:function`: the range test on the task's own DataLoader."""
    code = main(["find", f"{EXAMPLE}:make_task", "--steps", "20", "--repeats", "1"])
    out = capsys.readouterr().out
    assert code == 0
    assert "suggested_lr = " in out
    assert "lipschitz smooth" in out  # the task declares a known loss kind
