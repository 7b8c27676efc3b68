"""The run store: one SQLite file, one row per run, safe to kill at any moment.

A run is written once, when it has finished, in a single transaction (``INSERT ... ON
CONFLICT``), in WAL mode with ``synchronous=FULL``: a sweep killed at any instant, SIGKILL
included, leaves every finished run in the file and never a half-written one, because a row
either committed whole or does not exist. A write that fails (a full disk) rolls back, so the
file keeps every run it had. Several processes may write at once (SQLite serialises the
writers; each waits up to `BUSY_TIMEOUT` seconds for its turn).

Only lrlab's own files are opened for writing. A file that exists is first read, read-only
and without creating anything beside it, and refused unless it is an lrlab store of this
schema (`StoreError`, one line naming the file): an empty file, another application's tables,
a ``runs`` table of another shape are left byte-identical. A new store is built under a
temporary name and linked into place whole, so no process ever sees a half-made one.

Leases let several sweeps share one store without running a run twice: a sweep *claims* a run
(`claim`, one transaction) before it starts it, and the claim ends when the run is stored.
While a sweep lives, a thread renews its claims (`holding`); a claim is given up when its
process has died (on the same machine: at once; elsewhere: `LEASE_TIMEOUT` seconds after its
last renewal) or when the sweep stops early (interrupted), and another sweep may then take it.

A path is a path: every connection goes through a ``file:`` URI lrlab builds itself, the path
percent-encoded (`_connect`), so a store named ``file:x.sqlite?mode=ro`` is a file of that
name, never a URI SQLite parses. A store read only (``lrlab report``) is opened ``immutable``
unless a write-ahead log is in use (then ``mode=ro``, falling back to ``immutable`` where
SQLite cannot open it so): nothing is created beside it, so a store in a read-only folder
reads fine. A lock held by another process (a sweep mid-write, a program that locked the
file) is waited for up to `BUSY_TIMEOUT` seconds; after `NOTICE_AFTER` seconds one line on
stderr (the ``lrlab.store`` logger) says what lrlab waits for, and past the timeout a
`StoreError` names the file and the lock.

Rows hold the run's config and outcome in columns a person can query with ``sqlite3``, and the
whole `RunRecord` (per-step loss, per-epoch metrics, LR trace) as JSON. No torch import here.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from lrlab.errors import describe
from lrlab.record import RunConfig, RunRecord
from lrlab.validate import check_output_path

SCHEMA_VERSION = 2
#: Seconds lrlab waits for a lock another process holds on a store before giving up.
BUSY_TIMEOUT = 120.0
#: Seconds of waiting for a lock after which lrlab says, once, what it is waiting for.
NOTICE_AFTER = 2.0
FINISHED = ("done", "diverged")
#: Seconds after its last renewal that a claim held by a process on another machine (or one
#: whose process cannot be checked) lapses.
LEASE_TIMEOUT = 60.0
#: Seconds between a live sweep's renewals of its claims.
HEARTBEAT = 10.0

_MAGIC = b"SQLite format 3\x00"
_LOG = logging.getLogger("lrlab.store")
T = TypeVar("T")

_RUNS = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    task TEXT NOT NULL,
    optimizer TEXT NOT NULL,
    schedule TEXT,
    lr REAL,
    seed INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('done', 'diverged', 'failed')),
    error TEXT,
    steps INTEGER,
    wall_time REAL,
    train_time REAL,
    final_metric REAL,
    best_metric REAL,
    steps_to_target INTEGER,
    time_to_target REAL,
    lrlab_version TEXT,
    torch_version TEXT,
    python_version TEXT,
    config TEXT NOT NULL,
    record TEXT,
    finished_at TEXT NOT NULL
)
"""
_SCHEMA = [
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    _RUNS,
    "CREATE INDEX IF NOT EXISTS runs_task ON runs (task)",
]
# Added to stores made before leases existed when they are first opened for writing.
_LEASES = """
CREATE TABLE IF NOT EXISTS leases (
    key TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    started TEXT NOT NULL,
    heartbeat REAL NOT NULL
)
"""
#: The columns of `_RUNS` (its indented lines' first words): a runs table lacking any of them
#: is not an lrlab store.
_RUN_COLUMNS = frozenset(re.findall(r"^ {4}(\w+) ", _RUNS, flags=re.MULTILINE))
#: What takes a store of each earlier schema to the next one, applied (in one transaction)
#: when a store is opened for writing; reading leaves an old store as it is. Schema 2: each
#: run's final validation metric beside its final test metric.
_MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: ("ALTER TABLE runs ADD COLUMN final_val_metric REAL",),
}


