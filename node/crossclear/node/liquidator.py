"""The liquidator: collects the nodes' signed close-out and seize orders and submits quorum-backed ones.

As the backstop of close-outs it takes the defaulting account's position in the market's Dutch
auction (at the auction's current price, which the contract computes from the block's time).

It trusts no node: every signature is recovered and checked against the node set, orders are
grouped by their exact content, and an order goes to the vault only when at least
floor(2n/3)+1 distinct members signed that very order. The vault checks the same again.

Each order is handled on its own: one whose deadline has passed by the chain's latest block
(never the wall clock) or whose id is spent is skipped, and one that reverts, meets an RPC
error or cannot be sent is logged and counted; the round goes on to the next order.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from eth_account import Account
from web3 import HTTPProvider, Web3
from web3.exceptions import ContractLogicError, TimeExhausted, Web3Exception

from crossclear.chains.artifacts import load_artifact
from crossclear.chains.interface import InstrumentKind
from crossclear.chains.market_orders import CloseOut, MarketDomain, auction_price, recover_close_out_signer
from crossclear.chains.market_orders import quorum_signatures as close_out_quorum
from crossclear.chains.vault_orders import SeizeOrder, VaultDomain, quorum_signatures, recover_signer, threshold
from crossclear.v1 import liquidation_pb2, liquidation_pb2_grpc

NODE_TIMEOUT_SECONDS = 3.0
RECEIPT_TIMEOUT_SECONDS = 30.0

_log = logging.getLogger("crossclear.liquidator")

#: Reasons an order was not submitted although it had a quorum (keys of `Liquidator.skipped`).
SKIP_EXPIRED = "expired"
SKIP_USED = "used"
SKIP_EARLY = "not_started"
#: Reasons a submission failed (keys of `Liquidator.errors`).
ERROR_REVERTED = "reverted"
ERROR_RPC = "rpc_error"
ERROR_SEND = "send_failed"
ERROR_UNEXPECTED = "unexpected"


@dataclass(frozen=True)
class CloseOutSubmission:
    """A close-out the liquidator took in a market, with the signers that backed it."""

    domain: MarketDomain
    order: CloseOut
    signers: tuple[str, ...]
    transaction_hash: str


def _close_out_from_proto(message: liquidation_pb2.SignedCloseOut) -> tuple[MarketDomain, CloseOut]:
    domain = MarketDomain(chain_id=message.chain_id, market=Web3.to_checksum_address(message.market))
    order = CloseOut(
        close_out_id=bytes(message.close_out_id),
        account=Web3.to_checksum_address(message.account),
        underlying=Web3.to_checksum_address(message.underlying),
        kind=InstrumentKind(message.kind),
        strike=int(message.strike),
        expiry=int(message.expiry),
        is_call=message.is_call,
        account_size=int(message.account_size),
        mark=int(message.mark),
        max_discount_bps=int(message.max_discount_bps),
        start=int(message.start),
        deadline=int(message.deadline),
    )
    return domain, order


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
        deadline=int(message.deadline),
    )
    return domain, order


class _Skipped(Exception):
    """The order is not worth a transaction (expired or already used); not an error."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


