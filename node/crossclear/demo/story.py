"""The whole crossclear story, played against a running devnet (`crossclear devnet up`).

1. Alice deposits USDC on one chain and WETH on another; Bob deposits USDC.
2. They prove their deposits with Groth16 and submit the claims to one node; the node set
   certifies the vault roots, checks the proofs and credits the collateral on every node.
3. Alice opens a hedged ETH book across two chains; Bob opens an unhedged long.
4. Alice's margin under the four modes, side by side: what portfolio margin saves.
5. ETH falls 25%: Bob's equity drops below maintenance, the nodes sign a seize, the devnet's
   liquidator submits it with a quorum and the vault pays; Alice's hedged book is untouched.
6. Alice withdraws part of her USDC: a quorum of nodes signs the release and the vault pays.

Every wait is bounded; a node that is down is reported and the story goes on without it as
long as a quorum is up.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc
from eth_account import Account
from web3 import Web3
from web3.logs import DISCARD

from crossclear._errors import UsageError
from crossclear.chains.artifacts import load_artifact
from crossclear.devnet.deploy import connect, transact
from crossclear.rpc.client import MODES, format_margin, get_margin, node_status, request_release, submit_claim
from crossclear.v1 import claim_pb2, margin_pb2
from crossclear.zk import IncrementalMerkleTree, secret_hash
from crossclear.zk.groth16 import proof_to_json
from crossclear.zk.prover import ClaimStatement, Deposit, prove_claim

Say = Callable[[str], None]
STEP_TIMEOUT_SECONDS = 90.0
PRICE_DECIMALS = 8


@dataclass
class Chain:
    network: str
    chain_id: int
    rpc_url: str
    contracts: dict[str, Any]
    web3: Web3

    def token(self, symbol: str) -> dict[str, Any]:
        token: dict[str, Any] = self.contracts["tokens"][symbol]
        return token


@dataclass
class Claimed:
    """A deposit credited as collateral."""

    chain: Chain
    symbol: str
    nullifier: int
    amount: int


async def _eventually(check: Callable[[], Awaitable[bool]], what: str, timeout: float = STEP_TIMEOUT_SECONDS) -> float:
    start = time.monotonic()
    while True:
        if await check():
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise UsageError(f"demo: timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(0.25)


class Story:
    """The demo's state: the devnet it plays on and what it has done so far."""

    def __init__(self, manifest: dict[str, Any], say: Say) -> None:
        self.say = say
        if not manifest.get("nodes"):
            raise UsageError("demo: the devnet runs no nodes; start it with `crossclear devnet up` (4 nodes by default)")
        self.chains = [Chain(c["network"], c["chain_id"], c["rpc_url"], c["contracts"], connect(c["rpc_url"])) for c in manifest["chains"]]
        if len(self.chains) < 2:
            raise UsageError("demo: the story needs at least 2 chains (crossclear devnet up --chains 2 or more)")
        self.domain = int(manifest["clearinghouse_domain"])
        self.nodes: list[dict[str, Any]] = manifest["nodes"]
        self.threshold = int(manifest["node_set"]["threshold"])
        # Fresh accounts every run, so the story reads the same however often it is played.
        alice, bob = Account.create(), Account.create()
        self.alice = (str(alice.address), bytes(alice.key))
        self.bob = (str(bob.address), bytes(bob.key))
        self.live: list[str] = []

    def fund(self) -> None:
        """Gas and tokens for Alice and Bob on every chain (anvil cheat codes and open mints)."""
        for chain in self.chains:
            for address, _ in (self.alice, self.bob):
                chain.web3.provider.make_request("anvil_setBalance", [address, hex(10 * 10**18)])  # type: ignore[arg-type]
                chain.web3.provider.make_request("anvil_impersonateAccount", [address])  # type: ignore[arg-type]
                for symbol, whole in (("USDC", 100_000), ("WETH", 100)):
                    token = chain.token(symbol)
                    transact(chain.web3, "MockERC20", token["address"], "mint", address, whole * 10 ** token["decimals"])

    # --- helpers -------------------------------------------------------------------------------

    async def find_live_nodes(self) -> None:
        for node in self.nodes:
            try:
                await asyncio.wait_for(node_status(node["rpc"]), 5)
                self.live.append(node["rpc"])
            except (UsageError, TimeoutError):
                self.say(f"      {node['name']} ({node['rpc']}) is down; continuing without it")
        if len(self.live) < self.threshold:
            raise UsageError(f"demo: only {len(self.live)} of {len(self.nodes)} nodes answer; the vault needs {self.threshold}")
        self.say(f"      {len(self.live)} of {len(self.nodes)} nodes up (quorum {self.threshold})")

    async def transact(self, chain: Chain, contract: str, address: str, function: str, *args: object, sender: str | None = None) -> Any:
        # Chain calls block; keep them off the event loop (and away from any AsyncWeb3 on it).
        return await asyncio.to_thread(transact, chain.web3, contract, address, function, *args, sender=sender)

    async def deposit(self, chain: Chain, owner: tuple[str, bytes], symbol: str, whole_units: float) -> Deposit:
        return await asyncio.to_thread(self._deposit, chain, owner, symbol, whole_units)

    def _deposit(self, chain: Chain, owner: tuple[str, bytes], symbol: str, whole_units: float) -> Deposit:
        token = chain.token(symbol)
        amount = int(whole_units * 10 ** token["decimals"])
        secret = secrets.randbelow(2**200)
        address = owner[0]
        transact(chain.web3, "MockERC20", token["address"], "approve", chain.contracts["vault"], amount, sender=address)
        receipt = transact(chain.web3, "CollateralVault", chain.contracts["vault"], "deposit", token["address"], amount, secret_hash(secret), sender=address)
        vault = chain.web3.eth.contract(address=Web3.to_checksum_address(chain.contracts["vault"]), abi=list(load_artifact("CollateralVault").abi))
        event = vault.events.Deposited().process_receipt(receipt, errors=DISCARD)[0]["args"]
        self.say(f"      {address[:10]}… deposited {whole_units:,g} {symbol} on {chain.network}: leaf {event['leafIndex']}, new root {str(event['root'])[:12]}…")
        return Deposit(secret, int(address, 16), int(token["address"], 16), amount, int(event["leafIndex"]), chain.chain_id, int(chain.contracts["vault"], 16))

    def tree(self, chain: Chain) -> IncrementalMerkleTree:
        vault = chain.web3.eth.contract(address=Web3.to_checksum_address(chain.contracts["vault"]), abi=list(load_artifact("CollateralVault").abi))
        logs = vault.events.Deposited.get_logs(from_block=chain.contracts["deploy_block"])
        tree = IncrementalMerkleTree()
        for log in sorted(logs, key=lambda entry: entry["args"]["leafIndex"]):
            tree.insert(int(log["args"]["leaf"]))
        return tree

    async def claim(self, chain: Chain, deposit: Deposit, symbol: str) -> Claimed:
        tree = await asyncio.to_thread(self.tree, chain)
        started = time.monotonic()
        proof, claim = await asyncio.to_thread(prove_claim, deposit, tree.path(deposit.leaf_index), ClaimStatement(deposit.amount, self.domain))
        self.say(f"      proved {symbol} on {chain.network} in {time.monotonic() - started:.1f} s; submitting to {self.live[0]}")
        document = proof_to_json(proof)

        async def accepted() -> bool:
            reply = await submit_claim(self.live[0], document, claim.to_json())
            if reply.status == claim_pb2.CLAIM_STATUS_ACCEPTED:
                return True
            if reply.status == claim_pb2.CLAIM_STATUS_UNCERTIFIED_ROOT:
                return False  # the root is not final and certified yet: ask again
            raise UsageError(f"demo: claim refused: {claim_pb2.ClaimStatus.Name(reply.status)}: {reply.detail}")

        waited = await _eventually(accepted, f"the {chain.network} root to be certified")
        self.say(f"      accepted once the node set certified the root ({waited:.1f} s)")
        return Claimed(chain, symbol, claim.nullifier, deposit.amount)

    async def set_eth_price(self, price: int, why: str) -> float:
        """Publish an ETH (WETH) price on the first chain's feed; wait until every node uses it."""
        chain = self.chains[0]
        await self.transact(chain, "PriceFeed", chain.token("WETH")["price_feed"], "setAnswer", price * 10**PRICE_DECIMALS)

        async def everywhere() -> bool:
            for target in self.live:
                status = await node_status(target)
                if not any(feed.name == "ETH" and feed.price == price and not feed.stale for feed in status.feeds):
                    return False
            return True

        waited = await _eventually(everywhere, f"ETH at {price} on every node")
        self.say(f"      {why}: feed answer certified and used by every node ({waited:.1f} s)")
        return waited

    async def margins(self, account: str) -> list[margin_pb2.AccountMargin]:
        answers = []
        for target in self.live:
            try:
                answers.append(await get_margin(target, account))
            except UsageError:
                pass
        return answers

    async def wait_all(self, account: str, condition: Callable[[margin_pb2.AccountMargin], bool], what: str) -> float:
        async def everywhere() -> bool:
            answers = await self.margins(account)
            return len(answers) == len(self.live) and all(condition(margin) for margin in answers)

        return await _eventually(everywhere, what)

    # --- the story -----------------------------------------------------------------------------

    async def play(self) -> None:
        say = self.say
        chain_a, chain_b = self.chains[0], self.chains[1]
        alice, bob = self.alice[0], self.bob[0]
        say(f"crossclear demo: {len(self.nodes)} nodes, {len(self.chains)} chains, clearinghouse domain {self.domain}")
        say("[1/6] the node set")
        await self.find_live_nodes()
        await self.set_eth_price(3000, "ETH starts at 3,000")

        say("[2/6] deposits on two chains")
        await asyncio.to_thread(self.fund)
        say(f"      Alice is {alice}, Bob is {bob} (fresh devnet accounts, funded on every chain)")
        alice_usdc = await self.deposit(chain_a, self.alice, "USDC", 10_000)
        alice_weth = await self.deposit(chain_b, self.alice, "WETH", 2)
        bob_usdc = await self.deposit(chain_a, self.bob, "USDC", 3_000)

        say("[3/6] claims: Groth16 proofs against certified roots, credited on every node")
        claimed = [await self.claim(chain_a, alice_usdc, "USDC"), await self.claim(chain_b, alice_weth, "WETH"), await self.claim(chain_a, bob_usdc, "USDC")]
        waited = await self.wait_all(alice, lambda m: len(m.collateral) == 2, "Alice's collateral on every node")
        await self.wait_all(bob, lambda m: len(m.collateral) == 1, "Bob's collateral on every node")
        say(f"      Alice's USDC (chain {chain_a.chain_id}) and WETH (chain {chain_b.chain_id}) credited on {len(self.live)} nodes ({waited:.1f} s)")

        say("[4/6] a hedged ETH book across chains, and an unhedged one")
        weth_a, weth_b = chain_a.token("WETH")["address"], chain_b.token("WETH")["address"]
        await self.transact(chain_a, "Market", chain_a.contracts["market"], "openPerpetual", weth_a, 5 * 10**18, 3000 * 10**18, sender=alice)
        await self.transact(chain_b, "Market", chain_b.contracts["market"], "openPerpetual", weth_b, -5 * 10**18, 3000 * 10**18, sender=alice)
        await self.transact(chain_a, "Market", chain_a.contracts["market"], "openPerpetual", weth_a, 4 * 10**18, 3000 * 10**18, sender=bob)
        say(f"      Alice: long 5 ETH perp on {chain_a.network}, short 5 ETH perp on {chain_b.network}; Bob: long 4 ETH perp on {chain_a.network}")
        await self.wait_all(alice, lambda m: len(m.positions) == 2, "Alice's positions on every node")
        await self.wait_all(bob, lambda m: len(m.positions) == 1, "Bob's position on every node")
        margin = (await self.margins(alice))[0]
        say("      Alice's margin, computed by every node from certified state:")
        for line in format_margin(margin).splitlines():
            say("      " + line)
        isolated, portfolio = margin.isolated.required, margin.portfolio.required
        gain = isolated / portfolio if portfolio > 0 else float("inf")
        say(f"      capital efficiency: isolated margin requires {isolated:,.2f}, portfolio margin {portfolio:,.2f} ({gain:.1f}x less collateral)")
        say("      " + "  ".join(f"{mode} {getattr(margin, mode).required:,.2f}" for mode in MODES))

        say("[5/6] ETH falls 25%: Bob is liquidated by a quorum, Alice is not")
        await self.set_eth_price(2250, "ETH at 2,250")
        bob_margin = (await self.margins(bob))[0]
        say(f"      Bob: equity {bob_margin.equity:,.2f} < maintenance {bob_margin.portfolio.mm:,.2f}: liquidatable on every node")
        waited = await self.wait_all(bob, lambda m: not m.collateral, "the liquidator's seize to be certified")
        vault = chain_a.web3.eth.contract(address=Web3.to_checksum_address(chain_a.contracts["vault"]), abi=list(load_artifact("CollateralVault").abi))
        seizes = await asyncio.to_thread(vault.events.Seized.get_logs, from_block=chain_a.contracts["deploy_block"])
        mine = [log for log in seizes if log["args"]["account"].lower() == bob.lower()]
        if mine:
            log = mine[-1]
            say(f"      vault on {chain_a.network} paid the seize of {log['args']['amount'] / 10**6:,.2f} USDC in transaction {log['transactionHash'].to_0x_hex()} ({waited:.1f} s)")
        alice_margin = (await self.margins(alice))[0]
        say(f"      Alice after the fall: equity {alice_margin.equity:,.2f}, health {alice_margin.health:.2f}, liquidatable {alice_margin.liquidatable}")

        say("[6/6] Alice withdraws 1,000 USDC: released by a quorum, paid by the vault")
        usdc_claim = claimed[0]
        release = await request_release(
            self.live[0], self.alice[1], usdc_claim.chain.chain_id, usdc_claim.chain.token("USDC")["address"], 1_000 * 10**6, alice, secrets.token_bytes(32), self.domain
        )
        say(f"      {len(release.signatures)} node signatures (quorum {release.threshold}): {', '.join(s[:10] + '…' for s in release.signers)}")
        token = chain_a.web3.eth.contract(address=Web3.to_checksum_address(release.token), abi=list(load_artifact("MockERC20").abi))
        before = await asyncio.to_thread(token.functions.balanceOf(alice).call)
        receipt = await self.transact(chain_a, "CollateralVault", release.vault, "release", bytes(release.release_id), release.account, release.token, int(release.amount), release.recipient, release.deadline, list(release.signatures), sender=alice)
        after = await asyncio.to_thread(token.functions.balanceOf(alice).call)
        say(f"      vault paid {(after - before) / 10**6:,.2f} USDC to Alice in transaction {receipt['transactionHash'].to_0x_hex()}")
        say("demo complete")


async def play(manifest: dict[str, Any], say: Say = print) -> None:
    """Run the story against the devnet the manifest describes."""
    try:
        await Story(manifest, say).play()
    except grpc.aio.AioRpcError as error:
        raise UsageError(f"demo: a node answered {error.code().name}: {error.details()}") from None
