"""Sync catch-up treats a peer's answer as claims to verify, and the server checks its input."""

import asyncio
from pathlib import Path

import grpc
import pytest

from crossclear._net import free_tcp_port
from crossclear.attest import SigningDomain, ingest, sign_observation
from crossclear.attest._sync import SyncServicer, catch_up_from_peer
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
    def __init__(self, certificates: list[attestation_pb2.QuorumCertificate]) -> None:
        self.certificates = certificates

    async def GetStatus(self, request, context):  # type: ignore[no-untyped-def]
        return sync_pb2.GetStatusResponse(
            chains=[sync_pb2.ChainProgress(chain_id=CHAIN, highest_certified_block=99, certificate_count=99)]
        )

    async def ListCertificates(self, request, context):  # type: ignore[no-untyped-def]
        return sync_pb2.ListCertificatesResponse(certificates=self.certificates)

    async def ListPendingSignatures(self, request, context):  # type: ignore[no-untyped-def]
        forged = attestation_pb2.SignedObservation(observation=observation(block=50).to_proto(), signature=b"\x01" * 65)
        return sync_pb2.ListPendingSignaturesResponse(signatures=[forged])


async def _serve(servicer: sync_pb2_grpc.SyncServicer) -> tuple[grpc.aio.Server, int]:
    server = grpc.aio.server()
    sync_pb2_grpc.add_SyncServicer_to_server(servicer, server)
    port = free_tcp_port()
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    return server, port


def test_a_lying_peer_cannot_make_a_node_certify(tmp_path: Path) -> None:
    async def scenario() -> None:
        members = node_set(4)
        store = AttestationStore(tmp_path / "node.sqlite")
        lies = [
            _certificate(list(KEYS[4:7]), block=1),  # three signers outside the node set
            _certificate([KEYS[0], KEYS[0], KEYS[0]], block=2),  # one member three times
            _certificate(list(KEYS[:2]), block=3),  # two members: short of a quorum
        ]
        tampered = _certificate(list(KEYS[:3]), block=4)
        tampered.observation.root = b"\x00" * 32  # signatures no longer match the observation
        honest = _certificate(list(KEYS[:3]), block=5)
        server, port = await _serve(_Liar([*lies, tampered, honest]))
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                received, rejected, formed = await catch_up_from_peer(
                    sync_pb2_grpc.SyncStub(channel), store, DOMAIN, members, frozenset({CHAIN}), lambda: 1, lambda r: None
                )
        finally:
            await server.stop(None)
        assert (received, rejected, formed) == (5, 5, 1)
        certified = store.certificates(CHAIN, 0, 100)
        assert len(certified) == 1
        held = attestation_pb2.QuorumCertificate()
        held.ParseFromString(certified[0])
        assert held.observation.block_number == 5
        store.close()

    asyncio.run(scenario())


def test_sync_server_refuses_bad_requests_and_serves_pages(tmp_path: Path) -> None:
    async def scenario() -> None:
        members = node_set(4)
        store = AttestationStore(tmp_path / "node.sqlite")
        for block in range(1, 8):
            ingest(store, members, [sign_observation(k, DOMAIN, observation(block=block)) for k in KEYS[:3]], 1)
        ingest(store, members, [sign_observation(KEYS[0], DOMAIN, observation(block=9))], 1)
        server, port = await _serve(SyncServicer(store, KEYS[0].address, lambda: (0, 0)))
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
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
