"""The margin methodology (v1), written once in numpy, readable top to bottom.

This module is the executable form of docs/margin-methodology.md. The C kernel
(native/margin/margin_kernel.c) computes exactly the same figures faster; the test suite
holds the two to 1e-9 relative on random books. Read this file to learn what a number means;
read the kernel to learn how it is made fast.

Order of the computation, for every account:
1. Value every instrument (Black-76 for options, spot for perpetuals) at the current market
   and under every portfolio scenario.
2. Haircut collateral (volatility part + concentration part) and sum its value.
3. Per position: unrealised P&L and the standard initial / maintenance requirements.
4. The four modes: isolated, cross_siloed (per chain), cross, portfolio (scenario worst loss).
5. Equity, health and whether the account is liquidatable.

Everything is vectorised over accounts; the only Python loops run over underlyings, chunks
of accounts and price histories, never over individual accounts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import numpy.typing as npt

from crossclear.margin._model import (
    Book,
    FloatArray,
    IndexArray,
    InstrumentKind,
    Instruments,
    MarginParams,
    MarginResult,
    Market,
    Mode,
)

#: Accounts processed together in the portfolio step; bounds the (accounts x instruments)
#: matrix to a few tens of megabytes whatever the book size.
PORTFOLIO_CHUNK_ACCOUNTS = 65_536

_erfc = np.vectorize(math.erfc, otypes=[np.float64])

Keys = npt.NDArray[np.integer[Any]]


def _sum_by(keys: Keys, weights: FloatArray, length: int) -> FloatArray:
    """Sum of weights per key 0..length-1 (numpy's bincount, typed as the floats it returns)."""
    return cast(FloatArray, np.bincount(keys, weights=weights, minlength=length))


def normal_cdf(x: FloatArray) -> FloatArray:
    """Standard normal cumulative distribution N(x)."""
    result: FloatArray = 0.5 * _erfc(-x / math.sqrt(2.0))
    return result


def instrument_value(
    kind: IndexArray, price: FloatArray, vol: FloatArray, strike: FloatArray, expiry_years: FloatArray
) -> FloatArray:
    """Value V of one unit of each instrument.

    Perpetual: V = S. Option: Black-76 with forward F = S and zero rates. When nothing is
    left to price (T <= 0, sigma <= 0, or a scenario drove the price to zero) an option is
    worth its intrinsic value.
    """
    is_option = kind != InstrumentKind.PERP
    priced = is_option & (expiry_years > 0.0) & (vol > 0.0) & (price > 0.0)
    # Substitute harmless values where Black-76 does not apply, then select.
    safe_price = np.where(priced, price, 1.0)
    safe_strike = np.where(priced, strike, 1.0)
    total_vol = np.where(priced, vol * np.sqrt(np.where(priced, expiry_years, 1.0)), 1.0)
    d1 = (np.log(safe_price / safe_strike) + 0.5 * total_vol * total_vol) / total_vol
    d2 = d1 - total_vol
    call = safe_price * normal_cdf(d1) - safe_strike * normal_cdf(d2)
    put = safe_strike * normal_cdf(-d2) - safe_price * normal_cdf(-d1)
    intrinsic_call = np.maximum(price - strike, 0.0)
    intrinsic_put = np.maximum(strike - price, 0.0)
    is_call = kind == InstrumentKind.CALL
    option_value = np.where(priced, np.where(is_call, call, put), np.where(is_call, intrinsic_call, intrinsic_put))
    value: FloatArray = np.where(is_option, option_value, price)
    return value


def ewma_daily_vol(price_history: Sequence[float], decay: float) -> float:
    """Daily volatility from a price history (oldest first) by EWMA of log returns.

    var_1 = r_1^2, var_t = decay * var_(t-1) + (1 - decay) * r_t^2, vol = sqrt(var_T).
    """
    returns = np.diff(np.log(np.asarray(price_history, dtype=np.float64)))
    variance = float(returns[0] ** 2)
    for log_return in returns[1:]:
        variance = decay * variance + (1.0 - decay) * float(log_return) ** 2
    return math.sqrt(variance)


@dataclass(frozen=True)
class Scenarios:
    """The portfolio scenario grid, shared by every underlying (moves scale with R_u)."""

    move_in_ranges: FloatArray
    """Price move as a multiple of the underlying's scan range R_u."""
    vol_shock: FloatArray
    """Relative shock applied to the underlying's implied vol."""
    weight: FloatArray
    """Weight of the scenario's P&L (1, or extreme_weight for the two extremes)."""


def scenarios(params: MarginParams) -> Scenarios:
    """Every price step crossed with every vol shock, then the two weighted extremes."""
    steps = np.arange(params.price_steps, dtype=np.float64)
    grid_moves = -1.0 + 2.0 * steps / (params.price_steps - 1)
    shocks = np.asarray(params.vol_shocks, dtype=np.float64)
    moves = np.concatenate([np.repeat(grid_moves, shocks.size), [-params.extreme_move, params.extreme_move]])
    vol_shocks = np.concatenate([np.tile(shocks, params.price_steps), [0.0, 0.0]])
    weights = np.concatenate([np.ones(params.price_steps * shocks.size), [params.extreme_weight] * 2])
    return Scenarios(move_in_ranges=moves, vol_shock=vol_shocks, weight=weights)


@dataclass(frozen=True)
class PricedInstruments:
    """Everything the per-account step needs to know about each instrument."""

    mark: FloatArray
    """Value at the current price and vol."""
    unit_im: FloatArray
    """Standard initial margin per unit: of any perp, or of a short option."""
    unit_mm: FloatArray
    """Standard maintenance margin per unit: of any perp, or of a short option."""
    scenario_pnl: FloatArray
    """instruments x scenarios: weighted P&L of one long unit in each scenario."""


def price_instruments(params: MarginParams, market: Market, instruments: Instruments) -> PricedInstruments:
    """Marks, per-unit standard requirements and scenario P&L of every instrument."""
    kind = instruments.kind
    spot = market.underlying_price[instruments.underlying]
    vol = market.underlying_vol[instruments.underlying]
    scan_range = market.underlying_scan_range[instruments.underlying]
    strike, expiry = instruments.strike, instruments.expiry_years
    mark = instrument_value(kind, spot, vol, strike, expiry)

    is_perp = kind == InstrumentKind.PERP
    out_of_the_money = np.where(kind == InstrumentKind.CALL, np.maximum(strike - spot, 0.0), np.maximum(spot - strike, 0.0))
    short_option_im = np.maximum(params.short_option_im_rate * spot - out_of_the_money, params.short_option_im_floor_rate * spot) + mark
    short_option_mm = params.short_option_mm_rate * spot + mark
    unit_im = np.where(is_perp, params.perp_im_rate * spot, short_option_im)
    unit_mm = np.where(is_perp, params.perp_mm_rate * spot, short_option_mm)

    grid = scenarios(params)
    # instruments x scenarios; a price cannot fall below zero, whatever the move.
    shocked_price = np.maximum(spot[:, None] * (1.0 + grid.move_in_ranges[None, :] * scan_range[:, None]), 0.0)
    shocked_vol = vol[:, None] * (1.0 + grid.vol_shock[None, :])
    shape = shocked_price.shape
    shocked_value = instrument_value(
        np.broadcast_to(kind[:, None], shape),
        shocked_price,
        shocked_vol,
        np.broadcast_to(strike[:, None], shape),
        np.broadcast_to(expiry[:, None], shape),
    )
    scenario_pnl = grid.weight[None, :] * (shocked_value - mark[:, None])
    return PricedInstruments(mark=mark, unit_im=unit_im, unit_mm=unit_mm, scenario_pnl=scenario_pnl)


def haircut(params: MarginParams, market: Market, asset: Keys, holding_total: FloatArray) -> FloatArray:
    """Haircut of each collateral entry of asset `asset` when its owner holds `holding_total`.

    h_a = min(haircut_max, base_a + z * v_a * sqrt(liq_days) + k * A_a * P_a / depth_a), where
    A_a is the account's total amount of asset a across all chains: concentration is judged
    on the whole holding, wherever it sits.
    """
    price = market.asset_price[asset]
    volatility_part = market.asset_base_haircut[asset] + params.haircut_z * market.asset_daily_vol[asset] * math.sqrt(params.haircut_liq_days)
    concentration_part = params.haircut_conc_k * holding_total * price / market.asset_depth[asset]
    rates: FloatArray = np.minimum(params.haircut_max, volatility_part + concentration_part)
    return rates


def collateral_value(params: MarginParams, market: Market, book: Book) -> FloatArray:
    """Haircut value of each account's collateral: sum of amount x P_a x (1 - h_a)."""
    accounts = book.account_count
    asset_count = len(market.asset_names)
    owner = np.repeat(np.arange(accounts), np.diff(book.collateral_offsets))
    asset = book.collateral_asset
    amount = book.collateral_amount
    holding_key = owner * asset_count + asset
    holding_total = _sum_by(holding_key, amount, accounts * asset_count)[holding_key]
    rates = haircut(params, market, asset, holding_total)
    return _sum_by(owner, amount * market.asset_price[asset] * (1.0 - rates), accounts)


def compute_margin(params: MarginParams, market: Market, instruments: Instruments, book: Book) -> MarginResult:
    """All margin figures for every account of the book (the reference implementation)."""
    accounts = book.account_count
    priced = price_instruments(params, market, instruments)
    owner = np.repeat(np.arange(accounts), np.diff(book.position_offsets))
    instrument = book.position_instrument
    qty = book.position_qty
    size = np.abs(qty)

    # Per position: P&L and standard requirements. Long options need no margin of their own.
    position_upnl = qty * (priced.mark[instrument] - book.position_entry)
    charged = (instruments.kind[instrument] == InstrumentKind.PERP) | (qty < 0.0)
    position_im = np.where(charged, size * priced.unit_im[instrument], 0.0)
    position_mm = np.where(charged, size * priced.unit_mm[instrument], 0.0)

    def per_account(weights: FloatArray) -> FloatArray:
        return _sum_by(owner, weights, accounts)

    upnl = per_account(position_upnl)
    im = per_account(position_im)
    mm = per_account(position_mm)
    isolated_required = per_account(np.maximum(position_im - position_upnl, 0.0))

    # cross_siloed: cross margin inside each chain, no transfer of P&L between chains.
    chain_count = len(market.chain_names)
    chain_key = owner * chain_count + book.position_chain
    chain_im = _sum_by(chain_key, position_im, accounts * chain_count)
    chain_upnl = _sum_by(chain_key, position_upnl, accounts * chain_count)
    siloed_required = np.maximum(chain_im - chain_upnl, 0.0).reshape(accounts, chain_count).sum(axis=1)

    portfolio_mm = _portfolio_maintenance(params, market, instruments, priced, owner, instrument, qty, accounts)
    portfolio_im = params.im_multiplier * portfolio_mm

    collateral = collateral_value(params, market, book)
    equity = collateral + upnl

    result = MarginResult.empty(accounts)
    result.collateral_value[:] = collateral
    result.upnl[:] = upnl
    result.equity[:] = equity
    for mode in (Mode.ISOLATED, Mode.CROSS_SILOED, Mode.CROSS):
        result.im[:, mode] = im
        result.mm[:, mode] = mm
    result.required[:, Mode.ISOLATED] = isolated_required
    result.required[:, Mode.CROSS_SILOED] = siloed_required
    result.required[:, Mode.CROSS] = np.maximum(im - upnl, 0.0)
    result.im[:, Mode.PORTFOLIO] = portfolio_im
    result.mm[:, Mode.PORTFOLIO] = portfolio_mm
    result.required[:, Mode.PORTFOLIO] = np.maximum(portfolio_im - upnl, 0.0)
    has_margin = portfolio_mm > 0.0
    result.health[:] = np.divide(equity, portfolio_mm, out=np.full(accounts, np.nan), where=has_margin)
    result.liquidatable[:] = equity < portfolio_mm
    return result


def _portfolio_maintenance(
    params: MarginParams,
    market: Market,
    instruments: Instruments,
    priced: PricedInstruments,
    owner: Keys,
    instrument: IndexArray,
    qty: FloatArray,
    accounts: int,
) -> FloatArray:
    """Sum over underlyings of max(worst scenario loss, floor on gross notional).

    The scenario P&L of an account on underlying u is (net quantity per instrument) times
    (instrument scenario P&L), a matrix product done a chunk of accounts at a time.
    """
    maintenance = np.zeros(accounts)
    position_underlying = instruments.underlying[instrument]
    for underlying in range(len(market.underlying_names)):
        on_underlying = position_underlying == underlying
        if not on_underlying.any():
            continue
        members = np.flatnonzero(instruments.underlying == underlying)
        local_instrument = np.searchsorted(members, instrument[on_underlying])
        holder = owner[on_underlying]
        held_qty = qty[on_underlying]
        table = priced.scenario_pnl[members]
        gross_notional = _sum_by(holder, np.abs(held_qty), accounts) * market.underlying_price[underlying]
        worst_loss = np.zeros(accounts)
        for start in range(0, accounts, PORTFOLIO_CHUNK_ACCOUNTS):
            stop = min(start + PORTFOLIO_CHUNK_ACCOUNTS, accounts)
            # Positions are grouped by account (CSR order), so a chunk is a contiguous slice.
            first, last = np.searchsorted(holder, [start, stop])
            key = (holder[first:last] - start) * members.size + local_instrument[first:last]
            net_qty = _sum_by(key, held_qty[first:last], (stop - start) * members.size)
            scenario_pnl = net_qty.reshape(stop - start, members.size) @ table
            worst_loss[start:stop] = np.maximum(np.max(-scenario_pnl, axis=1), 0.0)
        maintenance += np.maximum(worst_loss, params.pm_floor_rate * gross_notional)
    return maintenance
