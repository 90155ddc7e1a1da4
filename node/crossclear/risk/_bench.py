"""`crossclear bench risk`: the v2 ES kernel against numpy, the backtest's throughput, and Dask.

- ES: the synthetic book of `crossclear bench margin` (3 underlyings, 93 instruments) against
  L = 1,000 filtered scenarios of a synthetic crypto history; the kernel on one thread (best
  of --repeat), on every core, and the numpy reference once with its BLAS on every core and
  once on one thread, on the same data: one thread against one thread, every core against
  every core, and (`speedup_vs_numpy`) the one-thread kernel against numpy's default.
- Backtest: both models on the same book's first --backtest-accounts accounts over
  --backtest-days days of the synthetic history, in this process on one core.
- Forecast: every volatility forecaster fitted on --forecast-underlyings synthetic series of
  --forecast-days returns, then one forecast each (target: refitting all in under a minute).
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
from crossclear.margin._model import FloatArray
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
    parser.add_argument("--distributed-repeat", type=int, default=1, help="alternating runs of one and --workers workers; the best of each counts (default 1)")
    parser.add_argument("--forecast-underlyings", type=int, default=10, help="underlyings the forecasters are fitted on (default 10; 0 skips)")
    parser.add_argument("--forecast-days", type=int, default=2500, help="daily returns each fit uses (default 2,500)")
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
    # numpy's BLAS uses every core: the same reference with it held to one thread is the
    # like-for-like figure for the one-thread kernel (and the default run for the all-cores one).
    from crossclear.risk.forecast import single_threaded_blas

    with single_threaded_blas():
        start = time.perf_counter()
        reference.compute_es(params, MarginParams(), market, instruments, book, closes)
        numpy_one_thread_seconds = time.perf_counter() - start

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
        "es_numpy_seconds_one_thread": round(numpy_one_thread_seconds, 4),
        "speedup_vs_numpy_one_core": round(numpy_one_thread_seconds / kernel_seconds, 2),
        "threads": threads,
        "es_kernel_seconds_all_cores": round(all_cores_seconds, 4),
        "speedup_vs_numpy_all_cores": round(numpy_seconds / all_cores_seconds, 2),
        "threads_bitwise_identical": identical,
        "max_relative_disagreement_mm": disagreement,
        "backtest": {
            "account_days": account_days,
            "seconds": round(backtest_seconds, 3),
            "account_days_per_second": round(account_days / backtest_seconds),
        },
    }
    if args.forecast_underlyings > 0:
        figures["forecast"] = _forecast(args.forecast_underlyings, args.forecast_days)
    if args.workers > 0:
        figures["distributed"] = _distributed(args)
    json.dump(figures, sys.stdout, indent=None if args.json else 2)
    sys.stdout.write("\n")
    return 0


def _worker_cpu_seconds() -> float:
    """CPU time (user + system) this process has used (run on each Dask worker)."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return float(usage.ru_utime + usage.ru_stime)


def _distributed(args: argparse.Namespace) -> dict[str, Any]:
    """One worker against --workers workers on the same job, best of --distributed-repeat
    alternating runs, with the CPU time the workers got and the machine's load beside the wall
    time: on a shared machine the speedup is bounded by the cores the workers actually get."""
    import os

    from crossclear.risk.distributed import client_for, run_on

    # fhs only: v1's grid is one computation for the whole job, and its constant columns would
    # only add to what the workers send back.
    spec = _spec(args.distributed_accounts, args.positions_per_account, args.scenarios, args.distributed_days, ("fhs",))
    timings: dict[int, float] = {}
    cpu: dict[int, float] = {}
    load: dict[int, list[float]] = {}
    startup: dict[int, float] = {}
    results = []
    for _ in range(max(1, args.distributed_repeat)):
        for workers in (1, args.workers):
            start = time.perf_counter()
            with client_for(workers=workers) as client:
                client.wait_for_workers(workers)
                startup[workers] = time.perf_counter() - start
                before = client.run(_worker_cpu_seconds)
                load_before = os.getloadavg()[0]
                start = time.perf_counter()
                results.append(run_on(client, spec))
                seconds = time.perf_counter() - start
                used = sum(client.run(_worker_cpu_seconds).values()) - sum(before.values())
                if seconds < timings.get(workers, float("inf")):
                    timings[workers], cpu[workers] = seconds, used
                    load[workers] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    identical = all(r.mm.tobytes() == results[0].mm.tobytes() and r.loss.tobytes() == results[0].loss.tobytes() for r in results)
    many = args.workers
    return {
        "workers": many,
        "account_days": args.distributed_accounts * args.distributed_days,
        "seconds_one_worker": round(timings[1], 3),
        "seconds": round(timings[many], 3),
        "speedup_vs_one": round(timings[1] / timings[many], 2),
        "cpu_seconds_one_worker": round(cpu[1], 3),
        "cpu_seconds": round(cpu[many], 3),
        "core_share": round(cpu[many] / (timings[many] * many), 3),
        "load_average_one_worker": load[1],
        "load_average": load[many],
        "cluster_start_seconds": round(startup[many], 3),
        "bitwise_identical": identical,
    }


def _forecast(underlyings: int, days: int) -> dict[str, Any]:
    """Fit every forecaster on `underlyings` synthetic series of `days` returns, one core; then
    one forecast of each underlying (the node's work per certified close). Wall time, and the
    process's CPU time beside it (the wall time grows with the machine's load, the CPU time not)."""
    from crossclear.risk.forecast import FORECASTER_NAMES, ForecastSettings, forecaster, single_threaded_blas

    columns: list[FloatArray] = []
    seed = 2020
    while len(columns) < underlyings:
        path = generate(days + 1, seed=seed).history.closes
        columns += [np.diff(np.log(path[:, c])) for c in range(path.shape[1])]
        seed += 1
    returns = columns[:underlyings]
    settings = ForecastSettings(window=days)
    fit_seconds: dict[str, float] = {}
    fit_cpu_seconds: dict[str, float] = {}
    predict_ms: dict[str, float] = {}
    for name in FORECASTER_NAMES:
        model = forecaster(name)
        with single_threaded_blas():
            start, cpu = time.perf_counter(), time.process_time()
            fits = [model.fit(series, settings) for series in returns]
            fit_seconds[name] = round(time.perf_counter() - start, 4)
            fit_cpu_seconds[name] = round(time.process_time() - cpu, 4)
            start = time.perf_counter()
            for fitted, series in zip(fits, returns):
                model.forecast(fitted, series, settings)
            predict_ms[name] = round((time.perf_counter() - start) * 1000.0, 3)
    return {
        "underlyings": underlyings,
        "days": days,
        "fit_seconds": fit_seconds,
        "fit_seconds_all": round(sum(fit_seconds.values()), 4),
        "fit_cpu_seconds": fit_cpu_seconds,
        "predict_ms": predict_ms,
    }
