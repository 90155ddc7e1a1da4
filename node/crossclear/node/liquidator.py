"""The liquidator: collects the nodes' signed seize orders and submits quorum-backed ones.

It trusts no node: every signature is recovered and checked against the node set, orders are
grouped by their exact content, and an order goes to the vault only when at least
floor(2n/3)+1 distinct members signed that very order. The vault checks the same again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import grpc
from eth_account import Account
from web3 import HTTPProvider, Web3

from crossclear.chains.artifacts import load_artifact
from crossclear.chains.vault_orders import SeizeOrder, VaultDomain, quorum_signatures, recover_signer, threshold
from crossclear.v1 import liquidation_pb2, liquidation_pb2_grpc

NODE_TIMEOUT_SECONDS = 3.0


@dataclass(frozen=True)
class SeizeSubmission:
    """An order the liquidator sent to a vault, with the signers that backed it."""

    domain: VaultDomain
    order: SeizeOrder
    signers: tuple[str, ...]
    transaction_hash: str


def _order_from_proto(message: liquidation_pb2.SignedSeizeOrder) -> tuple[VaultDomain, SeizeOrder]:
    domain = VaultDomain(chain_id=message.chain_id, vault=Web3.to_checksum_address(message.vault))
    order = SeizeOrder(
        seize_id=bytes(message.seize_id),
        account=Web3.to_checksum_address(message.account),
        token=Web3.to_checksum_address(message.token),
        amount=int(message.amount),
        recipient=Web3.to_checksum_address(message.recipient),
    )
    return domain, order


class Liquidator:
    """Gathers signatures from every node and submits seizes that reached a quorum."""

    def __init__(self, node_targets: Sequence[str], node_set: Sequence[str], chain_rpc: Mapping[int, str], private_key: bytes) -> None:
        """`node_targets` are the nodes' gRPC host:port; `chain_rpc` maps chain id to RPC URL."""
        self._targets = list(node_targets)
        self._node_set = {address.lower() for address in node_set}
        self._threshold = threshold(len(node_set))
        self._chains = dict(chain_rpc)
        self._account = Account.from_key(private_key)

    async def _orders_from(self, target: str) -> list[liquidation_pb2.SignedSeizeOrder]:
        try:
            async with grpc.aio.insecure_channel(target) as channel:
                stub = liquidation_pb2_grpc.LiquidationServiceStub(channel)
                reply = await stub.ListSeizeOrders(liquidation_pb2.ListSeizeOrdersRequest(), timeout=NODE_TIMEOUT_SECONDS)
                return list(reply.orders)
        except grpc.aio.AioRpcError:
            return []  # a node that is down simply contributes no signature

    async def collect(self) -> dict[tuple[VaultDomain, SeizeOrder], dict[str, bytes]]:
        """Valid node-set signatures per exact order."""
        answers = await asyncio.gather(*(self._orders_from(target) for target in self._targets))
        collected: dict[tuple[VaultDomain, SeizeOrder], dict[str, bytes]] = {}
        for orders in answers:
            for message in orders:
                try:
                    domain, order = _order_from_proto(message)
                    signer = recover_signer(domain, order, bytes(message.signature)).lower()
                except (ValueError, TypeError):
                    continue
                if signer in self._node_set:
                    collected.setdefault((domain, order), {})[signer] = bytes(message.signature)
        return collected

    async def run_once(self) -> list[SeizeSubmission]:
        """One round: collect, then submit every order with a quorum not yet used on-chain."""
        submitted = []
        for (domain, order), by_signer in (await self.collect()).items():
            if len(by_signer) < self._threshold or domain.chain_id not in self._chains:
                continue
            signatures = quorum_signatures(domain, order, by_signer.values())
            transaction = await asyncio.to_thread(self._submit, domain, order, signatures)
            if transaction is not None:
                submitted.append(SeizeSubmission(domain, order, tuple(sorted(by_signer)), transaction))
        return submitted

    def _submit(self, domain: VaultDomain, order: SeizeOrder, signatures: list[bytes]) -> str | None:
        web3 = Web3(HTTPProvider(self._chains[domain.chain_id], request_kwargs={"timeout": 10}))
        vault = web3.eth.contract(address=Web3.to_checksum_address(domain.vault), abi=list(load_artifact("CollateralVault").abi))
        if vault.functions.seizeUsed(order.seize_id).call():
            return None
        call = vault.functions.seize(order.seize_id, order.account, order.token, order.amount, order.recipient, signatures)
        transaction = call.build_transaction(
            {"from": self._account.address, "nonce": web3.eth.get_transaction_count(self._account.address), "chainId": domain.chain_id}
        )
        signed = self._account.sign_transaction(transaction)
        transaction_hash = web3.eth.send_raw_transaction(signed.raw_transaction)
        receipt = web3.eth.wait_for_transaction_receipt(transaction_hash, timeout=30)
        if receipt["status"] != 1:
            raise RuntimeError(f"seize {order.seize_id.hex()} reverted in transaction {transaction_hash.hex()}")
        return str(transaction_hash.to_0x_hex())
