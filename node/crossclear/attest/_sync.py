"""The Sync gRPC service: serving what this node holds, and catching up from peers.

Serving is read-only and bounded (page limits, chain ids checked). Catching up treats every
answer as a claim to check: each certificate's signatures are recovered and counted here, so a
lying peer can withhold data but never make this node certify anything.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

import grpc

from crossclear.attest._aggregator import IngestReport, ingest, observation_from_stored
from crossclear.attest._eip712 import SigningDomain, observation_digest
from crossclear.attest._node_set import NodeSet
from crossclear.attest._observation import MalformedObservation, Observation
from crossclear.attest._verify import Rejected, VerifiedSignature, verify_certificate, verify_signed_observation
from crossclear.store import AttestationStore
from crossclear.v1 import attestation_pb2, sync_pb2, sync_pb2_grpc

_log = logging.getLogger(__name__)

MAX_CERTIFICATES_PER_PAGE = 1000
MAX_SIGNATURES_PER_PAGE = 5000
#: Catch-up re-reads this many blocks below its cursor: certificates can form late at a peer.
CATCH_UP_OVERLAP_BLOCKS = 64
_UINT63_MAX = 2**63 - 1


def _page_limit(requested: int, maximum: int) -> int:
    return maximum if requested == 0 else min(requested, maximum)


async def _invalid(context: grpc.aio.ServicerContext, message: str) -> None:
    await context.abort(grpc.StatusCode.INVALID_ARGUMENT, message)


class SyncServicer(sync_pb2_grpc.SyncServicer):
    """Answers peers from this node's store."""

    def __init__(self, store: AttestationStore, node_address: bytes, status_extras: Callable[[], tuple[int, int]]) -> None:
        self._store = store
        self._node_address = node_address
        self._status_extras = status_extras

    async def ListCertificates(
        self, request: sync_pb2.ListCertificatesRequest, context: grpc.aio.ServicerContext
    ) -> sync_pb2.ListCertificatesResponse:
        if request.chain_id == 0 or request.chain_id > _UINT63_MAX or request.from_block > _UINT63_MAX:
            await _invalid(context, "chain_id must be in 1..2^63-1 and from_block in 0..2^63-1")
        limit = _page_limit(request.limit, MAX_CERTIFICATES_PER_PAGE)
        rows = self._store.certificates(request.chain_id, request.from_block, limit + 1)
        response = sync_pb2.ListCertificatesResponse(more=len(rows) > limit)
        for row in rows[:limit]:
            response.certificates.add().ParseFromString(row)
        return response

    async def ListPendingSignatures(
        self, request: sync_pb2.ListPendingSignaturesRequest, context: grpc.aio.ServicerContext
    ) -> sync_pb2.ListPendingSignaturesResponse:
        if request.chain_id == 0 or request.chain_id > _UINT63_MAX or request.from_block > _UINT63_MAX:
            await _invalid(context, "chain_id must be in 1..2^63-1 and from_block in 0..2^63-1")
        limit = _page_limit(request.limit, MAX_SIGNATURES_PER_PAGE)
        rows = self._store.pending_signatures(request.chain_id, request.from_block, limit + 1)
        response = sync_pb2.ListPendingSignaturesResponse(more=len(rows) > limit)
        for observation, signature in rows[:limit]:
            response.signatures.append(
                attestation_pb2.SignedObservation(
                    observation=observation_from_stored(observation).to_proto(), signature=signature
                )
            )
        return response

    async def GetStatus(
        self, request: sync_pb2.GetStatusRequest, context: grpc.aio.ServicerContext
    ) -> sync_pb2.GetStatusResponse:
        equivocations, peers = self._status_extras()
        return sync_pb2.GetStatusResponse(
            node_address=self._node_address,
            certificate_count=self._store.certificate_count(),
            equivocation_count=equivocations,
            connected_peers=peers,
            chains=[
                sync_pb2.ChainProgress(
                    chain_id=row.chain_id,
                    highest_certified_block=row.highest_certified_block,
                    certificate_count=row.certificate_count,
                )
                for row in self._store.chain_progress()
            ],
        )


@dataclass(frozen=True, slots=True)
class CatchUpReport:
    """What one catch-up round fetched and what it changed."""

    peers_answered: int
    """Peers that answered at all."""
    certificates_received: int
    """Certificates fetched (each fully verified)."""
    signatures_rejected: int
    """Signatures or certificates that failed verification (a lying or broken peer)."""
    certificates_formed: int
    """Certificates this node formed from what it fetched."""


def _verify_certificates(
    domain: SigningDomain, node_set: NodeSet, certificates: list[attestation_pb2.QuorumCertificate]
) -> tuple[list[VerifiedSignature], int]:
    verified: list[VerifiedSignature] = []
    rejected = 0
    for certificate in certificates:
        try:
            verified.extend(verify_certificate(domain, node_set, certificate))
        except Rejected as error:
            rejected += 1
            _log.warning("peer sent a certificate that does not verify: %s", error)
    return verified, rejected


def _held(store: AttestationStore, domain: SigningDomain, certificate: attestation_pb2.QuorumCertificate) -> bool:
    try:
        return store.has_certificate(observation_digest(domain, Observation.from_proto(certificate.observation)))
    except MalformedObservation:
        return False  # verification will reject it and count it


