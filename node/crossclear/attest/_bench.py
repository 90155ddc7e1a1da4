"""`crossclear bench attest`: latency and throughput of certificates across node processes.

Two runs, each on fresh stores with N nodes as separate processes on 127.0.0.1:
1. latency: synthetic chains produce `--rate` observations per second in total for
   `--seconds`; each observation's latency is from its block's scheduled time to the moment
   the *last* node stored its certificate;
2. saturation: `--burst` observations are all available at once; throughput is how many
   were certified on every node per second, from release until the last one.
`bytes_per_certificate` is the gossip envelope bytes all nodes originated in the latency run
(attestations and heartbeats, before libp2p framing and relay copies) per certificate.

With `--byzantine B` a third run repeats the latency run for `--flood-seconds` while the last
B members flood at their budgets' full rate (crossclear.attest._flood) and sign nothing
honest. Its `flood` section, over the honest nodes: CPU cores each used during the run (the
most loaded one; `honest_cpu_cores_without_flood` is the same figure in the latency run),
growth of the database (its pages, WAL included) in MB per minute (the fastest growing one),
certificate latency over every observation (to the last honest node; one never certified
there is a miss and the percentile is null if it falls on one), and certificates per second.
Every run refuses to report when a node was not connected to all its peers at the start.
"""

from __future__ import annotations

import argparse
import json
import math
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

from crossclear._errors import UsageError
from crossclear.attest._cluster import ProcessCluster
from crossclear.p2p import now_ms
from crossclear.attest._synthetic import SyntheticChain
from crossclear.store import AttestationStore
from crossclear.v1 import attestation_pb2

_CHAIN_IDS = (31337, 31338)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("attest", help="observation-to-certificate latency and certificates per second")
    parser.add_argument("--nodes", type=int, default=4, help="node processes (default 4)")
    parser.add_argument("--rate", type=float, default=20.0, help="observations per second in the latency run")
    parser.add_argument("--seconds", type=float, default=15.0, help="length of the latency run")
    parser.add_argument("--burst", type=int, default=10000, help="observations released at once in the saturation run")
    parser.add_argument("--byzantine", type=int, default=0, help="members flooding in an extra run (default 0: no flood run)")
    parser.add_argument("--flood-seconds", type=float, default=40.0, help="length of the flood run")
    parser.add_argument("--json", action="store_true", help="print one JSON object (the default output anyway)")
    parser.set_defaults(handler=_handle)


def _certified_times(path: Path) -> dict[tuple[int, int], int]:
    store = AttestationStore(path)
    try:
        times = store.certified_times_ms()
        result = {}
        for chain_id in _CHAIN_IDS:
            for blob in store.certificates(chain_id, 0, 10_000_000):
                certificate = attestation_pb2.QuorumCertificate()
                certificate.ParseFromString(blob)
                digest = _digest_of(store, certificate)
                result[(chain_id, certificate.observation.block_number)] = times[digest]
        return result
    finally:
        store.close()


def _digest_of(store: AttestationStore, certificate: attestation_pb2.QuorumCertificate) -> bytes:
    from crossclear.attest._eip712 import SigningDomain, observation_digest
    from crossclear.attest._observation import Observation

    return observation_digest(SigningDomain(), Observation.from_proto(certificate.observation))


class _Run:
    """What one run measured: genesis, per node the certification times, bytes published,
    and per honest node its CPU seconds and database bytes at genesis and at the end."""

    def __init__(self) -> None:
        self.genesis_ms = 0
        self.ended_ms = 0
        self.times: list[dict[tuple[int, int], int]] = []
        self.published = 0
        self.cpu: list[tuple[float, float]] = []
        self.database: list[tuple[int, int]] = []


