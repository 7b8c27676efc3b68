"""Issue 22, second pass of hardening: nothing unbounded, nothing written where no one asked,
no nonsense accepted, the Python API as strict as the CLI, stores that say what they wait
for, and the friction a new user met. One test (or a few) per finding, each on the library
where the library was wrong, so the command line and the Python API both get the fix."""

from __future__ import annotations

import logging
import math
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import f1_score
from torch import nn
from torch.nn import functional as F

import lrlab
from lrlab import store as store_module
from lrlab.cli import main
from lrlab.controllers import run_spec
from lrlab.record import RunConfig
from lrlab.schedules import SCHEDULES, parse
from lrlab.store import Lease, Store, StoreError
from lrlab.tasks.task import METRIC_KINDS, MetricSum
from lrlab.validate import (
    MAX_ACCUMULATION,
    MAX_REPEATS,
    MAX_STEPS,
    MAX_WORKERS,
    check_output_path,
)
from lrlab.vectorize.losses import member_metrics
from tests.fakes import record


def _listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def _in_thread(action: Callable[[], object], seconds: float = 10.0) -> object:
    """``action()`` in a thread, failing the test (not hanging it) if it blocks; what it
    raised is raised here."""
    outcome: list[tuple[object, BaseException | None]] = []

    def target() -> None:
        try:
            outcome.append((action(), None))
        except BaseException as error:  # handed to the test's thread
            outcome.append((None, error))

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "blocked"
    value, error = outcome[0]
    if error is not None:
        raise error
    return value


# -- 1. counts bounded, special files refused ------------------------------------------------------


def _linear_task() -> tuple[nn.Module, torch.optim.Optimizer, list[tuple[torch.Tensor, ...]]]:
    torch.manual_seed(0)
    model = nn.Linear(4, 3)
    batches = [(torch.randn(8, 4), torch.randint(0, 3, (8,))) for _ in range(4)]
    return model, torch.optim.SGD(model.parameters(), lr=0.1), batches


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"steps": 2**63}, rf"^steps must be <= {MAX_STEPS}, got steps=9223372036854775808$"),
        ({"steps": MAX_STEPS + 1}, rf"^steps must be <= {MAX_STEPS}"),
        ({"repeats": 10**12}, rf"^repeats must be <= {MAX_REPEATS}, got repeats=10+$"),
        ({"accumulation_steps": 10**12}, rf"^accumulation_steps must be <= {MAX_ACCUMULATION}"),
        ({"steps": 10_000, "accumulation_steps": 10_000}, r"batches a test reads\) must be <="),
        ({"steps": 10.5}, r"^steps must be an integer >= 10, got steps=10\.5$"),
    ],
)
def test_find_refuses_counts_past_their_bound_at_once(
    options: dict[str, object], message: str
) -> None:
    import lrlab.finder  # imported before the clock starts

    model, optimizer, batches = _linear_task()
    started = time.perf_counter()
    with pytest.raises(ValueError, match=message):
        lrlab.find(model, optimizer, batches, F.cross_entropy, **options)  # type: ignore[arg-type]
    assert time.perf_counter() - started < 2.0  # nothing allocated, nothing trained


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"steps": MAX_STEPS + 1}, rf"run: steps must be <= {MAX_STEPS}"),
        ({"epochs": MAX_STEPS + 1}, rf"run: epochs must be <= {MAX_STEPS}"),
        # iris has 22 steps an epoch (108 flowers train, in 5s): 500 000 epochs are 11 million
        (
            {"epochs": 500_000},
            rf"^run: a run takes at most {MAX_STEPS} steps, got 11000000 "
            r"\(epochs=500000 x 22 steps an epoch\)$",
        ),
    ],
)
def test_a_run_longer_than_max_steps_is_refused_before_training(
    options: dict[str, int], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        lrlab.train("iris", **options)  # type: ignore[arg-type]


def test_a_grid_past_a_million_runs_is_refused_before_it_is_built(tmp_path: Path) -> None:
    db = tmp_path / "runs.sqlite"
    grid = [10 ** (-3 + 3 * i / 999) for i in range(1000)]
    with pytest.raises(ValueError, match=r"^a comparison holds at most 1000000 runs, got 2002000 "):
        lrlab.compare(
            "quadratic",
            optimizers=["sgd", "adam"],
            lr_grid=grid,
            seeds=1001,
            optimistic=True,  # (the honest protocol's tuning seeds stop below 1000)
            db=db,
        )
    assert not db.exists()


def test_worker_and_thread_counts_are_bounded(tmp_path: Path) -> None:
    db = tmp_path / "runs.sqlite"
    with pytest.raises(ValueError, match=rf"workers must be <= {MAX_WORKERS}"):
        lrlab.compare("quadratic", optimizers=["sgd"], seeds=1, db=db, workers=10**12)
    with pytest.raises(ValueError, match=rf"threads must be <= {MAX_WORKERS}"):
        lrlab.compare("quadratic", optimizers=["sgd"], seeds=1, db=db, threads=10**6)
    assert not db.exists()


def test_special_files_are_refused_as_outputs_without_being_opened(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match=r"^db must be a plain file, not a FIFO, got db=") as info:
        _in_thread(lambda: check_output_path("", "db", fifo))
    assert str(info.value).endswith(f"got db={str(fifo)!r}")
    with pytest.raises(ValueError, match="db must be a plain file, not a FIFO"):
        _in_thread(lambda: Store(fifo))
    with pytest.raises(StoreError, match="not a plain file"):
        _in_thread(lambda: Store(fifo, readonly=True))
    with pytest.raises(ValueError, match="not a character device"):
        check_output_path("", "plot", "/dev/full")
    with pytest.raises(ValueError, match=r"a file outside /dev \(a folder of the system\)"):
        check_output_path("", "plot", "/dev/null.png")
    with pytest.raises(ValueError, match="outside /proc"):
        check_output_path("", "json", "/proc/self/comm")
    with pytest.raises(ValueError, match="a file, not a folder"):
        check_output_path("", "json", tmp_path)
    (tmp_path / "file").write_text("keep me\n")
    with pytest.raises(ValueError, match=r"a file, not a folder \(it ends with '/'\)"):
        check_output_path("", "json", f"{tmp_path / 'file'}/")
    assert (tmp_path / "file").read_text() == "keep me\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fifo", "file"]


