"""The SQLite run store: round trips, resumability, several writers at once."""

from __future__ import annotations

import dataclasses
import math
import multiprocessing
import sqlite3
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lrlab.record import RunConfig, RunRecord
from lrlab.store import Store
from tests.fakes import record


def test_round_trip_and_what_counts_as_finished(tmp_path: Path) -> None:
    done = RunConfig(task="iris", optimizer="sgd", seed=0)
    diverged = RunConfig(task="iris", optimizer="sgd", seed=1, lr=1e6)
    failed = RunConfig(task="iris", optimizer="adam", seed=0)
    with Store(tmp_path / "runs.sqlite") as store:
        store.put(done, record(done, [0.5, 0.95]))
        store.put(diverged, record(diverged, [0.1], status="diverged"))
        store.put(failed, error="ValueError: boom")
        assert store.count() == {"done": 1, "diverged": 1, "failed": 1}
        assert store.finished_keys() == {done.key(), diverged.key()}  # failed runs are retried
        runs = store.runs()
        assert [r.status for r in runs] == ["done", "diverged", "failed"]
        assert runs[0].record == record(done, [0.5, 0.95])
        assert runs[2].record is None
        assert runs[2].error == "ValueError: boom"
        assert [r.config for r in store.runs(keys=[failed.key()])] == [failed]
        assert len(store.runs(task="digits")) == 0
        # The same config again replaces its row (a retried failure that now succeeds).
        store.put(failed, record(failed, [0.92]))
        assert store.count() == {"done": 2, "diverged": 1}
        assert store.integrity() == "ok"
    columns = (
        sqlite3.connect(tmp_path / "runs.sqlite")
        .execute(
            "SELECT task, optimizer, seed, status, steps_to_target, final_metric, torch_version "
            "FROM runs ORDER BY id"
        )
        .fetchall()
    )
    assert columns[0] == ("iris", "sgd", 0, "done", 20, 0.95, "2.13.0")
    assert (
        sqlite3.connect(tmp_path / "runs.sqlite").execute("PRAGMA journal_mode").fetchone()[0]
        == "wal"
    )


def test_put_needs_a_record_or_an_error(tmp_path: Path) -> None:
    with Store(tmp_path / "runs.sqlite") as store, pytest.raises(ValueError, match="record"):
        store.put(RunConfig(task="iris"))


def test_a_file_that_is_not_a_store(tmp_path: Path) -> None:
    bogus = tmp_path / "notes.sqlite"
    bogus.write_text("these are not the runs you are looking for" * 100)
    with pytest.raises(ValueError, match="not an lrlab store") as error:
        Store(bogus)
    assert "\n" not in str(error.value)


def test_a_store_from_another_schema(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite"
    Store(path).close()
    connection = sqlite3.connect(path)
    connection.execute("UPDATE meta SET value = '99' WHERE key = 'schema'")
    connection.commit()
    connection.close()
    with pytest.raises(ValueError, match="store schema 99"):
        Store(path)


def _writer(path: str, writer: int, count: int) -> None:
    with Store(path) as store:
        for i in range(count):
            config = RunConfig(task="iris", optimizer="sgd", seed=writer * 1000 + i)
            store.put(config, record(config, [0.5, 0.91]))


def test_concurrent_writers(tmp_path: Path) -> None:
    """Four processes writing at once: every row lands, the file stays intact."""
    path = str(tmp_path / "runs.sqlite")
    Store(path).close()
    context = multiprocessing.get_context("spawn")
    writers = [context.Process(target=_writer, args=(path, w, 40)) for w in range(4)]
    for process in writers:
        process.start()
    for process in writers:
        process.join(timeout=120)
        assert process.exitcode == 0
    with Store(path) as store:
        assert store.count() == {"done": 160}
        assert store.integrity() == "ok"
        seeds = sorted(r.config.seed for r in store.runs())
        assert seeds == sorted(w * 1000 + i for w in range(4) for i in range(40))


@given(
    st.lists(
        st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.none()),
        max_size=40,
    )
)
def test_a_record_is_valid_json_whatever_its_losses(losses: list[float | None]) -> None:
    """Non-finite step losses and epoch values become ``null`` (JSON has no NaN), the finite
    ones come back bit for bit, and the record reads back equal otherwise."""
    made = record(RunConfig(task="iris", optimizer="sgd", lr=0.1), [0.5, 0.9])
    made.step_loss = list(losses)  # type: ignore[arg-type]
    made.epochs[0] = dataclasses.replace(made.epochs[0], train_loss=math.inf, test_loss=math.nan)
    text = made.to_json()  # allow_nan=False: raises on any NaN left
    back = RunRecord.from_json(text)
    expected = [v if v is not None and math.isfinite(v) else None for v in losses]
    assert back.step_loss == expected
    assert (back.epochs[0].train_loss, back.epochs[0].test_loss) == (None, None)
    assert back.epochs[1] == made.epochs[1]
