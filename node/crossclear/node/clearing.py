"""Margin of every account, published as immutable snapshots.

`ClearingState` holds the book the margin kernel reads: each account's collateral (integer
base units per chain and asset, from the ledger), its positions and the latest certified
prices. Only the processor changes it. After a batch of changes the processor calls
`publish`, off the event loop, which recomputes what moved (a price tick recomputes only the
holders of what moved; a structural change rebuilds the arrays) and returns a
`MarginSnapshot`: frozen, never written again, so readers (gRPC, metrics, order decisions)
use it without locks while the next one is being computed.

Amounts become floats only here, for margin arithmetic: units / 10**decimals.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from crossclear.margin import Book, InstrumentKey, InstrumentKind, Instruments, MarginEngine, MarginParams, MarginResult, Market, Mode
from crossclear.margin import compute_margin
from crossclear.margin.methodology import haircut, instrument_value

SECONDS_PER_YEAR = 365.0 * 24 * 3600

#: Options are keyed by time to expiry; the instrument table is re-keyed against chain time at
#: least this often (a full rebuild, so not on every block).
REKEY_EXPIRIES_SECONDS = 60.0
#: Chain id under which an account's settlement balance appears among its holdings.
SETTLEMENT_CHAIN = 0

ModeFigures = tuple[float, float, float, float]


class ClearingError(ValueError):
    """A request the clearing state refuses (unknown account, asset or underlying, bad amount)."""


@dataclass(frozen=True)
class PositionRecord:
    """One open position, in the margin methodology's units."""

    chain_id: int
    """Chain the position lives on."""
    underlying: str
    """Underlying name (from the node's risk configuration)."""
    kind: InstrumentKind
    """Perpetual, call or put."""
    qty: float
    """Signed size in units of the underlying."""
    entry: float
    """Entry price per unit (an option's premium); not used when `at_mark`."""
    strike: float = 0.0
    """Strike of an option."""
    expiry_timestamp: float = 0.0
    """Unix time an option expires at."""
    at_mark: bool = False
    """A perpetual whose P&L is paid as variation margin: carried at the current mark, so its
    entry follows every certified price and its unrealised P&L is always zero."""


@dataclass(frozen=True)
class FeedPrice:
    """The latest certified answer of one price feed."""

    price: float
    """Price in quote units (the feed's answer scaled by its decimals)."""
    updated_at: float
    """Unix time the feed says it was updated (chain time of the feed's chain)."""
    heartbeat_seconds: float
    """Older than this in chain time, the price is stale: releases and seizes stop."""


@dataclass(frozen=True)
class CollateralLine:
    """One collateral holding of an account, valued."""

    chain_id: int
    """Chain of the vault holding it."""
    asset: str
    """Asset name."""
    units: int
    """Base units held (what the ledger says, exactly); on chain 0 the settlement balance, which may be negative."""
    decimals: int
    """Token decimals: units / 10**decimals is the amount in asset units."""
    price: float
    """Asset price used."""
    haircut: float
    """Haircut rate applied."""
    value: float
    """amount x price x (1 - haircut)."""

    @property
    def amount(self) -> float:
        """Amount in asset units (for display and margin arithmetic only)."""
        return float(self.units / 10**self.decimals)


@dataclass(frozen=True)
class PositionLine:
    """One position of an account, marked."""

    position_id: str
    record: PositionRecord
    mark: float
    upnl: float


@dataclass(frozen=True)
class AccountMargin:
    """Everything GetMargin reports about one account."""

    account: str
    collateral: tuple[CollateralLine, ...]
    positions: tuple[PositionLine, ...]
    collateral_value: float
    upnl: float
    equity: float
    im: ModeFigures
    mm: ModeFigures
    required: ModeFigures
    health: float | None
    liquidatable: bool
    height: int
    stale_feeds: tuple[str, ...]

    @property
    def prices_fresh(self) -> bool:
        """True when no price this margin depends on is older than its feed's heartbeat."""
        return not self.stale_feeds


