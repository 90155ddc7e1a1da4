"""ClaimService and WithdrawalService across four in-process nodes on 127.0.0.1 ports."""

from __future__ import annotations

import asyncio
import json
import time
from contextlib import AsyncExitStack
from pathlib import Path

import grpc
import pytest
from eth_account import Account

from crossclear.chains.vault_orders import ReleaseOrder, VaultDomain, recover_signer
from crossclear.margin import InstrumentKind
from crossclear.node import PositionRecord
from crossclear.node.claims import ClaimLedger, ClaimProcessor, CollateralToken
from crossclear.node.withdrawals import WithdrawalDesk, WithdrawalRequest, sign_request
from crossclear.rpc import ApiServer, ClaimServicer, WithdrawalServicer
from crossclear.v1 import claim_pb2, claim_pb2_grpc, node_pb2, withdrawal_pb2, withdrawal_pb2_grpc
from crossclear.zk import load_verification_key
from crossclear.zk.artifacts import default_artifacts

from ..node.test_claims import ASSET, CHAIN, DOMAIN, ROOT, VAULT, Roots, fixture
from ..node.test_clearing import make_state
from ..node.test_withdrawals import OWNER, OWNER_KEY

NODE_KEYS = [bytes([index + 1]) * 32 for index in range(4)]
NODE_SET = [Account.from_key(key).address for key in NODE_KEYS]
TOKEN = CollateralToken(CHAIN, VAULT, ASSET, "WETH", 18)


class Node:
    def __init__(self, tmp_path: Path, index: int) -> None:
        self.state = make_state()
        ledger = ClaimLedger(tmp_path / f"node{index}.sqlite")
        key = load_verification_key(default_artifacts().verification_key)
        self.claims = ClaimProcessor(key, DOMAIN, {(CHAIN, VAULT, ASSET): TOKEN}, Roots((CHAIN, VAULT, ROOT)), ledger, self.state)
        self.desk = WithdrawalDesk(tmp_path / f"node{index}.sqlite", ledger, self.state, {(CHAIN, "WETH"): TOKEN}, DOMAIN, NODE_KEYS[index])
        self.server: ApiServer | None = None
        self.port = 0

    async def start(self, peers: list[str]) -> None:
        self.server = ApiServer(
            self.state,
            lambda: node_pb2.NodeStatus(version="test"),
            claims=ClaimServicer(self.claims, lambda: self.state.height),
            withdrawals=WithdrawalServicer(self.desk, NODE_SET, peers),
        )
        await self.server.start(self.port)


async def network(tmp_path: Path, running: int, stack: AsyncExitStack) -> list[Node]:
    from crossclear._net import free_tcp_port

    nodes = [Node(tmp_path, index) for index in range(4)]
    for node in nodes:
        node.port = free_tcp_port()
    for index, node in enumerate(nodes[:running]):
        await node.start([f"127.0.0.1:{other.port}" for other in nodes if other is not node])
        stack.push_async_callback(node.server.stop, 0)  # type: ignore[union-attr]
    return nodes


def submit(port: int, index: int) -> claim_pb2.SubmitClaimRequest:
    proof, public = fixture(index)
    return claim_pb2.SubmitClaimRequest(proof_json=json.dumps(proof), public_signals=public)


def release_request(nullifier: int, amount: int, release: int) -> withdrawal_pb2.ReleaseRequest:
    ask = WithdrawalRequest(OWNER, nullifier, amount, OWNER, release.to_bytes(32, "big"), int(time.time()) + 600)
    return withdrawal_pb2.ReleaseRequest(
        account=OWNER, claim_nullifier=str(nullifier), amount=str(amount), recipient=OWNER,
        nonce=ask.nonce, deadline=ask.deadline, owner_signature=sign_request(ask, DOMAIN, OWNER_KEY),
    )