def _verify_signatures(
    domain: SigningDomain, node_set: NodeSet, signatures: list[attestation_pb2.SignedObservation]
) -> tuple[list[VerifiedSignature], int]:
    verified: list[VerifiedSignature] = []
    rejected = 0
    for signature in signatures:
        try:
            verified.append(verify_signed_observation(domain, node_set, signature))
        except Rejected:
            rejected += 1
    return verified, rejected


async def catch_up_from_peer(
    stub: sync_pb2_grpc.SyncStub,
    store: AttestationStore,
    domain: SigningDomain,
    node_set: NodeSet,
    chain_ids: frozenset[int],
    now_ms: Callable[[], int],
    on_report: Callable[[IngestReport], None],
    timeout_seconds: float = 15.0,
) -> tuple[int, int, int]:
    """Fetch, verify and count one peer's certificates and pending signatures.

    Returns (certificates received, items rejected, certificates formed). Verification runs
    on a worker thread; counting runs here, on the loop that owns the store.
    """
    status = await stub.GetStatus(sync_pb2.GetStatusRequest(), timeout=timeout_seconds)
    ours = {row.chain_id: row for row in store.chain_progress()}
    theirs = {progress.chain_id: progress for progress in status.chains}
    totals = [0, 0, 0]
    for chain_id in sorted(set(chain_ids) | set(theirs)):
        cursor_name = f"sync:{chain_id}"
        cursor = store.cursor(cursor_name) or 0
        mine, peer = ours.get(chain_id), theirs.get(chain_id)
        # Certificate pages only when the peer may hold one we lack: a peer no further and
        # with no more certificates has nothing to add (a cheap test, so rounds cost one call).
        behind = peer is not None and (
            mine is None
            or mine.highest_certified_block < peer.highest_certified_block
            or mine.certificate_count < peer.certificate_count
        )
        if behind:
            highest_fetched = await _fetch_certificates(
                stub, store, domain, node_set, chain_id, cursor, now_ms, on_report, totals, timeout_seconds
            )
            cursor = max(cursor, highest_fetched)
        # Signatures the peer holds for observations not certified anywhere yet: what lets a
        # node that was away finish quorums whose gossip it missed.
        await _fetch_pending(stub, store, domain, node_set, chain_id, cursor, now_ms, on_report, totals, timeout_seconds)
        highest_here = max(
            (row.highest_certified_block for row in store.chain_progress() if row.chain_id == chain_id), default=0
        )
        with store.transaction():
            store.set_cursor(cursor_name, max(cursor, highest_here))
    return totals[0], totals[1], totals[2]


async def _fetch_certificates(
    stub: sync_pb2_grpc.SyncStub,
    store: AttestationStore,
    domain: SigningDomain,
    node_set: NodeSet,
    chain_id: int,
    cursor: int,
    now_ms: Callable[[], int],
    on_report: Callable[[IngestReport], None],
    totals: list[int],
    timeout_seconds: float,
) -> int:
    """Page through the peer's certificates from just below the cursor; returns the highest block seen."""
    from_block = max(0, cursor - CATCH_UP_OVERLAP_BLOCKS)
    highest = from_block
    while True:
        page = await stub.ListCertificates(
            sync_pb2.ListCertificatesRequest(chain_id=chain_id, from_block=from_block), timeout=timeout_seconds
        )
        certificates = list(page.certificates)
        missing = [certificate for certificate in certificates if not _held(store, domain, certificate)]
        verified, bad = await asyncio.to_thread(_verify_certificates, domain, node_set, missing)
        report = ingest(store, node_set, verified, now_ms())
        on_report(report)
        totals[0] += len(certificates)
        totals[1] += bad
        totals[2] += len(report.certificates)
        if certificates:
            highest = max(highest, max(certificate.observation.block_number for certificate in certificates))
        if not page.more or not certificates:
            return highest
        # Pages are in block order; restarting at the last block re-reads a few rows
        # (already held, so skipped before verification) instead of missing any.
        next_from = certificates[-1].observation.block_number
        from_block = next_from if next_from > from_block else next_from + 1


async def _fetch_pending(
    stub: sync_pb2_grpc.SyncStub,
    store: AttestationStore,
    domain: SigningDomain,
    node_set: NodeSet,
    chain_id: int,
    cursor: int,
    now_ms: Callable[[], int],
    on_report: Callable[[IngestReport], None],
    totals: list[int],
    timeout_seconds: float,
) -> None:
    from_block = max(0, cursor - CATCH_UP_OVERLAP_BLOCKS)
    while True:
        page = await stub.ListPendingSignatures(
            sync_pb2.ListPendingSignaturesRequest(chain_id=chain_id, from_block=from_block), timeout=timeout_seconds
        )
        signatures = list(page.signatures)
        verified, bad = await asyncio.to_thread(_verify_signatures, domain, node_set, signatures)
        report = ingest(store, node_set, verified, now_ms())
        on_report(report)
        totals[1] += bad
        totals[2] += len(report.certificates)
        if not page.more or not signatures:
            return
        next_from = signatures[-1].observation.block_number
        from_block = next_from if next_from > from_block else next_from + 1
