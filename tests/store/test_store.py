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


def _signed(key_index: int, block: int, root_byte: int = 0xAB, chain_id: int = 31337):  # type: ignore[no-untyped-def]
    from crossclear.attest import SigningDomain, sign_observation

    from ..attest.helpers import KEYS, observation

    return sign_observation(KEYS[key_index], SigningDomain(), observation(block=block, root_byte=root_byte, chain_id=chain_id))


def test_pruning_keeps_certificates_evidence_and_own_signatures(tmp_path: Path) -> None:
    from crossclear.attest import ingest

    from ..attest.helpers import KEYS, node_set

    members = node_set(4)
    store = AttestationStore(tmp_path / "node.sqlite")
    own = KEYS[0].address
    for block in range(1, 11):
        ingest(store, members, [_signed(k, block) for k in range(3)], 1, own=own)  # certified
    ingest(store, members, [_signed(0, 11), _signed(1, 12), _signed(2, 12, 0xCD)], 1, own=own)  # pending
    ingest(store, members, [_signed(1, 12, 0xEE)], 1, own=own)  # an equivocation
    ingest(store, members, [_signed(1, 3, chain_id=5)], 1, own=own)  # another chain
    assert store.pending_count(KEYS[1].address) == 2
    with store.transaction():
        deleted = store.prune(31337, 13, own)
    assert deleted > 0
    assert store.certificate_count() == 10 and store.evidence_count() == 1
    assert store.pending_count(KEYS[1].address) == 1  # the other chain's is untouched
    assert store.lowest_pending_block(own, 31337) == 11  # its own uncertified one stays
    rows = sqlite3.connect(tmp_path / "node.sqlite").execute(
        "SELECT chain_id, block_number, signer FROM attest_signatures ORDER BY chain_id"
    ).fetchall()
    assert rows == [(5, 3, KEYS[1].address), (31337, 11, own)]
    observations = sqlite3.connect(tmp_path / "node.sqlite").execute("SELECT COUNT(*) FROM attest_observations").fetchone()[0]
    assert observations == 2
    store.close()
    # The tally is rebuilt from the rows on the next open.
    reopened = AttestationStore(tmp_path / "node.sqlite")
    assert reopened.pending_count(KEYS[1].address) == 1 and reopened.pending_count(own) == 1
    reopened.close()


def test_a_signer_over_its_share_is_dropped_and_evidence_is_kept_once_per_slot(tmp_path: Path) -> None:
    from crossclear.attest import ingest

    from ..attest.helpers import KEYS, node_set

    members = node_set(4)
    store = AttestationStore(tmp_path / "node.sqlite")
    report = ingest(store, members, [_signed(3, block) for block in range(1, 8)], 1, storage_share=5, own=KEYS[0].address)
    assert (report.counted, report.over_share) == (5, 2)
    own = ingest(store, members, [_signed(0, block) for block in range(1, 8)], 1, storage_share=5, own=KEYS[0].address)
    assert own.over_share == 0  # a node never drops its own
    variants = [_signed(3, 1, root_byte) for root_byte in range(1, 50)]
    flood = ingest(store, members, variants, 1, storage_share=5, own=KEYS[0].address)
    assert flood.equivocations == 1 and store.evidence_count() == 1
    # Refused signatures left no observation rows behind.
    observations = sqlite3.connect(tmp_path / "node.sqlite").execute("SELECT COUNT(*) FROM attest_observations").fetchone()[0]
    assert observations == 7
    store.close()


def test_beyond_the_cap_an_equivocation_records_its_slot_only(tmp_path: Path) -> None:
    from crossclear.attest import ingest

    from ..attest.helpers import KEYS, node_set

    members = node_set(4)
    store = AttestationStore(tmp_path / "node.sqlite")
    ingest(store, members, [_signed(3, block) for block in range(1, 11)], 1)
    report = ingest(store, members, [_signed(3, block, 0x01) for block in range(1, 11)], 1, evidence_cap=4)
    assert report.equivocations == 10 and store.evidence_by_signer() == {KEYS[3].address: 10}
    assert len(store.evidence()) == 4 and store.kept_evidence_count(KEYS[3].address) == 4
    store.close()
