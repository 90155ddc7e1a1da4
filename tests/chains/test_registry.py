"""The adapter registry: every chain's config read whatever its kind, every adapter built through it."""

from __future__ import annotations

import itertools
import logging
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from crossclear.chains.config import ChainConfig, ChainConfigError, Finality
from crossclear.chains.evm import EvmChainAdapter
from crossclear.chains.interface import ChainAdapter
from crossclear.chains.registry import ENTRY_POINT_GROUP, build_adapters, chain_config

VAULT = "0x998abeb3e57409262ae5b751f60747921b33613e"
CHECKSUMMED_VAULT = "0x998abeb3E57409262aE5b751f60747921B33613E"

_plugins = itertools.count()


def _evm_table(**overrides: Any) -> dict[str, Any]:
    table: dict[str, Any] = {"chain_id": 31001, "rpc_url": "http://127.0.0.1:8545", "vault": VAULT}
    table.update(overrides)
    return table


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str, str], str]]:
    """Installs (on sys.path, as a dist-info) a plugin kind whose module body is given; returns the kind."""
    modules: list[str] = []

    def install(kind: str, body: str) -> str:
        module = f"registry_test_plugin_{next(_plugins)}"
        modules.append(module)
        (tmp_path / f"{module}.py").write_text(body)
        dist_info = tmp_path / f"{module}-0.1.dist-info"
        dist_info.mkdir()
        (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module.replace('_', '-')}\nVersion: 0.1\n")
        (dist_info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\n{kind} = {module}:create_adapter\n")
        return kind

    monkeypatch.syspath_prepend(str(tmp_path))
    yield install
    for module in modules:
        sys.modules.pop(module, None)


# A plugin that builds the EVM adapter from its table (a stand-in for any network).
EVM_BACKED = (
    "from crossclear.chains.registry import create_evm_adapter\n"
    "def create_adapter(network, table):\n"
    "    return create_evm_adapter(network, {k: v for k, v in table.items() if k not in ('kind', 'colour')})\n"
)


def test_an_evm_table_is_checked_in_full_and_kept_whole() -> None:
    chain = chain_config("devnet-a", _evm_table(finality="safe", markets=[VAULT], start_block=7))
    assert (chain.network, chain.kind, chain.chain_id, chain.vault) == ("devnet-a", "evm", 31001, CHECKSUMMED_VAULT)
    assert (chain.markets, chain.finality, chain.start_block) == ((CHECKSUMMED_VAULT,), Finality(tag="safe"), 7)
    assert chain.finality.describe() == "tag safe"
    assert chain.table["rpc_url"] == "http://127.0.0.1:8545" and "kind" not in chain.table
    with pytest.raises(TypeError):
        chain.table["rpc_url"] = "http://elsewhere"  # type: ignore[index]
    with pytest.raises(ChainConfigError, match="^chain devnet-a: unknown key 'colour'"):
        chain_config("devnet-a", _evm_table(colour="blue"))
    with pytest.raises(ChainConfigError, match="^chain devnet-a: finality must be a confirmation count or one of"):
        chain_config("devnet-a", _evm_table(finality="latest"))


def test_a_plugin_table_gets_its_common_keys_checked_and_the_rest_passed_on(plugin: Callable[[str, str], str]) -> None:
    kind = plugin("moonnet", EVM_BACKED)
    table: dict[str, Any] = {"kind": kind, "chain_id": 77, "vault": VAULT, "markets": ["moon:market1"], "finality": "epoch", "endpoint": "wss://x", "nested": {"a": [1]}}
    chain = chain_config("moon", table)
    assert (chain.kind, chain.chain_id, chain.vault, chain.markets, chain.price_feeds) == (kind, 77, CHECKSUMMED_VAULT, ("moon:market1",), ())
    assert chain.finality.describe() == "tag epoch" and chain.start_block == 0
    assert chain.table == table
    table["nested"]["a"].append(2)  # the config holds its own copy
    assert chain.table["nested"] == {"a": [1]}
    assert chain_config("moon", {"kind": kind, "chain_id": 77, "vault": VAULT, "finality": 3}).finality == Finality(confirmations=3)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"vault": VAULT}, "missing key 'chain_id'"),
        ({"chain_id": 77}, "missing key 'vault'"),
        ({"chain_id": 0, "vault": VAULT}, "chain_id must be a positive integer"),
        ({"chain_id": 77, "vault": "moon1xyz"}, "vault must be a 0x address"),
        ({"chain_id": 77, "vault": VAULT, "markets": "m"}, "markets must be a list of non-empty strings"),
        ({"chain_id": 77, "vault": VAULT, "start_block": -1}, "start_block must be a non-negative integer"),
        ({"chain_id": 77, "vault": VAULT, "finality": ""}, "finality must be a confirmation count or a non-empty tag"),
    ],
)
def test_a_plugin_tables_common_keys_are_named_when_wrong(plugin: Callable[[str, str], str], table: dict[str, Any], message: str) -> None:
    kind = plugin("moonnet", EVM_BACKED)
    with pytest.raises(ChainConfigError, match=f"^chain moon: {message}"):
        chain_config("moon", {"kind": kind, **table})


