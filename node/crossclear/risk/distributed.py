"""Backtests across processes and machines on Dask distributed.

The backtest's days are split into blocks, each block is one task (`backtest.run_block`) over
every account, and the results are put back in day order. Splitting by day rather than by
account prices each day's scenario table once: with a few thousand accounts that table is
most of a day's work, and splitting by account would price it once per shard. The spec (history, instruments, book) is
scattered once to every worker instead of travelling with each task. Scheduling, retries,
the progress bar and joining a running cluster are Dask's.

Workers of a cluster joined with `scheduler=` must be able to import crossclear (run
`dask worker ADDRESS` from this project's environment).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from crossclear.risk._kernel_api import shard_bounds
from crossclear.risk.backtest import BacktestArrays, BacktestSpec, combine, run_block

#: Tasks per worker: a few, so a slow worker does not hold the others up at the end.
SHARDS_PER_WORKER = 4


@contextmanager
def client_for(workers: int | None = None, scheduler: str | None = None) -> Iterator[Any]:
    """A Dask client: of a new local cluster of `workers` processes, or of a running scheduler."""
    from distributed import Client, LocalCluster

    if scheduler is not None:
        with Client(scheduler) as client:
            yield client
        return
    # One thread per worker process: the kernels are single-threaded and numpy's BLAS is
    # not used here, so processes, not threads, are what spreads the work over cores.
    # Loopback only, and the dashboard on a free port (two clusters on one host must not clash).
    with LocalCluster(
        n_workers=workers or 1, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address="127.0.0.1:0"
    ) as cluster, Client(cluster) as client:
        yield client


def run_on(client: Any, spec: BacktestSpec, shards: int | None = None, show_progress: bool = False) -> BacktestArrays:
    """The backtest on the client's cluster, split into `shards` blocks of days."""
    from distributed import progress

    workers = max(1, len(client.scheduler_info()["workers"]))
    count = shards or workers * SHARDS_PER_WORKER
    scattered = client.scatter(spec, broadcast=True)
    accounts = (0, spec.margin.book.account_count)
    futures = [client.submit(run_block, scattered, accounts, days, pure=False) for days in shard_bounds(spec.days, count)]
    if show_progress:
        progress(futures)
        sys.stderr.write("\n")
    parts: list[BacktestArrays] = client.gather(futures)
    return combine(parts, by="days")
