"""Opening a node's SQLite file: one way for every concern that keeps tables in it.

Several connections (attestations, chain cursors, claims, releases, applied events) share the
file, so each waits for another's write to finish instead of failing with "database is
locked", and every one runs in WAL mode so readers never block the writer.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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


class Transactions:
    """Explicit transactions on one autocommit connection: `with transactions():` commits the
    block's writes together or not at all, and a nested block joins the outer one."""

    def __init__(self, connection: sqlite3.Connection, on_rollback: Callable[[], None] | None = None) -> None:
        """`on_rollback` drops whatever its owner cached about rows the rollback took back."""
        self._connection = connection
        self._on_rollback = on_rollback
        self._depth = 0

    @contextmanager
    def __call__(self) -> Iterator[None]:
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        self._connection.execute("BEGIN IMMEDIATE")
        self._depth = 1
        try:
            yield
        except BaseException:
            self._depth = 0
            if self._on_rollback is not None:
                self._on_rollback()
            self._connection.execute("ROLLBACK")
            raise
        self._depth = 0
        self._connection.execute("COMMIT")