@pytest.mark.parametrize(
    "argv",
    [
        ["schedule", "constant(lr=0.1)", "--plot", "/dev/full"],
        ["schedule", "constant(lr=0.1)", "--plot", "/dev/null"],
        ["schedule", "constant(lr=0.1)", "--plot", "/dev/lrlab-never.png"],
        ["run", "quadratic", "--optimizer", "sgd", "--steps", "2", "--json", "/dev/full"],
    ],
)
def test_nothing_is_written_under_dev(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    before = sorted(os.listdir("/dev"))
    assert main(argv) == 2
    assert capsys.readouterr().err.count("\n") == 1
    assert sorted(os.listdir("/dev")) == before


def test_library_writers_check_their_paths(tmp_path: Path) -> None:
    import matplotlib.pyplot as plt

    from lrlab.plots import save_figure
    from lrlab.report import write_report

    figure = plt.figure()
    with pytest.raises(ValueError, match="save_figure: path must be a plain file"):
        save_figure(figure, "/dev/full")
    plt.close(figure)
    with pytest.raises(ValueError, match="write_report: out must be a folder outside /dev"):
        write_report([], Path("/dev/lrlab-report"), source="x")
    assert not Path("/dev/lrlab-report").exists()


# -- 2. paths are paths; empty values are errors --------------------------------------------------


@pytest.mark.parametrize("name", ["file:new.sqlite", "file:x.sqlite?mode=ro", "a#b%20c?.sqlite"])
def test_a_store_path_is_never_parsed_as_a_uri(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.chdir(tmp_path)
    config = RunConfig(task="iris", optimizer="sgd", seed=0)
    with Store(name) as store, store.holding(Lease.new()):
        store.put(config, record(config, [0.5, 0.9]))
        time.sleep(0.2)  # the lease thread has connected
    assert _listing(tmp_path) == [name]
    with Store(name, readonly=True) as store:
        assert [r.config for r in store.runs()] == [config]
    assert _listing(tmp_path) == [name]


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "quadratic", "--optimizer", "sgd", "--json", ""],
        ["run", "quadratic", "--optimizer", "sgd", "--model", ""],
        ["run", "quadratic", "--optimizer", "sgd", "--split", " "],
        ["schedule", "constant(lr=0.1)", "--plot", ""],
        ["compare", "quadratic", "--optimizers", "sgd", "--out", ""],
        ["find", "iris", "--json", ""],
    ],
)
def test_an_empty_value_is_an_error_not_the_default(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    flag = argv[-2]
    assert capsys.readouterr().err == (
        f"lrlab: error: {flag} must not be empty, got {flag}={argv[-1]!r}\n"
    )


@pytest.mark.parametrize("option", ["model", "split"])
def test_the_api_refuses_an_empty_model_or_split(option: str) -> None:
    with pytest.raises(ValueError, match=rf"{option} must be .*, got {option}=''$"):
        lrlab.train("iris", **{option: ""})  # type: ignore[arg-type]


# -- 3. nonsense refused -----------------------------------------------------------------------


def test_one_lr_per_run(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ValueError, match=r"^lr must be left out or be the schedule's own lr=0\.1"):
        lrlab.train("quadratic", lr=0.5, schedule="constant(lr=0.1)")
    with pytest.raises(ValueError, match=r"schedule's own lr=0\.1"):
        lrlab.train("iris", lr=0.5, schedule="plateau(lr=0.1)")
    record_ = lrlab.train("quadratic", lr=0.1, schedule="constant(lr=0.1)", steps=3)
    assert record_.step_lr == [0.1] * 3  # the same LR twice: no contradiction
    argv = ["run", "quadratic", "--optimizer", "sgd", "--lr", "0.5"]
    assert main([*argv, "--schedule", "constant(lr=0.1)"]) == 2
    assert "--lr must be left out or be the schedule's own lr=0.1" in capsys.readouterr().err


def test_nan_test_inputs_have_no_accuracy() -> None:
    x, y = torch.randn(64, 4), torch.randint(0, 2, (64,))
    task = lrlab.Task(
        name="nan-test",
        model=lambda: nn.Linear(4, 2),
        train=(x, y),
        test=(torch.full((16, 4), math.nan), y[:16]),
        target=0.1,
        epochs=2,
    )
    result = lrlab.train(task, optimizer="sgd")
    assert all(math.isnan(e.test_metric) for e in result.epochs)  # type: ignore[arg-type]
    assert result.steps_to_target is None
    assert result.best_metric is None
    assert '"test_metric":null' in result.to_json()  # stored as JSON's "no number"


def test_a_nan_metric_is_recorded_as_nan_and_said(capsys: pytest.CaptureFixture[str]) -> None:
    from lrlab.cli.run_cmd import summary

    x, y = torch.randn(64, 4), torch.randint(0, 2, (64,))

    def broken(outputs: torch.Tensor, targets: torch.Tensor) -> float:
        return math.nan

    task = lrlab.Task(
        name="nan-metric", model=lambda: nn.Linear(4, 2), train=(x, y), test=(x, y),
        metric=broken, target=0.5, epochs=1,
    )  # fmt: skip
    text = summary(lrlab.train(task, optimizer="sgd"))
    assert "final test broken nan" in text
    assert "target broken >= 0.5: not reached (the metric is nan)" in text


def test_task_names_with_control_characters_are_refused() -> None:
    for name in ("bad\nname", "tab\tname", "bell\x07", "line\u2028sep"):
        with pytest.raises(ValueError, match=r"^Task: name must be printable"):
            lrlab.Task(name=name, model=lambda: nn.Linear(1, 1), train=_xy(), epochs=1)


def _xy() -> tuple[torch.Tensor, torch.Tensor]:
    return torch.randn(8, 1), torch.randint(0, 2, (8,))


@pytest.mark.parametrize("code", ["0", "1", "'bye'", ""])
def test_a_task_file_that_exits_on_import_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], code: str
) -> None:
    path = tmp_path / "exits.py"
    path.write_text(f"import sys\nsys.exit({code})\n")
    assert main(["run", f"{path}:make", "--optimizer", "sgd"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"lrlab: error: task file '{path}' exits on import (sys.exit(")
    assert err.count("\n") == 1


@pytest.mark.parametrize(
    "spec",
    [
        "cosine(lr=0.1, steps=10.5)",
        "linear(lr=0.1, end=0, steps=0.5)",
        "polynomial(lr=0.1, steps=99.9)",
        "one_cycle(lr=0.1, steps=1e2 + 0.5)",
        "wsd(lr=0.1, steps=100.25)",
        "warmup(constant(lr=0.1), steps=2.5)",
    ],
)
def test_a_fraction_of_a_step_is_refused(spec: str) -> None:
    with pytest.raises(ValueError, match=r"steps must be a whole number of steps, got steps="):
        parse(spec.replace("1e2 + 0.5", "100.5"))


def test_whole_steps_written_as_floats_are_taken() -> None:
    assert parse("cosine(lr=0.1, steps=1e3)")(1000) == 0.0


def test_plateau_min_lr_above_the_lr_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"min_lr must be at most the LR it floors, got min_lr=1"):
        parse_plateau("plateau(lr=0.1, min_lr=1)")
    model = nn.Linear(2, 1)
    optimizer = torch.optim.SGD(
        [{"params": [model.weight], "lr": 0.1}, {"params": [model.bias], "lr": 0.001}]
    )
    with pytest.raises(ValueError, match=r"LR of param group 1 it floors, got min_lr=0\.01"):
        lrlab.PlateauLR(optimizer, min_lr=0.01)
    with pytest.raises(ValueError, match=r"got min_lr=0\.05 above lr=0\.01"):
        lrlab.compare(
            "iris", optimizers=["sgd"], schedules=["plateau(min_lr=0.05)"],
            lr_grid=[0.01, 0.1], seeds=1, db=tmp_path / "never.sqlite",
        )  # fmt: skip
    assert not (tmp_path / "never.sqlite").exists()


