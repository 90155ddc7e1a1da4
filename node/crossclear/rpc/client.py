"""Calling a node's API: small async helpers shared by the CLI and the demo, plus how
their answers print for people."""

from __future__ import annotations

import json
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
from eth_account import Account

from crossclear._errors import UsageError
from crossclear.node.withdrawals import WithdrawalRequest, sign_request
from crossclear.v1 import claim_pb2, claim_pb2_grpc, margin_pb2, margin_pb2_grpc, node_pb2, node_pb2_grpc, withdrawal_pb2, withdrawal_pb2_grpc

MODES = ("isolated", "cross_siloed", "cross", "portfolio")
CALL_TIMEOUT_SECONDS = 30.0
#: Where a node is looked for when neither --node nor a running devnet names one.
DEFAULT_NODE = "127.0.0.1:50051"


def _accepts(address: str, timeout: float = 0.3) -> bool:
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False


def devnet_node(state_dir: Path | None = None) -> tuple[str, str, Path] | None:
    """(name, gRPC address, manifest path) of the running devnet's first node that accepts
    connections (the first listed when none does); None when no devnet manifest names a node."""
    from crossclear.devnet.manifest import default_state_dir, manifest_path, read_manifest

    directory = state_dir if state_dir is not None else default_state_dir()
    manifest = read_manifest(directory)
    nodes = [node for node in (manifest or {}).get("nodes", []) if isinstance(node, dict) and node.get("rpc")]
    if not nodes:
        return None
    chosen = next((node for node in nodes if _accepts(str(node["rpc"]))), nodes[0])
    return str(chosen.get("name", chosen["rpc"])), str(chosen["rpc"]), manifest_path(directory)


def resolve_node(node: str | None, say: Callable[[str], object] | None = None) -> str:
    """`node` when given; else a node of the running devnet, else DEFAULT_NODE. When the node
    was not given, one line on standard error says which one is used and why."""
    if node:
        return node
    tell = say if say is not None else (lambda line: print(line, file=sys.stderr, flush=True))
    found = devnet_node()
    if found is None:
        from crossclear.devnet.manifest import default_state_dir, manifest_path

        tell(f"crossclear: no --node given and no devnet is running (no manifest at {manifest_path(default_state_dir())}); trying {DEFAULT_NODE}")
        return DEFAULT_NODE
    name, address, path = found
    tell(f"crossclear: using {name} at {address} (from the devnet manifest {path}; --node chooses another)")
    return address


def _unavailable(target: str, error: grpc.aio.AioRpcError) -> UsageError:
    if error.code() == grpc.StatusCode.UNAVAILABLE and "connect" in (error.details() or "").lower():
        return UsageError(f"node {target} is unreachable: {error.details()}")
    return UsageError(f"node {target} answered {error.code().name}: {error.details()}")


async def _call(target: str, stub_type: Callable[[grpc.aio.Channel], Any], method: str, request: Any) -> Any:
    """One unary call to a node; every failure becomes one UsageError line naming the node."""
    async with grpc.aio.insecure_channel(target) as channel:
        try:
            return await getattr(stub_type(channel), method)(request, timeout=CALL_TIMEOUT_SECONDS)
        except grpc.aio.AioRpcError as error:
            raise _unavailable(target, error) from None


async def get_margin(target: str, account: str) -> margin_pb2.AccountMargin:
    reply: margin_pb2.AccountMargin = await _call(target, margin_pb2_grpc.MarginServiceStub, "GetMargin", margin_pb2.GetMarginRequest(account=account))
    return reply


async def stream_margin(target: str, account: str, show: Callable[[margin_pb2.AccountMargin], object]) -> None:
    """Print every margin update the node pushes until interrupted."""
    async with grpc.aio.insecure_channel(target) as channel:
        try:
            async for update in margin_pb2_grpc.MarginServiceStub(channel).StreamMargin(margin_pb2.StreamMarginRequest(account=account)):
                show(update)
        except grpc.aio.AioRpcError as error:
            raise _unavailable(target, error) from None


