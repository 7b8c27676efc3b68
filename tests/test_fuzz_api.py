"""The Python API under misuse: every malformed call below, generated across `lrlab.train`,
`lrlab.compare`, `lrlab.find`, `lrlab.Task`, `lrlab.ScheduleLR` and `lrlab.PlateauLR`, and
users' tasks with the classic mistakes through `lrlab.train`, `lrlab.compare` and
`lrlab.find_on_task`, must raise a ``TypeError`` (a wrong type) or a ``ValueError`` (a wrong
value; a task's mistake is a `lrlab.errors.TaskError`) whose message is one line naming the
parameter (for a task's mistake, the user's file and line), before anything trains, and
write nothing (every file of the
working folder byte-identical, none added). The counts per class are in `CLASSES`;
`test_the_suite_tries_enough` keeps them honest.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn
from torch.nn import functional as F

import lrlab
from tests.user_task_sources import BAD_TASKS, MISTAKES

Case = tuple[str, Callable[[], object]]  # (the parameter the message must name, the call)

TOO_MANY = 2**63
BAD_COUNTS: list[object] = [0, -1, 1.5, "3", True, math.nan, TOO_MANY, 10**30]
BAD_LRS: list[object] = [0, -1.0, math.nan, math.inf, "0.1", True, 1e39, [0.1]]
BAD_NAMES: list[object] = ["", "  ", 3, "nosuch", b"sgd"]


# -- lrlab.train -----------------------------------------------------------------------------------


def _train() -> Iterator[Case]:
    def call(**kwargs: Any) -> Callable[[], object]:
        return lambda: lrlab.train("quadratic", **kwargs)

    for name in ("steps", "epochs"):
        for value in BAD_COUNTS:
            yield name, call(**{name: value})
        yield name, call(**{name: 10_000_001})
    for value in [0, -5, 1.5, "32", True, TOO_MANY]:
        yield "batch_size", lambda value=value: lrlab.train("iris", batch_size=value)
    for value in [-1, 1.5, "0", TOO_MANY, None]:
        yield "seed", call(seed=value)
    for value in BAD_LRS:
        yield "lr", call(lr=value)
    for value in BAD_NAMES:
        yield "optimizer", call(optimizer=value)
    for value in ["", "nope(", 3, "cosine(lr=0.1, steps=10.5)", "plateau(lr=0.1, min_lr=1)"]:
        yield "schedule" if value in ("", 3) else "", call(schedule=value)
    yield "lr", call(lr=0.5, schedule="constant(lr=0.1)")
    yield "lr", call(lr=0.01, schedule="cosine(lr=0.1)")
    for option in ("model", "split", "sampling", "device"):
        for value in ["", " ", 3, "nosuch"]:
            yield option, lambda option=option, value=value: lrlab.train("iris", **{option: value})
    for value in ["x", 3, {"differentiable": True}, {"capturable": True}, {"lr": 1}, {"no": 1}]:
        yield "", call(optimizer="adam", optimizer_args=value)
    for value in ["", 3, "/dev/null", "fifo"]:
        yield "data_dir", call(data_dir=value)
    yield "observer", call(observer=3)
    yield "task", lambda: lrlab.train(3)  # type: ignore[arg-type]
    yield "task", lambda: lrlab.train("")


# -- lrlab.compare ---------------------------------------------------------------------------------


def _compare() -> Iterator[Case]:
    def call(**kwargs: Any) -> Callable[[], object]:
        options: dict[str, Any] = {"optimizers": ["sgd"], "seeds": 1, "db": "runs.sqlite"}
        return lambda: lrlab.compare("quadratic", **{**options, **kwargs})

    for value in ["no", 0, 1, None, "false", [True]]:
        yield "vectorize", call(vectorize=value)
    for name in ("workers", "threads"):
        for value in [0, -1, 1.5, "2", True, 4097, 10**12]:
            yield name, call(**{name: value})
    for value in [0, -1, 1.5, "3", True, 10_001, [], [-1], [1.5], "0,1", [TOO_MANY]]:
        yield "seeds", call(seeds=value)
    for value in ["", " ", 3, "/dev/null", "/dev/lrlab.sqlite", "/proc/x.sqlite", "folder",
                  "file/", "fifo", "foreign.sqlite"]:  # fmt: skip
        yield "" if value == "foreign.sqlite" else "db", call(db=value)
    for value in ["sgd", [3], ["nope"], [], [""]]:
        yield "optimizer", call(optimizers=value)
    for name, value in [("schedules", "none"), ("schedules", [3]), ("spec", ["nope("]),
                        ("steps", ["cosine(lr=0.1, steps=0.5)"]), ("schedules", [""])]:  # fmt: skip
        yield name, call(schedules=value)
    for value in [[0], [-1], ["a"], "0.1", [math.inf], [], [1e39], 0.1]:
        yield "lr_grid", call(lr_grid=value)
    for value in ["slurm", 3, ""]:
        yield "executor", call(executor=value)
    for name, value in [("methods", [("sgd",)]), ("methods", ["sgd"]), ("methods", [("sgd", 3)]),
                        ("optimizer", [("", None)]), ("methods", "sgd:cosine")]:  # fmt: skip
        yield name, call(methods=value)
    run_options = [("epoch", 3), ("steps", 0), ("steps", 2.5), ("epochs", TOO_MANY),
                   ("batch_size", 0), ("model", ""), ("split", ""), ("data_dir", "")]  # fmt: skip
    for key, value in run_options:
        yield key, call(**{key: value})
    yield "address", call(address="ray://x:1")
    yield "runtime_env", call(runtime_env={"pip": []})
    yield "min_lr", call(schedules=["plateau(min_lr=0.05)"], lr_grid=[0.01, 0.1])
    yield "task", lambda: lrlab.compare(None, optimizers=["sgd"])  # type: ignore[arg-type]


# -- lrlab.find ------------------------------------------------------------------------------------


def _setup() -> tuple[nn.Module, torch.optim.Optimizer, list[tuple[torch.Tensor, torch.Tensor]]]:
    model = nn.Linear(4, 3)
    batches = [(torch.randn(8, 4), torch.randint(0, 3, (8,))) for _ in range(3)]
    return model, torch.optim.SGD(model.parameters(), lr=0.1), batches


def _find() -> Iterator[Case]:
    def call(**kwargs: Any) -> Callable[[], object]:
        def run() -> object:
            model, optimizer, batches = _setup()
            arguments: dict[str, Any] = {
                "model": model, "optimizer": optimizer, "data": batches,
                "loss_fn": F.cross_entropy,
            }  # fmt: skip
            positional = {k: kwargs.pop(k) for k in list(kwargs) if k in arguments}
            arguments.update(positional)
            return lrlab.find(*arguments.values(), **kwargs)

        return run

    for value in [None, 3, "model", nn.ReLU()]:
        yield "model", call(model=value)
    other = nn.Linear(4, 3)
    for value in [None, "sgd", torch.optim.SGD(other.parameters(), lr=0.1)]:
        yield "optimizer", call(optimizer=value)
    for value in [None, "cross_entropy", 3]:
        yield "loss_fn", call(loss_fn=value)
    for value in [9, 10.5, "100", True, TOO_MANY, 10_000_001, -1]:
        yield "steps", call(steps=value)
    for name in ("start", "end"):
        for value in [0, -1, math.nan, math.inf, "1e-3", True]:
            yield name, call(**{name: value})
    yield "start", call(start=1.0, end=0.1)
    for value in ["cubic", 3, None]:
        yield "mode", call(mode=value)
    for value in [1, -0.1, math.nan, "0.9"]:
        yield "smoothing", call(smoothing=value)
    for value in [1, 0, math.nan, math.inf, "4"]:
        yield "diverge", call(diverge=value)
    for name, bound in (("accumulation_steps", 10_001), ("repeats", 1_001)):
        for value in [0, 1.5, "2", True, bound, 10**12]:
            yield name, call(**{name: value})
    yield "accumulation_steps", call(steps=10_000, accumulation_steps=10_000)
    for value in [-1, 1.5, "0"]:
        yield "seed", call(seed=value)
    for value in [[], [3], "minimum", None]:
        yield "rules", call(rules=value)
    for value in ["nope", 3]:
        yield "lipschitz", call(lipschitz=value)


# -- lrlab.Task ------------------------------------------------------------------------------------


def _task() -> Iterator[Case]:
    x, y = torch.randn(8, 2), torch.randint(0, 2, (8,))

    def call(**kwargs: Any) -> Callable[[], object]:
        options: dict[str, Any] = {
            "name": "t", "model": lambda: nn.Linear(2, 2), "train": (x, y), "epochs": 1,
        }  # fmt: skip
        return lambda: lrlab.Task(**{**options, **kwargs})

    for value in ["", " ", 3, None, "a\nb", "tab\there", "\x00", "esc\x1b[0m", "sep\u2029"]:
        yield "name", call(name=value)
    for value in [3, {}, None, "mlp", {"a": 3}]:
        yield "model", call(model=value)
    bad_data = [None, (1, 2), "xy", (x, y[:3]), (x[:0], y[:0]), iter([(x, y)]), [], {"x": x}]
    for value in bad_data:
        yield "train", call(train=value)
    for value in bad_data[1:]:
        yield "test", call(test=value)
    for value in ["nope", 3, ""]:
        yield "loss", call(loss=value)
    for value in ["nope", 3, "", "top-5"]:
        yield "metric", call(metric=value)
    for value in [math.nan, math.inf, "0.5", True]:
        yield "target", call(target=value)
    yield "epochs", call(epochs=None)
    yield "epochs", call(epochs=1, steps=5)
    for name in ("epochs", "steps", "batch_size", "epoch_steps"):
        for value in [0, 1.5, "2", -3, TOO_MANY if name == "batch_size" else 10_000_001]:
            budget = {"epochs": None} if name == "steps" else {}
            yield name, call(**{**budget, name: value})
    yield "epoch_steps", call(epoch_steps=10_000_001)
    for value in ["nope", 3]:
        yield "sampling", call(sampling=value)
    for value in ["no", 0, 1.0]:
        yield "higher_is_better", call(higher_is_better=value)


# -- lrlab.ScheduleLR and lrlab.PlateauLR --------------------------------------------------------


def _optimizer(lr: object = 0.1) -> torch.optim.Optimizer:
    optimizer = torch.optim.SGD(nn.Linear(2, 1).parameters(), lr=0.1)
    optimizer.param_groups[0]["lr"] = lr
    return optimizer


def _schedulers() -> Iterator[Case]:
    cosine = lrlab.Cosine(lr=0.1, steps=10)
    for value in [None, 3, "sgd"]:
        yield "optimizer", lambda value=value: lrlab.ScheduleLR(value, cosine)  # type: ignore[arg-type]
        yield "optimizer", lambda value=value: lrlab.PlateauLR(value)  # type: ignore[arg-type]
    for value in [None, 3, "nope(", "cosine", "cosine(lr=0.1, steps=2.5)", "plateau(lr=0.1)"]:
        yield "", lambda value=value: lrlab.ScheduleLR(_optimizer(), value)  # type: ignore[arg-type]
    for value in [-2, 1.5, "0", True]:
        yield "last_epoch", lambda value=value: lrlab.ScheduleLR(_optimizer(), cosine, value)  # type: ignore[arg-type]
    for value in [math.nan, -5, "0.1"]:
        yield "lr", lambda value=value: lrlab.ScheduleLR(_optimizer(value), cosine)
    state = lrlab.ScheduleLR(_optimizer(), cosine).state_dict()
    for name, value in [
        ("state_dict", {}), ("state_dict", None), ("state_dict", [1]),
        ("last_epoch", {**state, "last_epoch": -3}), ("base_lrs", {**state, "base_lrs": "x"}),
        ("base_lrs", {**state, "base_lrs": [0.1, 0.2]}), ("base_lrs", {**state, "base_lrs": [-1]}),
        ("_step_count", {**state, "_step_count": 1.5}),
    ]:  # fmt: skip
        scheduler = lrlab.ScheduleLR(_optimizer(), cosine)
        yield name, lambda value=value, scheduler=scheduler: scheduler.load_state_dict(value)
    for name, values in {
        "mode": ["mid", 3], "factor": [1, 0, -1, math.nan, "0.5"], "patience": [-1, 1.5],
        "threshold": [-1, math.nan], "threshold_mode": ["x"], "cooldown": [-1, 0.5],
        "min_lr": [-1, [], [0.1, 0.1], 1, [1.0]], "eps": [-1], "warmup": [-1, math.nan, "5"],
    }.items():  # fmt: skip
        for value in values:
            yield (
                "" if name == "min_lr" else name,
                lambda name=name, value=value: lrlab.PlateauLR(_optimizer(), **{name: value}),
            )
    plateau_state = lrlab.PlateauLR(_optimizer()).state_dict()
    for value in [{}, None, [1], {**plateau_state, "lrs": "x"}, {**plateau_state, "updates": -1},
                  {**plateau_state, "best": "low"}, {**plateau_state, "lrs": [0.1, 0.2]},
                  {**plateau_state, "base_lrs": [math.nan]}]:  # fmt: skip
        yield "", lambda value=value: lrlab.PlateauLR(_optimizer()).load_state_dict(value)  # type: ignore[arg-type]
    for value in ["x", None, torch.tensor([1.0, 2.0])]:
        yield "metric", lambda value=value: lrlab.PlateauLR(_optimizer()).step(value)  # type: ignore[arg-type]


# -- users' own tasks with the classic mistakes ------------------------------------------------


def _user_tasks() -> Iterator[Case]:
    """Each mistake of `tests.user_task_sources.BAD_TASKS` through every entry point that
    trains, by reference and as a `Task` object: a `lrlab.errors.TaskError` whose one line
    names the user's file (the working folder's ``mistakes.py``) and line."""
    from lrlab.tasks import get_task

    for name in BAD_TASKS:
        reference = f"mistakes.py:{name}"
        yield "mistakes.py:", lambda r=reference: lrlab.train(r)
        yield "mistakes.py:", lambda r=reference: lrlab.train(get_task(r), optimizer="adam")
        yield "mistakes.py:", lambda r=reference: lrlab.find_on_task(r, steps=20)
        yield (
            "mistakes.py:",
            lambda r=reference: lrlab.compare(r, optimizers=["sgd"], workers=2, db="runs.sqlite"),
        )


CLASSES: dict[str, list[Case]] = {
    "train": list(_train()),
    "compare": list(_compare()),
    "find": list(_find()),
    "Task": list(_task()),
    "schedulers": list(_schedulers()),
    "user_tasks": list(_user_tasks()),
}
CASES = [(kind, name, action) for kind, cases in CLASSES.items() for name, action in cases]


def test_the_suite_tries_enough() -> None:
    counts = {name: len(cases) for name, cases in CLASSES.items()}
    assert sum(counts.values()) >= 300, counts
    assert min(counts.values()) >= 30, counts


def _snapshot(folder: Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): (
            hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else path.name
        )
        for path in sorted(folder.rglob("*"))
    }


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working folder with a plain file, a folder, a FIFO and another program's SQLite file."""
    import sqlite3

    (tmp_path / "file").write_text("a plain file\n")
    (tmp_path / "folder").mkdir()
    os.mkfifo(tmp_path / "fifo")
    db = sqlite3.connect(tmp_path / "foreign.sqlite")
    db.execute("CREATE TABLE people (name TEXT)")
    db.commit()
    db.close()
    (tmp_path / "mistakes.py").write_text(MISTAKES)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize(
    ("kind", "name", "action"),
    CASES,
    ids=[f"{kind}-{i}" for i, (kind, _, _) in enumerate(CASES)],
)
def test_misuse_is_one_line_naming_the_parameter_and_writes_nothing(
    kind: str, name: str, action: Callable[[], object], work: Path
) -> None:
    before = _snapshot(work)
    with pytest.raises((TypeError, ValueError)) as info:
        action()
    message = str(info.value)
    assert message.strip(), kind
    assert "\n" not in message, message
    assert "--" not in message  # the library names parameters, not flags
    assert name in message, message
    assert _snapshot(work) == before
