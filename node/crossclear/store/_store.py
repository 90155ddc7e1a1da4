"""SQLite persistence for observations, signatures, certificates, evidence and cursors.

WAL mode with synchronous=NORMAL: a commit is in the WAL (the OS page cache) before it
returns, so a node *process* killed at any moment restarts with every certificate it had
reported (tests/store/test_store.py kills a writer with SIGKILL to prove it). Only a power
loss could roll back the last few commits, never corrupt the file; FULL would add an fsync
per gossip batch (milliseconds each here), and what a power loss takes back is re-fetched from
peers over Sync. Callers group writes in `transaction()` so one gossip batch is one commit.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from crossclear.store._database import open_database
from crossclear.store._schema import SCHEMA


@dataclass(frozen=True, slots=True)
class StoredSignature:
    """A signature row: which observation, who signed, the signature bytes."""

    digest: bytes
    """EIP-712 digest of the observation signed."""
    signer: bytes
    """20-byte signer address (recovered when it was stored)."""
    signature: bytes
    """65-byte r || s || v."""


@dataclass(frozen=True, slots=True)
class StoredObservation:
    """An observation row, in the plain fields the attest layer rebuilds an Observation from."""

    kind: int
    """ObservationKind value."""
    chain_id: int
    """Observed chain."""
    emitter: bytes
    """Contract address."""
    block_number: int
    """Block number."""
    block_hash: bytes
    """Block hash."""
    root: bytes
    """Root or event digest."""
    leaf_count: int
    """Leaf or event count."""


@dataclass(frozen=True, slots=True)
class ChainProgressRow:
    """Certificates held for one chain."""

    chain_id: int
    """Observed chain."""
    highest_certified_block: int
    """Highest block number with a certificate."""
    certificate_count: int
    """How many certificates for this chain."""


class AttestationStore:
    """One node's attestation tables inside its SQLite file (path chosen by the caller)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, so a transaction spans
        # exactly one `transaction()` block and nothing commits implicitly.
        self._connection = open_database(self.path, synchronous="NORMAL")
        self._connection.executescript(SCHEMA)
        self._depth = 0

    def close(self) -> None:
        self._connection.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All writes inside commit together or not at all; nested use joins the outer one."""
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
            self._connection.execute("ROLLBACK")
            raise
        self._depth = 0
        self._connection.execute("COMMIT")

    # --- observations and signatures -----------------------------------------------------

    def insert_observation(self, digest: bytes, observation: StoredObservation, now_ms: int) -> None:
        self._connection.execute(
            "INSERT OR IGNORE INTO attest_observations VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                digest,
                observation.kind,
                observation.chain_id,
                observation.emitter,
                observation.block_number,
                observation.block_hash,
                observation.root,
                observation.leaf_count,
                now_ms,
            ),
        )

    def observation(self, digest: bytes) -> StoredObservation | None:
        row = self._connection.execute(
            "SELECT kind, chain_id, emitter, block_number, block_hash, root, leaf_count"
            " FROM attest_observations WHERE digest = ?",
            (digest,),
        ).fetchone()
        return None if row is None else StoredObservation(*row)

    def signature_at_slot(
        self, signer: bytes, kind: int, chain_id: int, emitter: bytes, block_number: int
    ) -> StoredSignature | None:
        row = self._connection.execute(
            "SELECT digest, signer, signature FROM attest_signatures"
            " WHERE signer = ? AND kind = ? AND chain_id = ? AND emitter = ? AND block_number = ?",
            (signer, kind, chain_id, emitter, block_number),
        ).fetchone()
        return None if row is None else StoredSignature(*row)

    def insert_signature(
        self, signature: StoredSignature, observation: StoredObservation, now_ms: int
    ) -> bool:
        """Store a signature unless its signer already holds one in this slot; True when stored."""
        cursor = self._connection.execute(
            "INSERT OR IGNORE INTO attest_signatures VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                signature.signer,
                observation.kind,
                observation.chain_id,
                observation.emitter,
                observation.block_number,
                signature.digest,
                signature.signature,
                now_ms,
            ),
        )
        return cursor.rowcount == 1

    def signature_count(self, digest: bytes) -> int:
        count: int = self._connection.execute(
            "SELECT COUNT(*) FROM attest_signatures WHERE digest = ?", (digest,)
        ).fetchone()[0]
        return count

    def signatures_for(self, digest: bytes) -> list[StoredSignature]:
        rows = self._connection.execute(
            "SELECT digest, signer, signature FROM attest_signatures WHERE digest = ? ORDER BY signer", (digest,)
        ).fetchall()
        return [StoredSignature(*row) for row in rows]

    def pending_signatures(self, chain_id: int, from_block: int, limit: int) -> list[tuple[StoredObservation, bytes]]:
        """Signatures (with their observation) of this chain from a block on, not yet certified here."""
        rows = self._connection.execute(
            "SELECT o.kind, o.chain_id, o.emitter, o.block_number, o.block_hash, o.root, o.leaf_count, s.signature"
            " FROM attest_signatures s JOIN attest_observations o ON o.digest = s.digest"
            " WHERE s.chain_id = ? AND s.block_number >= ?"
            " AND NOT EXISTS (SELECT 1 FROM attest_certificates c WHERE c.digest = s.digest)"
            " ORDER BY s.block_number, s.digest, s.signer LIMIT ?",
            (chain_id, from_block, limit),
        ).fetchall()
        return [(StoredObservation(*row[:7]), row[7]) for row in rows]

    # --- certificates ----------------------------------------------------------------------

    def has_certificate(self, digest: bytes) -> bool:
        return (
            self._connection.execute("SELECT 1 FROM attest_certificates WHERE digest = ?", (digest,)).fetchone()
            is not None
        )

    def insert_certificate(self, digest: bytes, chain_id: int, block_number: int, certificate: bytes, now_ms: int) -> None:
        self._connection.execute(
            "INSERT INTO attest_certificates (digest, chain_id, block_number, certified_ms, certificate)"
            " VALUES (?, ?, ?, ?, ?)",
            (digest, chain_id, block_number, now_ms, certificate),
        )

    def certificates(self, chain_id: int, from_block: int, limit: int) -> list[bytes]:
        """Serialized QuorumCertificates of one chain from a block on, in block order."""
        rows = self._connection.execute(
            "SELECT certificate FROM attest_certificates WHERE chain_id = ? AND block_number >= ?"
            " ORDER BY block_number, digest LIMIT ?",
            (chain_id, from_block, limit),
        ).fetchall()
        return [row[0] for row in rows]

    def certificate(self, digest: bytes) -> bytes | None:
        row = self._connection.execute(
            "SELECT certificate FROM attest_certificates WHERE digest = ?", (digest,)
        ).fetchone()
        return None if row is None else bytes(row[0])

    def certified_digests(self) -> set[bytes]:
        return {row[0] for row in self._connection.execute("SELECT digest FROM attest_certificates")}

    def certified_times_ms(self) -> dict[bytes, int]:
        return dict(self._connection.execute("SELECT digest, certified_ms FROM attest_certificates").fetchall())

    def certificate_count(self) -> int:
        count: int = self._connection.execute("SELECT COUNT(*) FROM attest_certificates").fetchone()[0]
        return count

    def chain_progress(self) -> list[ChainProgressRow]:
        rows = self._connection.execute(
            "SELECT chain_id, MAX(block_number), COUNT(*) FROM attest_certificates GROUP BY chain_id ORDER BY chain_id"
        ).fetchall()
        return [ChainProgressRow(*row) for row in rows]

    # --- evidence --------------------------------------------------------------------------

    def insert_evidence(
        self,
        signer: bytes,
        observation: StoredObservation,
        second_digest: bytes,
        evidence: bytes,
        now_ms: int,
    ) -> bool:
        """Store one piece of evidence; False when the same conflict was already on file."""
        cursor = self._connection.execute(
            "INSERT OR IGNORE INTO attest_evidence VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                signer,
                observation.kind,
                observation.chain_id,
                observation.emitter,
                observation.block_number,
                second_digest,
                evidence,
                now_ms,
            ),
        )
        return cursor.rowcount == 1

    def evidence_count(self) -> int:
        count: int = self._connection.execute("SELECT COUNT(*) FROM attest_evidence").fetchone()[0]
        return count

    def evidence_by_signer(self) -> dict[bytes, int]:
        return dict(self._connection.execute("SELECT signer, COUNT(*) FROM attest_evidence GROUP BY signer").fetchall())

    def evidence(self) -> list[bytes]:
        """Serialized EquivocationEvidence messages, oldest first."""
        return [row[0] for row in self._connection.execute("SELECT evidence FROM attest_evidence ORDER BY recorded_ms")]

    # --- adapter cursors -------------------------------------------------------------------

    def cursor(self, name: str) -> int | None:
        row = self._connection.execute("SELECT value FROM attest_cursors WHERE name = ?", (name,)).fetchone()
        return None if row is None else int(row[0])

    def set_cursor(self, name: str, value: int) -> None:
        self._connection.execute(
            "INSERT INTO attest_cursors VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = excluded.value",
            (name, value),
        )
