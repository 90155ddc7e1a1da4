"""Configuration of one EVM chain: everything needed to add a network without code.

In a node's TOML file a chain reads:

    [chains.devnet-a]
    kind = "evm"                        # adapter kind; other kinds come from entry points
    chain_id = 31001
    rpc_url = "http://127.0.0.1:8545"
    finality = 2                        # confirmations, or "finalized" / "safe" (block tags)
    vault = "0x..."
    markets = ["0x..."]
    price_feeds = ["0x..."]
    start_block = 0                     # first block to scan on a fresh cursor

`EvmChainConfig.from_mapping(name, table)` checks every key and names the one that is wrong.

Whatever the kind, the node itself reads a few keys of every chain table (`ChainConfig`:
chain id, vault, markets, price feeds, finality, start block) and hands the whole table to the
kind's adapter factory (`crossclear.chains.registry`).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from eth_utils.address import is_address, to_checksum_address

from crossclear._errors import UsageError
from crossclear.chains.interface import Address, ChainAdapterError

FINALITY_TAGS = ("finalized", "safe")
#: The kind a chain table without `kind` has.
DEFAULT_KIND = "evm"


class ChainConfigError(UsageError, ChainAdapterError):
    """A chain's configuration is invalid; the message names the chain and the key."""


@dataclass(frozen=True)
class Finality:
    """When a block counts as final on one chain."""

    confirmations: int = 12
    """Blocks on top of a block before it is final (used when `tag` is None)."""
    tag: str | None = None
    """Use the RPC's "finalized" or "safe" block tag instead of a depth."""

    def describe(self) -> str:
        """Human form for status tables: "2 confirmations" or "tag finalized"."""
        return f"tag {self.tag}" if self.tag else f"{self.confirmations} confirmations"


@dataclass(frozen=True)
class EvmChainConfig:
    """One EVM chain the node follows."""

    network: str
    """Name of the chain in config, used in every message about it."""
    chain_id: int
    """Expected EIP-155 chain id; the RPC must report the same."""
    rpc_url: str
    """HTTP JSON-RPC endpoint."""
    vault: Address
    """The CollateralVault's address."""
    markets: tuple[Address, ...] = ()
    """Market contracts whose positions to observe."""
    price_feeds: tuple[Address, ...] = ()
    """PriceFeed contracts whose prices to observe."""
    finality: Finality = field(default_factory=Finality)
    """When a block is final on this chain."""
    start_block: int = 0
    """First block to scan when no cursor is stored yet."""
    poll_interval_seconds: float = 1.0
    """Pause between polls when nothing new is final."""
    rpc_timeout_seconds: float = 5.0
    """Time-out of every RPC call."""
    max_backoff_seconds: float = 10.0
    """Cap of the exponential back-off between failing RPC calls."""
    max_block_range: int = 1000
    """Most blocks asked for in one eth_getLogs call."""

    def __post_init__(self) -> None:
        # Addresses are compared with what logs carry, so hold them in one spelling.
        object.__setattr__(self, "vault", _address(self.network, "vault", self.vault))
        object.__setattr__(self, "markets", _addresses(self.network, "markets", self.markets))
        object.__setattr__(self, "price_feeds", _addresses(self.network, "price_feeds", self.price_feeds))

    @property
    def contracts(self) -> tuple[Address, ...]:
        """Every address whose events count; logs from any other address are ignored."""
        return (self.vault, *self.markets, *self.price_feeds)

    @staticmethod
    def from_mapping(network: str, table: Mapping[str, Any]) -> EvmChainConfig:
        """Build from a config table (TOML or JSON), naming the bad key on error."""
        known = {
            "kind", "chain_id", "rpc_url", "finality", "vault", "markets", "price_feeds", "start_block",
            "poll_interval_seconds", "rpc_timeout_seconds", "max_backoff_seconds", "max_block_range",
        }  # fmt: skip
        unknown = sorted(set(table) - known)
        if unknown:
            raise ChainConfigError(f"chain {network}: unknown key {unknown[0]!r}")
        for required in ("chain_id", "rpc_url", "vault"):
            if required not in table:
                raise ChainConfigError(f"chain {network}: missing key {required!r}")
        rpc_url = table["rpc_url"]
        if not isinstance(rpc_url, str) or not rpc_url.startswith(("http://", "https://")):
            raise ChainConfigError(f"chain {network}: rpc_url must be an http(s) URL, got {rpc_url!r}")
        return EvmChainConfig(
            network=network,
            chain_id=_positive_int(network, "chain_id", table["chain_id"]),
            rpc_url=rpc_url,
            vault=_address(network, "vault", table["vault"]),
            markets=_addresses(network, "markets", table.get("markets", [])),
            price_feeds=_addresses(network, "price_feeds", table.get("price_feeds", [])),
            finality=_finality(network, table.get("finality", 12)),
            start_block=_non_negative_int(network, "start_block", table.get("start_block", 0)),
            poll_interval_seconds=_positive_float(network, "poll_interval_seconds", table.get("poll_interval_seconds", 1.0)),
            rpc_timeout_seconds=_positive_float(network, "rpc_timeout_seconds", table.get("rpc_timeout_seconds", 5.0)),
            max_backoff_seconds=_positive_float(network, "max_backoff_seconds", table.get("max_backoff_seconds", 10.0)),
            max_block_range=_positive_int(network, "max_block_range", table.get("max_block_range", 1000)),
        )


