"""Cursor persistence in a shared SQLite file."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from crossclear.chains import Cursor
from crossclear.chains.cursor_store import CursorStore


def test_save_load_and_overwrite(tmp_path: Path) -> None:
    store = CursorStore(tmp_path / "node.sqlite")
    assert store.load("a") is None
    store.save("a", Cursor(7, 10, b"\x01" * 32))
    store.save("b", Cursor(8, 3, b"\x02" * 32))
    store.save("a", Cursor(7, 11, b"\x03" * 32))
    store.close()
    reopened = CursorStore(tmp_path / "node.sqlite")
    assert reopened.load("a") == Cursor(7, 11, b"\x03" * 32)
    assert reopened.load("b") == Cursor(8, 3, b"\x02" * 32)
    reopened.close()


def test_creates_only_its_own_table_and_keeps_others(tmp_path: Path) -> None:
    path = tmp_path / "node.sqlite"
    with sqlite3.connect(path) as other:
        other.execute("CREATE TABLE certificates (id INTEGER PRIMARY KEY, body BLOB)")
        other.execute("INSERT INTO certificates (body) VALUES (x'00')")
    store = CursorStore(path)
    store.save("a", Cursor(1, 1, b"\x00" * 32))
    store.close()
    with sqlite3.connect(path) as check:
        tables = {row[0] for row in check.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert tables == {"certificates", "chain_cursors"}
        assert check.execute("SELECT count(*) FROM certificates").fetchone() == (1,)


def test_save_inside_a_rolled_back_transaction_keeps_the_old_cursor(tmp_path: Path) -> None:
    path = tmp_path / "node.sqlite"
    store = CursorStore(path)
    store.save("a", Cursor(1, 5, b"\x05" * 32))
    consumer = sqlite3.connect(path, isolation_level=None)
    consumer.execute("BEGIN")
    store.save("a", Cursor(1, 6, b"\x06" * 32), connection=consumer)
    consumer.execute("ROLLBACK")  # the consumer crashed before committing what it handled
    consumer.close()
    assert store.load("a") == Cursor(1, 5, b"\x05" * 32)
    store.close()
