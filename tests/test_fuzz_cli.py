"""The ``lrlab`` command under hostile input: every malformed input below, generated across the
classes of issues 12 and 22, must end with exit code 2, one line on stderr, no traceback,
nothing on stdout and nothing written (every file in the working folder byte-identical, none
added, nothing added under ``/dev``).

Each case runs in-process through `lrlab.cli.main` in a fresh copy of a working folder that
holds the traps (a plain file, a folder, a FIFO, another application's SQLite files, an empty
file, a corrupt lrlab store, task files that misbehave...), under a deadline so a case that
blocks fails instead of hanging the suite. Issue 22's classes: special paths (FIFO, device,
system folder, folder, empty, URI-like, trailing ``/``) for every path option, every count
option of every command past its bound or not an integer, nonsense that used to run,
empty values, stores another process holds locked, and users' own tasks with the classic
mistakes (labels out of range, a model returning a tuple, a loss without a gradient, a
Dataset that raises...: `tests.user_task_sources.BAD_TASKS`) through every command that
trains, whose one line must name the user's ``file:line``. The classes and how many inputs
each tries are in `CLASSES`; `test_the_suite_tries_enough` keeps the count honest.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import os
import shutil
import signal
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from lrlab import store as store_module
from lrlab.cli import main
from tests.user_task_sources import BAD_TASKS, MISTAKES, mistake_line

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


# -- issue 22: special paths (FIFO, device, system folder, folder, empty, URI-like, trailing /) ----

# What every written file may not be: a FIFO (never opened: it would block), devices, paths in
# the system's folders, a folder, a path ending in / (a folder's), empty or blank.
NOT_FILES = [
    "fifo", "/dev/null", "/dev/full", "/dev/lrlab-fuzz.png", "/proc/lrlab-fuzz",
    "/sys/lrlab-fuzz", "folder", "file/", "file/x/", "", " ",
]  # fmt: skip
NOT_FOLDERS = ["fifo", "/dev/null", "/dev/lrlab-fuzz", "/proc/lrlab-fuzz", "file", "file/", ""]
# Stores read by name: never taken for an SQLite URI, never opened when not a plain file.
NOT_READABLE_STORES = [
    "fifo", "/dev/null", "/dev/zero", "folder", "",
    "file:store.sqlite", "file:store.sqlite?mode=ro", "file:///store.sqlite",
    "store.sqlite?mode=rwc", "store.sqlite#x", "file:foreign.sqlite?immutable=1",
]  # fmt: skip


def _special_paths() -> Iterator[list[str]]:
    run = ["run", "quadratic", "--optimizer", "sgd", "--steps", "2"]
    find = ["find", "quadratic", "--steps", "10", "--no-lipschitz"]
    schedule = ["schedule", "constant(lr=0.1)"]
    compare = ["compare", "quadratic", "--optimizers", "sgd", "--steps", "2", "--seeds", "1"]
    for command, flag in [
        (run, "--json"), (find, "--json"), (find, "--plot"), (schedule, "--plot"),
        (compare, "--db"),
    ]:  # fmt: skip
        for target in NOT_FILES:
            yield [*command, flag, target]
    for command, flag in [
        ([*compare, "--db", "new.sqlite"], "--out"),
        (["report", "--db", "store.sqlite"], "--out"),
        (["reproduce", "seed-002"], "--out"),
        (["download", "mnist"], "--data-dir"),
    ]:
        for target in NOT_FOLDERS:
            yield [*command, flag, target]
    for target in NOT_READABLE_STORES:
        yield ["report", "--db", target]
        yield ["schedule", "plateau(lr=0.1)", "--run", f"{target}:1"]
    for target in ["fifo", "/dev/null", "folder", "file:metrics.csv", "metrics.csv?x"]:
        yield ["schedule", "plateau(lr=0.1, mode=min)", "--metrics", f"{target}:loss"]
    for command in (run, find, compare):
        for target in ["fifo", "/dev/null", "file", "file/", ""]:
            yield [*command, "--data-dir", target]


# -- issue 22: every count of every command, past its bound or not an integer ----------------------

MAX_STEPS, MAX_SEEDS, MAX_REPEATS, MAX_ACCUMULATION = 10_000_000, 10_000, 1_000, 10_000
MAX_WORKERS, MAX_INT = 4096, 2**63 - 1
NOT_INTEGERS = ["1.5", "1e3", "ten", "0x10", "nan", ""]


def _counts() -> Iterator[list[str]]:
    run = ["run", "quadratic", "--optimizer", "sgd"]
    compare = ["compare", "quadratic", "--optimizers", "sgd", "--db", "x.db"]
    find = ["find", "quadratic", "--no-lipschitz"]
    options: list[tuple[list[str], str, int]] = [
        (run, "--epochs", MAX_STEPS), (run, "--steps", MAX_STEPS),
        (run, "--batch-size", MAX_INT), (run, "--seed", MAX_INT), (run, "--threads", MAX_WORKERS),
        (compare, "--seeds", MAX_SEEDS), (compare, "--epochs", MAX_STEPS),
        (compare, "--steps", MAX_STEPS), (compare, "--batch-size", MAX_INT),
        (compare, "--workers", MAX_WORKERS), (compare, "--threads", MAX_WORKERS),
        (find, "--steps", MAX_STEPS), (find, "--repeats", MAX_REPEATS),
        (find, "--accumulation-steps", MAX_ACCUMULATION), (find, "--seed", MAX_INT),
        (find, "--epochs", MAX_STEPS), (find, "--run-steps", MAX_STEPS),
        (find, "--batch-size", MAX_INT), (find, "--threads", MAX_WORKERS),
        (["schedule", "constant(lr=0.1)"], "--steps", MAX_STEPS),
        (["schedule", "constant(lr=0.1)", "--steps-per-epoch", "1"], "--epochs", MAX_STEPS),
        (["schedule", "constant(lr=0.1)"], "--steps-per-epoch", MAX_STEPS),
        (["schedule", "constant(lr=0.1)"], "--every", MAX_INT),
        (["reproduce", "seed-002"], "--seeds", MAX_SEEDS),
        (["reproduce", "seed-002"], "--epochs", MAX_STEPS),
        (["reproduce", "seed-002"], "--steps", MAX_STEPS),
        (["reproduce", "seed-002"], "--workers", MAX_WORKERS),
    ]  # fmt: skip
    for command, flag, bound in options:
        beyond = sorted({bound + 1, max(bound + 1, 10**12), 2**63, 10**30})
        for value in [*map(str, beyond), *NOT_INTEGERS]:
            yield [*command, flag, value]
    # a count that is in bounds alone but not with the others
    yield [*find, "--steps", "10000", "--accumulation-steps", "10000"]
    yield ["run", "iris", "--optimizer", "sgd", "--epochs", str(MAX_STEPS // 2)]  # 24 steps each
    yield [
        "compare",
        "iris",
        "--optimizers",
        "sgd",
        "--epochs",
        str(MAX_STEPS // 10),
        "--db",
        "x.db",
    ]
    yield ["compare", "quadratic", "--optimizers", "sgd", "--lr-grid", "1e-3:1:1001"]
    for seeds in ("501", "1000", "10000"):  # 2 x 1000 x seeds runs: past a million
        yield [
            "compare", "quadratic", "--optimizers", "sgd,adam", "--lr-grid", "1e-3:1:1000",
            "--seeds", seeds, "--db", "x.db",
        ]  # fmt: skip


# -- issue 22: nonsense that ran (exit 0) before ---------------------------------------------------

USER_TASKS = (
    "import torch\nimport lrlab\n\n"
    "def named(name):\n"
    "    x = torch.randn(16, 2)\n"
    "    return lrlab.Task(name=name, model=lambda: torch.nn.Linear(2, 2),\n"
    "                      train=(x, (x[:, 0] > 0).long()), epochs=1)\n"
    + "".join(
        f"\ndef name_{i}():\n    return named({name!r})\n"
        for i, name in enumerate(["a\nb", "tab\there", "bell\x07", "sep\u2028x", "\x1b[31mred"])
    )
)


def _nonsense() -> Iterator[list[str]]:
    run = ["run", "quadratic", "--optimizer", "sgd", "--steps", "3"]
    compare = ["compare", "quadratic", "--optimizers", "sgd", "--steps", "3", "--seeds", "1"]
    for lr, spec in [
        ("0.5", "constant(lr=0.1)"), ("0.01", "cosine(lr=0.1)"), ("1", "plateau(lr=0.1)"),
        ("0.2", "wsd(lr=0.1, steps=3)"), ("1e-3", "step(lr=0.1, drop=0.5, every=1)"),
    ]:  # fmt: skip
        yield [*run, "--lr", lr, "--schedule", spec]
    fractions = [
        "cosine(lr=0.1, steps=10.5)", "linear(lr=0.1, end=0, steps=2.5)",
        "polynomial(lr=0.1, steps=0.5)", "one_cycle(lr=0.1, steps=99.99)",
        "wsd(lr=0.1, steps=7.25)", "warmup(constant(lr=0.1), steps=1.5)",
    ]  # fmt: skip
    for spec in fractions:
        yield ["schedule", spec]
        yield [*run, "--schedule", spec]
        yield [*compare, "--schedules", spec, "--db", "x.db"]
    for spec in ["plateau(lr=0.1, min_lr=1)", "plateau(lr=0.1, min_lr=[0.5])"]:
        yield ["schedule", spec, "--metrics", "metrics.csv:loss"]
        yield [*run, "--schedule", spec]
    yield [*run, "--schedule", "plateau(min_lr=1)"]  # above sgd's default LR, 0.01
    yield [*compare, "--schedules", "plateau(min_lr=0.05)", "--lr-grid", "0.01,0.1", "--db", "x.db"]
    for optimizer in ("sgd", "momentum", "adam", "adamw", "rmsprop", "adagrad"):
        for flag in ("differentiable", "capturable"):
            yield ["run", "quadratic", "--optimizer", optimizer, "--optimizer-arg", f"{flag}=true"]
    yield ["find", "quadratic", "--optimizer-arg", "differentiable=true", "--no-lipschitz"]
    yield ["find", "quadratic", "--optimizer-arg", "capturable=true", "--no-lipschitz"]
    for i in range(5):
        yield ["run", f"tasks.py:name_{i}", "--optimizer", "sgd"]
        yield ["compare", f"tasks.py:name_{i}", "--optimizers", "sgd", "--db", "x.db"]
        yield ["find", f"tasks.py:name_{i}"]
    for file in EXITS:
        yield ["run", f"{file}:make", "--optimizer", "sgd"]
        yield ["compare", f"{file}:make", "--optimizers", "sgd", "--db", "x.db"]
        yield ["find", f"{file}:make"]


# Task files that call sys.exit while they are imported, with these arguments.
EXITS = {"exit_0.py": "0", "exit_1.py": "1", "exit_none.py": "None", "exit_text.py": "'bye'"}
EXITS["exit_bare.py"] = ""


# -- issue 22: empty or blank values of every string option ----------------------------------------


def _empty() -> Iterator[list[str]]:
    commands = {
        "run": ["run", "quadratic", "--optimizer", "sgd", "--steps", "2"],
        "compare": ["compare", "quadratic", "--optimizers", "sgd", "--steps", "2", "--seeds", "1"],
        "find": ["find", "quadratic", "--no-lipschitz"],
        "schedule": ["schedule", "constant(lr=0.1)"],
        "report": ["report", "--db", "store.sqlite"],
        "reproduce": ["reproduce", "seed-002"],
        "download": ["download", "mnist"],
    }
    flags = {
        "run": ["--json", "--model", "--split", "--data-dir", "--schedule", "--optimizer",
                "--optimizer-arg", "--lr"],
        "compare": ["--schedules", "--method", "--db", "--lr-grid", "--model", "--split",
                    "--data-dir", "--out", "--address", "--runtime-env"],
        "find": ["--optimizer", "--optimizer-arg", "--model", "--split", "--data-dir", "--plot",
                 "--json"],
        "schedule": ["--metrics", "--run", "--plot"],
        "report": ["--db", "--out", "--task"],
        "reproduce": ["--out", "--data-dir"],
        "download": ["--data-dir"],
    }  # fmt: skip
    for name, options in flags.items():
        for flag in options:
            for value in ("", "  "):
                yield [*commands[name], flag, value]
    for value in ("", " ", "\t"):
        yield ["run", value, "--optimizer", "sgd"]
        yield ["compare", value, "--optimizers", "sgd"]
        yield ["find", value]
        yield ["schedule", value]


# -- issue 22: a store another process has locked ----------------------------------------------

LOCKED = ["store.sqlite", "corrupt.sqlite"]
# The last word of a case that needs its store locked first (not passed to lrlab): how.
LOCK = "#lock="


def _locks() -> Iterator[list[str]]:
    for holder in ("exclusive", "immediate"):
        for name in LOCKED:
            for extra in (["--seeds", "1"], ["--seeds", "2", "--vectorize", "off"],
                          ["--seeds", "1", "--lr-grid", "0.01,0.1"]):  # fmt: skip
                yield [
                    "compare", "quadratic", "--optimizers", "sgd", "--steps", "2",
                    "--db", name, *extra, f"{LOCK}{holder}",
                ]  # fmt: skip


# -- issue 22: users' own tasks with the classic mistakes ----------------------------------------


def _user_tasks() -> Iterator[list[str]]:
    """Each mistake of `tests.user_task_sources.BAD_TASKS` through every command that trains,
    with the options that change where and how: the one-line error names mistakes.py:LINE."""
    for name in BAD_TASKS:
        task = f"mistakes.py:{name}"
        yield ["run", task, "--optimizer", "sgd", "--quiet"]
        yield ["run", task, "--optimizer", "adam", "--schedule", "cosine(lr=0.01)", "--quiet"]
        yield ["find", task, "--no-lipschitz"]
        yield ["find", task, "--repeats", "2", "--steps", "20"]
        compare = ["compare", task, "--optimizers", "sgd,adam", "--db", "x.db"]
        yield compare
        yield [*compare, "--workers", "2", "--vectorize", "off"]
        yield [*compare, "--lr-grid", "0.01,0.1", "--seeds", "2", "--workers", "2"]


CLASSES = {
    "overflow": list(_overflow()),
    "overflow_at_step": list(_overflow_at_step()),
    "spec": list(_specs()),
    "optimizer_args": list(_optimizer_args()),
    "paths": list(_paths()),
    "stores": list(_stores()),
    "flags": list(_flags()),
    "usage": list(_usage()),
    "special_paths": list(_special_paths()),
    "counts": list(_counts()),
    "nonsense": list(_nonsense()),
    "empty": list(_empty()),
    "locks": list(_locks()),
    "user_tasks": list(_user_tasks()),
}
CASES = [(name, argv) for name, cases in CLASSES.items() for argv in cases]


def test_the_suite_tries_enough() -> None:
    counts = {name: len(cases) for name, cases in CLASSES.items()}
    assert sum(counts.values()) >= 800, counts
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
    (folder / "tasks.py").write_text(USER_TASKS)
    (folder / "mistakes.py").write_text(MISTAKES)
    for name, code in EXITS.items():
        (folder / name).write_text(f"import sys\n\nsys.exit({code})\n")


def _specials(folder: Path) -> None:
    """What a copy of the folder cannot hold: a FIFO (copying one would block on it)."""
    os.mkfifo(folder / "fifo")


def _lock(path: Path, how: str) -> sqlite3.Connection:
    """Another writer holding ``path``: a transaction taken (``immediate``), or the whole file
    in SQLite's exclusive locking mode (``exclusive``, readers shut out too)."""
    holder = sqlite3.connect(path, isolation_level=None)
    if how == "exclusive":
        holder.execute("PRAGMA locking_mode=EXCLUSIVE")
        holder.execute("BEGIN EXCLUSIVE")
    else:
        holder.execute("BEGIN IMMEDIATE")
    holder.execute("UPDATE meta SET value = value")
    return holder


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("traps")
    _traps(folder)
    return folder


