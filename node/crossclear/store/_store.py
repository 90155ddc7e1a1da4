"""SQLite persistence for observations, signatures, certificates, evidence and cursors.

WAL mode with synchronous=NORMAL: a commit is in the WAL (the OS page cache) before it
returns, so a node *process* killed at any moment restarts with every certificate it had
reported (tests/store/test_store.py kills a writer with SIGKILL to prove it). Only a power
loss could roll back the last few commits, never corrupt the file; FULL would add an fsync
per gossip batch (milliseconds each here), and what a power loss takes back is re-fetched from
peers over Sync. Callers group writes in `transaction()` so one gossip batch is one commit.

Storage is bounded by pruning (`prune`): below a depth under the node's head, signatures whose
observation is certified (the certificate holds a quorum of them) and other members'
uncertified signatures are deleted, with observations nothing refers to any more. Freed pages
are reused, and the WAL is truncated after checkpoints (`journal_size_limit`), so the file
stops growing once a flood is at its budget.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from crossclear.store._database import Transactions, open_database
from crossclear.store._schema import SCHEMA

#: Commits from this connection checkpoint the WAL once it holds this many pages (SQLite's
#: default is 1000, 4 MB), and the WAL is cut back to WAL_SIZE_LIMIT_BYTES afterwards (SQLite
#: otherwise keeps it at its peak size): the files on disk stay near the database's own size.
WAL_CHECKPOINT_PAGES = 256
WAL_SIZE_LIMIT_BYTES = 1024 * 1024

_NOT_CERTIFIED = "NOT EXISTS (SELECT 1 FROM attest_certificates c WHERE c.digest = attest_signatures.digest)"


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
        self.transaction = Transactions(self._connection, on_rollback=self._forget_pending)
        self._connection.executescript(SCHEMA)
        self._connection.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT_BYTES}")
        self._connection.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_PAGES}")
        # Uncertified signatures held per signer, loaded on first use and kept in step with
        # every write here (a rollback drops it, to be counted again).
        self._pending: dict[bytes, int] | None = None
        self._kept_evidence: dict[bytes, int] | None = None

    def close(self) -> None:
        self._connection.close()

    # `with store.transaction():` groups writes into one commit (nested use joins the outer one).

    def _forget_pending(self) -> None:
        self._pending = None
        self._kept_evidence = None

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
        self, signature: StoredSignature, observation: StoredObservation, now_ms: int, *, pending: bool = True
    ) -> bool:
        """Store a signature unless its signer already holds one in this slot; True when stored.
        `pending`: its observation is not certified (it counts in the signer's storage share)."""
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
        stored = cursor.rowcount == 1
        if stored and pending:
            tally = self._pending_tally()
            tally[signature.signer] = tally.get(signature.signer, 0) + 1
        return stored

    def _pending_tally(self) -> dict[bytes, int]:
        if self._pending is None:
            self._pending = dict(
                self._connection.execute(
                    f"SELECT signer, COUNT(*) FROM attest_signatures WHERE {_NOT_CERTIFIED} GROUP BY signer"
                ).fetchall()
            )
        return self._pending

    def pending_count(self, signer: bytes) -> int:
        """Signatures by `signer` held over observations not certified here."""
        return self._pending_tally().get(signer, 0)

    def holds_signature(self, digest: bytes, signature: bytes) -> bool:
        return (
            self._connection.execute(
                "SELECT 1 FROM attest_signatures WHERE digest = ? AND signature = ?", (digest, signature)
            ).fetchone()
            is not None
        )

    def lowest_pending_block(self, signer: bytes, chain_id: int) -> int | None:
        """The lowest block of a chain where `signer` holds a signature not certified here."""
        row = self._connection.execute(
            f"SELECT MIN(block_number) FROM attest_signatures WHERE signer = ? AND chain_id = ? AND {_NOT_CERTIFIED}",
            (signer, chain_id),
        ).fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def prune(self, chain_id: int, below_block: int, keep_signer: bytes, certified_below: int | None = None) -> int:
        """Delete what no longer needs a row on one chain: below `certified_below` (default
        `below_block`) the signatures of certified observations (their certificate holds a
        quorum of them); below `below_block` the uncertified signatures of every signer but
        `keep_signer` (this node keeps its own, so peers can still finish those quorums after a
        long partition); and observations no signature refers to. Certificates and evidence
        stay. Returns the rows deleted."""
        certified_below = below_block if certified_below is None else certified_below
        tally = self._pending_tally()
        for signer, count in self._connection.execute(
            "SELECT signer, COUNT(*) FROM attest_signatures WHERE chain_id = ? AND block_number < ? AND signer != ?"
            f" AND {_NOT_CERTIFIED} GROUP BY signer",
            (chain_id, below_block, keep_signer),
        ).fetchall():
            left = tally.get(signer, 0) - count
            if left > 0:
                tally[signer] = left
            else:
                tally.pop(signer, None)
        signatures = self._connection.execute(
            f"DELETE FROM attest_signatures WHERE chain_id = ? AND block_number < ? AND signer != ? AND {_NOT_CERTIFIED}",
            (chain_id, below_block, keep_signer),
        ).rowcount
        signatures += self._connection.execute(
            f"DELETE FROM attest_signatures WHERE chain_id = ? AND block_number < ? AND NOT {_NOT_CERTIFIED}",
            (chain_id, certified_below),
        ).rowcount
        observations = self._connection.execute(
            "DELETE FROM attest_observations WHERE chain_id = ? AND block_number < ?"
            " AND NOT EXISTS (SELECT 1 FROM attest_signatures s WHERE s.digest = attest_observations.digest)",
            (chain_id, max(below_block, certified_below)),
        ).rowcount
        return signatures + observations

    def logical_bytes(self) -> int:
        """The database's size in pages, whether they sit in the file yet or still in the WAL."""
        pages: int = self._connection.execute("PRAGMA page_count").fetchone()[0]
        page_size: int = self._connection.execute("PRAGMA page_size").fetchone()[0]
        return pages * page_size

    def size_bytes(self) -> int:
        """The database file and its WAL, in bytes."""
        return sum(path.stat().st_size for path in (self.path, Path(f"{self.path}-wal")) if path.exists())

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
        tally = self._pending_tally()
        for (signer,) in self._connection.execute("SELECT signer FROM attest_signatures WHERE digest = ?", (digest,)):
            left = tally.get(signer, 0) - 1
            if left > 0:
                tally[signer] = left
            else:
                tally.pop(signer, None)
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
        """Store one piece of evidence; False when this signer already has evidence on file
        for the slot (one proves the offence; more would let an equivocator fill the disk).
        Empty `evidence` records the slot only (the signer's kept evidence is at its cap)."""
        slot = (signer, observation.kind, observation.chain_id, observation.emitter, observation.block_number)
        cursor = self._connection.execute(
            "INSERT OR IGNORE INTO attest_evidence SELECT ?, ?, ?, ?, ?, ?, ?, ? WHERE NOT EXISTS"
            " (SELECT 1 FROM attest_evidence WHERE signer = ? AND kind = ? AND chain_id = ? AND emitter = ?"
            " AND block_number = ?)",
            (*slot, second_digest, evidence, now_ms, *slot),
        )
        stored = cursor.rowcount == 1
        if stored and evidence:
            kept = self._kept_evidence_tally()
            kept[signer] = kept.get(signer, 0) + 1
        return stored

    def _kept_evidence_tally(self) -> dict[bytes, int]:
        if self._kept_evidence is None:
            self._kept_evidence = dict(
                self._connection.execute(
                    "SELECT signer, COUNT(*) FROM attest_evidence WHERE length(evidence) > 0 GROUP BY signer"
                ).fetchall()
            )
        return self._kept_evidence

    def kept_evidence_count(self, signer: bytes) -> int:
        """Pieces of evidence against `signer` held with both signed messages."""
        return self._kept_evidence_tally().get(signer, 0)

    def has_evidence_at_slot(self, signer: bytes, kind: int, chain_id: int, emitter: bytes, block_number: int) -> bool:
        return (
            self._connection.execute(
                "SELECT 1 FROM attest_evidence WHERE signer = ? AND kind = ? AND chain_id = ? AND emitter = ?"
                " AND block_number = ?",
                (signer, kind, chain_id, emitter, block_number),
            ).fetchone()
            is not None
        )

    def evidence_count(self) -> int:
        count: int = self._connection.execute("SELECT COUNT(*) FROM attest_evidence").fetchone()[0]
        return count

    def evidence_by_signer(self) -> dict[bytes, int]:
        return dict(self._connection.execute("SELECT signer, COUNT(*) FROM attest_evidence GROUP BY signer").fetchall())

    def evidence(self) -> list[bytes]:
        """Serialized EquivocationEvidence messages, oldest first (slots recorded beyond a
        signer's cap have none and are left out)."""
        return [
            row[0]
            for row in self._connection.execute(
                "SELECT evidence FROM attest_evidence WHERE length(evidence) > 0 ORDER BY recorded_ms"
            )
        ]

    # --- adapter cursors -------------------------------------------------------------------

    def cursor(self, name: str) -> int | None:
        row = self._connection.execute("SELECT value FROM attest_cursors WHERE name = ?", (name,)).fetchone()
        return None if row is None else int(row[0])

    def set_cursor(self, name: str, value: int) -> None:
        self._connection.execute(
            "INSERT INTO attest_cursors VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = excluded.value",
            (name, value),
        )
