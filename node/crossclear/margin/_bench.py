"""`crossclear bench margin`: the C kernel against the numpy methodology on one synthetic book.

`kernel_seconds_all_cores` is the same kernel over account shards on every core's thread
(bitwise identical to one thread): numpy's BLAS uses every core too, so that is the figure
to set beside `numpy_seconds`.

Peak memory is read right after the kernel phase (book generation + kernel), before the
numpy implementation runs, because the numpy implementation's temporaries would otherwise
set the high-water mark. Timings are the best of `--repeat` runs of each, on the same data.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from typing import Any

import numpy as np

from crossclear._errors import UsageError
from crossclear.margin import methodology
from crossclear.margin._kernel_api import KernelCall
from crossclear.margin._model import MarginParams, MarginResult, Mode
from crossclear.margin._synthetic import synthetic_book, synthetic_instruments, synthetic_market
from crossclear.margin.engine import MarginEngine


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("margin", help="time the margin kernel against the numpy implementation")
    parser.add_argument("--accounts", type=int, default=1_000_000, help="accounts in the synthetic book (default 1,000,000)")
    parser.add_argument("--positions-per-account", type=int, default=8, help="positions per account (default 8)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each implementation; the best counts (default 3)")
    parser.add_argument("--json", action="store_true", help="print one JSON object (the default output is JSON too, indented)")
    parser.set_defaults(handler=run)


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _best_of(repeat: int, action: Any) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        best = min(best, time.perf_counter() - start)
    return best


def run(args: argparse.Namespace) -> int:
    if args.accounts < 1 or args.positions_per_account < 1 or args.repeat < 1:
        raise UsageError("--accounts, --positions-per-account and --repeat must be positive")
    params = MarginParams()
    market = synthetic_market()
    instruments = synthetic_instruments(market)
    book = synthetic_book(market, instruments, args.accounts, args.positions_per_account)
    kernel_result = MarginResult.empty(book.account_count)

    def run_kernel() -> None:
        KernelCall(params, market, instruments).compute(book, kernel_result)

    kernel_seconds = _best_of(args.repeat, run_kernel)
    threads = len(os.sched_getaffinity(0))
    threaded_result = MarginResult.empty(book.account_count)
    all_cores_seconds = _best_of(args.repeat, lambda: KernelCall(params, market, instruments).compute(book, threaded_result, threads=threads))
    threads_identical = threaded_result.required.tobytes() == kernel_result.required.tobytes() and threaded_result.mm.tobytes() == kernel_result.mm.tobytes()
    del threaded_result
    peak_rss_mb = _peak_rss_mb()
    data_mb = (book.nbytes + kernel_result.nbytes) / 2**20

    numpy_results: list[MarginResult] = []
    numpy_seconds = _best_of(args.repeat, lambda: numpy_results.append(methodology.compute_margin(params, market, instruments, book)))
    reference = numpy_results[-1]
    numpy_results.clear()
    scale = 1.0 + np.abs(reference.required)
    worst_disagreement = float(np.max(np.abs(kernel_result.required - reference.required) / scale))
    del reference

    engine = MarginEngine(params, market, instruments, book)
    before = engine.result.required.copy()
    start = time.perf_counter()
    touched = engine.update_underlying(0, price=float(market.underlying_price[0]) * 0.97)
    incremental_seconds = time.perf_counter() - start
    changed_rows = np.flatnonzero(np.any(engine.result.required != before, axis=1))
    holders = engine.holders_of_underlying(0)

    figures = {
        "accounts": book.account_count,
        "positions": int(book.position_offsets[-1]),
        "scenarios": params.scenario_count,
        "kernel_seconds": round(kernel_seconds, 4),
        "threads": threads,
        "kernel_seconds_all_cores": round(all_cores_seconds, 4),
        "threads_bitwise_identical": threads_identical,
        "numpy_seconds": round(numpy_seconds, 4),
        "accounts_per_second": round(book.account_count / kernel_seconds),
        "speedup_vs_numpy": round(numpy_seconds / kernel_seconds, 2),
        "peak_rss_mb": round(peak_rss_mb, 1),
        "input_output_mb": round(data_mb, 1),
        "peak_rss_over_input_output": round(peak_rss_mb / data_mb, 2),
        "max_relative_disagreement_required": worst_disagreement,
        "incremental": {
            "underlying": market.underlying_names[0],
            "holders": int(holders.size),
            "accounts_recomputed": int(touched.size),
            "accounts_changed_outside_holders": int(np.setdiff1d(changed_rows, holders).size),
            "seconds": round(incremental_seconds, 4),
        },
        "mode_columns": [mode.label for mode in Mode],
    }
    json.dump(figures, sys.stdout, indent=None if args.json else 2)
    sys.stdout.write("\n")
    return 0