def _cpu_seconds(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def _database_bytes(path: Path) -> int:
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        pages: int = connection.execute("PRAGMA page_count").fetchone()[0]
        size: int = connection.execute("PRAGMA page_size").fetchone()[0]
    finally:
        connection.close()
    return pages * size


def _run(
    folder: Path,
    nodes: int,
    chains: list[dict[str, Any]],
    expected: int,
    timeout_seconds: float,
    *,
    flooders: int = 0,
    overrides: dict[str, Any] | None = None,
    honest_expected: bool = False,
    minimum_seconds: float = 0.0,
) -> _Run:
    honest = range(nodes - flooders)
    cluster = ProcessCluster(
        folder,
        nodes,
        chains,
        overrides=overrides or {},
        node_overrides={index: {"flood": 1.0} for index in range(nodes - flooders, nodes)},
    )
    run = _Run()
    try:
        run.genesis_ms = cluster.start_all_and_go()
        missing = [(index, count) for index, count in enumerate(cluster.connected) if count < nodes - 1]
        if missing:
            raise UsageError(
                "bench refused to report: "
                + ", ".join(f"node {index} was connected to {count} of {nodes - 1} peers" for index, count in missing)
            )
        pids = [process.pid for process in cluster.processes if process is not None]
        cpu_start = [_cpu_seconds(pids[index]) for index in honest]
        database_start = [_database_bytes(cluster.store_path(index)) for index in honest]
        started = time.monotonic()
        deadline = started + timeout_seconds
        watched = honest if honest_expected else range(nodes)
        while time.monotonic() < deadline:
            counts = [_count(cluster.store_path(index)) for index in watched]
            if min(counts) >= expected and time.monotonic() - started >= minimum_seconds:
                break
            time.sleep(0.2)
        run.ended_ms = now_ms()
        run.cpu = [(cpu_start[i], _cpu_seconds(pids[index])) for i, index in enumerate(honest)]
        run.database = [(database_start[i], _database_bytes(cluster.store_path(index))) for i, index in enumerate(honest)]
    finally:
        cluster.stop_all()
    run.published = sum(int(cluster.stats(index).get("published_bytes", 0)) for index in range(nodes))
    run.times = [_certified_times(cluster.store_path(index)) for index in range(nodes)]
    return run


def _count(path: Path) -> int:
    store = AttestationStore(path)
    try:
        return store.certificate_count()
    finally:
        store.close()


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))]


def _latencies(run: _Run, chains: list[dict[str, Any]], nodes: range) -> list[float]:
    """Per observation, block time to the moment the last of `nodes` certified it (inf: never)."""
    latencies = []
    for chain in chains:
        schedule = SyntheticChain(int(chain["chain_id"]), run.genesis_ms, float(chain["blocks_per_second"]))
        for block in range(1, int(chain["last_block"]) + 1):
            key = (schedule.chain_id, block)
            if all(key in run.times[index] for index in nodes):
                latencies.append(max(run.times[index][key] for index in nodes) - schedule.block_time_ms(block))
            else:
                latencies.append(math.inf)
    return latencies


def _rounded(value: float) -> float | None:
    return None if math.isinf(value) else round(value, 1)


def _cores(run: _Run) -> float:
    seconds = max(0.001, (run.ended_ms - run.genesis_ms) / 1000)
    return round(max(end - start for start, end in run.cpu) / seconds, 3)


def _flood(args: argparse.Namespace, folder: Path, per_chain_rate: float) -> dict[str, Any]:
    blocks_per_chain = max(1, int(per_chain_rate * args.flood_seconds))
    chains = [
        {"chain_id": chain_id, "blocks_per_second": per_chain_rate, "last_block": blocks_per_chain}
        for chain_id in _CHAIN_IDS
    ]
    honest = range(args.nodes - args.byzantine)
    run = _run(
        folder,
        args.nodes,
        chains,
        blocks_per_chain * len(_CHAIN_IDS),
        args.flood_seconds + 60,
        flooders=args.byzantine,
        honest_expected=True,
        minimum_seconds=args.flood_seconds,
    )
    latencies = _latencies(run, chains, honest)
    certified = [value for value in latencies if not math.isinf(value)]
    minutes = max(0.001, (run.ended_ms - run.genesis_ms) / 60_000)
    last_certified_ms = max(
        (max(run.times[index][key] for index in honest) for key in set.intersection(*(set(run.times[i]) for i in honest))),
        default=run.ended_ms,
    )
    return {
        "honest_cpu_cores": _cores(run),
        "db_growth_mb_per_min": round(max(end - start for start, end in run.database) / 1e6 / minutes, 2),
        "latency_ms": {"p50": _rounded(_percentile(latencies, 0.50)), "p99": _rounded(_percentile(latencies, 0.99))},
        "certified_per_second": round(len(certified) / max(0.001, (last_certified_ms - run.genesis_ms) / 1000), 1),
        "observations": len(latencies),
        "misses": len(latencies) - len(certified),
        "flooding_members": args.byzantine,
        "seconds": args.flood_seconds,
    }


