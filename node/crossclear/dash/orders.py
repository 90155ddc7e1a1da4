"""Liquidations and withdrawals for the page.

- **Pending seizes and close-outs**: every node's `ListSeizeOrders` and `ListCloseOuts`,
  grouped by the exact order, with each signature checked (the signer is recovered under the
  vault's or the market's rules, never taken from the wire) and counted towards the quorum.
  The nodes answer the liquidator's identical calls every second, and asking again returns the
  same order, so reading them changes nothing.
- **Executed seizes, releases and close-outs**: the vaults' `Seized` and `Released` events and
  the markets' `Traded` events of close-outs, read from each chain's public RPC (the chain, not
  a node's database), with the transaction hash and the quorum signatures decoded from that
  transaction's call data, each signer recovered.
- **Withdrawals in flight**: the API has no call listing signed releases; each node's metrics
  count them (`release_signed`, `release_paid`, `reservation_expired` clearing events).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from crossclear.chains.vault_orders import ReleaseOrder, SeizeOrder, VaultDomain, recover_signer
from crossclear.dash import views
from crossclear.dash.config import ChainTarget
from crossclear.dash.nodes import NodeError, NodeSet, NodeWatcher
from crossclear.dash.topics import Topic
from crossclear.v1 import liquidation_pb2, liquidation_pb2_grpc

#: The page keeps the newest executed orders.
MAX_EXECUTED = 200
#: Blocks read per eth_getLogs call.
LOG_RANGE = 5000


def _recovered(chain_id: int, vault: str, order: SeizeOrder | ReleaseOrder, signature: bytes) -> str | None:
    try:
        return recover_signer(VaultDomain(chain_id=chain_id, vault=vault), order, signature)
    except (ValueError, TypeError):
        return None


def group_seizes(answers: dict[str, list[liquidation_pb2.SignedSeizeOrder]], watcher: NodeWatcher, quorum: int) -> list[dict[str, Any]]:
    """Orders from every node, grouped by exact content, with verified signers counted."""
    from web3 import Web3

    groups: dict[tuple[Any, ...], dict[str, Any]] = {}
    for node_name, orders in answers.items():
        for message in orders:
            key = (message.chain_id, message.vault.lower(), bytes(message.seize_id), message.account.lower(), message.token.lower(), message.amount, message.recipient.lower(), message.deadline)
            entry = groups.get(key)
            if entry is None:
                entry = views.seize_order(message) | {"signatures": [], "signers": []}
                entry.pop("signer"), entry.pop("signature")
                groups[key] = entry
            try:
                order = SeizeOrder(
                    seize_id=bytes(message.seize_id),
                    account=Web3.to_checksum_address(message.account),
                    token=Web3.to_checksum_address(message.token),
                    amount=int(message.amount),
                    recipient=Web3.to_checksum_address(message.recipient),
                    deadline=int(message.deadline),
                )
                signer = _recovered(message.chain_id, Web3.to_checksum_address(message.vault), order, bytes(message.signature))
            except ValueError:
                signer = None
            verified = signer is not None and signer.lower() == message.signer.lower()
            entry["signatures"].append(
                {
                    "node": node_name,
                    "signer": message.signer,
                    "signer_node": watcher.name_of_signer(message.signer),
                    "signature": "0x" + bytes(message.signature).hex(),
                    "verified": verified,
                }
            )
    for entry in groups.values():
        entry["signers"] = sorted({s["signer"].lower() for s in entry["signatures"] if s["verified"]})
        entry["quorum"] = quorum
        entry["has_quorum"] = len(entry["signers"]) >= quorum
    return sorted(groups.values(), key=lambda e: (e["account"].lower(), e["chain_id"], e["token"].lower()))


def group_close_outs(answers: dict[str, list[Any]], watcher: NodeWatcher, quorum: int, tokens: dict[tuple[int, str], str]) -> list[dict[str, Any]]:
    """Close-out orders from every node, grouped by exact content, with verified signers counted."""
    from web3 import Web3

    from crossclear.chains.interface import InstrumentKind
    from crossclear.chains.market_orders import CloseOut, MarketDomain, recover_close_out_signer

    groups: dict[tuple[Any, ...], dict[str, Any]] = {}
    for node_name, orders in answers.items():
        for message in orders:
            key = (
                message.chain_id, message.market.lower(), bytes(message.close_out_id), message.account.lower(), message.underlying.lower(), message.kind,
                message.strike, message.expiry, message.is_call, message.account_size, message.mark, message.max_discount_bps, message.start, message.deadline,
            )
            entry = groups.get(key)
            if entry is None:
                size, mark = int(message.account_size or 0) / 10**18, int(message.mark or 0) / 10**18
                symbol = tokens.get((message.chain_id, message.underlying.lower()), message.underlying)
                entry = {
                    "chain_id": message.chain_id, "market": message.market, "close_out_id": "0x" + bytes(message.close_out_id).hex(),
                    "account": message.account, "underlying": message.underlying, "asset": symbol,
                    "description": f"{size:+,.6g} {symbol} {'perp' if message.kind == 0 else ('call' if message.is_call else 'put')} from mark {mark:,.2f}",
                    "max_discount_bps": message.max_discount_bps, "start": message.start, "deadline": message.deadline,
                    "equity": views.number(message.equity), "maintenance": views.number(message.maintenance), "state_height": message.state_height,
                    "signatures": [], "signers": [],
                }
                groups[key] = entry
            signer: str | None
            try:
                close_out = CloseOut(
                    close_out_id=bytes(message.close_out_id), account=Web3.to_checksum_address(message.account),
                    underlying=Web3.to_checksum_address(message.underlying), kind=InstrumentKind(message.kind), strike=int(message.strike or 0),
                    expiry=int(message.expiry), is_call=bool(message.is_call), account_size=int(message.account_size), mark=int(message.mark),
                    max_discount_bps=int(message.max_discount_bps), start=int(message.start), deadline=int(message.deadline),
                )
                signer = recover_close_out_signer(MarketDomain(message.chain_id, Web3.to_checksum_address(message.market)), close_out, bytes(message.signature))
            except (ValueError, TypeError):
                signer = None
            entry["signatures"].append(
                {
                    "node": node_name,
                    "signer": message.signer,
                    "signer_node": watcher.name_of_signer(message.signer),
                    "signature": "0x" + bytes(message.signature).hex(),
                    "verified": signer is not None and signer.lower() == message.signer.lower(),
                }
            )
    for entry in groups.values():
        entry["signers"] = sorted({s["signer"].lower() for s in entry["signatures"] if s["verified"]})
        entry["quorum"] = quorum
        entry["has_quorum"] = len(entry["signers"]) >= quorum
    return sorted(groups.values(), key=lambda e: (e["account"].lower(), e["chain_id"], e["start"]))


@dataclass
class ChainReader:
    """Executed seizes and releases of one vault, read incrementally from its chain."""

    chain: ChainTarget
    next_block: int = -1
    executed: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    head: int | None = None
    _contract: Any = None
    _market: Any = None
    _web3: Any = None

    def _connect(self) -> None:
        if self._web3 is None:
            from web3 import HTTPProvider, Web3

            from crossclear.chains.artifacts import load_artifact

            self._web3 = Web3(HTTPProvider(self.chain.rpc_url, request_kwargs={"timeout": 3}))
            self._contract = self._web3.eth.contract(address=Web3.to_checksum_address(self.chain.vault), abi=list(load_artifact("CollateralVault").abi))
            if self.chain.market:
                self._market = self._web3.eth.contract(address=Web3.to_checksum_address(self.chain.market), abi=list(load_artifact("Market").abi))
            if self.next_block < 0:
                self.next_block = self.chain.deploy_block

    def read(self, name_of_signer: Any) -> None:
        """Read new events up to the head (blocking: run it on a worker thread)."""
        try:
            self._connect()
            head = int(self._web3.eth.block_number)
            self.head = head
            while self.next_block <= head:
                to_block = min(head, self.next_block + LOG_RANGE - 1)
                for kind, event in (("seize", self._contract.events.Seized), ("release", self._contract.events.Released)):
                    for log in event.get_logs(from_block=self.next_block, to_block=to_block):
                        self.executed.append(self._describe(kind, log, name_of_signer))
                if self._market is not None and hasattr(self._market.events, "Traded"):
                    for log in self._market.events.Traded.get_logs(from_block=self.next_block, to_block=to_block):
                        if any(bytes(log["args"].get("closeOutId", b"\0" * 32))):
                            self.executed.append(self._describe_close_out(log, name_of_signer))
                self.next_block = to_block + 1
            del self.executed[:-MAX_EXECUTED]
            self.error = None
        except Exception as error:  # any RPC or decoding failure: one line on the page, retried next round
            self.error = f"{self.chain.network} ({self.chain.rpc_url}): {type(error).__name__}: {' '.join(str(error).split())[:200]}"

    def _describe_close_out(self, log: Any, name_of_signer: Any) -> dict[str, Any]:
        """A close-out the node set signed and a liquidator took by auction (a `Traded` with a close-out id)."""
        args = log["args"]
        underlying = str(args["underlying"])
        symbol, _ = self.chain.tokens.get(underlying.lower(), (underlying, 0))
        signatures: list[dict[str, Any]] = []
        try:
            from crossclear.chains.interface import InstrumentKind
            from crossclear.chains.market_orders import CloseOut, MarketDomain, recover_close_out_signer

            transaction = self._web3.eth.get_transaction(log["transactionHash"])
            _, call = self._market.decode_function_input(transaction["input"])
            fields = tuple(call["c"].values()) if isinstance(call["c"], dict) else tuple(call["c"])
            close_out = CloseOut(
                close_out_id=bytes(fields[0]), account=str(fields[1]), underlying=str(fields[2]), kind=InstrumentKind(int(fields[3])),
                strike=int(fields[4]), expiry=int(fields[5]), is_call=bool(fields[6]), account_size=int(fields[7]), mark=int(fields[8]),
                max_discount_bps=int(fields[9]), start=int(fields[10]), deadline=int(fields[11]),
            )
            domain = MarketDomain(self.chain.chain_id, self._market.address)
            for signature in call["signatures"]:
                try:
                    signer: str | None = recover_close_out_signer(domain, close_out, bytes(signature))
                except (ValueError, TypeError):
                    signer = None
                signatures.append({"signer": signer, "signer_node": name_of_signer(signer) if signer else None, "signature": "0x" + bytes(signature).hex()})
        except Exception as error:  # the event stands on its own; the call data is extra
            signatures = [{"signer": None, "signer_node": None, "signature": f"call data unreadable: {type(error).__name__}"}]
        size = int(args["makerSize"]) / 10**18
        price = int(args["price"]) / 10**18
        return {
            "kind": "close-out",
            "chain_id": self.chain.chain_id,
            "network": self.chain.network,
            "block": int(log["blockNumber"]),
            "tx_hash": log["transactionHash"].to_0x_hex(),
            "id": "0x" + bytes(args["closeOutId"]).hex(),
            "account": str(args["maker"]),
            "token": underlying,
            "asset": symbol,
            "decimals": 0,
            "amount_units": None,
            "description": f"{size:+,.6g} {symbol} perp at {price:,.2f}" if int(args["kind"]) == 0 else f"{size:+,.6g} {symbol} option at {price:,.2f}",
            "recipient": str(args["taker"]),
            "deadline": None,
            "signatures": signatures,
        }

    def _describe(self, kind: str, log: Any, name_of_signer: Any) -> dict[str, Any]:
        args = log["args"]
        order_id = bytes(args["seizeId"] if kind == "seize" else args["releaseId"])
        token = str(args["token"])
        symbol, decimals = self.chain.tokens.get(token.lower(), (token, 0))
        signatures: list[dict[str, Any]] = []
        deadline = None
        try:
            transaction = self._web3.eth.get_transaction(log["transactionHash"])
            _, call = self._contract.decode_function_input(transaction["input"])
            deadline = int(call["deadline"])
            order_type = SeizeOrder if kind == "seize" else ReleaseOrder
            order = order_type(order_id, str(args["account"]), token, int(args["amount"]), str(args["recipient"]), deadline)
            for signature in call["signatures"]:
                signer = _recovered(self.chain.chain_id, self._contract.address, order, bytes(signature))
                signatures.append({"signer": signer, "signer_node": name_of_signer(signer) if signer else None, "signature": "0x" + bytes(signature).hex()})
        except Exception as error:  # the event stands on its own; the call data is extra
            signatures = [{"signer": None, "signer_node": None, "signature": f"call data unreadable: {type(error).__name__}"}]
        return {
            "kind": kind,
            "chain_id": self.chain.chain_id,
            "network": self.chain.network,
            "block": int(log["blockNumber"]),
            "tx_hash": log["transactionHash"].to_0x_hex(),
            "id": "0x" + order_id.hex(),
            "account": str(args["account"]),
            "token": token,
            "asset": symbol,
            "decimals": decimals,
            "amount_units": str(int(args["amount"])),
            "recipient": str(args["recipient"]),
            "deadline": deadline,
            "signatures": signatures,
        }


class OrdersWatcher:
    """Pending seize orders from the nodes, executed orders from the chains, release counts
    from the metrics; published as one document."""

    def __init__(self, node_set: NodeSet, watcher: NodeWatcher, chains: tuple[ChainTarget, ...], topic: Topic) -> None:
        self.node_set = node_set
        self.watcher = watcher
        self.readers = [ChainReader(chain) for chain in chains]
        self.topic = topic

    async def run(self) -> None:
        interval = self.node_set.config.orders_poll_seconds
        while True:
            started = time.monotonic()
            await self.poll_once()
            await asyncio.sleep(max(0.1, interval - (time.monotonic() - started)))

    async def poll_once(self) -> None:
        up = self.watcher.up_nodes()
        calls = [
            self.node_set.call(node, liquidation_pb2_grpc.LiquidationServiceStub, "ListSeizeOrders", liquidation_pb2.ListSeizeOrdersRequest(), timeout=3.0)
            for node in up
        ]
        has_close_outs = hasattr(liquidation_pb2, "ListCloseOutsRequest")
        close_out_calls = [
            self.node_set.call(node, liquidation_pb2_grpc.LiquidationServiceStub, "ListCloseOuts", liquidation_pb2.ListCloseOutsRequest(), timeout=3.0)
            for node in (up if has_close_outs else [])
        ]
        replies = await asyncio.gather(*calls, *close_out_calls, return_exceptions=True)
        answers: dict[str, list[liquidation_pb2.SignedSeizeOrder]] = {}
        close_answers: dict[str, list[Any]] = {}
        errors = []
        for node, reply in zip(up + up, replies):
            if isinstance(reply, liquidation_pb2.ListSeizeOrdersResponse):
                answers[node.name] = list(reply.orders)
            elif has_close_outs and isinstance(reply, liquidation_pb2.ListCloseOutsResponse):
                close_answers[node.name] = list(reply.orders)
            else:
                errors.append(str(reply) if isinstance(reply, NodeError) else f"{node.name}: {type(reply).__name__}: {reply}")
        await asyncio.gather(*(asyncio.to_thread(reader.read, self.watcher.name_of_signer) for reader in self.readers))
        quorum = self.node_set.config.quorum()
        pending = await asyncio.to_thread(group_seizes, answers, self.watcher, quorum)
        tokens = {(reader.chain.chain_id, address): symbol for reader in self.readers for address, (symbol, _) in reader.chain.tokens.items()}
        pending_close_outs = await asyncio.to_thread(group_close_outs, close_answers, self.watcher, quorum, tokens)
        executed = sorted((entry for reader in self.readers for entry in reader.executed), key=lambda e: (e["block"], e["chain_id"]), reverse=True)
        executed_ids = {entry["id"] for entry in executed}
        for entry in pending:
            entry["paid_on_chain"] = entry["seize_id"] in executed_ids
        for entry in pending_close_outs:
            entry["paid_on_chain"] = entry["close_out_id"] in executed_ids
        self.topic.publish(
            views.finite(
                {
                    "time": time.time(),
                    "quorum": quorum,
                    "asked": [node.name for node in up],
                    "errors": errors + [reader.error for reader in self.readers if reader.error],
                    "pending_seizes": pending,
                    "pending_close_outs": pending_close_outs,
                    "executed": executed[:MAX_EXECUTED],
                    "chains": [{"network": r.chain.network, "chain_id": r.chain.chain_id, "head": r.head, "vault": r.chain.vault} for r in self.readers],
                    "releases": self._release_counts(),
                }
            )
        )

    def _release_counts(self) -> list[dict[str, Any]]:
        rows = []
        for node in self.node_set.nodes:
            samples = self.watcher.samples.get(node.name)
            if samples is None:
                rows.append({"node": node.name, "available": False})
                continue
            events = samples.by_label("crossclear_clearing_events_total", "event")
            releases = samples.by_label("crossclear_releases_total", "result")
            rows.append(
                {
                    "node": node.name,
                    "available": True,
                    "requests_signed": releases.get("signed", 0.0),
                    "requests_refused": releases.get("refused", 0.0),
                    "release_signed": events.get("release_signed", 0.0),
                    "release_paid": events.get("release_paid", 0.0),
                    "seize_signed": events.get("seize_signed", 0.0),
                    "seize_paid": events.get("seize_paid", 0.0),
                    "close_out_signed": events.get("close_out_signed", 0.0),
                    "expired": events.get("reservation_expired", 0.0),
                }
            )
        return rows
