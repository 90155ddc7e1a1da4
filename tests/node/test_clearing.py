"""The clearing state: integer holdings, positions and prices give margin exactly as the engine
says, published as snapshots that never change afterwards."""

from __future__ import annotations

import json

import pytest

from crossclear.margin import InstrumentKind, Mode, load_inputs, parse_inputs
from crossclear.node import ClearingError, ClearingState, PositionRecord

from ..margin.conftest import EXAMPLES

ALICE = "0x" + "a1" * 20
BOB = "0x" + "b0" * 20
CHAIN_A, CHAIN_B = 31001, 31002
DECIMALS = {"USDC": 6, "WETH": 18, "WBTC": 8}
NOW = 1_800_000_000


def make_state(heartbeat: float = 3600.0, fresh: bool = True) -> ClearingState:
    inputs = parse_inputs(json.loads((EXAMPLES / "risk.json").read_text()), {"accounts": []})
    names = (*inputs.market.underlying_names, *inputs.market.asset_names)
    state = ClearingState(inputs.params, inputs.market, {name: heartbeat for name in names}, DECIMALS)
    if fresh:
        for name, price in [*zip(inputs.market.underlying_names, inputs.market.underlying_price), *zip(inputs.market.asset_names, inputs.market.asset_price)]:
            state.set_price(name, float(price), NOW)
        state.set_chain_time(NOW)
    return state


def usdc(amount: float) -> int:
    return round(amount * 10**6)


def test_hedged_pair_matches_the_worked_example() -> None:
    state = make_state()
    state.set_collateral(ALICE, CHAIN_A, "USDC", usdc(1000))
    state.set_position(ALICE, "a-1", PositionRecord(CHAIN_A, "ETH", InstrumentKind.PERP, 2.0, 3050.0))
    state.set_position(ALICE, "b-1", PositionRecord(CHAIN_B, "ETH", InstrumentKind.PERP, -2.0, 2980.0))
    snapshot = state.publish()
    margin = snapshot.margin(ALICE.upper().replace("0X", "0x"))
    example = load_inputs(EXAMPLES / "risk.json", EXAMPLES / "accounts.json")
    assert margin.height == state.height
    assert margin.equity == pytest.approx(858.352341, abs=1e-6)
    assert margin.required[Mode.ISOLATED] == pytest.approx(1340.0)
    assert margin.required[Mode.PORTFOLIO] == pytest.approx(215.0)
    assert margin.health == pytest.approx(14.305872, abs=1e-6)
    assert [(line.asset, line.units, line.decimals) for line in margin.collateral] == [("USDC", 1000 * 10**6, 6)]
    assert margin.collateral[0].haircut == pytest.approx(0.0016476588, rel=1e-9)
    assert [p.upnl for p in margin.positions] == pytest.approx([-100.0, -40.0])
    assert margin.prices_fresh and example.account_ids[0] == "hedged-perps"


def test_a_price_tick_publishes_a_new_snapshot_and_leaves_the_old_one_alone() -> None:
    state = make_state()
    state.set_collateral(ALICE, CHAIN_A, "USDC", usdc(1000))
    state.set_position(ALICE, "p", PositionRecord(CHAIN_A, "ETH", InstrumentKind.PERP, 1.0, 3000.0))
    state.set_collateral(BOB, CHAIN_B, "WBTC", 10**8)
    before = state.publish()
    assert state.set_price("ETH", 2700.0, updated_at=NOW + 10)
    after = state.publish()
    assert after.height > before.height
    assert after.margin(ALICE).upnl == pytest.approx(-300.0)
    assert before.margin(ALICE).upnl == pytest.approx(0.0)  # published snapshots never change
    assert after.margin(BOB).equity == before.margin(BOB).equity
    # An older round arriving late changes nothing.
    assert not state.set_price("ETH", 9999.0, updated_at=NOW - 1)
    assert state.publish().margin(ALICE).upnl == pytest.approx(-300.0)


def test_stale_prices_are_judged_by_chain_time() -> None:
    state = make_state(heartbeat=60.0)
    state.set_collateral(ALICE, CHAIN_A, "USDC", usdc(10))
    assert state.stale_feeds() == ()
    state.set_chain_time(NOW + 61)
    state.set_price("ETH", 3000.0, NOW + 61)
    stale = state.stale_feeds()
    assert "ETH" not in stale and "USDC" in stale


def test_starting_prices_are_stale_until_a_feed_answers() -> None:
    state = make_state(heartbeat=60.0, fresh=False)
    state.set_chain_time(NOW)
    assert set(state.stale_feeds()) == {"ETH", "BTC", "USDC", "WETH", "WBTC"}
    for name in ("ETH", "BTC", "USDC", "WETH", "WBTC"):
        state.set_price(name, 1.0, NOW)
    assert state.stale_feeds() == ()


