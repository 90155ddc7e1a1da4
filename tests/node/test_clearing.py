"""The clearing state: credits, positions and prices change margin exactly as the engine says."""

from __future__ import annotations

import json
import math

import pytest

from crossclear.margin import InstrumentKind, Mode, load_inputs, parse_inputs
from crossclear.node import ClearingError, ClearingState, PositionRecord

from ..margin.conftest import EXAMPLES

ALICE = "0x" + "a1" * 20
BOB = "0x" + "b0" * 20
CHAIN_A, CHAIN_B = 31001, 31002


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def make_state(clock: FakeClock | None = None, heartbeat: float = 3600.0) -> ClearingState:
    inputs = parse_inputs(json.loads((EXAMPLES / "risk.json").read_text()), {"accounts": []})
    names = (*inputs.market.underlying_names, *inputs.market.asset_names)
    return ClearingState(inputs.params, inputs.market, {name: heartbeat for name in names}, clock=clock, starting_prices_fresh=True)


def test_hedged_pair_matches_the_worked_example() -> None:
    state = make_state()
    state.credit_collateral(ALICE, CHAIN_A, "USDC", 1000.0)
    state.set_position(ALICE, "a-1", PositionRecord(CHAIN_A, "ETH", InstrumentKind.PERP, 2.0, 3050.0))
    height = state.set_position(ALICE, "b-1", PositionRecord(CHAIN_B, "ETH", InstrumentKind.PERP, -2.0, 2980.0))
    margin = state.margin(ALICE.upper().replace("0X", "0x"))
    example = load_inputs(EXAMPLES / "risk.json", EXAMPLES / "accounts.json")
    assert margin.height == height == 3
    assert margin.equity == pytest.approx(858.352341, abs=1e-6)
    assert margin.required[Mode.ISOLATED] == pytest.approx(1340.0)
    assert margin.required[Mode.PORTFOLIO] == pytest.approx(215.0)
    assert margin.health == pytest.approx(14.305872, abs=1e-6)
    assert [line.asset for line in margin.collateral] == ["USDC"]
    assert margin.collateral[0].haircut == pytest.approx(0.0016476588, rel=1e-9)
    assert [p.upnl for p in margin.positions] == pytest.approx([-100.0, -40.0])
    assert margin.prices_fresh and example.account_ids[0] == "hedged-perps"


def test_price_tick_recomputes_and_bumps_height() -> None:
    state = make_state()
    state.credit_collateral(ALICE, CHAIN_A, "USDC", 1000.0)
    state.set_position(ALICE, "p", PositionRecord(CHAIN_A, "ETH", InstrumentKind.PERP, 1.0, 3000.0))
    state.credit_collateral(BOB, CHAIN_B, "WBTC", 1.0)
    before = state.margin(ALICE)
    bob_before = state.margin(BOB)
    height = state.set_price("ETH", 2700.0, updated_at=1e12)
    after = state.margin(ALICE)
    assert after.height == height > before.height
    assert after.upnl == pytest.approx(-300.0)
    assert state.margin(BOB).equity == bob_before.equity
    # An older round arriving late changes nothing.
    assert state.set_price("ETH", 9999.0, updated_at=1.0) == height
    assert state.margin(ALICE).upnl == pytest.approx(-300.0)


def test_stale_prices_are_reported() -> None:
    clock = FakeClock()
    state = make_state(clock, heartbeat=60.0)
    state.credit_collateral(ALICE, CHAIN_A, "USDC", 10.0)
    assert state.margin(ALICE).prices_fresh
    clock.now += 61
    state.set_price("ETH", 3000.0, clock.now)
    margin = state.margin(ALICE)
    assert not margin.prices_fresh
    assert "ETH" not in margin.stale_feeds and "USDC" in margin.stale_feeds


def test_starting_prices_are_stale_until_a_feed_answers() -> None:
    inputs = parse_inputs(json.loads((EXAMPLES / "risk.json").read_text()), {"accounts": []})
    names = (*inputs.market.underlying_names, *inputs.market.asset_names)
    clock = FakeClock()
    state = ClearingState(inputs.params, inputs.market, {name: 60.0 for name in names}, clock=clock)
    state.credit_collateral(ALICE, CHAIN_A, "USDC", 10.0)
    assert set(state.margin(ALICE).stale_feeds) == set(names)
    for name in names:
        state.set_price(name, 1.0, clock.now)
    assert state.margin(ALICE).prices_fresh


def test_option_expiry_is_priced_as_time_to_expiry() -> None:
    clock = FakeClock()
    state = make_state(clock)
    expiry = clock.now + 30 * 24 * 3600
    state.set_position(ALICE, "c", PositionRecord(CHAIN_A, "ETH", InstrumentKind.CALL, -1.0, 75.0, strike=3300.0, expiry_timestamp=expiry))
    live = state.margin(ALICE).positions[0].mark
    assert 0 < live < 300
    clock.now = expiry + 1
    state.set_price("ETH", 3400.0, clock.now)  # structural rebuild happens on the next read
    state.credit_collateral(ALICE, CHAIN_A, "USDC", 1.0)
    assert state.margin(ALICE).positions[0].mark == pytest.approx(100.0)  # intrinsic


def test_simulation_changes_nothing() -> None:
    state = make_state()
    state.credit_collateral(ALICE, CHAIN_A, "USDC", 1000.0)
    height = state.height
    what_if = state.simulate(
        ALICE,
        add_positions=[("new", PositionRecord(CHAIN_B, "BTC", InstrumentKind.PERP, 0.1, 60000.0))],
        remove_collateral=[(CHAIN_A, "USDC", 400.0)],
    )
    assert what_if.collateral[0].amount == pytest.approx(600.0)
    assert what_if.required[Mode.ISOLATED] == pytest.approx(600.0)
    assert state.height == height
    assert state.margin(ALICE).collateral[0].amount == 1000.0
    assert state.margin(ALICE).positions == ()


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda s: s.credit_collateral("0x1234", CHAIN_A, "USDC", 1.0), "20-byte hex address"),
        (lambda s: s.credit_collateral(ALICE, CHAIN_A, "DOGE", 1.0), "unknown asset 'DOGE'"),
        (lambda s: s.credit_collateral(ALICE, CHAIN_A, "USDC", -1.0), "positive finite"),
        (lambda s: s.credit_collateral(ALICE, CHAIN_A, "USDC", math.nan), "positive finite"),
        (lambda s: s.debit_collateral(ALICE, CHAIN_A, "USDC", 5.0), "account holds 0.0"),
        (lambda s: s.set_position(ALICE, "x", PositionRecord(CHAIN_A, "DOGE", InstrumentKind.PERP, 1.0, 1.0)), "unknown underlying"),
        (lambda s: s.set_position(ALICE, "x", PositionRecord(CHAIN_A, "ETH", InstrumentKind.PUT, 1.0, 1.0)), "positive strike"),
        (lambda s: s.set_price("ETH", 0.0, 1.0), "positive finite"),
        (lambda s: s.set_price("XYZ", 1.0, 1.0), "no price feed"),
        (lambda s: s.margin(BOB), "unknown account"),
    ],
)
def test_refusals_name_the_problem_and_change_nothing(call, message: str) -> None:  # type: ignore[no-untyped-def]
    state = make_state()
    height = state.height
    with pytest.raises(ClearingError, match=message):
        call(state)
    assert state.height == height
    assert state.accounts() == []
