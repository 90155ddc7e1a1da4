"""Node configuration files for a local network of nodes over deployed devnet chains.

The devnet and the end-to-end tests use this to give each of N nodes its key, its ports, the
others as peers, and every chain's contracts. Underlyings are identified on-chain by their
wrapped token (ETH by WETH, BTC by WBTC) and priced by that token's PriceFeed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from crossclear._net import free_tcp_port
from crossclear.devnet.accounts import DevAccount
from crossclear.devnet.deploy import Deployment
from crossclear.p2p import peer_id_for

#: Underlying name -> the token that stands for it on-chain.
UNDERLYING_TOKENS = {"ETH": "WETH", "BTC": "WBTC"}


@dataclass(frozen=True)
class DeployedChain:
    """One devnet chain with the clearinghouse contracts on it."""

    name: str
    chain_id: int
    rpc_url: str
    deployment: Deployment


@dataclass(frozen=True)
class NodePorts:
    """The loopback ports of one node."""

    rpc: int
    p2p: int
    sync: int
    metrics: int


def allocate_ports(count: int) -> list[NodePorts]:
    """Distinct free ports for `count` nodes."""
    taken: set[int] = set()

    def fresh() -> int:
        while True:
            port = free_tcp_port()
            if port not in taken:
                taken.add(port)
                return port

    return [NodePorts(fresh(), fresh(), fresh(), fresh()) for _ in range(count)]


def _quote(items: Sequence[str]) -> str:
    return "[" + ", ".join(f'"{item}"' for item in items) + "]"


def write_node_configs(
    directory: Path,
    chains: Sequence[DeployedChain],
    keys: Sequence[DevAccount],
    risk_file: Path,
    clearinghouse_domain: int,
    ports: Sequence[NodePorts],
    finality: int = 2,
    price_heartbeat_seconds: float = 3600.0,
    liquidation_recipient: str | None = None,
    insurance_fund: str | None = None,
) -> list[Path]:
    """Write node-<i>.toml and node-<i>.key for every key; returns the config paths."""
    directory.mkdir(parents=True, exist_ok=True)
    signers = [key.address for key in keys]
    paths = []
    for index, (key, own) in enumerate(zip(keys, ports)):
        others = [p for i, p in enumerate(ports) if i != index]
        other_keys = [k for i, k in enumerate(keys) if i != index]
        bootstrap = [f"/ip4/127.0.0.1/tcp/{p.p2p}/p2p/{peer_id_for(k.private_key)}" for k, p in zip(other_keys, others)]
        (directory / f"node-{index}.key").write_text(key.private_key.hex() + "\n")
        lines = [
            "# Generated for a local devnet; keys are devnet-only.",
            "[node]",
            f'name = "node-{index}"',
            f'key_file = "node-{index}.key"',
            f'data_dir = "node-{index}"',
            f"clearinghouse_domain = {clearinghouse_domain}",
            "",
            "[rpc]",
            f'listen = "127.0.0.1:{own.rpc}"',
            f"peers = {_quote([f'127.0.0.1:{p.rpc}' for p in others])}",
            "",
            "[metrics]",
            f'listen = "127.0.0.1:{own.metrics}"',
            "",
            "[p2p]",
            f'listen = "127.0.0.1:{own.p2p}"',
            f"bootstrap = {_quote(bootstrap)}",
            f'sync_listen = "127.0.0.1:{own.sync}"',
            f"sync_peers = {_quote([f'127.0.0.1:{p.sync}' for p in others])}",
            "",
            "[node_set]",
            f"signers = {_quote(signers)}",
            "",
            "[margin]",
            f'risk_file = "{risk_file.resolve()}"',
            f"price_heartbeat_seconds = {price_heartbeat_seconds}",
            "",
        ]
        if liquidation_recipient:
            lines += ["[liquidations]", f'recipient = "{liquidation_recipient}"', ""]
        if insurance_fund:
            lines += ["[clearing]", f'insurance_fund = "{insurance_fund}"', ""]
        for chain in chains:
            deployment = chain.deployment
            feeds = [token.price_feed for token in deployment.tokens]
            lines += [
                f"[chains.{chain.name}]",
                f"chain_id = {chain.chain_id}",
                f'rpc_url = "{chain.rpc_url}"',
                f'vault = "{deployment.vault}"',
                f'markets = ["{deployment.market}"]',
                f"price_feeds = {_quote(feeds)}",
                f"finality = {finality}",
                f"start_block = {deployment.deploy_block}",
                "poll_interval_seconds = 0.2",
                "",
            ]
        symbols = {token.symbol: token for token in chains[0].deployment.tokens}
        for symbol, token in symbols.items():
            tokens = ", ".join(f'{chain.name} = "{next(t for t in chain.deployment.tokens if t.symbol == symbol).address}"' for chain in chains)
            lines += [f"[collateral.{symbol}]", f"decimals = {token.decimals}", f"tokens = {{ {tokens} }}", ""]
        for underlying, symbol in UNDERLYING_TOKENS.items():
            ids = ", ".join(f'{chain.name} = "{next(t for t in chain.deployment.tokens if t.symbol == symbol).address}"' for chain in chains)
            lines += [f"[underlyings.{underlying}]", f"ids = {{ {ids} }}", ""]
        # Prices come from the first chain's feeds; every name its token stands for.
        first = chains[0]
        for symbol, token in symbols.items():
            names = [symbol] + [u for u, s in UNDERLYING_TOKENS.items() if s == symbol]
            for name in names:
                lines += [f"[feeds.{name}]", f'chain = "{first.name}"', f'address = "{token.price_feed}"', ""]
        path = directory / f"node-{index}.toml"
        path.write_text("\n".join(lines))
        paths.append(path)
    return paths
