"""Real ``lrlab compare`` processes: a SIGKILLed sweep leaves no worker (nor the resource
tracker) running and the next one resumes; two sweeps on one store split the work and the
store ends with each run exactly once."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from lrlab.store import Store
from tests.waiting import rows, wait_for

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


# (no LR grid: nothing tuned, each method runs on the fresh seeds 1000 and 1001)
ARGV = ["compare", "quadratic", "--optimizers", "sgd,adam", "--holdout-seeds", "2"]
ARGV += ["--workers", "2"]


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
        assert wait_for(lambda: len(_children(driver.pid)) >= 3, 120)
        assert wait_for(lambda: db.exists() and rows(db, "leases") > 0, 120)
        children = _children(driver.pid)
        driver.send_signal(signal.SIGKILL)
        driver.wait()
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()
    assert wait_for(lambda: not any(_running(pid) for pid in children), 10), [
        Path(f"/proc/{pid}/cmdline").read_bytes() for pid in children if _running(pid)
    ]
    # The next sweep takes over the dead one's claims at once and finishes the grid.
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    with Store(db) as store:
        keys = [run.config.key() for run in store.runs()]
        assert store.count() == {"done": 4}
    assert len(keys) == len(set(keys)) == 4
    assert rows(db, "leases") == 0


# A task whose first training step in each process waits until a second process has started a
# run too: two sweeps sharing a store then certainly both run some of its runs, however the
# operating system schedules them.
MEETING_TASK = """
import os
import time

import lrlab
import torch
from lrlab.tasks import get_task

MEETING = os.environ["LRLAB_TEST_MEETING"]
_calls = []


def _mse(outputs, targets):
    _calls.append(True)
    if len(_calls) == 2:  # (the first is lrlab's check of the task, before the sweep)
        open(os.path.join(MEETING, str(os.getpid())), "w").close()
        while len(os.listdir(MEETING)) < 2:
            time.sleep(0.02)
    return torch.nn.functional.mse_loss(outputs, targets)


def make_task():
    task = get_task("quadratic")
    x, y = torch.zeros(1, 1), torch.full((1, 1), -1.0)
    return lrlab.Task(
        name="meeting",
        model=task.model_builders["scalar"],
        train=(x, y),
        loss=_mse,
        metric="loss",
        batch_size=1,
        steps=50,
    )
"""


def _compare(task: str, db: str, meeting: str, results: Any) -> None:
    os.environ["LRLAB_TEST_MEETING"] = meeting
    import lrlab

    comparison = lrlab.compare(
        task, optimizers=["sgd", "adam", "momentum"], holdout_seeds=4, db=db, workers=1
    )
    results.put((os.getpid(), comparison.ran, len(comparison.runs)))


@pytest.mark.slow
def test_two_sweeps_on_one_store_split_the_work(tmp_path: Path) -> None:
    db = str(tmp_path / "runs.sqlite")
    (tmp_path / "meeting.py").write_text(MEETING_TASK)
    meeting = tmp_path / "met"
    meeting.mkdir()
    task = f"{tmp_path / 'meeting.py'}:make_task"
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    sweeps = [
        context.Process(target=_compare, args=(task, db, str(meeting), results)) for _ in range(2)
    ]
    for sweep in sweeps:
        sweep.start()
    outcomes = [results.get(timeout=600) for _ in sweeps]
    for sweep in sweeps:
        sweep.join(60)
    assert [s.exitcode for s in sweeps] == [0, 0]
    ran = [count for _, count, _ in outcomes]
    assert sum(ran) == 12  # no run ran twice...
    assert min(ran) > 0  # ...and both did some (each waited for the other to start one)
    assert [stored for _, _, stored in outcomes] == [12, 12]  # each saw the whole grid
    with Store(db) as store:
        keys = [run.config.key() for run in store.runs()]
        assert store.count() == {"done": 12}
    assert len(set(keys)) == 12
