"""ClaimService: submit a collateral claim, read a credited one.

Proof checks (about a millisecond with the native verifier, ~0.3 s with py_ecc) run on a
worker thread so the event loop keeps answering other calls meanwhile; a claim that passes
goes to the processor, which credits it once.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from crossclear.node.claims import ClaimChecker, ClaimOutcome, RejectReason, VerifiedClaim
from crossclear.store import ClaimRow
from crossclear.v1 import claim_pb2, claim_pb2_grpc

#: A snarkjs proof.json is under 1 KiB; anything far larger is not a proof.
MAX_PROOF_JSON_BYTES = 16 * 1024
MAX_SIGNAL_DIGITS = 100

_STATUS = {
    None: claim_pb2.CLAIM_STATUS_ACCEPTED,
    RejectReason.MALFORMED: claim_pb2.CLAIM_STATUS_MALFORMED,
    RejectReason.INVALID_PROOF: claim_pb2.CLAIM_STATUS_INVALID_PROOF,
    RejectReason.UNCERTIFIED_ROOT: claim_pb2.CLAIM_STATUS_UNCERTIFIED_ROOT,
    RejectReason.NULLIFIER_USED: claim_pb2.CLAIM_STATUS_NULLIFIER_USED,
    RejectReason.WRONG_DOMAIN: claim_pb2.CLAIM_STATUS_WRONG_DOMAIN,
    RejectReason.UNKNOWN_COLLATERAL: claim_pb2.CLAIM_STATUS_UNKNOWN_COLLATERAL,
}

#: Called with (proof document, public signals) after this node credited a claim, so the
#: node can gossip it to its peers (who check it themselves).
AcceptedHook = Callable[[Any, list[str]], None]


class ClaimServicer(claim_pb2_grpc.ClaimServiceServicer):
    """Claims from integrators."""

    def __init__(
        self,
        checker: ClaimChecker,
        credit: Callable[[VerifiedClaim], Awaitable[ClaimOutcome]],
        lookup: Callable[[int], tuple[ClaimRow, int] | None],
        height: Callable[[], int],
        on_accepted: AcceptedHook | None = None,
    ) -> None:
        """`credit` hands a checked claim to the processor; `lookup(nullifier)` reads a credited
        claim and its token's decimals."""
        self._checker = checker
        self._credit = credit
        self._lookup = lookup
        self._height = height
        self._on_accepted = on_accepted

    async def SubmitClaim(self, request: claim_pb2.SubmitClaimRequest, context: Any) -> claim_pb2.SubmitClaimResponse:
        if len(request.proof_json) > MAX_PROOF_JSON_BYTES:
            return claim_pb2.SubmitClaimResponse(status=claim_pb2.CLAIM_STATUS_MALFORMED, detail=f"proof_json is over {MAX_PROOF_JSON_BYTES} bytes")
        if any(len(signal) > MAX_SIGNAL_DIGITS for signal in request.public_signals):
            return claim_pb2.SubmitClaimResponse(status=claim_pb2.CLAIM_STATUS_MALFORMED, detail=f"a public signal is over {MAX_SIGNAL_DIGITS} characters")
        try:
            proof_document = json.loads(request.proof_json)
        except ValueError as error:
            return claim_pb2.SubmitClaimResponse(status=claim_pb2.CLAIM_STATUS_MALFORMED, detail=f"proof_json is not JSON: {error}")
        signals = list(request.public_signals)
        checked = await asyncio.to_thread(self._checker.check, proof_document, signals)
        outcome = await self._credit(checked) if isinstance(checked, VerifiedClaim) else checked
        response = claim_pb2.SubmitClaimResponse(status=_STATUS[outcome.reason], detail=outcome.detail, state_height=self._height())
        if outcome.claim is not None:
            response.nullifier = str(outcome.claim.nullifier)
            response.account = f"{outcome.claim.account:#042x}"
        if outcome.accepted and self._on_accepted is not None:
            self._on_accepted(proof_document, signals)
        return response

    async def GetClaim(self, request: claim_pb2.GetClaimRequest, context: Any) -> claim_pb2.Claim:
        if not (request.nullifier.isascii() and request.nullifier.isdigit()) or len(request.nullifier) > MAX_SIGNAL_DIGITS:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "nullifier must be a decimal number")
        found = self._lookup(int(request.nullifier))
        if found is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no credited claim has nullifier {request.nullifier}")
        assert found is not None
        record, decimals = found
        return claim_pb2.Claim(
            nullifier=str(record.nullifier),
            account=record.account,
            chain_id=record.chain_id,
            asset=record.asset,
            amount_units=str(record.amount),
            decimals=decimals,
        )
