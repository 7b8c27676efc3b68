"""``lrlab compare``: the grid, the executors, failures inside a sweep, resume after SIGKILL,
and the report regenerated from the store alone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from lrlab.cli import main
from lrlab.cli.common import parse_lr_grid, parse_method
from lrlab.execution import InProcess, LocalPool, Outcome, make_executor
from lrlab.record import RunConfig
from lrlab.store import Store
from lrlab.sweep import Sweep
from tests.waiting import rows, wait_for


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
    from lrlab.execution.worker import run_one

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
        "--holdout-seeds",
        "2",
        "--method",
        "sgd:lipschitz(bound=smooth)",
        "--method",
        "sgd:lipschitz(bound=paper, l2=-1)",
    ]
    code, out, err = _compare(capsys, *argv)
    assert code == 2  # a bad option is refused before anything runs
    assert "l2 must be a finite number >= 0" in err
    assert not db.exists() or Store(db).count() == {}

    # A runaway LipschitzLR (scale 1e30, per batch): two diverging runs inside the sweep.
    runaway = "lipschitz(bound=smooth, every=batch, max_lr=1e30, scale=1e30)"
    argv = [*argv[:-2], "--method", f"sgd:{runaway}"]
    code, out, err = _compare(capsys, *argv)
    assert code == 0
    # sgd, adam: 2 LRs x 2 tuning seeds each; then the four methods on 2 fresh seeds each.
    assert "iris: 8 runs, 0 already in" in err
    assert "iris: 8 runs, 0 already in" in err.split("iris: 8 runs, 0 already in", 1)[1]
    with Store(db) as store:
        counts = store.count()
        runs = store.runs()
    assert sum(counts.values()) == 16
    diverged = [r for r in runs if r.status == "diverged"]
    assert {r.config.seed for r in diverged} == {1000, 1001}
    assert {r.config.schedule for r in diverged} == {runaway}
    assert "iris: target accuracy >= 0.9" in out
    assert "sgd + lipschitz(bound=smooth)" in out
    assert "none (2 runs)" in out
    assert "2 LRs x 2 seeds = 4 runs + 2 fresh" in out
    assert "scored on fresh seeds 1000, 1001" in out
    report = tmp_path / "runs-report" / "report.md"
    assert report.is_file()
    for name in ("iris-loss.png", "iris-lr.png", "iris-metric.png", "summary.csv", "runs.csv"):
        assert (tmp_path / "runs-report" / name).stat().st_size > 0

    code, out, err = _compare(capsys, *argv)  # again: nothing left to run
    assert code == 0
    assert err.count("8 runs, 8 already in") == 2
    assert "1 to run" not in err


def test_a_raising_run_is_stored_as_failed_and_the_sweep_goes_on(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """The paper's MSE bound on standardised regression targets: K_a - ||y|| < 0, which
    LipschitzLR refuses inside the run (no max_lr)."""
    db = tmp_path / "runs.sqlite"
    code, _out, err = _compare(
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
        "--holdout-seeds",
        "2",
    )
    assert code == 1  # some runs failed: said on stderr's last line
    last = err.strip().splitlines()[-1]
    assert last.startswith("lrlab: 2 of 4 runs failed (all with NonPositiveBound: "), last
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


# A task file whose "held-sgd" runs wait while a file exists: a sweep of sgd and held-sgd runs
# stores its sgd runs and then cannot finish until the test lets it, however fast the machine.
HELD_TASK = """
import os
import time

import torch

from lrlab import register_optimizer
from lrlab.tasks import get_task

HOLD = os.environ["LRLAB_TEST_HOLD"]


class HeldSGD(torch.optim.SGD):
    def step(self, closure=None):
        while os.path.exists(HOLD):
            time.sleep(0.05)
        return super().step(closure)


register_optimizer("held-sgd", HeldSGD, defaults={"lr": 0.05})


def make_task():
    return get_task("iris")
"""


@pytest.mark.slow
def test_sigkill_mid_sweep_loses_nothing_and_resumes(tmp_path: Path) -> None:
    """Kill the whole sweep (pool workers too) with SIGKILL while runs are in flight; every
    stored row stays intact, and the same command finishes the rest without redoing them.
    The held runs make "in flight" certain, not a matter of timing."""
    db = tmp_path / "runs.sqlite"
    hold = tmp_path / "hold"
    hold.touch()
    (tmp_path / "held.py").write_text(HELD_TASK)
    command = [
        sys.executable,
        "-m",
        "lrlab",
        "compare",
        f"{tmp_path / 'held.py'}:make_task",
        "--optimizers",
        "sgd,held-sgd",
        "--holdout-seeds",  # nothing is tuned: the runs are the 3 fresh seeds'
        "3",
        "--epochs",
        "2",
        "--db",
        str(db),
        "--workers",
        "2",
        "--vectorize",
        "off",
        "--out",
        str(tmp_path / "report"),
    ]
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "LRLAB_TEST_HOLD": str(hold)}
    sweep = subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env=environment,
    )
    try:
        assert wait_for(lambda: rows(db, "runs") >= 3 or sweep.poll() is not None)
        assert sweep.poll() is None, "the sweep ended while its held runs could not finish"
    finally:
        os.killpg(sweep.pid, signal.SIGKILL)
        sweep.wait()
    with Store(db) as store:
        assert store.integrity() == "ok"
        before = {r.config.key(): r.finished_at for r in store.runs()}
        assert {r.config.optimizer for r in store.runs()} == {"sgd"}
        assert len(before) == 3
        assert all(r.status == "done" and r.record is not None for r in store.runs())
    hold.unlink()
    finished = subprocess.run(
        command, capture_output=True, text=True, env=environment, timeout=300, check=False
    )
    assert finished.returncode == 0, finished.stderr
    assert "3 already in" in finished.stderr
    with Store(db) as store:
        after = {r.config.key(): r.finished_at for r in store.runs()}
    assert len(after) == 6
    assert all(after[key] == stamp for key, stamp in before.items())  # not redone
