"""The ``lrlab`` command under hostile input: every malformed input below, generated across the
classes of issue 12, must end with exit code 2, one line on stderr, no traceback, nothing on
stdout and nothing written (every file in the working folder byte-identical, none added).

Each case runs in-process through `lrlab.cli.main` in a fresh copy of a working folder that
holds the traps (a plain file, a folder, another application's SQLite files, an empty file, a
corrupt lrlab store...). The classes and how many inputs each tries are in `CLASSES`;
`test_the_suite_tries_enough` keeps the count honest.
"""

from __future__ import annotations

import hashlib
import inspect
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from lrlab.cli import main

BIG_INT = "1" * 400
NUMBERS = [BIG_INT, "-" + BIG_INT, "1e309", "-1e309", "1e400", "9" * 4000]

# -- numbers that overflow -------------------------------------------------------------------------


def _overflow() -> Iterator[list[str]]:
    for number in NUMBERS:
        for spec in (
            f"constant(lr={number})",
            f"exponential(lr=0.1, rate={number})",
            f"step(lr=0.1, drop=0.5, every={number})",
            f"cosine(lr=0.1, steps={number})",
        ):
            yield ["schedule", spec, "--steps", "5"]
        yield ["run", "quadratic", "--optimizer", "sgd", "--steps", "2", "--lr", number[:400]]
    thirty = "9" * 30
    for flags in (
        ["--seed", thirty],
        ["--lr", "1e39"],
        ["--steps", thirty],
        ["--epochs", thirty],
        ["--batch-size", thirty],
        ["--threads", thirty],
        ["--threads", "100000"],
    ):
        yield ["run", "quadratic", "--optimizer", "sgd", *flags]
    for grid in ("1e-3:1e400:5", "1e39", f"1e-3:1:{thirty}", f"0.1,{BIG_INT}", "1e-300:1e300:3"):
        yield ["compare", "quadratic", "--optimizers", "sgd", "--lr-grid", grid, "--db", "x.db"]
    yield ["compare", "quadratic", "--optimizers", "sgd", "--seeds", thirty, "--db", "x.db"]
    yield ["schedule", "constant(lr=0.1)", "--steps", thirty]
    yield ["schedule", "constant(lr=0.1)", "--steps-per-epoch", thirty, "--epochs", "2"]
    yield ["schedule", "constant(lr=0.1)", "--epochs", thirty, "--steps-per-epoch", "3"]


# -- schedules whose LR overflows at some step -----------------------------------------------------

OVERFLOWING = [
    "exponential(lr=0.1, rate=1.5)",
    "exponential(lr=1, rate=1e300)",
    "step(lr=0.1, drop=1e20, every=1)",
    "multistep(lr=1, drop=1e30, milestones=[1, 2, 3])",
    "seed000(lr=0.1, drop=1e300, every=0.5)",
    "scale(exponential(lr=0.1, rate=2), factor=1e30)",
    "warmup(exponential(lr=0.1, rate=10), steps=5)",
    "join([constant(lr=0.1), exponential(lr=0.1, rate=100)], boundaries=[3])",
    "per_epoch(exponential(lr=1, rate=1e10), steps_per_epoch=2)",
    "cyclic(lr=0.1, max_lr=1e300, step_size=2)",
    "cyclic(lr=0.1, max_lr=1, step_size=2, mode=exp_range, gamma=1e10)",
    "linear(lr=0.1, end=1e300, steps=10)",
    "wsd(lr=1e300, steps=100, warmup=10)",
    "one_cycle(lr=1e300, steps=100)",
    "scale(constant(lr=1e300), factor=1e300)",
    "cyclic(lr=0.1, max_lr=1, step_size=1e308)",
    "plateau(lr=1e300, mode=min)",
]


def _overflow_at_step() -> Iterator[list[str]]:
    for spec in OVERFLOWING:
        yield ["schedule", spec, "--steps", "300"]
        yield ["run", "quadratic", "--optimizer", "sgd", "--schedule", spec, "--steps", "300"]
        yield [
            "compare", "quadratic", "--optimizers", "sgd", "--schedules", spec,
            "--steps", "300", "--seeds", "1", "--db", "x.db",
        ]  # fmt: skip


# -- pathological specs ----------------------------------------------------------------------------