def parse_plateau(spec: str) -> object:
    from lrlab.controllers import build_controller

    return build_controller(spec)


@pytest.mark.parametrize("flag", ["differentiable", "capturable"])
@pytest.mark.parametrize("optimizer", ["sgd", "adam", "adamw", "rmsprop", "adagrad"])
def test_flags_the_engine_cannot_honour_are_refused(flag: str, optimizer: str) -> None:
    import inspect

    from lrlab.optimizers import check_optimizer_args, optimizer_entry

    if flag not in inspect.signature(optimizer_entry(optimizer).cls).parameters:
        pytest.skip(f"torch's {optimizer} has no {flag}")
    with pytest.raises(ValueError, match=rf"^optimizer '{optimizer}': {flag} must be false \("):
        check_optimizer_args(optimizer, {flag: True})
    assert check_optimizer_args(optimizer, {flag: False}) == {flag: False}


# -- 4. the Python API as strict as the CLI -----------------------------------------------------


def test_find_refuses_an_optimizer_of_another_model() -> None:
    model, _, batches = _linear_task()
    other = torch.optim.SGD(nn.Linear(4, 3).parameters(), lr=0.1)
    with pytest.raises(ValueError, match=r"^optimizer must update the model's parameters"):
        lrlab.find(model, other, batches, F.cross_entropy)
    with pytest.raises(TypeError, match=r"^model must be a torch nn.Module, got model=None$"):
        lrlab.find(None, other, batches, F.cross_entropy)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^optimizer must be a torch Optimizer"):
        lrlab.find(model, "sgd", batches, F.cross_entropy)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^loss_fn must be a function"):
        lrlab.find(model, other, batches, "cross_entropy")  # type: ignore[arg-type]


