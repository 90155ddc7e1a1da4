"""Collateral claims: check a Groth16 proof against a certified root, then credit exactly once.

A claim is accepted only when every check passes, cheapest first:

1. the proof and public signals are well formed (counts, field ranges, curve and subgroup);
2. the proof is bound to this clearinghouse's domain;
3. the vault and token are ones the node set clears;
4. the root is one a quorum of the node set certified for that vault;
5. the nullifier has not been used (at this node, whichever node first saw it);
6. the proof verifies.

The nullifier is recorded in the node's SQLite file and the collateral credited in the same
step, so a node restarted at any moment neither loses a credit nor credits twice. Claims
gossiped by peers go through exactly the same checks: a peer's acceptance is not proof.
"""

from __future__ import annotations

import enum
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from crossclear.node.clearing import ClearingError, ClearingState
from crossclear.zk import ClaimPublicSignals, MalformedProof, Proof, VerificationKey, check_well_formed, get_backend
from crossclear.zk import parse_proof, parse_public_signals
from crossclear.zk.backends import Groth16Backend
from crossclear.zk.groth16 import proof_to_json
from crossclear.store import open_database


class RejectReason(enum.Enum):
    """Why a claim was refused; the API reports these codes."""

    MALFORMED = "malformed"
    WRONG_DOMAIN = "wrong_domain"
    UNKNOWN_COLLATERAL = "unknown_collateral"
    UNCERTIFIED_ROOT = "uncertified_root"
    NULLIFIER_USED = "nullifier_used"
    INVALID_PROOF = "invalid_proof"


@dataclass(frozen=True)
class ClaimOutcome:
    """The answer to one claim submission."""

    accepted: bool
    """True when the collateral was credited by this submission."""
    reason: RejectReason | None
    """Why it was refused (None when accepted)."""
    detail: str
    """One line for people."""
    claim: ClaimPublicSignals | None = None
    """The claim's public signals, when they could be read."""


@dataclass(frozen=True)
class CollateralToken:
    """A token some vault holds, and what it counts as in margin."""

    chain_id: int
    """Chain the vault and token live on."""
    vault: int
    """Vault address as uint160."""
    token: int
    """Token address as uint160."""
    asset: str
    """Asset name in the risk configuration (USDC, WETH...)."""
    decimals: int
    """Token decimals: an amount of 10**decimals base units is one unit of the asset."""


class CertifiedRoots(Protocol):
    """Answers whether a quorum of the node set certified a vault root."""

    def is_certified(self, chain_id: int, vault: int, root: int) -> bool: ...


@dataclass(frozen=True)
class ClaimRecord:
    """A credited claim as stored."""

    nullifier: int
    account: str
    chain_id: int
    asset: str
    amount: float
    accepted_at: float
    amount_units: int
    """The claimed amount in the token's smallest unit, exactly (from the public signals)."""


_SCHEMA = """
CREATE TABLE IF NOT EXISTS claims (
    nullifier TEXT PRIMARY KEY,
    account TEXT NOT NULL,
    chain_id INTEGER NOT NULL,
    asset TEXT NOT NULL,
    amount REAL NOT NULL,
    public_signals TEXT NOT NULL,
    proof TEXT NOT NULL,
    accepted_at REAL NOT NULL
)
"""


class ClaimLedger:
    """The nullifiers this node has credited, in the node's SQLite file."""

    def __init__(self, path: Path | str) -> None:
        self._connection = open_database(path, shared_across_threads=True)
        self._connection.execute(_SCHEMA)
        self._lock = threading.Lock()

    def record(self, claim: ClaimPublicSignals, proof: Proof, account: str, asset: str, amount: float) -> bool:
        """Store a credited claim; False when its nullifier was already there (nothing stored)."""
        with self._lock:
            try:
                self._connection.execute(
                    "INSERT INTO claims VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        str(claim.nullifier),
                        account,
                        claim.source_chain_id,
                        asset,
                        amount,
                        json.dumps(claim.to_json()),
                        json.dumps(proof_to_json(proof)),
                        time.time(),
                    ),
                )
            except sqlite3.IntegrityError:
                return False
            return True

    def used(self, nullifier: int) -> bool:
        with self._lock:
            row = self._connection.execute("SELECT 1 FROM claims WHERE nullifier = ?", (str(nullifier),)).fetchone()
            return row is not None

    _COLUMNS = "nullifier, account, chain_id, asset, amount, accepted_at, public_signals"

    @staticmethod
    def _record(row: Any) -> ClaimRecord:
        claimed_units = int(json.loads(row[6])[5])  # the claimed amount, in circuit order
        return ClaimRecord(int(row[0]), row[1], int(row[2]), row[3], float(row[4]), float(row[5]), claimed_units)

    def get(self, nullifier: int) -> ClaimRecord | None:
        with self._lock:
            row = self._connection.execute(f"SELECT {self._COLUMNS} FROM claims WHERE nullifier = ?", (str(nullifier),)).fetchone()
        return None if row is None else self._record(row)

    def all(self) -> list[ClaimRecord]:
        with self._lock:
            rows = self._connection.execute(f"SELECT {self._COLUMNS} FROM claims ORDER BY accepted_at").fetchall()
        return [self._record(row) for row in rows]

    def close(self) -> None:
        self._connection.close()


