"""A node's configuration: one TOML file plus `CROSSCLEAR_*` environment overrides.

Every key, its meaning and its default are listed in docs/node-config.md. Loading checks
everything before the node starts and fails with one line naming the file and the key.

Environment overrides use double underscores for nesting, so `CROSSCLEAR_RPC__LISTEN=
127.0.0.1:6000` replaces `[rpc] listen` and `CROSSCLEAR_CHAINS__DEVNET_A__RPC_URL` replaces
`rpc_url` of `[chains.devnet-a]` (underscores in a name match dashes too). A value is read as
a TOML value when it parses as one (numbers, booleans, arrays), and as a string otherwise.
"""

from __future__ import annotations

import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_utils.address import is_address, to_checksum_address

from crossclear._errors import UsageError
from crossclear.chains.config import ChainConfig, ChainConfigError
from crossclear.chains.registry import chain_config

ENVIRONMENT_PREFIX = "CROSSCLEAR_"


class ConfigError(UsageError):
    """The configuration is invalid; the message names the file and the key."""


@dataclass(frozen=True)
class Endpoint:
    """A TCP endpoint on the loopback interface."""

    host: str
    """Always 127.0.0.1 (crossclear never listens elsewhere)."""
    port: int
    """Port; 0 lets the OS pick a free one."""

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class CollateralAsset:
    """A collateral asset and the token that carries it on each chain."""

    name: str
    """Asset name, as in the risk file."""
    decimals: int
    """Token decimals (the same on every chain)."""
    tokens: Mapping[str, str]
    """Chain name to token address."""


@dataclass(frozen=True)
class Feed:
    """A PriceFeed contract the node reads a price from."""

    name: str
    """Underlying or asset name the feed prices."""
    chain: str
    """Chain name the feed lives on."""
    address: str
    """The PriceFeed contract's address."""
    heartbeat_seconds: float
    """A price older than this is stale: margin is not fresh and releases stop."""


@dataclass(frozen=True)
class NodeConfig:
    """Everything one node needs to run."""

    name: str
    """The node's name in logs and status."""
    private_key: bytes = field(repr=False)
    """secp256k1 key the node signs attestations and vault orders with."""
    data_dir: Path
    """Holds the node's SQLite file."""
    clearinghouse_domain: int
    """Claims must be bound to this domain; proofs for other deployments are refused."""
    rpc_listen: Endpoint
    """Public gRPC API."""
    rpc_peers: tuple[str, ...]
    """Other nodes' gRPC API (host:port), asked for release signatures."""
    rpc_max_receive_bytes: int
    """Largest gRPC request accepted."""
    metrics_listen: Endpoint | None
    """Prometheus text endpoint; None disables it."""
    p2p_listen: Endpoint
    """libp2p TCP listen address."""
    p2p_bootstrap: tuple[str, ...]
    """Multiaddresses of peers to dial at start."""
    sync_listen: Endpoint
    """This node's Sync gRPC service (catch-up for peers)."""
    sync_peers: tuple[str, ...]
    """Peers' Sync services (host:port), used to catch up after downtime."""
    node_set: tuple[str, ...]
    """Signer addresses of every node in the set (this node's included)."""
    risk_file: Path
    """RISK JSON: vols, scan ranges, haircut inputs, parameters, starting prices."""
    verification_key: Path
    """Groth16 verification key of the claim circuit."""
    chains: Mapping[str, ChainConfig]
    """Chains by name: the keys the node reads, and each chain's whole table for its adapter kind."""
    collateral: Mapping[str, CollateralAsset]
    """Collateral assets by name."""
    underlyings: Mapping[str, Mapping[str, str]]
    """Underlying name to (chain name to the address Market contracts use for it)."""
    feeds: Mapping[str, Feed]
    """Price feeds by underlying or asset name."""
    liquidation_recipient: str | None = None
    """Where seized collateral goes; the same on every node (None: this node signs no seizes)."""
    price_band: float = 0.05
    """A trade's price may differ from the certified mark at its block by at most this fraction."""
    settlement_asset: str = "USDC"
    """Collateral asset variation margin and trade cash are paid in."""
    insurance_fund: str | None = None
    """Address whose claims seed the insurance fund (None: the fund holds only rounding residue)."""
    close_out_discount_bps: int = 500
    """Largest discount a close-out auction reaches, and the fund's discount on a defaulter's collateral."""
    risk_model: str = "grid"
    """Portfolio margin methodology: "grid" (v1) or "fhs" (v2, crossclear.risk.live)."""
    history_file: Path | None = None
    """HISTORY CSV the "fhs" model starts from (certified daily closes extend it)."""

    @property
    def address(self) -> str:
        """The node's signer address."""
        return str(Account.from_key(self.private_key).address)

    @property
    def database(self) -> Path:
        """The node's one SQLite file."""
        return self.data_dir / "node.sqlite"


