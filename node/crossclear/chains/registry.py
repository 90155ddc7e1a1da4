"""Which adapter serves which chain: built-in "evm", others from the `crossclear.chain_adapters` entry points.

A package adds a network kind by declaring, in its pyproject.toml,

    [project.entry-points."crossclear.chain_adapters"]
    mynet = "mypackage.adapter:create_adapter"

where `create_adapter(network: str, table: Mapping[str, Any]) -> ChainAdapter` builds an
adapter from the chain's config table (the `[chains.<network>]` table, with `kind = "mynet"`).

The node uses two functions and nothing else of any adapter but the `ChainAdapter` protocol:
`chain_config(network, table)` when it loads its config (an unknown kind fails there, naming
the known ones), and `build_adapters(chains)` to build one adapter per configured chain.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from crossclear.chains.config import DEFAULT_KIND, ChainConfig, ChainConfigError, EvmChainConfig
from crossclear.chains.interface import ChainAdapter

ENTRY_POINT_GROUP = "crossclear.chain_adapters"

#: Builds an adapter from a network name and its config table.
AdapterFactory = Callable[[str, Mapping[str, Any]], ChainAdapter]

_log = logging.getLogger(__name__)


def create_evm_adapter(network: str, table: Mapping[str, Any]) -> ChainAdapter:
    """The built-in factory for kind "evm"."""
    from crossclear.chains.evm import EvmChainAdapter

    return EvmChainAdapter(EvmChainConfig.from_mapping(network, table))


@dataclass(frozen=True)
class _Kind:
    load: Callable[[], AdapterFactory]
    source: str
    """Where the kind comes from, for the log line: "built in" or the entry point and its distribution."""


def _describe(entry_point: EntryPoint) -> str:
    dist = entry_point.dist
    where = f" from {dist.name} {dist.version}" if dist is not None else ""
    return f"entry point {entry_point.name} = {entry_point.value}{where}"


def _kinds() -> dict[str, _Kind]:
    # "evm" cannot be replaced by a plugin; of two plugins with one name, the first on sys.path wins.
    kinds = {DEFAULT_KIND: _Kind(lambda: create_evm_adapter, "built in")}
    for entry_point in entry_points(group=ENTRY_POINT_GROUP):
        kinds.setdefault(entry_point.name, _Kind(entry_point.load, _describe(entry_point)))
    return kinds


def adapter_kinds() -> dict[str, Callable[[], AdapterFactory]]:
    """Every known kind, mapped to a loader of its factory (entry points load lazily)."""
    return {name: kind.load for name, kind in _kinds().items()}


def _unknown_kind(network: str, kind: object, kinds: Mapping[str, object]) -> ChainConfigError:
    return ChainConfigError(f"chain {network}: unknown kind {kind!r} (known: {', '.join(sorted(kinds))})")


def chain_config(network: str, table: Mapping[str, Any]) -> ChainConfig:
    """Check one `[chains.<network>]` table: a known kind, every key for "evm", the common keys otherwise.

    Raises ChainConfigError naming the chain (and, for an unknown kind, the known ones).
    """
    kind = table.get("kind", DEFAULT_KIND)
    kinds = _kinds()
    if not isinstance(kind, str) or kind not in kinds:
        raise _unknown_kind(network, kind, kinds)
    return ChainConfig.from_mapping(network, table)


def create_adapter(network: str, table: Mapping[str, Any]) -> ChainAdapter:
    """The adapter for one `[chains.<network>]` table; `kind` defaults to "evm"."""
    return _create(network, table, _kinds())


def _create(network: str, table: Mapping[str, Any], kinds: Mapping[str, _Kind]) -> ChainAdapter:
    kind = table.get("kind", DEFAULT_KIND)
    if not isinstance(kind, str) or kind not in kinds:
        raise _unknown_kind(network, kind, kinds)
    # A broken plugin must not take the node down with a traceback: every failure is one line.
    try:
        factory = kinds[kind].load()
    except Exception as error:
        raise ChainConfigError(f"chain {network}: adapter kind {kind!r} failed to load ({error})") from None
    try:
        return factory(network, table)
    except ChainConfigError:
        raise
    except Exception as error:
        raise ChainConfigError(f"chain {network}: adapter kind {kind!r} could not be built ({type(error).__name__}: {error})") from None


def build_adapters(chains: Mapping[str, ChainConfig]) -> dict[str, ChainAdapter]:
    """One adapter per configured chain, by name, each built by its kind's factory.

    Nothing connects yet (call `connect()`). Raises ChainConfigError naming the chain when a
    kind is unknown, fails to load, rejects its table, or returns something that is not a
    `ChainAdapter` or reports another network or chain id than configured.
    """
    kinds = _kinds()
    adapters: dict[str, ChainAdapter] = {}
    for name, chain in chains.items():
        adapter = _create(name, chain.table, kinds)
        if not isinstance(adapter, ChainAdapter):
            raise ChainConfigError(
                f"chain {name}: adapter kind {chain.kind!r} built a {type(adapter).__qualname__}, which lacks the ChainAdapter interface"
            )
        if (adapter.network, adapter.chain_id) != (name, chain.chain_id):
            raise ChainConfigError(
                f"chain {name}: adapter kind {chain.kind!r} built an adapter for {adapter.network!r} "
                f"(id {adapter.chain_id}), not {name!r} (id {chain.chain_id})"
            )
        _log.info("chain %s (id %d): adapter kind %s, %s (%s)", name, chain.chain_id, chain.kind, type(adapter).__qualname__, kinds[chain.kind].source)
        adapters[name] = adapter
    return adapters
