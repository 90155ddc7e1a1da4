"""One attestation node with synthetic chains, as its own OS process (tests and the benchmark).

    python -m crossclear.attest._process CONFIG.json

Prints `ready`, then `connected N` once every bootstrap peer is connected (or after 30 s; N is
how many are), waits for the start file (which holds the chains' genesis time in ms), then
attests blocks until SIGTERM, when it stops cleanly and writes its figures to the stats file.

Optional keys: `listen_host` (a network namespace's address; peers then carry a `host`),
`applied_file` (certified blocks applied per chain in block order, one line each, as the
processor applies them), `flood` (this member floods instead of attesting; a factor of the
honest nodes' budgets), `admission` (`behind_blocks`, `ahead_blocks`), `gossip` (GossipSettings
fields), `storage_share`, `prune_depth_blocks`, `prune_seconds`, `silent_peer_seconds`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import resource
import signal
import sys
import time
from pathlib import Path
from typing import IO, Any

from crossclear._net import LOOPBACK
from crossclear.attest._admission import Admission
from crossclear.attest._aggregator import Certificate
from crossclear.attest._flood import FloodStats, run_flood
from crossclear.attest._keys import NodeKey
from crossclear.attest._node import AttestationNode, NodeConfig
from crossclear.attest._node_set import NodeSet
from crossclear.attest._synthetic import SyntheticChain, run_synthetic_adapter
from crossclear.p2p import GossipSettings, PeerAddress, now_ms

#: The emitter every synthetic chain's observations are about.
SYNTHETIC_EMITTER = SyntheticChain(chain_id=1, genesis_ms=0, blocks_per_second=1.0).emitter


class _ChainClock:
    """This process's view of each synthetic chain's head: its clock, once genesis is known."""

    def __init__(self, raw_chains: list[dict[str, Any]]) -> None:
        self._raw = raw_chains
        self.chains: dict[int, SyntheticChain] = {}

    def start(self, genesis_ms: int) -> None:
        for chain in self._raw:
            synthetic = SyntheticChain(
                chain_id=int(chain["chain_id"]),
                genesis_ms=genesis_ms,
                blocks_per_second=float(chain["blocks_per_second"]),
                last_block=int(chain.get("last_block", 2**62)),
            )
            self.chains[synthetic.chain_id] = synthetic

    def head(self, chain_id: int) -> int | None:
        chain = self.chains.get(chain_id)
        return None if chain is None else chain.head(now_ms())


def node_config(raw: dict[str, Any], clock: _ChainClock | None = None) -> NodeConfig:
    admission = raw.get("admission", {})
    gossip = GossipSettings(**raw.get("gossip", {}))
    return NodeConfig(
        key=NodeKey(bytes.fromhex(raw["key"])),
        node_set=NodeSet(frozenset(bytes.fromhex(member) for member in raw["members"])),
        store_path=Path(raw["store"]),
        p2p_port=int(raw["p2p_port"]),
        bootstrap=tuple(
            PeerAddress(peer["peer_id"], int(peer["port"]), peer.get("host", LOOPBACK)) for peer in raw["bootstrap"]
        ),
        sync_port=int(raw["sync_port"]),
        sync_peers=tuple(raw["sync_peers"]),
        chain_ids=frozenset(int(chain["chain_id"]) for chain in raw["chains"]),
        batch_delay_ms=int(raw.get("batch_delay_ms", 10)),
        catch_up_seconds=float(raw.get("catch_up_seconds", 2.0)),
        listen_host=str(raw.get("listen_host", LOOPBACK)),
        admission=Admission(
            emitters=frozenset((int(chain["chain_id"]), SYNTHETIC_EMITTER) for chain in raw["chains"]),
            behind_blocks=int(admission.get("behind_blocks", Admission.behind_blocks)),
            ahead_blocks=int(admission.get("ahead_blocks", Admission.ahead_blocks)),
        ),
        own_head=None if clock is None else clock.head,
        gossip=gossip,
        storage_share=int(raw.get("storage_share", NodeConfig.storage_share)),
        prune_depth_blocks=raw.get("prune_depth_blocks"),
        prune_seconds=float(raw.get("prune_seconds", 2.0)),
    )


class BlockOrderLog:
    """Applies certificates per chain strictly in block order, as the processor does, and
    appends each applied block to a file: "chain block root" per line. A certificate that
    arrives early waits for the blocks before it; one for a block already applied is a
    second application and is written too, so a test can see it."""

    def __init__(self, path: Path) -> None:
        self._next: dict[int, int] = {}
        self._ready: dict[int, dict[int, str]] = {}
        if path.exists():
            for line in path.read_text().splitlines():
                chain, block, _ = line.split()
                self._next[int(chain)] = max(self._next.get(int(chain), 1), int(block) + 1)
        self._file: IO[str] = open(path, "a")  # noqa: SIM115 - closed in close()

    def on_certificate(self, certificate: Certificate) -> None:
        observation = certificate.observation
        chain, block = observation.chain_id, observation.block_number
        following = self._next.setdefault(chain, 1)
        if block < following:
            self._file.write(f"{chain} {block} {observation.root.hex()}\n")
            return
        waiting = self._ready.setdefault(chain, {})
        waiting[block] = observation.root.hex()
        while following in waiting:
            self._file.write(f"{chain} {following} {waiting.pop(following)}\n")
            following += 1
        self._next[chain] = following
        self._file.flush()

    def close(self) -> None:
        self._file.close()


async def _wait_for_start_file(path: Path) -> int:
    while not path.exists():
        await asyncio.sleep(0.01)
    return int(json.loads(path.read_text())["genesis_ms"])


async def run(raw: dict[str, Any]) -> None:
    clock = _ChainClock(raw["chains"])
    node = AttestationNode(node_config(raw, clock))
    applied = BlockOrderLog(Path(raw["applied_file"])) if raw.get("applied_file") else None
    if applied is not None:
        node.certificate_listeners.append(applied.on_certificate)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    await node.start()
    print("ready", flush=True)
    deadline = time.monotonic() + 30
    while node.network.connected_peers() < len(raw["bootstrap"]) and time.monotonic() < deadline and not stop.is_set():
        await asyncio.sleep(0.05)
    print(f"connected {node.network.connected_peers()}", flush=True)
    adapter: asyncio.Task[None] | None = None
    flood_stats = FloodStats()
    waiter = asyncio.create_task(_wait_for_start_file(Path(raw["start_file"])))
    stopper = asyncio.create_task(stop.wait())
    await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
    if waiter.done():
        clock.start(waiter.result())
        chains = list(clock.chains.values())
        if raw.get("flood"):
            adapter = asyncio.create_task(run_flood(node, chains, factor=float(raw["flood"]), stats=flood_stats))
        else:
            adapter = asyncio.create_task(run_synthetic_adapter(node, chains, byzantine=bool(raw.get("byzantine"))))
        await stop.wait()
    waiter.cancel()
    stopper.cancel()
    if adapter is not None:
        adapter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await adapter
    status = node.status()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    stats = {
        "published_bytes": node.network.published_bytes,
        "dropped": status.gossip_dropped,
        "drop_cost_us": status.gossip_drop_cost_us,
        "observations_dropped": status.observations_dropped,
        "pruned_rows": status.pruned_rows,
        "database_bytes": status.database_bytes,
        "cpu_seconds": usage.ru_utime + usage.ru_stime,
        "flood": dataclasses.asdict(flood_stats),
    }
    await node.stop()
    if applied is not None:
        applied.close()
    Path(raw["stats_file"]).write_text(json.dumps(stats))


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m crossclear.attest._process CONFIG.json", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    # py-libp2p 0.8.1 logs a warning for every GRAFT a direct peer sends (each heartbeat).
    logging.getLogger("libp2p").setLevel(logging.ERROR)
    try:
        raw = json.loads(Path(argv[0]).read_text())
        node_config(raw)
    except (OSError, ValueError, KeyError) as error:
        print(f"crossclear attest node: config {argv[0]}: {error!r}", file=sys.stderr)
        return 2
    asyncio.run(run(raw))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
