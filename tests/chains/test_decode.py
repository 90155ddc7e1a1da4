"""Log decoding: layouts agree with the compiled ABIs; bad logs fail clearly; strangers are ignored."""

from __future__ import annotations

import pytest
from eth_abi.abi import encode
from eth_utils.crypto import keccak

from crossclear.chains._decode import (
    DEPOSITED,
    MARKET_EVENTS,
    PRICE_FEED_EVENTS,
    ROOT_UPDATED,
    TRADED,
    VAULT_EVENTS,
    EventLayout,
    LogContext,
    MalformedLog,
    decode_log,
)
from crossclear.chains.artifacts import load_artifact
from crossclear.chains.interface import DepositObserved, InstrumentKind, RootUpdated, Traded

VAULT = "0x998abeb3E57409262aE5b751f60747921B33613E"
FEED = "0x95401dc811bb5740090279Ba06cfA8fcF6113778"
MARKET = "0x4ed7c70F96B99c776995fB64377f0d4aB3B0e1C1"
TAKER = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"
ACCOUNT = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
TOKEN = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
ALLOWED = {VAULT: VAULT_EVENTS, FEED: PRICE_FEED_EVENTS}


def _context(contract: str = VAULT) -> LogContext:
    return LogContext(31001, contract, 12, b"\x0b" * 32, 1_700_000_000, b"\x0c" * 32, 3)


def _topic(abi_type: str, value: object) -> bytes:
    return encode([abi_type], [value])


def _signature(event: dict[str, object]) -> str:
    inputs = event["inputs"]
    assert isinstance(inputs, list)
    return f"{event['name']}({','.join(item['type'] for item in inputs)})"


@pytest.mark.parametrize(
    ("artifact", "layouts"),
    [("CollateralVault", VAULT_EVENTS), ("Market", MARKET_EVENTS), ("PriceFeed", PRICE_FEED_EVENTS)],
)
def test_layouts_match_the_compiled_abis(artifact: str, layouts: tuple[EventLayout, ...]) -> None:
    events = {e["name"]: e for e in load_artifact(artifact).abi if e["type"] == "event"}
    for layout in layouts:
        event = events[layout.signature.split("(")[0]]
        assert _signature(event) == layout.signature
        assert tuple(i["type"] for i in event["inputs"] if i["indexed"]) == layout.indexed_types
        assert tuple(i["type"] for i in event["inputs"] if not i["indexed"]) == layout.data_types
        assert layout.topic0 == bytes(keccak(text=layout.signature))


def _deposit_log() -> tuple[list[bytes], bytes]:
    topics = [DEPOSITED.topic0, _topic("address", ACCOUNT), _topic("address", TOKEN)]
    data = encode(list(DEPOSITED.data_types), [100, 7, 8, 0, 9])
    return topics, data


def test_a_deposit_decodes_with_its_context() -> None:
    topics, data = _deposit_log()
    observation = decode_log(_context(), topics, data, ALLOWED)
    assert isinstance(observation, DepositObserved)
    assert (observation.account, observation.asset, observation.amount, observation.leaf_index, observation.root) == (
        ACCOUNT, TOKEN, 100, 0, 9,
    )  # fmt: skip
    assert (observation.block_number, observation.log_index, observation.key.chain_id) == (12, 3, 31001)


def test_root_updated_decodes() -> None:
    observation = decode_log(_context(), [ROOT_UPDATED.topic0], encode(["uint256", "uint32"], [5, 1]), ALLOWED)
    assert isinstance(observation, RootUpdated) and (observation.root, observation.leaf_count) == (5, 1)


def test_logs_from_unknown_addresses_or_of_another_role_are_ignored() -> None:
    topics, data = _deposit_log()
    assert decode_log(_context("0x0000000000000000000000000000000000000001"), topics, data, ALLOWED) is None
    assert decode_log(_context(FEED), topics, data, ALLOWED) is None  # a vault event from a feed
    assert decode_log(_context(), [b"\x00" * 32], b"", ALLOWED) is None  # an event we do not follow
    assert decode_log(_context(), [], b"", ALLOWED) is None  # anonymous log


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing indexed topic", "1 indexed topics, expected 2"),
        ("short data", "does not decode"),
        ("trailing data", "data is 192 bytes, expected 160"),
        ("dirty address topic", "does not decode"),
    ],
)
def test_malformed_logs_are_refused_clearly(case: str, message: str) -> None:
    topics, data = _deposit_log()
    if case == "missing indexed topic":
        topics = topics[:2]
    elif case == "short data":
        data = data[:100]
    elif case == "trailing data":
        data = data + b"\x00" * 32
    else:
        topics[1] = b"\xff" * 12 + topics[1][12:]
    with pytest.raises(MalformedLog, match=f"block 12 log 3 \\(Deposited\\): .*{message}"):
        decode_log(_context(), topics, data, ALLOWED)


def _traded_log(kind: int = 1, maker_size: int = -3 * 10**18, close_out_id: bytes = bytes(32)) -> tuple[list[bytes], bytes]:
    topics = [TRADED.topic0, _topic("bytes32", b"\x07" * 32), _topic("address", ACCOUNT), _topic("address", TAKER)]
    fields = [TOKEN, kind, 3_300 * 10**18, 1_800_000_000, True, maker_size, 75 * 10**18, close_out_id]
    return topics, encode(list(TRADED.data_types), fields)


@pytest.mark.parametrize("close_out_id", [bytes(32), b"\x09" * 32], ids=["fill", "close-out"])
def test_a_trade_decodes_with_both_parties(close_out_id: bytes) -> None:
    topics, data = _traded_log(close_out_id=close_out_id)
    observation = decode_log(_context(MARKET), topics, data, {MARKET: MARKET_EVENTS})
    assert observation == Traded(
        chain_id=31001, contract=MARKET, block_number=12, block_hash=b"\x0b" * 32, block_timestamp=1_700_000_000,
        tx_hash=b"\x0c" * 32, log_index=3, trade_id=b"\x07" * 32, maker=ACCOUNT, taker=TAKER, underlying=TOKEN,
        kind=InstrumentKind.OPTION, strike=3_300 * 10**18, expiry=1_800_000_000, is_call=True, maker_size=-3 * 10**18,
        price=75 * 10**18, close_out_id=close_out_id,
    )  # fmt: skip
    assert observation.is_close_out is (close_out_id != bytes(32))


def test_a_trade_from_a_vault_is_ignored() -> None:
    topics, data = _traded_log()
    assert decode_log(_context(), topics, data, ALLOWED) is None


def test_unknown_instrument_kind_is_malformed() -> None:
    topics, data = _traded_log(kind=2)
    with pytest.raises(MalformedLog, match="Traded kind 2 is neither perpetual"):
        decode_log(_context(MARKET), topics, data, {MARKET: MARKET_EVENTS})


def test_a_trade_with_a_dirty_bool_is_malformed() -> None:
    topics, data = _traded_log()
    dirty = bytearray(data)
    dirty[4 * 32 + 31] = 2  # isCall
    with pytest.raises(MalformedLog, match=r"block 12 log 3 \(Traded\): does not decode"):
        decode_log(_context(MARKET), topics, bytes(dirty), {MARKET: MARKET_EVENTS})
