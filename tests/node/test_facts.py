"""Chain events become signed facts in a declared binary encoding (version 1, see
crossclear.node.facts): it round-trips every event type, refuses anything else by name, and
its bytes are pinned so the encoding cannot drift without this file changing too."""

from __future__ import annotations

from typing import Any

import pytest
from eth_abi.abi import encode as abi_encode
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from crossclear.attest import ObservationKind
from crossclear.chains.interface import AnyObservation, DepositObserved, InstrumentKind, PriceUpdated, Released, RootUpdated, Seized, Traded
from crossclear.node.facts import ENCODING_VERSION, EventsBlock, MalformedEvents, decode_events, encode_events, facts_for_block

CHAIN = 31001
NUMBER = 10
TIMESTAMP = 1_800_000_000
VAULT = to_checksum_address("0x" + "11" * 20)
MARKET = to_checksum_address("0x" + "22" * 20)
FEED = to_checksum_address("0x" + "33" * 20)
WETH = to_checksum_address("0x" + "44" * 20)
USDC = to_checksum_address("0x" + "55" * 20)
ALICE = to_checksum_address("0x" + "a1" * 20)
BOB = to_checksum_address("0x" + "b0" * 20)
BLOCK_HASH = b"\x07" * 32

#: keccak256 of encode_events(vault_block()): change it only together with ENCODING_VERSION.
PINNED_VAULT_BLOCK_KECCAK = "0xe3ff7c4a40b8f4816f90e7db8396556e3fcdcf9c5bd02bee040b36e4c20b00e0"


def base(contract: str, log_index: int) -> dict[str, Any]:
    return {
        "chain_id": CHAIN, "contract": contract, "block_number": NUMBER, "block_hash": BLOCK_HASH,
        "block_timestamp": TIMESTAMP, "tx_hash": bytes([log_index + 1]) * 32, "log_index": log_index,
    }


def position(log_index: int, kind: InstrumentKind = InstrumentKind.PERPETUAL, close_out: bool = False) -> Traded:
    option = kind is InstrumentKind.OPTION
    return Traded(
        **base(MARKET, log_index), trade_id=bytes([log_index + 9]) * 32, maker=ALICE, taker=BOB, underlying=WETH, kind=kind,
        strike=3300 * 10**18 if option else 0, expiry=TIMESTAMP + 86_400 if option else 0, is_call=option,
        maker_size=-2 * 10**18, price=(75 if option else 3100) * 10**18, close_out_id=b"\x0c" * 32 if close_out else bytes(32),
    )


def price(log_index: int) -> PriceUpdated:
    return PriceUpdated(**base(FEED, log_index), asset=WETH, answer=2900 * 10**8, decimals=8, round_id=2**79 + 5, updated_at=TIMESTAMP - 3)


def released(log_index: int) -> Released:
    return Released(**base(VAULT, log_index), order_id=b"\x01" * 32, account=ALICE, asset=USDC, amount=10 * 10**6, recipient=BOB)


def seized(log_index: int) -> Seized:
    return Seized(**base(VAULT, log_index), order_id=b"\x03" * 32, account=ALICE, asset=USDC, amount=2**255, recipient=BOB)


def block_of(contract: str, *events: Any) -> EventsBlock:
    return EventsBlock(CHAIN, contract.lower(), NUMBER, BLOCK_HASH, TIMESTAMP, tuple(events))


def vault_block() -> EventsBlock:
    return block_of(VAULT, released(3), seized(4))


@pytest.mark.parametrize(
    "block",
    [
        pytest.param(block_of(MARKET, position(1)), id="perpetual"),
        pytest.param(block_of(MARKET, position(1, InstrumentKind.OPTION), position(5, close_out=True)), id="option-and-close-out"),
        pytest.param(block_of(FEED, price(2)), id="price"),
        pytest.param(block_of(VAULT, released(3)), id="released"),
        pytest.param(block_of(VAULT, seized(4)), id="seized"),
        pytest.param(vault_block(), id="released-and-seized"),
        pytest.param(block_of(VAULT), id="no-events"),
    ],
)
def test_every_event_type_round_trips(block: EventsBlock) -> None:
    encoded = encode_events(block)
    assert decode_events(encoded) == block
    assert encode_events(decode_events(encoded)) == encoded


def test_events_are_encoded_in_log_order_whatever_order_they_come_in() -> None:
    assert encode_events(block_of(VAULT, seized(4), released(3))) == encode_events(vault_block())
    assert [e.log_index for e in decode_events(encode_events(block_of(VAULT, seized(4), released(3)))).events] == [3, 4]