class StoreError(ValueError):
    """A file that is not an lrlab store, or a store that cannot be read or written (corrupt
    rows, read-only, a full disk): one line naming the file."""


@dataclass(frozen=True)
class StoredRun:
    """A row of the store: the config, the outcome and, unless the run failed before
    producing one, the full record."""

    id: int
    config: RunConfig
    status: str
    error: str | None
    record: RunRecord | None
    finished_at: str


@dataclass(frozen=True)
class Lease:
    """Who claims runs: one sweep in one process (`Lease.new`), known by a token, its host,
    its process id and that process's start time (so a reused pid is not mistaken for it)."""

    token: str
    host: str
    pid: int
    started: str

    @classmethod
    def new(cls) -> Lease:
        return cls(uuid.uuid4().hex, socket.gethostname(), os.getpid(), _started(os.getpid()))


@dataclass(frozen=True)
class Claim:
    """What `Store.claim` found: the key it claimed (``None``: none was free), the keys that
    need no run (finished, or run elsewhere since), and the keys another live sweep holds."""

    key: str | None
    finished: frozenset[str] = field(default_factory=frozenset)
    busy: frozenset[str] = field(default_factory=frozenset)


class Store:
    """A SQLite file of runs. Use as a context manager, or call `close`.

    ``readonly``: only read (``lrlab report``); the file must exist, and may be one this
    process cannot write. Otherwise a missing file becomes a new store, and an existing one
    must be an lrlab store this process may write (its folder too: SQLite writes its journal
    there), checked before anything runs.
    """

    def __init__(self, path: str | Path, *, readonly: bool = False) -> None:

        self.path = Path(path)
        self.readonly = readonly
        if readonly:
            if not self.path.exists():
                raise StoreError(f"{self.path}: no such file")
        else:
            check_output_path("", "db", self.path)
            if not self.path.exists():
                self.path.parent.mkdir(parents=True, exist_ok=True)
                _create(self.path)
        _inspect(self.path)
        writable = os.access(self.path, os.W_OK) and os.access(
            self.path.absolute().parent, os.W_OK | os.X_OK
        )
        if not readonly and not writable:
            raise StoreError(
                f"{self.path}: the store is read-only (this process may not write the file "
                "or its folder, where SQLite keeps its journal)"
            )
        with self._errors("cannot open the store"):
            if readonly:
                self._db = _open_readonly(self.path)
            else:
                self._db = _connect(self.path, "mode=rw")
                _patiently(self.path, lambda: self._db.execute("PRAGMA synchronous=FULL"))
                with self._transaction():
                    self._db.execute(_LEASES)
                    self._migrate()

    def _migrate(self) -> None:
        """Bring an older store's schema to `SCHEMA_VERSION` (inside the caller's
        transaction, so of several processes opening it, one migrates and the others see
        it done)."""
        (version,) = self._db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        for step in range(int(version), SCHEMA_VERSION):
            for statement in _MIGRATIONS[step]:
                self._db.execute(statement)
        self._db.execute("UPDATE meta SET value = ? WHERE key = 'schema'", (str(SCHEMA_VERSION),))

    @property
    def schema(self) -> int:
        """The store's schema version (an older store read-only keeps its own)."""
        row = self._db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        return int(row[0])

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._db.close()

    @contextlib.contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        """SQLite's errors (a corrupt page, a full disk, a lock held too long) as one
        `StoreError` line naming the file."""
        try:
            yield
        except sqlite3.Error as error:
            raise StoreError(f"{self.path}: {doing} ({describe(error)})") from None

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT``: the write lock is taken up front, so a busy
        writer waits (up to `BUSY_TIMEOUT`, saying so) instead of failing halfway; any error
        rolls the whole transaction back."""
        _patiently(self.path, lambda: self._db.execute("BEGIN IMMEDIATE"))
        try:
            yield
        except BaseException:
            with contextlib.suppress(sqlite3.Error):  # SQLite may have rolled back already
                self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _writable(self) -> None:
        if self.readonly:
            raise StoreError(f"{self.path}: opened read-only")

    # -- writing ---------------------------------------------------------------------------------

    def put(
        self, config: RunConfig, record: RunRecord | None = None, error: str | None = None
    ) -> None:
        """Store one finished run: its record (done or diverged), or the error that ended it
        (failed). Replaces an earlier row of the same config and ends any claim on it, in one
        transaction: a failure (a full disk) leaves the store as it was."""
        self._writable()
        if record is None and error is None:
            raise ValueError("put: give the run's record or its error")
        status = record.status if error is None and record is not None else "failed"
        versions = record.versions if record is not None else {}
        values = {
            "key": config.key(),
            "task": config.task,
            "optimizer": config.optimizer,
            "schedule": config.schedule,
            "lr": config.lr,
            "seed": config.seed,
            "status": status,
            "error": error,
            "steps": record.steps if record else None,
            "wall_time": record.wall_time if record else None,
            "train_time": record.train_time if record else None,
            "final_metric": record.final_metric if record else None,
            "final_val_metric": record.final_val_metric if record else None,
            "best_metric": record.best_metric if record else None,
            "steps_to_target": record.steps_to_target if record else None,
            "time_to_target": record.time_to_target if record else None,
            "lrlab_version": versions.get("lrlab"),
            "torch_version": versions.get("torch"),
            "python_version": versions.get("python"),
            "config": json.dumps(config.to_dict(), sort_keys=True),
            "record": record.to_json() if record is not None else None,
            "finished_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
        }
        columns = ", ".join(values)
        marks = ", ".join(f":{name}" for name in values)
        updates = ", ".join(f"{name} = excluded.{name}" for name in values if name != "key")
        with self._errors("cannot store the run"), self._transaction():
            self._db.execute(
                f"INSERT INTO runs ({columns}) VALUES ({marks}) "
                f"ON CONFLICT (key) DO UPDATE SET {updates}",
                values,
            )
            self._db.execute("DELETE FROM leases WHERE key = ?", (values["key"],))

    # -- leases ----------------------------------------------------------------------------------

    def claim(self, keys: Iterable[str], lease: Lease, *, seen_busy: Collection[str] = ()) -> Claim:
        """Claim for ``lease``, in one transaction, the first of ``keys`` that is neither
        finished nor held by another live sweep; say which of the keys passed over need no run
        and which are busy (each key costs two index lookups; the walk stops at the claim).

        A key in ``seen_busy`` (found busy before) whose claim has since ended with a row
        stored counts as finished, whatever its status: the other sweep ran it. A claim whose
        sweep died is taken over.
        """
        self._writable()
        finished: set[str] = set()
        busy: set[str] = set()
        claimed: str | None = None
        now = time.time()
        with self._errors("cannot claim a run"), self._transaction():
            for key in keys:  # by the indexes, stopping at the first free run: cheap
                row = self._db.execute("SELECT status FROM runs WHERE key = ?", (key,)).fetchone()
                status = None if row is None else row[0]
                if status in FINISHED:
                    finished.add(key)
                    continue
                held = self._db.execute(
                    "SELECT owner, host, pid, started, heartbeat FROM leases WHERE key = ?",
                    (key,),
                ).fetchone()
                if held is not None and held[0] != lease.token and _alive(*held[1:], now=now):
                    busy.add(key)
                    continue
                if held is None and status is not None and key in seen_busy:
                    finished.add(key)  # stored by the sweep that held it (failed, too)
                    continue
                claimed = key
                self._db.execute(
                    "INSERT OR REPLACE INTO leases VALUES (?, ?, ?, ?, ?, ?)",
                    (key, lease.token, lease.host, lease.pid, lease.started, now),
                )
                break
        return Claim(claimed, frozenset(finished), frozenset(busy))

    def release(self, lease: Lease) -> None:
        """Give up ``lease``'s remaining claims (runs it did not finish): they lapse at once,
        so another sweep takes them over, and one waiting for them does not take them for
        done."""
        self._writable()
        with self._errors("cannot release its claims"):
            _patiently(
                self.path,
                lambda: self._db.execute(
                    "UPDATE leases SET heartbeat = 0 WHERE owner = ?", (lease.token,)
                ),
            )

    @contextlib.contextmanager
    def holding(self, lease: Lease) -> Iterator[None]:
        """Renew ``lease``'s claims every `HEARTBEAT` seconds (a thread, with its own
        connection) while the block runs; release what is left when it ends, however."""
        self._writable()
        stop = threading.Event()

        def renew() -> None:
            db = _connect(self.path, "mode=rw", timeout=BUSY_TIMEOUT)
            try:
                while not stop.wait(HEARTBEAT):
                    with contextlib.suppress(sqlite3.Error):  # try again next beat
                        db.execute(
                            "UPDATE leases SET heartbeat = ? WHERE owner = ? AND heartbeat > 0",
                            (time.time(), lease.token),
                        )
            finally:
                db.close()

        thread = threading.Thread(target=renew, name="lrlab-lease", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(timeout=HEARTBEAT)
            with contextlib.suppress(StoreError):
                self.release(lease)

    # -- reading ---------------------------------------------------------------------------------

    def finished_keys(self) -> set[str]:
        """Keys of runs that need not run again (done or diverged; failed runs are retried)."""
        marks = ", ".join("?" for _ in FINISHED)
        rows = self._read(f"SELECT key FROM runs WHERE status IN ({marks})", FINISHED)
        return {key for (key,) in rows}

    def runs(self, keys: Iterable[str] | None = None, task: str | None = None) -> list[StoredRun]:
        """Stored runs, oldest first; only ``keys`` (or only ``task``) when given. A row whose
        JSON does not parse is a `StoreError` naming the file and the row."""
        query = "SELECT id, config, status, error, record, finished_at, key FROM runs"
        parameters: tuple[object, ...] = ()
        if task is not None:
            query += " WHERE task = ?"
            parameters = (task,)
        wanted = set(keys) if keys is not None else None
        result = []
        for row in self._read(query + " ORDER BY id", parameters):
            if wanted is not None and row[6] not in wanted:
                continue
            try:
                record = RunRecord.from_json(row[4]) if row[4] else None
                config = RunConfig.from_dict(json.loads(row[1]))
            except (ValueError, TypeError, KeyError, AttributeError) as error:
                raise StoreError(
                    f"{self.path}: run {row[0]} is corrupt ({describe(error)})"
                ) from None
            result.append(StoredRun(row[0], config, row[2], row[3], record, row[5]))
        return result

    def count(self) -> dict[str, int]:
        """Runs per status."""
        rows = self._read("SELECT status, COUNT(*) FROM runs GROUP BY status")
        return {status: n for status, n in rows}

    def integrity(self) -> str:
        """SQLite's own check: ``"ok"`` for an intact file."""
        return str(self._read("PRAGMA integrity_check")[0][0])

    def _read(self, query: str, parameters: tuple[object, ...] = ()) -> list[Any]:
        """The rows of ``query``, waiting (`_patiently`) while another process locks the file."""
        with self._errors("cannot read the store"):
            return _patiently(self.path, lambda: self._db.execute(query, parameters).fetchall())


