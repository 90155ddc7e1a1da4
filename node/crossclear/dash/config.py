"""What the dashboard watches: nodes (gRPC and metrics addresses), chains, the backtest report.

A configuration comes either from the running devnet's manifest (every node, its metrics URL,
every chain's RPC and vault, the node set's threshold) or from the command line
(`--nodes HOST:PORT,...`, optionally `--metrics URL,...` and `--chain ...`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crossclear._errors import UsageError

_ENDPOINT = re.compile(r"^[A-Za-z0-9.\-\[\]:]+:\d{1,5}$")
_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")


@dataclass(frozen=True)
class NodeTarget:
    """One node the dashboard reads."""

    name: str
    """How the page names it ("node-0", or its gRPC address)."""
    rpc: str
    """gRPC address, HOST:PORT."""
    metrics: str | None = None
    """Prometheus URL (http://HOST:PORT/metrics), when known."""
    address: str | None = None
    """Its signer address, when known (the node also reports it in GetStatus)."""


@dataclass(frozen=True)
class ChainTarget:
    """One chain whose vault events show executed seizes and releases."""

    chain_id: int
    network: str
    rpc_url: str
    vault: str
    deploy_block: int = 0
    market: str | None = None
    """The chain's Market, whose quorum-signed close-outs are executed orders too."""
    tokens: dict[str, tuple[str, int]] = field(default_factory=dict)
    """Lower-case token address to (symbol, decimals)."""


@dataclass(frozen=True)
class DashConfig:
    """Everything the dashboard app needs to know before it starts."""

    nodes: tuple[NodeTarget, ...]
    chains: tuple[ChainTarget, ...] = ()
    threshold: int = 0
    """Signatures an order needs; 0 means floor(2n/3)+1 of the configured nodes."""
    report_path: Path = Path("docs/risk-v2/report.json")
    poll_seconds: float = 1.0
    """How often every node's status and metrics are read."""
    orders_poll_seconds: float = 2.0
    """How often seize orders and vault events are read."""
    source: str = "--nodes"
    """Where this configuration came from, shown in the page footer."""

    def quorum(self) -> int:
        if self.threshold > 0:
            return self.threshold
        return (2 * len(self.nodes)) // 3 + 1


def parse_nodes(nodes_text: str, metrics_text: str | None = None) -> tuple[NodeTarget, ...]:
    """`HOST:PORT[,HOST:PORT...]` (and optionally the metrics URLs in the same order)."""
    addresses = [part.strip() for part in nodes_text.split(",") if part.strip()]
    if not addresses:
        raise UsageError("--nodes: give at least one HOST:PORT")
    for address in addresses:
        if not _ENDPOINT.match(address):
            raise UsageError(f"--nodes: {address!r} is not HOST:PORT")
    if len(set(addresses)) != len(addresses):
        raise UsageError("--nodes: a node is listed twice")
    metrics: list[str | None] = [None] * len(addresses)
    if metrics_text:
        urls = [part.strip() for part in metrics_text.split(",")]
        if len(urls) != len(addresses):
            raise UsageError(f"--metrics: give one URL per node ({len(addresses)}), in the order of --nodes; got {len(urls)}")
        for url in urls:
            if not url.startswith("http://"):
                raise UsageError(f"--metrics: {url!r} is not an http:// URL")
        metrics = list(urls)
    return tuple(NodeTarget(name=address, rpc=address, metrics=url) for address, url in zip(addresses, metrics))


def parse_chain(text: str) -> ChainTarget:
    """`CHAIN_ID=RPC_URL,VAULT` (for executed orders when no devnet manifest is used)."""
    try:
        chain_text, rest = text.split("=", 1)
        rpc_url, vault = rest.rsplit(",", 1)
        chain_id = int(chain_text)
    except ValueError:
        raise UsageError(f"--chain {text!r}: expected CHAIN_ID=RPC_URL,VAULT") from None
    if not _ADDRESS.match(vault.strip()):
        raise UsageError(f"--chain {text!r}: {vault!r} is not a 0x vault address")
    if not rpc_url.startswith(("http://", "https://")):
        raise UsageError(f"--chain {text!r}: the RPC URL must start with http:// or https://")
    return ChainTarget(chain_id=chain_id, network=f"chain {chain_id}", rpc_url=rpc_url, vault=vault.strip())


def from_manifest(manifest: dict[str, Any], path: Path, report_path: Path) -> DashConfig:
    """Every node, chain and the threshold of a devnet manifest."""
    nodes = tuple(
        NodeTarget(name=str(node["name"]), rpc=str(node["rpc"]), metrics=node.get("metrics"), address=node.get("address"))
        for node in manifest.get("nodes", [])
    )
    if not nodes:
        raise UsageError(f"{path}: the devnet runs no nodes; start it with nodes or pass --nodes HOST:PORT")
    chains = []
    for chain in manifest.get("chains", []):
        contracts = chain.get("contracts", {})
        tokens = {
            str(token["address"]).lower(): (symbol, int(token["decimals"])) for symbol, token in contracts.get("tokens", {}).items()
        }
        chains.append(
            ChainTarget(
                chain_id=int(chain["chain_id"]),
                network=str(chain["network"]),
                rpc_url=str(chain["rpc_url"]),
                vault=str(contracts["vault"]),
                deploy_block=int(contracts.get("deploy_block", 0)),
                market=str(contracts["market"]) if contracts.get("market") else None,
                tokens=tokens,
            )
        )
    threshold = int(manifest.get("node_set", {}).get("threshold", 0))
    return DashConfig(nodes=nodes, chains=tuple(chains), threshold=threshold, report_path=report_path, source=f"devnet manifest {path}")
