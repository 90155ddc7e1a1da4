"""The API's messages as plain JSON-ready dicts for the page.

Floats that are not finite become None (JSON has no NaN); integers of base units stay decimal
strings, exactly as the API sends them, beside their `decimals`.
"""

from __future__ import annotations

import math
from typing import Any

from google.protobuf.json_format import MessageToDict

from crossclear.v1 import liquidation_pb2, margin_pb2, node_pb2

MODES = ("isolated", "cross_siloed", "cross", "portfolio")
_KIND_NAMES = {margin_pb2.INSTRUMENT_KIND_PERP: "perp", margin_pb2.INSTRUMENT_KIND_CALL: "call", margin_pb2.INSTRUMENT_KIND_PUT: "put"}


def number(value: float) -> float | None:
    """A finite float, or None."""
    return value if math.isfinite(value) else None


def finite(document: Any) -> Any:
    """`document` with every non-finite float replaced by None (for json.dumps(allow_nan=False))."""
    if isinstance(document, float):
        return number(document)
    if isinstance(document, dict):
        return {key: finite(value) for key, value in document.items()}
    if isinstance(document, (list, tuple)):
        return [finite(value) for value in document]
    return document


def margin(message: margin_pb2.AccountMargin) -> dict[str, Any]:
    """An AccountMargin, whole."""
    return {
        "account": message.account,
        "equity": number(message.equity),
        "collateral_value": number(message.collateral_value),
        "upnl": number(message.upnl),
        "collateral": [
            {
                "chain_id": holding.chain_id,
                "asset": holding.asset,
                "amount": number(holding.amount),
                "amount_units": holding.amount_units,
                "decimals": holding.decimals,
                "price": number(holding.price),
                "haircut": number(holding.haircut),
                "value": number(holding.value),
            }
            for holding in message.collateral
        ],
        "positions": [
            {
                "position_id": position.position_id,
                "chain_id": position.chain_id,
                "underlying": position.underlying,
                "kind": _KIND_NAMES.get(position.kind, "unspecified"),
                "qty": number(position.qty),
                "entry": number(position.entry),
                "strike": number(position.strike),
                "expiry_timestamp": number(position.expiry_timestamp),
                "mark": number(position.mark),
                "upnl": number(position.upnl),
            }
            for position in message.positions
        ],
        "modes": {
            mode: {"im": number(getattr(message, mode).im), "mm": number(getattr(message, mode).mm), "required": number(getattr(message, mode).required)}
            for mode in MODES
        },
        "health": number(message.health) if message.HasField("health") else None,
        "liquidatable": message.liquidatable,
        "state_height": message.state_height,
        "prices_fresh": message.prices_fresh,
        "stale_feeds": list(message.stale_feeds),
    }


def margin_summary(message: margin_pb2.AccountMargin) -> dict[str, Any]:
    """One row of the accounts list and the capital-efficiency chart."""
    return {
        "account": message.account,
        "equity": number(message.equity),
        "collateral_value": number(message.collateral_value),
        "required": {mode: number(getattr(message, mode).required) for mode in MODES},
        "health": number(message.health) if message.HasField("health") else None,
        "liquidatable": message.liquidatable,
        "positions": len(message.positions),
        "holdings": len(message.collateral),
        "state_height": message.state_height,
    }


def status(message: node_pb2.NodeStatus) -> dict[str, Any]:
    """A NodeStatus, whole."""
    return {
        "version": message.version,
        "node_address": message.node_address,
        "connected_peers": message.connected_peers,
        "chains": [
            {
                "chain_id": chain.chain_id,
                "network": chain.network,
                "head": chain.head,
                "finalized": chain.finalized,
                "finality_lag": max(0, chain.head - chain.finalized),
                "finality": chain.finality,
                "health": chain.health,
                "certificates": chain.certificates,
                "applied_block": chain.applied_block,
                "chain_time": chain.chain_time,
                "waiting_blocks": chain.waiting_blocks,
            }
            for chain in message.chains
        ],
        "certificate_count": message.certificate_count,
        "equivocation_count": message.equivocation_count,
        "state_height": message.state_height,
        "accounts": message.accounts,
        "feeds": [
            {"name": feed.name, "price": number(feed.price), "updated_at": number(feed.updated_at), "heartbeat_seconds": number(feed.heartbeat_seconds), "stale": feed.stale}
            for feed in message.feeds
        ],
        "signing_halted": message.signing_halted,
        "pending_payouts": message.pending_payouts,
        "ignored_events": message.ignored_events,
        "risk": _optional_message(message, "risk"),
    }


def _optional_message(message: Any, field: str) -> dict[str, Any] | None:
    """A sub-message as a dict when this API version has the field and the node set it."""
    try:
        if not message.HasField(field):
            return None
    except ValueError:  # an older API without the field
        return None
    document: dict[str, Any] = MessageToDict(getattr(message, field), preserving_proto_field_name=True, always_print_fields_with_no_presence=True)
    return document


def seize_order(message: liquidation_pb2.SignedSeizeOrder) -> dict[str, Any]:
    """One node's signed seize order."""
    return {
        "chain_id": message.chain_id,
        "vault": message.vault,
        "seize_id": "0x" + bytes(message.seize_id).hex(),
        "account": message.account,
        "token": message.token,
        "amount_units": message.amount,
        "recipient": message.recipient,
        "signer": message.signer,
        "signature": "0x" + bytes(message.signature).hex(),
        "equity": number(message.equity),
        "maintenance": number(message.maintenance),
        "state_height": message.state_height,
        "deadline": message.deadline,
    }
