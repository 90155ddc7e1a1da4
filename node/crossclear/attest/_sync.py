"""The Sync gRPC service: serving what this node holds, and catching up from peers.

Serving is read-only and bounded (page limits, chain ids checked). Catching up treats every
answer as a claim to check: each certificate's signatures are recovered and counted here, so a
lying peer can withhold data but never make this node certify anything.

A round asks every peer at once, each under its own caps (pages per chain, chains, seconds),
so a peer that answers slowly, pages forever or lists chains nobody follows costs only its own
share while the honest peers' answers are counted as they arrive. What a peer is caught at
(a page that says "more" but is short, rows out of range or order, a certificate or signature
that does not verify, dozens of unknown chains) ends its turn, is logged, and lowers its
score; peers at a low score are asked only every few rounds.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import grpc

from crossclear.attest._admission import Admission, OwnHead
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


@dataclass(frozen=True)
class SyncLimits:
    """What one catch-up round may spend on one peer."""

    pages_per_chain: int = 8
    """Certificate pages, and pending-signature pages, fetched per chain per peer per round."""
    chains_per_round: int = 32
    """Chains asked about per peer per round (only chains this node follows are ever asked)."""
    unknown_chains_tolerated: int = 8
    """A peer listing more chains this node does not follow is counted as lying."""
    peer_round_seconds: float = 10.0
    """Time for one peer's whole turn in a round; then it is cut off (and scored down)."""
    call_seconds: float = 5.0
    """Deadline of each Sync call."""
    certificates_per_page: int = MAX_CERTIFICATES_PER_PAGE
    """Certificates asked for per page."""
    signatures_per_page: int = MAX_SIGNATURES_PER_PAGE
    """Pending signatures asked for per page."""
    low_score: float = -10.0
    """Peers at or below this score are asked only every `low_score_every` rounds."""
    low_score_every: int = 6
    """How often a low-scored peer still gets a turn (it may have been repaired)."""


class PeerScores:
    """How each Sync peer has behaved: lies cost points, good turns earn one back (up to 10)."""

    def __init__(self, limits: SyncLimits = SyncLimits()) -> None:
        self._limits = limits
        self._scores: dict[str, float] = {}

    def lied(self, peer: str, points: float, what: str) -> None:
        score = self._scores[peer] = max(-100.0, self._scores.get(peer, 0.0) - points)
        _log.warning("sync peer %s lied: %s (score now %.0f)", peer, what, score)

    def slow(self, peer: str, what: str) -> None:
        score = self._scores[peer] = max(-100.0, self._scores.get(peer, 0.0) - 1)
        _log.info("sync peer %s: %s (score now %.0f)", peer, what, score)

    def answered(self, peer: str) -> None:
        self._scores[peer] = min(10.0, self._scores.get(peer, 0.0) + 1)

    def ask(self, peer: str, round_number: int) -> bool:
        return (
            self._scores.get(peer, 0.0) > self._limits.low_score
            or round_number % self._limits.low_score_every == 0
        )

    def snapshot(self) -> dict[str, float]:
        return dict(self._scores)


@dataclass(frozen=True, slots=True)
class CatchUpReport:
    """What one catch-up round fetched and what it changed."""

    peers_answered: int
    """Peers whose turn ended normally (not unreachable, not cut off by the time cap)."""
    certificates_received: int
    """Certificates fetched (each fully verified unless already held)."""
    signatures_rejected: int
    """Signatures or certificates that failed verification (a lying or broken peer)."""
    certificates_formed: int
    """Certificates this node formed from what it fetched."""
    peers_lying: int = 0
    """Peers whose turn ended because they were caught lying."""


class _Lie(Exception):
    def __init__(self, points: float, what: str) -> None:
        super().__init__(what)
        self.points = points


@dataclass
class _Totals:
    received: int = 0
    rejected: int = 0
    formed: int = 0


def _verify_certificates(
    domain: SigningDomain, node_set: NodeSet, certificates: Sequence[attestation_pb2.QuorumCertificate]
) -> tuple[list[VerifiedSignature], int]:
    """Verified signatures of the certificates up to the first that fails, and 1 if one did:
    an honest peer never serves a bad one, so the rest of a liar's page is not worth the CPU."""
    verified: list[VerifiedSignature] = []
    for certificate in certificates:
        try:
            verified.extend(verify_certificate(domain, node_set, certificate))
        except Rejected as error:
            _log.warning("peer sent a certificate that does not verify: %s", error)
            return verified, 1
    return verified, 0


def _verify_signatures(
    domain: SigningDomain, node_set: NodeSet, signatures: Sequence[attestation_pb2.SignedObservation]
) -> tuple[list[VerifiedSignature], int]:
    verified: list[VerifiedSignature] = []
    for signature in signatures:
        try:
            verified.append(verify_signed_observation(domain, node_set, signature))
        except Rejected as error:
            _log.warning("peer sent a pending signature that does not verify: %s", error)
            return verified, 1
    return verified, 0


