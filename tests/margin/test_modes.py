"""Each mode on hand-computed cases. Expected values are worked out here, step by step,
independently of the engine's code (a scalar Black-76 and an explicit scenario loop)."""

from __future__ import annotations

import math
from typing import Any

import pytest

from crossclear.margin import MarginResult, Mode

from .conftest import compute_both, default_risk

ETH, ETH_VOL, ETH_RANGE = 3000.0, 0.6, 0.15
BTC, BTC_VOL, BTC_RANGE = 60000.0, 0.5, 0.12
THIRTY_DAYS = 30 / 365


def black76(kind: str, spot: float, strike: float, vol: float, years: float) -> float:
    if years <= 0 or vol <= 0 or spot <= 0:
        return max(0.0, spot - strike) if kind == "call" else max(0.0, strike - spot)
    cdf = lambda x: 0.5 * (1 + math.erf(x / math.sqrt(2)))  # noqa: E731
    total = vol * math.sqrt(years)
    d1 = (math.log(spot / strike) + total * total / 2) / total
    d2 = d1 - total
    if kind == "call":
        return spot * cdf(d1) - strike * cdf(d2)
    return strike * cdf(-d2) - spot * cdf(-d1)


def worst_scenario_loss(legs: list[tuple[float, Any]], spot: float, vol: float, scan_range: float) -> float:
    """legs: (qty, value_function(spot, vol)); the default 9 x 3 grid plus weighted extremes."""
    base = sum(qty * value(spot, vol) for qty, value in legs)
    losses = []
    for step in range(9):
        move = -scan_range + 2 * scan_range * step / 8
        for shock in (-0.30, 0.0, 0.30):
            shocked = sum(qty * value(max(0.0, spot * (1 + move)), vol * (1 + shock)) for qty, value in legs)
            losses.append(-(shocked - base))
    for move in (-2.0 * scan_range, 2.0 * scan_range):
        shocked = sum(qty * value(max(0.0, spot * (1 + move)), vol) for qty, value in legs)
        losses.append(-0.35 * (shocked - base))
    return max(0.0, max(losses))


def perp(spot: float, vol: float) -> float:
    return spot


def check(result: MarginResult, row: int, expected: dict[str, float]) -> None:
    actual = {
        "collateral_value": result.collateral_value[row],
        "upnl": result.upnl[row],
        "equity": result.equity[row],
        "health": result.health[row],
    }
    for mode in Mode:
        actual[f"{mode.label}.im"] = result.im[row, mode]
        actual[f"{mode.label}.mm"] = result.mm[row, mode]
        actual[f"{mode.label}.required"] = result.required[row, mode]
    for name, value in expected.items():
        assert actual[name] == pytest.approx(value, rel=1e-10, abs=1e-9), name


def run(accounts: list[dict[str, Any]], **params: Any) -> list[MarginResult]:
    _, kernel, reference = compute_both(default_risk(**params), accounts)
    return [kernel, reference]


def test_hedged_perp_pair_across_two_chains() -> None:
    account = {
        "id": "hedged",
        "positions": [
            {"chain": "a", "kind": "perp", "underlying": "ETH", "qty": 2, "entry": 3050},
            {"chain": "b", "kind": "perp", "underlying": "ETH", "qty": -2, "entry": 2980},
        ],
    }
    for result in run([account]):
        check(result, 0, {
            "upnl": -140.0,
            "isolated.im": 1200.0, "isolated.mm": 600.0, "isolated.required": 700.0 + 640.0,
            "cross_siloed.required": 1340.0, "cross.required": 1340.0,
            "portfolio.mm": 0.005 * 4 * ETH, "portfolio.im": 1.25 * 60.0, "portfolio.required": 75.0 + 140.0,
            "equity": -140.0, "health": -140.0 / 60.0,
        })
        assert result.liquidatable[0] == 1


def test_modes_differ_in_what_funds_what() -> None:
    # chain a: ETH winner (+800) beside a BTC loser (-100); chain b: a big BTC winner (+1000).
    account = {
        "id": "mixed",
        "positions": [
            {"chain": "a", "kind": "perp", "underlying": "ETH", "qty": 2, "entry": 2600},
            {"chain": "a", "kind": "perp", "underlying": "BTC", "qty": -0.1, "entry": 59000},
            {"chain": "b", "kind": "perp", "underlying": "BTC", "qty": 0.1, "entry": 50000},
        ],
    }
    eth_worst = worst_scenario_loss([(2, perp)], ETH, ETH_VOL, ETH_RANGE)
    assert eth_worst == pytest.approx(900.0)
    portfolio_mm = eth_worst + max(0.0, 0.005 * 0.2 * BTC)  # BTC legs cancel: the floor decides
    for result in run([account]):
        check(result, 0, {
            "upnl": 800.0 - 100.0 + 1000.0,
            "isolated.im": 600.0 + 600.0 + 600.0,
            "isolated.required": 0.0 + 700.0 + 0.0,
            "cross_siloed.required": (1200.0 - 700.0) + 0.0,
            "cross.required": 1800.0 - 1700.0,
            "portfolio.mm": portfolio_mm,
            "portfolio.im": 1.25 * portfolio_mm,
            "portfolio.required": 0.0,
        })


