"""ClaimService and WithdrawalService across four in-process nodes on 127.0.0.1 ports.

Each node is a real processor (its own SQLite file and key, see tests/node/harness.py) that
certified the zk fixtures' deposit root in a scripted block, a real ClaimChecker verifying
the fixtures' Groth16 proofs, and a real ApiServer."""

from __future__ import annotations

import asyncio
import json
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import grpc
import pytest
from eth_utils.address import to_checksum_address
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crossclear._net import free_tcp_port
from crossclear.chains.vault_orders import ReleaseOrder, VaultDomain, recover_signer
from crossclear.node.claims import ClaimChecker, VerifiedClaim
from crossclear.node.withdrawals import WithdrawalRequest, sign_request
from crossclear.rpc import ApiServer, ClaimServicer, WithdrawalServicer
from crossclear.rpc._withdrawals import request_from_proto
from crossclear.store import ClaimRow
from crossclear.v1 import claim_pb2, claim_pb2_grpc, node_pb2, node_pb2_grpc, withdrawal_pb2, withdrawal_pb2_grpc

from ..node.harness import NODE_KEYS, NODE_SET, START, Harness, perp
from ..node.test_claims import ASSET, CHAIN, DOMAIN, checker, fixture, started_fixture_node
from ..node.test_withdrawals import OWNER, OWNER_KEY

HALF_WETH = 5 * 10**17


class Node:
    """One node: a processor clearing the fixtures' vault, a claim checker, and its API server."""

    def __init__(self, tmp_path: Path, index: int) -> None:
        self.tmp_path = tmp_path
        self.index = index
        self.harness: Harness | None = None
        self.checker: ClaimChecker | None = None
        self.server: ApiServer | None = None
        self.port = free_tcp_port()

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def node(self) -> Harness:
        assert self.harness is not None
        return self.harness

    async def start_processor(self, stack: AsyncExitStack) -> None:
        self.harness = await started_fixture_node(self.tmp_path / f"node{self.index}.sqlite", NODE_KEYS[self.index])
        stack.push_async_callback(self.harness.stop)
        processor = self.harness.processor
        self.checker = checker(roots=processor, credited=processor.is_credited)

    def lookup(self, nullifier: int) -> tuple[ClaimRow, int] | None:
        row = self.node.store.claim(nullifier)
        return None if row is None else (row, self.node.tokens[(row.chain_id, row.asset)].decimals)

    async def start_server(self, peers: list[str], stack: AsyncExitStack) -> None:
        assert self.checker is not None
        processor = self.node.processor
        self.server = ApiServer(
            lambda: processor.snapshot,
            lambda: node_pb2.NodeStatus(version="test", state_height=processor.status().height),
            claims=ClaimServicer(self.checker, self.node.credit, self.lookup, lambda: processor.status().height),
            withdrawals=WithdrawalServicer(self.node.sign_release_with, NODE_SET, peers),
        )
        processor.snapshot_observers.append(self.server.watch.notify)
        await self.server.start(self.port)
        stack.push_async_callback(self.server.stop, 0)

    async def credit_fixture(self, index: int = 0) -> int:
        """Check and credit a fixture claim here directly (as its gossip would); its nullifier."""
        assert self.checker is not None
        verified = self.checker.check(*fixture(index))
        assert isinstance(verified, VerifiedClaim)
        assert (await self.node.credit(verified)).accepted
        return verified.claim.nullifier

    def held(self) -> int:
        return self.node.processor.ledger.balance((OWNER.lower(), CHAIN, "WETH"))


async def network(tmp_path: Path, running: int, stack: AsyncExitStack, processors: int | None = None) -> list[Node]:
    """Four nodes on fixed ports; the first `running` serve, the first `processors` (default:
    as many as serve) have a processor."""
    nodes = [Node(tmp_path, index) for index in range(4)]
    for node in nodes[: max(running, processors or 0)]:
        await node.start_processor(stack)
    for node in nodes[:running]:
        await node.start_server([other.target for other in nodes if other is not node], stack)
    return nodes


def submit(index: int) -> claim_pb2.SubmitClaimRequest:
    proof, public = fixture(index)
    return claim_pb2.SubmitClaimRequest(proof_json=json.dumps(proof), public_signals=public)