@dataclass(frozen=True)
class AccountBook:
    """One account's collateral and positions; replaced, never changed, so snapshots share it."""

    collateral: tuple[tuple[tuple[int, str], int], ...] = ()
    """((chain id, asset), base units), sorted."""
    positions: tuple[tuple[str, PositionRecord], ...] = ()
    """(position id, record), sorted by id."""


def normalise_account(account: str) -> str:
    """Accounts are 20-byte addresses, held as lowercase 0x hex."""
    text = account.strip().lower()
    if not text.startswith("0x") or len(text) != 42:
        raise ClearingError(f"account must be a 0x-prefixed 20-byte hex address, got {account!r}")
    try:
        int(text, 16)
    except ValueError:
        raise ClearingError(f"account must be a 0x-prefixed 20-byte hex address, got {account!r}") from None
    return text


def _mode_figures(matrix: np.ndarray, row: int) -> ModeFigures:
    return (
        float(matrix[row, Mode.ISOLATED]),
        float(matrix[row, Mode.CROSS_SILOED]),
        float(matrix[row, Mode.CROSS]),
        float(matrix[row, Mode.PORTFOLIO]),
    )


@dataclass(frozen=True)
class _Pricing:
    """What margin needs besides the books: parameters, market and index maps."""

    params: MarginParams
    underlying_index: Mapping[str, int]
    asset_index: Mapping[str, int]
    decimals: Mapping[str, int]


def _instrument_key(pricing: _Pricing, record: PositionRecord, now: float) -> InstrumentKey:
    if record.kind == InstrumentKind.PERP:
        return (pricing.underlying_index[record.underlying], int(record.kind), 0.0, 0.0)
    years = (record.expiry_timestamp - now) / SECONDS_PER_YEAR
    return (pricing.underlying_index[record.underlying], int(record.kind), record.strike, years)


def _build_book(
    pricing: _Pricing, books: list[AccountBook], chains: Mapping[int, int], now: float, underlying_price: np.ndarray
) -> tuple[Instruments, dict[InstrumentKey, int], Book]:
    keys: dict[InstrumentKey, int] = {}
    position_offsets, collateral_offsets = [0], [0]
    instrument, position_chain, qty, entry = [], [], [], []
    asset, collateral_chain, amount = [], [], []
    for book in books:
        for _, record in book.positions:
            key = _instrument_key(pricing, record, now)
            instrument.append(keys.setdefault(key, len(keys)))
            position_chain.append(chains[record.chain_id])
            qty.append(record.qty)
            entry.append(float(underlying_price[pricing.underlying_index[record.underlying]]) if record.at_mark else record.entry)
        position_offsets.append(len(qty))
        for (chain_id, asset_name), units in book.collateral:
            asset.append(pricing.asset_index[asset_name])
            collateral_chain.append(chains[chain_id])
            amount.append(units / 10 ** pricing.decimals[asset_name])
        collateral_offsets.append(len(amount))
    arrays = Book(
        position_offsets=np.array(position_offsets, dtype=np.int64),
        position_instrument=np.array(instrument, dtype=np.int32),
        position_chain=np.array(position_chain, dtype=np.int32),
        position_qty=np.array(qty, dtype=np.float64),
        position_entry=np.array(entry, dtype=np.float64),
        collateral_offsets=np.array(collateral_offsets, dtype=np.int64),
        collateral_asset=np.array(asset, dtype=np.int32),
        collateral_chain=np.array(collateral_chain, dtype=np.int32),
        collateral_amount=np.array(amount, dtype=np.float64),
    )
    return Instruments.from_keys(keys), keys, arrays