SPECS = [
    *(f"constant(lr={'-' * n}1)" for n in (33, 100, 1000, 5000, 9990)),
    *(f"constant(lr={'[' * n}{']' * n})" for n in (33, 500, 3000)),
    *("warmup(" * n + "constant(lr=0.1)" + ", steps=1)" * n for n in (33, 200)),
    "constant(lr=" + "(" * 5000,
    "constant(lr=" + "~" * 1000 + "1)",
    "constant(lr=" + "+-" * 500 + "1)",
    "constant(lr=" + "not " * 500 + "1)",
    "constant(lr=0.1" + ", " * 6000 + ")",
    "x" * 20000,
    "__import__('os').system('touch pwned')",
    "constant(lr=__import__('os'))",
    "constant(lr=(lambda: 1)())",
    "constant(lr=[x for x in range(10**9)])",
    "constant(lr=1 if 1 else 2)",
    "constant(lr=0.1)(1)",
    "constant(lr=0.1).__class__",
    "constant(lr=b'x')",
    "constant(lr=1j)",
    "constant(lr=...)",
    "constant(**{'lr': 1})",
    "constant(lr=0.1); import os",
    "constant(lr=0.1)\nimport os",
    "constant(lr=\uff10.\uff11)",
    "constant(lr=0.1",
    "constant(lr=0.1))",
    "constant(lr=10**400)",
    "constant(lr='0.1')",
    "constant(lr=[0.1])",
    "constant(lr=true)",
    "cosine(lr=0.1, steps=100, lr=0.2)",
    "nosuch(lr=0.1)",
    "   ",
]


def _specs() -> Iterator[list[str]]:
    for spec in SPECS:
        yield ["schedule", spec]
        yield ["run", "quadratic", "--optimizer", "sgd", "--schedule", spec, "--steps", "2"]
    for spec in SPECS[::3]:
        yield ["compare", "quadratic", "--method", f"sgd:{spec}", "--seeds", "1", "--db", "x.db"]


# -- --optimizer-arg -------------------------------------------------------------------------------


def _optimizer_args() -> Iterator[list[str]]:
    from lrlab.optimizers import optimizer_entry

    for name in ("sgd", "momentum", "nesterov", "adam", "adamw", "adagrad", "rmsprop"):
        entry = optimizer_entry(name)
        parameters = inspect.signature(entry.cls).parameters
        numbers = [
            k
            for k, p in parameters.items()
            if k not in ("params", "lr") and type(p.default) in (int, float)
        ][:2]
        flags = [k for k, p in parameters.items() if isinstance(p.default, bool)][:1]
        bad = [f"{k}={v}" for k in numbers for v in ("abc", "[1, 2]", "nan", "true")]
        bad += [f"{k}={v}" for k in flags for v in ("1", "maybe")]
        bad += ["lr=0.1", "params=0", "nosuch=1", f"{numbers[0]}"]
        for item in bad:
            yield ["run", "quadratic", "--optimizer", name, "--optimizer-arg", item, "--steps", "2"]
        key = numbers[0]
        yield [
            "run", "quadratic", "--optimizer", name, "--steps", "2",
            "--optimizer-arg", f"{key}=0.1", "--optimizer-arg", f"{key}=0.2",
        ]  # fmt: skip
    for betas in ("[0.9]", "0.9", "[0.9, 0.9, 0.9]", "[a, b]", "[0.9, inf]"):
        for name in ("adam", "adamw"):
            yield [
                "run", "quadratic", "--optimizer", name, "--steps", "2",
                "--optimizer-arg", f"betas={betas}",
            ]  # fmt: skip
    yield ["run", "quadratic", "--optimizer", "sgd", "--optimizer-arg", "foreach=maybe"]
    yield ["run", "quadratic", "--optimizer", "sgd", "--optimizer-arg", "momentum=" + "-" * 99]


# -- output paths ----------------------------------------------------------------------------------

LONG = "n" * 300