def release_request(nullifier: int, amount: int, release: int, deadline: int = START + 600) -> withdrawal_pb2.ReleaseRequest:
    """A release of the holding the claim with `nullifier` credited (fixture claims are WETH on CHAIN)."""
    del nullifier
    token = to_checksum_address(f"{ASSET:#042x}")
    ask = WithdrawalRequest(OWNER, CHAIN, token, amount, OWNER, release.to_bytes(32, "big"), deadline)
    return withdrawal_pb2.ReleaseRequest(
        account=OWNER, chain_id=CHAIN, token=token, amount=str(amount), recipient=OWNER,
        nonce=ask.nonce, deadline=ask.deadline, owner_signature=sign_request(ask, DOMAIN, OWNER_KEY),
    )


def release_parts(release: withdrawal_pb2.Release) -> tuple[VaultDomain, ReleaseOrder]:
    order = ReleaseOrder(bytes(release.release_id), release.account, release.token, int(release.amount), release.recipient, release.deadline)
    return VaultDomain(release.chain_id, release.vault), order


def test_claim_statuses_and_quorum_release(tmp_path: Path) -> None:
    async def main() -> None:
        async with AsyncExitStack() as stack:
            nodes = await network(tmp_path, 4, stack)
            channels = [await stack.enter_async_context(grpc.aio.insecure_channel(n.target)) for n in nodes]
            claims = [claim_pb2_grpc.ClaimServiceStub(c) for c in channels]
            # Every node checks and credits the claim itself (gossip delivers it to each).
            answers = [await stub.SubmitClaim(submit(0), timeout=10) for stub in claims]
            assert [a.status for a in answers] == [claim_pb2.CLAIM_STATUS_ACCEPTED] * 4
            assert {a.account for a in answers} == {OWNER.lower()} and all(a.state_height > 0 for a in answers)
            assert "credited 0.5 WETH" in answers[0].detail
            replay = await claims[2].SubmitClaim(submit(0), timeout=10)
            assert replay.status == claim_pb2.CLAIM_STATUS_NULLIFIER_USED and replay.nullifier == answers[2].nullifier
            garbage = await claims[1].SubmitClaim(claim_pb2.SubmitClaimRequest(proof_json="{", public_signals=["1"]), timeout=10)
            assert garbage.status == claim_pb2.CLAIM_STATUS_MALFORMED and "not JSON" in garbage.detail
            other_domain = list(fixture(1)[1])
            other_domain[7] = str(DOMAIN + 1)
            wrong = await claims[1].SubmitClaim(claim_pb2.SubmitClaimRequest(proof_json=json.dumps(fixture(1)[0]), public_signals=other_domain), timeout=10)
            assert wrong.status == claim_pb2.CLAIM_STATUS_WRONG_DOMAIN
            nullifier = int(answers[0].nullifier)
            stored = await claims[3].GetClaim(claim_pb2.GetClaimRequest(nullifier=str(nullifier)), timeout=5)
            assert (stored.account, stored.chain_id, stored.asset, stored.amount_units, stored.decimals) == (OWNER.lower(), CHAIN, "WETH", str(HALF_WETH), 18)
            with pytest.raises(grpc.aio.AioRpcError) as missing:
                await claims[3].GetClaim(claim_pb2.GetClaimRequest(nullifier="12"), timeout=5)
            assert missing.value.code() == grpc.StatusCode.NOT_FOUND
            assert all(n.held() == HALF_WETH for n in nodes)

            withdrawals = withdrawal_pb2_grpc.WithdrawalServiceStub(channels[0])
            release = await withdrawals.RequestRelease(release_request(nullifier, 10**17, 1), timeout=10)
            assert release.threshold == 3 and len(release.signatures) == 3  # exactly a quorum
            domain, order = release_parts(release)
            assert (domain.chain_id, order.amount, order.deadline) == (CHAIN, 10**17, START + 600)
            signers = [recover_signer(domain, order, s) for s in release.signatures]
            assert [int(s, 16) for s in signers] == sorted(int(s, 16) for s in signers) and set(signers) <= set(NODE_SET)
            assert list(release.signers) == signers and NODE_SET[0] in signers
            for node in nodes:
                await node.node.settled()
                if NODE_SET[node.index] in signers:  # every signer reserved the amount
                    assert node.held() == 4 * 10**17 and list(node.node.processor.ledger.reservations) == [order.release_id]
                else:  # a node asked but not waited for may have signed (and reserved) too
                    assert node.held() in (HALF_WETH, 4 * 10**17)
            # Gathering again returns the same order, and nobody reserves twice.
            again = await withdrawals.RequestRelease(release_request(nullifier, 10**17, 1), timeout=10)
            assert bytes(again.release_id) == order.release_id
            assert all(n.held() == 4 * 10**17 for n in nodes if NODE_SET[n.index] in signers)

    asyncio.run(main())


