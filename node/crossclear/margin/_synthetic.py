"""Synthetic books for the benchmark and the randomized agreement tests.

A listed-derivatives venue has a finite instrument table (a perpetual and a grid of option
strikes and expiries per underlying); accounts hold positions in those instruments. The
generator fills preallocated arrays chunk by chunk so building a million-account book does
not itself dominate peak memory.
"""

from __future__ import annotations

import numpy as np

from crossclear.margin._model import Book, InstrumentKind, Instruments, Market

UNDERLYINGS = (("BTC", 60_000.0, 0.55, 0.20), ("ETH", 3_000.0, 0.70, 0.25), ("SOL", 150.0, 0.90, 0.35))
ASSETS = (("USDC", 1.0, 0.0, 0.0005, 5e9), ("WETH", 3_000.0, 0.02, 0.035, 2e9), ("WBTC", 60_000.0, 0.02, 0.03, 3e9))
CHAINS = ("chain-a", "chain-b", "chain-c")
STRIKE_MONEYNESS = (0.8, 0.9, 1.0, 1.1, 1.2)
EXPIRIES_YEARS = (0.02, 0.08, 0.25)
_CHUNK_ROWS = 1 << 20


def synthetic_market() -> Market:
    """Three underlyings, three collateral assets, three chains."""
    return Market(
        underlying_names=tuple(name for name, *_ in UNDERLYINGS),
        underlying_price=np.array([price for _, price, _, _ in UNDERLYINGS]),
        underlying_vol=np.array([vol for _, _, vol, _ in UNDERLYINGS]),
        underlying_scan_range=np.array([scan for *_, scan in UNDERLYINGS]),
        asset_names=tuple(name for name, *_ in ASSETS),
        asset_price=np.array([price for _, price, _, _, _ in ASSETS]),
        asset_base_haircut=np.array([base for _, _, base, _, _ in ASSETS]),
        asset_depth=np.array([depth for *_, depth in ASSETS]),
        asset_daily_vol=np.array([vol for _, _, _, vol, _ in ASSETS]),
        chain_names=CHAINS,
    )


def synthetic_instruments(market: Market) -> Instruments:
    """Per underlying: one perpetual, then calls and puts over a strike x expiry grid."""
    underlying, kind, strike, expiry = [], [], [], []
    for index, spot in enumerate(market.underlying_price):
        underlying.append(index)
        kind.append(InstrumentKind.PERP)
        strike.append(0.0)
        expiry.append(0.0)
        for years in EXPIRIES_YEARS:
            for moneyness in STRIKE_MONEYNESS:
                for option_kind in (InstrumentKind.CALL, InstrumentKind.PUT):
                    underlying.append(index)
                    kind.append(option_kind)
                    strike.append(float(spot) * moneyness)
                    expiry.append(years)
    return Instruments(
        underlying=np.array(underlying, dtype=np.int32),
        kind=np.array(kind, dtype=np.int32),
        strike=np.array(strike),
        expiry_years=np.array(expiry),
    )


def synthetic_book(
    market: Market,
    instruments: Instruments,
    accounts: int,
    positions_per_account: int,
    collateral_per_account: int = 2,
    seed: int = 7,
) -> Book:
    """A book where every account holds the same number of positions, half perps, half options."""
    rng = np.random.default_rng(seed)
    position_rows = accounts * positions_per_account
    collateral_rows = accounts * collateral_per_account
    underlying_count = len(market.underlying_names)
    # Per underlying: its perpetual, and its options (the same number for every underlying).
    perps = np.array([np.flatnonzero((instruments.underlying == u) & (instruments.kind == InstrumentKind.PERP))[0] for u in range(underlying_count)], dtype=np.int32)
    options = np.stack([np.flatnonzero((instruments.underlying == u) & (instruments.kind != InstrumentKind.PERP)) for u in range(underlying_count)]).astype(np.int32)
    # Most accounts specialise: 60% trade only their home underlying, the rest trade all.
    home_underlying = rng.integers(0, underlying_count, accounts)
    specialised = rng.random(accounts) < 0.6
    spot_of_instrument = market.underlying_price[instruments.underlying]
    book = Book(
        position_offsets=np.arange(0, position_rows + 1, positions_per_account, dtype=np.int64),
        position_instrument=np.empty(position_rows, dtype=np.int32),
        position_chain=np.empty(position_rows, dtype=np.int32),
        position_qty=np.empty(position_rows),
        position_entry=np.empty(position_rows),
        collateral_offsets=np.arange(0, collateral_rows + 1, collateral_per_account, dtype=np.int64),
        collateral_asset=np.empty(collateral_rows, dtype=np.int32),
        collateral_chain=np.empty(collateral_rows, dtype=np.int32),
        collateral_amount=np.empty(collateral_rows),
    )
    for start in range(0, position_rows, _CHUNK_ROWS):
        stop = min(start + _CHUNK_ROWS, position_rows)
        rows = stop - start
        owner = np.arange(start, stop) // positions_per_account
        is_perp = (np.arange(start, stop) % positions_per_account) < (positions_per_account + 1) // 2
        underlying = np.where(specialised[owner], home_underlying[owner], rng.integers(0, underlying_count, rows))
        option = options[underlying, rng.integers(0, options.shape[1], rows)]
        instrument = np.where(is_perp, perps[underlying], option)
        book.position_instrument[start:stop] = instrument
        book.position_chain[start:stop] = rng.integers(0, len(market.chain_names), rows)
        # Quantities in units of the underlying, sized to roughly $5k-$50k of notional.
        notional = rng.uniform(5_000.0, 50_000.0, rows)
        book.position_qty[start:stop] = rng.choice((-1.0, 1.0), rows) * notional / spot_of_instrument[instrument]
        # Entries near the current value: perps within 5% of spot, options at a premium level.
        reference = np.where(is_perp, spot_of_instrument[instrument], 0.05 * spot_of_instrument[instrument])
        book.position_entry[start:stop] = reference * rng.uniform(0.8, 1.2, rows)
    for start in range(0, collateral_rows, _CHUNK_ROWS):
        stop = min(start + _CHUNK_ROWS, collateral_rows)
        rows = stop - start
        asset = rng.integers(0, len(market.asset_names), rows).astype(np.int32)
        book.collateral_asset[start:stop] = asset
        book.collateral_chain[start:stop] = rng.integers(0, len(market.chain_names), rows)
        book.collateral_amount[start:stop] = rng.uniform(2_000.0, 40_000.0, rows) / market.asset_price[asset]
    return book
