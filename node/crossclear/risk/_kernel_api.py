"""Calls into the C risk kernel (native/risk), passing numpy arrays without copies.

cffi releases the GIL for the duration of each call, so shards of accounts computed on
different threads run on different cores. Every account's figures are computed by the same
code from the same table whatever shard it falls in, so any number of threads gives the same
bits as one.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import numpy.typing as npt

from crossclear.margin._model import Book, FloatArray, Instruments, MarginParams, Market
from crossclear.risk._kernel import ffi, lib  # type: ignore[import-not-found]
from crossclear.risk._model import EsResult, FhsParams
from crossclear.risk.fhs import stress_log_returns

_ERRORS = {
    -1: "risk parameters are invalid (lookback >= 1, 1 <= k <= lookback, 0 < lambda < 1)",
    -2: "instrument {index} refers to an underlying that is not in the market",
    -3: "instrument {index} has an unknown kind",
    -4: "position {index} refers to an instrument that is not in the table",
    -5: "account {index} has negative or decreasing CSR offsets",
    -6: "account range starting at {index} is not inside the book",
    -7: "history of underlying {index} has a non-positive or non-finite close, or its volatility forecast is negative or not finite",
}


class RiskKernelError(ValueError):
    """The arrays handed to the kernel are inconsistent (an index out of range, bad offsets)."""


def default_threads() -> int:
    """Cores this process may run on."""
    return len(os.sched_getaffinity(0))


def _buffer(ctype: str, array: npt.NDArray[Any], dtype: type[np.generic]) -> Any:
    if array.dtype != dtype or not array.flags.c_contiguous:
        raise TypeError(f"kernel input must be a C-contiguous {np.dtype(dtype).name} array, got {array.dtype}")
    return ffi.from_buffer(ctype, array)


def _raise_for(status: int, index: int) -> None:
    if status != 0:
        raise RiskKernelError(_ERRORS.get(status, f"kernel error {status}").format(index=index))


class RiskKernel:
    """The kernel's view of one (params, market, instruments, history window) with its table.

    Building it filters the history and prices the scenario table (risk_prepare); `compute`
    then fills results for a book. It keeps references to every array the C structs point
    into, so none can be freed under the kernel.
    """

    def __init__(
        self, params: FhsParams, margin_params: MarginParams, market: Market, instruments: Instruments, closes: FloatArray,
        sigma_forecast: FloatArray | None = None,
    ) -> None:
        """`sigma_forecast`: today's daily volatility per market underlying from a forecaster
        (step 4 with params.fhs_forecaster); None uses the EWMA filter's, as v2 defines it."""
        self._keep: list[Any] = []
        rows = params.fhs_lookback_days + 1
        if closes.shape != (rows, len(market.underlying_names)):
            raise RiskKernelError(f"closes must be {rows} x {len(market.underlying_names)}, got {closes.shape[0]} x {closes.shape[1]}")
        self._stress_returns = np.ascontiguousarray(stress_log_returns(params, market))
        self._stress_weight = np.array([s.weight for s in params.stress_scenarios], dtype=np.float64)
        self._closes = np.ascontiguousarray(closes, dtype=np.float64)

        self.params = ffi.new("risk_params *")
        self.params.decay = params.fhs_lambda
        self.params.lookback = params.fhs_lookback_days
        self.params.mpor_days = float(params.fhs_mpor_days)
        self.params.apc_vol_floor = int(params.apc_vol_floor)
        self.params.tail_count = params.tail_count
        self.params.stress_count = len(params.stress_scenarios)
        self.params.stress_returns = self._double(self._stress_returns) if params.stress_scenarios else ffi.NULL
        self.params.stress_weight = self._double(self._stress_weight) if params.stress_scenarios else ffi.NULL
        self.params.im_multiplier = margin_params.im_multiplier

        self.market = ffi.new("risk_market *")
        self.market.underlying_count = len(market.underlying_names)
        self.market.spot = self._double(market.underlying_price)
        self.market.vol = self._double(market.underlying_vol)
        self.market.closes = self._double(self._closes)
        if sigma_forecast is None:
            self.market.sigma_forecast = ffi.NULL
        else:
            if sigma_forecast.shape != (len(market.underlying_names),):
                raise RiskKernelError(f"sigma_forecast must hold one volatility per underlying ({len(market.underlying_names)}), got shape {sigma_forecast.shape}")
            self._sigma_forecast = np.ascontiguousarray(sigma_forecast, dtype=np.float64)
            self.market.sigma_forecast = self._double(self._sigma_forecast)

        self.instruments = ffi.new("risk_instruments *")
        self.instruments.count = instruments.count
        self.instruments.underlying = self._hold(_buffer("int32_t[]", instruments.underlying, np.int32))
        self.instruments.kind = self._hold(_buffer("int32_t[]", instruments.kind, np.int32))
        self.instruments.strike = self._double(instruments.strike)
        self.instruments.expiry_years = self._double(instruments.expiry_years)

        size = int(lib.risk_table_doubles(self.params, self.market, self.instruments))
        self.table: FloatArray = np.zeros(max(size, 1))
        self._table = _buffer("double[]", self.table, np.float64)
        self._scratch_doubles = int(lib.risk_scratch_doubles(self.params))
        self._instrument_count = instruments.count
        error_index = ffi.new("int64_t *")
        _raise_for(lib.risk_prepare(self.params, self.market, self.instruments, self._table, error_index), error_index[0])

    @property
    def marks(self) -> FloatArray:
        """V_now of every instrument (the first rows of the table)."""
        return self.table[: self._instrument_count]

    def _hold(self, pointer: Any) -> Any:
        self._keep.append(pointer)
        return pointer

    def _double(self, array: FloatArray) -> Any:
        return self._hold(_buffer("double[]", array, np.float64))

    def compute(self, book: Book, out: EsResult, threads: int = 1) -> None:
        """Fill `out` for every account of `book`, splitting the accounts over `threads` threads."""
        accounts = book.account_count
        if out.es.shape[0] != accounts:
            raise ValueError(f"result arrays hold {out.es.shape[0]} accounts, the book {accounts}")
        rows = {a.shape[0] for a in (book.position_instrument, book.position_qty, book.position_entry)}
        if len(rows) != 1 or (accounts and int(book.position_offsets.max()) > rows.pop()):
            raise RiskKernelError("the per-position arrays have different lengths or an offset points past them")
        c_book = ffi.new("risk_book *")
        pointers = [
            _buffer("int64_t[]", book.position_offsets, np.int64),
            _buffer("int32_t[]", book.position_instrument, np.int32),
            _buffer("double[]", book.position_qty, np.float64),
            _buffer("double[]", book.position_entry, np.float64),
        ]
        c_book.account_count = accounts
        c_book.position_offsets, c_book.position_instrument, c_book.position_qty, c_book.position_entry = pointers
        outputs = ffi.new("risk_outputs *")
        output_arrays = (out.es, out.stress, out.mm, out.im, out.required, out.upnl)
        output_pointers = [_buffer("double[]", array, np.float64) for array in output_arrays]
        outputs.es, outputs.stress, outputs.mm, outputs.im, outputs.required, outputs.upnl = output_pointers

        def run(bounds: tuple[int, int]) -> tuple[int, int]:
            scratch = np.empty(self._scratch_doubles)
            error_index = ffi.new("int64_t *")
            status = lib.risk_compute(
                self.params, self.market, self.instruments, self._table, c_book, bounds[0], bounds[1],
                _buffer("double[]", scratch, np.float64), outputs, error_index,
            )
            return int(status), int(error_index[0])

        shards = shard_bounds(accounts, max(1, threads))
        if len(shards) == 1:
            statuses = [run(shards[0])]
        else:
            with ThreadPoolExecutor(max_workers=len(shards)) as pool:
                statuses = list(pool.map(run, shards))
        for status, index in statuses:
            _raise_for(status, index)


def shard_bounds(count: int, shards: int) -> list[tuple[int, int]]:
    """`shards` contiguous [begin, end) ranges covering 0..count, sizes differing by at most 1."""
    shards = max(1, min(shards, count)) if count else 1
    edges = [count * k // shards for k in range(shards + 1)]
    return list(zip(edges[:-1], edges[1:]))


def compute_es(
    params: FhsParams, margin_params: MarginParams, market: Market, instruments: Instruments, book: Book, closes: FloatArray,
    threads: int = 1, sigma_forecast: FloatArray | None = None,
) -> EsResult:
    """v2 portfolio figures for every account, computed by the C kernel on `threads` threads."""
    result = EsResult.empty(book.account_count)
    RiskKernel(params, margin_params, market, instruments, closes, sigma_forecast).compute(book, result, threads)
    return result
