"""`lrlab compare --executor ray --address` on a real Ray cluster of two nodes on this machine.

The cluster is started here as a user starts one (`ray start --head`, then `ray start
--address=...` for the second node), with token authentication (``RAY_AUTH_MODE=token``, a
token from `ray get-auth-token --generate`), in a temporary directory of its own: its own
ports, HOME (so ``~/.ray`` is not the user's), token file and Ray temp dir. Every process it
starts carries a marker in its environment, and teardown kills each of them by PID (and a
watchdog does the same if the test process itself is killed), so nothing outlives the test.
Every address given is 127.0.0.1; Ray 2.60 itself advertises the machine's own address for
``--node-ip-address=127.0.0.1`` (``resolve_ip_for_localhost`` in ``ray/_private/services.py``)
and its servers listen on every interface: the token is what keeps anyone else out.

Each node has one CPU. The sweep's task is a user task given as ``file.py:function`` in a
temporary folder, whose sibling module registers a schedule and which registers an optimizer
itself: nothing a worker has unless lrlab ships it. Its model factory logs, per run, the
worker's PID, its parent (the raylet, so the node) and the file it was imported from, and in
a Ray worker it sleeps a second, so runs are in flight long enough to lose a node under them.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path

import pytest

import lrlab
from lrlab.record import RunRecord
from lrlab.store import Store
from tests.plugin_sources import HALVING

ray = pytest.importorskip("ray")

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

SRC = Path(lrlab.__file__).resolve().parents[1]
MARKER = "LRLAB_TEST_CLUSTER"
SLEEP_ON_RAY = 1.0  # seconds a run sleeps in a Ray worker: in flight while the test kills
STARTUP = 120.0  # seconds a node may take to start, a driver to finish


TASK = """
import os
import sys
import time

import numpy as np
import torch
from torch import nn

import halving  # noqa: F401  (a sibling module: registers the "halving" schedule)
import lrlab
from lrlab.optimizers import register_optimizer

register_optimizer("plain-sgd", torch.optim.SGD, defaults={{"lr": 0.1}})


def model():
    with open({log!r}, "a") as log:
        fields = [time.time(), os.getpid(), os.getppid(), torch.initial_seed(), __file__]
        log.write(" ".join(str(field) for field in fields) + "\\n")
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():  # in a Ray worker: stay in flight a while
        time.sleep({sleep})
    return nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3))


def make():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(96, 4)).astype(np.float32)
    y = (x @ rng.normal(size=(4, 3))).argmax(axis=1)
    train = (torch.from_numpy(x[:64]), torch.from_numpy(y[:64]))
    test = (torch.from_numpy(x[64:]), torch.from_numpy(y[64:]))
    return lrlab.Task(
        name="toy", model=model, train=train, test=test, loss="cross_entropy",
        metric="accuracy", batch_size=16, epochs=2,
    )
"""

# The grid: the optimizer the task file registers, with the schedule its sibling registers,
# over 8 seeds (so the model factory's log tells the runs apart): 8 runs of 8 steps.
METHOD = ["--optimizers", "plain-sgd", "--schedules", "halving(lr=0.1, every=4)"]
# One run per Ray task (no vectorised groups), so the test can follow each run to its node
# when one is lost; groups as Ray tasks are tested in test_ray.py.
# (--optimistic: every run on the seeds given, one sweep, so runs can be counted per node.)
GRID = [*METHOD, "--seeds", "8", "--vectorize", "off", "--optimistic"]
SMALL_GRID = [*METHOD, "--seeds", "4", "--vectorize", "off", "--optimistic"]


# --- processes --------------------------------------------------------------------------------


def _parents() -> dict[int, int]:
    """PID -> parent PID of every process (from /proc)."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                stat = (entry / "stat").read_text()
                parents[int(entry.name)] = int(stat.rpartition(")")[2].split()[1])
    return parents


