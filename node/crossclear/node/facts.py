"""From chain events to the facts a node signs, in a declared binary encoding.

What a node signs for each block of each chain (see crossclear.attest):
- ROOT: the vault's Merkle root and leaf count after the block (claims are checked against
  certified roots);
- EVENTS: per contract, keccak256 of the events encoding below for that contract's events in
  the block (positions, prices, releases, seizes).

Events encoding, version 2 (docs/state-machine.md): Solidity ABI encoding of

    (uint8 version = 2, uint64 chainId, address contract, uint64 blockNumber,
     bytes32 blockHash, uint64 blockTimestamp, bytes[] events)

where every event, in log order, is the ABI encoding of `(uint8 tag, bytes32 txHash,
uint32 logIndex, ...fields)` with the fields of its tag:

    2 PriceUpdated     address asset, int256 answer, uint8 decimals, uint80 roundId,
                       uint256 updatedAt
    3 Released         bytes32 releaseId, address account, address token, uint256 amount,
                       address recipient
    4 Seized           bytes32 seizeId, address account, address token, uint256 amount,
                       address recipient
    5 Traded           bytes32 tradeId, address maker, address taker, address underlying,
                       uint8 kind, uint256 strike, uint64 expiry, bool isCall,
                       int256 makerSize, uint256 price, bytes32 closeOutId

(Version 1 had tag 1 for single-sided `PositionChanged` records; every position now comes from
a two-sided trade.)

The block timestamp is inside what is signed, so the chain time a node reads off an applied
block is certified along with its events.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from eth_abi.abi import decode as abi_decode
from eth_abi.abi import encode as abi_encode
from eth_abi.exceptions import DecodingError
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from crossclear.attest import Observation as SignedFact
from crossclear.attest import ObservationKind
from crossclear.chains.interface import (
    AnyObservation,
    DepositObserved,
    InstrumentKind,
    PriceUpdated,
    Released,
    RootUpdated,
    Seized,
    Traded,
)

ENCODING_VERSION = 2
_HEADER = ("uint8", "uint64", "address", "uint64", "bytes32", "uint64", "bytes[]")
_COMMON = ("uint8", "bytes32", "uint32")
_FIELDS: dict[int, tuple[type[Any], tuple[str, ...], tuple[str, ...]]] = {
    2: (PriceUpdated, ("asset", "answer", "decimals", "round_id", "updated_at"), ("address", "int256", "uint8", "uint80", "uint256")),
    3: (Released, ("order_id", "account", "asset", "amount", "recipient"), ("bytes32", "address", "address", "uint256", "address")),
    4: (Seized, ("order_id", "account", "asset", "amount", "recipient"), ("bytes32", "address", "address", "uint256", "address")),
    5: (
        Traded,
        ("trade_id", "maker", "taker", "underlying", "kind", "strike", "expiry", "is_call", "maker_size", "price", "close_out_id"),
        ("bytes32", "address", "address", "address", "uint8", "uint256", "uint64", "bool", "int256", "uint256", "bytes32"),
    ),
}
_TAGS = {cls: tag for tag, (cls, _, _) in _FIELDS.items()}


class MalformedEvents(ValueError):
    """Bytes that are not a version-1 events encoding."""


@dataclass(frozen=True)
class EventsBlock:
    """One contract's events in one block, as signed."""

    chain_id: int
    """Chain the block belongs to."""
    contract: str
    """Emitting contract, lowercase 0x."""
    block_number: int
    """Block height."""
    block_hash: bytes
    """32-byte block hash."""
    block_timestamp: int
    """Block timestamp, Unix seconds (chain time)."""
    events: tuple[AnyObservation, ...]
    """The contract's events in log order."""


def _plain(value: Any) -> Any:
    if isinstance(value, InstrumentKind):
        return value.value
    return value


def encode_events(block: EventsBlock) -> bytes:
    """The canonical bytes nodes hash for one contract's events in one block."""
    encoded = []
    for event in sorted(block.events, key=lambda e: e.log_index):
        tag = _TAGS[type(event)]
        _, names, types = _FIELDS[tag]
        values = [_plain(getattr(event, name)) for name in names]
        encoded.append(abi_encode((*_COMMON, *types), (tag, event.tx_hash, event.log_index, *values)))
    return abi_encode(
        _HEADER,
        (ENCODING_VERSION, block.chain_id, block.contract, block.block_number, block.block_hash, block.block_timestamp, encoded),
    )


