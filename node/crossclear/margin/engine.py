"""A book's live margin: computed once, then recomputed only where the market moved.

The node keeps every account in arrays and reacts to three kinds of change: a new price or
vol for an underlying, a new price for a collateral asset, and an account's positions or
collateral changing. Each update recomputes only the accounts it can affect and returns
their indices, so a price tick on SOL leaves BTC-only accounts untouched.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import numpy.typing as npt

from crossclear.margin._kernel_api import KernelCall
from crossclear.margin._model import Book, FloatArray, Instruments, MarginParams, MarginResult, Market

AccountIndices = npt.NDArray[np.int64]


def _holders(
    owner_of_row: npt.NDArray[np.int64], key_of_row: npt.NDArray[np.int32], key_count: int, accounts: int
) -> list[AccountIndices]:
    """For each key (an underlying or an asset), the sorted accounts with a row on it."""
    # One sort over (key, owner) pairs, then split per key: no Python loop over rows.
    # np.unique sorts through a slow generic path here; a plain sort and a neighbour test give
    # the same sorted distinct pairs tens of times faster at a million accounts.
    codes = np.sort(key_of_row.astype(np.int64) * accounts + owner_of_row)
    pairs = codes[np.concatenate(([True], codes[1:] != codes[:-1]))] if codes.size else codes
    keys = pairs // max(accounts, 1)
    owners = pairs % max(accounts, 1)
    boundaries = np.searchsorted(keys, np.arange(key_count + 1))
    return [owners[boundaries[k] : boundaries[k + 1]].astype(np.int64) for k in range(key_count)]


class MarginEngine:
    """Margin of every account of a book, kept current by incremental recomputation."""

    def __init__(self, params: MarginParams, market: Market, instruments: Instruments, book: Book) -> None:
        self._params = params
        self._market = market
        self._instruments = instruments
        self._book = book
        self._kernel = KernelCall(params, market, instruments)
        self.result = MarginResult.empty(book.account_count)
        self._kernel.compute(book, self.result)

        accounts = book.account_count
        position_owner = np.repeat(np.arange(accounts, dtype=np.int64), np.diff(book.position_offsets))
        collateral_owner = np.repeat(np.arange(accounts, dtype=np.int64), np.diff(book.collateral_offsets))
        self._holders_of_underlying = _holders(
            position_owner, instruments.underlying[book.position_instrument], len(market.underlying_names), accounts
        )
        self._holders_of_asset = _holders(collateral_owner, book.collateral_asset, len(market.asset_names), accounts)

    @property
    def market(self) -> Market:
        """The market the current results were computed at."""
        return self._market

    @property
    def instrument_marks(self) -> FloatArray:
        """Mark of every instrument at the current market."""
        return self._kernel.instrument_marks

    def holders_of_underlying(self, underlying: int) -> AccountIndices:
        """Accounts with at least one position on `underlying` (sorted indices)."""
        return self._holders_of_underlying[underlying]

    def holders_of_asset(self, asset: int) -> AccountIndices:
        """Accounts holding `asset` as collateral on any chain (sorted indices)."""
        return self._holders_of_asset[asset]

    def update_underlying(self, underlying: int, price: float | None = None, vol: float | None = None) -> AccountIndices:
        """Move an underlying's price and/or vol; recompute its holders only. Returns them."""
        prices = _with(self._market.underlying_price, underlying, price)
        vols = _with(self._market.underlying_vol, underlying, vol)
        self._reprice(replace(self._market, underlying_price=prices, underlying_vol=vols))
        touched = self._holders_of_underlying[underlying]
        self._kernel.compute(self._book, self.result, touched)
        return touched

    def update_asset(self, asset: int, price: float | None = None, daily_vol: float | None = None) -> AccountIndices:
        """Move a collateral asset's price and/or daily vol; recompute its holders only."""
        prices = _with(self._market.asset_price, asset, price)
        vols = _with(self._market.asset_daily_vol, asset, daily_vol)
        self._reprice(replace(self._market, asset_price=prices, asset_daily_vol=vols))
        touched = self._holders_of_asset[asset]
        self._kernel.compute(self._book, self.result, touched)
        return touched

    def recompute_accounts(self, accounts: AccountIndices) -> None:
        """Recompute the given accounts, e.g. after their rows in the book changed in place."""
        self._kernel.compute(self._book, self.result, np.ascontiguousarray(accounts, dtype=np.int64))

    def _reprice(self, market: Market) -> None:
        # Re-pricing the instrument table is instruments x scenarios valuations: cheap next
        # to any account sweep, and it keeps every instrument consistent with one market.
        self._market = market
        self._kernel = KernelCall(self._params, market, self._instruments)


def _with(values: FloatArray, index: int, new_value: float | None) -> FloatArray:
    if new_value is None:
        return values
    updated = values.copy()
    updated[index] = new_value
    return updated
