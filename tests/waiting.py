"""Waiting for something another process or thread does, without depending on how fast the
machine is: poll until the condition holds; the limit only stops a hang, far beyond what the
condition takes. And reading a store's row counts without taking part in its locking."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path


def wait_for(condition: Callable[[], object], limit: float = 300.0) -> bool:
    """Poll ``condition`` every 0.1 s until it is true; ``False`` only past ``limit`` s."""
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def rows(db: Path, table: str) -> int:
    """Rows of ``table`` in the SQLite file ``db``, read only (0 when it cannot be read)."""
    if not db.exists():
        return 0
    try:
        connection = sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True, timeout=1)
        try:
            return int(connection.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
        finally:
            connection.close()
    except sqlite3.Error:
        return 0