def test_release_with_one_node_down_and_with_two(tmp_path: Path) -> None:
    async def main() -> None:
        async with AsyncExitStack() as stack:
            nodes = await network(tmp_path, 3, stack)  # node 3 never starts
            for node in nodes[:3]:
                nullifier = await node.credit_fixture(0)
            async with grpc.aio.insecure_channel(nodes[0].target) as channel:
                stub = withdrawal_pb2_grpc.WithdrawalServiceStub(channel)
                release = await stub.RequestRelease(release_request(nullifier, 10**17, 1), timeout=10)
                assert len(release.signatures) == 3
                domain, order = release_parts(release)
                assert {recover_signer(domain, order, s) for s in release.signatures} == set(NODE_SET[:3])
                assert nodes[2].server is not None
                await nodes[2].server.stop(0)
                with pytest.raises(grpc.aio.AioRpcError) as error:
                    await stub.RequestRelease(release_request(nullifier, 10**17, 2), timeout=10)
                assert error.value.code() == grpc.StatusCode.UNAVAILABLE
                details = error.value.details() or ""
                assert "only 2 of 4 nodes signed, the vault needs 3" in details
                assert nodes[2].target in details and nodes[3].target in details  # why each missing signature is missing

    asyncio.run(main())


def test_peers_refusals_are_reported_with_their_reasons(tmp_path: Path) -> None:
    """Nodes 2 and 3 never credited the claim: each refuses and says why; no quorum."""

    async def main() -> None:
        async with AsyncExitStack() as stack:
            nodes = await network(tmp_path, 4, stack)
            for node in nodes[:2]:
                nullifier = await node.credit_fixture(0)
            async with grpc.aio.insecure_channel(nodes[0].target) as channel:
                stub = withdrawal_pb2_grpc.WithdrawalServiceStub(channel)
                with pytest.raises(grpc.aio.AioRpcError) as error:
                    await stub.RequestRelease(release_request(nullifier, 10**17, 1), timeout=10)
            assert error.value.code() == grpc.StatusCode.UNAVAILABLE
            details = error.value.details() or ""
            assert "only 2 of 4 nodes signed" in details
            for node in nodes[2:]:
                assert f"{node.target}: {OWNER.lower()} holds 0 base units of WETH on chain {CHAIN}" in details
                assert node.node.processor.ledger.reservations == {}
            # The node asked first refuses at once, with its own reason.
            async with grpc.aio.insecure_channel(nodes[3].target) as channel:
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await withdrawal_pb2_grpc.WithdrawalServiceStub(channel).RequestRelease(release_request(nullifier, 10**17, 2), timeout=10)
            assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            assert "holds 0 base units of WETH" in (refused.value.details() or "")

    asyncio.run(main())


def test_every_honest_node_refuses_a_release_below_initial_margin(tmp_path: Path) -> None:
    async def main() -> None:
        async with AsyncExitStack() as stack:
            nodes = await network(tmp_path, 4, stack)
            for node in nodes:
                nullifier = await node.credit_fixture(0)
                short = perp(2, 0, START + 2, OWNER.lower(), 1, -2.0, 3000.0, chain_id=CHAIN)
                await node.node.certify(node.node.observe(2, START + 2, [short]))
                await node.node.settled()
            for node in nodes:
                async with grpc.aio.insecure_channel(node.target) as channel:
                    stub = withdrawal_pb2_grpc.WithdrawalServiceStub(channel)
                    with pytest.raises(grpc.aio.AioRpcError) as error:
                        await stub.SignRelease(release_request(nullifier, 3 * 10**17, 7), timeout=10)
                    assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION
                    assert "below initial margin" in (error.value.details() or "")
                assert node.held() == HALF_WETH and node.node.processor.ledger.reservations == {}

    asyncio.run(main())