def test_the_header_fields_are_what_decoding_gives_every_event() -> None:
    """Chain, contract, block and timestamp come from the (signed) header, not from anything
    an event carries on its own."""
    decoded = decode_events(encode_events(block_of(FEED, price(2))))
    (event,) = decoded.events
    assert (event.chain_id, event.contract, event.block_number, event.block_hash, event.block_timestamp) == (CHAIN, FEED, NUMBER, BLOCK_HASH, TIMESTAMP)
    assert decoded.contract == FEED.lower()


def spec_encoding(block: EventsBlock) -> bytes:
    """Version 2 written out from the spec in crossclear.node.facts' docstring, field by field."""
    items = []
    for event in block.events:
        common = (event.tx_hash, event.log_index)
        if isinstance(event, Traded):
            items.append(abi_encode(
                ("uint8", "bytes32", "uint32", "bytes32", "address", "address", "address", "uint8", "uint256", "uint64", "bool", "int256", "uint256", "bytes32"),
                (5, *common, event.trade_id, event.maker, event.taker, event.underlying, event.kind.value, event.strike,
                 event.expiry, event.is_call, event.maker_size, event.price, event.close_out_id),
            ))
        elif isinstance(event, PriceUpdated):
            items.append(abi_encode(
                ("uint8", "bytes32", "uint32", "address", "int256", "uint8", "uint80", "uint256"),
                (2, *common, event.asset, event.answer, event.decimals, event.round_id, event.updated_at),
            ))
        else:
            assert isinstance(event, (Released, Seized))
            tag = 3 if isinstance(event, Released) else 4
            items.append(abi_encode(
                ("uint8", "bytes32", "uint32", "bytes32", "address", "address", "uint256", "address"),
                (tag, *common, event.order_id, event.account, event.asset, event.amount, event.recipient),
            ))
    return abi_encode(
        ("uint8", "uint64", "address", "uint64", "bytes32", "uint64", "bytes[]"),
        (2, block.chain_id, block.contract, block.block_number, block.block_hash, block.block_timestamp, items),
    )


@pytest.mark.parametrize(
    "block",
    [block_of(MARKET, position(1), position(2, InstrumentKind.OPTION)), block_of(FEED, price(2)), vault_block()],
    ids=["positions", "price", "payouts"],
)
def test_the_encoding_is_the_declared_one(block: EventsBlock) -> None:
    assert ENCODING_VERSION == 2
    assert encode_events(block) == spec_encoding(block)


def test_the_bytes_of_a_fixed_block_are_pinned() -> None:
    """Every node hashes these bytes and signs the hash: two versions of crossclear that
    encode one block differently can never certify it together."""
    encoded = encode_events(vault_block())
    assert len(encoded) == 896
    assert "0x" + bytes(keccak(encoded)).hex() == PINNED_VAULT_BLOCK_KECCAK


def header(version: int, items: list[bytes]) -> bytes:
    return abi_encode(
        ("uint8", "uint64", "address", "uint64", "bytes32", "uint64", "bytes[]"),
        (version, CHAIN, VAULT, NUMBER, BLOCK_HASH, TIMESTAMP, items),
    )


def test_garbage_is_refused_by_name() -> None:
    for garbage in (b"", b"garbage", b"\x00" * 31, bytes(range(256)) * 3):
        with pytest.raises(MalformedEvents, match="does not decode"):
            decode_events(garbage)