def test_claim_statuses_and_quorum_release(tmp_path: Path) -> None:
    async def main() -> None:
        async with AsyncExitStack() as stack:
            nodes = await network(tmp_path, 4, stack)
            channels = [await stack.enter_async_context(grpc.aio.insecure_channel(f"127.0.0.1:{n.port}")) for n in nodes]
            claims = [claim_pb2_grpc.ClaimServiceStub(c) for c in channels]
            # Every node checks and credits the claim itself (gossip delivers it to each).
            answers = [await stub.SubmitClaim(submit(0, 0), timeout=10) for stub in claims]
            assert [a.status for a in answers] == [claim_pb2.CLAIM_STATUS_ACCEPTED] * 4
            replay = await claims[2].SubmitClaim(submit(0, 0), timeout=10)
            assert replay.status == claim_pb2.CLAIM_STATUS_NULLIFIER_USED
            garbage = await claims[1].SubmitClaim(claim_pb2.SubmitClaimRequest(proof_json="{", public_signals=["1"]), timeout=10)
            assert garbage.status == claim_pb2.CLAIM_STATUS_MALFORMED and "not JSON" in garbage.detail
            nullifier = int(answers[0].nullifier)
            stored = await claims[3].GetClaim(claim_pb2.GetClaimRequest(nullifier=str(nullifier)), timeout=5)
            assert stored.amount == pytest.approx(0.5) and stored.account == OWNER.lower()
            with pytest.raises(grpc.aio.AioRpcError) as missing:
                await claims[3].GetClaim(claim_pb2.GetClaimRequest(nullifier="12"), timeout=5)
            assert missing.value.code() == grpc.StatusCode.NOT_FOUND

            withdrawals = withdrawal_pb2_grpc.WithdrawalServiceStub(channels[0])
            release = await withdrawals.RequestRelease(release_request(nullifier, 10**17, 1), timeout=10)
            assert release.threshold == 3 and len(release.signatures) >= 3
            order = ReleaseOrder(bytes(release.release_id), release.account, release.token, int(release.amount), release.recipient, release.deadline)
            domain = VaultDomain(release.chain_id, release.vault)
            signers = [int(recover_signer(domain, order, s), 16) for s in release.signatures]
            assert signers == sorted(signers) and all(f"{s:#042x}" in [a.lower() for a in NODE_SET] for s in signers)
            for node in nodes:
                assert sum(line.amount for line in node.state.margin(OWNER).collateral) == pytest.approx(0.4)

    asyncio.run(main())


def test_release_with_one_node_down_and_with_two(tmp_path: Path) -> None:
    async def main() -> None:
        async with AsyncExitStack() as stack:
            nodes = await network(tmp_path, 3, stack)  # node 3 never starts
            for node in nodes:
                assert node.claims.submit(*fixture(0)).accepted
            nullifier = node.claims._ledger.all()[0].nullifier
            async with grpc.aio.insecure_channel(f"127.0.0.1:{nodes[0].port}") as channel:
                stub = withdrawal_pb2_grpc.WithdrawalServiceStub(channel)
                release = await stub.RequestRelease(release_request(nullifier, 10**17, 1), timeout=10)
                assert len(release.signatures) == 3
                await nodes[2].server.stop(0)  # type: ignore[union-attr]
                with pytest.raises(grpc.aio.AioRpcError) as error:
                    await stub.RequestRelease(release_request(nullifier, 10**17, 2), timeout=10)
                assert error.value.code() == grpc.StatusCode.UNAVAILABLE
                assert "only 2 of 4 nodes signed, the vault needs 3" in error.value.details()

    asyncio.run(main())


def test_every_honest_node_refuses_a_release_below_initial_margin(tmp_path: Path) -> None:
    async def main() -> None:
        async with AsyncExitStack() as stack:
            nodes = await network(tmp_path, 4, stack)
            for node in nodes:
                assert node.claims.submit(*fixture(0)).accepted
                node.state.set_position(OWNER, "short", PositionRecord(CHAIN, "ETH", InstrumentKind.PERP, -2.0, 3000.0))
            nullifier = nodes[0].claims._ledger.all()[0].nullifier
            for node in nodes:
                async with grpc.aio.insecure_channel(f"127.0.0.1:{node.port}") as channel:
                    stub = withdrawal_pb2_grpc.WithdrawalServiceStub(channel)
                    with pytest.raises(grpc.aio.AioRpcError) as error:
                        await stub.SignRelease(release_request(nullifier, 3 * 10**17, 7), timeout=10)
                    assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION
                    assert "below initial margin" in error.value.details()
                assert sum(line.amount for line in node.state.margin(OWNER).collateral) == pytest.approx(0.5)

    asyncio.run(main())


