"""The margin methodology v2 ("fhs"), written once in numpy, readable top to bottom.

This module is the executable form of the v2 section of docs/margin-methodology.md. The C
kernel (native/risk/risk_kernel.c) computes the same figures faster; the test suite holds the
two to 1e-9 relative.

Filtered historical simulation: each past daily return is divided by the volatility the EWMA
filter expected that day (step 3) and multiplied by today's (step 5), so the history's
shapes (fat tails, co-movement between underlyings on the same date) are kept while its
scale is today's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from crossclear.margin._model import Book, FloatArray, Instruments, MarginParams, Market
from crossclear.margin.methodology import instrument_value
from crossclear.risk._model import EsResult, FhsParams

#: Accounts per matrix product in `compute_es`; bounds its (accounts x scenarios) temporary.
CHUNK_ACCOUNTS = 4096

DAYS_PER_YEAR = 365.0


@dataclass(frozen=True)
class FilteredReturns:
    """Steps 1-4 for every underlying (columns)."""

    returns: FloatArray
    """r_t = ln(P_t / P_(t-1)), L x underlyings."""
    sigma: FloatArray
    """sigma_t for t = 1..L+1, (L + 1) x underlyings; the last row is today's forecast."""
    standardised: FloatArray
    """z_t = r_t / sigma_t, L x underlyings (0 where sigma_t is 0: a flat history)."""
    sigma_star: FloatArray
    """Today's volatility, floored when apc_vol_floor is set; one per underlying."""


def filter_returns(closes: FloatArray, params: FhsParams, sigma_forecast: FloatArray | None = None) -> FilteredReturns:
    """Steps 1-4 on the last L + 1 closes (rows oldest first, one column per underlying).

    `sigma_forecast` (one daily vol per column) replaces sigma_(L+1) in step 4 when a
    forecaster other than the EWMA filter supplies it (params.fhs_forecaster); the floor still
    applies. Steps 1-3 (the standardised returns) are the EWMA filter's either way.
    """
    lookback = params.fhs_lookback_days
    window = closes[-(lookback + 1) :]
    returns = np.diff(np.log(window), axis=0)  # step 1
    plain_variance = np.mean(returns * returns, axis=0)
    variance = np.empty((lookback + 1, window.shape[1]))
    variance[0] = plain_variance  # step 2: sigma_1^2 is the lookback's mean square
    for t in range(lookback):
        variance[t + 1] = params.fhs_lambda * variance[t] + (1.0 - params.fhs_lambda) * returns[t] ** 2
    sigma = np.sqrt(variance)
    standardised = np.divide(returns, sigma[:-1], out=np.zeros_like(returns), where=sigma[:-1] > 0.0)  # step 3
    today = sigma[-1] if sigma_forecast is None else np.asarray(sigma_forecast, dtype=np.float64)
    sigma_star = np.maximum(today, np.sqrt(plain_variance)) if params.apc_vol_floor else today  # step 4
    return FilteredReturns(returns=returns, sigma=sigma, standardised=standardised, sigma_star=sigma_star)


def scenario_log_returns(closes: FloatArray, params: FhsParams, sigma_forecast: FloatArray | None = None) -> FloatArray:
    """Step 5: h-day log return of each underlying in scenario s = t, L x underlyings."""
    filtered = filter_returns(closes, params, sigma_forecast)
    scaled: FloatArray = math.sqrt(params.fhs_mpor_days) * filtered.standardised * filtered.sigma_star[None, :]
    return scaled


def stress_log_returns(params: FhsParams, market: Market) -> FloatArray:
    """Step 8's moves as a stress scenarios x underlyings matrix (unnamed underlyings: 0)."""
    moves = np.zeros((len(params.stress_scenarios), len(market.underlying_names)))
    for row, scenario in enumerate(params.stress_scenarios):
        for name, log_return in scenario.returns:
            moves[row, market.underlying_names.index(name)] = log_return
    return moves