def test_a_truncated_encoding_is_refused() -> None:
    encoded = encode_events(vault_block())
    for cut in (32, len(encoded) // 2, len(encoded) - 1):
        with pytest.raises(MalformedEvents):
            decode_events(encoded[:cut])


@pytest.mark.parametrize("version", [0, 1, 255])
def test_another_version_is_refused(version: int) -> None:
    with pytest.raises(MalformedEvents, match=f"version {version}, expected 2"):
        decode_events(header(version, []))


@pytest.mark.parametrize("tag", [0, 1, 200])
def test_an_unknown_tag_is_refused(tag: int) -> None:
    item = abi_encode(("uint8", "bytes32", "uint32"), (tag, b"\x01" * 32, 0))
    with pytest.raises(MalformedEvents, match=f"unknown event tag {tag}"):
        decode_events(header(2, [item]))


def test_an_event_that_does_not_match_its_tag_is_refused() -> None:
    short = abi_encode(("uint8", "bytes32", "uint32"), (3, b"\x01" * 32, 0))  # a Released without its fields
    with pytest.raises(MalformedEvents, match="event with tag 3 does not decode"):
        decode_events(header(2, [short]))
    as_price = abi_encode(
        ("uint8", "bytes32", "uint32", "address", "int256", "uint8", "uint80", "uint256"), (5, b"\x01" * 32, 0, WETH, 1, 8, 1, 1)
    )  # price fields under the Traded tag
    with pytest.raises(MalformedEvents, match="event with tag 5 does not decode"):
        decode_events(header(2, [as_price]))


def test_an_unknown_instrument_kind_is_refused_as_malformed() -> None:
    good = spec_encoding(block_of(MARKET, position(1)))
    item = abi_encode(
        ("uint8", "bytes32", "uint32", "bytes32", "address", "address", "address", "uint8", "uint256", "uint64", "bool", "int256", "uint256", "bytes32"),
        (5, b"\x01" * 32, 1, b"\x07" * 32, ALICE, BOB, WETH, 2, 0, 0, False, 10**18, 3000 * 10**18, bytes(32)),
    )
    decode_events(good)  # kinds 0 (perpetual) and 1 (option) are fine
    with pytest.raises(MalformedEvents):
        decode_events(header(2, [item]))


# --- facts_for_block -------------------------------------------------------------------------


def test_facts_cover_the_block() -> None:
    deposit = DepositObserved(**base(VAULT, 0), account=ALICE, asset=USDC, amount=5, secret_hash=1, leaf=2, leaf_index=2, root=111)
    events: list[AnyObservation] = [
        deposit,
        RootUpdated(**base(VAULT, 1), root=111, leaf_count=3),
        RootUpdated(**base(VAULT, 6), root=123456789, leaf_count=4),
        position(2),
        price(3),
        released(4),
        seized(5),
    ]
    facts = facts_for_block(CHAIN, NUMBER, BLOCK_HASH, TIMESTAMP, VAULT.lower(), events)
    summary = [(item.fact.kind, "0x" + item.fact.emitter.hex(), item.fact.leaf_count) for item in facts]
    assert summary == [
        (ObservationKind.ROOT, VAULT.lower(), 4),  # the last root of the block
        (ObservationKind.EVENTS, VAULT.lower(), 2),  # deposits are the ROOT fact's business
        (ObservationKind.EVENTS, MARKET.lower(), 1),
        (ObservationKind.EVENTS, FEED.lower(), 1),
    ]
    root = facts[0]
    assert (int.from_bytes(root.fact.root, "big"), root.events, root.block_timestamp) == (123456789, None, TIMESTAMP)
    for item in facts:
        assert (item.fact.chain_id, item.fact.block_number, item.fact.block_hash, item.block_timestamp) == (CHAIN, NUMBER, BLOCK_HASH, TIMESTAMP)
    by_contract = {"0x" + item.fact.emitter.hex(): item for item in facts[1:]}
    assert by_contract[VAULT.lower()].events == encode_events(block_of(VAULT, released(4), seized(5)))
    assert by_contract[MARKET.lower()].events == encode_events(block_of(MARKET, position(2)))
    assert by_contract[FEED.lower()].events == encode_events(block_of(FEED, price(3)))
    for item in facts[1:]:
        assert item.events is not None and item.fact.root == bytes(keccak(item.events))
        assert decode_events(item.events).block_timestamp == TIMESTAMP


def test_a_block_without_a_root_change_signs_only_its_events() -> None:
    facts = facts_for_block(CHAIN, NUMBER, BLOCK_HASH, TIMESTAMP, VAULT.lower(), [price(0)])
    assert [item.fact.kind for item in facts] == [ObservationKind.EVENTS]
    assert facts_for_block(CHAIN, NUMBER, BLOCK_HASH, TIMESTAMP, VAULT.lower(), []) == []
    only_deposit = DepositObserved(**base(VAULT, 0), account=ALICE, asset=USDC, amount=5, secret_hash=1, leaf=2, leaf_index=0, root=9)
    assert facts_for_block(CHAIN, NUMBER, BLOCK_HASH, TIMESTAMP, VAULT.lower(), [only_deposit]) == []


def test_the_signed_digest_changes_with_anything_in_the_block() -> None:
    reference = facts_for_block(CHAIN, NUMBER, BLOCK_HASH, TIMESTAMP, VAULT.lower(), [released(3)])[0].fact.root
    variants = [
        facts_for_block(CHAIN, NUMBER, BLOCK_HASH, TIMESTAMP + 1, VAULT.lower(), [released(3)]),
        facts_for_block(CHAIN, NUMBER, b"\x08" * 32, TIMESTAMP, VAULT.lower(), [released(3)]),
        facts_for_block(CHAIN + 1, NUMBER, BLOCK_HASH, TIMESTAMP, VAULT.lower(), [released(3)]),
        facts_for_block(CHAIN, NUMBER, BLOCK_HASH, TIMESTAMP, VAULT.lower(), [Released(**{**released(3).__dict__, "amount": 10 * 10**6 + 1})]),
        facts_for_block(CHAIN, NUMBER, BLOCK_HASH, TIMESTAMP, VAULT.lower(), [Released(**{**released(3).__dict__, "recipient": ALICE})]),
    ]
    digests = {item[0].fact.root for item in variants}
    assert reference not in digests and len(digests) == len(variants)
