"""Incremental recompute: a price change recomputes exactly the holders, and matches a full run."""

from __future__ import annotations

import numpy as np
import pytest

from crossclear.margin import KernelInputError, MarginEngine, MarginParams, compute_margin
from crossclear.margin._model import Book, MarginResult
from crossclear.margin._kernel_api import KernelCall
from crossclear.margin._synthetic import synthetic_book, synthetic_instruments, synthetic_market
from dataclasses import replace


@pytest.fixture(scope="module")
def venue() -> tuple:
    market = synthetic_market()
    instruments = synthetic_instruments(market)
    book = synthetic_book(market, instruments, accounts=5_000, positions_per_account=4)
    return market, instruments, book


def test_underlying_move_recomputes_only_its_holders(venue: tuple) -> None:
    market, instruments, book = venue
    engine = MarginEngine(MarginParams(), market, instruments, book)
    before = {name: getattr(engine.result, name).copy() for name in ("equity", "required", "mm")}
    touched = engine.update_underlying(2, price=float(market.underlying_price[2]) * 0.8, vol=1.3)

    owner = np.repeat(np.arange(book.account_count), np.diff(book.position_offsets))
    expected_holders = np.unique(owner[instruments.underlying[book.position_instrument] == 2])
    assert np.array_equal(touched, expected_holders)
    assert 0 < touched.size < book.account_count
    others = np.setdiff1d(np.arange(book.account_count), touched)
    for name, old in before.items():
        assert np.array_equal(getattr(engine.result, name)[others], old[others]), name
    assert not np.array_equal(engine.result.required[touched], before["required"][touched])

    full = compute_margin(MarginParams(), engine.market, instruments, book)
    assert np.array_equal(engine.result.required, full.required)
    assert np.array_equal(engine.result.equity, full.equity)


def test_asset_move_recomputes_only_collateral_holders(venue: tuple) -> None:
    market, instruments, book = venue
    engine = MarginEngine(MarginParams(), market, instruments, book)
    touched = engine.update_asset(1, price=float(market.asset_price[1]) * 0.5)
    owner = np.repeat(np.arange(book.account_count), np.diff(book.collateral_offsets))
    assert np.array_equal(touched, np.unique(owner[book.collateral_asset == 1]))
    full = compute_margin(MarginParams(), engine.market, instruments, book)
    assert np.array_equal(engine.result.collateral_value, full.collateral_value)
    assert engine.market.asset_price[1] == pytest.approx(market.asset_price[1] * 0.5)


def test_bad_rows_are_refused_and_outputs_untouched(venue: tuple) -> None:
    market, instruments, book = venue
    call = KernelCall(MarginParams(), market, instruments)
    result = MarginResult.empty(book.account_count)
    call.compute(book, result)
    snapshot = result.required.copy()
    bad_instrument = book.position_instrument.copy()
    bad_instrument[-1] = instruments.count  # one past the table, in the last account
    with pytest.raises(KernelInputError, match=f"position {bad_instrument.size - 1} refers to an instrument"):
        call.compute(replace(book, position_instrument=bad_instrument), result)
    bad_chain = book.position_chain.copy()
    bad_chain[3] = -1
    with pytest.raises(KernelInputError, match="position 3 refers to a chain"):
        call.compute(replace(book, position_chain=bad_chain), result)
    bad_asset = book.collateral_asset.copy()
    bad_asset[0] = 99
    with pytest.raises(KernelInputError, match="collateral entry 0 refers to an asset"):
        call.compute(replace(book, collateral_asset=bad_asset), result)
    offsets = book.position_offsets.copy()
    offsets[10] = offsets[-1] + 5
    with pytest.raises(KernelInputError, match="past the end"):
        call.compute(replace(book, position_offsets=offsets), result)
    with pytest.raises(KernelInputError, match="subset entry 1 is not an account"):
        call.compute(book, result, np.array([0, book.account_count], dtype=np.int64))
    with pytest.raises(TypeError, match="C-contiguous int32"):
        call.compute(replace(book, position_chain=book.position_chain.astype(np.int64)), result)
    assert np.array_equal(result.required, snapshot)


def test_unsorted_and_repeated_subsets_give_the_same_rows(venue: tuple) -> None:
    market, instruments, book = venue
    call = KernelCall(MarginParams(), market, instruments)
    full = MarginResult.empty(book.account_count)
    call.compute(book, full)
    partial = MarginResult.empty(book.account_count)
    subset = np.array([17, 3, 17, 4000, 3, 999], dtype=np.int64)
    call.compute(book, partial, subset)
    for account in set(subset.tolist()):
        assert np.array_equal(partial.required[account], full.required[account])
        assert partial.equity[account] == full.equity[account]
    assert np.all(partial.equity[np.setdiff1d(np.arange(book.account_count), subset)] == 0.0)


def test_empty_book() -> None:
    market = synthetic_market()
    instruments = synthetic_instruments(market)
    empty = Book(*(np.zeros(1, dtype=np.int64) if i in (0, 5) else np.zeros(0, dtype=(np.int32 if i in (1, 2, 6, 7) else np.float64)) for i in range(9)))
    assert compute_margin(MarginParams(), market, instruments, empty).equity.size == 0