def _apply_environment(document: dict[str, Any], environ: Mapping[str, str]) -> None:
    for variable, raw in sorted(environ.items()):
        # Only SECTION__KEY names are overrides; other CROSSCLEAR_* variables (the devnet's
        # state folder, tool paths) are not node settings.
        if not variable.startswith(ENVIRONMENT_PREFIX) or "__" not in variable:
            continue
        path = [part.lower() for part in variable[len(ENVIRONMENT_PREFIX) :].split("__")]
        if len(path) < 2 or not all(path):
            raise ConfigError(f"environment {variable}: expected CROSSCLEAR_SECTION__KEY (double underscores)")
        table = document
        for part in path[:-1]:
            match = next((key for key in table if key.replace("-", "_").lower() == part), part)
            table = table.setdefault(match, {})
            if not isinstance(table, dict):
                raise ConfigError(f"environment {variable}: {part} is not a table")
        try:
            value: Any = tomllib.loads(f"value = {raw}")["value"]
        except tomllib.TOMLDecodeError:
            value = raw
        table[path[-1]] = value


class _Reader:
    """Reads one table, naming `file: section.key` in every error."""

    def __init__(self, source: str, section: str, table: Any) -> None:
        if not isinstance(table, dict):
            raise ConfigError(f"{source}: [{section}] must be a table")
        self.source, self.section, self.table = source, section, table
        self.used: set[str] = set()

    def fail(self, key: str, problem: str) -> ConfigError:
        return ConfigError(f"{self.source}: {self.section}.{key}: {problem}")

    def get(self, key: str, default: Any = None, required: bool = False) -> Any:
        self.used.add(key)
        if key not in self.table:
            if required:
                raise self.fail(key, "is required")
            return default
        return self.table[key]

    def string(self, key: str, default: str | None = None, required: bool = False) -> str:
        value = self.get(key, default, required)
        if not isinstance(value, str) or not value:
            raise self.fail(key, f"must be a non-empty string, got {value!r}")
        return value

    def integer(self, key: str, default: int | None = None, minimum: int = 0, required: bool = False) -> int:
        value = self.get(key, default, required)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self.fail(key, f"must be an integer >= {minimum}, got {value!r}")
        return value

    def number(self, key: str, default: float, required: bool = False) -> float:
        value = self.get(key, default, required)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            raise self.fail(key, f"must be a positive number, got {value!r}")
        return float(value)

    def strings(self, key: str, default: list[str] | None = None) -> tuple[str, ...]:
        value = self.get(key, default if default is not None else [])
        if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
            raise self.fail(key, f"must be a list of strings, got {value!r}")
        return tuple(value)

    def endpoint(self, key: str, default: str) -> Endpoint:
        text = self.string(key, default)
        host, _, port = text.rpartition(":")
        if host not in ("127.0.0.1", "localhost") or not port.isdigit() or int(port) > 65535:
            raise self.fail(key, f"must be 127.0.0.1:PORT (crossclear listens on loopback only), got {text!r}")
        return Endpoint("127.0.0.1", int(port))

    def address(self, key: str, value: Any) -> str:
        if not isinstance(value, str) or not is_address(value):
            raise self.fail(key, f"must be a 0x address, got {value!r}")
        return str(to_checksum_address(value))

    def finish(self) -> None:
        unknown = sorted(set(self.table) - self.used)
        if unknown:
            raise self.fail(unknown[0], "is not a known key (see docs/node-config.md)")


def _path(base: Path, text: str) -> Path:
    path = Path(text).expanduser()
    return path if path.is_absolute() else (base / path).resolve()


def _read_key(reader: _Reader, base: Path) -> bytes:
    key_file = _path(base, reader.string("key_file", required=True))
    try:
        text = key_file.read_text().strip()
    except OSError as error:
        raise reader.fail("key_file", f"cannot read {key_file}: {error.strerror or error}") from None
    hex_text = text[2:] if text.startswith("0x") else text
    try:
        key = bytes.fromhex(hex_text)
        Account.from_key(key)
    except ValueError:
        raise reader.fail("key_file", f"{key_file} does not hold a 32-byte hex secp256k1 key") from None
    if len(key) != 32:
        raise reader.fail("key_file", f"{key_file} does not hold a 32-byte hex secp256k1 key")
    return key