async def submit_claim(target: str, proof_document: Any, public_signals: list[str]) -> claim_pb2.SubmitClaimResponse:
    request = claim_pb2.SubmitClaimRequest(proof_json=json.dumps(proof_document), public_signals=public_signals)
    reply: claim_pb2.SubmitClaimResponse = await _call(target, claim_pb2_grpc.ClaimServiceStub, "SubmitClaim", request)
    return reply


async def get_claim(target: str, nullifier: str) -> claim_pb2.Claim:
    reply: claim_pb2.Claim = await _call(target, claim_pb2_grpc.ClaimServiceStub, "GetClaim", claim_pb2.GetClaimRequest(nullifier=nullifier))
    return reply


async def request_release(
    target: str,
    owner_key: bytes,
    chain_id: int,
    token: str,
    amount: int,
    recipient: str,
    nonce: bytes,
    clearinghouse_domain: int,
    valid_for_seconds: int = 3600,
) -> withdrawal_pb2.Release:
    """Sign a withdrawal request with the owner's key and ask the node for a quorum release."""
    owner = Account.from_key(owner_key).address
    request = WithdrawalRequest(owner, chain_id, token, amount, recipient, nonce, int(time.time()) + valid_for_seconds)
    message = withdrawal_pb2.ReleaseRequest(
        account=owner,
        chain_id=chain_id,
        token=token,
        amount=str(amount),
        recipient=recipient,
        nonce=nonce,
        deadline=request.deadline,
        owner_signature=sign_request(request, clearinghouse_domain, owner_key),
    )
    reply: withdrawal_pb2.Release = await _call(target, withdrawal_pb2_grpc.WithdrawalServiceStub, "RequestRelease", message)
    return reply


async def node_status(target: str) -> node_pb2.NodeStatus:
    reply: node_pb2.NodeStatus = await _call(target, node_pb2_grpc.NodeServiceStub, "GetStatus", node_pb2.GetNodeStatusRequest())
    return reply


def read_key_file(path: Path) -> bytes:
    """A hex secp256k1 private key from a file, with a clear error."""
    try:
        text = path.read_text().strip().removeprefix("0x")
        key = bytes.fromhex(text)
    except (OSError, ValueError) as error:
        raise UsageError(f"{path}: cannot read a hex private key ({error})") from None
    if len(key) != 32:
        raise UsageError(f"{path}: a private key is 32 bytes, this file holds {len(key)}")
    return key


def format_margin(margin: margin_pb2.AccountMargin) -> str:
    """An account's margin for people: collateral, positions, the four modes side by side."""
    lines = [f"account {margin.account}   state height {margin.state_height}   prices {'fresh' if margin.prices_fresh else 'STALE: ' + ', '.join(margin.stale_feeds)}"]
    lines.append(f"  equity {margin.equity:,.2f} = collateral {margin.collateral_value:,.2f} + unrealised P&L {margin.upnl:,.2f}")
    for holding in margin.collateral:
        lines.append(f"  collateral  chain {holding.chain_id}  {holding.amount:,.6g} {holding.asset} @ {holding.price:,.2f}  haircut {holding.haircut:.2%}  value {holding.value:,.2f}")
    for position in margin.positions:
        kind = margin_pb2.InstrumentKind.Name(position.kind).removeprefix("INSTRUMENT_KIND_").lower()
        lines.append(f"  position    chain {position.chain_id}  {position.qty:+,.6g} {position.underlying} {kind}  entry {position.entry:,.2f}  mark {position.mark:,.2f}  upnl {position.upnl:,.2f}")
    lines.append(f"  {'mode':<14}{'initial':>14}{'maintenance':>14}{'required':>14}")
    for mode in MODES:
        figures = getattr(margin, mode)
        lines.append(f"  {mode:<14}{figures.im:>14,.2f}{figures.mm:>14,.2f}{figures.required:>14,.2f}")
    health = f"{margin.health:.2f}" if margin.HasField("health") else "-"
    efficiency = margin.isolated.required / margin.portfolio.required if margin.portfolio.required > 0 else float("inf")
    lines.append(f"  health {health}   liquidatable {'YES' if margin.liquidatable else 'no'}   capital efficiency (isolated/portfolio) {efficiency:.2f}x")
    return "\n".join(lines) + "\n"