def test_an_unknown_kind_names_the_chain_and_the_known_kinds(plugin: Callable[[str, str], str]) -> None:
    plugin("moonnet", EVM_BACKED)
    with pytest.raises(ChainConfigError, match=r"^chain sun: unknown kind 'sunnet' \(known: evm, (.+, )?moonnet(, .+)?\)$"):
        chain_config("sun", _evm_table(kind="sunnet"))
    with pytest.raises(ChainConfigError, match=r"^chain sun: unknown kind 3 \(known: evm, "):
        chain_config("sun", _evm_table(kind=3))


def test_build_adapters_builds_every_kind_and_logs_where_it_came_from(
    plugin: Callable[[str, str], str], caplog: pytest.LogCaptureFixture
) -> None:
    kind = plugin("moonnet", EVM_BACKED)
    chains = {
        "devnet-a": chain_config("devnet-a", _evm_table()),
        "moon": chain_config("moon", _evm_table(kind=kind, chain_id=77, colour="blue")),
    }
    with caplog.at_level(logging.INFO, logger="crossclear.chains.registry"):
        adapters = build_adapters(chains)
    assert list(adapters) == ["devnet-a", "moon"]
    assert all(isinstance(adapter, ChainAdapter) for adapter in adapters.values())
    assert isinstance(adapters["devnet-a"], EvmChainAdapter) and (adapters["moon"].network, adapters["moon"].chain_id) == ("moon", 77)
    lines = [record.getMessage() for record in caplog.records]
    assert any(line.startswith("chain devnet-a (id 31001): adapter kind evm, EvmChainAdapter (built in)") for line in lines), lines
    assert any(f"chain moon (id 77): adapter kind moonnet, EvmChainAdapter (entry point moonnet = {'registry_test_plugin_'}" in line for line in lines), lines


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("def create_adapter(network, table):\n    return table['missing']\n", r"adapter kind 'moonnet' could not be built \(KeyError: 'missing'\)"),
        ("def create_adapter(network, table):\n    return object()\n", "adapter kind 'moonnet' built a object, which lacks the ChainAdapter interface"),
        (
            "from crossclear.chains.config import ChainConfigError\n"
            "def create_adapter(network, table):\n    raise ChainConfigError(f'chain {network}: endpoint is required')\n",
            "endpoint is required",
        ),
        (
            EVM_BACKED.replace("return create_evm_adapter(network,", "return create_evm_adapter('other',"),
            r"adapter kind 'moonnet' built an adapter for 'other' \(id 77\), not 'moon' \(id 77\)",
        ),
        ("raise ImportError('needs libmoon')\n", r"adapter kind 'moonnet' failed to load \(needs libmoon\)"),
    ],
)
def test_a_misbehaving_plugin_is_one_line_naming_the_chain(plugin: Callable[[str, str], str], body: str, message: str) -> None:
    kind = plugin("moonnet", body)
    chains = {"moon": chain_config("moon", _evm_table(kind=kind, chain_id=77))}
    with pytest.raises(ChainConfigError, match=f"^chain moon: {message}"):
        build_adapters(chains)


def test_a_chain_config_built_by_hand_builds_its_adapter_from_its_table() -> None:
    chain = ChainConfig.from_mapping("devnet-a", _evm_table(kind="evm"))
    assert isinstance(build_adapters({"devnet-a": chain})["devnet-a"], EvmChainAdapter)
