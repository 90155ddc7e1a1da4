"""The v1 kernel over account shards on several threads gives the bits of one thread."""

from __future__ import annotations

import numpy as np

from crossclear.margin import MarginParams, MarginResult, compute_margin, compute_margin_threaded
from crossclear.margin._kernel_api import KernelCall
from crossclear.margin._synthetic import synthetic_book, synthetic_instruments, synthetic_market

FIELDS = ("collateral_value", "upnl", "equity", "im", "mm", "required", "health", "liquidatable")


def test_threaded_v1_kernel_is_bitwise_identical() -> None:
    market = synthetic_market()
    instruments = synthetic_instruments(market)
    book = synthetic_book(market, instruments, 30_001, 6)
    one = compute_margin(MarginParams(), market, instruments, book)
    for threads in (2, 3, 8):
        many = compute_margin_threaded(MarginParams(), market, instruments, book, threads)
        for field in FIELDS:
            assert getattr(many, field).tobytes() == getattr(one, field).tobytes(), (threads, field)


def test_threaded_subset_leaves_other_rows_alone() -> None:
    market = synthetic_market()
    instruments = synthetic_instruments(market)
    book = synthetic_book(market, instruments, 1_000, 4)
    full = compute_margin(MarginParams(), market, instruments, book)
    subset = np.array([999, 5, 17, 400, 5], dtype=np.int64)
    out = MarginResult.empty(book.account_count)
    KernelCall(MarginParams(), market, instruments).compute(book, out, subset, threads=2)
    touched = np.zeros(book.account_count, dtype=bool)
    touched[subset] = True
    assert out.required[touched].tobytes() == full.required[touched].tobytes()
    assert not out.required[~touched].any()