class _SubmitFailed(Exception):
    """A submission failed for `reason` (one of the ERROR_* constants)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


class Liquidator:
    """Gathers signatures from every node and submits seizes that reached a quorum."""

    submitted: int
    """Seizes sent and mined successfully since start."""
    errors: Counter[str]
    """Failed submissions since start, by reason: reverted, rpc_error, send_failed, unexpected."""
    skipped: Counter[str]
    """Quorum-backed orders not sent since start, by reason: expired, used."""

    def __init__(self, node_targets: Sequence[str], node_set: Sequence[str], chain_rpc: Mapping[int, str], private_key: bytes) -> None:
        """`node_targets` are the nodes' gRPC host:port; `chain_rpc` maps chain id to RPC URL."""
        self._targets = list(node_targets)
        self._node_set = {address.lower() for address in node_set}
        self._threshold = threshold(len(node_set))
        self._chains = dict(chain_rpc)
        self._account = Account.from_key(private_key)
        self.submitted = 0
        self.errors = Counter()
        self.skipped = Counter()

    async def _ask(self, target: str, method: str, request: Any) -> list[Any]:
        """One node's signed orders from a LiquidationService list call ([] when it is down)."""
        try:
            async with grpc.aio.insecure_channel(target) as channel:
                stub = liquidation_pb2_grpc.LiquidationServiceStub(channel)
                reply = await getattr(stub, method)(request, timeout=NODE_TIMEOUT_SECONDS)
                return list(reply.orders)
        except grpc.aio.AioRpcError:
            return []  # a node that is down simply contributes no signature

    async def _gather(
        self, method: str, request: Any, parse: Callable[[Any], tuple[Any, Any]], recover: Callable[[Any, Any, bytes], str]
    ) -> dict[tuple[Any, Any], dict[str, bytes]]:
        """Valid node-set signatures per exact order, from every node at once."""
        answers = await asyncio.gather(*(self._ask(target, method, request) for target in self._targets))
        collected: dict[tuple[Any, Any], dict[str, bytes]] = {}
        for orders in answers:
            for message in orders:
                try:
                    domain, order = parse(message)
                    signer = recover(domain, order, bytes(message.signature)).lower()
                except (ValueError, TypeError):
                    continue
                if signer in self._node_set:
                    collected.setdefault((domain, order), {})[signer] = bytes(message.signature)
        return collected

    async def collect(self) -> dict[tuple[VaultDomain, SeizeOrder], dict[str, bytes]]:
        """Valid node-set signatures per exact seize order."""
        return await self._gather("ListSeizeOrders", liquidation_pb2.ListSeizeOrdersRequest(), _order_from_proto, recover_signer)

    async def run_once(self) -> list[SeizeSubmission]:
        """One round: collect, then submit every order with a quorum that is neither expired
        (by the chain's latest block) nor used on-chain. A failing order is logged and counted
        in `errors`; it never stops the round."""
        submitted = []
        for (domain, order), by_signer in (await self.collect()).items():
            if len(by_signer) < self._threshold or domain.chain_id not in self._chains:
                continue
            signatures = quorum_signatures(domain, order, by_signer.values())
            try:
                transaction = await asyncio.to_thread(self._submit, domain, order, signatures)
            except _Skipped as skipped:
                self.skipped[skipped.reason] += 1
                _log.debug("seize %s on chain %d skipped: %s", order.seize_id.hex(), domain.chain_id, skipped)
                continue
            except _SubmitFailed as failed:
                self._failed(domain, order, failed.reason, str(failed))
                continue
            except Exception as error:  # a bug or an unforeseen client error: keep the liquidator alive
                self._failed(domain, order, ERROR_UNEXPECTED, f"{type(error).__name__}: {error}")
                _log.debug("seize %s traceback", order.seize_id.hex(), exc_info=True)
                continue
            self.submitted += 1
            submitted.append(SeizeSubmission(domain, order, tuple(sorted(by_signer)), transaction))
        return submitted

    async def collect_close_outs(self) -> dict[tuple[MarketDomain, CloseOut], dict[str, bytes]]:
        """Valid node-set signatures per exact close-out."""
        return await self._gather("ListCloseOuts", liquidation_pb2.ListCloseOutsRequest(), _close_out_from_proto, recover_close_out_signer)

    async def close_out_once(self) -> list[CloseOutSubmission]:
        """One round of close-outs: take every quorum-backed one whose auction is open now."""
        taken = []
        for (domain, order), by_signer in (await self.collect_close_outs()).items():
            if len(by_signer) < self._threshold or domain.chain_id not in self._chains:
                continue
            signatures = close_out_quorum(domain, order, by_signer.values())
            try:
                transaction = await asyncio.to_thread(self._take, domain, order, signatures)
            except _Skipped as skipped:
                self.skipped[skipped.reason] += 1
                continue
            except _SubmitFailed as failed:
                self._failed_close_out(order, failed.reason, str(failed))
                continue
            except Exception as error:  # keep the backstop alive whatever one order does
                self._failed_close_out(order, ERROR_UNEXPECTED, f"{type(error).__name__}: {error}")
                continue
            self.submitted += 1
            taken.append(CloseOutSubmission(domain, order, tuple(sorted(by_signer)), transaction))
        return taken

    def _failed_close_out(self, order: CloseOut, reason: str, detail: str) -> None:
        self.errors[reason] += 1
        _log.warning("close-out %s failed (%s): %s", order.close_out_id.hex(), reason, " ".join(detail.split()))

    def _take(self, domain: MarketDomain, order: CloseOut, signatures: list[bytes]) -> str:
        web3 = Web3(HTTPProvider(self._chains[domain.chain_id], request_kwargs={"timeout": 10}))
        market = web3.eth.contract(address=Web3.to_checksum_address(domain.market), abi=list(load_artifact("Market").abi))
        try:
            chain_time = int(web3.eth.get_block("latest")["timestamp"])
            if chain_time > order.deadline:
                raise _Skipped(SKIP_EXPIRED, f"auction ended at {order.deadline}, block time {chain_time}")
            if chain_time < order.start:
                raise _Skipped(SKIP_EARLY, f"auction starts at {order.start}")
            if market.functions.closeOutUsed(order.close_out_id).call():
                raise _Skipped(SKIP_USED, "close-out id already used")
            # The auction only moves in the backstop's favour, so today's price bounds what it accepts.
            limit = auction_price(order, chain_time)
            call = market.functions.closeOut(order.as_abi(), signatures, limit)
        except ValueError as error:
            raise _Skipped(SKIP_EXPIRED, str(error)) from error
        return self._send(web3, call, domain.chain_id)

    def _failed(self, domain: VaultDomain, order: SeizeOrder, reason: str, detail: str) -> None:
        self.errors[reason] += 1
        detail = " ".join(detail.split())  # one log line, whatever the client's message holds
        _log.warning("seize %s on chain %d failed (%s): %s", order.seize_id.hex(), domain.chain_id, reason, detail)

    def _submit(self, domain: VaultDomain, order: SeizeOrder, signatures: list[bytes]) -> str:
        """Send one seize and wait for its receipt; raises _Skipped or _SubmitFailed."""
        web3 = Web3(HTTPProvider(self._chains[domain.chain_id], request_kwargs={"timeout": 10}))
        vault = web3.eth.contract(address=Web3.to_checksum_address(domain.vault), abi=list(load_artifact("CollateralVault").abi))
        try:
            chain_time = int(web3.eth.get_block("latest")["timestamp"])
            if chain_time > order.deadline:
                raise _Skipped(SKIP_EXPIRED, f"deadline {order.deadline} passed at block time {chain_time}")
            if vault.functions.seizeUsed(order.seize_id).call():
                raise _Skipped(SKIP_USED, "seize id already used")
            call = vault.functions.seize(
                order.seize_id, order.account, order.token, order.amount, order.recipient, order.deadline, signatures
            )
        except (Web3Exception, OSError) as error:
            raise _SubmitFailed(ERROR_RPC, f"{type(error).__name__}: {error}") from error
        return self._send(web3, call, domain.chain_id)

    def _send(self, web3: Web3, call: Any, chain_id: int) -> str:
        """Build, sign and send one contract call and wait for its receipt; raises _SubmitFailed."""
        try:
            # "pending": a transaction of an earlier round that is still unmined keeps its nonce.
            nonce = web3.eth.get_transaction_count(self._account.address, "pending")
            transaction = call.build_transaction({"from": self._account.address, "nonce": nonce, "chainId": chain_id})
        except ContractLogicError as error:  # gas estimation ran the call and it reverted
            raise _SubmitFailed(ERROR_REVERTED, error.message or str(error)) from error
        except (Web3Exception, OSError) as error:
            raise _SubmitFailed(ERROR_RPC, f"{type(error).__name__}: {error}") from error
        signed = self._account.sign_transaction(transaction)
        try:
            transaction_hash = web3.eth.send_raw_transaction(signed.raw_transaction)
        except (Web3Exception, OSError) as error:
            raise _SubmitFailed(ERROR_SEND, f"{type(error).__name__}: {error}") from error
        try:
            receipt = web3.eth.wait_for_transaction_receipt(transaction_hash, timeout=RECEIPT_TIMEOUT_SECONDS)
        except TimeExhausted as error:
            raise _SubmitFailed(ERROR_RPC, f"no receipt for {transaction_hash.to_0x_hex()} in {RECEIPT_TIMEOUT_SECONDS:.0f} s") from error
        except (Web3Exception, OSError) as error:
            raise _SubmitFailed(ERROR_RPC, f"{type(error).__name__}: {error}") from error
        if receipt["status"] != 1:
            raise _SubmitFailed(ERROR_REVERTED, f"reverted in transaction {transaction_hash.to_0x_hex()}")
        return str(transaction_hash.to_0x_hex())