def load_config(path: Path, environ: Mapping[str, str] | None = None) -> NodeConfig:
    """Read, override from the environment, and check a node's TOML file."""
    source = str(path)
    try:
        document = tomllib.loads(path.read_text())
    except OSError as error:
        raise ConfigError(f"{source}: cannot read: {error.strerror or error}") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{source}: not valid TOML: {error}") from None
    _apply_environment(document, os.environ if environ is None else environ)
    base = path.resolve().parent
    known_sections = {"node", "rpc", "metrics", "p2p", "node_set", "margin", "claims", "liquidations", "clearing", "chains", "collateral", "underlyings", "feeds"}
    unknown = sorted(set(document) - known_sections)
    if unknown:
        raise ConfigError(f"{source}: [{unknown[0]}] is not a known section (see docs/node-config.md)")

    node = _Reader(source, "node", document.get("node", {}))
    name = node.string("name", required=True)
    private_key = _read_key(node, base)
    data_dir = _path(base, node.string("data_dir", f"data/{name}"))
    domain = node.integer("clearinghouse_domain", required=True, minimum=1)
    node.finish()

    rpc = _Reader(source, "rpc", document.get("rpc", {}))
    rpc_listen = rpc.endpoint("listen", "127.0.0.1:50051")
    peers = rpc.strings("peers")
    for peer in peers:
        host, _, port = peer.rpartition(":")
        if host not in ("127.0.0.1", "localhost") or not port.isdigit():
            raise rpc.fail("peers", f"each peer must be 127.0.0.1:PORT, got {peer!r}")
    max_receive = rpc.integer("max_receive_bytes", 1 << 20, minimum=1024)
    rpc.finish()

    metrics = _Reader(source, "metrics", document.get("metrics", {}))
    metrics_text = metrics.get("listen", "127.0.0.1:0")
    metrics_listen = None if metrics_text == "" else metrics.endpoint("listen", "127.0.0.1:0")
    metrics.finish()

    p2p = _Reader(source, "p2p", document.get("p2p", {}))
    p2p_listen = p2p.endpoint("listen", "127.0.0.1:0")
    bootstrap = p2p.strings("bootstrap")
    for address in bootstrap:
        if not address.startswith("/ip4/127.0.0.1/tcp/"):
            raise p2p.fail("bootstrap", f"peers must be /ip4/127.0.0.1/tcp/PORT/p2p/ID multiaddresses, got {address!r}")
    sync_listen = p2p.endpoint("sync_listen", "127.0.0.1:0")
    sync_peers = p2p.strings("sync_peers")
    p2p.finish()

    node_set_reader = _Reader(source, "node_set", document.get("node_set", {}))
    signers = tuple(node_set_reader.address("signers", s) for s in node_set_reader.strings("signers"))
    if not signers:
        raise node_set_reader.fail("signers", "must list every node's signer address")
    if len(set(signers)) != len(signers):
        raise node_set_reader.fail("signers", "lists a signer twice")
    own = str(Account.from_key(private_key).address)
    if own not in signers:
        raise node_set_reader.fail("signers", f"does not include this node's own address {own} (from node.key_file)")
    node_set_reader.finish()

    margin = _Reader(source, "margin", document.get("margin", {}))
    risk_file = _path(base, margin.string("risk_file", required=True))
    if not risk_file.is_file():
        raise margin.fail("risk_file", f"{risk_file} does not exist")
    default_heartbeat = margin.number("price_heartbeat_seconds", 3600.0)
    price_band = margin.number("price_band", 0.05)
    if not 0 < price_band < 1:
        raise margin.fail("price_band", f"must be a fraction between 0 and 1, got {price_band}")
    risk_model = margin.string("model", "grid")
    history_text = margin.get("history_file")
    history_file = None if history_text is None else _path(base, margin.string("history_file"))
    if risk_model not in ("grid", "fhs"):
        raise margin.fail("model", f'must be "grid" or "fhs", got {risk_model!r}')
    if risk_model == "fhs" and history_file is None:
        raise margin.fail("history_file", 'is required when model = "fhs" (a HISTORY CSV of daily closes, docs/node-config.md)')
    margin.finish()

    claims = _Reader(source, "claims", document.get("claims", {}))
    from crossclear.zk.artifacts import default_artifacts

    verification_key = _path(base, claims.string("verification_key", str(default_artifacts().verification_key)))
    if not verification_key.is_file():
        raise claims.fail("verification_key", f"{verification_key} does not exist")
    claims.finish()

    liquidations = _Reader(source, "liquidations", document.get("liquidations", {}))
    recipient_value = liquidations.get("recipient")
    recipient = None if recipient_value is None else liquidations.address("recipient", recipient_value)
    liquidations.finish()

    clearing = _Reader(source, "clearing", document.get("clearing", {}))
    settlement_asset = clearing.string("settlement_asset", "USDC")
    fund_value = clearing.get("insurance_fund")
    insurance_fund = None if fund_value is None else clearing.address("insurance_fund", fund_value)
    discount_bps = clearing.integer("close_out_discount_bps", 500, minimum=1)
    if discount_bps >= 10_000:
        raise clearing.fail("close_out_discount_bps", f"must be below 10000 (100%), got {discount_bps}")
    clearing.finish()

    chains_table = document.get("chains", {})
    if not isinstance(chains_table, dict) or not chains_table:
        raise ConfigError(f"{source}: [chains.NAME] must define at least one chain")
    for chain_name, table in chains_table.items():
        if not isinstance(table, dict):
            raise ConfigError(f"{source}: [chains.{chain_name}] must be a table")
    try:
        # Any kind: "evm" is checked in full here, a plugin kind's own keys when its adapter is built.
        chains = {chain_name: chain_config(chain_name, table) for chain_name, table in chains_table.items()}
    except ChainConfigError as error:
        raise ConfigError(f"{source}: {error}") from None

    collateral: dict[str, CollateralAsset] = {}
    for asset_name, table in document.get("collateral", {}).items():
        reader = _Reader(source, f"collateral.{asset_name}", table)
        decimals = reader.integer("decimals", required=True)
        tokens_table = reader.get("tokens", required=True)
        if not isinstance(tokens_table, dict) or not tokens_table:
            raise reader.fail("tokens", "must map chain names to token addresses")
        tokens = {}
        for chain_name, token in tokens_table.items():
            if chain_name not in chains:
                raise reader.fail("tokens", f"names chain {chain_name!r}, which [chains] does not define")
            tokens[chain_name] = reader.address(f"tokens.{chain_name}", token)
        reader.finish()
        collateral[asset_name] = CollateralAsset(asset_name, decimals, tokens)

    underlyings: dict[str, dict[str, str]] = {}
    for underlying_name, table in document.get("underlyings", {}).items():
        reader = _Reader(source, f"underlyings.{underlying_name}", table)
        ids = reader.get("ids", required=True)
        if not isinstance(ids, dict):
            raise reader.fail("ids", "must map chain names to the address Market contracts use")
        for chain_name in ids:
            if chain_name not in chains:
                raise reader.fail("ids", f"names chain {chain_name!r}, which [chains] does not define")
        underlyings[underlying_name] = {c: reader.address(f"ids.{c}", a) for c, a in ids.items()}
        reader.finish()

    feeds: dict[str, Feed] = {}
    for feed_name, table in document.get("feeds", {}).items():
        reader = _Reader(source, f"feeds.{feed_name}", table)
        chain_name = reader.string("chain", required=True)
        if chain_name not in chains:
            raise reader.fail("chain", f"{chain_name!r} is not defined in [chains]")
        address = reader.address("address", reader.get("address", required=True))
        heartbeat = reader.number("heartbeat_seconds", default_heartbeat)
        reader.finish()
        feeds[feed_name] = Feed(feed_name, chain_name, address, heartbeat)

    try:
        from crossclear.risk.live import parse_risk_file  # v1's inputs; v2's params (fhs_*, forecast_*) beside them

        risk, _ = parse_risk_file(risk_file)
    except (UsageError, ValueError) as error:
        raise ConfigError(f"{source}: margin.risk_file: {error}") from None
    if risk_model == "fhs" and history_file is not None:  # risk v2: the HISTORY against the RISK file
        from crossclear.risk.live import check_history_file

        try:
            check_history_file(history_file, risk_file)
        except UsageError as error:
            raise ConfigError(f"{source}: margin.history_file: {error}") from None
    unpriced = sorted(set(risk.market.underlying_names + risk.market.asset_names) - set(feeds))
    if unpriced:
        raise ConfigError(f"{source}: [feeds.{unpriced[0]}] is missing: every underlying and asset of the risk file needs a price feed")
    if settlement_asset not in collateral:
        raise ConfigError(f"{source}: clearing.settlement_asset: {settlement_asset!r} is not a [collateral] asset")

    return NodeConfig(
        name=name,
        private_key=private_key,
        data_dir=data_dir,
        clearinghouse_domain=domain,
        rpc_listen=rpc_listen,
        rpc_peers=peers,
        rpc_max_receive_bytes=max_receive,
        metrics_listen=metrics_listen,
        p2p_listen=p2p_listen,
        p2p_bootstrap=bootstrap,
        sync_listen=sync_listen,
        sync_peers=sync_peers,
        node_set=signers,
        risk_file=risk_file,
        verification_key=verification_key,
        chains=chains,
        collateral=collateral,
        underlyings=underlyings,
        feeds=feeds,
        liquidation_recipient=recipient,
        price_band=price_band,
        settlement_asset=settlement_asset,
        insurance_fund=insurance_fund,
        close_out_discount_bps=discount_bps,
        risk_model=risk_model,
        history_file=history_file,
    )
