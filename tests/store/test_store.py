import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from crossclear.store import AttestationStore, StoredObservation

_ROW = StoredObservation(1, 31337, b"\x01" * 20, 5, b"\x02" * 32, b"\x03" * 32, 5)


def test_only_attest_tables_are_created_and_other_tables_are_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "node.sqlite"
    with sqlite3.connect(path) as other:
        other.execute("CREATE TABLE margin_accounts (id INTEGER PRIMARY KEY, name TEXT)")
        other.execute("INSERT INTO margin_accounts (name) VALUES ('kept')")
    store = AttestationStore(path)
    store.close()
    AttestationStore(path).close()  # opening twice is harmless
    with sqlite3.connect(path) as check:
        tables = {row[0] for row in check.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert check.execute("SELECT name FROM margin_accounts").fetchall() == [("kept",)]
        assert check.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert {t for t in tables if not t.startswith("sqlite_")} == {
        "margin_accounts",
        "attest_observations",
        "attest_signatures",
        "attest_certificates",
        "attest_evidence",
        "attest_cursors",
    }


def test_failed_transaction_leaves_nothing_behind(tmp_path: Path) -> None:
    store = AttestationStore(tmp_path / "node.sqlite")
    try:
        with store.transaction():
            store.insert_observation(b"\x09" * 32, _ROW, 1)
            store.set_cursor("synthetic:1", 10)
            raise RuntimeError("crash in the middle")
    except RuntimeError:
        pass
    assert store.observation(b"\x09" * 32) is None
    assert store.cursor("synthetic:1") is None
    store.close()


_WRITER = textwrap.dedent(
    """
    import sys
    from crossclear.store import AttestationStore
    store = AttestationStore(sys.argv[1])
    n = 0
    while True:
        n += 1
        with store.transaction():
            store.insert_certificate(n.to_bytes(32, "big"), 1, n, b"certificate", n)
            store.set_cursor("written", n)
        print(n, flush=True)
    """
)


def test_a_killed_writer_loses_no_committed_certificate(tmp_path: Path) -> None:
    path = tmp_path / "node.sqlite"
    writer = subprocess.Popen([sys.executable, "-c", _WRITER, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout is not None
        reported = 0
        deadline = time.monotonic() + 20
        while reported < 200 and time.monotonic() < deadline:
            reported = int(writer.stdout.readline())
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=10)
        for line in writer.stdout:  # commits reported just before the kill count too
            if line.strip():
                reported = int(line)
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.wait()
    assert reported >= 200
    store = AttestationStore(path)
    assert store.certificate_count() >= reported
    held = store.cursor("written")
    assert held is not None and held >= reported
    # Every certificate up to the cursor is there: no torn transaction.
    assert store.certificate_count() == held
    store.close()