def _paths() -> Iterator[list[str]]:
    run = ["run", "quadratic", "--optimizer", "sgd", "--steps", "2"]
    compare = ["compare", "quadratic", "--optimizers", "sgd", "--steps", "2", "--seeds", "1"]
    schedule = ["schedule", "constant(lr=0.1)"]
    files = [(run, "--json"), (schedule, "--plot"), (compare, "--db")]
    folders = [
        ([*compare, "--db", "new.sqlite"], "--out"),
        (["report", "--db", "store.sqlite"], "--out"),
    ]
    for command, flag in files:
        for target in ("file/x", "folder", "file/sub/x", LONG, f"folder/{LONG}"):
            yield [*command, flag, target]
    for command, flag in folders:
        for target in ("file", "file/x", LONG):
            yield [*command, flag, target]
    for command in (run, compare, ["reproduce", "seed-002"]):
        for target in ("file", LONG):
            yield [*command, "--data-dir", target]
    study = ["study", "lr-finder", "--tasks", "quadratic", "--optimizers", "sgd", "--seeds", "1"]
    for target in ("file", "file/x", LONG):
        yield ["download", "mnist", "--data-dir", target]
        yield ["reproduce", "seed-002", "--out", target]
        yield [*study, "--out", target]
    for target in ("file/x", "folder", LONG, *NOT_STORES[:3]):
        yield [*study, "--out", "new", "--db", target]
    yield [*schedule, "--plot", "out.txt"]
    yield [*schedule, "--plot", "out.docx"]
    yield [*compare, "--db", "file"]  # a plain text file is not a store either


# -- stores that are not lrlab's -------------------------------------------------------------------

NOT_STORES = [
    "foreign.sqlite",
    "otherruns.sqlite",
    "empty.sqlite",
    "garbage.sqlite",
    "walapp.sqlite",
    "future.sqlite",
]


def _stores() -> Iterator[list[str]]:
    for name in [*NOT_STORES, "folder"]:
        yield ["compare", "quadratic", "--optimizers", "sgd", "--steps", "2", "--db", name]
        yield ["report", "--db", name]
        yield ["schedule", "plateau(lr=0.1)", "--run", f"{name}:1"]
    yield ["report", "--db", "corrupt.sqlite"]
    yield ["schedule", "plateau(lr=0.1)", "--run", "corrupt.sqlite:1"]


# -- flags every command checks alike, before any run ----------------------------------------------


def _flags() -> Iterator[list[str]]:
    compare = ["compare", "quadratic", "--optimizers", "sgd", "--seeds", "1", "--db", "x.db"]
    run = ["run", "quadratic", "--optimizer", "sgd"]
    shared = [
        ["--epochs", "0"],
        ["--epochs", "-1"],
        ["--steps", "0"],
        ["--batch-size", "0"],
        ["--batch-size", "-5"],
        ["--threads", "0"],
        ["--threads", "-2"],
        ["--model", "nope"],
        ["--split", "nope"],
        ["--sampling", "sideways"],
        ["--device", "tpu"],
    ]
    for flags in shared:
        yield [*compare, *flags]
        yield [*run, *flags]
    for flags in (
        ["--workers", "0"],
        ["--workers", "-1"],
        ["--seeds", "0"],
        ["--lr-grid", "0"],
        ["--lr-grid", "-1,0.1"],
        ["--lr-grid", "a,b"],
        ["--lr-grid", "1:0.1:5"],
        ["--lr-grid", "1e-3:1:1"],
        ["--method", ":cosine(lr=0.1, steps=10)"],
        ["--method", "nope"],
        ["--optimizers", "nope"],
        ["--schedules", ";;"],
        ["--executor", "local", "--address", "ray://nowhere:1"],
    ):
        yield [*compare, *flags]
    yield ["compare", "quadratic", "--db", "x.db"]  # no optimizer at all
    yield ["run", "quadratic", "--optimizer", "nope"]
    yield ["run", "nosuchtask", "--optimizer", "sgd"]
    yield ["run", "nosuch.py:task", "--optimizer", "sgd"]
    yield ["schedule", "constant(lr=0.1)", "--every", "0"]
    yield ["reproduce", "seed-002", "--seeds", "0"]
    yield ["reproduce", "seed-002", "--workers", "0"]
    study = ["study", "lr-finder", "--tasks", "quadratic", "--optimizers", "sgd", "--out", "new"]
    for flags in (
        ["--workers", "0"],
        ["--seeds", "0"],
        ["--steps", "0"],
        ["--lr-grid", "0"],
        ["--lr-grid", "a,b"],
        ["--optimizers", "nope"],
        ["--optimizers", ","],
        ["--tasks", "nosuchtask"],
        ["--tasks", "nosuch.py:task"],
        ["--smoothing", "1"],
        ["--smoothing", "a"],
    ):
        yield [*study, *flags]


# -- usage errors ----------------------------------------------------------------------------------