def test_covered_call() -> None:
    account = {
        "id": "covered",
        "positions": [
            {"chain": "a", "kind": "perp", "underlying": "ETH", "qty": 1, "entry": 2900},
            {"chain": "a", "kind": "option", "underlying": "ETH", "type": "call", "strike": 3300,
             "expiry": THIRTY_DAYS, "qty": -1, "entry": 75},
        ],
    }
    call = lambda spot, vol: black76("call", spot, 3300, vol, THIRTY_DAYS)  # noqa: E731
    mark = call(ETH, ETH_VOL)
    upnl = (ETH - 2900) - (mark - 75)
    # Short call 300 out of the money: max(0.15 S - 300, 0.10 S) = 300, plus the premium.
    im = 0.10 * ETH + (300.0 + mark)
    mm = 0.05 * ETH + (0.075 * ETH + mark)
    worst = worst_scenario_loss([(1, perp), (-1, call)], ETH, ETH_VOL, ETH_RANGE)
    portfolio_mm = max(worst, 0.005 * 2 * ETH)
    for result in run([account]):
        check(result, 0, {
            "upnl": upnl, "isolated.im": im, "isolated.mm": mm,
            "isolated.required": max(0.0, 0.10 * ETH - 100.0) + max(0.0, 300.0 + mark + (mark - 75)),
            "cross.required": max(0.0, im - upnl),
            "portfolio.mm": portfolio_mm, "portfolio.required": max(0.0, 1.25 * portfolio_mm - upnl),
        })
    # The hedge is what portfolio margin rewards: less than the standard charges.
    assert portfolio_mm < mm


def test_naked_short_put() -> None:
    account = {
        "id": "put-seller",
        "collateral": [{"chain": "c", "asset": "USDC", "amount": 2500}],
        "positions": [
            {"chain": "c", "kind": "option", "underlying": "ETH", "type": "put", "strike": 2700,
             "expiry": THIRTY_DAYS, "qty": -5, "entry": 60},
        ],
    }
    put = lambda spot, vol: black76("put", spot, 2700, vol, THIRTY_DAYS)  # noqa: E731
    mark = put(ETH, ETH_VOL)
    haircut = 2.33 * 0.0005 * math.sqrt(2) + 0.1 * 2500 / 1e9
    collateral = 2500 * (1 - haircut)
    upnl = -5 * (mark - 60)
    im = 5 * (max(0.15 * ETH - 300.0, 0.10 * ETH) + mark)
    mm = 5 * (0.075 * ETH + mark)
    portfolio_mm = max(worst_scenario_loss([(-5, put)], ETH, ETH_VOL, ETH_RANGE), 0.005 * 5 * ETH)
    for result in run([account]):
        check(result, 0, {
            "collateral_value": collateral, "upnl": upnl, "equity": collateral + upnl,
            "isolated.im": im, "isolated.mm": mm, "isolated.required": max(0.0, im - upnl),
            "cross_siloed.required": max(0.0, im - upnl),
            "portfolio.mm": portfolio_mm, "portfolio.im": 1.25 * portfolio_mm,
            "health": (collateral + upnl) / portfolio_mm,
        })


