"""Sync catch-up treats a peer's answer as claims to verify, caps what one peer can cost, and
the server checks its input."""

import asyncio
import logging
import time
from pathlib import Path

import grpc
import pytest

from crossclear._net import free_tcp_port
from crossclear.attest import CatchUp, SigningDomain, SyncLimits, ingest, sign_observation
from crossclear.attest._sync import SyncServicer
from crossclear.store import AttestationStore
from crossclear.v1 import attestation_pb2, sync_pb2, sync_pb2_grpc

from .helpers import KEYS, node_set, observation

DOMAIN = SigningDomain()
CHAIN = 31337


def _certificate(keys: list, block: int, root_byte: int = 0xAB) -> attestation_pb2.QuorumCertificate:
    subject = observation(block=block, root_byte=root_byte)
    return attestation_pb2.QuorumCertificate(
        observation=subject.to_proto(),
        signatures=[sign_observation(key, DOMAIN, subject).signature for key in keys],
    )


class _Liar(sync_pb2_grpc.SyncServicer):
    """Serves the same certificates for any request, and counts what it was asked."""

    def __init__(self, certificates: list[attestation_pb2.QuorumCertificate], *, more: bool = False, chains: int = 1) -> None:
        self.certificates = certificates
        self.more = more
        self.chains = chains
        self.calls: list[tuple[str, int]] = []

    async def GetStatus(self, request, context):  # type: ignore[no-untyped-def]
        self.calls.append(("status", 0))
        return sync_pb2.GetStatusResponse(
            chains=[
                sync_pb2.ChainProgress(chain_id=CHAIN + n, highest_certified_block=10**6, certificate_count=10**6)
                for n in range(self.chains)
            ]
        )

    async def ListCertificates(self, request, context):  # type: ignore[no-untyped-def]
        self.calls.append(("certificates", request.chain_id))
        return sync_pb2.ListCertificatesResponse(certificates=self.certificates, more=self.more)

    async def ListPendingSignatures(self, request, context):  # type: ignore[no-untyped-def]
        self.calls.append(("pending", request.chain_id))
        forged = attestation_pb2.SignedObservation(observation=observation(block=50).to_proto(), signature=b"\x01" * 65)
        return sync_pb2.ListPendingSignaturesResponse(signatures=[forged])


async def _serve(servicer: sync_pb2_grpc.SyncServicer) -> tuple[grpc.aio.Server, str]:
    server = grpc.aio.server()
    sync_pb2_grpc.add_SyncServicer_to_server(servicer, server)
    port = free_tcp_port()
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    return server, f"127.0.0.1:{port}"


def _catch_up(store: AttestationStore, limits: SyncLimits = SyncLimits()) -> CatchUp:
    return CatchUp(store, DOMAIN, node_set(4), frozenset({CHAIN}), lambda: 1, lambda report: None, own=KEYS[3].address, limits=limits)


async def _round(catch_up: CatchUp, *servicers: sync_pb2_grpc.SyncServicer):  # type: ignore[no-untyped-def]
    served = [await _serve(servicer) for servicer in servicers]
    channels = [grpc.aio.insecure_channel(address) for _, address in served]
    try:
        return await catch_up.round([(address, sync_pb2_grpc.SyncStub(channel)) for (_, address), channel in zip(served, channels)])
    finally:
        for channel in channels:
            await channel.close()
        for server, _ in served:
            await server.stop(None)