def test_a_peer_signature_the_vault_would_reject_never_reaches_the_release(tmp_path: Path) -> None:
    class MalleatingPeer(withdrawal_pb2_grpc.WithdrawalServiceServicer):
        """A Byzantine node: signs honestly, then re-encodes v as 0/1, which eth-account
        still recovers but the vault's ecrecover check refuses."""

        def __init__(self, harness: Harness) -> None:
            self.harness = harness

        async def SignRelease(self, request: withdrawal_pb2.ReleaseRequest, context: Any) -> withdrawal_pb2.ReleaseSignature:
            _, _, signature = await self.harness.sign_release_with(request_from_proto(request), bytes(request.owner_signature))
            return withdrawal_pb2.ReleaseSignature(signer="byzantine", signature=signature[:64] + bytes([signature[64] - 27]))

        async def RequestRelease(self, request: withdrawal_pb2.ReleaseRequest, context: Any) -> withdrawal_pb2.Release:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "a Byzantine node gathers nothing")
            raise AssertionError("unreachable")

    async def main() -> None:
        async with AsyncExitStack() as stack:
            nodes = await network(tmp_path, 3, stack, processors=4)
            for node in nodes:
                nullifier = await node.credit_fixture(0)
            byzantine = grpc.aio.server()
            withdrawal_pb2_grpc.add_WithdrawalServiceServicer_to_server(MalleatingPeer(nodes[3].node), byzantine)
            byzantine.add_insecure_port(nodes[3].target)
            await byzantine.start()
            stack.push_async_callback(byzantine.stop, 0)
            async with grpc.aio.insecure_channel(nodes[0].target) as channel:
                release = await withdrawal_pb2_grpc.WithdrawalServiceStub(channel).RequestRelease(release_request(nullifier, 10**17, 3), timeout=10)
            assert len(release.signatures) == 3
            # Every signature passes the vault's rules (65 bytes, v in {27, 28}, low s), which
            # recovery enforces, and comes from a node-set member: the honest three.
            domain, order = release_parts(release)
            assert {recover_signer(domain, order, bytes(signature)) for signature in release.signatures} == set(NODE_SET[:3])

    asyncio.run(main())


def test_fuzzed_requests_to_every_method_never_break_the_server(tmp_path: Path) -> None:
    texts = st.text(max_size=120) | st.sampled_from(["", "0", "1" * 90, "²", "-5", "0x" + "ab" * 20, OWNER])
    blobs = st.binary(max_size=80)
    allowed = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.UNAVAILABLE}
    failures: list[object] = []

    async def main() -> None:
        async with AsyncExitStack() as stack:
            nodes = await network(tmp_path, 4, stack)
            await nodes[0].credit_fixture(0)
            await nodes[0].node.settled()
            before = nodes[0].node.money()
            channel = await stack.enter_async_context(grpc.aio.insecure_channel(nodes[0].target))
            claims = claim_pb2_grpc.ClaimServiceStub(channel)
            withdrawals = withdrawal_pb2_grpc.WithdrawalServiceStub(channel)
            loop = asyncio.get_running_loop()

            @settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
            @given(which=st.integers(0, 4), a=texts, b=texts, c=texts, d=texts, blob=blobs, signals=st.lists(texts, max_size=10), deadline=st.integers(0, 2**64 - 1))
            def fuzz(which: int, a: str, b: str, c: str, d: str, blob: bytes, signals: list[str], deadline: int) -> None:
                async def call() -> None:
                    try:
                        if which == 0:
                            await claims.SubmitClaim(claim_pb2.SubmitClaimRequest(proof_json=a, public_signals=signals), timeout=10)
                        elif which == 1:
                            await claims.GetClaim(claim_pb2.GetClaimRequest(nullifier=a), timeout=10)
                        elif which in (2, 3):
                            request = withdrawal_pb2.ReleaseRequest(
                                account=a, token=b, amount=c, recipient=d, nonce=blob, owner_signature=blob, deadline=deadline, chain_id=deadline % 2**63,
                            )
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
            await nodes[0].node.settled()
            assert nodes[0].node.money() == before
            assert nodes[0].node.processor.ledger.reservations == {} and nodes[0].node.store.orders() == []

    asyncio.run(main())
    assert failures == []