@pytest.mark.parametrize("value", ["no", 0, None, "false"])
def test_compare_type_checks_vectorize(tmp_path: Path, value: object) -> None:
    db = tmp_path / "never.sqlite"
    with pytest.raises(
        TypeError, match=rf"^vectorize must be true or false, got vectorize={value!r}$"
    ):
        lrlab.compare("quadratic", optimizers=["sgd"], db=db, vectorize=value)  # type: ignore[arg-type]
    assert not db.exists()


@pytest.mark.parametrize(
    ("state", "error", "message"),
    [
        ({}, ValueError, r"^PlateauLR: state_dict must hold best, .*got one without best"),
        (None, TypeError, r"^PlateauLR: state_dict must be a dict from state_dict\(\)"),
        ([1, 2], TypeError, r"^PlateauLR: state_dict must be a dict"),
        ({"lrs": "x"}, TypeError, r"^plateau: lrs must be a list of LRs, got lrs='x'$"),
        ({"updates": -1}, ValueError, r"^plateau: updates must be >= 0, got updates=-1$"),
        ({"best": "low"}, TypeError, r"^plateau: best must be a number, got best='low'$"),
        ({"lrs": [0.1, 0.2]}, ValueError, r"the state has 2 param groups, this optimizer 1"),
    ],
)
def test_plateau_lr_refuses_a_state_that_is_not_one(
    state: object, error: type[Exception], message: str
) -> None:
    model = nn.Linear(2, 1)
    scheduler = lrlab.PlateauLR(torch.optim.SGD(model.parameters(), lr=0.1))
    before = scheduler.state_dict()
    if isinstance(state, dict) and state:
        state = {**before, **state}
    with pytest.raises(error, match=message):
        scheduler.load_state_dict(state)  # type: ignore[arg-type]
    assert scheduler.state_dict() == before