def _snapshot(folder: Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): (
            "folder"
            if path.is_dir()
            else hashlib.sha256(path.read_bytes()).hexdigest()
            if path.is_file()
            else "special"  # a FIFO: never opened, it would block
        )
        for path in sorted(folder.rglob("*"))
    }


@contextlib.contextmanager
def _deadline(seconds: int) -> Iterator[None]:
    """Fail a case that blocks (on a FIFO, a lock) instead of hanging the suite."""

    def expire(signum: int, frame: object) -> None:
        raise TimeoutError(f"blocked for {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


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
    _specials(work)
    monkeypatch.chdir(work)
    monkeypatch.delenv("LRLAB_TRACEBACK", raising=False)
    monkeypatch.setenv("LRLAB_DATA", str(work / "folder"))
    monkeypatch.setattr(store_module, "NOTICE_AFTER", 0.05)  # a lock: refused at once
    monkeypatch.setattr(store_module, "BUSY_TIMEOUT", 0.05)
    holder = None
    if argv[-1].startswith(LOCK):
        holder = _lock(work / argv[argv.index("--db") + 1], argv[-1][len(LOCK) :])
        argv = argv[:-1]
    before, system = _snapshot(work), sorted(os.listdir("/dev"))
    try:
        with _deadline(60):
            code = main(argv)
    except SystemExit as exit_:  # argparse's usage errors
        code = exit_.code  # type: ignore[assignment]
    finally:
        after = _snapshot(work)
        if holder is not None:
            holder.close()
    out, err = capsys.readouterr()
    assert code == 2, err
    assert out == ""
    assert err.count("\n") == 1, err
    assert err.endswith("\n"), err
    assert err.startswith("lrlab"), err
    assert ": error: " in err
    assert "Traceback" not in err
    if kind == "user_tasks":  # the user's file and line
        task = argv[1].rpartition(":")[2]
        assert err.rstrip().endswith(f"(mistakes.py:{mistake_line(task)})"), err
    assert after == before
    assert sorted(os.listdir("/dev")) == system
