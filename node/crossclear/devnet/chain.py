"""A deployed devnet chain with the everyday actions tests and demos need.

    with DevChain.start(chain_id=31337) as chain:
        chain.deposit(chain.accounts[1], "USDC", 5 * 10**6, secret_hash=...)
        chain.mine(3)

Transactions go through anvil's unlocked dev accounts, so no key handling is needed here.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import TracebackType
from typing import Any

from web3 import Web3
from web3.contract import Contract

from crossclear.chains.artifacts import load_artifact
from crossclear.chains.config import EvmChainConfig, Finality
from crossclear.chains.interface import Address
from crossclear.devnet.accounts import DevAccount, funded_accounts, node_keys
from crossclear.devnet.anvil import Anvil
from crossclear.devnet.deploy import Deployment, connect, deploy_devnet, transact
from crossclear.devnet.trading import trade_perpetual


@dataclass
class DevChain:
    """One anvil chain with the contracts deployed."""

    anvil: Anvil
    """The chain process."""
    deployment: Deployment
    """Contract addresses."""
    web3: Web3
    """Synchronous web3 connected to the chain."""
    accounts: tuple[DevAccount, ...]
    """Funded dev accounts (index 0 deployed everything)."""
    node_set: tuple[DevAccount, ...]
    """Keys of the node set the vault was deployed with."""

    @staticmethod
    def start(chain_id: int = 31337, node_set_size: int = 4, **anvil_options: Any) -> DevChain:
        """Start anvil (automining unless a block time is given) and deploy."""
        anvil = Anvil(chain_id, **anvil_options).start()
        try:
            accounts = funded_accounts()
            nodes = node_keys(node_set_size)
            deployment = deploy_devnet(anvil.rpc_url, [n.address for n in nodes], [a.address for a in accounts])
            return DevChain(anvil, deployment, connect(anvil.rpc_url), accounts, nodes)
        except BaseException:
            anvil.close()
            raise

    def __enter__(self) -> DevChain:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.anvil.close()

    # -- contracts -------------------------------------------------------------------------------

    def contract(self, artifact: str, address: Address) -> Contract:
        """A web3 contract object for a deployed artifact."""
        return self.web3.eth.contract(address=Web3.to_checksum_address(address), abi=list(load_artifact(artifact).abi))

    @property
    def vault(self) -> Contract:
        return self.contract("CollateralVault", self.deployment.vault)

    @property
    def market(self) -> Contract:
        return self.contract("Market", self.deployment.market)

    def token(self, symbol: str) -> Address:
        """Address of the mock token `symbol`."""
        return next(t.address for t in self.deployment.tokens if t.symbol == symbol)

    def price_feed(self, symbol: str) -> Address:
        """Address of the price feed of `symbol`."""
        return next(t.price_feed for t in self.deployment.tokens if t.symbol == symbol)

    def adapter_config(self, network: str = "test", **overrides: Any) -> EvmChainConfig:
        """An adapter config following this chain's contracts (finality 0 unless overridden)."""
        values: dict[str, Any] = {
            "network": network,
            "chain_id": self.anvil.chain_id,
            "rpc_url": self.anvil.rpc_url,
            "vault": self.deployment.vault,
            "markets": (self.deployment.market,),
            "price_feeds": tuple(t.price_feed for t in self.deployment.tokens),
            "finality": Finality(confirmations=0),
            "start_block": self.deployment.deploy_block,
            "poll_interval_seconds": 0.05,
            "rpc_timeout_seconds": 2.0,
            "max_backoff_seconds": 0.5,
        }
        values.update(overrides)
        return EvmChainConfig(**values)

    # -- actions ---------------------------------------------------------------------------------

    def mine(self, blocks: int = 1) -> None:
        self.anvil.mine(blocks)

    def deposit(self, depositor: Address, symbol: str, amount: int, secret_hash: int) -> dict[str, Any]:
        """Approve and deposit; returns the deposit's receipt."""
        token = self.token(symbol)
        transact(self.web3, "MockERC20", token, "approve", self.deployment.vault, amount, sender=depositor)
        receipt: dict[str, Any] = transact(
            self.web3, "CollateralVault", self.deployment.vault, "deposit", token, amount, secret_hash, sender=depositor
        )
        return receipt

    def trade_perpetual(self, maker: DevAccount, taker: DevAccount, symbol: str, maker_size: int, price: int, nonce: int = 1) -> dict[str, Any]:
        """`maker` signs an order for `maker_size` perpetuals on `symbol` at `price` and `taker` fills it."""
        return trade_perpetual(self.web3, self.deployment.market, self.token(symbol), maker.private_key, maker.address, taker.address, maker_size, price, nonce)

    def set_price(self, symbol: str, answer: int) -> dict[str, Any]:
        receipt: dict[str, Any] = transact(self.web3, "PriceFeed", self.price_feed(symbol), "setAnswer", answer)
        return receipt
