"""Calls into the C margin kernel (native/margin), passing numpy arrays without copies.

cffi releases the GIL for the duration of each call, so the node can run the kernel on a
worker thread while its event loops keep serving.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from crossclear.margin._kernel import ffi, lib  # type: ignore[import-not-found]
from crossclear.margin._model import Book, FloatArray, Instruments, MarginParams, MarginResult, Market

_ERRORS = {
    -1: "margin parameters are invalid (price_steps must be >= 2 and vol_shocks non-empty)",
    -2: "instrument {index} refers to an underlying that is not in the market",
    -3: "instrument {index} has an unknown kind",
    -4: "position {index} refers to an instrument that is not in the table",
    -5: "position {index} refers to a chain that is not in the market",
    -6: "collateral entry {index} refers to an asset that is not in the market",
    -7: "account {index} has negative or decreasing CSR offsets",
    -8: "account subset entry {index} is not an account of the book",
}


class KernelInputError(ValueError):
    """The arrays handed to the kernel are inconsistent (an index out of range, bad offsets)."""


def _buffer(ctype: str, array: npt.NDArray[Any], dtype: type[np.generic]) -> Any:
    if array.dtype != dtype or not array.flags.c_contiguous:
        raise TypeError(f"kernel input must be a C-contiguous {np.dtype(dtype).name} array, got {array.dtype}")
    return ffi.from_buffer(ctype, array)


class KernelCall:
    """The kernel's view of one (params, market, instruments) triple, with its workspace.

    Building it prices every instrument (margin_prepare); `compute` then fills results for
    all accounts or a subset. Keep one per market state: it holds references to the arrays
    it was built from so they cannot be freed under the kernel.
    """

    def __init__(self, params: MarginParams, market: Market, instruments: Instruments) -> None:
        self._keep_alive: list[Any] = []
        self._vol_shocks = np.asarray(params.vol_shocks, dtype=np.float64)
        self.params = ffi.new("margin_params *")
        self.params.price_steps = params.price_steps
        self.params.vol_shock_count = self._vol_shocks.size
        self.params.vol_shocks = self._hold(_buffer("double[]", self._vol_shocks, np.float64))
        for name in (
            "extreme_move",
            "extreme_weight",
            "pm_floor_rate",
            "im_multiplier",
            "perp_im_rate",
            "perp_mm_rate",
            "short_option_im_rate",
            "short_option_im_floor_rate",
            "short_option_mm_rate",
            "haircut_z",
            "haircut_liq_days",
            "haircut_conc_k",
            "haircut_max",
        ):
            setattr(self.params, name, getattr(params, name))

        self.market = ffi.new("margin_market *")
        self.market.underlying_count = len(market.underlying_names)
        self.market.underlying_price = self._double(market.underlying_price)
        self.market.underlying_vol = self._double(market.underlying_vol)
        self.market.underlying_scan_range = self._double(market.underlying_scan_range)
        self.market.asset_count = len(market.asset_names)
        self.market.asset_price = self._double(market.asset_price)
        self.market.asset_base_haircut = self._double(market.asset_base_haircut)
        self.market.asset_depth = self._double(market.asset_depth)
        self.market.asset_daily_vol = self._double(market.asset_daily_vol)
        self.market.chain_count = len(market.chain_names)

        self.instruments = ffi.new("margin_instruments *")
        self.instruments.count = instruments.count
        self._instrument_count = instruments.count
        self.instruments.underlying = self._int32(instruments.underlying)
        self.instruments.kind = self._int32(instruments.kind)
        self.instruments.strike = self._double(instruments.strike)
        self.instruments.expiry_years = self._double(instruments.expiry_years)

        size = lib.margin_workspace_doubles(self.params, self.market, self.instruments)
        self.workspace: FloatArray = np.zeros(max(int(size), 1), dtype=np.float64)
        self._workspace_pointer = _buffer("double[]", self.workspace, np.float64)
        error_index = ffi.new("int64_t *")
        status = lib.margin_prepare(self.params, self.market, self.instruments, self._workspace_pointer, error_index)
        _raise_for(status, error_index[0])

    @property
    def instrument_marks(self) -> FloatArray:
        """Mark of every instrument at this market (the first rows of the kernel's workspace)."""
        return self.workspace[: self._instrument_count]

    def _hold(self, pointer: Any) -> Any:
        self._keep_alive.append(pointer)
        return pointer

    def _double(self, array: FloatArray) -> Any:
        return self._hold(_buffer("double[]", array, np.float64))

    def _int32(self, array: npt.NDArray[np.int32]) -> Any:
        return self._hold(_buffer("int32_t[]", array, np.int32))

    def compute(
        self, book: Book, out: MarginResult, account_subset: npt.NDArray[np.int64] | None = None, threads: int = 1
    ) -> None:
        """Fill `out` for every account of `book`, or only for `account_subset` (indices).

        With threads > 1 the accounts are split into that many contiguous shards, each run on
        its own thread with its own copy of the workspace (cffi releases the GIL). Every
        account is computed by the same code from the same prepared tables in any shard, so
        the result is bitwise identical to one thread.
        """
        _check_book_shapes(book)
        c_book = ffi.new("margin_book *")
        pointers = [
            _buffer("int64_t[]", book.position_offsets, np.int64),
            _buffer("int32_t[]", book.position_instrument, np.int32),
            _buffer("int32_t[]", book.position_chain, np.int32),
            _buffer("double[]", book.position_qty, np.float64),
            _buffer("double[]", book.position_entry, np.float64),
            _buffer("int64_t[]", book.collateral_offsets, np.int64),
            _buffer("int32_t[]", book.collateral_asset, np.int32),
            _buffer("double[]", book.collateral_amount, np.float64),
        ]
        c_book.account_count = book.account_count
        (
            c_book.position_offsets,
            c_book.position_instrument,
            c_book.position_chain,
            c_book.position_qty,
            c_book.position_entry,
            c_book.collateral_offsets,
            c_book.collateral_asset,
            c_book.collateral_amount,
        ) = pointers
        if out.equity.shape[0] != book.account_count:
            raise ValueError(f"result arrays hold {out.equity.shape[0]} accounts, the book {book.account_count}")
        outputs = ffi.new("margin_outputs *")
        output_pointers = [
            _buffer("double[]", out.collateral_value, np.float64),
            _buffer("double[]", out.upnl, np.float64),
            _buffer("double[]", out.equity, np.float64),
            _buffer("double[]", out.im, np.float64),
            _buffer("double[]", out.mm, np.float64),
            _buffer("double[]", out.required, np.float64),
            _buffer("double[]", out.health, np.float64),
            _buffer("uint8_t[]", out.liquidatable, np.uint8),
        ]
        (
            outputs.collateral_value,
            outputs.upnl,
            outputs.equity,
            outputs.im,
            outputs.mm,
            outputs.required,
            outputs.health,
            outputs.liquidatable,
        ) = output_pointers
        if threads > 1 and (book.account_count if account_subset is None else account_subset.shape[0]) > 1:
            self._compute_sharded(c_book, outputs, book.account_count, account_subset, threads)
            return
        subset_pointer = ffi.NULL
        subset_count = 0
        if account_subset is not None:
            subset_pointer = _buffer("int64_t[]", account_subset, np.int64)
            subset_count = int(account_subset.shape[0])
        error_index = ffi.new("int64_t *")
        status = lib.margin_compute(
            self.params,
            self.market,
            self.instruments,
            c_book,
            self._workspace_pointer,
            subset_pointer,
            subset_count,
            outputs,
            error_index,
        )
        _raise_for(status, error_index[0])

    def _compute_sharded(
        self, c_book: Any, outputs: Any, account_count: int, account_subset: npt.NDArray[np.int64] | None, threads: int
    ) -> None:
        from concurrent.futures import ThreadPoolExecutor

        visits = np.arange(account_count, dtype=np.int64) if account_subset is None else account_subset
        count = int(visits.shape[0])
        shards = min(threads, count)
        edges = [count * k // shards for k in range(shards + 1)]

        def run(shard: int) -> tuple[int, int]:
            # The workspace's tail is per-call scratch: each thread needs its own copy.
            workspace = self.workspace.copy()
            piece = np.ascontiguousarray(visits[edges[shard] : edges[shard + 1]])
            error_index = ffi.new("int64_t *")
            status = lib.margin_compute(
                self.params, self.market, self.instruments, c_book, _buffer("double[]", workspace, np.float64),
                _buffer("int64_t[]", piece, np.int64), int(piece.shape[0]), outputs, error_index,
            )
            return int(status), int(error_index[0])

        with ThreadPoolExecutor(max_workers=shards) as pool:
            for status, index in list(pool.map(run, range(shards))):
                _raise_for(status, index)


def _check_book_shapes(book: Book) -> None:
    # The kernel trusts the offsets to stay inside the row arrays; it cannot see their length.
    accounts = book.account_count
    if book.collateral_offsets.shape[0] != accounts + 1:
        raise KernelInputError("position and collateral offsets describe different numbers of accounts")
    position_rows = {a.shape[0] for a in (book.position_instrument, book.position_chain, book.position_qty, book.position_entry)}
    collateral_rows = {a.shape[0] for a in (book.collateral_asset, book.collateral_chain, book.collateral_amount)}
    if len(position_rows) != 1 or len(collateral_rows) != 1:
        raise KernelInputError("the per-position (or per-collateral) arrays have different lengths")
    if accounts and (int(book.position_offsets.max()) > position_rows.pop() or int(book.collateral_offsets.max()) > collateral_rows.pop()):
        raise KernelInputError("an offset points past the end of its row arrays")


def _raise_for(status: int, index: int) -> None:
    if status != 0:
        raise KernelInputError(_ERRORS.get(status, f"kernel error {status}").format(index=index))


def compute_margin(params: MarginParams, market: Market, instruments: Instruments, book: Book) -> MarginResult:
    """All margin figures for every account, computed by the C kernel."""
    result = MarginResult.empty(book.account_count)
    KernelCall(params, market, instruments).compute(book, result)
    return result


def compute_margin_threaded(params: MarginParams, market: Market, instruments: Instruments, book: Book, threads: int) -> MarginResult:
    """compute_margin on `threads` threads over account shards; the same bits as one thread."""
    result = MarginResult.empty(book.account_count)
    KernelCall(params, market, instruments).compute(book, result, threads=threads)
    return result
