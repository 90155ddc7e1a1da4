"""Adapter cursors in the node's SQLite file, so a restarted adapter resumes where it stopped.

The node's SQLite file holds other concerns' tables too; this module creates and touches only
`chain_cursors`. The consumer saves a batch's cursor after handling the batch, ideally in
the same transaction as what it stored from the batch (pass that connection to `save`), so
an event is neither lost nor handled twice across a crash.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from crossclear.chains.interface import Cursor
from crossclear.store import open_database

_SCHEMA = """
CREATE TABLE IF NOT EXISTS chain_cursors (
    network      TEXT PRIMARY KEY,
    chain_id     INTEGER NOT NULL,
    block_number INTEGER NOT NULL,
    block_hash   BLOB NOT NULL,
    updated_at   REAL NOT NULL
)
"""


class CursorStore:
    """Reads and writes one cursor per network in a SQLite file."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        # isolation_level=None: we open our own short transactions explicitly.
        self._connection = open_database(self.path, shared_across_threads=True)
        self._connection.execute(_SCHEMA)

    def load(self, network: str) -> Cursor | None:
        """The stored cursor of `network`, or None when it never saved one."""
        row = self._connection.execute(
            "SELECT chain_id, block_number, block_hash FROM chain_cursors WHERE network = ?", (network,)
        ).fetchone()
        if row is None:
            return None
        chain_id, block_number, block_hash = row
        return Cursor(chain_id=int(chain_id), block_number=int(block_number), block_hash=bytes(block_hash))

    def save(self, network: str, cursor: Cursor, connection: sqlite3.Connection | None = None) -> None:
        """Store `cursor` for `network`; with `connection`, inside the caller's open transaction."""
        target = connection if connection is not None else self._connection
        if connection is not None:
            target.execute(_SCHEMA)
        target.execute(
            "INSERT INTO chain_cursors (network, chain_id, block_number, block_hash, updated_at) "
            "VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT(network) DO UPDATE SET chain_id = excluded.chain_id, "
            "block_number = excluded.block_number, block_hash = excluded.block_hash, updated_at = excluded.updated_at",
            (network, cursor.chain_id, cursor.block_number, cursor.block_hash, time.time()),
        )

    def close(self) -> None:
        """Close the store's own connection."""
        self._connection.close()