@dataclass(frozen=True)
class ChainConfig:
    """What the node reads of any chain, whatever its kind, plus the whole table for the adapter.

    For kind "evm" every key is checked (`EvmChainConfig`); for another kind only these common
    keys are, and the kind's adapter factory checks the rest of `table` when it is built.
    """

    network: str
    """Name of the chain in config (`[chains.<network>]`)."""
    kind: str
    """Adapter kind: "evm", or an entry point name in the `crossclear.chain_adapters` group."""
    chain_id: int
    """The chain's numeric id; the adapter must report the same."""
    vault: Address
    """The CollateralVault's address, a 20-byte 0x address (the node attests its roots under it)."""
    markets: tuple[str, ...] = ()
    """Market contracts whose positions count (checksummed for "evm"; as written otherwise)."""
    price_feeds: tuple[str, ...] = ()
    """PriceFeed contracts whose prices count (checksummed for "evm"; as written otherwise)."""
    finality: Finality = field(default_factory=Finality)
    """When a block is final on this chain (status shows `finality.describe()`)."""
    start_block: int = 0
    """First block to scan when no cursor is stored yet."""
    table: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}), compare=False, repr=False)
    """The chain's whole config table, as read (after environment overrides): the adapter's input."""

    @staticmethod
    def from_mapping(network: str, table: Mapping[str, Any]) -> ChainConfig:
        """Read the common keys of a `[chains.<network>]` table, naming the bad key on error.

        Whether the kind exists is not checked here (see `crossclear.chains.registry.chain_config`).
        """
        kind = table.get("kind", DEFAULT_KIND)
        if not isinstance(kind, str) or not kind:
            raise ChainConfigError(f"chain {network}: kind must be a non-empty string, got {kind!r}")
        frozen = MappingProxyType(copy.deepcopy(dict(table)))
        if kind == DEFAULT_KIND:
            evm = EvmChainConfig.from_mapping(network, table)
            return ChainConfig(network, kind, evm.chain_id, evm.vault, evm.markets, evm.price_feeds, evm.finality, evm.start_block, frozen)
        if "chain_id" not in table:
            raise ChainConfigError(f"chain {network}: missing key 'chain_id'")
        if "vault" not in table:
            raise ChainConfigError(f"chain {network}: missing key 'vault'")
        finality = table.get("finality", Finality().confirmations)
        if isinstance(finality, str):
            if not finality:
                raise ChainConfigError(f"chain {network}: finality must be a confirmation count or a non-empty tag, got ''")
            parsed_finality = Finality(tag=finality)
        else:
            parsed_finality = Finality(confirmations=_non_negative_int(network, "finality", finality))
        return ChainConfig(
            network=network,
            kind=kind,
            chain_id=_positive_int(network, "chain_id", table["chain_id"]),
            vault=_address(network, "vault", table["vault"]),
            markets=_strings(network, "markets", table.get("markets", [])),
            price_feeds=_strings(network, "price_feeds", table.get("price_feeds", [])),
            finality=parsed_finality,
            start_block=_non_negative_int(network, "start_block", table.get("start_block", 0)),
            table=frozen,
        )


def _finality(network: str, value: object) -> Finality:
    if isinstance(value, str):
        if value not in FINALITY_TAGS:
            raise ChainConfigError(f"chain {network}: finality must be a confirmation count or one of {FINALITY_TAGS}, got {value!r}")
        return Finality(tag=value)
    return Finality(confirmations=_non_negative_int(network, "finality", value))


def _address(network: str, key: str, value: object) -> Address:
    if not isinstance(value, str) or not is_address(value):
        raise ChainConfigError(f"chain {network}: {key} must be a 0x address, got {value!r}")
    return str(to_checksum_address(value))


def _addresses(network: str, key: str, value: object) -> tuple[Address, ...]:
    if not isinstance(value, list | tuple):
        raise ChainConfigError(f"chain {network}: {key} must be a list of addresses, got {value!r}")
    return tuple(_address(network, key, item) for item in value)


def _strings(network: str, key: str, value: object) -> tuple[str, ...]:
    if not isinstance(value, list | tuple) or not all(isinstance(item, str) and item for item in value):
        raise ChainConfigError(f"chain {network}: {key} must be a list of non-empty strings, got {value!r}")
    return tuple(value)


def _positive_int(network: str, key: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ChainConfigError(f"chain {network}: {key} must be a positive integer, got {value!r}")
    return value


def _non_negative_int(network: str, key: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ChainConfigError(f"chain {network}: {key} must be a non-negative integer, got {value!r}")
    return value


def _positive_float(network: str, key: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ChainConfigError(f"chain {network}: {key} must be a positive number, got {value!r}")
    return float(value)
