"""Backtests: margin each account every day with the history up to that day, then compare the
margin with the loss the book really made over the next h days.

The book is held at constant moneyness and notional: every day each position is re-struck
at that day's price level, so a 20-year backtest margins the same kind of book throughout
(a fixed strike of 1,300 on the S&P 500 would be deep in or out of the money for most of
1999-2018). Black-76 and perpetual values are homogeneous in (price, strike), so this is the
ACCOUNTS book at the RISK file's prices, moved by each day's returns: the v2 scenarios are
the returns of the window ending that day, the realised move is ln(P_(t+h) / P_t), revalued as
in step 6 (time to expiry T - h/365, implied vol unchanged). v1's grid, whose inputs (price,
vol, scan range) are the RISK file's, asks the same margin every day.

Work splits by day (each day's scenario table is then priced once, by one worker) or by
account: every figure comes from the same per-day table computed the same way wherever it is
computed, so any split gives the same bits as one process.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from crossclear._errors import UsageError
from crossclear.margin import MarginInputs, Mode
from crossclear.margin._kernel_api import compute_margin
from crossclear.margin._model import Book, FloatArray
from crossclear.margin.methodology import instrument_value
from crossclear.risk._inputs import closes_for_market, underlyings_in_use
from crossclear.risk._kernel_api import RiskKernel, shard_bounds
from crossclear.risk._model import EsResult, FhsParams, History
from crossclear.risk.fhs import DAYS_PER_YEAR
from crossclear.risk.forecast import walk_forward

#: (model, mode) columns of a backtest, in report order.
GRID_MODES = tuple(("grid", mode.label) for mode in Mode)
FHS_MODES = (("fhs", "portfolio"),)

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class BacktestSpec:
    """What a backtest runs on; the same for every shard of accounts."""

    margin: MarginInputs
    """ACCOUNTS book, instruments and the RISK market (reference prices, vols, scan ranges)."""
    fhs: FhsParams
    """v2 parameters (h, L, alpha also set the backtest's horizon, warm-up and level)."""
    history: History
    """Daily closes; must hold every underlying a position uses."""
    first: int
    """Row of the first backtest day (needs L rows before it)."""
    last: int
    """Row of the last backtest day (needs h rows after it)."""
    models: tuple[str, ...]
    """"grid", "fhs" or both."""
    forecasters: tuple[str, ...] = ()
    """More forecasters to run FHS with, each as a model "fhs:<name>" beside "fhs" (which uses
    params.fhs_forecaster)."""
    sigma: Mapping[str, FloatArray] = field(default_factory=dict)
    """Forecaster -> today's daily volatility, days x market underlyings, from its walk-forward
    (`forecast_sigmas`); EWMA needs none (the kernel's filter is its forecast)."""
    forecast_fallbacks: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    """Forecaster -> underlying -> days its walk-forward fell back to the EWMA."""

    @property
    def days(self) -> int:
        """Backtest days."""
        return self.last - self.first + 1

    @property
    def columns(self) -> tuple[tuple[str, str], ...]:
        """(model, mode) pairs margined."""
        fhs = FHS_MODES + tuple((f"fhs:{name}", "portfolio") for name in self.forecasters) if "fhs" in self.models else ()
        return (GRID_MODES if "grid" in self.models else ()) + fhs

    def forecaster_of(self, model: str) -> str | None:
        """The forecaster an FHS model uses (None for the grid)."""
        if model == "fhs":
            return self.fhs.fhs_forecaster
        return model.split(":", 1)[1] if model.startswith("fhs:") else None


@dataclass(frozen=True)
class BacktestArrays:
    """Per day and account figures of a backtest (days x accounts, or columns x days x accounts)."""

    mm: FloatArray
    """Maintenance margin, columns x days x accounts (columns: BacktestSpec.columns)."""
    required: FloatArray
    """Collateral required, columns x days x accounts."""
    loss: FloatArray
    """Realised loss over the next h days, days x accounts."""


def select_days(history: History, fhs: FhsParams, start: str, stop: str, label: str) -> tuple[int, int]:
    """Rows of the first and last backtest day between dates start and stop (inclusive)."""
    dates = history.dates
    first = next((row for row, date in enumerate(dates) if date >= start), None)
    last = next((row for row in range(len(dates) - 1, -1, -1) if dates[row] <= stop), None)
    if first is None or last is None or last < first:
        raise UsageError(f"{label}: no rows between {start} and {stop} (the file covers {dates[0]} to {dates[-1]})")
    lookback, horizon = fhs.fhs_lookback_days, fhs.fhs_mpor_days
    if first < lookback:
        raise UsageError(
            f"{label}: row {first + 2}: the first day {dates[first]} has {first} closes before it, "
            f"the lookback needs L = {lookback} (first possible day: {dates[lookback] if lookback < len(dates) else 'none'})"
        )
    last = min(last, len(dates) - 1 - horizon)
    if last < first:
        raise UsageError(f"{label}: row {len(dates) + 1}: no day in range has the {horizon} later closes the realised loss needs")
    return first, last


def _subbook(book: Book, start: int, stop: int) -> Book:
    position_begin, position_end = int(book.position_offsets[start]), int(book.position_offsets[stop])
    collateral_begin, collateral_end = int(book.collateral_offsets[start]), int(book.collateral_offsets[stop])
    return Book(
        position_offsets=book.position_offsets[start : stop + 1] - position_begin,
        position_instrument=book.position_instrument[position_begin:position_end],
        position_chain=book.position_chain[position_begin:position_end],
        position_qty=book.position_qty[position_begin:position_end],
        position_entry=book.position_entry[position_begin:position_end],
        collateral_offsets=book.collateral_offsets[start : stop + 1] - collateral_begin,
        collateral_asset=book.collateral_asset[collateral_begin:collateral_end],
        collateral_chain=book.collateral_chain[collateral_begin:collateral_end],
        collateral_amount=book.collateral_amount[collateral_begin:collateral_end],
    )


def run_block(spec: BacktestSpec, accounts_range: tuple[int, int], days_range: tuple[int, int], progress: Progress | None = None) -> BacktestArrays:
    """The backtest of accounts [start, stop) of the book on backtest days [begin, end)."""
    margin, fhs = spec.margin, spec.fhs
    start, stop = accounts_range
    day_begin, day_end = days_range
    book = _subbook(margin.book, start, stop)
    accounts, days, columns = stop - start, day_end - day_begin, spec.columns
    mm = np.zeros((len(columns), days, accounts))
    required = np.zeros((len(columns), days, accounts))
    loss = np.zeros((days, accounts))
    market, instruments = margin.market, margin.instruments

    if "grid" in spec.models:
        grid = compute_margin(margin.params, market, instruments, book)
        for column, mode in enumerate(Mode):
            mm[column] = grid.mm[:, mode]
            required[column] = grid.required[:, mode]
    fhs_columns = [(column, spec.forecaster_of(model)) for column, (model, _) in enumerate(columns) if spec.forecaster_of(model) is not None]

    spot = market.underlying_price[instruments.underlying]
    vol = market.underlying_vol[instruments.underlying]
    remaining = np.maximum(0.0, instruments.expiry_years - fhs.fhs_mpor_days / DAYS_PER_YEAR)
    mark = instrument_value(instruments.kind, spot, vol, instruments.strike, instruments.expiry_years)
    owner = np.repeat(np.arange(accounts), np.diff(book.position_offsets))
    in_use = [market.underlying_names.index(name) for name in underlyings_in_use(margin)]
    history_columns = [spec.history.column(market.underlying_names[u]) for u in in_use]
    rows = fhs.fhs_lookback_days + 1
    result = EsResult.empty(accounts)
    for day in range(days):
        row = spec.first + day_begin + day
        if fhs_columns:
            closes = closes_for_market(spec.history, margin, row, rows)
        for fhs_column, forecaster in fhs_columns:
            sigma = None if forecaster == "ewma" else spec.sigma[str(forecaster)][day_begin + day]
            RiskKernel(fhs, margin.params, market, instruments, closes, sigma).compute(book, result)
            mm[fhs_column, day] = result.mm
            required[fhs_column, day] = result.required
        # Realised: each underlying's log move from day t to t + h, on the re-struck book.
        move = np.zeros(len(market.underlying_names))
        later, now = spec.history.closes[row + fhs.fhs_mpor_days, history_columns], spec.history.closes[row, history_columns]
        move[in_use] = np.log(later) - np.log(now)
        realised_value = instrument_value(instruments.kind, spot * np.exp(move[instruments.underlying]), vol, instruments.strike, remaining)
        pnl = book.position_qty * (realised_value - mark)[book.position_instrument]
        loss[day] = -np.bincount(owner, weights=pnl, minlength=accounts) + 0.0
        if progress is not None:
            progress(day + 1, days)
    return BacktestArrays(mm=mm, required=required, loss=loss)


def run_local(spec: BacktestSpec, account_shards: int = 1, day_shards: int = 1, progress: Progress | None = None) -> BacktestArrays:
    """The whole backtest in this process, block by block (the blocks only change the split)."""
    rows = []
    for days in shard_bounds(spec.days, day_shards):
        rows.append(combine([run_block(spec, accounts, days, progress if day_shards == 1 and index == 0 else None)
                             for index, accounts in enumerate(shard_bounds(spec.margin.book.account_count, account_shards))], by="accounts"))
    return combine(rows, by="days")


def combine(parts: list[BacktestArrays], by: str) -> BacktestArrays:
    """Blocks' arrays put back together, in account ("accounts") or day ("days") order."""
    axis = 2 if by == "accounts" else 1
    return BacktestArrays(
        mm=np.concatenate([part.mm for part in parts], axis=axis),
        required=np.concatenate([part.required for part in parts], axis=axis),
        loss=np.concatenate([part.loss for part in parts], axis=axis - 1),
    )


def book_type(account_id: str) -> str:
    """An account's book type: its id without a trailing "-<number>"."""
    head, _, tail = account_id.rpartition("-")
    return head if head and tail.isdigit() else account_id


def account_days_per_second(accounts: int, days: int, seconds: float) -> float:
    """Throughput figure of the benchmark."""
    return accounts * days / seconds if seconds > 0 else math.inf


def forecast_sigmas(
    history: History, margin: MarginInputs, fhs: FhsParams, first: int, last: int, forecasters: tuple[str, ...]
) -> tuple[dict[str, FloatArray], dict[str, dict[str, int]]]:
    """Each forecaster's walk-forward volatility for backtest days first..last (refitted every
    forecast_refit_days days from the first), days x market underlyings, and its fallbacks."""
    settings = fhs.forecast_settings()
    names = market_names = margin.market.underlying_names
    sigmas: dict[str, FloatArray] = {}
    fallbacks: dict[str, dict[str, int]] = {}
    for forecaster in forecasters:
        if forecaster == "ewma" or forecaster in sigmas:
            continue
        sigma = np.zeros((last - first + 1, len(market_names)))
        fallbacks[forecaster] = {}
        for name in underlyings_in_use(margin):
            walk = walk_forward(history.closes[:, history.column(name)], forecaster, first, last, settings)
            sigma[:, names.index(name)] = np.sqrt(walk.variance / settings.horizon)
            fallbacks[forecaster][name] = int(walk.fallback.sum())
        sigmas[forecaster] = sigma
    return sigmas, fallbacks
