"""Sweeps on Ray, all in one place: `RayExecutor` (a local instance or an existing cluster),
connecting with errors a user can act on, shipping the user's code to the workers, and a
unit of runs on a worker (through `lrlab.execution.worker`, as every executor runs them).

Connecting (`connect`, `check_workers`). ``address`` is a cluster's address ``host:port`` (what
``ray start --head`` printed), ``ray://host:10001`` (Ray Client), ``"auto"`` (the cluster this
machine belongs to) or ``None`` (a local instance started for the sweep). Before anything is
submitted, `connect` checks that the address answers a TCP connect (5 s) and, for a
``host:port`` address, that the cluster accepts this process's token: one call of a GCS client,
the first call ``ray.init`` makes (``ray/_private/node.py``, ``Node._init_gcs_client``), which
fails at once where ``ray.init`` retries for 20 s (a wrong token) to 60 s (a dead address)
and then says only "Failed to connect". `check_workers` then runs a probe on every node that
can take a run: lrlab, torch, the plugins and the user's task must import there. Each failure
is one ``ValueError`` line naming the address and what to do, before any run is submitted.

Shipping (`UserCode`). A task given as ``path/to/file.py:function`` and the files or modules
that registered schedules, optimizers or controllers (`lrlab.registry.plugin_sources`) exist on
the driver only. `UserCode` lists the folders of those files, each shipped whole (a file's
siblings import on a worker as they do on the driver), and the user's modules that are neither
installed (site-packages) nor in a shipped folder. All go as Ray ``py_modules`` in the job's
``runtime_env``: Ray uploads each once per content hash, a folder zipped with its own name
at the top, and unpacks it on every node into a directory it puts on the workers'
``PYTHONPATH`` (``ray/_private/runtime_env/py_modules.py``, ``include_parent_dir``). A worker
finds its copy of each folder on ``sys.path`` (the copy whose files have the driver's SHA-1),
puts it on ``sys.path`` as the driver had it, imports the plugins from the copies and trains
with the task reference rewritten to its copy; the record keeps the driver's reference, so a
run's key in the store does not depend on where it ran.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib
import importlib.util
import logging
import os
import socket
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from lrlab.errors import describe, first_line
from lrlab.execution.base import GroupRunner, OnResult, Outcome, Result
from lrlab.execution.worker import init_worker, run_one
from lrlab.keeper import AUTH_MODE, LocalRay
from lrlab.record import RunConfig, RunRecord
from lrlab.registry import import_plugins, installed_locations, plugin_sources
from lrlab.tasks import get_task
from lrlab.tasks.catalog import is_reference, reference_file
from lrlab.validate import ArgumentTypeError, check_int, check_number

#: Seconds a TCP connect to the cluster's address may take before it counts as unreachable.
REACH_TIMEOUT = 5.0

_TOKEN_HELP = (
    "set RAY_AUTH_MODE=token and give the cluster's token: RAY_AUTH_TOKEN, or a file named by "
    "RAY_AUTH_TOKEN_PATH (default ~/.ray/auth_token; `ray get-auth-token` on the head prints it)"
)
_INSTALL_HELP = (
    "install lrlab on every node (pip install 'lrlab[ray]'), or ship it with the job: "
    'runtime_env={"pip": ["lrlab[ray]"]}'
)


def where(address: str | None) -> str:
    """How messages name the cluster."""
    return "a local Ray instance" if address is None else f"the Ray cluster at {address}"


# --- the executor ---------------------------------------------------------------------------


class RayExecutor:
    """Runs on Ray (``pip install 'lrlab[ray]'``): the cluster at ``address`` (``host:port``,
    ``ray://host:10001`` or ``auto``), or a local instance of ``local_cpus`` CPUs when
    ``None``. See this module's docstring for the checks made before anything is submitted and
    how the user's code reaches the workers.

    Each run is one Ray task asking for ``cpus_per_run`` CPUs (default ``threads``, the torch
    threads it uses), so a node runs as many at once as it has CPUs; `run_groups` makes a
    group of runs one task (``group_runner`` trains them together, e.g. as one vectorised
    model). A task whose worker process or node dies (killed, out of memory, a node lost) is
    retried by Ray on any node up to ``max_retries`` times, and only then its runs are
    recorded as failed; each run's outcome is reported once. ``runtime_env``: the job's Ray
    ``runtime_env`` (e.g. ``{"pip": [...]}``),
    to which lrlab adds the user's code as ``py_modules``; lrlab itself must import on the
    workers (installed there, or shipped this way). ``connect_timeout``: seconds every node
    has to answer the probe. A program that called ``ray.init`` itself keeps its session:
    lrlab uses it as it is (its address and ``runtime_env``) and leaves it running.
    """

    def __init__(
        self,
        address: str | None = None,
        cpus_per_run: float | None = None,
        threads: int = 1,
        runtime_env: dict[str, Any] | None = None,
        local_cpus: int | None = None,
        plugins: Sequence[str] | None = None,
        max_retries: int = 3,
        connect_timeout: float = 120.0,
        group_runner: GroupRunner | None = None,
    ) -> None:
        try:
            import ray  # noqa: F401
        except ImportError:
            raise ValueError("executor=ray needs Ray: pip install 'lrlab[ray]'") from None
        if address is not None and (not isinstance(address, str) or not address.strip()):
            raise ValueError(f"RayExecutor: address must be host:port, got address={address!r}")
        if runtime_env is not None and not isinstance(runtime_env, dict):
            raise ArgumentTypeError(
                f"RayExecutor: runtime_env must be a dict, got runtime_env={runtime_env!r}"
            )
        self.address = address.strip() if address is not None else None
        self.threads = check_int("RayExecutor", "threads", threads, minimum=1)
        self.cpus_per_run = float(
            check_number("RayExecutor", "cpus_per_run", cpus_per_run, positive=True)
            if cpus_per_run is not None
            else self.threads
        )
        self.runtime_env = dict(runtime_env or {})
        self.local_cpus = (
            check_int("RayExecutor", "local_cpus", local_cpus, minimum=1)
            if local_cpus is not None
            else None
        )
        self.plugins = tuple(plugin_sources() if plugins is None else plugins)
        self.max_retries = check_int("RayExecutor", "max_retries", max_retries, minimum=0)
        self.connect_timeout = check_number(
            "RayExecutor", "connect_timeout", connect_timeout, positive=True
        )
        self.group_runner = group_runner

    def run(self, configs: Iterable[RunConfig], on_result: OnResult) -> None:
        self.run_groups([[config] for config in configs], on_result)

    def run_groups(self, groups: Iterable[Sequence[RunConfig]], on_result: OnResult) -> None:
        """Run each group of configs as one Ray task (one process on one node): trained
        together by ``group_runner``, or one after another without one. A group whose task
        Ray gives up on fails as a whole."""
        import ray

        # All taken at once: the code to ship is fixed when the job starts, and Ray queues
        # the tasks itself.
        units = [list(group) for group in groups if group]
        if not units:
            return
        code = UserCode.of([c.task for unit in units for c in unit], self.plugins)
        disconnect = connect(self.address, code.runtime_env(self.runtime_env), self.local_cpus)
        try:
            check_workers(self.address, code, self.cpus_per_run, self.connect_timeout)
            remote = ray.remote(num_cpus=self.cpus_per_run, max_retries=self.max_retries)(
                run_on_worker
            )
            refs = {
                remote.remote(
                    [c.to_dict() for c in unit], self.threads, code, self.group_runner
                ): unit
                for unit in units
            }
            waiting = list(refs)
            while waiting:
                done, waiting = ray.wait(waiting, num_returns=1)
                for ref in done:
                    unit = refs[ref]
                    try:
                        results = ray.get(ref)
                    except Exception as error:  # its process or node died more than it may
                        for config in unit:
                            on_result(Outcome(config, None, self._lost(error)))
                        continue
                    for config, result in zip(unit, results, strict=True):
                        on_result(Outcome.of(config, result))
        finally:
            if disconnect is not None:
                disconnect()

    def _lost(self, error: Exception) -> str:
        """A run Ray gave up on: its process or node died ``max_retries + 1`` times, or (a
        bug, not a run's error: `run_one` returns those) the task raised."""
        from ray.exceptions import RayTaskError

        if isinstance(error, RayTaskError):
            cause = getattr(error, "cause", None) or error
            return f"ray: {describe(cause)}"
        return (
            f"ray: {type(error).__name__} (retried {self.max_retries} times): {first_line(error)}"
        )


# --- shipping the user's code ---------------------------------------------------------------


@dataclass(frozen=True)
class UserCode:
    """The user's code a sweep needs on the workers (plain data, so it travels with each run).

    ``folders``: driver folders shipped whole; ``files``: (driver path, SHA-1) of the task and
    plugin files, each inside one of ``folders``; ``modules``: user modules or packages
    shipped as they are (a ``.py`` file or a package folder, importable by name there);
    ``plugins``: `lrlab.registry.plugin_sources` as on the driver; ``tasks``: (the configs'
    task, the absolute driver reference) for tasks given by file.
    """

    folders: tuple[str, ...] = ()
    files: tuple[tuple[str, str], ...] = ()
    modules: tuple[str, ...] = ()
    plugins: tuple[str, ...] = ()
    tasks: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, tasks: Iterable[str], plugins: Sequence[str]) -> UserCode:
        """What ``tasks`` (the configs' task names or references, relative paths taken from the
        current directory) and ``plugins`` need shipped. Two shipped folders with one name are
        a ``ValueError`` (a worker finds its copies by name)."""

        files: list[Path] = []
        task_files: list[tuple[str, str]] = []
        module_names: list[str] = []
        for task in dict.fromkeys(tasks):
            if not is_reference(task):
                continue
            file = reference_file(task)
            if file is None:
                module_names.append(task.rpartition(":")[0])
                continue
            path = Path(file).expanduser().resolve()
            files.append(path)
            task_files.append((task, f"{path}:{task.rpartition(':')[2]}"))
        for source in plugins:
            if source.endswith(".py"):
                files.append(Path(source).resolve())
            else:
                module_names.append(source)
        folders = _outermost(path.parent for path in files)
        names: dict[str, Path] = {}
        for folder in folders:
            other = names.setdefault(folder.name, folder)
            if other != folder:
                raise ValueError(
                    f"ray: cannot ship two folders named {folder.name!r} ({other} and {folder}) "
                    "for the task and plugins; rename one of them"
                )
        modules = []
        for name in dict.fromkeys(module_names):
            location = _module_location(name)
            if location is not None and not any(location.is_relative_to(f) for f in folders):
                modules.append(str(location))
        return cls(
            folders=tuple(str(folder) for folder in folders),
            files=tuple((str(path), _sha1(path)) for path in dict.fromkeys(files)),
            modules=tuple(dict.fromkeys(modules)),
            plugins=tuple(plugins),
            tasks=tuple(task_files),
        )

    def runtime_env(self, base: dict[str, Any] | None = None) -> dict[str, Any]:
        """``base`` (the user's ``runtime_env``) with this code added to its ``py_modules``."""
        env = dict(base or {})
        given = env.get("py_modules", [])
        if not isinstance(given, list):
            raise ValueError(
                f"runtime_env['py_modules'] must be a list, got runtime_env['py_modules']={given!r}"
            )
        shipped = [*self.folders, *self.modules]
        if shipped:
            env["py_modules"] = [*given, *shipped]
        return env

    # -- on a worker -------------------------------------------------------------------------

    def install(self) -> Callable[[str], str]:
        """Set this worker up as the driver was: each task or plugin file's folder (its copy)
        on ``sys.path``, the plugins imported. Returns the map from a driver path to its copy
        here (a path outside the shipped folders, or without a copy, maps to itself)."""
        copies = self._copies()

        def local(path: str) -> str:
            for folder, copy in copies.items():
                if Path(path).is_relative_to(folder):
                    return str(Path(copy) / Path(path).relative_to(folder))
            return path

        for file, _ in self.files:
            parent = str(Path(local(file)).parent)
            if parent not in sys.path:
                sys.path.insert(0, parent)
        import_plugins([local(p) if p.endswith(".py") else p for p in self.plugins])
        return local

    def local_task(self, task: str, local: Callable[[str], str]) -> str | None:
        """The reference that builds ``task`` here, for a task given by file (else ``None``)."""
        for name, reference in self.tasks:
            if name == task:
                file, _, function = reference.rpartition(":")
                return f"{local(file)}:{function}"
        return None

    def _copies(self) -> dict[str, str]:
        return _find_copies(self.folders, self.files, tuple(sys.path))


@functools.lru_cache(maxsize=8)
def _find_copies(
    folders: tuple[str, ...], files: tuple[tuple[str, str], ...], path: tuple[str, ...]
) -> dict[str, str]:
    """Each shipped folder -> its copy on this worker: the subfolder of that name of a ``path``
    entry holding every file of the folder with the driver's SHA-1 (a folder without one is
    left out). Cached per worker process, which runs many runs."""
    copies = {}
    for folder in folders:
        needed = [
            (Path(file).relative_to(folder), sha)
            for file, sha in files
            if Path(file).is_relative_to(folder)
        ]
        for entry in path:
            candidate = Path(entry or ".") / Path(folder).name
            if candidate.is_dir() and all(
                (candidate / rel).is_file() and _sha1(candidate / rel) == sha for rel, sha in needed
            ):
                copies[folder] = str(candidate)
                break
    return copies


def _outermost(folders: Iterable[Path]) -> list[Path]:
    """The folders not inside another of them, in first-seen order."""
    unique = list(dict.fromkeys(folders))
    return [f for f in unique if not any(f != o and f.is_relative_to(o) for o in unique)]


def _sha1(path: Path) -> str:
    try:
        return hashlib.sha1(path.read_bytes()).hexdigest()
    except OSError as error:
        raise ValueError(f"ray: cannot read {path} to ship it ({error.strerror})") from None


def _module_location(name: str) -> Path | None:
    """Where the top-level package of module ``name`` lives on the driver (its folder, or its
    ``.py`` file), when the user wrote it: ``None`` for the standard library, installed
    packages (site-packages) and what cannot be found."""
    top = name.split(".")[0]
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    if spec.submodule_search_locations:
        location = Path(next(iter(spec.submodule_search_locations)))
    elif spec.origin and spec.origin.endswith(".py"):
        location = Path(spec.origin)
    else:
        return None  # built in, frozen or compiled: installed, not the user's
    location = location.resolve()
    if any(location.is_relative_to(Path(p).resolve()) for p in installed_locations()):
        return None
    return location


# --- a run on a worker ------------------------------------------------------------------------


def run_on_worker(
    configs_data: list[dict[str, Any]],
    threads: int,
    code: UserCode,
    group_runner: GroupRunner | None = None,
) -> list[Result]:
    """A Ray task: threads, the user's code installed, then the runs, with their tasks
    rebuilt from this worker's copy, trained by ``group_runner`` or one by one; for each run
    ``(record JSON, None)`` or ``(None, error)``, its record holding the driver's config."""
    init_worker(threads)
    try:
        local = code.install()
    except Exception as failure:  # a plugin that fails here fails the runs, as a task would
        return [(None, describe(failure))] * len(configs_data)
    here = [{**c, "task": code.local_task(c["task"], local) or c["task"]} for c in configs_data]
    results = group_runner(here) if group_runner is not None else [run_one(c) for c in here]
    if len(results) != len(here):
        raise RuntimeError(f"group_runner gave {len(results)} results for {len(here)} runs")
    restored: list[Result] = []
    for (record_json, error), config, ran in zip(results, configs_data, here, strict=True):
        if record_json is not None and ran["task"] != config["task"]:
            record = RunRecord.from_json(record_json)
            record_json = replace(record, config=RunConfig.from_dict(config)).to_json()
        restored.append((record_json, error))
    return restored


def probe_worker(code_data: dict[str, Any]) -> str | None:
    """What `check_workers` runs on each node: ``None`` when torch, the plugins and the tasks
    import (the tasks are built, as each run will), else what failed, in one line."""
    try:
        import torch  # noqa: F401
    except Exception as error:
        return f"torch does not import: {describe(error)}"

    code = UserCode(**{k: _tuples(v) for k, v in code_data.items()})
    try:
        local = code.install()
        for name, _ in code.tasks:
            get_task(code.local_task(name, local) or name)
    except Exception as error:
        return describe(error)
    return None


def _tuples(value: Any) -> Any:
    """Lists back to tuples (what `UserCode` holds), however the data travelled."""
    return tuple(_tuples(v) for v in value) if isinstance(value, list | tuple) else value


def _probe() -> Callable[[dict[str, Any]], str | None]:
    """The probe as a closure: Ray pickles it by value, so it runs (and says so) on a worker
    where lrlab itself does not import."""

    def probe(code_data: dict[str, Any]) -> str | None:
        try:
            from lrlab.execution.cluster import probe_worker
        except Exception as error:  # (this closure runs where lrlab may be missing: no helper)
            text = str(error).strip()
            return f"lrlab does not import: {type(error).__name__}: " + (
                text.splitlines()[0] if text else ""
            )
        return probe_worker(code_data)

    return probe


# --- connecting -------------------------------------------------------------------------------


def connect(
    address: str | None, runtime_env: dict[str, Any], local_cpus: int | None = None
) -> Callable[[], None] | None:
    """``ray.init`` for ``address`` with ``runtime_env``, after the checks above; returns how
    to disconnect (``None``: Ray was already initialised by the caller, whose session is used
    as it is). ``address=None`` starts a local instance of ``local_cpus`` CPUs in a keeper
    process (`lrlab.keeper.LocalRay`), which ends it, and everything it started, when this
    process disconnects or dies. Every failure is a one-line ``ValueError``."""
    import ray

    if ray.is_initialized():
        return None
    if address is not None and address not in ("auto", "local"):
        host, port = _host_port(address)
        _check_reachable(address, host, port)
        if not address.startswith("ray://"):
            _check_token(address)
    options: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.WARNING}
    if runtime_env:
        options["runtime_env"] = runtime_env
    keeper = LocalRay(local_cpus or os.cpu_count() or 1) if address is None else None
    if keeper is not None and keeper.auth and AUTH_MODE not in os.environ:
        _set_auth_mode(keeper.auth)
    try:
        ray.init(address=keeper.address if keeper is not None else address, **options)
    except Exception as error:
        if ray.is_initialized():
            ray.shutdown()
        if keeper is not None:
            keeper.stop()
        raise ValueError(f"cannot connect to {where(address)}: {describe(error)}") from None

    def disconnect() -> None:
        try:
            ray.shutdown()
        finally:
            if keeper is not None:
                keeper.stop()

    return disconnect


