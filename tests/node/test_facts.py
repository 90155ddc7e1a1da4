"""Chain events become signed facts; certified facts the node also saw reach the clearing state once."""

from __future__ import annotations

from pathlib import Path

import pytest

from crossclear.attest import ObservationKind
from crossclear.chains.interface import InstrumentKind, PositionChanged, PriceUpdated, Released, RootUpdated, Seized
from crossclear.node.facts import CertifiedFacts, ChainNames, decode_events, encode_events, facts_for_block

from .test_clearing import ALICE, make_state

CHAIN = 31001
VAULT = "0x" + "11" * 20
MARKET = "0x" + "22" * 20
FEED = "0x" + "33" * 20
WETH = "0x" + "44" * 20
USDC = "0x" + "55" * 20
BLOCK_HASH = b"\x07" * 32
NAMES = ChainNames(CHAIN, VAULT, {WETH: "ETH"}, {FEED: ("ETH",)}, {USDC: ("USDC", 6)})


def base(contract: str, log_index: int, block: int = 10) -> dict[str, object]:
    return {"chain_id": CHAIN, "contract": contract, "block_number": block, "block_hash": BLOCK_HASH, "block_timestamp": 1_800_000_000, "tx_hash": bytes([log_index]) * 32, "log_index": log_index}


def block_events() -> list:
    return [
        RootUpdated(**base(VAULT, 0), root=123456789, leaf_count=3),
        PositionChanged(**base(MARKET, 1), position_id=7, trader=ALICE, underlying=WETH, kind=InstrumentKind.PERPETUAL,
                        size=-2 * 10**18, price=3100 * 10**18, strike=0, expiry=0, is_call=False, is_open=True),
        PriceUpdated(**base(FEED, 2), asset=WETH, answer=2900 * 10**8, decimals=8, round_id=5, updated_at=1_800_000_000),
    ]


def facts_store(tmp_path: Path, reserved: set[tuple[bytes, int]] | None = None) -> tuple[CertifiedFacts, list[str]]:
    seized: list[str] = []
    state = make_state()
    held = reserved or set()
    return CertifiedFacts(tmp_path / "node.sqlite", state, [NAMES], lambda rid, account, token, amount: (rid, amount) in held, seized.append), seized


def test_encoding_round_trips_and_facts_cover_the_block() -> None:
    events = block_events()
    assert decode_events(encode_events(events[1:])) == [
        PositionChanged(**{**base(MARKET.lower(), 1), "trader": ALICE, "underlying": WETH, "kind": InstrumentKind.PERPETUAL,
                           "size": -2 * 10**18, "price": 3100 * 10**18, "strike": 0, "expiry": 0, "is_call": False, "is_open": True,
                           "position_id": 7}),
        events[2],
    ]
    facts = facts_for_block(CHAIN, 10, BLOCK_HASH, VAULT, events)
    kinds = [(fact.kind, "0x" + fact.emitter.hex(), fact.leaf_count) for fact, _ in facts]
    assert kinds == [(ObservationKind.ROOT, VAULT, 3), (ObservationKind.EVENTS, MARKET, 1), (ObservationKind.EVENTS, FEED, 1)]
    assert int.from_bytes(facts[0][0].root, "big") == 123456789


@pytest.mark.parametrize("certified_first", [False, True])
def test_events_apply_once_when_seen_and_certified(tmp_path: Path, certified_first: bool) -> None:
    facts, _ = facts_store(tmp_path)
    signed = facts_for_block(CHAIN, 10, BLOCK_HASH, VAULT, block_events())
    state = facts._state
    first = (lambda f, e: facts.certified(f)) if certified_first else facts.observed
    second = facts.observed if certified_first else (lambda f, e: facts.certified(f))
    for fact, encoded in signed:
        first(fact, encoded)
    assert state.accounts() == [] and state.height == 0
    for fact, encoded in signed:
        second(fact, encoded)
    margin = state.margin(ALICE)
    assert [(p.record.underlying, p.record.qty, p.record.entry) for p in margin.positions] == [("ETH", -2.0, 3100.0)]
    assert state.feed_prices()["ETH"].price == 2900.0
    assert facts.is_certified(CHAIN, int(VAULT, 16), 123456789)
    assert not facts.is_certified(CHAIN, int(VAULT, 16), 987)
    height = state.height
    for fact, encoded in signed:  # a second delivery of either changes nothing
        facts.observed(fact, encoded)
        facts.certified(fact)
    assert state.height == height


