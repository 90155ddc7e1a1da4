"""The C kernel and the numpy methodology agree on random books, to 1e-9 relative.

"Relative" is measured against the account's scale (its gross notional plus gross
collateral value): figures such as required margin are differences of large terms and can
legitimately be near zero, where a pure relative error is meaningless.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from crossclear.margin import Book, Instruments, MarginParams, Market, compute_margin, methodology
from crossclear.margin._model import MarginResult
from crossclear.margin._synthetic import synthetic_book, synthetic_instruments, synthetic_market


def random_market(rng: np.random.Generator, underlyings: int, assets: int, chains: int) -> Market:
    return Market(
        underlying_names=tuple(f"U{k}" for k in range(underlyings)),
        underlying_price=rng.uniform(0.5, 100_000.0, underlyings),
        # Some zero vols (options fall back to intrinsic value), some scan ranges past 50%.
        underlying_vol=np.where(rng.random(underlyings) < 0.2, 0.0, rng.uniform(0.05, 2.0, underlyings)),
        underlying_scan_range=rng.uniform(0.0, 0.7, underlyings),
        asset_names=tuple(f"A{k}" for k in range(assets)),
        asset_price=rng.uniform(0.0, 50_000.0, assets),
        asset_base_haircut=rng.uniform(0.0, 0.3, assets),
        asset_depth=10 ** rng.uniform(2, 10, assets),
        asset_daily_vol=rng.uniform(0.0, 0.1, assets),
        chain_names=tuple(f"C{k}" for k in range(chains)),
    )


def random_instruments(rng: np.random.Generator, market: Market, count: int) -> Instruments:
    underlying = rng.integers(0, len(market.underlying_names), count).astype(np.int32)
    kind = rng.integers(0, 3, count).astype(np.int32)
    spot = market.underlying_price[underlying]
    return Instruments(
        underlying=underlying,
        kind=kind,
        strike=np.where(kind == 0, 0.0, spot * rng.uniform(0.3, 2.0, count)),
        expiry_years=np.where(kind == 0, 0.0, rng.uniform(-0.1, 2.0, count)),
    )


def random_book(rng: np.random.Generator, market: Market, instruments: Instruments, accounts: int) -> Book:
    positions = rng.integers(0, 13, accounts)
    collateral = rng.integers(0, 5, accounts)
    p, c = int(positions.sum()), int(collateral.sum())
    instrument = rng.integers(0, instruments.count, p).astype(np.int32)
    spot = market.underlying_price[instruments.underlying[instrument]]
    return Book(
        position_offsets=np.concatenate([[0], np.cumsum(positions)]).astype(np.int64),
        position_instrument=instrument,
        position_chain=rng.integers(0, len(market.chain_names), p).astype(np.int32),
        position_qty=np.where(rng.random(p) < 0.05, 0.0, rng.normal(0.0, 20_000.0, p) / spot),
        position_entry=spot * rng.uniform(0.0, 1.3, p),
        collateral_offsets=np.concatenate([[0], np.cumsum(collateral)]).astype(np.int64),
        collateral_asset=rng.integers(0, len(market.asset_names), c).astype(np.int32),
        collateral_chain=rng.integers(0, len(market.chain_names), c).astype(np.int32),
        collateral_amount=rng.uniform(0.0, 1e6, c),
    )


def random_params(rng: np.random.Generator) -> MarginParams:
    shocks = tuple(float(x) for x in rng.uniform(-0.9, 1.0, int(rng.integers(1, 5))))
    return MarginParams(
        price_steps=int(rng.integers(2, 14)),
        vol_shocks=shocks,
        extreme_move=float(rng.uniform(0.0, 3.0)),
        extreme_weight=float(rng.uniform(0.0, 1.0)),
        pm_floor_rate=float(rng.uniform(0.0, 0.05)),
        im_multiplier=float(rng.uniform(1.0, 2.0)),
        haircut_conc_k=float(rng.uniform(0.0, 1.0)),
        haircut_max=float(rng.uniform(0.0, 1.0)),
    )


def account_scale(market: Market, book: Book) -> np.ndarray:
    accounts = book.account_count
    owner = np.repeat(np.arange(accounts), np.diff(book.position_offsets))
    collateral_owner = np.repeat(np.arange(accounts), np.diff(book.collateral_offsets))
    spot = market.underlying_price  # notional uses each position's own underlying below
    del spot
    return 1.0 + np.bincount(owner, weights=np.abs(book.position_qty) * 1e5, minlength=accounts) + np.bincount(
        collateral_owner, weights=book.collateral_amount * market.asset_price[book.collateral_asset], minlength=accounts
    )


def assert_agree(kernel: MarginResult, reference: MarginResult, scale: np.ndarray) -> None:
    for name in ("collateral_value", "upnl", "equity", "im", "mm", "required"):
        k, r = getattr(kernel, name), getattr(reference, name)
        tolerance = 1e-9 * (scale if k.ndim == 1 else scale[:, None])
        assert np.all(np.abs(k - r) <= np.maximum(tolerance, 1e-9 * np.abs(r))), name
    assert np.array_equal(np.isnan(kernel.health), np.isnan(reference.health))
    finite = ~np.isnan(reference.health)
    assert np.allclose(kernel.health[finite], reference.health[finite], rtol=1e-9, atol=1e-9)
    # Liquidatable can only differ where equity sits on the maintenance line itself.
    differ = kernel.liquidatable != reference.liquidatable
    line = reference.mm[:, 3]
    assert np.all(np.abs(reference.equity[differ] - line[differ]) <= 1e-9 * scale[differ])


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), accounts=st.integers(1, 60))
def test_kernel_matches_numpy_on_random_books(seed: int, accounts: int) -> None:
    rng = np.random.default_rng(seed)
    market = random_market(rng, int(rng.integers(1, 5)), int(rng.integers(1, 4)), int(rng.integers(1, 4)))
    instruments = random_instruments(rng, market, int(rng.integers(1, 30)))
    book = random_book(rng, market, instruments, accounts)
    params = random_params(rng)
    kernel = compute_margin(params, market, instruments, book)
    reference = methodology.compute_margin(params, market, instruments, book)
    assert_agree(kernel, reference, account_scale(market, book))


def test_kernel_matches_numpy_on_a_synthetic_venue_book() -> None:
    market = synthetic_market()
    instruments = synthetic_instruments(market)
    book = synthetic_book(market, instruments, accounts=20_000, positions_per_account=8)
    params = MarginParams()
    kernel = compute_margin(params, market, instruments, book)
    reference = methodology.compute_margin(params, market, instruments, book)
    assert_agree(kernel, reference, account_scale(market, book))
