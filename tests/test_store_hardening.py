"""The store against files that are not its own, corrupt rows, read-only and full disks, and
several sweeps at once: foreign files are refused and left byte-identical, a failed write loses
nothing, and run leases make concurrent sweeps split the work."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import resource
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from lrlab import store as store_module
from lrlab.cli import main
from lrlab.execution import InProcess
from lrlab.record import RunConfig
from lrlab.store import Lease, Store, StoreError
from lrlab.sweep import run_missing
from tests.fakes import record
from tests.waiting import wait_for

# -- files that are not lrlab stores ---------------------------------------------------------------


def _foreign(path: Path, kind: str) -> None:
    if kind == "empty":
        path.write_bytes(b"")
        return
    if kind == "text":
        path.write_text("name,age\nada,36\n")
        return
    db = sqlite3.connect(path)
    if kind == "wal-app":
        db.execute("PRAGMA journal_mode=WAL")
    if kind in ("app", "wal-app"):
        db.execute("CREATE TABLE people (name TEXT)")
        db.execute("INSERT INTO people VALUES ('ada')")
    elif kind == "runs-of-another-schema":
        db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
        db.execute("INSERT INTO meta VALUES ('schema', '1')")
        db.execute("CREATE TABLE runs (id INTEGER PRIMARY KEY, key TEXT, task TEXT)")
    elif kind == "no-schema-version":
        db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
        db.execute(store_module._RUNS)
    db.commit()
    db.close()


def _listing(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): "folder"
        if p.is_dir()
        else hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
    }


KINDS = ["empty", "text", "app", "wal-app", "runs-of-another-schema", "no-schema-version"]


@pytest.mark.parametrize("readonly", [False, True])
@pytest.mark.parametrize("kind", KINDS)
def test_a_file_that_is_not_a_store_is_refused_and_left_byte_identical(
    tmp_path: Path, kind: str, readonly: bool
) -> None:
    path = tmp_path / "data.sqlite"
    _foreign(path, kind)
    before = _listing(tmp_path)
    with pytest.raises(StoreError, match="not an lrlab store") as error:
        Store(path, readonly=readonly)
    message = str(error.value)
    assert message.startswith(f"{path}: ")
    assert "\n" not in message
    assert _listing(tmp_path) == before  # no meta table, no WAL switched on, no -shm beside it


def test_a_foreign_file_in_use_by_its_application_is_read_through_its_log(tmp_path: Path) -> None:
    """Another application holds the file open with uncommitted-to-disk WAL frames: the check
    reads them (a read-only connection) and still refuses, changing neither file."""
    path = tmp_path / "app.sqlite"
    _foreign(path, "wal-app")
    app = sqlite3.connect(path)
    app.execute("PRAGMA wal_autocheckpoint=0")
    app.execute("CREATE TABLE later (x)")
    app.commit()
    try:
        assert (tmp_path / "app.sqlite-wal").stat().st_size > 0
        main_file = path.read_bytes()
        with pytest.raises(StoreError, match=r"its tables: later, people"):
            Store(path)
        assert path.read_bytes() == main_file
    finally:
        app.close()


@pytest.mark.parametrize("command", ["compare", "report"])
def test_the_commands_leave_a_foreign_file_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    path = tmp_path / "notes.sqlite"
    _foreign(path, "app")
    before = _listing(tmp_path)
    argv = ["report", "--db", str(path)]
    if command == "compare":
        argv = ["compare", "quadratic", "--optimizers", "sgd", "--steps", "2", "--db", str(path)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err == f"lrlab: error: {path}: not an lrlab store (its tables: people)\n"
    assert _listing(tmp_path) == before


def test_a_new_store_appears_whole_and_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "runs.sqlite"
    Store(path).close()
    assert sorted(p.name for p in path.parent.iterdir()) == ["runs.sqlite"]  # no leftovers
    db = sqlite3.connect(path)
    tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert tables == {"meta", "runs", "leases"}
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()


def _open(path: str, barrier: Any) -> None:
    barrier.wait()
    config = RunConfig(task="iris", seed=os.getpid())
    with Store(path) as store:
        store.put(config, record(config, [0.5]))


def test_processes_creating_one_store_at_once_share_it(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite"
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(4)
    workers = [context.Process(target=_open, args=(str(path), barrier)) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
    assert [w.exitcode for w in workers] == [0, 0, 0, 0]
    with Store(path) as store:
        assert store.count() == {"done": 4}
        assert store.integrity() == "ok"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs.sqlite"]


# -- corrupt rows ----------------------------------------------------------------------------------


def test_a_corrupt_row_is_one_line_naming_the_file_and_the_row(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "runs.sqlite"
    config = RunConfig(task="quadratic", optimizer="sgd", steps=2, seed=0)
    with Store(path) as store:
        store.put(config, record(config, [0.5, 0.9]))
    db = sqlite3.connect(path)
    db.execute("UPDATE runs SET config = '{\"task\": ' WHERE id = 1")
    db.commit()
    db.close()
    with Store(path) as store, pytest.raises(StoreError) as error:
        store.runs()
    assert str(error.value).startswith(f"{path}: run 1 is corrupt (JSONDecodeError: ")
    # A comparison whose finished run is that row: it is read, not run again, and refused.
    argv = ["compare", "quadratic", "--optimizers", "sgd", "--steps", "2", "--seeds", "1"]
    argv += ["--optimistic"]
    assert main([*argv, "--db", str(path)]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert lines[-1].startswith(f"lrlab: error: {path}: run 1 is corrupt")
    assert not any("Traceback" in line for line in lines)


# -- read-only and full disks ----------------------------------------------------------------------


def _without_root_powers() -> list[str]:
    """A command prefix under which file permissions bind: nothing for a normal user; for
    root, the capabilities that override them dropped (util-linux's setpriv)."""
    if os.geteuid() != 0:
        return []
    prefix = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]
    try:
        subprocess.run([*prefix, "true"], check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("running as root without setpriv: permissions cannot bind")
    return prefix


def _lrlab(
    *argv: str, prefix: list[str] | None = None, **options: object
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*(prefix or []), sys.executable, "-m", "lrlab", *argv],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        **options,  # type: ignore[call-overload]
    )


