"""An installed plugin kind, built only through the registry, passes the chain-adapter conformance suite.

The plugin is tests/fixtures/plugin_adapter (kind "evm-replica"), pip-installed offline into a
temporary folder put on sys.path for this module only.
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from crossclear.chains.conformance import ChainAdapterConformance, ConformanceHarness, ExpectedDeposit
from crossclear.chains.evm import EvmChainAdapter
from crossclear.chains.interface import ChainAdapter, Cursor
from crossclear.chains.registry import adapter_kinds, build_adapters, chain_config
from crossclear.devnet.chain import DevChain
from crossclear.zk import secret_hash

from ..node.test_plugin_adapter import PLUGIN_KIND, install_plugin

CONFIRMATIONS = 2
_secrets = itertools.count(900)


@pytest.fixture(scope="module")
def plugin_on_path(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    site = install_plugin(tmp_path_factory.mktemp("plugin"))
    sys.path.insert(0, str(site))
    try:
        yield site
    finally:
        sys.path.remove(str(site))
        for module in [name for name in sys.modules if name.split(".")[0] == "crossclear_evm_replica"]:
            del sys.modules[module]


@dataclass
class ReplicaHarness:
    """Drives the module's anvil chain; adapters come from the registry with kind "evm-replica"."""

    chain: DevChain
    chain_id: int

    def new_adapter(self) -> ChainAdapter:
        deployment = self.chain.deployment
        table = {
            "kind": PLUGIN_KIND,
            "chain_id": self.chain_id,
            "rpc_url": self.chain.anvil.rpc_url,
            "vault": deployment.vault,
            "markets": [deployment.market],
            "price_feeds": [token.price_feed for token in deployment.tokens],
            "finality": CONFIRMATIONS,
            "start_block": deployment.deploy_block,
            "poll_interval_seconds": 0.05,
            "rpc_timeout_seconds": 2.0,
            "max_backoff_seconds": 0.5,
        }
        adapter = build_adapters({"replica": chain_config("replica", table)})["replica"]
        assert type(adapter).__module__ == "crossclear_evm_replica" and not isinstance(adapter, EvmChainAdapter)
        return adapter

    def start_cursor(self) -> Cursor:
        return Cursor.before(self.chain_id, self.chain.deployment.deploy_block)

    def make_deposit(self) -> ExpectedDeposit:
        depositor = self.chain.accounts[2].address
        receipt = self.chain.deposit(depositor, "WETH", 10**17, secret_hash(next(_secrets)))
        return ExpectedDeposit(bytes(receipt["transactionHash"]), depositor, self.chain.token("WETH"), 10**17)

    def finalize(self) -> None:
        self.chain.mine(CONFIRMATIONS)


def test_the_installed_plugin_is_a_known_kind(plugin_on_path: Path) -> None:
    assert PLUGIN_KIND in adapter_kinds()


class TestPluginAdapterConformance(ChainAdapterConformance):
    @pytest.fixture
    def harness(self, chain: DevChain, plugin_on_path: Path) -> ConformanceHarness:
        return ReplicaHarness(chain, chain.anvil.chain_id)