def test_schedule_lr_takes_a_spec_string() -> None:
    model = nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = lrlab.ScheduleLR(optimizer, "cosine(lr=0.1, steps=10, warmup=2)")
    assert scheduler.schedule == lrlab.Cosine(lr=0.1, steps=10, warmup=2)
    with pytest.raises(ValueError, match="unknown schedule 'cosin'"):
        lrlab.ScheduleLR(optimizer, "cosin(lr=0.1, steps=10)")


def test_schedule_lr_takes_param_groups_added_later() -> None:
    """A group added after the scheduler was built gets ``schedule(k) * base / reference``
    from its next step on, its base LR its ``initial_lr`` else its ``lr``; the groups that
    were there see the same LRs as without it, and the state round-trips."""
    first, second, third = nn.Linear(2, 1), nn.Linear(2, 1), nn.Linear(2, 1)
    optimizer = torch.optim.SGD(first.parameters(), lr=0.1)
    schedule = lrlab.Cosine(lr=0.1, steps=10)
    scheduler = lrlab.ScheduleLR(optimizer, schedule)
    optimizer.step()
    scheduler.step()
    optimizer.add_param_group({"params": second.parameters(), "lr": 0.4})
    optimizer.add_param_group({"params": third.parameters(), "lr": 9.0, "initial_lr": 0.05})
    for step in range(2, 6):
        optimizer.step()
        scheduler.step()
        value = schedule(step)
        assert scheduler.get_last_lr() == [value, value * 4, value * 0.5]
        assert [g["lr"] for g in optimizer.param_groups] == scheduler.get_last_lr()
    state = scheduler.state_dict()
    assert state["base_lrs"] == [0.1, 0.4, 0.05]
    fresh = lrlab.ScheduleLR(optimizer, schedule)
    fresh.load_state_dict(state)
    assert fresh.get_last_lr() == scheduler.get_last_lr()


def test_compare_runs_a_task_object_in_this_process_by_default(tmp_path: Path) -> None:
    task = lrlab.Task(
        name="object-only",
        model=lambda: nn.Linear(1, 1),
        train=(torch.linspace(-1, 1, 16)[:, None], torch.linspace(-1, 1, 16)[:, None] * 2),
        loss="mse",
        epochs=2,
        batch_size=8,
    )
    result = lrlab.compare(
        task, optimizers=["sgd", "adam"], holdout_seeds=2, db=tmp_path / "a.sqlite"
    )
    assert result.ran == 4
    with pytest.raises(ValueError, match="runs in this process only"):
        lrlab.compare(task, optimizers=["sgd"], seeds=1, db=tmp_path / "b.sqlite", workers=2)


def test_numpy_data_is_converted_as_pytorch_users_expect() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 4))  # float64
    y = (x[:, 0] > 0).astype(np.int32)
    task = lrlab.Task(
        name="np", model=lambda: nn.Linear(4, 2), train=(x, y), test=(x[:8], y[:8]), epochs=2
    )
    assert task.train[0].dtype == torch.float32
    assert task.train[1].dtype == torch.int64
    assert task.test[0].dtype == torch.float32
    assert task.test[1].dtype == torch.int64
    assert torch.equal(task.train[0], torch.from_numpy(x).float())  # type: ignore[index]
    tensors = lrlab.Task(
        name="np", model=lambda: nn.Linear(4, 2),
        train=(torch.from_numpy(x).float(), torch.from_numpy(y).long()),
        test=(torch.from_numpy(x[:8]).float(), torch.from_numpy(y[:8]).long()), epochs=2,
    )  # fmt: skip
    a, b = lrlab.train(task, optimizer="sgd"), lrlab.train(tensors, optimizer="sgd")
    assert a.step_loss == b.step_loss
    regression = lrlab.Task(
        name="np-reg", model=lambda: nn.Linear(4, 1), train=(x, x[:, :1] * 2.0), loss="mse",
        epochs=1,
    )  # fmt: skip
    assert regression.train[1].dtype == torch.float32  # type: ignore[index]
    as_is = lrlab.Task(
        name="np-f16", model=lambda: nn.Linear(4, 2), train=(x.astype(np.float16), y), epochs=1
    )
    assert as_is.train[0].dtype == torch.float16  # type: ignore[index]


# -- 5. stores -------------------------------------------------------------------------------------


