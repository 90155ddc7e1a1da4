"""Opening a node's SQLite file: one way for every concern that keeps tables in it.

Several connections (attestations, chain cursors, claims, releases, applied events) share the
file, so each waits for another's write to finish instead of failing with "database is
locked", and every one runs in WAL mode so readers never block the writer.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Literal

#: How long a connection waits for another connection's write before giving up.
BUSY_TIMEOUT_MILLISECONDS = 5000


def open_database(
    path: Path | str,
    *,
    synchronous: Literal["FULL", "NORMAL"] = "FULL",
    shared_across_threads: bool = False,
) -> sqlite3.Connection:
    """A connection in autocommit mode (callers issue BEGIN/COMMIT themselves when they need
    a transaction). FULL syncs every commit to disk; NORMAL survives a killed process but not
    a power loss. `shared_across_threads` is for owners that serialise access with a lock."""
    connection = sqlite3.connect(str(path), isolation_level=None, check_same_thread=not shared_across_threads)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute(f"PRAGMA synchronous={synchronous}")
    connection.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MILLISECONDS}")
    return connection