def tree(pid: int) -> list[int]:
    """``pid`` and all its descendants."""
    parents = _parents()
    found, frontier = [pid], [pid]
    while frontier:
        frontier = [child for child, parent in parents.items() if parent in frontier]
        found += frontier
    return found


def marked(value: str) -> list[int]:
    """Processes whose environment holds ``MARKER=value``."""
    needle = f"{MARKER}={value}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            with contextlib.suppress(OSError):
                if needle in (entry / "environ").read_bytes().split(b"\0"):
                    pids.append(int(entry.name))
    return pids


def kill(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# Kills every marked process and removes the folder once the test process is gone: what is
# left if the test is killed before its own teardown runs.
WATCHDOG = """
import os, signal, shutil, sys, time
from pathlib import Path
test, root, needle = int(sys.argv[1]), sys.argv[2], sys.argv[3].encode()
while os.path.exists(f"/proc/{test}") and os.path.exists(root):
    time.sleep(0.5)
for entry in Path("/proc").iterdir():
    if entry.name.isdigit():
        try:
            if needle in (entry / "environ").read_bytes().split(b"\\0"):
                os.kill(int(entry.name), signal.SIGKILL)
        except OSError:
            pass
shutil.rmtree(root, ignore_errors=True)
"""


class Cluster:
    """A two-node Ray cluster (one CPU each) in ``root``, token authentication on."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        home = root / "home"
        home.mkdir()
        self.token = home / ".ray" / "auth_token"
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
        env.pop("PYTHONPATH", None)
        env.update(
            HOME=str(home),
            PYTHONPATH=str(SRC),
            RAY_AUTH_MODE="token",
            RAY_AUTH_TOKEN_PATH=str(self.token),
            RAY_USAGE_STATS_ENABLED="0",
            # A lost node is declared dead after 5 missed health checks, every 3 s by default:
            # every 1 s here, so Ray reschedules its runs after about 5 s instead of 15 s.
            RAY_health_check_period_ms="1000",
            OMP_NUM_THREADS="1",
            MPLBACKEND="Agg",
            PYTHONUNBUFFERED="1",
        )
        env[MARKER] = str(root)
        self.env = env
        self.nodes: dict[str, subprocess.Popen[bytes]] = {}
        self.watchdog = subprocess.Popen(
            [sys.executable, "-c", WATCHDOG, str(os.getpid()), str(root), f"{MARKER}={root}"],
            start_new_session=True,
        )

    def start(self) -> None:
        # Into $HOME/.ray/auth_token (RAY_AUTH_TOKEN_PATH names a file that must exist).
        subprocess.run(
            [sys.executable, "-m", "ray.scripts.scripts", "get-auth-token", "--generate"],
            env={k: v for k, v in self.env.items() if k != "RAY_AUTH_TOKEN_PATH"},
            check=True,
            capture_output=True,
            timeout=STARTUP,
        )
        assert self.token.is_file()
        common = [
            "--node-ip-address=127.0.0.1",
            "--num-cpus=1",
            "--object-store-memory=100000000",
            "--min-worker-port=0",
            "--max-worker-port=0",
            f"--dashboard-agent-listen-port={free_port()}",
            "--disable-usage-stats",
            "--block",
        ]
        self._start(
            "head",
            [
                "--head",
                f"--port={self.port}",
                "--include-dashboard=false",
                f"--temp-dir={self.root / 'ray'}",
                *common,
            ],
        )
        self._start("worker", [f"--address={self.address}", *common])

    def _start(self, name: str, args: list[str]) -> None:
        log = self.root / f"{name}.log"
        with log.open("wb") as out:
            self.nodes[name] = subprocess.Popen(
                [sys.executable, "-m", "ray.scripts.scripts", "start", *args],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + STARTUP
        while b"Ray runtime started" not in log.read_bytes():
            if self.nodes[name].poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"ray {name} node did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.1)

    def raylet(self, name: str) -> int:
        """The PID of node ``name``'s raylet (a worker process's parent)."""
        for pid in tree(self.nodes[name].pid):
            with contextlib.suppress(OSError):
                if b"raylet/raylet" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    return pid
        raise AssertionError(f"no raylet under the {name} node")

    def kill_node(self, name: str) -> list[int]:
        """SIGKILL every process of node ``name``: its ``ray start``, raylet, agents, workers."""
        pids = tree(self.nodes[name].pid)
        kill(pids)
        self.nodes[name].wait()
        return pids

    def stop(self) -> None:
        for _ in range(3):  # processes may be starting while others die
            kill([pid for name in self.nodes for pid in tree(self.nodes[name].pid)])
            kill(marked(str(self.root)))
        for process in self.nodes.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=10)
        self.watchdog.kill()
        self.watchdog.wait()
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def two_node_cluster() -> Iterator[Cluster]:
    """A `Cluster`, not started yet, and stopped whatever happens."""
    # A short path: Ray's Unix sockets live under the temp dir (107 characters at most).
    cluster = Cluster(Path(tempfile.mkdtemp(prefix="lrlab-ray-", dir="/tmp")))
    previous = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # teardown runs on SIGTERM too
    try:
        yield cluster
    finally:
        signal.signal(signal.SIGTERM, previous)
        cluster.stop()


# --- the sweep --------------------------------------------------------------------------------


def driver(
    cluster: Cluster, task: str, db: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    """``lrlab compare`` in a process of its own, in an empty folder (Ray puts the driver's
    folder on its workers' path, so the task's folder must not be it)."""
    folder = cluster.root / "driver"
    folder.mkdir(exist_ok=True)
    return subprocess.Popen(
        [sys.executable, "-m", "lrlab", "compare", task, "--db", str(db), "--verbose", *args],
        cwd=folder,
        env=env or cluster.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finish(process: subprocess.Popen[str]) -> tuple[int, str]:
    output, _ = process.communicate(timeout=STARTUP)
    return process.returncode, output


def numbers(record: RunRecord | None) -> dict[str, object]:
    """A record without its timings and versions: what equal runs have equal."""
    assert record is not None
    data = asdict(record)
    for key in ("wall_time", "train_time", "versions"):
        data.pop(key)
    data["extra"].pop("vectorized", None)  # how big the group was depends on the executor
    for epoch in data["epochs"]:
        epoch.pop("wall_time")
        epoch.pop("train_time")
    return data


def stored(db: Path) -> dict[str, dict[str, object]]:
    with Store(db) as store:
        runs = store.runs()
    assert all(run.status == "done" for run in runs), [(r.status, r.error) for r in runs]
    return {run.config.key(): numbers(run.record) for run in runs}


def outcome_line(line: str) -> str | None:
    """A ``--verbose`` line (one per outcome the driver stored), without the progress bar's
    carriage returns; ``None`` for any other line."""
    text = line.rpartition("\r")[2].strip()
    return text if text.startswith(("done ", "failed ")) else None


def outcome_lines(output: str) -> list[str]:
    return [text for line in output.splitlines() if (text := outcome_line(line))]


def log_lines(log: Path) -> list[list[str]]:
    """The model factory's lines, one per run started: time, PID, parent PID, seed, file."""
    return [line.split(" ", 4) for line in log.read_text().splitlines()] if log.exists() else []


