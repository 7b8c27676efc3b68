"""``lrlab compare``: the grid, the executors, failures inside a sweep, resume after SIGKILL,
and the report regenerated from the store alone."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from lrlab.cli import main
from lrlab.cli.common import parse_lr_grid, parse_method
from lrlab.executors import InProcess, LocalPool, Outcome, make_executor
from lrlab.record import RunConfig
from lrlab.store import Store
from lrlab.sweep import Sweep


def test_grid_tunes_only_methods_that_take_an_lr() -> None:
    sweep = Sweep(
        task="iris",
        optimizers=("sgd", "adam"),
        schedules=(None, "lipschitz(bound=smooth)"),
        seeds=(0, 1),
        lr_grid=(0.01, 0.1, 1.0),
        run={"epochs": 2},
        extra=(("sgd", None), ("momentum", "cosine(lr=0.1, steps=100)")),
    )
    configs = sweep.configs()
    by_method: dict[tuple[str, str | None], set[float | None]] = {}
    for config in configs:
        by_method.setdefault((config.optimizer, config.schedule), set()).add(config.lr)
        assert config.epochs == 2
    assert by_method[("sgd", None)] == {0.01, 0.1, 1.0}
    assert by_method[("adam", None)] == {0.01, 0.1, 1.0}
    assert by_method[("sgd", "lipschitz(bound=smooth)")] == {None}  # sets its own LR
    assert by_method[("momentum", "cosine(lr=0.1, steps=100)")] == {0.01, 0.1, 1.0}
    # 3 tuned methods x 3 LRs x 2 seeds + 2 self-tuning x 2 seeds; the extra sgd pair is no repeat
    assert len(configs) == 3 * 3 * 2 + 2 * 2
    assert len({c.key() for c in configs}) == len(configs)


def test_lr_grid_and_method_parsing() -> None:
    assert parse_lr_grid("1e-3,1e-2") == (0.001, 0.01)
    assert parse_lr_grid("1e-4:1:5") == (0.0001, 0.001, 0.01, 0.1, 1.0)
    for bad in ("", "0.1,-1", "1:0.1:3", "1e-3:1:1", "a,b", "nan"):
        with pytest.raises(ValueError, match="--lr-grid"):
            parse_lr_grid(bad)
    assert parse_method("sgd") == ("sgd", None)
    assert parse_method("sgd:lipschitz(bound=paper, every=batch)") == (
        "sgd",
        "lipschitz(bound=paper, every=batch)",
    )
    with pytest.raises(ValueError, match="--method must look like"):
        parse_method(":cosine(lr=1, steps=2)")


def test_executor_choice() -> None:
    assert isinstance(make_executor("local", workers=1), InProcess)
    assert isinstance(make_executor("local", workers=2, runs=5), LocalPool)
    with pytest.raises(ValueError, match="address is for executor=ray"):
        make_executor("local", workers=2, address="auto")
    with pytest.raises(ValueError, match="workers must be >= 1"):
        make_executor("local", workers=0, runs=3)


def _die_on_seed_1(config_data: dict[str, Any]) -> tuple[str | None, str | None]:
    """A worker that dies (as an out-of-memory kill would) on one config."""
    if config_data["seed"] == 1:
        os._exit(9)
    from lrlab.executors import run_one

    return run_one(config_data)


def test_pool_survives_a_dying_worker() -> None:
    configs = [RunConfig(task="iris", optimizer="sgd", lr=0.05, steps=20, seed=s) for s in range(4)]
    outcomes: list[Outcome] = []
    LocalPool(2, target=_die_on_seed_1).run(configs, outcomes.append)
    by_seed = {o.config.seed: o for o in outcomes}
    assert sorted(by_seed) == [0, 1, 2, 3]
    assert by_seed[1].record is None
    assert by_seed[1].error is not None
    assert "worker process died" in by_seed[1].error
    for seed in (0, 2, 3):
        assert by_seed[seed].record is not None
        assert by_seed[seed].record.steps == 20


def _compare(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["compare", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_compare_stores_ranks_and_resumes(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    db = tmp_path / "runs.sqlite"
    argv = [
        "iris",
        "--optimizers",
        "sgd,adam",
        "--seeds",
        "2",
        "--epochs",
        "3",
        "--db",
        str(db),
        "--workers",
        "1",
        "--lr-grid",
        "0.01,0.05",
        "--method",
        "sgd:lipschitz(bound=smooth)",
        "--method",
        "sgd:lipschitz(bound=paper, l2=-1)",
    ]
    code, out, err = _compare(capsys, *argv)
    assert code == 2  # a bad option is refused before anything runs
    assert "l2 must be a finite number >= 0" in err
    assert not db.exists() or Store(db).count() == {}

    # A runaway LipschitzLR (scale 1e9): two diverging runs inside the sweep.
    argv = [*argv[:-2], "--method", "sgd:lipschitz(bound=paper, max_lr=1e9, scale=1e9)"]
    code, out, err = _compare(capsys, *argv)
    assert code == 0
    # sgd, adam: 2 LRs x 2 seeds each; the two LipschitzLR methods: 2 seeds each.
    assert "iris: 12 runs in the grid, 0 already in" in err
    with Store(db) as store:
        counts = store.count()
    assert sum(counts.values()) == 12
    with Store(db) as store:
        diverged = [r for r in store.runs() if r.status == "diverged"]
    # Iris' 4-unit ReLU layer can die before the loss overflows, so one seed may stay finite.
    assert len(diverged) >= 1
    assert {r.config.schedule for r in diverged} == {
        "lipschitz(bound=paper, max_lr=1e9, scale=1e9)"
    }
    assert "iris: target accuracy >= 0.9" in out
    assert "sgd + lipschitz(bound=smooth)" in out
    assert "none (2 runs)" in out
    assert "2 LRs x 2 seeds = 4 runs" in out
    report = tmp_path / "runs-report" / "report.md"
    assert report.is_file()
    for name in ("iris-loss.png", "iris-lr.png", "iris-metric.png", "summary.csv", "runs.csv"):
        assert (tmp_path / "runs-report" / name).stat().st_size > 0

    code, out, err = _compare(capsys, *argv)  # again: nothing left to run
    assert code == 0
    assert "12 already in" in err
    assert "0 to run" in err


def test_a_raising_run_is_stored_as_failed_and_the_sweep_goes_on(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """The paper's MSE bound on standardised regression targets: K_a - ||y|| < 0, which
    LipschitzLR refuses inside the run (no max_lr)."""
    db = tmp_path / "runs.sqlite"
    code, _out, _ = _compare(
        capsys,
        "regression",
        "--optimizers",
        "sgd",
        "--seeds",
        "2",
        "--epochs",
        "2",
        "--db",
        str(db),
        "--workers",
        "2",
        "--method",
        "sgd:lipschitz(bound=paper)",
    )
    assert code == 0
    with Store(db) as store:
        runs = store.runs()
    failed = [r for r in runs if r.status == "failed"]
    assert len(failed) == 2
    assert len(runs) == 4
    assert all("K_a - ||y|| turning negative" in (r.error or "") for r in failed)
    report = (tmp_path / "runs-report" / "report.md").read_text()
    assert "Failures: NonPositiveBound: LipschitzLR: K is" in report


def test_report_regenerates_from_the_store_alone(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    db = tmp_path / "runs.sqlite"
    assert (
        _compare(
            capsys,
            "digits",
            "--optimizers",
            "momentum,adagrad",
            "--seeds",
            "2",
            "--epochs",
            "2",
            "--db",
            str(db),
            "--workers",
            "1",
        )[0]
        == 0
    )
    first = (tmp_path / "runs-report" / "report.md").read_text()
    ranking = capsys.readouterr()
    out_dir = tmp_path / "again"
    assert main(["report", "--db", str(db), "--out", str(out_dir)]) == 0
    out, _ = capsys.readouterr()
    assert (out_dir / "report.md").read_text() == first
    assert "digits: target accuracy >= 0.93" in out
    assert {p.name for p in out_dir.iterdir()} == {
        "report.md",
        "summary.csv",
        "runs.csv",
        "digits-loss.png",
        "digits-lr.png",
        "digits-metric.png",
    }
    del ranking


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["iris", "--optimizers", "sgdd"], "unknown optimizer 'sgdd'"),
        (
            ["iris", "--optimizers", "sgd", "--schedules", "warmup(cosine(lr=0.1), steps=5)"],
            "missing argument steps",
        ),
        (["iris", "--optimizers", "sgd", "--lr-grid", "1:0"], "--lr-grid must be"),
        (["iris", "--optimizers", "sgd", "--seeds", "0"], "--seeds must be >= 1"),
        (["mnist", "--optimizers", "sgd", "--data-dir", "/nonexistent"], "lrlab download mnist"),
        (["iris"], "--optimizers must be at least one optimizer name"),
    ],
)
def test_compare_errors_before_running(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, argv: list[str], message: str
) -> None:
    code, _out, err = _compare(capsys, *argv, "--db", str(tmp_path / "x.sqlite"))
    assert code == 2
    assert err.count("\n") == 1
    assert message in err


def test_report_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["report", "--db", str(tmp_path / "missing.sqlite")]) == 2
    assert "no such file" in capsys.readouterr().err
    Store(tmp_path / "empty.sqlite").close()
    assert main(["report", "--db", str(tmp_path / "empty.sqlite")]) == 2
    assert "no runs" in capsys.readouterr().err


@pytest.mark.slow
def test_sigkill_mid_sweep_loses_nothing_and_resumes(tmp_path: Path) -> None:
    """Kill the whole sweep (pool workers too) with SIGKILL while runs are in flight; every
    stored row stays intact, and the same command finishes the rest without redoing them."""
    db = tmp_path / "runs.sqlite"
    command = [
        sys.executable,
        "-m",
        "lrlab",
        "compare",
        "iris",
        "--optimizers",
        "sgd,momentum,adam",
        "--seeds",
        "3",
        "--epochs",
        "60",
        "--db",
        str(db),
        "--workers",
        "2",
        "--out",
        str(tmp_path / "report"),
    ]
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    sweep = subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env=environment,
    )
    deadline = time.monotonic() + 180
    stored = 0
    while time.monotonic() < deadline and sweep.poll() is None:
        time.sleep(0.2)
        if db.exists():
            try:
                connection = sqlite3.connect(db, timeout=1)
                stored = connection.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
                connection.close()
            except sqlite3.OperationalError:
                continue
            if stored >= 2:
                break
    assert sweep.poll() is None, "the sweep finished before it could be killed"
    os.killpg(sweep.pid, signal.SIGKILL)
    sweep.wait()
    with Store(db) as store:
        assert store.integrity() == "ok"
        before = {r.config.key(): r.finished_at for r in store.runs()}
        assert 2 <= len(before) < 9
        assert all(r.status == "done" and r.record is not None for r in store.runs())
    finished = subprocess.run(
        command, capture_output=True, text=True, env=environment, timeout=300, check=False
    )
    assert finished.returncode == 0, finished.stderr
    assert f"{len(before)} already in" in finished.stderr
    with Store(db) as store:
        after = {r.config.key(): r.finished_at for r in store.runs()}
    assert len(after) == 9
    assert all(after[key] == stamp for key, stamp in before.items())  # not redone
