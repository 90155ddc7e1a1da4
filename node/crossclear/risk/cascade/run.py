"""Many paths: in this process, or split into blocks of paths on Dask distributed.

Every path is simulated by the same code from the same spec and its own seed, whichever
process runs it, and the blocks are put back in path order, so any split gives the same
bits as one process.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from crossclear.margin._model import FloatArray
from crossclear.risk._kernel_api import shard_bounds
from crossclear.risk.cascade.engine import METRICS, simulate_path
from crossclear.risk.cascade.market import SimulationSpec

#: Tasks per worker: a few, so a slow worker does not hold the others up at the end.
SHARDS_PER_WORKER = 4

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class SimulationArrays:
    """Per-path figures of a simulation."""

    metrics: FloatArray
    """paths x combos x METRICS."""
    by_kind: FloatArray
    """paths x combos x participant kinds: bad debt caused by each kind."""
    collateral_by_kind: FloatArray
    """paths x combos x participant kinds: collateral required on the opening day."""
    path_stats: FloatArray
    """paths x 2: worst daily log return, worst drawdown of the first underlying."""


def simulate_range(spec: SimulationSpec, bounds: tuple[int, int], progress: Progress | None = None) -> SimulationArrays:
    """Paths [begin, end) of the spec."""
    begin, end = bounds
    count = end - begin
    metrics = np.zeros((count, len(spec.combos), len(METRICS)))
    by_kind = np.zeros((count, len(spec.combos), len(spec.kinds)))
    collateral = np.zeros((count, len(spec.combos), len(spec.kinds)))
    stats = np.zeros((count, 2))
    for offset, index in enumerate(range(begin, end)):
        result = simulate_path(spec, index)
        metrics[offset], by_kind[offset], stats[offset] = result.metrics, result.by_kind, result.path_stats
        collateral[offset] = result.collateral_by_kind
        if progress is not None:
            progress(offset + 1, count)
    return SimulationArrays(metrics=metrics, by_kind=by_kind, collateral_by_kind=collateral, path_stats=stats)


def combine(parts: list[SimulationArrays]) -> SimulationArrays:
    """Blocks of paths put back together, in path order."""
    return SimulationArrays(
        metrics=np.concatenate([part.metrics for part in parts]),
        by_kind=np.concatenate([part.by_kind for part in parts]),
        collateral_by_kind=np.concatenate([part.collateral_by_kind for part in parts]),
        path_stats=np.concatenate([part.path_stats for part in parts]),
    )


def run_local(spec: SimulationSpec, shards: int = 1, progress: Progress | None = None) -> SimulationArrays:
    """Every path in this process (`shards` only changes how the range is cut)."""
    bounds = shard_bounds(spec.paths, shards)
    return combine([simulate_range(spec, block, progress if len(bounds) == 1 else None) for block in bounds])


def run_on(client: Any, spec: SimulationSpec, shards: int | None = None, show_progress: bool = False) -> SimulationArrays:
    """Every path on the client's Dask cluster, in `shards` blocks of paths."""
    from distributed import progress

    workers = max(1, len(client.scheduler_info()["workers"]))
    count = shards or workers * SHARDS_PER_WORKER
    scattered = client.scatter(spec, broadcast=True)
    futures = [client.submit(simulate_range, scattered, block, pure=False) for block in shard_bounds(spec.paths, count)]
    if show_progress:
        progress(futures)
        sys.stderr.write("\n")
    parts: list[SimulationArrays] = client.gather(futures)
    return combine(parts)
