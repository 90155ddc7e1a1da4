"""The clearing state of one node: accounts, credited collateral, positions, prices, margin.

Everything here changes only through explicit calls (a credited claim, a certified position
change, a certified price), each of which bumps `height`, so a margin figure can always say
which state it was computed at. Margin lives in numpy arrays and is computed by the C kernel:
structural changes (a new account, position or collateral entry) rebuild the CSR arrays and
recompute only the accounts that changed; a price tick recomputes only the holders of what
moved.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace

import numpy as np

from crossclear.margin import Book, InstrumentKey, InstrumentKind, Instruments, MarginEngine, MarginParams, MarginResult, Market, Mode
from crossclear.margin import compute_margin
from crossclear.margin.methodology import haircut, instrument_value

SECONDS_PER_YEAR = 365.0 * 24 * 3600

#: Options are keyed by time to expiry; the instrument table is rebuilt against the clock at
#: least this often (on the next price change after it elapses).
REPRICE_EXPIRIES_SECONDS = 60.0

Clock = Callable[[], float]
ModeFigures = tuple[float, float, float, float]


class ClearingError(ValueError):
    """A request the clearing state refuses (unknown account, asset or underlying, bad amount)."""


@dataclass(frozen=True)
class PositionRecord:
    """One open position, as certified from a Market contract."""

    chain_id: int
    """Chain the position lives on."""
    underlying: str
    """Underlying name (from the node's risk configuration)."""
    kind: InstrumentKind
    """Perpetual, call or put."""
    qty: float
    """Signed size in units of the underlying."""
    entry: float
    """Entry price per unit."""
    strike: float = 0.0
    """Strike of an option."""
    expiry_timestamp: float = 0.0
    """Unix time an option expires at."""


@dataclass(frozen=True)
class FeedPrice:
    """The latest certified answer of one price feed."""

    price: float
    """Price in quote units (the feed's answer scaled by its decimals)."""
    updated_at: float
    """Unix time the feed says it was updated."""
    heartbeat_seconds: float
    """Older than this, the price is stale: margin is not fresh and releases stop."""


@dataclass(frozen=True)
class CollateralLine:
    """One collateral holding of an account, valued."""

    chain_id: int
    asset: str
    amount: float
    price: float
    haircut: float
    value: float


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


@dataclass
class _Account:
    collateral: dict[tuple[int, str], float] = field(default_factory=dict)
    positions: dict[str, PositionRecord] = field(default_factory=dict)


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


class ClearingState:
    """Accounts and their margin, safe to read and update from several threads."""

    def __init__(
        self,
        params: MarginParams,
        market: Market,
        heartbeats: Mapping[str, float],
        clock: Clock | None = None,
        starting_prices_fresh: bool = False,
    ) -> None:
        """`market` carries vols, scan ranges, haircut inputs and starting prices; `heartbeats`
        maps every underlying and asset name to its feed's heartbeat in seconds.

        Starting prices come from a file, not a feed: they count as stale (margin not fresh,
        releases and liquidations held back) until a certified feed answer replaces them,
        unless `starting_prices_fresh` says the caller vouches for them (tests, simulations)."""
        self._params = params
        self._market = market
        self._clock = clock or time.time
        stamped = self._clock() if starting_prices_fresh else -math.inf
        self._feeds: dict[str, FeedPrice] = {}
        for name, price in zip(market.underlying_names, market.underlying_price):
            self._feeds[name] = FeedPrice(float(price), stamped, float(heartbeats.get(name, math.inf)))
        for name, price in zip(market.asset_names, market.asset_price):
            self._feeds[name] = FeedPrice(float(price), stamped, float(heartbeats.get(name, math.inf)))
        self._underlying_index = {name: i for i, name in enumerate(market.underlying_names)}
        self._asset_index = {name: i for i, name in enumerate(market.asset_names)}
        self._accounts: dict[str, _Account] = {}
        self._rows: dict[str, int] = {}
        self._chains: dict[int, int] = {}
        self._lock = threading.RLock()
        self._height = 0
        self._engine: MarginEngine | None = None
        self._keys: dict[InstrumentKey, int] = {}
        self._keyed_at = 0.0
        self._dirty = True
        self._last_recompute_seconds = 0.0
        self._account_height: dict[str, int] = {}
        self._listeners: list[Callable[[int], None]] = []
        self.recompute_observers: list[Callable[[float], None]] = []
        """Called with the wall time of every kernel recompute (metrics)."""

    # ------------------------------------------------------------------ updates

    @property
    def height(self) -> int:
        """Number of changes applied so far; every margin figure names the height it reflects."""
        return self._height

    @property
    def needs_recompute(self) -> bool:
        """True when the next read rebuilds the margin arrays (a structural change happened)."""
        return self._dirty or self._engine is None

    @property
    def last_recompute_seconds(self) -> float:
        """Wall time of the latest kernel recompute (for metrics)."""
        return self._last_recompute_seconds

    def accounts(self) -> list[str]:
        """Every account the node knows, in the order it first saw them."""
        with self._lock:
            return list(self._rows)

    def credit_collateral(self, account: str, chain_id: int, asset: str, amount: float) -> int:
        """Add collateral (an accepted claim); returns the new height."""
        account = normalise_account(account)
        if asset not in self._asset_index:
            raise ClearingError(f"unknown asset {asset!r}")
        if not math.isfinite(amount) or amount <= 0:
            raise ClearingError(f"collateral amount must be a positive finite number, got {amount!r}")
        with self._lock:
            holding = self._account(account).collateral
            holding[(chain_id, asset)] = holding.get((chain_id, asset), 0.0) + amount
            return self._changed(account)

    def debit_collateral(self, account: str, chain_id: int, asset: str, amount: float) -> int:
        """Remove collateral (a release or seize executed on-chain); returns the new height."""
        account = normalise_account(account)
        with self._lock:
            if account not in self._accounts:
                raise ClearingError(f"cannot debit {amount!r} {asset} on chain {chain_id}: account holds 0.0")
            holding = self._accounts[account].collateral
            held = holding.get((chain_id, asset), 0.0)
            if not math.isfinite(amount) or amount <= 0 or amount > held * (1 + 1e-12):
                raise ClearingError(f"cannot debit {amount!r} {asset} on chain {chain_id}: account holds {held!r}")
            remaining = held - amount
            if remaining <= held * 1e-12:
                del holding[(chain_id, asset)]
            else:
                holding[(chain_id, asset)] = remaining
            return self._changed(account)

    def set_position(self, account: str, position_id: str, record: PositionRecord | None) -> int:
        """Open or change a position (None closes it); returns the new height."""
        account = normalise_account(account)
        if record is not None:
            self._check_position(record)
        with self._lock:
            positions = self._account(account).positions
            if record is None or record.qty == 0:
                positions.pop(position_id, None)
            else:
                positions[position_id] = record
            return self._changed(account)

    def set_price(self, name: str, price: float, updated_at: float) -> int:
        """A certified feed answer for an underlying or asset; returns the new height."""
        if name not in self._feeds:
            raise ClearingError(f"no price feed named {name!r}")
        if not math.isfinite(price) or price <= 0:
            raise ClearingError(f"price of {name} must be a positive finite number, got {price!r}")
        with self._lock:
            feed = self._feeds[name]
            if updated_at < feed.updated_at:
                return self._height  # an older round arriving late changes nothing
            self._feeds[name] = replace(feed, price=price, updated_at=updated_at)
            self._market = self._market_with_prices()
            self._height += 1
            rows = list(self._rows)
            if self._clock() - self._keyed_at > REPRICE_EXPIRIES_SECONDS:
                self._dirty = True  # options' time to expiry is re-read at least this often
            if self._engine is not None and not self._dirty:
                start = time.perf_counter()
                if name in self._underlying_index:
                    touched = self._engine.update_underlying(self._underlying_index[name], price=price)
                else:
                    touched = self._engine.update_asset(self._asset_index[name], price=price)
                self._observe_recompute(time.perf_counter() - start)
                affected = [rows[int(k)] for k in touched]
            else:
                # The arrays are rebuilt on the next read anyway; every account may move.
                affected = rows
            for account in affected:
                self._account_height[account] = self._height
            self._notify()
            return self._height

    def stale_feeds(self) -> tuple[str, ...]:
        """Feeds whose latest answer is older than their heartbeat, now."""
        now = self._clock()
        with self._lock:
            return tuple(sorted(name for name, feed in self._feeds.items() if now - feed.updated_at > feed.heartbeat_seconds))

    def feed_prices(self) -> dict[str, FeedPrice]:
        """The latest answer of every feed."""
        with self._lock:
            return dict(self._feeds)

    # ------------------------------------------------------------------ reading

    def margin(self, account: str) -> AccountMargin:
        """The account's margin at the current height (recomputing first if needed)."""
        account = normalise_account(account)
        with self._lock:
            if account not in self._rows:
                raise ClearingError(f"unknown account {account}")
            self._ensure_computed()
            assert self._engine is not None
            state = self._accounts[account]
            table_marks = self._engine.instrument_marks
            marks = {
                position_id: float(table_marks[self._keys[self._instrument_key(record, self._keyed_at)]])
                for position_id, record in state.positions.items()
            }
            return self._report(account, state, self._engine.result, self._rows[account], marks)

    def simulate(
        self,
        account: str,
        add_positions: Iterable[tuple[str, PositionRecord]] = (),
        remove_collateral: Iterable[tuple[int, str, float]] = (),
    ) -> AccountMargin:
        """What-if: the account's margin with extra positions and less collateral; nothing stored."""
        account = normalise_account(account)
        with self._lock:
            base = self._accounts.get(account, _Account())
            trial = _Account(collateral=dict(base.collateral), positions=dict(base.positions))
        for position_id, record in add_positions:
            self._check_position(record)
            trial.positions[position_id] = record
        for chain_id, asset, amount in remove_collateral:
            held = trial.collateral.get((chain_id, asset), 0.0)
            if not math.isfinite(amount) or amount <= 0 or amount > held * (1 + 1e-12):
                raise ClearingError(f"cannot remove {amount!r} {asset} on chain {chain_id}: account holds {held!r}")
            trial.collateral[(chain_id, asset)] = held - amount
        with self._lock:
            market = self._market
            chains = dict(self._chains)
            for chain_id, _ in trial.collateral:
                chains.setdefault(chain_id, len(chains))
            for record in trial.positions.values():
                chains.setdefault(record.chain_id, len(chains))
            market = replace(market, chain_names=tuple(str(c) for c in chains))
            now = self._clock()
            instruments, keys = self._instrument_table([trial], {}, now)
            book = self._book([trial], keys, chains, now)
            result = compute_margin(self._params, market, instruments, book)
            table_marks = instrument_value(
                instruments.kind,
                market.underlying_price[instruments.underlying],
                market.underlying_vol[instruments.underlying],
                instruments.strike,
                instruments.expiry_years,
            )
            marks = {pid: float(table_marks[keys[self._instrument_key(r, now)]]) for pid, r in trial.positions.items()}
            return self._report(account, trial, result, 0, marks, market=market)

    # ------------------------------------------------------------------ internals

    def _account(self, account: str) -> _Account:
        if account not in self._accounts:
            self._accounts[account] = _Account()
            self._rows[account] = len(self._rows)
        return self._accounts[account]

    def _check_position(self, record: PositionRecord) -> None:
        if record.underlying not in self._underlying_index:
            raise ClearingError(f"unknown underlying {record.underlying!r}")
        for name in ("qty", "entry", "strike", "expiry_timestamp"):
            if not math.isfinite(getattr(record, name)):
                raise ClearingError(f"position {name} must be finite")
        if record.kind != InstrumentKind.PERP and record.strike <= 0:
            raise ClearingError("an option needs a positive strike")

    def _changed(self, account: str) -> int:
        self._dirty = True
        self._height += 1
        self._account_height[account] = self._height
        self._notify()
        return self._height

    def _notify(self) -> None:
        for listener in self._listeners:
            listener(self._height)

    def add_listener(self, listener: Callable[[int], None]) -> None:
        """Call `listener(height)` after every change (from the thread that made it)."""
        with self._lock:
            self._listeners.append(listener)

    def accounts_changed_since(self, height: int) -> list[str]:
        """Accounts whose margin may differ from what it was at `height`."""
        with self._lock:
            return [account for account, changed in self._account_height.items() if changed > height]

    def _market_with_prices(self) -> Market:
        return replace(
            self._market,
            underlying_price=np.array([self._feeds[n].price for n in self._market.underlying_names]),
            asset_price=np.array([self._feeds[n].price for n in self._market.asset_names]),
        )

    def _instrument_table(
        self, accounts: Iterable[_Account], keys: dict[InstrumentKey, int], now: float
    ) -> tuple[Instruments, dict[InstrumentKey, int]]:
        for account in accounts:
            for record in account.positions.values():
                keys.setdefault(self._instrument_key(record, now), len(keys))
        return Instruments.from_keys(keys), keys

    def _instrument_key(self, record: PositionRecord, now: float) -> InstrumentKey:
        if record.kind == InstrumentKind.PERP:
            return (self._underlying_index[record.underlying], int(record.kind), 0.0, 0.0)
        years = (record.expiry_timestamp - now) / SECONDS_PER_YEAR
        return (self._underlying_index[record.underlying], int(record.kind), record.strike, years)

    def _book(
        self, accounts: list[_Account], keys: dict[InstrumentKey, int], chains: dict[int, int], now: float
    ) -> Book:
        # `now` must be the instant the instrument table was keyed at: expiries are keyed
        # by time to expiry.
        position_offsets, collateral_offsets = [0], [0]
        instrument, position_chain, qty, entry = [], [], [], []
        asset, collateral_chain, amount = [], [], []
        for account in accounts:
            for record in account.positions.values():
                instrument.append(keys[self._instrument_key(record, now)])
                position_chain.append(chains[record.chain_id])
                qty.append(record.qty)
                entry.append(record.entry)
            position_offsets.append(len(qty))
            for (chain_id, asset_name), held in account.collateral.items():
                asset.append(self._asset_index[asset_name])
                collateral_chain.append(chains[chain_id])
                amount.append(held)
            collateral_offsets.append(len(amount))
        return Book(
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

    def _ensure_computed(self) -> None:
        if not self._dirty and self._engine is not None:
            return
        start = time.perf_counter()
        accounts = [self._accounts[a] for a in self._rows]
        for account in accounts:
            for chain_id, _ in account.collateral:
                self._chains.setdefault(chain_id, len(self._chains))
            for record in account.positions.values():
                self._chains.setdefault(record.chain_id, len(self._chains))
        # Option expiries are priced as time-to-expiry, so the instrument table is rebuilt
        # against the current clock whenever the book is.
        now = self._clock()
        instruments, keys = self._instrument_table(accounts, {}, now)
        book = self._book(accounts, keys, self._chains, now)
        market = replace(self._market_with_prices(), chain_names=tuple(str(c) for c in self._chains))
        self._market = market
        self._engine = MarginEngine(self._params, market, instruments, book)
        self._keys = keys
        self._keyed_at = now
        self._dirty = False
        self._observe_recompute(time.perf_counter() - start)

    def _observe_recompute(self, seconds: float) -> None:
        self._last_recompute_seconds = seconds
        for observer in self.recompute_observers:
            observer(seconds)

    def _report(
        self, account: str, state: _Account, result: MarginResult, row: int, marks: Mapping[str, float], market: Market | None = None
    ) -> AccountMargin:
        market = market or self._market
        entries = sorted(state.collateral.items())
        totals: dict[str, float] = {}
        for (_, asset_name), held in entries:
            totals[asset_name] = totals.get(asset_name, 0.0) + held
        assets = np.array([self._asset_index[asset_name] for (_, asset_name), _ in entries], dtype=np.int64)
        rates = haircut(self._params, market, assets, np.array([totals[asset_name] for (_, asset_name), _ in entries]))
        collateral_lines = []
        for ((chain_id, asset_name), held), asset, rate in zip(entries, assets, rates):
            price = float(market.asset_price[asset])
            collateral_lines.append(CollateralLine(chain_id, asset_name, held, price, float(rate), held * price * (1 - float(rate))))
        position_lines = []
        for position_id, record in sorted(state.positions.items()):
            mark = marks[position_id]
            position_lines.append(PositionLine(position_id, record, mark, record.qty * (mark - record.entry)))
        health = float(result.health[row])
        return AccountMargin(
            account=account,
            collateral=tuple(collateral_lines),
            positions=tuple(position_lines),
            collateral_value=float(result.collateral_value[row]),
            upnl=float(result.upnl[row]),
            equity=float(result.equity[row]),
            im=_mode_figures(result.im, row),
            mm=_mode_figures(result.mm, row),
            required=_mode_figures(result.required, row),
            health=None if math.isnan(health) else health,
            liquidatable=bool(result.liquidatable[row]),
            height=self._height,
            stale_feeds=self.stale_feeds(),
        )



def _mode_figures(matrix: np.ndarray, row: int) -> ModeFigures:
    return (
        float(matrix[row, Mode.ISOLATED]),
        float(matrix[row, Mode.CROSS_SILOED]),
        float(matrix[row, Mode.CROSS]),
        float(matrix[row, Mode.PORTFOLIO]),
    )
