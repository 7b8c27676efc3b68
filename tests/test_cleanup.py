"""Issue 22: after a SIGKILL or a Ctrl-C of ``lrlab compare``, with any executor, no process it
started is alive 10 s later: the pool's workers, the ``DataLoader`` workers they started, the
resource tracker, and a local Ray instance with its agents (`lrlab.keeper`). A Ctrl-C during
the workers' start-up prints no worker's traceback: the workers ignore it, the parent handles
it (exit 130).

Each test starts ``lrlab compare`` in a session of its own (a Ctrl-C is then SIGINT to that
session's process group, as a terminal sends it), collects its processes from ``/proc``, and
after the signal waits for every process of the session, and of the Ray keeper's session, to
be gone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from lrlab.keeper import descendants
from tests.user_task_sources import WORKER_TASKS
from tests.waiting import wait_for

ROOT = Path(__file__).resolve().parents[1]
GONE_WITHIN = 10.0

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rpartition(")")[2].split()


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _in_sessions(sessions: set[int]) -> dict[int, str]:
    """The live processes (not zombies) whose session is one of ``sessions``."""
    found = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            stat = _stat(int(name))
            if stat is not None and stat[0] != "Z" and int(stat[3]) in sessions:
                found[int(name)] = _cmdline(int(name))
    return found


class Sweep:
    """``lrlab compare ...`` in a session of its own, its processes watched."""

    def __init__(self, argv: list[str], cwd: Path) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
        env.pop("LRLAB_TRACEBACK", None)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "lrlab", "compare", *argv],
            cwd=cwd,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.sessions = {self.process.pid}
        self.seen: dict[int, str] = {}

    def tree(self) -> dict[int, str]:
        """Its descendants now (and every one seen so far is remembered)."""
        now = {pid: _cmdline(pid) for pid in descendants(self.process.pid)}
        self.seen.update(now)
        for pid, command in now.items():
            if "lrlab/keeper.py" in command:
                self.sessions.add(pid)  # the keeper's session holds the Ray instance
        return now

    def wait_until(self, condition: Callable[[dict[int, str]], bool], seconds: float) -> None:
        ok = wait_for(lambda: self.process.poll() is None and condition(self.tree()), seconds)
        assert ok, (self.process.poll(), self.seen, self.stderr() if self.process.poll() else "")

    def stderr(self) -> str:
        assert self.process.stderr is not None
        return self.process.stderr.read()

    def finish(self, signum: int) -> tuple[int, str]:
        """Send ``signum`` (SIGINT to the whole process group, as a terminal's Ctrl-C), wait
        for the command, and assert that nothing of it is left within `GONE_WITHIN` s."""
        self.tree()
        if signum == signal.SIGINT:
            os.killpg(self.process.pid, signal.SIGINT)
        else:
            self.process.send_signal(signum)
        try:
            code = self.process.wait(60)
        finally:
            if self.process.poll() is None:
                self.process.kill()
        ended = time.monotonic()
        left = {}
        while time.monotonic() - ended < GONE_WITHIN:
            left = _in_sessions(self.sessions) | {
                pid: command for pid, command in self.seen.items() if _alive(pid)
            }
            if not left:
                break
            time.sleep(0.2)
        assert not left, f"alive {GONE_WITHIN:g} s after the command: {left}"
        return code, self.stderr()


def _alive(pid: int) -> bool:
    stat = _stat(pid)
    return stat is not None and stat[0] != "Z"


def _workers(tree: dict[int, str]) -> list[int]:
    return [pid for pid, command in tree.items() if "spawn_main" in command]


def _loader_workers(sweep: Sweep) -> int:
    """How many processes the pool's workers started (their DataLoaders' workers)."""
    return sum(len(descendants(pid)) for pid in _workers(sweep.seen) if _alive(pid))


@pytest.fixture
def task_file(tmp_path: Path) -> Path:
    (tmp_path / "loaders.py").write_text(WORKER_TASKS)
    return tmp_path


POOL = ["loaders.py:slow_default", "--optimizers", "sgd,adam", "--holdout-seeds", "2"]
POOL += ["--workers", "2", "--db", "runs.sqlite"]


SIGNALS = [signal.SIGKILL, signal.SIGTERM, signal.SIGINT]


def _expected_code(signum: int) -> int:
    return 130 if signum == signal.SIGINT else -signum


@pytest.mark.slow
@pytest.mark.parametrize("signum", SIGNALS, ids=lambda s: signal.Signals(s).name)
@pytest.mark.parametrize("moment", ["starting", "running"])
def test_a_pool_sweep_killed_leaves_nothing(task_file: Path, signum: int, moment: str) -> None:
    """Killed while its workers start (importing torch) or while they run, their DataLoaders'
    workers busy."""
    sweep = Sweep(POOL, task_file)
    if moment == "starting":
        sweep.wait_until(lambda tree: len(_workers(tree)) >= 1, 120)
    else:
        sweep.wait_until(lambda tree: len(_workers(tree)) >= 2 and _loader_workers(sweep) >= 2, 120)
    code, err = sweep.finish(signum)
    assert code == _expected_code(signum), err
    assert _loader_workers(sweep) == 0
    if signum == signal.SIGINT:
        assert "Traceback" not in err, err
        assert "KeyboardInterrupt" not in err, err
        assert "interrupted:" in err, err


RAY = ["quadratic", "--optimizers", "sgd,adam", "--holdout-seeds", "2", "--steps", "200000"]
RAY += ["--vectorize", "off", "--executor", "ray", "--workers", "2", "--db", "runs.sqlite"]


@pytest.mark.slow
@pytest.mark.parametrize("signum", SIGNALS, ids=lambda s: signal.Signals(s).name)
@pytest.mark.parametrize("moment", ["starting", "running"])
def test_a_ray_sweep_killed_leaves_nothing(tmp_path: Path, signum: int, moment: str) -> None:
    """Killed while the local Ray instance starts (its keeper up, Ray's processes coming) or
    while runs run on its workers, its agents up."""
    pytest.importorskip("ray")
    sweep = Sweep(RAY, tmp_path)
    if moment == "starting":
        sweep.wait_until(lambda tree: any("gcs_server" in c for c in tree.values()), 180)
    else:
        sweep.wait_until(
            lambda tree: (
                any("ray::run_on_worker" in c for c in tree.values())
                and any("ray::DashboardAgent" in c for c in tree.values())
            ),
            180,
        )
    code, err = sweep.finish(signum)
    if signum == signal.SIGTERM:  # (Ray's driver handles SIGTERM itself, its own way)
        assert code != 0, err
    else:
        assert code == _expected_code(signum), err
    if signum == signal.SIGINT:
        assert "Traceback" not in err, err