COMPARE = ["compare", "quadratic", "--optimizers", "sgd,adam", "--steps", "40", "--workers", "1"]
COMPARE += ["--vectorize", "off"]  # one run stored at a time, as these tests need
COMPARE += ["--optimistic"]  # every run on the seeds given (no fresh seeds)


def test_a_read_only_store_is_refused_before_anything_runs(tmp_path: Path) -> None:
    prefix = _without_root_powers()
    db = tmp_path / "runs.sqlite"
    assert _lrlab(*COMPARE, "--seeds", "1", "--db", str(db)).returncode == 0
    db.chmod(0o444)
    before = _listing(tmp_path)
    result = _lrlab(*COMPARE, "--seeds", "3", "--db", str(db), prefix=prefix)
    assert result.returncode == 2
    assert result.stderr == (
        f"lrlab: error: --db must be a file this process may write (permission denied), "
        f"got --db='{db}'\n"
    )
    assert _listing(tmp_path) == before
    # Reading it needs no write permission.
    result = _lrlab("report", "--db", str(db), "--out", str(tmp_path / "report"), prefix=prefix)
    assert result.returncode == 0, result.stderr
    with Store(db, readonly=True) as store:
        assert store.count() == {"done": 2}


def test_a_store_in_a_read_only_folder_is_refused_by_the_library_too(tmp_path: Path) -> None:
    prefix = _without_root_powers()
    folder = tmp_path / "ro"
    folder.mkdir()
    Store(folder / "runs.sqlite").close()
    folder.chmod(0o555)
    script = (
        "from lrlab.store import Store\n"
        "try:\n"
        f"    Store({str(folder / 'runs.sqlite')!r})\n"
        "except ValueError as error:\n"
        "    print(error)\n"
    )
    result = subprocess.run(
        [*prefix, sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert "the store is read-only" in result.stdout
    folder.chmod(0o755)


MNIST = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte")
MNIST += ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


@pytest.mark.parametrize("command", ["run", "compare"])
def test_unreadable_data_is_one_line_naming_the_file(tmp_path: Path, command: str) -> None:
    prefix = _without_root_powers()
    data = tmp_path / "data"
    data.mkdir()
    for name in MNIST:
        (data / name).write_bytes(b"\0" * 16)
        (data / name).chmod(0o000)
    argv = ["run", "mnist", "--optimizer", "sgd", "--steps", "2"]
    if command == "compare":
        argv = ["compare", "mnist", "--optimizers", "sgd", "--steps", "2"]
        argv += ["--db", str(tmp_path / "runs.sqlite")]
    result = _lrlab(*argv, "--data-dir", str(data), prefix=prefix)
    assert result.returncode == 2
    assert result.stderr.startswith(f"lrlab: error: {data / MNIST[0]}: cannot read the file")
    assert "Permission denied" in result.stderr
    assert result.stderr.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]  # no store, no report
    data.chmod(0o000)
    result = _lrlab(*argv, "--data-dir", str(data), prefix=prefix)
    assert result.stderr == (
        "lrlab: error: --data-dir must be a folder this process may read (permission denied), "
        f"got --data-dir='{data}'\n"
    )
    data.chmod(0o755)


def _limit_file_size(limit: int) -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a refused write, not a dead process
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_FSIZE as a full disk: Linux")
def test_a_full_disk_stops_the_sweep_in_one_line_and_loses_no_stored_run(tmp_path: Path) -> None:
    """The disk fills up mid-sweep (here: the process may not grow a file past 160 KiB, so the
    store's log cannot grow: the write fails as on a full disk). The command ends in one line
    naming the store; every run stored before is intact; the same command resumes later."""
    db = tmp_path / "runs.sqlite"
    argv = [*COMPARE, "--seeds", "30", "--db", str(db)]
    result = _lrlab(*argv, preexec_fn=lambda: _limit_file_size(160 * 1024))
    assert result.returncode == 2
    last = result.stderr.splitlines()[-1]
    assert last.startswith(f"lrlab: error: {db}: cannot "), result.stderr
    assert "Traceback" not in result.stderr
    with Store(db) as store:
        assert store.integrity() == "ok"
        stored = store.runs()
        assert 0 < len(stored) < 60
        assert all(r.status == "done" and r.record is not None for r in stored)
    result = _lrlab(*argv)
    assert result.returncode == 0, result.stderr
    with Store(db) as store:
        keys = [r.config.key() for r in store.runs()]
        assert len(keys) == 60
        assert len(set(keys)) == 60


@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_FSIZE as a full disk: Linux")
def test_a_full_disk_under_the_json_record_is_one_line_naming_it(tmp_path: Path) -> None:
    """The record's JSON cannot be written whole (the process may not grow a file past 1 KiB,
    as on a full disk): one line naming the file, exit 2."""
    target = tmp_path / "record.json"
    argv = ["run", "quadratic", "--optimizer", "sgd", "--steps", "50", "--quiet"]
    result = _lrlab(*argv, "--json", str(target), preexec_fn=lambda: _limit_file_size(1024))
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines()[-1] == f"lrlab: error: {target}: File too large"


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_device_as_the_json_record_is_refused_before_training(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["run", "quadratic", "--optimizer", "sgd", "--steps", "2", "--quiet"]
    assert main([*argv, "--json", "/dev/full"]) == 2
    out, err = capsys.readouterr()
    assert out == ""  # no run summary: refused before anything trained
    assert err == (
        "lrlab: error: --json must be a plain file, not a character device, "
        "got --json='/dev/full'\n"
    )


# -- leases ----------------------------------------------------------------------------------------


def _configs(count: int) -> list[RunConfig]:
    return [RunConfig(task="quadratic", optimizer="sgd", steps=3, seed=s) for s in range(count)]


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_a_claimed_run_is_busy_for_other_sweeps_until_stored(tmp_path: Path) -> None:
    configs = _configs(2)
    keys = [c.key() for c in configs]
    mine, theirs = Lease.new(), Lease.new()
    with Store(tmp_path / "runs.sqlite") as store:
        assert store.claim(keys, mine).key == keys[0]
        claim = store.claim(keys, theirs)
        assert (claim.key, claim.busy) == (keys[1], {keys[0]})
        assert store.claim(keys, Lease.new()).key is None  # both held
        store.put(configs[0], record(configs[0], [0.5]))
        claim = store.claim(keys, Lease.new())
        assert claim.key is None
        assert claim.finished == {keys[0]}
        assert claim.busy == {keys[1]}


def test_a_dead_sweeps_claims_are_taken_over(tmp_path: Path) -> None:
    keys = [c.key() for c in _configs(3)]
    host = Lease.new().host
    dead = Lease("dead", host, _dead_pid(), "")
    reused = Lease("reused", host, os.getpid(), "not-my-start-time")
    silent = Lease("silent", "another-machine", 1, "")
    with Store(tmp_path / "runs.sqlite") as store:
        for key, lease in zip(keys, (dead, reused, silent), strict=True):
            assert store.claim([key], lease).key == key
        db = sqlite3.connect(tmp_path / "runs.sqlite")
        db.execute("UPDATE leases SET heartbeat = heartbeat - 61 WHERE owner = 'silent'")
        db.commit()
        db.close()
        taker = Lease.new()
        assert [store.claim([key], taker).key for key in keys] == keys


def test_a_released_claim_is_free_at_once_and_not_taken_for_done(tmp_path: Path) -> None:
    key = _configs(1)[0].key()
    first, second = Lease.new(), Lease.new()
    with Store(tmp_path / "runs.sqlite") as store:
        store.claim([key], first)
        assert store.claim([key], second).busy == {key}
        store.release(first)
        claim = store.claim([key], second, seen_busy={key})
        assert claim.key == key


def test_a_run_another_sweep_stored_as_failed_is_not_run_again(tmp_path: Path) -> None:
    config = _configs(1)[0]
    other, mine = Lease.new(), Lease.new()
    with Store(tmp_path / "runs.sqlite") as store:
        store.claim([config.key()], other)
        assert store.claim([config.key()], mine).busy == {config.key()}
        store.put(config, error="ValueError: boom")  # the other sweep's outcome
        claim = store.claim([config.key()], mine, seen_busy={config.key()})
        assert claim.key is None
        assert claim.finished == {config.key()}
        # A sweep that never saw it busy retries the failure, as ever.
        assert store.claim([config.key()], Lease.new()).key == config.key()


def test_holding_renews_claims_and_releases_what_is_left(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_module, "HEARTBEAT", 0.05)
    key = _configs(1)[0].key()
    lease = Lease.new()
    path = tmp_path / "runs.sqlite"
    with Store(path) as store:
        with store.holding(lease):
            store.claim([key], lease)
            (first,) = sqlite3.connect(path).execute("SELECT heartbeat FROM leases").fetchone()

            def renewed() -> bool:
                connection = sqlite3.connect(path)
                (later,) = connection.execute("SELECT heartbeat FROM leases").fetchone()
                connection.close()
                return bool(later > first)

            assert wait_for(renewed)
        (released,) = sqlite3.connect(path).execute("SELECT heartbeat FROM leases").fetchone()
        assert released == 0
        assert store.claim([key], Lease.new()).key == key


def test_run_missing_leaves_a_held_run_to_its_sweep_and_waits_for_it(tmp_path: Path) -> None:
    """Another live sweep holds one of the runs: this one runs the rest, waits, and counts the
    held run once the other stores it; nothing runs twice."""
    configs = _configs(3)
    path = tmp_path / "runs.sqlite"
    other = Lease.new()
    with Store(path) as store:
        store.claim([configs[1].key()], other)
    result: list[int] = []
    waiting = threading.Event()

    def sweep() -> None:
        with Store(path) as store:
            result.append(run_missing(store, configs, InProcess(), poll=0.05))

    thread = threading.Thread(target=sweep)
    thread.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not waiting.is_set():
        with Store(path) as store:
            if store.count().get("done") == 2:
                waiting.set()
        time.sleep(0.05)
    assert thread.is_alive()  # waiting for the held run
    with Store(path) as store:
        store.put(configs[1], record(configs[1], [0.5]))  # the other sweep finishes it
    thread.join(60)
    assert result == [2]
    with Store(path) as store:
        assert sorted(r.config.seed for r in store.runs()) == [0, 1, 2]
        assert store.runs(keys=[configs[1].key()])[0].record == record(configs[1], [0.5])
