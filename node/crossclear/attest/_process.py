"""One attestation node with synthetic chains, as its own OS process (tests and the benchmark).

    python -m crossclear.attest._process CONFIG.json

Prints `ready`, then `connected` once every bootstrap peer is connected (or after 30 s), waits
for the start file (which holds the chains' genesis time in ms), then attests blocks until
SIGTERM, when it stops cleanly and writes its figures to the stats file.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import sys
import time
from pathlib import Path
from typing import Any

from crossclear.attest._keys import NodeKey
from crossclear.attest._node import AttestationNode, NodeConfig
from crossclear.attest._node_set import NodeSet
from crossclear.attest._synthetic import SyntheticChain, run_synthetic_adapter
from crossclear.p2p import PeerAddress


def node_config(raw: dict[str, Any]) -> NodeConfig:
    return NodeConfig(
        key=NodeKey(bytes.fromhex(raw["key"])),
        node_set=NodeSet(frozenset(bytes.fromhex(member) for member in raw["members"])),
        store_path=Path(raw["store"]),
        p2p_port=int(raw["p2p_port"]),
        bootstrap=tuple(PeerAddress(peer["peer_id"], int(peer["port"])) for peer in raw["bootstrap"]),
        sync_port=int(raw["sync_port"]),
        sync_peers=tuple(raw["sync_peers"]),
        chain_ids=frozenset(int(chain["chain_id"]) for chain in raw["chains"]),
        batch_delay_ms=int(raw.get("batch_delay_ms", 10)),
        catch_up_seconds=float(raw.get("catch_up_seconds", 2.0)),
    )


async def _wait_for_start_file(path: Path) -> int:
    while not path.exists():
        await asyncio.sleep(0.01)
    return int(json.loads(path.read_text())["genesis_ms"])


async def run(raw: dict[str, Any]) -> None:
    node = AttestationNode(node_config(raw))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    await node.start()
    print("ready", flush=True)
    deadline = time.monotonic() + 30
    while node.network.connected_peers() < len(raw["bootstrap"]) and time.monotonic() < deadline and not stop.is_set():
        await asyncio.sleep(0.05)
    print("connected", flush=True)
    adapter: asyncio.Task[None] | None = None
    waiter = asyncio.create_task(_wait_for_start_file(Path(raw["start_file"])))
    stopper = asyncio.create_task(stop.wait())
    await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
    if waiter.done():
        genesis_ms = waiter.result()
        chains = [
            SyntheticChain(
                chain_id=int(chain["chain_id"]),
                genesis_ms=genesis_ms,
                blocks_per_second=float(chain["blocks_per_second"]),
                last_block=int(chain.get("last_block", 2**62)),
            )
            for chain in raw["chains"]
        ]
        adapter = asyncio.create_task(run_synthetic_adapter(node, chains, byzantine=bool(raw.get("byzantine"))))
        await stop.wait()
    waiter.cancel()
    stopper.cancel()
    if adapter is not None:
        adapter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await adapter
    stats = {"published_bytes": node.network.published_bytes, "dropped": node.network.dropped()}
    await node.stop()
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
