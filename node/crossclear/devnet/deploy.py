"""Deploy the clearinghouse contracts on one chain: Poseidon hashers, tokens, feeds, vault, market.

Deployment goes through anvil's unlocked first dev account, one transaction at a time and
waiting for each receipt, so it is meant for a chain that mines on demand (automine); the
devnet switches a chain to 1-second blocks only after deploying.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from web3 import HTTPProvider, Web3

from crossclear.chains.artifacts import has_artifact, load_artifact
from crossclear.chains.interface import Address
from crossclear.chains.vault_orders import sorted_signers

#: Decimals of every devnet PriceFeed answer (as Chainlink's USD feeds).
PRICE_DECIMALS = 8

#: Name of the ZK engineer's Groth16 verifier artifact, deployed when it exists.
VERIFIER_ARTIFACT = "CollateralClaimVerifier"


@dataclass(frozen=True)
class TokenSpec:
    """A mock token the devnet deploys, with its feed's starting price."""

    symbol: str
    """Ticker, e.g. "USDC"."""
    name: str
    """ERC-20 name."""
    decimals: int
    """ERC-20 decimals."""
    usd_price: int
    """Starting USD price of one whole token, scaled by 10**PRICE_DECIMALS."""
    mint_per_account: int
    """Whole tokens minted to each funded dev account."""


DEVNET_TOKENS: tuple[TokenSpec, ...] = (
    TokenSpec("USDC", "USD Coin (devnet)", 6, 1 * 10**PRICE_DECIMALS, 1_000_000),
    TokenSpec("WETH", "Wrapped Ether (devnet)", 18, 3_000 * 10**PRICE_DECIMALS, 1_000),
    TokenSpec("WBTC", "Wrapped Bitcoin (devnet)", 18, 60_000 * 10**PRICE_DECIMALS, 100),
)


@dataclass(frozen=True)
class DeployedToken:
    """A mock token and its price feed on one chain."""

    symbol: str
    """Ticker."""
    address: Address
    """MockERC20 address."""
    decimals: int
    """ERC-20 decimals."""
    price_feed: Address
    """PriceFeed for this token."""


@dataclass(frozen=True)
class Deployment:
    """Where the contracts live on one chain."""

    vault: Address
    """CollateralVault."""
    market: Address
    """Market (maker orders filled by takers, quorum-signed close-outs; trusts `vault`'s node set)."""
    poseidon2: Address
    """circomlibjs Poseidon, 2 inputs."""
    poseidon4: Address
    """circomlibjs Poseidon, 4 inputs."""
    tokens: tuple[DeployedToken, ...]
    """Mock tokens with their feeds."""
    verifier: Address | None
    """Groth16 CollateralClaimVerifier, when circuits/artifacts had one at compile time."""
    deploy_block: int
    """Block of the first deployment: adapters scan from here."""

    def as_json(self) -> dict[str, Any]:
        """The manifest form of this deployment."""
        return {
            "vault": self.vault,
            "market": self.market,
            "poseidon2": self.poseidon2,
            "poseidon4": self.poseidon4,
            "verifier": self.verifier,
            "tokens": {
                token.symbol: {"address": token.address, "decimals": token.decimals, "price_feed": token.price_feed}
                for token in self.tokens
            },
            "deploy_block": self.deploy_block,
        }


def connect(rpc_url: str) -> Web3:
    """A synchronous web3 for deployment and test transactions."""
    return Web3(HTTPProvider(rpc_url, request_kwargs={"timeout": 30}))


def deploy_contract(web3: Web3, name: str, *constructor_args: object, sender: Address | None = None) -> Address:
    """Deploy artifact `name` from `sender` (default: first dev account) and return its address."""
    artifact = load_artifact(name)
    contract = web3.eth.contract(abi=list(artifact.abi), bytecode=artifact.bytecode)
    tx_hash = contract.constructor(*constructor_args).transact({"from": sender or web3.eth.accounts[0]})
    receipt = web3.eth.wait_for_transaction_receipt(tx_hash, timeout=60)
    if receipt["status"] != 1 or receipt["contractAddress"] is None:
        raise RuntimeError(f"deploying {name} failed (transaction 0x{bytes(tx_hash).hex()})")
    return str(receipt["contractAddress"])


def transact(web3: Web3, name: str, address: Address, function: str, *args: object, sender: Address | None = None) -> Any:
    """Call `function(*args)` on contract `name` at `address` in a transaction and wait for it."""
    contract = web3.eth.contract(address=Web3.to_checksum_address(address), abi=list(load_artifact(name).abi))
    tx_hash = contract.functions[function](*args).transact({"from": sender or web3.eth.accounts[0]})
    receipt = web3.eth.wait_for_transaction_receipt(tx_hash, timeout=60)
    if receipt["status"] != 1:
        raise RuntimeError(f"{name}.{function} failed (transaction 0x{bytes(tx_hash).hex()})")
    return receipt


def deploy_devnet(
    rpc_url: str,
    node_signers: Sequence[Address],
    funded: Sequence[Address],
    tokens: Sequence[TokenSpec] = DEVNET_TOKENS,
) -> Deployment:
    """Deploy everything on one chain and mint test tokens to the funded accounts."""
    web3 = connect(rpc_url)
    deploy_block = int(web3.eth.block_number) + 1
    poseidon2 = deploy_contract(web3, "Poseidon2")
    poseidon4 = deploy_contract(web3, "Poseidon4")
    deployed_tokens = []
    for spec in tokens:
        token = deploy_contract(web3, "MockERC20", spec.name, spec.symbol, spec.decimals)
        feed = deploy_contract(web3, "PriceFeed", token, PRICE_DECIMALS, f"{spec.symbol} / USD", spec.usd_price)
        transact(web3, "MockERC20", token, "mintEach", list(funded), spec.mint_per_account * 10**spec.decimals)
        deployed_tokens.append(DeployedToken(spec.symbol, token, spec.decimals, feed))
    vault = deploy_contract(web3, "CollateralVault", poseidon2, poseidon4, list(sorted_signers(node_signers)))
    # The market checks close-outs against the vault's node set (`requireQuorum`).
    market = deploy_contract(web3, "Market", vault)
    verifier = deploy_contract(web3, VERIFIER_ARTIFACT) if has_artifact(VERIFIER_ARTIFACT) else None
    return Deployment(
        vault=vault,
        market=market,
        poseidon2=poseidon2,
        poseidon4=poseidon4,
        tokens=tuple(deployed_tokens),
        verifier=verifier,
        deploy_block=deploy_block,
    )