def test_option_expiry_is_priced_as_time_to_expiry_in_chain_time() -> None:
    state = make_state()
    expiry = NOW + 30 * 24 * 3600
    state.set_position(ALICE, "c", PositionRecord(CHAIN_A, "ETH", InstrumentKind.CALL, -1.0, 75.0, strike=3300.0, expiry_timestamp=expiry))
    live = state.publish().margin(ALICE).positions[0].mark
    assert 0 < live < 300
    state.set_chain_time(expiry + 1)
    state.set_price("ETH", 3400.0, expiry + 1)
    assert state.publish().margin(ALICE).positions[0].mark == pytest.approx(100.0)  # intrinsic


def test_simulation_changes_nothing() -> None:
    state = make_state()
    state.set_collateral(ALICE, CHAIN_A, "USDC", usdc(1000))
    snapshot = state.publish()
    what_if = snapshot.simulate(
        ALICE,
        add_positions=[("new", PositionRecord(CHAIN_B, "BTC", InstrumentKind.PERP, 0.1, 60000.0))],
        remove_collateral=[(CHAIN_A, "USDC", usdc(400))],
    )
    assert what_if.collateral[0].units == usdc(600)
    assert what_if.required[Mode.ISOLATED] == pytest.approx(600.0)
    assert snapshot.margin(ALICE).collateral[0].units == usdc(1000)
    assert snapshot.margin(ALICE).positions == ()
    with pytest.raises(ClearingError, match="account holds 1000000000"):
        snapshot.simulate(ALICE, remove_collateral=[(CHAIN_A, "USDC", usdc(1000) + 1)])


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda s: s.set_collateral("0x1234", CHAIN_A, "USDC", 1), "20-byte hex address"),
        (lambda s: s.set_collateral(ALICE, CHAIN_A, "DOGE", 1), "unknown asset 'DOGE'"),
        (lambda s: s.set_collateral(ALICE, CHAIN_A, "USDC", -1), "cannot be negative"),
        (lambda s: s.set_position(ALICE, "x", PositionRecord(CHAIN_A, "DOGE", InstrumentKind.PERP, 1.0, 1.0)), "unknown underlying"),
        (lambda s: s.set_position(ALICE, "x", PositionRecord(CHAIN_A, "ETH", InstrumentKind.PUT, 1.0, 1.0)), "positive strike"),
        (lambda s: s.set_price("ETH", 0.0, NOW + 5), "positive finite"),
        (lambda s: s.set_price("XYZ", 1.0, NOW + 5), "no price feed"),
        (lambda s: s.publish().margin(BOB), "unknown account"),
    ],
)
def test_refusals_name_the_problem_and_change_nothing(call, message: str) -> None:  # type: ignore[no-untyped-def]
    state = make_state()
    height = state.height
    with pytest.raises(ClearingError, match=message):
        call(state)
    assert state.height == height
    assert state.publish().accounts() == []


def test_a_position_carried_at_the_mark_follows_each_tick_without_a_rebuild() -> None:
    """Variation margin pays a perpetual's P&L as the mark moves, so margin carries it at the
    mark: a tick moves its entry in place (no structural rebuild), and the figures equal those
    of a book built from scratch at the new price."""
    carried = PositionRecord(CHAIN_A, "ETH", InstrumentKind.PERP, 2.0, 0.0, at_mark=True)
    state = make_state()
    state.set_collateral(ALICE, CHAIN_A, "USDC", usdc(1000))
    state.set_position(ALICE, "p", carried)
    state.publish()
    height = state.height
    assert state.set_price("ETH", 2700.0, updated_at=NOW + 10)
    ticked = state.publish()
    assert state.height == height + 1  # a price change only: no book change
    fresh = make_state()
    fresh.set_price("ETH", 2700.0, updated_at=NOW + 10)
    fresh.set_collateral(ALICE, CHAIN_A, "USDC", usdc(1000))
    fresh.set_position(ALICE, "p", carried)
    rebuilt = fresh.publish()
    for snapshot in (ticked, rebuilt):
        margin = snapshot.margin(ALICE)
        assert margin.upnl == 0.0 and margin.positions[0].record.entry == 2700.0 and margin.positions[0].upnl == 0.0
    assert ticked.margin(ALICE).im == rebuilt.margin(ALICE).im and ticked.margin(ALICE).equity == rebuilt.margin(ALICE).equity