def _set_auth_mode(mode: str) -> None:
    """What ``ray.init`` does in the process that starts an instance, done in the driver that
    connects to the keeper's: Ray's authentication mode set for this process (and its
    children) and Ray's cached configuration read again (Ray's own
    ``authentication_token_setup._enable_token_auth``; skipped where this Ray has no such
    configuration)."""
    os.environ[AUTH_MODE] = mode
    try:
        from ray._raylet import Config  # type: ignore[attr-defined]
    except ImportError:
        return
    Config.initialize("")


def _host_port(address: str) -> tuple[str, int]:
    text = address.removeprefix("ray://")
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(
            f"address must be host:port, ray://host:port or auto, got address={address!r}"
        )
    return host.strip("[]"), int(port)


def _check_reachable(address: str, host: str, port: int) -> None:
    try:
        with socket.create_connection((host, port), timeout=REACH_TIMEOUT):
            pass
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise ValueError(
            f"cannot reach {where(address)} ({reason}); start the cluster "
            f"(`ray start --head --port={port}` on {host}) or give the address that "
            "`ray start --head` printed"
        ) from None


def _check_token(address: str) -> None:
    """One GCS call with this process's token (Ray's private ``GcsClient``; skipped if this
    Ray has none). Its C++ client logs the refusal on stderr: silenced, the message says it."""
    try:
        from ray._raylet import GcsClient  # type: ignore[attr-defined]
        from ray.exceptions import AuthenticationError
    except ImportError:
        return
    try:
        with _quiet_stderr():
            GcsClient(address=address).cluster_id  # noqa: B018
    except AuthenticationError:
        raise ValueError(f"{where(address)} refused this process's token; {_TOKEN_HELP}") from None
    except Exception as error:
        raise ValueError(
            f"{where(address)} does not answer as a Ray cluster ({describe(error)}); give the "
            "address that `ray start --head` printed"
        ) from None


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """File descriptor 2 to /dev/null for the block (C++ logging writes there directly)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def check_workers(address: str | None, code: UserCode, cpus_per_run: float, timeout: float) -> None:
    """Run the probe on every live node with ``cpus_per_run`` CPUs (it asks for none, so busy
    nodes answer too): lrlab, torch, the plugins and the tasks must import there. A node that
    fails, no node big enough, or no answer in ``timeout`` seconds: a one-line ``ValueError``.
    A node that dies meanwhile (one lost just before, not yet marked dead) is left out.
    """
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    able = _able_nodes(address, cpus_per_run)
    probe = ray.remote(num_cpus=0, max_retries=0)(_probe())
    data = asdict(code)
    refs = {
        probe.options(
            scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=False)
        ).remote(data): node
        for node in able
    }
    ready, late = ray.wait(list(refs), num_returns=len(refs), timeout=timeout)
    problems: dict[str, str] = {}
    for ref in ready:
        try:
            problem = ray.get(ref)
        except Exception as error:  # the runtime_env failed to set up, the node died
            problem = describe(error)
        if problem is not None:
            problems[refs[ref]["NodeID"]] = problem
    for ref in late:
        problems[refs[ref]["NodeID"]] = f"no answer within {timeout:g} s"
    if not problems:
        return
    alive = {node["NodeID"] for node in _able_nodes(address, cpus_per_run)}
    for node in able:
        problem = problems.get(node["NodeID"])
        if problem is None or node["NodeID"] not in alive:
            continue
        if problem.startswith(("lrlab does not import", "torch does not import")):
            help_text = _INSTALL_HELP
        elif problem.startswith("no answer"):
            help_text = "a runtime_env still installing? Ray keeps it once built: try again"
        else:
            help_text = (
                "install what the task and plugins import on every node (lrlab ships their "
                "own folders)"
            )
        raise ValueError(f"{where(address)}: on node {_node_name(node)}, {problem}; {help_text}")
    if not any(node["NodeID"] in alive and node["NodeID"] not in problems for node in able):
        raise ValueError(f"{where(address)}: every node that could run a run died; try again")


def _able_nodes(address: str | None, cpus_per_run: float) -> list[dict[str, Any]]:
    """The live nodes with ``cpus_per_run`` CPUs; none is a ``ValueError``."""
    import ray

    nodes = [node for node in ray.nodes() if node.get("Alive")]  # type: ignore[no-untyped-call]
    able = [n for n in nodes if n.get("Resources", {}).get("CPU", 0) >= cpus_per_run]
    if not able:
        cpus = sorted({n.get("Resources", {}).get("CPU", 0) for n in nodes})
        raise ValueError(
            f"{where(address)} has no node with {cpus_per_run:g} CPUs for a run (its nodes have "
            f"{', '.join(f'{c:g}' for c in cpus) or 'none'}); use fewer threads per run"
        )
    return able


def _node_name(node: dict[str, Any]) -> str:
    return f"{node.get('NodeManagerAddress', '?')} ({str(node.get('NodeID', ''))[:8]})"