def test_expired_option_is_worth_its_intrinsic_value() -> None:
    account = {
        "id": "expired",
        "positions": [
            {"chain": "a", "kind": "option", "underlying": "BTC", "type": "call", "strike": 55000,
             "expiry": 0, "qty": 0.1, "entry": 4000},
            {"chain": "a", "kind": "option", "underlying": "BTC", "type": "put", "strike": 50000,
             "expiry": -0.5, "qty": -1, "entry": 10},
        ],
    }
    # Call: intrinsic 5,000 -> upnl 0.1 x 1,000. Put: out of the money, worth 0 -> upnl +10.
    # A 12% fall (52,800) costs the call 500 and leaves the put worthless; the weighted extreme
    # fall of 24% (45,600) costs 500 + 4,400 on the short put: 0.35 x 4,900 = 1,715 is worst.
    legs = [(0.1, lambda s, v: max(0.0, s - 55000)), (-1, lambda s, v: max(0.0, 50000 - s))]
    worst = worst_scenario_loss(legs, BTC, BTC_VOL, BTC_RANGE)
    assert worst == pytest.approx(0.35 * (500.0 + 4400.0))
    short_put_im = max(0.15 * BTC - 10000, 0.10 * BTC) + 0.0
    for result in run([account]):
        check(result, 0, {
            "upnl": 100.0 + 10.0,
            "isolated.im": short_put_im, "isolated.mm": 0.075 * BTC,
            "isolated.required": 0.0 + (short_put_im - 10.0),
            "portfolio.mm": worst, "portfolio.required": 1.25 * worst - 110.0,
        })


def test_collateral_on_one_chain_backs_positions_on_another() -> None:
    account = {
        "id": "cross-chain",
        "collateral": [
            {"chain": "a", "asset": "WBTC", "amount": 0.1},
            {"chain": "c", "asset": "WBTC", "amount": 0.05},
        ],
        "positions": [{"chain": "b", "kind": "perp", "underlying": "BTC", "qty": 0.5, "entry": 62000}],
    }
    # Concentration is judged on the 0.15 WBTC total, across both chains.
    haircut = 0.02 + 2.33 * 0.03 * math.sqrt(2) + 0.1 * 0.15 * BTC / 8e8
    collateral = 0.15 * BTC * (1 - haircut)
    portfolio_mm = 0.5 * BTC * BTC_RANGE
    for result in run([account]):
        check(result, 0, {
            "collateral_value": collateral, "upnl": -1000.0, "equity": collateral - 1000.0,
            "isolated.required": 3000.0 + 1000.0, "cross_siloed.required": 4000.0, "cross.required": 4000.0,
            "portfolio.mm": portfolio_mm, "health": (collateral - 1000.0) / portfolio_mm,
        })
        assert result.liquidatable[0] == 0


def test_haircut_is_capped_and_history_gives_ewma_vol() -> None:
    risk = default_risk()
    risk["assets"]["THIN"] = {"price": 10.0, "base_haircut": 0.1, "depth": 1000.0, "price_history": [100, 110, 99, 104]}
    account = {"id": "thin", "collateral": [{"chain": "a", "asset": "THIN", "amount": 1000}]}
    _, kernel, reference = compute_both(risk, [account])
    for result in (kernel, reference):
        # Holding value 10,000 against depth 1,000: the concentration part alone exceeds the cap.
        assert result.collateral_value[0] == pytest.approx(1000 * 10 * (1 - 0.5))
    risk["assets"]["THIN"]["depth"] = 1e12
    r1, r2, r3 = math.log(110 / 100), math.log(99 / 110), math.log(104 / 99)
    variance = r1 * r1
    variance = 0.94 * variance + 0.06 * r2 * r2
    variance = 0.94 * variance + 0.06 * r3 * r3
    haircut = 0.1 + 2.33 * math.sqrt(variance) * math.sqrt(2) + 0.1 * 10000 / 1e12
    _, kernel, reference = compute_both(risk, [account])
    for result in (kernel, reference):
        assert result.collateral_value[0] == pytest.approx(10000 * (1 - haircut), rel=1e-12)


def test_account_without_positions_has_no_margin_and_null_health() -> None:
    for result in run([{"id": "idle", "collateral": [{"chain": "a", "asset": "USDC", "amount": 5}]}]):
        assert all(result.required[0, mode] == 0.0 for mode in Mode)
        assert math.isnan(result.health[0]) and result.liquidatable[0] == 0


def test_extreme_scan_range_floors_shocked_price_at_zero() -> None:
    risk = default_risk()
    risk["underlyings"]["ETH"]["scan_range"] = 0.8  # extreme move = -160%
    account = {"id": "short-put", "positions": [
        {"chain": "a", "kind": "option", "underlying": "ETH", "type": "put", "strike": 2000, "expiry": 0.1, "qty": -1, "entry": 10}]}
    _, kernel, reference = compute_both(risk, [account])
    put = lambda spot, vol: black76("put", spot, 2000, vol, 0.1)  # noqa: E731
    worst = worst_scenario_loss([(-1, put)], ETH, ETH_VOL, 0.8)
    for result in (kernel, reference):
        assert result.mm[0, Mode.PORTFOLIO] == pytest.approx(max(worst, 15.0), rel=1e-10)
