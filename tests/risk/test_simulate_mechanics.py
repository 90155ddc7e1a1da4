"""The cascade simulator's mechanics on hand-made paths: variation margin, close-outs with
impact (partial first), the waterfall in its order, zero net open interest and conservation."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from crossclear.margin import parse_inputs
from crossclear.risk._inputs import parse_fhs_params, split_risk_document
from crossclear.risk.cascade import CascadeParams, Clearinghouse, PathSource, SimulationSpec, build_spec, simulate_closes
from crossclear.risk.cascade.engine import METRICS
from crossclear.risk.cascade.market import SIZE_SCALE, UNIT

LOOKBACK = 20
DAILY_VOL = 0.65 / math.sqrt(365.0)


def _spec(accounts: list[dict[str, Any]], combos: tuple[tuple[str, str], ...] = (("grid", "isolated"),), **params: Any) -> SimulationSpec:
    risk = {
        "underlyings": {"BTC": {"price": 100.0, "vol": 0.65, "scan_range": 0.2}},
        "assets": {"USDC": {"price": 1, "base_haircut": 0, "depth": 1e10, "vol_daily": 0.0005}},
        "params": {"fhs_lookback_days": LOOKBACK},
    }
    v1, v2 = split_risk_document(risk, "risk")
    margin = parse_inputs(v1, {"accounts": accounts})
    fhs = parse_fhs_params(v2, "risk", margin.market.underlying_names)
    defaults: dict[str, Any] = {"days": 1, "market_makers": 1, "permanent": 0.0, "fund": 100.0}
    return build_spec(margin, fhs, CascadeParams(**{**defaults, **params}), PathSource("synthetic", 1), 1, combos)


def _long_perp(qty: float = 100.0) -> dict[str, Any]:
    return {"id": "outright-long-1", "positions": [{"chain": "chain-a", "kind": "perp", "underlying": "BTC", "qty": qty, "entry": 100.0}]}


def _closes(spec: SimulationSpec, *prices: float) -> np.ndarray:
    closes = np.full((spec.rows, 1), 100.0)
    for day, price in enumerate(prices, start=1):
        closes[spec.opening_row + day] = price
    return closes


def _metric(values: np.ndarray, name: str) -> float:
    return float(values[METRICS.index(name)])


def test_every_long_has_a_short_and_the_check_catches_a_missing_one() -> None:
    spec = _spec([_long_perp()])
    assert [p.id for p in spec.participants] == ["outright-long-1", "market-maker-1"]
    assert spec.participants[1].positions == ((0, 0, -100 * SIZE_SCALE),)
    house = Clearinghouse(spec, ("grid", "isolated"), _closes(spec, 100.0))
    house.open()
    house.silos[0].positions[0] += 1  # one base unit of size with no counterparty
    with pytest.raises(RuntimeError, match="open interest does not net to zero"):
        house.check()
    house.silos[0].positions[0] -= 1
    house.fund += 1  # one base unit from nowhere
    with pytest.raises(RuntimeError, match="conservation failed"):
        house.check()


def test_a_gap_beyond_the_collateral_goes_through_the_waterfall_in_order() -> None:
    spec = _spec([_long_perp()])
    house = Clearinghouse(spec, ("grid", "isolated"), _closes(spec, 70.0))
    house.run()
    long, short = house.silos
    # Opening: 10% of 100 x 100 each; a 30% fall costs the long 3,000 in variation margin.
    # Closing 100 units against a daily volume of 100 moves the price by Y x daily vol x sqrt(1).
    close_price = 70.0 * math.exp(-DAILY_VOL)
    slippage_units = math.ceil(100.0 * (70.0 - close_price) * UNIT)
    debt = 3000 * UNIT + slippage_units - 1000 * UNIT  # beyond its own 1,000 of collateral
    values = house.tally.values
    assert _metric(values, "collateral_required") == pytest.approx(2000.0)
    assert _metric(values, "slippage") == pytest.approx(100.0 * (70.0 - close_price))
    assert _metric(values, "bad_debt") == pytest.approx(debt / UNIT)
    assert _metric(values, "fund_draw") == 100.0  # the whole fund first
    assert _metric(values, "adl_events") == 1  # then the largest winner: the short
    assert _metric(values, "adl_amount") == pytest.approx((debt - 100 * UNIT) / UNIT)
    assert _metric(values, "uncovered") == 0.0
    assert (_metric(values, "full_liquidations"), _metric(values, "defaults")) == (1, 1)
    assert house.fund == 0 and long.positions == {} and long.collateral == 0 and long.balance == 0
    assert short.balance == 3000 * UNIT - (debt - 100 * UNIT)
    # The backstop liquidator holds the long now and earned the slippage.
    assert house.liquidator.positions == {0: 100 * SIZE_SCALE}
    assert house.liquidator.balance == slippage_units
    assert _metric(values, "liquidator_pnl") == pytest.approx(slippage_units / UNIT)


def test_a_partial_close_out_comes_first_when_it_restores_initial_margin() -> None:
    spec = _spec([_long_perp()], impact=0.1)
    house = Clearinghouse(spec, ("grid", "isolated"), _closes(spec, 93.0))
    house.run()
    long = house.silos[0]
    values = house.tally.values
    assert (_metric(values, "liquidations"), _metric(values, "full_liquidations"), _metric(values, "bad_debt")) == (1, 0, 0.0)
    remaining = long.positions[0] / SIZE_SCALE
    closed = 100.0 - remaining
    assert 0 < remaining < 100 and closed % 5 == 0  # whole 1/20 steps
    # Enough was closed to bring the rest back to its initial margin (10% of 93 a unit)...
    equity = (long.collateral + long.balance) / UNIT
    assert equity >= 0.10 * 93.0 * remaining
    # ...and not one step more.
    fewer = closed - 5.0
    move = 0.1 * DAILY_VOL * math.sqrt(fewer / 100.0)
    equity_before = 1000.0 - 700.0
    assert equity_before - fewer * 93.0 * (1 - math.exp(-move)) < 0.10 * 93.0 * (100.0 - fewer)


def test_permanent_impact_feeds_back_and_variation_margin_never_creates_money() -> None:
    accounts = [_long_perp(33.333333), {**_long_perp(66.666667), "id": "outright-long-2"}]
    spec = _spec(accounts, market_makers=1, permanent=1.0, days=3)
    house = Clearinghouse(spec, ("grid", "cross"), _closes(spec, 96.1234567, 91.7654321, 80.1357913))
    house.run()  # check() after every step: zero net open interest, exact conservation
    values = house.tally.values
    assert _metric(values, "liquidations") >= 2
    assert _metric(values, "vm_residue") > 0  # sizes that are not whole units leave floor residue for the fund
    # The marks ended below the path's last close: liquidations sold and the impact stayed.
    assert house.marks[0] < 80.1357913 * 10**8
    assert house.checks > 5


def test_both_models_run_on_one_path_and_portfolio_nets_a_hedge() -> None:
    hedged = {"id": "covered-call-1", "positions": [
        {"chain": "chain-a", "kind": "perp", "underlying": "BTC", "qty": 100.0, "entry": 100.0},
        {"chain": "chain-b", "kind": "option", "underlying": "BTC", "type": "call", "strike": 105.0, "expiry": 30 / 365, "qty": -100.0, "entry": 0.0},
    ]}
    combos = (("grid", "isolated"), ("grid", "cross_siloed"), ("grid", "cross"), ("grid", "portfolio"), ("fhs", "portfolio"))
    spec = _spec([hedged], combos=combos, days=2)
    rng = np.random.default_rng(5)
    closes = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.03, (spec.rows, 1)), axis=0))
    closes *= 100.0 / closes[spec.opening_row]
    result = simulate_closes(spec, closes)
    required = result.metrics[:, METRICS.index("collateral_required")]
    assert np.all(required > 0)
    # Per chain, the perp and the short call no longer offset: cross per chain needs at least cross.
    assert required[1] >= required[2]
    assert result.metrics.shape == (5, len(METRICS))