def test_a_peer_signature_the_vault_would_reject_never_reaches_the_release(tmp_path: Path) -> None:
    class MalleatingPeer(withdrawal_pb2_grpc.WithdrawalServiceServicer):
        """A Byzantine node: signs honestly, then re-encodes v as 0/1, which eth-account
        still recovers but the vault's ecrecover check refuses."""

        def __init__(self, desk: WithdrawalDesk) -> None:
            self.desk = desk

        async def SignRelease(self, request, context):  # type: ignore[no-untyped-def]
            from crossclear.rpc._withdrawals import request_from_proto

            domain, order, signature = self.desk.sign_release(request_from_proto(request), bytes(request.owner_signature))
            return withdrawal_pb2.ReleaseSignature(signer="byzantine", signature=signature[:64] + bytes([signature[64] - 27]))

    async def main() -> None:
        async with AsyncExitStack() as stack:
            nodes = await network(tmp_path, 3, stack)
            for node in nodes:
                assert node.claims.submit(*fixture(0)).accepted
            byzantine = grpc.aio.server()
            withdrawal_pb2_grpc.add_WithdrawalServiceServicer_to_server(MalleatingPeer(nodes[3].desk), byzantine)
            byzantine.add_insecure_port(f"127.0.0.1:{nodes[3].port}")
            await byzantine.start()
            stack.push_async_callback(byzantine.stop, 0)
            nullifier = nodes[0].claims._ledger.all()[0].nullifier
            async with grpc.aio.insecure_channel(f"127.0.0.1:{nodes[0].port}") as channel:
                release = await withdrawal_pb2_grpc.WithdrawalServiceStub(channel).RequestRelease(release_request(nullifier, 10**17, 3), timeout=10)
            assert len(release.signatures) == 3
            # Every signature passes the vault's rules (65 bytes, v in {27, 28}, low s), which
            # recovery enforces, and comes from a node-set member.
            order = ReleaseOrder(bytes(release.release_id), release.account, release.token, int(release.amount), release.recipient, release.deadline)
            domain = VaultDomain(release.chain_id, release.vault)
            assert all(recover_signer(domain, order, bytes(signature)) in NODE_SET for signature in release.signatures)

    asyncio.run(main())


def test_fuzzed_requests_to_every_method_never_break_the_server(tmp_path: Path) -> None:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from crossclear.v1 import node_pb2_grpc

    texts = st.text(max_size=120) | st.sampled_from(["", "0", "1" * 90, "²", "-5", "0x" + "ab" * 20, OWNER])
    blobs = st.binary(max_size=80)
    allowed = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.UNAVAILABLE}
    failures: list[object] = []

    async def main() -> None:
        async with AsyncExitStack() as stack:
            nodes = await network(tmp_path, 4, stack)
            assert nodes[0].claims.submit(*fixture(0)).accepted
            channel = await stack.enter_async_context(grpc.aio.insecure_channel(f"127.0.0.1:{nodes[0].port}"))
            claims = claim_pb2_grpc.ClaimServiceStub(channel)
            withdrawals = withdrawal_pb2_grpc.WithdrawalServiceStub(channel)
            loop = asyncio.get_running_loop()

            @settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
            @given(which=st.integers(0, 4), a=texts, b=texts, c=texts, d=texts, blob=blobs, signals=st.lists(texts, max_size=10))
            def fuzz(which: int, a: str, b: str, c: str, d: str, blob: bytes, signals: list[str]) -> None:
                async def call() -> None:
                    try:
                        if which == 0:
                            await claims.SubmitClaim(claim_pb2.SubmitClaimRequest(proof_json=a, public_signals=signals), timeout=10)
                        elif which == 1:
                            await claims.GetClaim(claim_pb2.GetClaimRequest(nullifier=a), timeout=10)
                        elif which in (2, 3):
                            request = withdrawal_pb2.ReleaseRequest(account=a, claim_nullifier=b, amount=c, recipient=d, nonce=blob, owner_signature=blob)
                            method = withdrawals.SignRelease if which == 2 else withdrawals.RequestRelease
                            await method(request, timeout=10)
                        else:
                            await node_pb2_grpc.NodeServiceStub(channel).GetStatus(node_pb2.GetNodeStatusRequest(), timeout=10)
                    except grpc.aio.AioRpcError as error:
                        if error.code() not in allowed:
                            failures.append((which, a, b, c, d, blob, error.code(), error.details()))

                asyncio.run_coroutine_threadsafe(call(), loop).result(30)

            await asyncio.to_thread(fuzz)
            # Nothing the fuzzer sent changed what the node holds.
            assert sum(line.amount for line in nodes[0].state.margin(OWNER).collateral) == pytest.approx(0.5)

    asyncio.run(main())
    assert failures == []
