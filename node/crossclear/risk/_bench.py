"""`crossclear bench risk`: the v2 ES kernel against numpy, the backtest's throughput, and Dask.

- ES: the synthetic book of `crossclear bench margin` (3 underlyings, 93 instruments) against
  L = 1,000 filtered scenarios of a synthetic crypto history; the kernel on one thread (best
  of --repeat), on every core, and the numpy reference once, on the same data.
- Backtest: both models on the same book's first --backtest-accounts accounts over
  --backtest-days days of the synthetic history, in this process on one core.
- Distributed: a v2 backtest of --distributed-accounts accounts over --distributed-days days
  on a local Dask cluster of one worker, then of --workers workers (cluster start-up
  excluded, reported apart).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from crossclear._errors import UsageError
from crossclear.margin import MarginInputs, MarginParams
from crossclear.margin._synthetic import synthetic_book, synthetic_instruments, synthetic_market
from crossclear.risk import fhs as reference
from crossclear.risk._kernel_api import RiskKernel, default_threads
from crossclear.risk._model import EsResult, FhsParams
from crossclear.risk.backtest import BacktestSpec, run_local
from crossclear.risk.synthetic import generate


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("risk", help="time the v2 ES kernel, the backtest and Dask workers")
    parser.add_argument("--accounts", type=int, default=1_000_000, help="accounts in the ES sweep (default 1,000,000)")
    parser.add_argument("--positions-per-account", type=int, default=8, help="positions per account (default 8)")
    parser.add_argument("--scenarios", type=int, default=1000, help="L, historical scenarios (default 1,000)")
    parser.add_argument("--repeat", type=int, default=3, help="kernel runs; the best counts (default 3)")
    parser.add_argument("--backtest-accounts", type=int, default=5000, help="accounts in the backtest (default 5,000)")
    parser.add_argument("--backtest-days", type=int, default=250, help="days in the backtest (default 250)")
    parser.add_argument("--workers", type=int, default=2, help="Dask workers to compare with one (default 2; 0 skips)")
    parser.add_argument("--distributed-accounts", type=int, default=1000, help="accounts of the Dask job (default 1,000)")
    parser.add_argument("--distributed-days", type=int, default=10_000, help="days of the Dask job (default 10,000: about a minute on one worker here)")
    parser.add_argument("--json", action="store_true", help="print one JSON object on one line")
    parser.set_defaults(handler=run)


def _best_of(repeat: int, action: Callable[[], None]) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        best = min(best, time.perf_counter() - start)
    return best


def _spec(accounts: int, positions: int, lookback: int, days: int, models: tuple[str, ...] = ("grid", "fhs")) -> BacktestSpec:
    market = synthetic_market()
    instruments = synthetic_instruments(market)
    book = synthetic_book(market, instruments, accounts, positions)
    history = generate(lookback + days + 2, seed=2020).history
    inputs = MarginInputs(params=MarginParams(), market=market, instruments=instruments, book=book, account_ids=tuple(f"bench-{k}" for k in range(accounts)))
    return BacktestSpec(margin=inputs, fhs=FhsParams(fhs_lookback_days=lookback), history=history, first=lookback, last=lookback + days - 1, models=models)


def run(args: argparse.Namespace) -> int:
    if min(args.accounts, args.positions_per_account, args.scenarios, args.repeat, args.backtest_accounts, args.backtest_days, args.distributed_accounts, args.distributed_days) < 1:
        raise UsageError("sizes and --repeat must be positive")
    params = FhsParams(fhs_lookback_days=args.scenarios)
    market = synthetic_market()
    instruments = synthetic_instruments(market)
    book = synthetic_book(market, instruments, args.accounts, args.positions_per_account)
    closes = generate(args.scenarios + 1, seed=2020).history.closes
    kernel_result = EsResult.empty(book.account_count)
    threads = default_threads()

    kernel_seconds = _best_of(args.repeat, lambda: RiskKernel(params, MarginParams(), market, instruments, closes).compute(book, kernel_result))
    threaded = EsResult.empty(book.account_count)
    all_cores_seconds = _best_of(args.repeat, lambda: RiskKernel(params, MarginParams(), market, instruments, closes).compute(book, threaded, threads))
    identical = all(getattr(threaded, f).tobytes() == getattr(kernel_result, f).tobytes() for f in ("es", "stress", "mm", "im", "required", "upnl"))
    start = time.perf_counter()
    numpy_result = reference.compute_es(params, MarginParams(), market, instruments, book, closes)
    numpy_seconds = time.perf_counter() - start
    disagreement = float(np.max(np.abs(kernel_result.mm - numpy_result.mm) / (1.0 + np.abs(numpy_result.mm))))
    del numpy_result, threaded

    spec = _spec(args.backtest_accounts, args.positions_per_account, args.scenarios, args.backtest_days)
    start = time.perf_counter()
    run_local(spec)
    backtest_seconds = time.perf_counter() - start
    account_days = args.backtest_accounts * args.backtest_days

    figures: dict[str, Any] = {
        "accounts": book.account_count,
        "positions": int(book.position_offsets[-1]),
        "scenarios": args.scenarios,
        "tail_count": params.tail_count,
        "es_kernel_seconds": round(kernel_seconds, 4),
        "es_numpy_seconds": round(numpy_seconds, 4),
        "speedup_vs_numpy": round(numpy_seconds / kernel_seconds, 2),
        "threads": threads,
        "es_kernel_seconds_all_cores": round(all_cores_seconds, 4),
        "threads_bitwise_identical": identical,
        "max_relative_disagreement_mm": disagreement,
        "backtest": {
            "account_days": account_days,
            "seconds": round(backtest_seconds, 3),
            "account_days_per_second": round(account_days / backtest_seconds),
        },
    }
    if args.workers > 0:
        figures["distributed"] = _distributed(args)
    json.dump(figures, sys.stdout, indent=None if args.json else 2)
    sys.stdout.write("\n")
    return 0


def _distributed(args: argparse.Namespace) -> dict[str, Any]:
    from crossclear.risk.distributed import client_for, run_on

    # fhs only: v1's grid is one computation for the whole job, and its constant columns would
    # only add to what the workers send back.
    spec = _spec(args.distributed_accounts, args.positions_per_account, args.scenarios, args.distributed_days, ("fhs",))
    timings: dict[int, float] = {}
    startup: dict[int, float] = {}
    results = []
    for workers in (1, args.workers):
        start = time.perf_counter()
        with client_for(workers=workers) as client:
            client.wait_for_workers(workers)
            startup[workers] = time.perf_counter() - start
            start = time.perf_counter()
            results.append(run_on(client, spec))
            timings[workers] = time.perf_counter() - start
    identical = results[0].mm.tobytes() == results[-1].mm.tobytes() and results[0].loss.tobytes() == results[-1].loss.tobytes()
    return {
        "workers": args.workers,
        "account_days": args.distributed_accounts * args.distributed_days,
        "seconds_one_worker": round(timings[1], 3),
        "seconds": round(timings[args.workers], 3),
        "speedup_vs_one": round(timings[1] / timings[args.workers], 2),
        "cluster_start_seconds": round(startup[args.workers], 3),
        "bitwise_identical": identical,
    }