@pytest.fixture
def quick_locks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_module, "NOTICE_AFTER", 0.1)
    monkeypatch.setattr(store_module, "BUSY_TIMEOUT", 0.6)


def _store(path: Path) -> None:
    config = RunConfig(task="iris", optimizer="sgd", seed=0)
    with Store(path) as store:
        store.put(config, record(config, [0.5, 0.9]))


def _exclusive(path: Path) -> sqlite3.Connection:
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("PRAGMA locking_mode=EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")
    holder.execute("UPDATE meta SET value = value")
    return holder


@pytest.mark.usefixtures("quick_locks")
def test_a_locked_store_is_said_to_be_locked(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "runs.sqlite"
    _store(path)
    holder = _exclusive(path)
    try:
        with caplog.at_level(logging.WARNING, "lrlab.store"):
            started = time.monotonic()
            with pytest.raises(StoreError) as info:
                Store(path)
        assert str(info.value) == f"{path}: locked by another process (waited 0.6 s for it)"
        assert 0.6 <= time.monotonic() - started < 3
        assert [r.getMessage() for r in caplog.records] == [
            f"lrlab: waiting for {path}: another process holds a lock on it (waiting up to 0.6 s)"
        ]
        with Store(path, readonly=True) as store:  # a reader takes no lock
            assert len(store.runs()) == 1
    finally:
        holder.close()


@pytest.mark.usefixtures("quick_locks")
def test_a_store_waits_for_a_writer_then_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(store_module, "BUSY_TIMEOUT", 30.0)
    path = tmp_path / "runs.sqlite"
    _store(path)
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    threading.Timer(1.0, holder.close).start()
    with caplog.at_level(logging.WARNING, "lrlab.store"):
        started = time.monotonic()
        with Store(path) as store:
            assert store.count() == {"done": 1}
    assert 0.9 < time.monotonic() - started < 10
    assert len(caplog.records) == 1  # said once, however many tries
    assert "another process holds a lock on it" in caplog.records[0].getMessage()


@pytest.mark.slow
def test_compare_says_on_stderr_what_it_waits_for(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite"
    _store(path)
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    threading.Timer(8.0, holder.close).start()
    argv = ["compare", "quadratic", "--optimizers", "sgd", "--seeds", "1", "--steps", "2"]
    result = subprocess.run(
        [sys.executable, "-m", "lrlab", *argv, "--db", str(path)],
        capture_output=True, text=True, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    waits = [line for line in result.stderr.splitlines() if "waiting for" in line]
    assert waits == [
        f"lrlab: waiting for {path}: another process holds a lock on it (waiting up to 120 s)"
    ]


def test_a_refused_file_gets_nothing_beside_it(tmp_path: Path) -> None:
    """A foreign WAL-mode file whose log has no index beside it (copied without its -shm):
    SQLite's read-only connection would create one; lrlab reads it immutable and refuses it,
    the folder unchanged."""
    source = tmp_path / "made"
    source.mkdir()
    script = (
        "import os, sqlite3\n"
        f"db = sqlite3.connect({str(source / 'app.sqlite')!r}, isolation_level=None)\n"
        "db.execute('PRAGMA journal_mode=WAL')\n"
        "db.execute('CREATE TABLE notes (body TEXT)')\n"
        "db.execute(\"INSERT INTO notes VALUES ('x')\")\n"
        "os._exit(0)\n"  # killed: the log stays, never checkpointed
    )
    subprocess.run([sys.executable, "-c", script], check=True)
    folder = tmp_path / "copy"
    folder.mkdir()
    for name in ("app.sqlite", "app.sqlite-wal"):
        shutil.copy(source / name, folder / name)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    for readonly in (False, True):
        with pytest.raises(StoreError, match="not an lrlab store"):
            Store(folder / "app.sqlite", readonly=readonly)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


def _read_only(folder: Path, command: list[str]) -> list[str] | None:
    """``command`` run where ``folder`` is read-only, for root too: chmod 555 for a user; for
    root, whom permissions do not stop, a read-only bind mount of it in a private mount
    namespace (``None`` where that is not allowed)."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        return command
    if shutil.which("unshare") is None:
        return None
    script = (
        'mount --bind "$1" "$1" && mount -o remount,ro,bind "$1" || exit 97; '
        'touch "$1/.probe" 2>/dev/null && exit 97; shift; exec "$@"'
    )
    return ["unshare", "--mount", "sh", "-c", script, "sh", str(folder), *command]


def test_report_reads_a_store_in_a_read_only_folder(tmp_path: Path) -> None:
    folder = tmp_path / "shared"
    folder.mkdir()
    _store(folder / "runs.sqlite")
    before = _listing(folder)
    out = tmp_path / "report"
    command = _read_only(
        folder,
        [sys.executable, "-m", "lrlab", "report", "--db", str(folder / "runs.sqlite"),
         "--out", str(out)],
    )  # fmt: skip
    if command is None:
        pytest.skip("no way to make a folder read-only for root here")
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    folder.chmod(0o755)
    if result.returncode == 97:
        pytest.skip("no read-only bind mount allowed here")
    assert result.returncode == 0, result.stderr
    assert (out / "report.md").is_file()
    assert _listing(folder) == before


# -- 6. friction -----------------------------------------------------------------------------------

HORIZONS = sorted(name for name, cls in SCHEDULES.items() if cls.horizon)


def test_every_schedule_with_a_horizon_declares_it() -> None:
    assert HORIZONS == ["cosine", "linear", "one_cycle", "polynomial", "wsd"]


@pytest.mark.parametrize("name", HORIZONS)
def test_a_horizon_left_out_is_the_runs_length(name: str) -> None:
    spec = {"linear": "linear(lr=0.1, end=0.001)"}.get(name, f"{name}(lr=0.1)")
    result = lrlab.train("iris", optimizer="sgd", schedule=spec, epochs=3)
    total = 3 * 22  # iris: 108 training samples (12 validate) in batches of 5
    assert result.config.schedule == parse(spec, horizon=total).spec()
    assert f"steps={total}" in str(result.config.schedule)
    expected = parse(str(result.config.schedule))
    assert result.step_lr == [expected(t) for t in range(total)]


def test_a_horizon_given_or_nested_is_left_alone() -> None:
    assert run_spec("cosine(lr=0.1, steps=7)", steps_per_epoch=4, total_steps=12) == (
        "cosine(lr=0.1, steps=7)"
    )
    assert run_spec("cosine(0.1, 7)", steps_per_epoch=4, total_steps=12) == "cosine(0.1, 7)"
    assert run_spec("plateau(factor=0.5)", steps_per_epoch=4, total_steps=12) == (
        "plateau(factor=0.5)"
    )
    with pytest.raises(ValueError, match=r"missing argument steps \(a run fills it in only for"):
        lrlab.train("iris", schedule="warmup(cosine(lr=0.1), steps=2)")


def test_compare_stores_the_filled_in_spec(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "runs.sqlite"
    argv = ["compare", "quadratic", "--optimizers", "sgd", "--seeds", "1", "--steps", "20"]
    argv += ["--schedules", "cosine(lr=0.1);cosine(lr=0.1, steps=20)", "--db", str(db)]
    argv += ["--optimistic"]  # (one run per method, on seed 0)
    assert main([*argv, "--workers", "1"]) == 0
    with Store(db, readonly=True) as store:
        assert [r.config.schedule for r in store.runs()] == ["cosine(lr=0.1, steps=20)"]
    assert "sgd + cosine(lr=0.1, steps=20)" in capsys.readouterr().out


def test_run_says_what_ran(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["run", "quadratic", "--optimizer", "sgd", "--steps", "5", "--quiet"]
    assert main([*argv, "--schedule", "one_cycle(lr=0.1)"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("quadratic / sgd / one_cycle(lr=0.1, steps=5) / seed 0: done")
    assert (
        err
        == "one_cycle(lr=0.1) ran as one_cycle(lr=0.1, steps=5) (its horizon is the run's length)\n"
    )


def test_the_preview_fills_a_horizon_with_its_steps(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schedule", "linear(lr=1, end=0)", "--steps", "5", "--csv"]) == 0
    rows = capsys.readouterr().out.splitlines()[1:]
    assert [float(row.split(",")[1]) for row in rows] == pytest.approx([1, 0.8, 0.6, 0.4, 0.2])


def test_find_help_names_user_tasks(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["find", "--help"])
    assert "path/to/file.py:function" in capsys.readouterr().out


# -- metrics -----------------------------------------------------------------------------------


def test_new_metrics_golden_values() -> None:
    logits = torch.tensor(
        [
            [3.0, 1, 0, 0, 0, 0, 2],
            [0, 3, 1, 0, 0, 0, 2],
            [0, 0, 3, 1, 2, 0, 0],
            [1, 2, 3, 4, 5, 6, 7],
        ]
    )
    targets = torch.tensor([0, 6, 3, 0])

    def value(kind: str, outputs: torch.Tensor = logits, y: torch.Tensor = targets) -> float | None:
        metric = MetricSum(kind, "cross_entropy")
        metric.add(outputs, y)
        return metric.value()

    # predicted 0, 1, 2, 6: one hit in four; classes seen 0, 1, 2, 3, 6
    assert value("accuracy") == 0.25
    assert value("f1") == pytest.approx((2 / 3 + 0 + 0 + 0 + 0) / 5)
    # target 0 in the top 5 of row 0 (yes), 6 of row 1 (yes), 3 of row 2 (yes), 0 of row 3 (no)
    assert value("top5") == 0.75
    assert value("top5", logits[:, :5]) == 1.0  # five classes or fewer: every target is
    assert value("mae", torch.tensor([[1.0], [2.0]]), torch.tensor([0.5, 4.0])) == 1.25


@pytest.mark.parametrize("seed", range(5))
def test_f1_is_scikit_learns_macro_f1(seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    outputs = torch.randn(200, 6, generator=generator)
    targets = torch.randint(1, 5, (200,), generator=generator)  # classes 0 and 5 never true
    metric = MetricSum("f1", "cross_entropy")
    metric.add(outputs, targets)
    assert metric.value() == pytest.approx(
        f1_score(targets.numpy(), outputs.argmax(1).numpy(), average="macro"), abs=1e-12
    )
    single = MetricSum("f1", "bce")
    single.add(outputs[:, :1], (targets > 2).float()[:, None])
    assert single.value() == pytest.approx(
        f1_score((targets > 2).numpy(), (outputs[:, 0] > 0).numpy(), average="macro"), abs=1e-12
    )


@pytest.mark.parametrize("kind", METRIC_KINDS)
def test_each_members_metric_is_the_one_run_metric(kind: str) -> None:
    generator = torch.Generator().manual_seed(3)
    outputs = torch.randn(4, 50, 7, generator=generator)
    outputs[2, 10, 3] = math.nan  # one member has no prediction on one sample
    targets = torch.randint(0, 7, (4, 50), generator=generator)
    loss = "cross_entropy"
    if kind in ("r2", "mae"):
        outputs, targets, loss = outputs[..., :1], torch.randn(4, 50, 1, generator=generator), "mse"
    values = member_metrics(kind, loss, outputs, targets)  # type: ignore[arg-type]
    for member, value in enumerate(values):
        alone = MetricSum(kind, loss)
        alone.add(outputs[member], targets[member])
        expected = alone.value()
        assert value == expected or (math.isnan(value) and math.isnan(expected))  # type: ignore[arg-type]
    if kind in ("accuracy", "f1", "top5"):
        assert math.isnan(values[2])
        assert not math.isnan(values[0])


MAE_TASK = """
import torch
import lrlab

def make():
    x = torch.linspace(-1, 1, 64)[:, None]
    return lrlab.Task(
        name="line-mae", model=lambda: torch.nn.Linear(1, 1), train=(x, 3 * x), test=(x, 3 * x),
        loss="mse", metric="mae", target=0.5, epochs=3, batch_size=16,
    )
"""


def test_mae_is_lower_is_better_and_trains_vectorised_as_alone(tmp_path: Path) -> None:
    (tmp_path / "mae_task.py").write_text(MAE_TASK)
    task = f"{tmp_path / 'mae_task.py'}:make"
    assert lrlab.tasks.get_task(task).higher_is_better is False
    runs = {}
    for vectorize in (True, False):
        result = lrlab.compare(
            task, optimizers=["sgd"], lr_grid=[0.1, 0.3], seeds=2, workers=1,
            db=tmp_path / f"{vectorize}.sqlite", vectorize=vectorize, optimistic=True,
        )  # fmt: skip
        runs[vectorize] = sorted(result.runs, key=lambda r: r.config.key())
        assert result.summaries[0].higher_is_better is False
    vectorised = [r.record.extra.get("vectorized") is not None for r in runs[True]]  # type: ignore[union-attr]
    assert vectorised == [True] * 4
    for a, b in zip(runs[True], runs[False], strict=True):
        assert a.record is not None
        assert b.record is not None
        assert [e.test_metric for e in a.record.epochs] == [e.test_metric for e in b.record.epochs]
        assert a.record.epochs[-1].test_metric < a.record.epochs[0].test_metric  # it learns
