"""`crossclear bench attest`: latency and throughput of certificates across node processes.

Two runs, each on fresh stores with N nodes as separate processes on 127.0.0.1:
1. latency: synthetic chains produce `--rate` observations per second in total for
   `--seconds`; each observation's latency is from its block's scheduled time to the moment
   the *last* node stored its certificate;
2. saturation: `--burst` observations are all available at once; throughput is how many
   were certified on every node per second, from release until the last one.
`bytes_per_certificate` is the gossip envelope bytes all nodes originated in the latency run
(attestations and heartbeats, before libp2p framing and relay copies) per certificate.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path
from typing import Any

from crossclear._errors import UsageError
from crossclear.attest._cluster import ProcessCluster
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


def _run(folder: Path, nodes: int, chains: list[dict[str, Any]], expected: int, timeout_seconds: float) -> tuple[
    int, list[dict[tuple[int, int], int]], int
]:
    cluster = ProcessCluster(folder, nodes, chains)
    try:
        genesis_ms = cluster.start_all_and_go()
        deadline = time.monotonic() + timeout_seconds
        while time.monotonic() < deadline:
            counts = [_count(cluster.store_path(index)) for index in range(nodes)]
            if min(counts) >= expected:
                break
            time.sleep(0.2)
    finally:
        cluster.stop_all()
    published = sum(int(cluster.stats(index).get("published_bytes", 0)) for index in range(nodes))
    return genesis_ms, [_certified_times(cluster.store_path(index)) for index in range(nodes)], published


def _count(path: Path) -> int:
    store = AttestationStore(path)
    try:
        return store.certificate_count()
    finally:
        store.close()


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))]


def _handle(args: argparse.Namespace) -> int:
    if args.nodes < 1 or args.nodes > 16:
        raise UsageError(f"--nodes {args.nodes}: expected 1..16")
    if not 0 < args.rate <= 1000 or not 1 <= args.seconds <= 600 or not 1 <= args.burst <= 100_000:
        raise UsageError("--rate must be in (0, 1000], --seconds in [1, 600], --burst in [1, 100000]")
    per_chain_rate = args.rate / len(_CHAIN_IDS)
    blocks_per_chain = max(1, int(per_chain_rate * args.seconds))
    with tempfile.TemporaryDirectory(prefix="crossclear-bench-attest-") as temporary:
        folder = Path(temporary)
        latency_chains = [
            {"chain_id": chain_id, "blocks_per_second": per_chain_rate, "last_block": blocks_per_chain}
            for chain_id in _CHAIN_IDS
        ]
        expected = blocks_per_chain * len(_CHAIN_IDS)
        genesis_ms, per_node, published = _run(
            folder / "latency", args.nodes, latency_chains, expected, args.seconds + 60
        )
        latencies = []
        for chain in latency_chains:
            schedule = SyntheticChain(int(chain["chain_id"]), genesis_ms, per_chain_rate, blocks_per_chain)
            for block in range(1, blocks_per_chain + 1):
                key = (schedule.chain_id, block)
                if all(key in times for times in per_node):
                    latencies.append(max(times[key] for times in per_node) - schedule.block_time_ms(block))
        certified_everywhere = len(latencies)

        burst_per_chain = max(1, args.burst // len(_CHAIN_IDS))
        burst_chains = [
            {"chain_id": chain_id, "blocks_per_second": 1e9, "last_block": burst_per_chain} for chain_id in _CHAIN_IDS
        ]
        burst_genesis, burst_nodes, _ = _run(
            folder / "saturation", args.nodes, burst_chains, burst_per_chain * len(_CHAIN_IDS), 300
        )
        common = set.intersection(*(set(times) for times in burst_nodes))
        last_ms = max((max(times[key] for times in burst_nodes) for key in common), default=burst_genesis)
        elapsed_seconds = max(0.001, (last_ms - burst_genesis) / 1000)

    result = {
        "latency_ms": {
            "p50": round(_percentile(latencies, 0.50), 1) if latencies else None,
            "p99": round(_percentile(latencies, 0.99), 1) if latencies else None,
        },
        "certified_per_second": round(len(common) / elapsed_seconds, 1),
        "bytes_per_certificate": round(published / certified_everywhere) if certified_everywhere else None,
        "nodes": args.nodes,
        "rate": args.rate,
        "observations": expected,
        "certified_on_all_nodes": certified_everywhere,
        "saturation_observations": burst_per_chain * len(_CHAIN_IDS),
        "saturation_certified_on_all_nodes": len(common),
    }
    print(json.dumps(result))
    return 0