def _uri(path: Path) -> str:
    """``path`` as a ``file:`` URI, percent-encoded: ``?``, ``#`` and ``%`` in a file's name
    stay part of the name."""
    return path.absolute().as_uri()


def _connect(path: Path, query: str, *, timeout: float | None = None) -> sqlite3.Connection:
    """A connection to the file at ``path`` (never a name SQLite parses: `_uri`), opened with
    the URI parameters ``query`` (``mode=rw``, ``mode=ro``, ``immutable=1``), autocommit.
    SQLite waits ``timeout`` seconds (default `NOTICE_AFTER`) for a lock before an operation
    fails busy (`_patiently` goes on waiting, saying so)."""
    wait = NOTICE_AFTER if timeout is None else timeout
    return sqlite3.connect(f"{_uri(path)}?{query}", uri=True, timeout=wait, isolation_level=None)


def _wal_in_use(path: Path) -> bool:
    """Whether ``path`` has a write-ahead log with content (a writer has it open, or died
    with it): reading the file alone, ``immutable``, would miss what the log holds."""
    wal = path.with_name(path.name + "-wal")
    return wal.is_file() and wal.stat().st_size > 0


def _open_readonly(path: Path) -> sqlite3.Connection:
    """A connection that only reads ``path`` and creates nothing beside it: ``immutable``
    (no journal, no lock, no ``-shm``), or ``mode=ro`` while a write-ahead log is in use,
    which it reads; where SQLite cannot open a log read-only (no ``-shm`` and a folder it may
    not write), ``immutable`` after all (the runs the log holds are then not seen)."""
    if _wal_in_use(path):
        db = _connect(path, "mode=ro")
        try:
            _patiently(path, lambda: db.execute("SELECT count(*) FROM sqlite_master").fetchall())
            return db
        except sqlite3.Error as error:
            db.close()
            if _locked(error):
                raise
    return _connect(path, "immutable=1")


