"""Raw EVM logs to typed observations: pure functions, no I/O.

The event layouts mirror `devnet/contracts/*.sol` (a test checks them against the compiled
ABIs), so the adapter does not need the artifacts at run time.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from eth_abi.abi import decode as abi_decode
from eth_abi.exceptions import DecodingError
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from crossclear.chains.interface import (
    Address,
    AnyObservation,
    ChainAdapterError,
    DepositObserved,
    InstrumentKind,
    PriceUpdated,
    Released,
    RootUpdated,
    Seized,
    Traded,
)


class MalformedLog(ChainAdapterError):
    """A log from a configured contract does not decode as the event its topic names."""


@dataclass(frozen=True)
class EventLayout:
    """How one Solidity event is laid out in a log."""

    signature: str
    """Canonical signature, e.g. "RootUpdated(uint256,uint32)"."""
    indexed_types: tuple[str, ...]
    """ABI types of topics 1..n."""
    data_types: tuple[str, ...]
    """ABI types packed in the data field."""

    @property
    def topic0(self) -> bytes:
        """keccak256 of the signature: the first topic of every such log."""
        return bytes(keccak(text=self.signature))


DEPOSITED = EventLayout(
    "Deposited(address,address,uint256,uint256,uint256,uint32,uint256)",
    ("address", "address"),
    ("uint256", "uint256", "uint256", "uint32", "uint256"),
)
ROOT_UPDATED = EventLayout("RootUpdated(uint256,uint32)", (), ("uint256", "uint32"))
RELEASED = EventLayout(
    "Released(bytes32,address,address,uint256,address)", ("bytes32", "address", "address"), ("uint256", "address")
)
SEIZED = EventLayout(
    "Seized(bytes32,address,address,uint256,address)", ("bytes32", "address", "address"), ("uint256", "address")
)
TRADED = EventLayout(
    "Traded(bytes32,address,address,address,uint8,uint256,uint64,bool,int256,uint256,bytes32)",
    ("bytes32", "address", "address"),
    ("address", "uint8", "uint256", "uint64", "bool", "int256", "uint256", "bytes32"),
)
PRICE_UPDATED = EventLayout(
    "PriceUpdated(address,int256,uint8,uint80,uint256)", ("address",), ("int256", "uint8", "uint80", "uint256")
)

#: Events each contract role emits that become observations.
VAULT_EVENTS = (DEPOSITED, ROOT_UPDATED, RELEASED, SEIZED)
MARKET_EVENTS = (TRADED,)
PRICE_FEED_EVENTS = (PRICE_UPDATED,)

#: Every topic0 the adapter asks eth_getLogs for.
ALL_TOPICS: tuple[bytes, ...] = tuple(layout.topic0 for layout in (*VAULT_EVENTS, *MARKET_EVENTS, *PRICE_FEED_EVENTS))


@dataclass(frozen=True)
class LogContext:
    """Where a log sits, shared by every observation built from it."""

    chain_id: int
    """Chain id."""
    contract: Address
    """Emitting contract, checksummed."""
    block_number: int
    """Block height."""
    block_hash: bytes
    """Block hash."""
    block_timestamp: int
    """Block timestamp."""
    tx_hash: bytes
    """Transaction hash."""
    log_index: int
    """Log index within the block."""

    def common(self) -> dict[str, Any]:
        return {
            "chain_id": self.chain_id,
            "contract": self.contract,
            "block_number": self.block_number,
            "block_hash": self.block_hash,
            "block_timestamp": self.block_timestamp,
            "tx_hash": self.tx_hash,
            "log_index": self.log_index,
        }


def _address(value: object) -> Address:
    return str(to_checksum_address(str(value)))


def _deposit(ctx: LogContext, indexed: Sequence[Any], data: Sequence[Any]) -> AnyObservation:
    account, asset = indexed
    amount, secret_hash, leaf, leaf_index, root = data
    return DepositObserved(
        **ctx.common(), account=_address(account), asset=_address(asset), amount=amount,
        secret_hash=secret_hash, leaf=leaf, leaf_index=leaf_index, root=root,
    )  # fmt: skip


def _root(ctx: LogContext, indexed: Sequence[Any], data: Sequence[Any]) -> AnyObservation:
    root, leaf_count = data
    return RootUpdated(**ctx.common(), root=root, leaf_count=leaf_count)


def _released(ctx: LogContext, indexed: Sequence[Any], data: Sequence[Any]) -> AnyObservation:
    order_id, account, asset = indexed
    amount, recipient = data
    return Released(
        **ctx.common(), order_id=bytes(order_id), account=_address(account), asset=_address(asset),
        amount=amount, recipient=_address(recipient),
    )  # fmt: skip


def _seized(ctx: LogContext, indexed: Sequence[Any], data: Sequence[Any]) -> AnyObservation:
    order_id, account, asset = indexed
    amount, recipient = data
    return Seized(
        **ctx.common(), order_id=bytes(order_id), account=_address(account), asset=_address(asset),
        amount=amount, recipient=_address(recipient),
    )  # fmt: skip


def _traded(ctx: LogContext, indexed: Sequence[Any], data: Sequence[Any]) -> AnyObservation:
    trade_id, maker, taker = indexed
    underlying, kind, strike, expiry, is_call, maker_size, price, close_out_id = data
    try:
        instrument = InstrumentKind(kind)
    except ValueError:
        raise MalformedLog(f"Traded kind {kind} is neither perpetual (0) nor option (1)") from None
    return Traded(
        **ctx.common(), trade_id=bytes(trade_id), maker=_address(maker), taker=_address(taker),
        underlying=_address(underlying), kind=instrument, strike=strike, expiry=expiry, is_call=is_call,
        maker_size=maker_size, price=price, close_out_id=bytes(close_out_id),
    )  # fmt: skip


def _price(ctx: LogContext, indexed: Sequence[Any], data: Sequence[Any]) -> AnyObservation:
    (asset,) = indexed
    answer, decimals, round_id, updated_at = data
    return PriceUpdated(
        **ctx.common(), asset=_address(asset), answer=answer, decimals=decimals, round_id=round_id,
        updated_at=updated_at,
    )  # fmt: skip


_Builder = Callable[[LogContext, Sequence[Any], Sequence[Any]], AnyObservation]
_BUILDERS: dict[bytes, tuple[EventLayout, _Builder]] = {
    DEPOSITED.topic0: (DEPOSITED, _deposit),
    ROOT_UPDATED.topic0: (ROOT_UPDATED, _root),
    RELEASED.topic0: (RELEASED, _released),
    SEIZED.topic0: (SEIZED, _seized),
    TRADED.topic0: (TRADED, _traded),
    PRICE_UPDATED.topic0: (PRICE_UPDATED, _price),
}


def decode_log(
    context: LogContext, topics: Sequence[bytes], data: bytes, allowed: Mapping[Address, tuple[EventLayout, ...]]
) -> AnyObservation | None:
    """The observation a log stands for; None for contracts or events we do not follow.

    `allowed` maps each configured contract to the events its role emits, so a vault-shaped
    event from a price feed, or any event from an unknown address, is ignored.
    Raises MalformedLog when a followed event does not decode.
    """
    layouts = allowed.get(context.contract)
    if layouts is None or not topics:
        return None
    entry = _BUILDERS.get(bytes(topics[0]))
    if entry is None or entry[0] not in layouts:
        return None
    layout, build = entry
    where = f"block {context.block_number} log {context.log_index} ({layout.signature.split('(')[0]})"
    if len(topics) != 1 + len(layout.indexed_types):
        raise MalformedLog(f"{where}: {len(topics) - 1} indexed topics, expected {len(layout.indexed_types)}")
    try:
        indexed = [abi_decode([kind], bytes(topic))[0] for kind, topic in zip(layout.indexed_types, topics[1:])]
        fields = abi_decode(list(layout.data_types), bytes(data))
        if len(data) != 32 * len(layout.data_types):
            raise MalformedLog(f"{where}: data is {len(data)} bytes, expected {32 * len(layout.data_types)}")
    except (DecodingError, ValueError) as error:
        raise MalformedLog(f"{where}: does not decode: {error}") from None
    return build(context, indexed, fields)
