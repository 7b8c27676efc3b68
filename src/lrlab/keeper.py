"""Processes that outlive nothing: the trees of processes lrlab starts, found and ended, and the
keeper of a local Ray instance.

A process's descendants are read from ``/proc`` (`descendants`; on a system without it there
are none to find) and ended with SIGKILL (`kill_tree`): a local pool's workers and the
``DataLoader`` workers they started go at once, even busy ones.

A local Ray instance (``compare --executor ray`` without ``--address``) runs in a keeper
process, this file run as a script (`LocalRay` starts it). Ray's ``ray.init`` starts the
GCS and the raylet bound to the process that calls it (``PR_SET_PDEATHSIG``: they die with it,
``ray/_private/services.py``, ``start_ray_process(fate_share=...)``), but the raylet's agents
(``ray::DashboardAgent``, ``ray::RuntimeEnvAgent``) and its workers are the raylet's children:
when the driver is killed, the agents outlive the raylet under PID 1 (they try to report the
raylet's death to the dead GCS, forever). So lrlab does not start the instance in the driver.
The keeper, in a session of its own (a terminal's Ctrl-C reaches the driver alone), makes
itself a child subreaper (``prctl(PR_SET_CHILD_SUBREAPER)``: every orphan among its
descendants becomes its child rather than PID 1's), calls ``ray.init`` and prints the GCS
address, to which the driver connects. It then waits for its standard input to end: the
driver closes it when the sweep ends, and the kernel closes it when the driver dies, however
(SIGKILL included). Then it shuts Ray down (at most `SHUTDOWN_GRACE` seconds) and SIGKILLs
whatever is left below it, agents included, before it exits: nothing it started survives
the driver by more than a few seconds. No torch import here.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from pathlib import Path

#: Seconds the keeper gives ``ray.shutdown`` before it kills what is left.
SHUTDOWN_GRACE = 4.0
#: Seconds the keeper spends killing and reaping before it gives up and exits.
KILL_DEADLINE = 5.0
_PR_SET_CHILD_SUBREAPER = 36
#: Ray's variable for its authentication mode (``ray/_private/authentication``).
AUTH_MODE = "RAY_AUTH_MODE"


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (children, their children, ...), parents first; read
    from ``/proc`` (none where there is no ``/proc``)."""
    children: dict[int, list[int]] = {}
    for entry in _proc_entries():
        stat = _stat(entry)
        if stat is not None and stat[0] != "Z":
            children.setdefault(stat[1], []).append(entry)
    found: list[int] = []
    stack = [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def kill_tree(pids: Iterable[int]) -> None:
    """SIGKILL each process of ``pids`` still there (descendants first found: `descendants`)."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def _proc_entries() -> list[int]:
    try:
        return [int(name) for name in os.listdir("/proc") if name.isdigit()]
    except OSError:
        return []


def _stat(pid: int) -> tuple[str, int] | None:
    """A process's state letter and parent pid (``None``: gone)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rpartition(")")[2].split()
    return fields[0], int(fields[1])


# -- the driver's side ---------------------------------------------------------------------------


class LocalRay:
    """A local Ray instance of ``cpus`` CPUs in a keeper process (see the module docstring):
    `address` is its GCS address, for ``ray.init(address=...)``; `stop` (or the end of this
    process) ends it and everything it started. Start-up failures, and no answer within
    ``timeout`` seconds, are a one-line ``ValueError``."""

    def __init__(self, cpus: int, timeout: float = 120.0) -> None:
        # This file run as a script (``-P``: its folder not on ``sys.path``): it needs only the
        # standard library and Ray, not lrlab importable in a fresh interpreter.
        self.process = subprocess.Popen(
            [sys.executable, "-P", str(Path(__file__).resolve()), str(cpus)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            start_new_session=True,  # (a terminal's Ctrl-C is the driver's to handle)
        )
        try:
            reply = self._reply(timeout)
        except BaseException:
            self.stop()
            raise
        if "address" not in reply:
            self.stop()
            raise ValueError(f"a local Ray instance did not start: {reply.get('error', reply)}")
        self.address: str = reply["address"]
        #: The instance's authentication mode (``"token"``: a driver needs ``RAY_AUTH_MODE``
        #: set so, and reads the token Ray keeps in ``~/.ray/auth_token``).
        self.auth: str = reply.get("auth", "")

    def _reply(self, timeout: float) -> dict[str, str]:
        stdout = self.process.stdout
        assert stdout is not None  # (a pipe: Popen above)
        ready, _, _ = select.select([stdout], [], [], timeout)
        line = stdout.readline() if ready else b""
        if not line:
            code = self.process.poll()
            why = (
                f"its keeper exited ({code})" if code is not None else f"no answer in {timeout:g} s"
            )
            raise ValueError(f"a local Ray instance did not start: {why}")
        value = json.loads(line)
        return value if isinstance(value, dict) else {"error": repr(value)}

    def stop(self, timeout: float = SHUTDOWN_GRACE + KILL_DEADLINE + 5.0) -> None:
        """End the instance: close the keeper's input, wait for it to clean up (SIGKILL it and
        what is below it after ``timeout`` seconds)."""
        process = self.process
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            kill_tree([process.pid, *descendants(process.pid)])
            process.wait()


# -- the keeper ------------------------------------------------------------------------------------


def main(argv: list[str]) -> int:
    """The keeper: a local Ray instance of ``argv[0]`` CPUs, its GCS address printed as one
    JSON line (``{"address": ..., "auth": ...}`` or ``{"error": ...}``), ended with all it
    started when standard input ends (even while Ray is still starting)."""
    reply = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # (what Ray prints goes to standard error; standard output is the reply)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _become_subreaper()
    import ray

    started = threading.Event()

    def watch() -> None:
        _wait_for_end_of_input()
        if started.is_set():  # a graceful shutdown first, for a while
            shutdown = threading.Thread(target=ray.shutdown, daemon=True)
            shutdown.start()
            shutdown.join(SHUTDOWN_GRACE)
        _end_all()
        os._exit(0)

    threading.Thread(target=watch, name="lrlab-keeper-watch", daemon=True).start()
    try:
        ray.init(
            num_cpus=int(argv[0]),
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.WARNING,
        )
        address = ray.get_runtime_context().gcs_address
        auth = os.environ.get(AUTH_MODE, "")  # (ray.init sets it: token, for a new instance)
    except Exception as error:
        text = str(error).strip().splitlines()
        _say(reply, {"error": f"{type(error).__name__}: {text[0] if text else ''}".rstrip(": ")})
        _end_all()
        return 1
    started.set()
    _say(reply, {"address": address, "auth": auth})
    threading.Event().wait()  # (until the watch ends the process)
    return 0


def _say(stream: object, message: dict[str, str]) -> None:
    with contextlib.suppress(OSError):
        stream.write(json.dumps(message) + "\n")  # type: ignore[attr-defined]
        stream.flush()  # type: ignore[attr-defined]


def _become_subreaper() -> None:
    """Orphans among this process's descendants become its children (Linux; elsewhere, a
    no-op: what outlives its parent there is not found)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def _wait_for_end_of_input() -> None:
    fd = sys.stdin.fileno()
    while True:
        try:
            if not os.read(fd, 4096):
                return
        except InterruptedError:
            continue
        except OSError:
            return


def _end_all() -> None:
    """SIGKILL every process below this one until none is left, reaping the children."""
    deadline = time.monotonic() + KILL_DEADLINE
    while time.monotonic() < deadline:
        below = descendants(os.getpid())
        kill_tree(below)
        _reap()
        if not below:
            return
        time.sleep(0.05)


def _reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