@dataclass(frozen=True)
class MarginSnapshot:
    """Every account's margin at one state height; immutable."""

    height: int
    """State height (changes applied) this snapshot reflects."""
    chain_time: float
    """Chain time options were keyed at (latest applied block timestamp of any chain)."""
    books: Mapping[str, AccountBook]
    """Account -> its book (shared with later snapshots until that account changes)."""
    rows: Mapping[str, int]
    """Account -> its row in `result`."""
    result: MarginResult
    """Kernel output; never written after publication."""
    market: Market
    """Prices and vols this snapshot was computed at."""
    instrument_marks: np.ndarray
    """Mark of every instrument of the table."""
    keys: Mapping[InstrumentKey, int]
    """Instrument key -> row of `instrument_marks`."""
    feeds: Mapping[str, FeedPrice]
    """Latest certified price of every feed."""
    stale_feeds: tuple[str, ...]
    """Feeds older than their heartbeat in chain time."""
    pricing: _Pricing = field(repr=False)
    portfolio: Any = field(default=None, repr=False)
    """Risk v2 ("fhs"): the crossclear.risk.live.Strike the portfolio column was computed at (None: v1's grid)."""

    def accounts(self) -> list[str]:
        """Every account with a book, in the order first seen."""
        return list(self.rows)

    def margin(self, account: str) -> AccountMargin:
        """The account's margin at this snapshot."""
        account = normalise_account(account)
        row = self.rows.get(account)
        if row is None:
            raise ClearingError(f"unknown account {account}")
        book = self.books[account]
        marks = {pid: float(self.instrument_marks[self.keys[_instrument_key(self.pricing, r, self.chain_time)]]) for pid, r in book.positions}
        return self._report(account, book, self.result, row, marks, self.market)

    def simulate(
        self,
        account: str,
        add_positions: Iterable[tuple[str, PositionRecord]] = (),
        remove_collateral: Iterable[tuple[int, str, int]] = (),
    ) -> AccountMargin:
        """What-if: the account's margin with extra positions and less collateral (base units)."""
        account = normalise_account(account)
        base = self.books.get(account, AccountBook())
        collateral = dict(base.collateral)
        positions = dict(base.positions)
        for position_id, record in add_positions:
            check_position(self.pricing, record)
            positions[position_id] = record
        for chain_id, asset, units in remove_collateral:
            held = collateral.get((chain_id, asset), 0)
            if units <= 0 or units > held:
                raise ClearingError(f"cannot remove {units} base units of {asset} on chain {chain_id}: account holds {held}")
            collateral[(chain_id, asset)] = held - units
        trial = AccountBook(tuple(sorted((k, v) for k, v in collateral.items() if v)), tuple(sorted(positions.items())))
        chains: dict[int, int] = {}
        for (chain_id, _), _ in trial.collateral:
            chains.setdefault(chain_id, len(chains))
        for _, record in trial.positions:
            chains.setdefault(record.chain_id, len(chains))
        market = replace(self.market, chain_names=tuple(str(c) for c in chains))
        instruments, keys, book = _build_book(self.pricing, [trial], chains, self.chain_time, market.underlying_price)
        result = compute_margin(self.pricing.params, market, instruments, book)
        if self.portfolio is not None:  # risk v2 ("fhs"): the portfolio column at the snapshot's strike
            result = self.portfolio.simulate(result, [trial])
        table_marks = instrument_value(
            instruments.kind,
            market.underlying_price[instruments.underlying],
            market.underlying_vol[instruments.underlying],
            instruments.strike,
            instruments.expiry_years,
        )
        marks = {pid: float(table_marks[keys[_instrument_key(self.pricing, r, self.chain_time)]]) for pid, r in trial.positions}
        return self._report(account, trial, result, 0, marks, market)

    def _report(self, account: str, book: AccountBook, result: MarginResult, row: int, marks: Mapping[str, float], market: Market) -> AccountMargin:
        entries = list(book.collateral)
        decimals = self.pricing.decimals
        totals: dict[str, float] = {}
        for (_, asset_name), units in entries:
            totals[asset_name] = totals.get(asset_name, 0.0) + units / 10 ** decimals[asset_name]
        assets = np.array([self.pricing.asset_index[asset_name] for (_, asset_name), _ in entries], dtype=np.int64)
        rates = haircut(self.pricing.params, market, assets, np.array([totals[asset_name] for (_, asset_name), _ in entries]))
        collateral_lines = []
        for ((chain_id, asset_name), units), asset, rate in zip(entries, assets, rates):
            price = float(market.asset_price[asset])
            amount = units / 10 ** decimals[asset_name]
            collateral_lines.append(CollateralLine(chain_id, asset_name, units, decimals[asset_name], price, float(rate), amount * price * (1 - float(rate))))
        position_lines = tuple(
            PositionLine(pid, replace(record, entry=marks[pid]), marks[pid], 0.0) if record.at_mark
            else PositionLine(pid, record, marks[pid], record.qty * (marks[pid] - record.entry))
            for pid, record in book.positions
        )
        health = float(result.health[row])
        return AccountMargin(
            account=account,
            collateral=tuple(collateral_lines),
            positions=position_lines,
            collateral_value=float(result.collateral_value[row]),
            upnl=float(result.upnl[row]),
            equity=float(result.equity[row]),
            im=_mode_figures(result.im, row),
            mm=_mode_figures(result.mm, row),
            required=_mode_figures(result.required, row),
            health=None if math.isnan(health) else health,
            liquidatable=bool(result.liquidatable[row]),
            height=self.height,
            stale_feeds=self.stale_feeds,
        )


