"""The EVM adapter passes the reusable chain-adapter conformance suite."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import pytest

from crossclear.chains.conformance import ChainAdapterConformance, ConformanceHarness, ExpectedDeposit
from crossclear.chains.config import Finality
from crossclear.chains.evm import EvmChainAdapter
from crossclear.chains.interface import ChainAdapter, Cursor
from crossclear.devnet.chain import DevChain
from crossclear.zk import secret_hash

CONFIRMATIONS = 2
_secrets = itertools.count(500)


@dataclass
class EvmHarness:
    """Drives the module's anvil chain for the suite."""

    chain: DevChain

    @property
    def chain_id(self) -> int:
        return self.chain.anvil.chain_id

    def new_adapter(self) -> ChainAdapter:
        return EvmChainAdapter(self.chain.adapter_config("conformance", finality=Finality(confirmations=CONFIRMATIONS)))

    def start_cursor(self) -> Cursor:
        return Cursor.before(self.chain_id, self.chain.deployment.deploy_block)

    def make_deposit(self) -> ExpectedDeposit:
        depositor = self.chain.accounts[1].address
        receipt = self.chain.deposit(depositor, "WETH", 10**17, secret_hash(next(_secrets)))
        return ExpectedDeposit(bytes(receipt["transactionHash"]), depositor, self.chain.token("WETH"), 10**17)

    def finalize(self) -> None:
        self.chain.mine(CONFIRMATIONS)


class TestEvmAdapterConformance(ChainAdapterConformance):
    @pytest.fixture
    def harness(self, chain: DevChain) -> ConformanceHarness:
        return EvmHarness(chain)