def test_a_lying_peer_cannot_make_a_node_certify_and_is_scored_down(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        store = AttestationStore(tmp_path / "node.sqlite")
        tampered = _certificate(list(KEYS[:3]), block=4)
        tampered.observation.root = b"\x00" * 32  # signatures no longer match the observation
        lies = [
            _certificate(list(KEYS[4:7]), block=1),  # three signers outside the node set
            _certificate([KEYS[0], KEYS[0], KEYS[0]], block=2),  # one member three times
            _certificate(list(KEYS[:2]), block=3),  # two members: short of a quorum
            tampered,
        ]
        catch_up = _catch_up(store)
        for lie in lies:
            report = await _round(catch_up, _Liar([lie, _certificate(list(KEYS[:3]), block=5)]))
            # The first bad certificate ends the liar's turn: the rest of its page is not worth the CPU.
            assert (report.certificates_received, report.signatures_rejected, report.peers_lying) == (2, 1, 1)
            assert store.certificate_count() == 0
        assert sorted(catch_up.scores.snapshot().values()) == [-10.0] * 4  # each liar served on its own port
        assert sum("lied" in record.message for record in caplog.records) == 4
        # A good certificate is taken; a forged pending signature is caught once this node has
        # an uncertified signature of its own to finish (pending pages are read from there).
        ingest(store, node_set(4), [sign_observation(KEYS[3], DOMAIN, observation(block=40))], 1)
        mixed = await _round(catch_up, _Liar([_certificate(list(KEYS[:3]), block=5)]))
        assert (mixed.certificates_received, mixed.signatures_rejected, mixed.certificates_formed) == (1, 1, 1)
        assert mixed.peers_lying == 1
        certified = store.certificates(CHAIN, 0, 100)
        held = attestation_pb2.QuorumCertificate()
        held.ParseFromString(certified[0])
        assert len(certified) == 1 and held.observation.block_number == 5
        store.close()

    with caplog.at_level(logging.WARNING, logger="crossclear.attest._sync"):
        asyncio.run(scenario())


def _honest_store(path: Path, blocks: int) -> AttestationStore:
    store = AttestationStore(path)
    for block in range(1, blocks + 1):
        ingest(store, node_set(4), [sign_observation(k, DOMAIN, observation(block=block)) for k in KEYS[:3]], 1)
    return store


@pytest.mark.parametrize("lie", ["more_forever", "fifty_unknown_chains"])
def test_one_bad_sync_peer_does_not_delay_catch_up_from_honest_ones(tmp_path: Path, lie: str) -> None:
    """A peer that answers more=True forever (full pages of what we hold), or lists 50 chains
    nobody follows, is cut off and scored down; the honest peers' 600 certificates arrive in
    the same round, within seconds."""

    async def scenario() -> None:
        honest = [_honest_store(tmp_path / f"honest{n}.sqlite", 600) for n in range(2)]
        node = AttestationStore(tmp_path / "node.sqlite")
        page = [_certificate(list(KEYS[:3]), block=1)] * 1000  # a full page, so more=True looks plausible
        liar = _Liar(page, more=True) if lie == "more_forever" else _Liar([], chains=50)
        catch_up = _catch_up(node, SyncLimits(pages_per_chain=4, peer_round_seconds=20))
        started = time.monotonic()
        report = await asyncio.wait_for(
            _round(catch_up, liar, *(SyncServicer(store, KEYS[n].address, lambda: (0, 0)) for n, store in enumerate(honest))),
            30,
        )
        elapsed = time.monotonic() - started
        assert node.certificate_count() == 600
        assert report.peers_answered == 2 and report.peers_lying == 1
        assert elapsed < 10, f"catch-up took {elapsed:.1f} s"
        scores = catch_up.scores.snapshot()
        assert min(scores.values()) < 0 < max(scores.values())
        # What the liar got to cost: a bounded number of calls, none about chains we do not follow.
        assert len(liar.calls) <= 1 + 4
        assert all(chain in (0, CHAIN) for _, chain in liar.calls)
        for store in (*honest, node):
            store.close()

    asyncio.run(scenario())


def test_a_low_scored_peer_is_asked_only_every_few_rounds(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = AttestationStore(tmp_path / "node.sqlite")
        catch_up = _catch_up(store, SyncLimits(low_score=-10, low_score_every=3))
        liar = _Liar([], chains=50)
        server, address = await _serve(liar)
        try:
            async with grpc.aio.insecure_channel(address) as channel:
                for _ in range(9):
                    await catch_up.round([(address, sync_pb2_grpc.SyncStub(channel))])
        finally:
            await server.stop(None)
        # 5 points per lie: at -10 after rounds 1 and 2; then asked only in rounds 3, 6 and 9.
        assert sum(1 for call, _ in liar.calls if call == "status") == 2 + 3
        store.close()

    asyncio.run(scenario())


def test_sync_server_refuses_bad_requests_and_serves_pages(tmp_path: Path) -> None:
    async def scenario() -> None:
        members = node_set(4)
        store = AttestationStore(tmp_path / "node.sqlite")
        for block in range(1, 8):
            ingest(store, members, [sign_observation(k, DOMAIN, observation(block=block)) for k in KEYS[:3]], 1)
        ingest(store, members, [sign_observation(KEYS[0], DOMAIN, observation(block=9))], 1)
        server, address = await _serve(SyncServicer(store, KEYS[0].address, lambda: (0, 0)))
        try:
            async with grpc.aio.insecure_channel(address) as channel:
                stub = sync_pb2_grpc.SyncStub(channel)
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await stub.ListCertificates(sync_pb2.ListCertificatesRequest(chain_id=0))
                assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
                assert "chain_id" in (refused.value.details() or "")
                with pytest.raises(grpc.aio.AioRpcError) as too_far:
                    await stub.ListPendingSignatures(sync_pb2.ListPendingSignaturesRequest(chain_id=CHAIN, from_block=2**63))
                assert too_far.value.code() == grpc.StatusCode.INVALID_ARGUMENT
                page = await stub.ListCertificates(sync_pb2.ListCertificatesRequest(chain_id=CHAIN, from_block=3, limit=2))
                assert [c.observation.block_number for c in page.certificates] == [3, 4] and page.more
                pending = await stub.ListPendingSignatures(sync_pb2.ListPendingSignaturesRequest(chain_id=CHAIN))
                assert [s.observation.block_number for s in pending.signatures] == [9] and not pending.more
                status = await stub.GetStatus(sync_pb2.GetStatusRequest())
                assert status.certificate_count == 7 and status.node_address == KEYS[0].address
                assert [(c.chain_id, c.highest_certified_block) for c in status.chains] == [(CHAIN, 7)]
        finally:
            await server.stop(None)
        assert store.certificate_count() == 7  # serving changed nothing
        store.close()

    asyncio.run(scenario())