def decode_events(encoded: bytes) -> EventsBlock:
    """Inverse of encode_events; MalformedEvents names what is wrong."""
    try:
        version, chain_id, contract, number, block_hash, timestamp, items = abi_decode(_HEADER, encoded, strict=True)
    except (DecodingError, OverflowError, ValueError) as error:
        raise MalformedEvents(f"events encoding does not decode: {error}") from None
    if version != ENCODING_VERSION:
        raise MalformedEvents(f"events encoding version {version}, expected {ENCODING_VERSION}")
    contract = contract.lower()
    events: list[AnyObservation] = []
    for item in items:
        tag = item[31] if len(item) >= 32 else 0
        if tag not in _FIELDS:
            raise MalformedEvents(f"unknown event tag {tag}")
        cls, names, types = _FIELDS[tag]
        try:
            _, tx_hash, log_index, *values = abi_decode((*_COMMON, *types), item, strict=True)
        except (DecodingError, OverflowError, ValueError) as error:
            raise MalformedEvents(f"event with tag {tag} does not decode: {error}") from None
        fields: dict[str, Any] = dict(zip(names, values))
        for name in ("maker", "taker", "underlying", "asset", "account", "recipient"):
            if name in fields:
                fields[name] = to_checksum_address(fields[name])
        for name in ("trade_id", "close_out_id", "order_id"):
            if name in fields:
                fields[name] = bytes(fields[name])
        if cls is Traded:
            try:
                fields["kind"] = InstrumentKind(fields["kind"])
            except ValueError:
                raise MalformedEvents(f"unknown instrument kind {fields['kind']}") from None
        events.append(
            cls(
                chain_id=chain_id, contract=to_checksum_address(contract), block_number=number, block_hash=bytes(block_hash),
                block_timestamp=timestamp, tx_hash=bytes(tx_hash), log_index=log_index, **fields,
            )
        )
    return EventsBlock(chain_id, contract, number, bytes(block_hash), timestamp, tuple(events))


@dataclass(frozen=True)
class ObservedFact:
    """A fact this node saw and signs, with the events behind it (None for ROOT facts)."""

    fact: SignedFact
    """What is signed."""
    events: bytes | None
    """encode_events of the block's events for this contract (EVENTS facts)."""
    block_timestamp: int
    """Timestamp of the block."""


def facts_for_block(
    chain_id: int, block_number: int, block_hash: bytes, block_timestamp: int, vault: str, events: Sequence[AnyObservation]
) -> list[ObservedFact]:
    """What to sign for one block: a ROOT fact if the vault's tree changed, one EVENTS fact per contract."""
    facts: list[ObservedFact] = []
    roots = [e for e in events if isinstance(e, RootUpdated)]
    if roots:
        last = max(roots, key=lambda e: e.log_index)
        fact = SignedFact(ObservationKind.ROOT, chain_id, bytes.fromhex(vault[2:]), block_number, block_hash, last.root.to_bytes(32, "big"), last.leaf_count)
        facts.append(ObservedFact(fact, None, block_timestamp))
    by_contract: dict[str, list[AnyObservation]] = {}
    for event in events:
        if isinstance(event, (RootUpdated, DepositObserved)):
            continue  # deposits are covered by the ROOT fact; claims prove them
        by_contract.setdefault(event.contract.lower(), []).append(event)
    for contract, contract_events in sorted(by_contract.items()):
        encoded = encode_events(EventsBlock(chain_id, contract, block_number, block_hash, block_timestamp, tuple(contract_events)))
        digest = bytes(keccak(encoded))
        fact = SignedFact(ObservationKind.EVENTS, chain_id, bytes.fromhex(contract[2:]), block_number, block_hash, digest, len(contract_events))
        facts.append(ObservedFact(fact, encoded, block_timestamp))
    return facts


@dataclass(frozen=True)
class ChainNames:
    """How one chain's addresses map to the risk configuration's names."""

    chain_id: int
    """The chain."""
    vault: str
    """Lowercase vault address."""
    underlyings: Mapping[str, str]
    """Lowercase address Market contracts use -> underlying name."""
    feeds: Mapping[str, tuple[str, ...]]
    """Lowercase PriceFeed address -> the names it prices."""
    collateral: Mapping[str, tuple[str, int]]
    """Lowercase token address -> (asset name, decimals)."""
