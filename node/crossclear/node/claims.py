"""Collateral claims: check a Groth16 proof against a certified root, cheapest checks first.

1. the proof and public signals are well formed (counts, field ranges; no curve arithmetic);
2. the proof is bound to this clearinghouse's domain;
3. the vault and token are ones the node set clears;
4. the root is one a quorum of the node set certified for that vault;
5. the nullifier has not been credited here;
6. the proof verifies (curve and subgroup checks inside the backend).

Checking runs off the event loop and changes nothing. A claim that passes goes to the
processor, which credits it (nullifier recorded and collateral credited in one transaction)
unless the nullifier was credited meanwhile. Claims gossiped by peers go through exactly the
same checks: a peer's acceptance is not proof.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from crossclear.zk import ClaimPublicSignals, MalformedProof, VerificationKey, check_well_formed, get_backend
from crossclear.zk import parse_proof, parse_public_signals
from crossclear.zk.backends import Groth16Backend
from crossclear.zk.groth16 import proof_to_json


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


@dataclass(frozen=True)
class VerifiedClaim:
    """A claim that passed every check; the processor credits it once."""

    claim: ClaimPublicSignals
    """Its public signals."""
    token: CollateralToken
    """The collateral it credits."""
    proof_json: str
    """The proof, canonical JSON (stored with the credit)."""
    signals_json: str
    """The public signals, JSON (stored with the credit)."""

    @property
    def account(self) -> str:
        return f"{self.claim.account:#042x}"


class CertifiedRoots(Protocol):
    """Answers whether a quorum of the node set certified a vault root."""

    def is_root_certified(self, chain_id: int, vault: int, root: int) -> bool: ...


class ClaimChecker:
    """Runs every check of a claim; never changes state (safe on any thread)."""

    def __init__(
        self,
        key: VerificationKey,
        domain: int,
        tokens: Mapping[tuple[int, int, int], CollateralToken],
        roots: CertifiedRoots,
        credited: Callable[[int], bool],
        backend: Groth16Backend | None = None,
    ) -> None:
        """`tokens` is keyed by (chain id, vault, token) as uint160s; `credited(nullifier)`
        says whether this node already credited a nullifier."""
        self._key = key
        self._domain = domain
        self._tokens = dict(tokens)
        self._roots = roots
        self._credited = credited
        self._backend = backend or get_backend()

    def check(self, proof_document: Any, public_document: Any) -> VerifiedClaim | ClaimOutcome:
        """A VerifiedClaim when every check passes, else the refusal."""
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
        if not self._roots.is_root_certified(claim.source_chain_id, claim.vault, claim.root):
            return ClaimOutcome(False, RejectReason.UNCERTIFIED_ROOT, f"root {claim.root} of chain {claim.source_chain_id} has no quorum certificate", claim)
        if self._credited(claim.nullifier):
            return ClaimOutcome(False, RejectReason.NULLIFIER_USED, f"nullifier {claim.nullifier} was already claimed", claim)
        try:
            valid = self._backend.verify(self._key, proof, signals)
        except MalformedProof as error:  # off the curve or outside the subgroup: found by the backend
            return ClaimOutcome(False, RejectReason.MALFORMED, str(error), claim)
        if not valid:
            return ClaimOutcome(False, RejectReason.INVALID_PROOF, "the proof does not verify against the claim's public signals", claim)
        return VerifiedClaim(claim, token, json.dumps(proof_to_json(proof)), json.dumps(claim.to_json()))


def credited_detail(verified: VerifiedClaim) -> str:
    """The one line an accepted claim reports."""
    units = verified.claim.claimed_amount
    decimals = verified.token.decimals
    return f"credited {units / 10**decimals:g} {verified.token.asset} ({units} base units) on chain {verified.claim.source_chain_id} to {verified.account}"
