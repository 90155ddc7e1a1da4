"""WithdrawalService: gather a quorum of node signatures for a vault Release.

The node that receives RequestRelease checks and signs first (an honest node refuses early
and says why), then asks every peer's SignRelease concurrently. Peers check everything
themselves; their signatures are verified here before they count. The release returns as
soon as a quorum signed, with signatures in the order the vault requires.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import grpc
from eth_utils.address import to_checksum_address

from crossclear.chains.vault_orders import ReleaseOrder, VaultDomain, quorum_signatures, recover_signer, threshold
from crossclear.node.withdrawals import WithdrawalRefused, WithdrawalRequest
from crossclear.v1 import withdrawal_pb2, withdrawal_pb2_grpc

#: How long a peer has to answer SignRelease.
PEER_TIMEOUT_SECONDS = 3.0


def request_from_proto(message: withdrawal_pb2.ReleaseRequest) -> WithdrawalRequest:
    """Parse the request; WithdrawalRefused names the field that is wrong."""
    value = message.amount
    if not (value.isascii() and value.isdigit()) or len(value) > 80:
        raise WithdrawalRefused(f"amount must be a decimal integer of base units, got {value[:80]!r}")
    return WithdrawalRequest(
        account=message.account,
        chain_id=message.chain_id,
        token=message.token,
        amount=int(message.amount),
        recipient=message.recipient,
        nonce=bytes(message.nonce),
        deadline=message.deadline,
    )


#: Checks, reserves and signs a release at this node (the processor answers).
SignRelease = Callable[[WithdrawalRequest, bytes], Awaitable[tuple[VaultDomain, ReleaseOrder, bytes]]]


class WithdrawalServicer(withdrawal_pb2_grpc.WithdrawalServiceServicer):
    """Releases for account owners; signatures for peer nodes."""

    def __init__(self, sign_release: SignRelease, node_set: Sequence[str], peer_targets: Sequence[str]) -> None:
        """`sign_release` asks this node's processor to check, reserve and sign; `node_set` is
        every signer address; `peer_targets` the peers' gRPC host:port."""
        self._sign_release = sign_release
        self._node_set = {int(address, 16) for address in node_set}
        self._threshold = threshold(len(node_set))
        self._peers = list(peer_targets)

    async def _sign_here(self, request: withdrawal_pb2.ReleaseRequest, context: Any) -> tuple[VaultDomain, ReleaseOrder, bytes]:
        """This node's own checks and signature; a refusal ends the call with its reason."""
        try:
            parsed = request_from_proto(request)
            return await self._sign_release(parsed, bytes(request.owner_signature))
        except WithdrawalRefused as error:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(error))
            raise  # abort raises; this line only tells the type checker

    async def SignRelease(self, request: withdrawal_pb2.ReleaseRequest, context: Any) -> withdrawal_pb2.ReleaseSignature:
        domain, order, signature = await self._sign_here(request, context)
        return withdrawal_pb2.ReleaseSignature(signer=recover_signer(domain, order, signature), signature=signature)

    async def RequestRelease(self, request: withdrawal_pb2.ReleaseRequest, context: Any) -> withdrawal_pb2.Release:
        domain, order, own = await self._sign_here(request, context)
        signatures = {int(recover_signer(domain, order, own), 16): own}
        refusals: list[str] = []
        pending = {asyncio.ensure_future(self._ask_peer(target, request)) for target in self._peers}
        try:
            while pending and len(signatures) < self._threshold:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    answer = task.result()
                    if isinstance(answer, str):
                        refusals.append(answer)
                        continue
                    signer = self._valid_signer(domain, order, answer)
                    if signer is None:
                        refusals.append(f"{answer.signer}: signature is not one the vault accepts from a node-set member")
                    else:
                        signatures.setdefault(signer, bytes(answer.signature))
        finally:
            for task in pending:
                task.cancel()
        if len(signatures) < self._threshold:
            await context.abort(
                grpc.StatusCode.UNAVAILABLE,
                f"only {len(signatures)} of {len(self._node_set)} nodes signed, the vault needs {self._threshold}: " + "; ".join(refusals),
            )
        # Exactly a quorum: the vault needs no more, and fewer signatures cost less gas.
        ordered = quorum_signatures(domain, order, signatures.values())[: self._threshold]
        return withdrawal_pb2.Release(
            chain_id=domain.chain_id,
            vault=to_checksum_address(domain.vault),
            release_id=order.release_id,
            account=order.account,
            token=order.token,
            amount=str(order.amount),
            recipient=order.recipient,
            signatures=ordered,
            signers=[recover_signer(domain, order, s) for s in ordered],
            threshold=self._threshold,
            deadline=order.deadline,
        )

    def _valid_signer(self, domain: VaultDomain, order: ReleaseOrder, answer: withdrawal_pb2.ReleaseSignature) -> int | None:
        # Recovery applies the vault's rules: a signature the vault would refuse counts for nothing.
        try:
            signer = int(recover_signer(domain, order, bytes(answer.signature)), 16)
        except ValueError:  # a peer's garbage signature is its problem, not ours
            return None
        return signer if signer in self._node_set else None

    async def _ask_peer(self, target: str, request: withdrawal_pb2.ReleaseRequest) -> withdrawal_pb2.ReleaseSignature | str:
        try:
            async with grpc.aio.insecure_channel(target) as channel:
                stub = withdrawal_pb2_grpc.WithdrawalServiceStub(channel)
                answer: withdrawal_pb2.ReleaseSignature = await stub.SignRelease(request, timeout=PEER_TIMEOUT_SECONDS)
                return answer
        except grpc.aio.AioRpcError as error:
            return f"{target}: {error.details() or error.code().name}"
