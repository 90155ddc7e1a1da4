"""The C kernel and the numpy reference agree to 1e-9; threads give the bits of one thread."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crossclear.margin import MarginParams
from crossclear.margin._synthetic import synthetic_book, synthetic_instruments, synthetic_market
from crossclear.risk import EsResult, FhsParams, RiskKernel, RiskKernelError, StressScenario, compute_es, fhs

FIELDS = ("es", "stress", "mm", "im", "required", "upnl")


def _closes(seed: int, rows: int, columns: int, flat: bool = False) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if flat:
        return np.full((rows, columns), 100.0)
    shocks = rng.standard_t(3, (rows, columns)) * rng.uniform(0.005, 0.08, columns)
    return 100.0 * np.exp(np.cumsum(shocks, axis=0))


def _assert_close(kernel: EsResult, reference: EsResult) -> None:
    for field in FIELDS:
        ours, theirs = getattr(kernel, field), getattr(reference, field)
        scale = 1.0 + np.abs(theirs)
        assert np.max(np.abs(ours - theirs) / scale, initial=0.0) <= 1e-9, field


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    accounts=st.integers(0, 40),
    positions=st.integers(1, 11),
    lookback=st.integers(1, 250),
    confidence=st.sampled_from([0.5, 0.9, 0.95, 0.975, 0.99, 0.999]),
    decay=st.floats(0.5, 0.995),
    mpor=st.integers(1, 10),
    apc=st.booleans(),
    stress_count=st.integers(0, 3),
    flat=st.booleans(),
)
def test_kernel_matches_numpy(
    seed: int, accounts: int, positions: int, lookback: int, confidence: float, decay: float, mpor: int, apc: bool, stress_count: int, flat: bool
) -> None:
    market = synthetic_market()
    instruments = synthetic_instruments(market)
    book = synthetic_book(market, instruments, accounts, positions, seed=seed % 1000)
    rng = np.random.default_rng(seed)
    stress = tuple(
        StressScenario(f"s{i}", tuple((name, float(rng.normal(0, 0.3))) for name in market.underlying_names[: i + 1]), float(rng.uniform(0, 1.5)))
        for i in range(stress_count)
    )
    params = FhsParams(fhs_lambda=decay, fhs_confidence=confidence, fhs_lookback_days=lookback, fhs_mpor_days=mpor, apc_vol_floor=apc, stress_scenarios=stress)
    closes = _closes(seed, lookback + 1, len(market.underlying_names), flat and seed % 4 == 0)
    reference = fhs.compute_es(params, MarginParams(), market, instruments, book, closes)
    kernel = compute_es(params, MarginParams(), market, instruments, book, closes)
    _assert_close(kernel, reference)


def test_threads_are_bitwise_identical_to_one_thread() -> None:
    market = synthetic_market()
    instruments = synthetic_instruments(market)
    book = synthetic_book(market, instruments, 20_001, 8)
    params = FhsParams(fhs_lookback_days=500, stress_scenarios=(StressScenario("crash", (("BTC", -0.4), ("ETH", -0.5)), 0.7),))
    kernel = RiskKernel(params, MarginParams(), market, instruments, _closes(3, 501, 3))
    one = EsResult.empty(book.account_count)
    kernel.compute(book, one, threads=1)
    for threads in (2, 3, 7):
        many = EsResult.empty(book.account_count)
        kernel.compute(book, many, threads=threads)
        for field in FIELDS:
            assert getattr(many, field).tobytes() == getattr(one, field).tobytes(), (threads, field)


@pytest.mark.parametrize(
    ("confidence", "lookback", "expected"),
    [(0.99, 1000, 10), (0.975, 1000, 25), (0.7, 10, 3), (0.9, 20, 2), (0.999, 1000, 1), (0.99, 1001, 11), (0.5, 1, 1)],
)
def test_tail_count_has_no_floating_error(confidence: float, lookback: int, expected: int) -> None:
    assert FhsParams(fhs_confidence=confidence, fhs_lookback_days=lookback).tail_count == expected


def test_ties_and_a_tail_of_every_scenario() -> None:
    market = synthetic_market()
    instruments = synthetic_instruments(market)
    book = synthetic_book(market, instruments, 50, 4)
    for confidence, lookback in ((0.5, 16), (0.01, 16), (0.9, 7)):
        params = FhsParams(fhs_confidence=confidence, fhs_lookback_days=lookback)
        # A history that repeats one return makes many scenarios tie exactly.
        closes = 100.0 * np.exp(np.outer(np.arange(lookback + 1) % 2, [0.05, -0.03, 0.02]))
        _assert_close(
            compute_es(params, MarginParams(), market, instruments, book, closes),
            fhs.compute_es(params, MarginParams(), market, instruments, book, closes),
        )


def test_kernel_rejects_inconsistent_arrays() -> None:
    market = synthetic_market()
    instruments = synthetic_instruments(market)
    book = synthetic_book(market, instruments, 3, 2)
    params = FhsParams(fhs_lookback_days=5)
    with pytest.raises(RiskKernelError, match="closes must be 6 x 3"):
        RiskKernel(params, MarginParams(), market, instruments, _closes(1, 5, 3))
    bad_closes = _closes(1, 6, 3)
    bad_closes[2, 1] = -1.0
    with pytest.raises(RiskKernelError, match="underlying 1"):
        RiskKernel(params, MarginParams(), market, instruments, bad_closes)
    kernel = RiskKernel(params, MarginParams(), market, instruments, _closes(1, 6, 3))
    broken = type(book)(**{**book.__dict__, "position_instrument": np.full_like(book.position_instrument, 10_000)})
    with pytest.raises(RiskKernelError, match="position 0 refers to an instrument"):
        kernel.compute(broken, EsResult.empty(3))