@pytest.mark.slow
@linux_only
def test_sweeps_on_a_two_node_cluster() -> None:
    started = time.monotonic()

    def lap(what: str) -> None:  # where the time goes (pytest -s shows it)
        print(f"{time.monotonic() - started:5.1f} s: {what}", flush=True)

    with two_node_cluster() as cluster:
        run_sweeps(cluster, lap)
    lap("cluster torn down")


def run_sweeps(cluster: Cluster, lap: Callable[[str], None]) -> None:
    root = cluster.root
    code = root / "code" / "exp"
    code.mkdir(parents=True)
    log = root / "runs.log"
    (code / "halving.py").write_text(HALVING)
    (code / "task.py").write_text(TASK.format(log=str(log), sleep=SLEEP_ON_RAY))
    task = f"{code / 'task.py'}:make"
    ray_args = ["--executor", "ray", "--address", cluster.address]
    # The same sweep in one local process: the reference (while the nodes start).
    local = driver(cluster, task, root / "local.sqlite", *GRID, "--workers", "1")
    cluster.start()
    lap("two nodes started")
    rc, output = finish(local)
    assert rc == 0, output
    expected = stored(root / "local.sqlite")
    assert len(expected) == 8
    head, worker = cluster.raylet("head"), cluster.raylet("worker")
    lap("the local sweep done")
    # 1. A sweep on both nodes, with the user's code shipped; the worker node lost (all its
    # processes killed) once it has finished a run and holds the next: none lost, none twice.
    before = len(log_lines(log))
    sweep = driver(cluster, task, root / "a.sqlite", *GRID, *ray_args)
    deadline = time.monotonic() + STARTUP

    def runs_started() -> list[list[str]]:  # (the driver builds a model too: its task check)
        return [line for line in log_lines(log)[before:] if int(line[1]) != sweep.pid]

    def on_worker() -> list[list[str]]:
        return [line for line in runs_started() if int(line[2]) == worker]

    while len(on_worker()) < 2:
        assert sweep.poll() is None, finish(sweep)[1]
        assert time.monotonic() < deadline
        time.sleep(0.02)
    killed = cluster.kill_node("worker")
    killed_time = time.time()
    killed_at, in_flight = len(runs_started()), on_worker()[-1]
    rc, output = finish(sweep)
    assert rc == 0, output
    assert stored(root / "a.sqlite") == expected  # the same runs, the same numbers
    lines = outcome_lines(output)
    assert len(lines) == len(set(lines)) == 8, lines  # each stored once
    ran = runs_started()
    after = ran[killed_at:]
    assert {int(line[2]) for line in ran} == {head, worker}  # both nodes ran runs
    assert after
    assert all(int(line[2]) == head for line in after)  # then the head only
    seeds = sorted(int(line[3]) for line in ran)
    lost = int(in_flight[3])
    assert seeds == sorted([*range(8), lost])  # each run started once, the lost one twice
    again = next(line for line in after if int(line[3]) == lost)  # on the head
    for *_, file in ran:  # from the copy Ray unpacked, not from the driver's folder
        assert Path(file).is_relative_to(root / "ray"), file
        assert "runtime_resources" in file, file
    with Store(root / "a.sqlite") as store:
        records = [run.record for run in store.runs()]
    assert all(r is not None and r.step_lr == [0.1] * 4 + [0.05] * 4 for r in records)
    lap(
        f"sweep 1 done: the worker node ({len(killed)} processes) killed after "
        f"{len(on_worker()) - 1} run(s) there, with 1 in flight; {len(ran)} runs started for "
        f"8, the {len(after)} after the kill on the head; the lost run (seed {lost}) again "
        f"{float(again[0]) - killed_time:.1f} s after the kill"
    )
    # 2. The driver killed mid-sweep, then started again: it resumes.
    db = root / "b.sqlite"
    first = driver(cluster, task, db, *SMALL_GRID, *ray_args)
    assert first.stdout is not None
    seen = []
    for line in first.stdout:
        seen.append(line)
        if len([text for text in seen if outcome_line(text)]) == 2:
            break
    first.kill()
    first.communicate(timeout=STARTUP)
    with Store(db) as store:
        kept = {run.config.key() for run in store.runs()}
    assert len(kept) >= 2, "".join(seen)
    rc, output = finish(driver(cluster, task, db, *SMALL_GRID, *ray_args))
    assert rc == 0, output
    assert f"4 runs, {len(kept)} already in" in output
    assert len(outcome_lines(output)) == 4 - len(kept)
    resumed = stored(db)
    assert len(resumed) == 4
    assert all(resumed[key] == expected[key] for key in resumed)
    lap(f"sweep 2 done: the driver killed with {len(kept)} of 4 runs stored, then resumed")
    # 3. A wrong token, a cluster where lrlab does not import, runs bigger than its nodes: one
    # line, exit 2, nothing run.
    bad = root / "bad_token"
    bad.write_text("0" * 64)
    no_lrlab = root / "no-lrlab"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(no_lrlab)], check=True)
    site = next((no_lrlab / "lib").glob("python*/site-packages"))
    ray_site = Path(ray.__file__).resolve().parents[1]
    # Ray, torch and the rest of this environment, but not its .pth files (lrlab's editable
    # install is one): a Python where lrlab does not import. -I also drops PYTHONPATH.
    (site / "base.pth").write_text(f"import sys; sys.path.append({str(ray_site)!r})\n")
    runtime_env = json.dumps({"py_executable": f"{no_lrlab / 'bin' / 'python'} -I"})
    cases = {
        "token": driver(
            cluster,
            "iris",
            root / "token.sqlite",
            "--optimizers",
            "sgd",
            "--steps",
            "5",
            *ray_args,
            env={**cluster.env, "RAY_AUTH_TOKEN_PATH": str(bad)},
        ),
        "lrlab": driver(
            cluster,
            "iris",
            root / "lrlab.sqlite",
            "--optimizers",
            "sgd",
            "--steps",
            "5",
            *ray_args,
            "--runtime-env",
            runtime_env,
        ),
        "cpus": driver(
            cluster,
            "iris",
            root / "cpus.sqlite",
            "--optimizers",
            "sgd",
            "--steps",
            "5",
            "--threads",
            "2",
            *ray_args,
        ),
    }
    messages = {}
    for name, process in cases.items():
        rc, output = finish(process)
        assert rc == 2, output
        assert "Traceback" not in output, output
        messages[name] = output.strip().splitlines()[-1]
        with Store(root / f"{name}.sqlite") as store:
            assert store.count() == {}
    assert messages["token"].startswith(
        f"lrlab: error: the Ray cluster at {cluster.address} refused this process's token; "
        "set RAY_AUTH_MODE=token"
    ), messages["token"]
    assert messages["lrlab"].startswith(
        f"lrlab: error: the Ray cluster at {cluster.address}: on node "
    ), messages["lrlab"]
    assert "lrlab does not import: ModuleNotFoundError" in messages["lrlab"]
    assert "install lrlab on every node" in messages["lrlab"]
    assert messages["cpus"] == (
        f"lrlab: error: the Ray cluster at {cluster.address} has no node with 2 CPUs for a run "
        "(its nodes have 1); use fewer threads per run"
    )
    lap("errors checked:\n" + "\n".join(messages.values()))


def test_an_unreachable_address_is_one_line_and_nothing_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from lrlab.cli import main

    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    db = tmp_path / "runs.sqlite"
    argv = ["compare", "iris", "--optimizers", "sgd", "--seeds", "1", "--steps", "5"]
    assert main([*argv, "--db", str(db), "--executor", "ray", "--address", address]) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith(
        f"lrlab: error: cannot reach the Ray cluster at {address} (Connection refused); "
        "start the cluster"
    ), error
    with Store(db) as store:
        assert store.count() == {}


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (
            ["--executor", "ray", "--runtime-env", "[1]"],
            "--runtime-env must be a JSON object, got --runtime-env='[1]'",
        ),
        (
            ["--runtime-env", '{"pip": []}'],
            "runtime_env is for executor=ray, got runtime_env={'pip': []}",
        ),
    ],
)
def test_a_bad_runtime_env_is_one_line(
    flags: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from lrlab.cli import main

    argv = ["compare", "iris", "--optimizers", "sgd", "--db", str(tmp_path / "runs.sqlite")]
    assert main([*argv, *flags]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == f"lrlab: error: {message}"