def _locked(error: sqlite3.Error) -> bool:
    """Whether ``error`` is another connection's lock (``SQLITE_BUSY``, ``SQLITE_LOCKED``)."""
    code = getattr(error, "sqlite_errorcode", None)
    if code is None:
        return "locked" in str(error) or "busy" in str(error)
    return code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


def _patiently(path: Path, action: Callable[[], T]) -> T:
    """``action()``, an SQLite call that may meet another process's lock, tried again while
    the lock is held, up to `BUSY_TIMEOUT` seconds: once the first try has waited
    `NOTICE_AFTER` seconds (the connections' own timeout), one line on stderr says what lrlab
    waits for; past the timeout, a `StoreError` naming the file."""
    deadline = time.monotonic() + BUSY_TIMEOUT
    told = False
    while True:
        try:
            return action()
        except sqlite3.OperationalError as error:
            if not _locked(error):
                raise
            if time.monotonic() >= deadline:
                raise StoreError(
                    f"{path}: locked by another process (waited {BUSY_TIMEOUT:g} s for it)"
                ) from None
            if not told:
                _LOG.warning(
                    "lrlab: waiting for %s: another process holds a lock on it "
                    "(waiting up to %g s)",
                    path,
                    BUSY_TIMEOUT,
                )
                told = True
            time.sleep(0.05)  # a lock SQLite reports at once (no busy handler) is not spun on


