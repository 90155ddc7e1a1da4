"""Which adapter serves which chain: built-in "evm", others from the `crossclear.chain_adapters` entry points.

A package adds a network kind by declaring, in its pyproject.toml,

    [project.entry-points."crossclear.chain_adapters"]
    mynet = "mypackage.adapter:create_adapter"

where `create_adapter(network: str, table: Mapping[str, Any]) -> ChainAdapter` builds an
adapter from the chain's config table (the `[chains.<network>]` table, with `kind = "mynet"`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib.metadata import entry_points
from typing import Any

from crossclear.chains.config import ChainConfigError, EvmChainConfig
from crossclear.chains.interface import ChainAdapter

ENTRY_POINT_GROUP = "crossclear.chain_adapters"

#: Builds an adapter from a network name and its config table.
AdapterFactory = Callable[[str, Mapping[str, Any]], ChainAdapter]


def create_evm_adapter(network: str, table: Mapping[str, Any]) -> ChainAdapter:
    """The built-in factory for kind "evm"."""
    from crossclear.chains.evm import EvmChainAdapter

    return EvmChainAdapter(EvmChainConfig.from_mapping(network, table))


def adapter_kinds() -> dict[str, Callable[[], AdapterFactory]]:
    """Every known kind, mapped to a loader of its factory (entry points load lazily)."""
    kinds: dict[str, Callable[[], AdapterFactory]] = {"evm": lambda: create_evm_adapter}
    for entry_point in entry_points(group=ENTRY_POINT_GROUP):
        kinds.setdefault(entry_point.name, entry_point.load)
    return kinds


def create_adapter(network: str, table: Mapping[str, Any]) -> ChainAdapter:
    """The adapter for one `[chains.<network>]` table; `kind` defaults to "evm"."""
    kind = table.get("kind", "evm")
    kinds = adapter_kinds()
    if not isinstance(kind, str) or kind not in kinds:
        raise ChainConfigError(f"chain {network}: unknown kind {kind!r} (known: {', '.join(sorted(kinds))})")
    try:
        factory = kinds[kind]()
    except Exception as error:  # a broken plugin must not take the node down with a traceback
        raise ChainConfigError(f"chain {network}: adapter kind {kind!r} failed to load ({error})") from None
    return factory(network, table)
