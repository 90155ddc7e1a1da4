"""Bring up K anvil chains with the contracts deployed, and take them down again.

`start_devnet` returns a `RunningDevnet` whose `manifest` is what `devnet.json` holds; its
`stop()` kills every chain. Chains deploy in parallel threads, each on an automining anvil,
then switch to interval mining (1 s blocks by default) once the contracts are in place.
"""

from __future__ import annotations

import string
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crossclear.chains.vault_orders import threshold
from crossclear.devnet.accounts import DevAccount, funded_accounts, node_keys
from crossclear.devnet.anvil import Anvil
from crossclear.devnet.deploy import Deployment, deploy_devnet
from crossclear.devnet.manifest import MANIFEST_VERSION

#: Chain id of the first devnet chain; the others count up from it.
FIRST_CHAIN_ID = 31001
#: Confirmation depth the manifest suggests to adapters (2 s at 1 s blocks).
DEVNET_CONFIRMATIONS = 2
#: How often adapters poll devnet chains; a quarter block keeps observation latency near the finality wait.
DEVNET_POLL_INTERVAL_SECONDS = 0.25
#: Node-set size the vaults are deployed with (the node issue's default of 4 nodes).
DEVNET_NODE_SET_SIZE = 4
MAX_CHAINS = 8


@dataclass(frozen=True)
class ChainPlan:
    """One chain to start."""

    network: str
    """Name, e.g. "devnet-a"."""
    chain_id: int
    """EIP-155 chain id."""


def plan_chains(count: int) -> tuple[ChainPlan, ...]:
    """Names devnet-a, devnet-b, ... with chain ids 31001, 31002, ..."""
    return tuple(ChainPlan(f"devnet-{string.ascii_lowercase[i]}", FIRST_CHAIN_ID + i) for i in range(count))


@dataclass
class RunningDevnet:
    """Chains that run now, and the manifest describing them."""

    chains: list[tuple[ChainPlan, Anvil, Deployment]] = field(default_factory=list)
    """Each started chain with its anvil and deployment."""
    manifest: dict[str, Any] = field(default_factory=dict)
    """The manifest contents."""

    def stop(self) -> None:
        """Stop every chain (idempotent)."""
        for _, anvil, _ in self.chains:
            anvil.stop()


def start_devnet(
    chain_count: int,
    state_dir: Path,
    *,
    block_time: int = 1,
    progress: Callable[[str], None] = print,
    node_set_size: int = DEVNET_NODE_SET_SIZE,
) -> RunningDevnet:
    """Start `chain_count` chains, deploy, switch to `block_time` blocks; stops all on any failure."""
    plans = plan_chains(chain_count)
    accounts = funded_accounts()
    nodes = node_keys(node_set_size)
    for plan in plans:
        (state_dir / f"{plan.network}.log").unlink(missing_ok=True)  # a fresh log per run
    anvils = {plan.network: Anvil(plan.chain_id, log_path=state_dir / f"{plan.network}.log") for plan in plans}
    running = RunningDevnet()
    try:
        for plan in plans:
            started = time.monotonic()
            anvils[plan.network].start()
            progress(f"  started {plan.network} (chain id {plan.chain_id}) on {anvils[plan.network].rpc_url} in {time.monotonic() - started:.1f} s")
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=chain_count) as pool:
            futures = {
                plan.network: pool.submit(
                    deploy_devnet, anvils[plan.network].rpc_url, [n.address for n in nodes], [a.address for a in accounts]
                )
                for plan in plans
            }
            deployments = {network: future.result() for network, future in futures.items()}
        progress(f"  deployed contracts on {chain_count} chain(s) in {time.monotonic() - started:.1f} s")
        for plan in plans:
            anvil = anvils[plan.network]
            # Automine made deployment instant; from here on, blocks arrive like a real chain's.
            anvil.rpc("evm_setAutomine", [False])
            anvil.rpc("evm_setIntervalMining", [block_time])
            running.chains.append((plan, anvil, deployments[plan.network]))
        running.manifest = _manifest(running, accounts, nodes, block_time)
        return running
    except BaseException:
        for anvil in anvils.values():
            anvil.stop()
        raise


def _manifest(running: RunningDevnet, accounts: tuple[DevAccount, ...], nodes: tuple[DevAccount, ...], block_time: int) -> dict[str, Any]:
    chains = []
    for plan, anvil, deployment in running.chains:
        chains.append(
            {
                "network": plan.network,
                "chain_id": plan.chain_id,
                "rpc_url": anvil.rpc_url,
                "ws_url": anvil.ws_url,
                "pid": anvil.pid,
                "log": str(anvil.log_path),
                "block_time_seconds": block_time,
                "contracts": deployment.as_json(),
                # Ready for EvmChainConfig.from_mapping / a node's [chains.<network>] table.
                "adapter_config": {
                    "kind": "evm",
                    "chain_id": plan.chain_id,
                    "rpc_url": anvil.rpc_url,
                    "finality": DEVNET_CONFIRMATIONS,
                    "poll_interval_seconds": DEVNET_POLL_INTERVAL_SECONDS,
                    "vault": deployment.vault,
                    "markets": [deployment.market],
                    "price_feeds": [token.price_feed for token in deployment.tokens],
                    "start_block": deployment.deploy_block,
                },
            }
        )
    return {
        "version": MANIFEST_VERSION,
        "note": "DEV-ONLY: every private key here is public knowledge",
        "chains": chains,
        "accounts": [{"address": a.address, "private_key": "0x" + a.private_key.hex()} for a in accounts],
        "node_set": {
            "threshold": threshold(len(nodes)),
            "signers": [{"address": n.address, "private_key": "0x" + n.private_key.hex()} for n in nodes],
        },
        "nodes": [],
    }


#: Where `devnet up` serves the dashboard unless that port is taken (then any free port).
DEVNET_DASH_PORT = 8700
#: How long the dashboard may take to start serving.
DASH_START_TIMEOUT_SECONDS = 30.0


def start_dashboard(state_dir: Path, port: int = DEVNET_DASH_PORT, progress: Callable[[str], None] = print) -> Any:
    """Start `crossclear dash` for the devnet whose manifest is in `state_dir`, on 127.0.0.1:`port`
    (any free port when `port` is 0 or taken).

    Returns the running process (a `devnet.nodes.ManagedProcess` whose `details` hold `url`,
    `pid` and `log`), or None when it did not come up: the devnet runs on without it, and says so."""
    import re

    from crossclear.devnet.nodes import _spawn

    log_path = state_dir / "dash.log"
    started = time.monotonic()
    for attempt in ([port, 0] if port != 0 else [0]):
        log_path.unlink(missing_ok=True)
        managed = _spawn("dash", ["dash", "--state-dir", str(state_dir), "--port", str(attempt)], log_path)
        deadline = time.monotonic() + DASH_START_TIMEOUT_SECONDS
        # The dashboard prints its URL once it holds its port; it exits at once when the port is taken.
        while managed.running and time.monotonic() < deadline:
            match = re.search(r"serving (http://127\.0\.0\.1:\d+/)", log_path.read_text() if log_path.exists() else "")
            if match:
                managed.details = {"url": match.group(1), "pid": managed.process.pid, "log": str(log_path)}
                progress(f"  started the dashboard in {time.monotonic() - started:.1f} s")
                return managed
            time.sleep(0.1)
        managed.stop()
    progress(f"  the dashboard did not start; see {log_path} (the devnet runs without it)")
    return None