def _create(path: Path) -> None:
    """Make a new, empty store at ``path``: built under a temporary name beside it, then
    hard-linked into place, so no process ever opens a half-made store (if another process
    made one first, that one is kept)."""
    temp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.new")
    os.close(os.open(temp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
    try:
        db = _connect(temp, "mode=rw")
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("BEGIN IMMEDIATE")
            migrations = [m for step in sorted(_MIGRATIONS) for m in _MIGRATIONS[step]]
            for statement in [*_SCHEMA, _LEASES, *migrations]:
                db.execute(statement)
            db.execute("INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
            db.execute("COMMIT")
        finally:
            db.close()  # the last connection: SQLite checkpoints and removes -wal and -shm
        try:
            os.link(temp, path)
        except FileExistsError:
            pass  # another process made the store first: it is the store
        except OSError:  # a file system without hard links
            if not path.exists():
                os.replace(temp, path)
    except sqlite3.Error as error:
        raise StoreError(f"{path}: cannot create the store ({error})") from None
    finally:
        temp.unlink(missing_ok=True)


def _inspect(path: Path) -> None:
    """Refuse ``path`` unless it is an lrlab store of this schema, reading it only, creating
    nothing beside it: through its write-ahead log (a read-only connection) while one is in
    use with its ``-shm`` index beside it (a writer holds the file); otherwise ``immutable``
    (no journal, no lock; an lrlab store's tables are in the file itself from its creation
    on), as also when the log lacks its index (SQLite would create one beside a file it may
    then refuse). A read that fails one way (a page being checkpointed into the file that
    instant) is tried once more the other, where there is one."""
    try:
        if path.is_dir():
            raise StoreError(f"{path}: a folder, not an lrlab store")
        if not path.is_file():  # a FIFO, a device: never opened (a FIFO would block)
            raise StoreError(f"{path}: not an lrlab store (not a plain file)")
        with path.open("rb") as handle:
            header = handle.read(len(_MAGIC))
        shared = path.with_name(path.name + "-shm").is_file()
        in_use = shared and _wal_in_use(path)
    except OSError as error:
        raise StoreError(f"{path}: cannot read it ({error.strerror or error})") from None
    if not header:
        raise StoreError(f"{path}: not an lrlab store (an empty file)")
    if header != _MAGIC:
        raise StoreError(f"{path}: not an lrlab store (not a SQLite file)")
    modes = ["mode=ro", "immutable=1"] if in_use else ["immutable=1", "mode=ro"][: 1 + shared]
    for attempt, mode in enumerate(modes, start=1):
        try:
            tables, columns, version = _patiently(path, lambda: _schema(path, mode))  # noqa: B023
            break
        except sqlite3.Error as error:
            if attempt == len(modes):
                raise StoreError(f"{path}: not an lrlab store ({error})") from None
    if not {"meta", "runs"} <= tables:
        names = ", ".join(sorted(t for t in tables if not t.startswith("sqlite_")))
        raise StoreError(f"{path}: not an lrlab store (its tables: {names or 'none'})")
    missing = sorted(_RUN_COLUMNS - columns)
    if missing:
        raise StoreError(
            f"{path}: not an lrlab store (its runs table lacks {', '.join(missing[:5])}"
            f"{', ...' if len(missing) > 5 else ''})"
        )
    if version is None:
        raise StoreError(f"{path}: not an lrlab store (no schema version in its meta table)")
    if version not in [str(v) for v in range(1, SCHEMA_VERSION + 1)]:
        raise StoreError(
            f"{path}: store schema {version}, this lrlab reads schemas 1 to {SCHEMA_VERSION}"
        )


def _schema(path: Path, mode: str) -> tuple[set[str], set[str], str | None]:
    """The file's tables, the columns of its ``runs`` table and its ``meta`` schema version
    (``None`` where it has none), read through a connection opened with ``mode``."""
    db = _connect(path, mode)
    try:
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master")}
        if not {"meta", "runs"} <= tables:
            return tables, set(), None
        columns = {row[1] for row in db.execute("PRAGMA table_info(runs)")}
        row = db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        return tables, columns, None if row is None else str(row[0])
    finally:
        db.close()


def _started(pid: int) -> str:
    """When process ``pid`` started, in clock ticks since boot (Linux's ``/proc``), or ``""``
    where that cannot be read: with the pid, it names a process even after its pid is reused.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    fields = stat.rpartition(")")[2].split()  # fields 3.. of proc(5): state first
    return fields[19] if len(fields) > 19 else ""


def _alive(host: str, pid: int, started: str, heartbeat: float, *, now: float) -> bool:
    """Whether the sweep behind a claim still lives: renewed within `LEASE_TIMEOUT`, and, on
    this machine, its process still running (not a zombie, not a new process on its pid)."""
    if heartbeat <= 0 or now - heartbeat > LEASE_TIMEOUT:
        return False
    if host != socket.gethostname() or os.name == "nt":
        return True  # another machine (or no way to ask): the renewals tell
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # someone else's process, alive
    if started:  # Linux: a zombie, or another process on the same pid, is not the sweep
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            return False
        return fields[:1] != ["Z"] and fields[19:20] == [started]
    return True
