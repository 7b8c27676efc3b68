"""Real ``lrlab compare`` processes: a SIGKILLed sweep leaves no worker (nor the resource
tracker) running and the next one resumes; two sweeps on one store split the work and the
store ends with each run exactly once."""

from __future__ import annotations

import multiprocessing
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from lrlab.store import Store

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")


def _children(pid: int) -> set[int]:
    """The processes whose parent is ``pid`` (from /proc)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rpartition(")")[2].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            found.add(int(entry.name))
    return found


def _running(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def _wait_for(condition: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return bool(condition())


ARGV = ["compare", "quadratic", "--optimizers", "sgd,adam", "--seeds", "2", "--workers", "2"]


@pytest.mark.slow
def test_a_killed_sweep_leaves_no_worker_running_and_resumes(tmp_path: Path) -> None:
    db = tmp_path / "runs.sqlite"
    command = [sys.executable, "-m", "lrlab", *ARGV, "--steps", "1500", "--db", str(db)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    driver = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        # Two pool workers and the resource tracker, and a run under way in a worker.
        assert _wait_for(lambda: len(_children(driver.pid)) >= 3, 120)
        assert _wait_for(lambda: db.exists() and _leases(db) > 0, 120)
        children = _children(driver.pid)
        driver.send_signal(signal.SIGKILL)
        driver.wait()
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()
    assert _wait_for(lambda: not any(_running(pid) for pid in children), 10), [
        Path(f"/proc/{pid}/cmdline").read_bytes() for pid in children if _running(pid)
    ]
    # The next sweep takes over the dead one's claims at once and finishes the grid.
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    with Store(db) as store:
        keys = [run.config.key() for run in store.runs()]
        assert store.count() == {"done": 4}
    assert len(keys) == len(set(keys)) == 4
    assert _leases(db) == 0


def _leases(db: Path) -> int:
    try:
        connection = sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True)
        try:
            return int(connection.execute("SELECT COUNT(*) FROM leases").fetchone()[0])
        finally:
            connection.close()
    except sqlite3.Error:
        return 0


def _compare(db: str, barrier: Any, results: Any) -> None:
    import lrlab

    barrier.wait()  # both started, torch imported: they race for the same grid
    comparison = lrlab.compare(
        "quadratic",
        optimizers=["sgd", "adam", "momentum"],
        seeds=4,
        steps=300,
        db=db,
        workers=1,
    )
    results.put((os.getpid(), comparison.ran, len(comparison.runs)))


@pytest.mark.slow
def test_two_sweeps_on_one_store_split_the_work(tmp_path: Path) -> None:
    db = str(tmp_path / "runs.sqlite")
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(2), context.Queue()
    sweeps = [context.Process(target=_compare, args=(db, barrier, results)) for _ in range(2)]
    for sweep in sweeps:
        sweep.start()
    outcomes = [results.get(timeout=600) for _ in sweeps]
    for sweep in sweeps:
        sweep.join(60)
    assert [s.exitcode for s in sweeps] == [0, 0]
    ran = [count for _, count, _ in outcomes]
    assert sum(ran) == 12  # no run ran twice...
    assert min(ran) > 0  # ...and both did some
    assert [stored for _, _, stored in outcomes] == [12, 12]  # each saw the whole grid
    with Store(db) as store:
        keys = [run.config.key() for run in store.runs()]
        assert store.count() == {"done": 12}
    assert len(set(keys)) == 12