def _usage() -> Iterator[list[str]]:
    yield ["run", "quadratic"]
    yield ["run", "quadratic", "--optimizer", "sgd", "--epochs", "abc"]
    yield ["run", "quadratic", "--optimizer", "sgd", "--steps", "1.5"]
    yield ["run", "quadratic", "--optimizer", "sgd", "--steps", "2", "--epochs", "2"]
    yield ["run", "quadratic", "--optimizer", "sgd", "--nosuch"]
    yield ["compare", "quadratic", "--seeds", "1e3"]
    yield ["schedule"]
    yield ["nosuchcommand"]
    yield ["download", "imagenet"]
    yield ["reproduce", "seed-001"]
    yield ["study"]
    yield ["study", "nosuchstudy"]
    yield ["study", "lr-finder", "--seeds", "x"]


CLASSES = {
    "overflow": list(_overflow()),
    "overflow_at_step": list(_overflow_at_step()),
    "spec": list(_specs()),
    "optimizer_args": list(_optimizer_args()),
    "paths": list(_paths()),
    "stores": list(_stores()),
    "flags": list(_flags()),
    "usage": list(_usage()),
}
CASES = [(name, argv) for name, cases in CLASSES.items() for argv in cases]


def test_the_suite_tries_enough() -> None:
    counts = {name: len(cases) for name, cases in CLASSES.items()}
    assert sum(counts.values()) >= 150, counts
    assert min(counts.values()) >= 10, counts


# -- the working folder with its traps -------------------------------------------------------------


def _traps(folder: Path) -> None:
    from lrlab.record import RunConfig
    from lrlab.store import Store
    from tests.fakes import record

    (folder / "file").write_text("a plain file\n")
    (folder / "folder").mkdir()
    db = sqlite3.connect(folder / "foreign.sqlite")
    db.execute("CREATE TABLE people (name TEXT)")
    db.execute("INSERT INTO people VALUES ('ada')")
    db.commit()
    db.close()
    db = sqlite3.connect(folder / "otherruns.sqlite")
    db.execute("CREATE TABLE runs (id INTEGER, what TEXT)")
    db.execute("CREATE TABLE meta (key TEXT, value TEXT)")
    db.execute("INSERT INTO meta VALUES ('schema', '1')")
    db.commit()
    db.close()
    db = sqlite3.connect(folder / "walapp.sqlite")
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE notes (body TEXT)")
    db.commit()
    db.close()
    (folder / "empty.sqlite").write_bytes(b"")
    (folder / "garbage.sqlite").write_text("not a database\n" * 50)
    config = RunConfig(task="iris", optimizer="sgd", seed=0)
    for name in ("store.sqlite", "corrupt.sqlite", "future.sqlite"):
        with Store(folder / name) as store:
            store.put(config, record(config, [0.5, 0.9]))
    db = sqlite3.connect(folder / "corrupt.sqlite")
    db.execute('UPDATE runs SET record = \'{"version": 2, "config": \' WHERE id = 1')
    db.commit()
    db.close()
    db = sqlite3.connect(folder / "future.sqlite")
    db.execute("UPDATE meta SET value = '99' WHERE key = 'schema'")
    db.commit()
    db.close()
    (folder / "metrics.csv").write_text("loss\n1.0\n0.5\n")


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("traps")
    _traps(folder)
    return folder


def _snapshot(folder: Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): (
            "folder" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
        )
        for path in sorted(folder.rglob("*"))
    }


@pytest.mark.parametrize(
    ("kind", "argv"), CASES, ids=[f"{kind}-{i}" for i, (kind, _) in enumerate(CASES)]
)
def test_malformed_input_is_one_line_exit_2_and_writes_nothing(
    kind: str,
    argv: list[str],
    template: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    work = tmp_path / "work"
    shutil.copytree(template, work)
    monkeypatch.chdir(work)
    monkeypatch.delenv("LRLAB_TRACEBACK", raising=False)
    monkeypatch.setenv("LRLAB_DATA", str(work / "folder"))
    before = _snapshot(work)
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse's usage errors
        code = exit_.code  # type: ignore[assignment]
    out, err = capsys.readouterr()
    assert code == 2, err
    assert out == ""
    assert err.count("\n") == 1, err
    assert err.endswith("\n"), err
    assert err.startswith("lrlab"), err
    assert ": error: " in err
    assert "Traceback" not in err
    assert _snapshot(work) == before