def _handle(args: argparse.Namespace) -> int:
    if args.nodes < 1 or args.nodes > 16:
        raise UsageError(f"--nodes {args.nodes}: expected 1..16")
    if not 0 < args.rate <= 1000 or not 1 <= args.seconds <= 600 or not 1 <= args.burst <= 100_000:
        raise UsageError("--rate must be in (0, 1000], --seconds in [1, 600], --burst in [1, 100000]")
    if not 0 <= args.byzantine < args.nodes / 3 or not 5 <= args.flood_seconds <= 600:
        raise UsageError(f"--byzantine must be in 0..{math.ceil(args.nodes / 3) - 1} (f < n/3), --flood-seconds in [5, 600]")
    per_chain_rate = args.rate / len(_CHAIN_IDS)
    blocks_per_chain = max(1, int(per_chain_rate * args.seconds))
    with tempfile.TemporaryDirectory(prefix="crossclear-bench-attest-") as temporary:
        folder = Path(temporary)
        latency_chains = [
            {"chain_id": chain_id, "blocks_per_second": per_chain_rate, "last_block": blocks_per_chain}
            for chain_id in _CHAIN_IDS
        ]
        expected = blocks_per_chain * len(_CHAIN_IDS)
        latency = _run(folder / "latency", args.nodes, latency_chains, expected, args.seconds + 60)
        latencies = [value for value in _latencies(latency, latency_chains, range(args.nodes)) if not math.isinf(value)]
        certified_everywhere = len(latencies)

        burst_per_chain = max(1, args.burst // len(_CHAIN_IDS))
        burst_chains = [
            {"chain_id": chain_id, "blocks_per_second": 1e9, "last_block": burst_per_chain} for chain_id in _CHAIN_IDS
        ]
        # Every block of the burst exists at once, so the whole burst is inside the window.
        saturation = _run(
            folder / "saturation",
            args.nodes,
            burst_chains,
            burst_per_chain * len(_CHAIN_IDS),
            300,
            overrides={"admission": {"behind_blocks": burst_per_chain + 1000}},
        )
        common = set.intersection(*(set(times) for times in saturation.times))
        last_ms = max((max(times[key] for times in saturation.times) for key in common), default=saturation.genesis_ms)
        elapsed_seconds = max(0.001, (last_ms - saturation.genesis_ms) / 1000)
        flood = _flood(args, folder / "flood", per_chain_rate) if args.byzantine else None

    result: dict[str, Any] = {
        "latency_ms": {
            "p50": round(_percentile(latencies, 0.50), 1) if latencies else None,
            "p99": round(_percentile(latencies, 0.99), 1) if latencies else None,
        },
        "certified_per_second": round(len(common) / elapsed_seconds, 1),
        "bytes_per_certificate": round(latency.published / certified_everywhere) if certified_everywhere else None,
        "nodes": args.nodes,
        "rate": args.rate,
        "observations": expected,
        "certified_on_all_nodes": certified_everywhere,
        "saturation_observations": burst_per_chain * len(_CHAIN_IDS),
        "saturation_certified_on_all_nodes": len(common),
        "honest_cpu_cores_without_flood": _cores(latency),
    }
    if flood is not None:
        result["flood"] = flood
    print(json.dumps(result))
    return 0