def _digest(domain: SigningDomain, message: attestation_pb2.Observation) -> bytes | None:
    try:
        return observation_digest(domain, Observation.from_proto(message))
    except MalformedObservation:
        return None


def _check_page(
    chain_id: int, from_block: int, limit: int, more: bool, observations: Sequence[attestation_pb2.Observation]
) -> None:
    if len(observations) > limit:
        raise _Lie(5, f"a page of {len(observations)} rows when {limit} were asked for")
    if more and len(observations) < limit:
        raise _Lie(5, f"more=True on a page of {len(observations)} rows (a full page is {limit})")
    previous = from_block
    for observation in observations:
        if observation.chain_id != chain_id:
            raise _Lie(5, f"a row of chain {observation.chain_id} in a page of chain {chain_id}")
        if observation.block_number < previous:
            raise _Lie(5, f"block {observation.block_number} out of order or below the {from_block} asked from")
        previous = observation.block_number


class CatchUp:
    """Catch-up rounds over Sync for one node (on the loop that owns the store)."""

    def __init__(
        self,
        store: AttestationStore,
        domain: SigningDomain,
        node_set: NodeSet,
        chain_ids: frozenset[int],
        now_ms: Callable[[], int],
        on_report: Callable[[IngestReport], None],
        *,
        own: bytes = b"",
        admission: Admission = Admission(),
        head: OwnHead = lambda chain_id: None,
        storage_share: int | None = None,
        evidence_cap: int | None = None,
        limits: SyncLimits = SyncLimits(),
        scores: PeerScores | None = None,
    ) -> None:
        self._store = store
        self._domain = domain
        self._node_set = node_set
        self._chain_ids = sorted(chain_ids)
        self._now_ms = now_ms
        self._on_report = on_report
        self._own = own
        self._admission = admission
        self._head = head
        self._storage_share = storage_share
        self._evidence_cap = evidence_cap
        self.limits = limits
        self.scores = scores or PeerScores(limits)
        self.rounds = 0
        self.refused: dict[str, int] = {}
        """Pending signatures fetched but not admitted, per reason."""
        self._verifying: set[bytes] = set()

    async def round(self, peers: Sequence[tuple[str, sync_pb2_grpc.SyncStub]]) -> CatchUpReport:
        """Ask every peer (low-scored ones only every few rounds) at once; returns the sums."""
        self.rounds += 1
        chosen = [(name, stub) for name, stub in peers if self.scores.ask(name, self.rounds)]
        turns = await asyncio.gather(*(self._turn(name, stub) for name, stub in chosen))
        return CatchUpReport(
            peers_answered=sum(1 for outcome, _ in turns if outcome == "answered"),
            certificates_received=sum(totals.received for _, totals in turns),
            signatures_rejected=sum(totals.rejected for _, totals in turns),
            certificates_formed=sum(totals.formed for _, totals in turns),
            peers_lying=sum(1 for outcome, _ in turns if outcome == "lied"),
        )

    async def _turn(self, name: str, stub: sync_pb2_grpc.SyncStub) -> tuple[str, _Totals]:
        totals = _Totals()
        try:
            async with asyncio.timeout(self.limits.peer_round_seconds):
                await self.from_peer(name, stub, totals)
        except TimeoutError:
            self.scores.slow(name, f"turn cut off after {self.limits.peer_round_seconds:.0f} s")
            return "cut_off", totals
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                self.scores.slow(name, "a call passed its deadline")
            else:
                _log.debug("sync peer %s unavailable: %s %s", name, error.code(), error.details())
            return "unavailable", totals
        except _Lie as lie:
            self.scores.lied(name, lie.points, str(lie))
            return "lied", totals
        self.scores.answered(name)
        return "answered", totals

    async def from_peer(self, name: str, stub: sync_pb2_grpc.SyncStub, totals: _Totals) -> None:
        """One peer's turn: its status, then per chain its certificates and pending signatures."""
        call = self.limits.call_seconds
        status = await stub.GetStatus(sync_pb2.GetStatusRequest(), timeout=call)
        followed = set(self._chain_ids) | set(self._admission.chains or ())
        unknown = {progress.chain_id for progress in status.chains} - followed
        if len(unknown) > self.limits.unknown_chains_tolerated:
            raise _Lie(5, f"its status lists {len(unknown)} chains this node does not follow")
        ours = {row.chain_id: row for row in self._store.chain_progress()}
        theirs = {progress.chain_id: progress for progress in status.chains}
        chains = sorted(followed)
        if len(chains) > self.limits.chains_per_round:
            start = (self.rounds * self.limits.chains_per_round) % len(chains)
            chains = (chains[start:] + chains[:start])[: self.limits.chains_per_round]
        for chain_id in chains:
            mine, peer = ours.get(chain_id), theirs.get(chain_id)
            # Certificate pages only when the peer may hold one we lack: a peer no further and
            # with no more certificates has nothing to add (a cheap test, so rounds cost one call).
            if peer is not None and (
                mine is None
                or mine.highest_certified_block < peer.highest_certified_block
                or mine.certificate_count < peer.certificate_count
            ):
                await self._certificates(name, stub, chain_id, totals)
            await self._pending(stub, chain_id, totals)

    async def _certificates(self, name: str, stub: sync_pb2_grpc.SyncStub, chain_id: int, totals: _Totals) -> None:
        """Page through the peer's certificates from just below where its last turn stopped.

        The cursor is per peer: one peer's pages say nothing about what another holds, and a
        liar's made-up block numbers must not move where the honest peers are read from."""
        store = self._store
        cursor_name = f"sync:{chain_id}:{name}"
        cursor = store.cursor(cursor_name) or 0
        from_block = max(0, cursor - CATCH_UP_OVERLAP_BLOCKS)
        limit = self.limits.certificates_per_page
        for _ in range(self.limits.pages_per_chain):
            page = await stub.ListCertificates(
                sync_pb2.ListCertificatesRequest(chain_id=chain_id, from_block=from_block, limit=limit),
                timeout=self.limits.call_seconds,
            )
            certificates = list(page.certificates)
            _check_page(chain_id, from_block, limit, page.more, [c.observation for c in certificates])
            missing: list[attestation_pb2.QuorumCertificate] = []
            claimed: list[bytes] = []
            for certificate in certificates:
                digest = _digest(self._domain, certificate.observation)
                if digest is None:
                    missing.append(certificate)  # verification rejects it, and the page with it
                elif not store.has_certificate(digest) and digest not in self._verifying:
                    # Another peer's turn may be verifying the same certificate right now.
                    self._verifying.add(digest)
                    claimed.append(digest)
                    missing.append(certificate)
            try:
                verified, bad = await asyncio.to_thread(_verify_certificates, self._domain, self._node_set, missing)
                report = ingest(
                    store, self._node_set, verified, self._now_ms(), own=self._own, evidence_cap=self._evidence_cap
                )
            finally:
                self._verifying.difference_update(claimed)
            self._on_report(report)
            totals.received += len(certificates)
            totals.rejected += bad
            totals.formed += len(report.certificates)
            if bad:
                raise _Lie(10, "a certificate that does not verify")
            if certificates:
                cursor = max(cursor, certificates[-1].observation.block_number)
            if not page.more or not certificates:
                break
            # Pages are in block order; restarting at the last block re-reads a few rows
            # (already held, so skipped before verification) instead of missing any.
            next_from = certificates[-1].observation.block_number
            from_block = next_from if next_from > from_block else next_from + 1
        with store.transaction():
            store.set_cursor(cursor_name, cursor)

    async def _pending(self, stub: sync_pb2_grpc.SyncStub, chain_id: int, totals: _Totals) -> None:
        """Signatures the peer holds for observations not certified anywhere yet: what lets a
        node that was away or cut off finish quorums whose gossip it missed.

        Read from the lowest block where this node's own signature is still uncertified: a
        quorum this node has not signed either forms without it (and arrives as a certificate)
        or waits for this node's own observation, after which this reads from there."""
        store = self._store
        lowest = store.lowest_pending_block(self._own, chain_id) if self._own else 0
        if lowest is None:
            return
        from_block = lowest
        limit = self.limits.signatures_per_page
        head = self._head(chain_id)
        for _ in range(self.limits.pages_per_chain):
            page = await stub.ListPendingSignatures(
                sync_pb2.ListPendingSignaturesRequest(chain_id=chain_id, from_block=from_block, limit=limit),
                timeout=self.limits.call_seconds,
            )
            signatures = list(page.signatures)
            _check_page(chain_id, from_block, limit, page.more, [s.observation for s in signatures])
            unheld = []
            for signature in signatures:
                observation = signature.observation
                refusal = self._admission.refusal_ahead_only(
                    chain_id, observation.emitter, observation.block_number, head
                )
                if refusal is not None:
                    self.refused[refusal] = self.refused.get(refusal, 0) + 1
                    continue
                digest = _digest(self._domain, observation)
                if digest is None or not store.holds_signature(digest, signature.signature):
                    unheld.append(signature)
            verified, bad = await asyncio.to_thread(_verify_signatures, self._domain, self._node_set, unheld)
            report = ingest(
                store,
                self._node_set,
                verified,
                self._now_ms(),
                storage_share=self._storage_share,
                own=self._own,
                evidence_cap=self._evidence_cap,
            )
            self._on_report(report)
            totals.rejected += bad
            totals.formed += len(report.certificates)
            if bad:
                raise _Lie(10, "a pending signature that does not verify")
            if not page.more or not signatures:
                return
            next_from = signatures[-1].observation.block_number
            from_block = next_from if next_from > from_block else next_from + 1
