"""Chain configuration and adapter kinds: every bad key named; plugins through entry points."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from crossclear.chains.config import ChainConfigError, EvmChainConfig, Finality
from crossclear.chains.evm import EvmChainAdapter
from crossclear.chains.registry import ENTRY_POINT_GROUP, adapter_kinds, create_adapter

VAULT = "0x998abeb3e57409262ae5b751f60747921b33613e"


def _table(**overrides: Any) -> dict[str, Any]:
    table: dict[str, Any] = {"kind": "evm", "chain_id": 31001, "rpc_url": "http://127.0.0.1:8545", "vault": VAULT}
    table.update(overrides)
    return {key: value for key, value in table.items() if value is not None}


def test_a_minimal_table_gets_defaults_and_checksummed_addresses() -> None:
    config = EvmChainConfig.from_mapping("devnet-a", _table(finality="finalized", markets=[VAULT]))
    assert config.vault == "0x998abeb3E57409262aE5b751f60747921B33613E"
    assert config.finality == Finality(tag="finalized")
    assert config.contracts == (config.vault, config.vault)
    assert EvmChainConfig.from_mapping("x", _table(finality=2)).finality == Finality(confirmations=2)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"chain_id": None}, "missing key 'chain_id'"),
        ({"chain_id": 0}, "chain_id must be a positive integer"),
        ({"chain_id": True}, "chain_id must be a positive integer"),
        ({"rpc_url": "127.0.0.1:8545"}, "rpc_url must be an http"),
        ({"vault": "0x1234"}, "vault must be a 0x address"),
        ({"markets": "0xabc"}, "markets must be a list"),
        ({"price_feeds": ["nope"]}, "price_feeds must be a 0x address"),
        ({"finality": "latest"}, "finality must be a confirmation count or one of"),
        ({"finality": -1}, "finality must be a non-negative integer"),
        ({"poll_interval_seconds": 0}, "poll_interval_seconds must be a positive number"),
        ({"colour": "blue"}, "unknown key 'colour'"),
    ],
)
def test_bad_tables_name_the_chain_and_key(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ChainConfigError, match=f"^chain devnet-a: {message}"):
        EvmChainConfig.from_mapping("devnet-a", _table(**overrides))


def test_evm_kind_is_built_in() -> None:
    adapter = create_adapter("devnet-a", _table())
    assert isinstance(adapter, EvmChainAdapter) and adapter.network == "devnet-a"


def test_unknown_kind_is_named_with_the_known_ones() -> None:
    with pytest.raises(ChainConfigError, match=r"chain moon: unknown kind 'moonchain' \(known: .*evm"):
        create_adapter("moon", _table(kind="moonchain"))


def test_a_plugin_adapter_arrives_through_the_entry_point_group(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A minimal installed distribution: a module plus dist-info declaring the entry point.
    (tmp_path / "toy_adapter.py").write_text(
        "class ToyAdapter:\n"
        "    def __init__(self, network, table):\n"
        "        self.network, self.chain_id = network, table['chain_id']\n"
        "def create_adapter(network, table):\n"
        "    return ToyAdapter(network, table)\n"
    )
    dist_info = tmp_path / "toy_adapter-0.1.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-adapter\nVersion: 0.1\n")
    (dist_info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\ntoy = toy_adapter:create_adapter\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "toy" in adapter_kinds()
    adapter = create_adapter("toy-net", {"kind": "toy", "chain_id": 9})
    assert (adapter.network, adapter.chain_id) == ("toy-net", 9)
    monkeypatch.delitem(sys.modules, "toy_adapter", raising=False)


def test_a_broken_plugin_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dist_info = tmp_path / "broken_adapter-0.1.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-adapter\nVersion: 0.1\n")
    (dist_info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\nbroken = no_such_module_here:create\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ChainConfigError, match="chain b: adapter kind 'broken' failed to load"):
        create_adapter("b", {"kind": "broken"})