def test_uncertified_events_never_apply_and_replay_restores(tmp_path: Path) -> None:
    facts, _ = facts_store(tmp_path)
    signed = facts_for_block(CHAIN, 10, BLOCK_HASH, VAULT, block_events())
    lie = facts_for_block(CHAIN, 10, BLOCK_HASH, VAULT, [block_events()[1].__class__(**{**block_events()[1].__dict__, "size": -20 * 10**18})])
    facts.observed(*lie[0])  # this node's RPC lied; the quorum certifies the truth below
    for fact, encoded in signed:
        facts.certified(fact)
    assert facts._state.accounts() == []  # the node never saw the certified events itself
    for fact, encoded in signed:
        facts.observed(fact, encoded)
    assert facts._state.margin(ALICE).positions[0].record.qty == -2.0

    restarted, _ = facts_store(tmp_path)
    assert restarted.replay() == 2
    assert restarted._state.margin(ALICE).positions[0].record.qty == -2.0
    assert restarted.is_certified(CHAIN, int(VAULT, 16), 123456789)


def test_release_and_seize_debit_once(tmp_path: Path) -> None:
    # This node reserved release 1 for 10 USDC, and (a decoy) release 4 for 1 unit only.
    facts, seized = facts_store(tmp_path, reserved={(b"\x01" * 32, 10 * 10**6), (b"\x04" * 32, 1)})
    facts._state.credit_collateral(ALICE, CHAIN, "USDC", 100.0)
    events = [
        Released(**base(VAULT, 0, 11), order_id=b"\x01" * 32, account=ALICE, asset=USDC, amount=10 * 10**6, recipient=ALICE),
        Released(**base(VAULT, 1, 11), order_id=b"\x02" * 32, account=ALICE, asset=USDC, amount=20 * 10**6, recipient=ALICE),
        Seized(**base(VAULT, 2, 11), order_id=b"\x03" * 32, account=ALICE, asset=USDC, amount=30 * 10**6, recipient=VAULT),
        Released(**base(VAULT, 3, 11), order_id=b"\x04" * 32, account=ALICE, asset=USDC, amount=15 * 10**6, recipient=ALICE),
    ]
    (fact, encoded), = facts_for_block(CHAIN, 11, BLOCK_HASH, VAULT, events)
    facts.observed(fact, encoded)
    facts.certified(fact)
    # Release 1 was reserved when this node signed it; release 2 (signed by others), the seize
    # and release 4 (paid for more than the order this node reserved under that id) debit now.
    assert facts._state.margin(ALICE).collateral[0].amount == pytest.approx(35.0)
    assert seized == [ALICE]


def test_a_debit_certified_before_the_credit_waits_for_it(tmp_path: Path) -> None:
    facts, _ = facts_store(tmp_path)
    events = [Released(**base(VAULT, 0, 12), order_id=b"\x09" * 32, account=ALICE, asset=USDC, amount=40 * 10**6, recipient=ALICE)]
    (fact, encoded), = facts_for_block(CHAIN, 12, BLOCK_HASH, VAULT, events)
    facts.observed(fact, encoded)
    facts.certified(fact)
    assert facts._state.accounts() == []  # nothing credited yet: the debit waits
    facts._state.credit_collateral(ALICE, CHAIN, "USDC", 100.0)  # the claim's gossip arrives
    assert facts.settle_pending_debits(ALICE) == 1
    assert facts._state.margin(ALICE).collateral[0].amount == pytest.approx(60.0)
    assert facts.settle_pending_debits(ALICE) == 0

    restarted, _ = facts_store(tmp_path)
    restarted._state.credit_collateral(ALICE, CHAIN, "USDC", 100.0)  # claims are restored first
    restarted.replay()
    assert restarted.settle_pending_debits(ALICE) == 0
    assert restarted._state.margin(ALICE).collateral[0].amount == pytest.approx(60.0)