def check_position(pricing: _Pricing, record: PositionRecord) -> None:
    """Refuse a position the methodology cannot margin (unknown underlying, non-finite numbers)."""
    if record.underlying not in pricing.underlying_index:
        raise ClearingError(f"unknown underlying {record.underlying!r}")
    for name in ("qty", "entry", "strike", "expiry_timestamp"):
        if not math.isfinite(getattr(record, name)):
            raise ClearingError(f"position {name} must be finite")
    if record.kind != InstrumentKind.PERP and record.strike <= 0:
        raise ClearingError("an option needs a positive strike")


def _copy_result(result: MarginResult) -> MarginResult:
    return MarginResult(
        collateral_value=result.collateral_value.copy(),
        upnl=result.upnl.copy(),
        equity=result.equity.copy(),
        im=result.im.copy(),
        mm=result.mm.copy(),
        required=result.required.copy(),
        health=result.health.copy(),
        liquidatable=result.liquidatable.copy(),
    )


class ClearingState:
    """The book margin is computed from; changed by the processor only, read through snapshots."""

    def __init__(
        self, params: MarginParams, market: Market, heartbeats: Mapping[str, float], decimals: Mapping[str, int], settlement_asset: str = "USDC"
    ) -> None:
        """`market` carries vols, scan ranges, haircut inputs and starting prices; `heartbeats`
        maps every underlying and asset name to its feed's heartbeat in seconds; `decimals`
        maps every collateral asset to its token's decimals.

        Starting prices come from a file, not a feed: they count as stale (releases and
        seizes held back) until a certified feed answer replaces them."""
        self._pricing = _Pricing(
            params,
            {name: i for i, name in enumerate(market.underlying_names)},
            {name: i for i, name in enumerate(market.asset_names)},
            {name: int(decimals.get(name, 18)) for name in market.asset_names},
        )
        self._market = market
        self._settlement_asset = settlement_asset
        self._feeds: dict[str, FeedPrice] = {}
        for name, price in [*zip(market.underlying_names, market.underlying_price), *zip(market.asset_names, market.asset_price)]:
            self._feeds[name] = FeedPrice(float(price), -math.inf, float(heartbeats.get(name, math.inf)))
        self._books: dict[str, AccountBook] = {}
        self._rows: dict[str, int] = {}
        self._shared = False
        self._chains: dict[int, int] = {}
        self._height = 0
        self._engine: MarginEngine | None = None
        self._book_arrays: Book | None = None
        self._carried_rows: dict[int, np.ndarray] = {}
        """Per underlying, the rows of the engine's book that are carried at the mark."""
        self._keys: dict[InstrumentKey, int] = {}
        self._keyed_at = 0.0
        self._structure_changed = True
        self._moved: set[str] = set()
        self._chain_time = 0.0
        self.recompute_observers: list[Callable[[float], None]] = []
        """Called with the wall time of every kernel recompute (metrics)."""
        self.portfolio_model: Any = None
        """Risk v2 ("fhs"): a crossclear.risk.live.FhsPortfolio that supplies the portfolio column
        (None: v1's grid). It sees every accepted certified price (its daily closes)."""

    @property
    def height(self) -> int:
        """Changes applied so far."""
        return self._height

    @property
    def pricing(self) -> _Pricing:
        return self._pricing

    def price(self, name: str) -> FeedPrice:
        """The latest certified price of a feed."""
        return self._feeds[name]

    def vol(self, underlying: str) -> float:
        """The risk file's implied vol of an underlying."""
        return float(self._market.underlying_vol[self._pricing.underlying_index[underlying]])

    def decimals(self, asset: str) -> int:
        if asset not in self._pricing.decimals:
            raise ClearingError(f"unknown asset {asset!r}")
        return self._pricing.decimals[asset]

    # --- changes (processor only) ----------------------------------------------------------

    def _writable(self) -> None:
        if self._shared:  # the last snapshot holds these dicts: copy before the first change
            self._books = dict(self._books)
            self._rows = dict(self._rows)
            self._shared = False

    def _book(self, account: str) -> AccountBook:
        self._writable()
        if account not in self._rows:
            self._rows[account] = len(self._rows)
            self._books[account] = AccountBook()
            self._structure_changed = True
        return self._books[account]

    def set_collateral(self, account: str, chain_id: int, asset: str, units: int) -> None:
        """The ledger's free balance of one holding (0 removes it)."""
        if asset not in self._pricing.asset_index:
            raise ClearingError(f"unknown asset {asset!r}")
        if units < 0:
            raise ClearingError(f"collateral of {account} cannot be negative: {units}")
        account = normalise_account(account)
        book = self._book(account)
        holdings = dict(book.collateral)
        if holdings.get((chain_id, asset), 0) == units:
            return
        if units:
            holdings[(chain_id, asset)] = units
        else:
            holdings.pop((chain_id, asset), None)
        self._books[account] = replace(book, collateral=tuple(sorted(holdings.items())))
        self._changed()

    def set_settlement(self, account: str, units: int) -> None:
        """The account's settlement balance (variation margin owed to it, or by it when negative),
        counted in margin as a holding of the settlement asset on chain 0."""
        account = normalise_account(account)
        book = self._book(account)
        holdings = dict(book.collateral)
        key = (SETTLEMENT_CHAIN, self._settlement_asset)
        if holdings.get(key, 0) == units:
            return
        if units:
            holdings[key] = units
        else:
            holdings.pop(key, None)
        self._books[account] = replace(book, collateral=tuple(sorted(holdings.items())))
        self._changed()

    def set_position(self, account: str, position_id: str, record: PositionRecord | None) -> None:
        """Open or change a position (None closes it)."""
        if record is not None:
            check_position(self._pricing, record)
        account = normalise_account(account)
        book = self._book(account)
        positions = dict(book.positions)
        if record is None or record.qty == 0:
            positions.pop(position_id, None)
        else:
            positions[position_id] = record
        self._books[account] = replace(book, positions=tuple(sorted(positions.items())))
        self._changed()

    def set_price(self, name: str, price: float, updated_at: float) -> bool:
        """A certified feed answer; False (nothing changed) when not newer than the one held."""
        if name not in self._feeds:
            raise ClearingError(f"no price feed named {name!r}")
        if not math.isfinite(price) or price <= 0:
            raise ClearingError(f"price of {name} must be a positive finite number, got {price!r}")
        feed = self._feeds[name]
        if updated_at <= feed.updated_at:
            return False
        self._feeds[name] = replace(feed, price=price, updated_at=updated_at)
        self._moved.add(name)
        self._height += 1
        if self.portfolio_model is not None:
            self.portfolio_model.on_price(name, price, updated_at)
        return True

    def set_chain_time(self, timestamp: float) -> None:
        """The newest applied block timestamp of any chain (options' time to expiry, staleness)."""
        self._chain_time = max(self._chain_time, timestamp)

    def stale_feeds(self, chain_time: Mapping[str, float] | None = None) -> tuple[str, ...]:
        """Feeds whose latest answer is older than their heartbeat at chain time."""
        return tuple(sorted(
            name for name, feed in self._feeds.items()
            if (chain_time or {}).get(name, self._chain_time) - feed.updated_at > feed.heartbeat_seconds
        ))

    def _changed(self) -> None:
        self._structure_changed = True
        self._height += 1

    # --- publication -----------------------------------------------------------------------

    def _market_with_prices(self) -> Market:
        return replace(
            self._market,
            underlying_price=np.array([self._feeds[n].price for n in self._market.underlying_names]),
            asset_price=np.array([self._feeds[n].price for n in self._market.asset_names]),
        )

    def publish(self, stale_feeds: tuple[str, ...] = ()) -> MarginSnapshot:
        """Recompute what changed and return the new snapshot (run it off the event loop)."""
        start = time.perf_counter()
        model = self.portfolio_model
        if model is not None:  # risk v2 ("fhs"): haircut vols from its forecaster, rebuilt when they change
            vols = model.asset_daily_vols()
            if vols is not None and not np.array_equal(vols, self._market.asset_daily_vol):
                self._market = replace(self._market, asset_daily_vol=vols)
                self._structure_changed = True
        if self._structure_changed or self._engine is None or self._chain_time - self._keyed_at > REKEY_EXPIRIES_SECONDS:
            for book in self._books.values():
                for (chain_id, _), _ in book.collateral:
                    self._chains.setdefault(chain_id, len(self._chains))
                for _, record in book.positions:
                    self._chains.setdefault(record.chain_id, len(self._chains))
            market = replace(self._market_with_prices(), chain_names=tuple(str(c) for c in self._chains))
            instruments, keys, book_arrays = _build_book(
                self._pricing, list(self._books.values()), self._chains, self._chain_time, market.underlying_price
            )
            self._market = market
            self._engine = MarginEngine(self._pricing.params, market, instruments, book_arrays)
            carried = np.array([record.at_mark for book in self._books.values() for _, record in book.positions], dtype=bool)
            position_underlying = instruments.underlying[book_arrays.position_instrument]
            self._book_arrays = book_arrays
            self._carried_rows = {u: np.flatnonzero(carried & (position_underlying == u)) for u in range(len(market.underlying_names))}
            self._keys = keys
            self._keyed_at = self._chain_time
            self._structure_changed = False
        elif self._moved:
            engine, carried_book = self._engine, self._book_arrays
            assert carried_book is not None  # built with the engine
            engine.result = _copy_result(engine.result)  # the published snapshot keeps the old arrays
            for name in sorted(self._moved):
                price = self._feeds[name].price
                if name in self._pricing.underlying_index:
                    underlying = self._pricing.underlying_index[name]
                    # Positions carried at the mark follow it in place: no rebuild per tick.
                    carried_book.position_entry[self._carried_rows[underlying]] = price
                    engine.update_underlying(underlying, price=price)
                else:
                    engine.update_asset(self._pricing.asset_index[name], price=price)
            self._market = replace(engine.market, chain_names=self._market.chain_names)
        self._moved.clear()
        seconds = time.perf_counter() - start
        for observer in self.recompute_observers:
            observer(seconds)
        assert self._engine is not None
        self._shared = True
        result, strike = self._engine.result, None
        if model is not None:  # risk v2 ("fhs"): the portfolio column from crossclear.risk.live
            result, strike = model.apply(result, self._books, self._rows)
        return MarginSnapshot(
            portfolio=strike,
            height=self._height,
            chain_time=self._keyed_at,
            books=self._books,
            rows=self._rows,
            result=result,
            market=self._engine.market,
            instrument_marks=self._engine.instrument_marks,
            keys=dict(self._keys),
            feeds=dict(self._feeds),
            stale_feeds=stale_feeds,
            pricing=self._pricing,
        )