class ClaimProcessor:
    """Checks claims and credits accepted ones into the clearing state, once each."""

    def __init__(
        self,
        key: VerificationKey,
        domain: int,
        tokens: Mapping[tuple[int, int, int], CollateralToken],
        roots: CertifiedRoots,
        ledger: ClaimLedger,
        state: ClearingState,
        backend: Groth16Backend | None = None,
    ) -> None:
        """`tokens` is keyed by (chain id, vault, token) as uint160s."""
        self._key = key
        self._domain = domain
        self._tokens = dict(tokens)
        self._roots = roots
        self._ledger = ledger
        self._state = state
        self._backend = backend or get_backend()
        self._lock = threading.Lock()
        self.alarms: list[str] = []
        self.outcome_observers: list[Callable[[ClaimOutcome], None]] = []
        """Called with every outcome, whichever path the claim came by (metrics)."""

    def restore(self) -> int:
        """Credit every stored claim into a fresh clearing state (at start-up); returns the count.

        A stored claim the state refuses is reported in `alarms`; it never stops a start."""
        records = self._ledger.all()
        for record in records:
            try:
                self._state.credit_collateral(record.account, record.chain_id, record.asset, record.amount)
            except ClearingError as error:
                self.alarms.append(f"claim {record.nullifier} not restored: {error}")
        return len(records)

    def submit(self, proof_document: Any, public_document: Any) -> ClaimOutcome:
        """Check a claim in snarkjs JSON form and credit it if every check passes."""
        outcome = self._submit(proof_document, public_document)
        for observer in self.outcome_observers:
            observer(outcome)
        return outcome

    def _submit(self, proof_document: Any, public_document: Any) -> ClaimOutcome:
        try:
            proof = parse_proof(proof_document)
            signals = parse_public_signals(public_document)
            check_well_formed(self._key, proof, signals)
            claim = ClaimPublicSignals.from_signals(signals)
        except MalformedProof as error:
            return ClaimOutcome(False, RejectReason.MALFORMED, str(error))
        if claim.claimed_amount == 0:
            return ClaimOutcome(False, RejectReason.MALFORMED, "claimed amount is 0: nothing to credit", claim)
        if claim.domain != self._domain:
            return ClaimOutcome(False, RejectReason.WRONG_DOMAIN, f"proof is bound to domain {claim.domain}, this clearinghouse is {self._domain}", claim)
        token = self._tokens.get((claim.source_chain_id, claim.vault, claim.asset))
        if token is None:
            return ClaimOutcome(
                False,
                RejectReason.UNKNOWN_COLLATERAL,
                f"no vault {claim.vault:#042x} holding token {claim.asset:#042x} on chain {claim.source_chain_id} is cleared here",
                claim,
            )
        if not self._roots.is_certified(claim.source_chain_id, claim.vault, claim.root):
            return ClaimOutcome(False, RejectReason.UNCERTIFIED_ROOT, f"root {claim.root} of chain {claim.source_chain_id} has no quorum certificate", claim)
        if self._ledger.used(claim.nullifier):
            return ClaimOutcome(False, RejectReason.NULLIFIER_USED, f"nullifier {claim.nullifier} was already claimed", claim)
        if not self._backend.verify(self._key, proof, signals):
            return ClaimOutcome(False, RejectReason.INVALID_PROOF, "the proof does not verify against the claim's public signals", claim)
        account = f"{claim.account:#042x}"
        amount = claim.claimed_amount / 10**token.decimals
        # Record and credit under one lock: the ledger's primary key settles a race between
        # two submissions of one nullifier, and only the winner credits.
        with self._lock:
            if not self._ledger.record(claim, proof, account, token.asset, amount):
                return ClaimOutcome(False, RejectReason.NULLIFIER_USED, f"nullifier {claim.nullifier} was already claimed", claim)
            self._state.credit_collateral(account, claim.source_chain_id, token.asset, amount)
        return ClaimOutcome(True, None, f"credited {amount:g} {token.asset} on chain {claim.source_chain_id} to {account}", claim)

    def get(self, nullifier: int) -> ClaimRecord | None:
        """A credited claim by nullifier."""
        return self._ledger.get(nullifier)