@dataclass(frozen=True)
class ScenarioTable:
    """Step 6 for one unit of every instrument."""

    mark: FloatArray
    """V_now: value at the current price, vol and time to expiry (as in v1)."""
    pnl: FloatArray
    """instruments x (L + stress scenarios): V_scenario - V_now; stress columns times their weight."""


def scenario_table(
    params: FhsParams, market: Market, instruments: Instruments, closes: FloatArray, sigma_forecast: FloatArray | None = None
) -> ScenarioTable:
    """Revalue one unit of each instrument in every historical and stress scenario."""
    spot = market.underlying_price[instruments.underlying]
    vol = market.underlying_vol[instruments.underlying]
    kind, strike, expiry = instruments.kind, instruments.strike, instruments.expiry_years
    mark = instrument_value(kind, spot, vol, strike, expiry)
    log_moves = np.concatenate([scenario_log_returns(closes, params, sigma_forecast), stress_log_returns(params, market)], axis=0)
    weights = np.concatenate([np.ones(params.fhs_lookback_days), [s.weight for s in params.stress_scenarios]])
    # instruments x scenarios: the move of the instrument's underlying in each scenario.
    scenario_price = spot[:, None] * np.exp(log_moves[:, instruments.underlying].T)
    remaining = np.maximum(0.0, expiry - params.fhs_mpor_days / DAYS_PER_YEAR)
    shape = scenario_price.shape
    scenario_value = instrument_value(
        np.broadcast_to(kind[:, None], shape),
        scenario_price,
        np.broadcast_to(vol[:, None], shape),
        np.broadcast_to(strike[:, None], shape),
        np.broadcast_to(remaining[:, None], shape),
    )
    return ScenarioTable(mark=mark, pnl=weights[None, :] * (scenario_value - mark[:, None]))


def expected_shortfall(losses: FloatArray, tail_count: int) -> FloatArray:
    """Step 7: mean of the k largest losses of each row."""
    scenarios = losses.shape[1]
    tail = np.partition(losses, scenarios - tail_count, axis=1)[:, scenarios - tail_count :]
    result: FloatArray = tail.mean(axis=1)
    return result


def compute_es(
    params: FhsParams, margin_params: MarginParams, market: Market, instruments: Instruments, book: Book, closes: FloatArray,
    sigma_forecast: FloatArray | None = None,
) -> EsResult:
    """v2 portfolio figures for every account of the book (the reference implementation)."""
    accounts = book.account_count
    table = scenario_table(params, market, instruments, closes, sigma_forecast)
    lookback, tail_count = params.fhs_lookback_days, params.tail_count
    owner = np.repeat(np.arange(accounts), np.diff(book.position_offsets))
    instrument = book.position_instrument
    upnl = np.bincount(owner, weights=book.position_qty * (table.mark[instrument] - book.position_entry), minlength=accounts)

    result = EsResult.empty(accounts)
    result.upnl[:] = upnl
    for start in range(0, accounts, CHUNK_ACCOUNTS):
        stop = min(start + CHUNK_ACCOUNTS, accounts)
        first, last = book.position_offsets[start], book.position_offsets[stop]
        # The chunk's net quantity per instrument, then one matrix product for its P&L.
        key = (owner[first:last] - start) * instruments.count + instrument[first:last]
        net_qty = np.bincount(key, weights=book.position_qty[first:last], minlength=(stop - start) * instruments.count)
        losses = -(net_qty.reshape(stop - start, instruments.count) @ table.pnl)  # step 7: loss = -P&L
        result.es[start:stop] = expected_shortfall(losses[:, :lookback], tail_count)
        if params.stress_scenarios:
            result.stress[start:stop] = losses[:, lookback:].max(axis=1)  # step 8
    # + 0.0 turns a -0.0 (the loss of a book that cannot lose) into 0.0.
    result.es[:] += 0.0
    result.stress[:] += 0.0
    result.mm[:] = np.maximum(0.0, np.maximum(result.es, result.stress)) + 0.0  # step 9
    result.im[:] = margin_params.im_multiplier * result.mm
    result.required[:] = np.maximum(0.0, result.im - upnl)
    return result
