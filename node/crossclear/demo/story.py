"""The whole crossclear story, played against a running devnet (`crossclear devnet up`).

1. Alice deposits USDC on one chain and WETH on another; Bob deposits USDC on the first chain,
   Carol (a market maker) USDC on the second; the insurance fund and the backstop liquidator
   post USDC too.
2. They prove their deposits with Groth16 and submit the claims to one node; the node set
   certifies the vault roots, checks the proofs and credits the collateral on every node.
3. Two-sided trades: Alice buys ETH perpetuals from Carol on one chain and sells them to her on
   the other (a hedge across chains); Bob buys from Carol. Every long has a short.
4. Alice's margin under the four modes, side by side: what portfolio margin saves.
5. ETH falls 30%: variation margin moves Bob's loss to Carol; Bob's loss is more than he
   posted, so the node set closes his position out (the liquidator takes it by auction) and
   the waterfall covers what he still owes from the insurance fund. Alice's hedge is untouched.
6. Carol withdraws her gains on the other chain, out of what Bob posted there.
7. Alice withdraws part of her USDC.

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
from crossclear.devnet.trading import trade_perpetual
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
        alice, bob, carol = Account.create(), Account.create(), Account.create()
        self.alice = (str(alice.address), bytes(alice.key))
        self.bob = (str(bob.address), bytes(bob.key))
        self.carol = (str(carol.address), bytes(carol.key))
        self.fund_owner = (Web3.to_checksum_address(manifest["insurance_fund"]), b"") if manifest.get("insurance_fund") else None
        liquidator = manifest.get("liquidator") or {}
        self.backstop = (Web3.to_checksum_address(liquidator["recipient"]), b"") if liquidator.get("recipient") else None
        self.live: list[str] = []
        self.nonce = 0

    def fund(self) -> None:
        """Gas and tokens for Alice and Bob on every chain (anvil cheat codes and open mints)."""
        owners = [self.alice, self.bob, self.carol] + [owner for owner in (self.fund_owner, self.backstop) if owner is not None]
        for chain in self.chains:
            for address, _ in owners:
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

    async def trade(self, chain: Chain, maker: tuple[str, bytes], taker: tuple[str, bytes], size: float, price: int) -> None:
        """`maker` signs an order for `size` ETH perpetuals at `price`; `taker` fills it."""
        self.nonce += 1
        await asyncio.to_thread(
            trade_perpetual, chain.web3, chain.contracts["market"], chain.token("WETH")["address"], maker[1], maker[0], taker[0],
            int(size * 10**18), price * 10**18, self.nonce,
        )

    async def play(self) -> None:
        say = self.say
        chain_a, chain_b = self.chains[0], self.chains[1]
        alice, bob, carol = self.alice[0], self.bob[0], self.carol[0]
        if self.fund_owner is None or self.backstop is None:
            raise UsageError("demo: the devnet names no insurance fund or liquidator; restart it with `crossclear devnet up`")
        say(f"crossclear demo: {len(self.nodes)} nodes, {len(self.chains)} chains, clearinghouse domain {self.domain}")
        say("[1/7] the node set")
        await self.find_live_nodes()
        await self.set_eth_price(3000, "ETH starts at 3,000")

        say("[2/7] deposits on two chains")
        await asyncio.to_thread(self.fund)
        say(f"      Alice is {alice}, Bob is {bob}, Carol (a market maker) is {carol}: fresh accounts, funded on every chain")
        deposits = [
            (chain_a, await self.deposit(chain_a, self.alice, "USDC", 10_000), "USDC"),
            (chain_b, await self.deposit(chain_b, self.alice, "WETH", 2), "WETH"),
            (chain_a, await self.deposit(chain_a, self.bob, "USDC", 3_000), "USDC"),
            (chain_b, await self.deposit(chain_b, self.carol, "USDC", 60_000), "USDC"),
            (chain_a, await self.deposit(chain_a, self.fund_owner, "USDC", 5_000), "USDC"),
            (chain_a, await self.deposit(chain_a, self.backstop, "USDC", 20_000), "USDC"),
        ]

        say("[3/7] claims: Groth16 proofs against certified roots, credited on every node")
        for chain, deposit, symbol in deposits:
            await self.claim(chain, deposit, symbol)
        waited = await self.wait_all(alice, lambda m: len(m.collateral) == 2, "Alice's collateral on every node")
        await self.wait_all(bob, lambda m: len(m.collateral) == 1, "Bob's collateral on every node")
        await self.wait_all(carol, lambda m: len(m.collateral) == 1, "Carol's collateral on every node")
        say(f"      Alice's USDC (chain {chain_a.chain_id}) and WETH (chain {chain_b.chain_id}) credited on {len(self.live)} nodes ({waited:.1f} s); the insurance fund holds 5,000 USDC")

        say("[4/7] two-sided trades: a hedge across chains, and an unhedged long")
        await self.trade(chain_a, self.alice, self.carol, 5, 3000)
        await self.trade(chain_b, self.alice, self.carol, -5, 3000)
        await self.trade(chain_a, self.bob, self.carol, 4, 3000)
        say(f"      Alice bought 5 ETH perps from Carol on {chain_a.network} and sold her 5 on {chain_b.network}; Bob bought 4 from Carol on {chain_a.network}")
        await self.wait_all(alice, lambda m: len(m.positions) == 2, "Alice's positions on every node")
        await self.wait_all(bob, lambda m: len(m.positions) == 1, "Bob's position on every node")
        carol_margin = (await self.margins(carol))[0]
        net = sum(p.qty for p in carol_margin.positions)
        say(f"      every long has a short: Carol holds {', '.join(f'{p.qty:+g} on chain {p.chain_id}' for p in carol_margin.positions)} (net {net:+g} = -(Alice + Bob))")
        margin = (await self.margins(alice))[0]
        say("      Alice's margin, computed by every node from certified state:")
        for line in format_margin(margin).splitlines():
            say("      " + line)
        isolated, portfolio = margin.isolated.required, margin.portfolio.required
        gain = isolated / portfolio if portfolio > 0 else float("inf")
        say(f"      capital efficiency: isolated margin requires {isolated:,.2f}, portfolio margin {portfolio:,.2f} ({gain:.1f}x less collateral)")
        say("      " + "  ".join(f"{mode} {getattr(margin, mode).required:,.2f}" for mode in MODES))

        say("[5/7] ETH falls 30%: variation margin, a default, the close-out and the waterfall")
        await self.set_eth_price(2100, "ETH at 2,100")
        bob_margin = (await self.margins(bob))[0]
        say(f"      Bob lost 3,600 on 3,000 posted: equity {bob_margin.equity:,.2f} < maintenance {bob_margin.portfolio.mm:,.2f}: he defaults")
        waited = await self.wait_all(bob, lambda m: not m.positions, "Bob's position to be closed out on every node")
        say(f"      the node set signed close-outs (a quarter, a half, then the rest); the liquidator took them by auction ({waited:.1f} s)")
        waited = await self.wait_all(bob, lambda m: not any(h.chain_id == 0 and int(h.amount_units or 0) < 0 for h in m.collateral), "Bob's debt to be covered")
        say(f"      the waterfall covered what Bob still owed from the insurance fund ({waited:.1f} s): nobody else pays")
        alice_margin = (await self.margins(alice))[0]
        say(f"      Alice after the fall: equity {alice_margin.equity:,.2f}, health {alice_margin.health:.2f}, liquidatable {alice_margin.liquidatable}")
        carol_margin = (await self.margins(carol))[0]
        gains = sum(int(h.amount_units) for h in carol_margin.collateral if h.chain_id == 0)
        say(f"      Carol's settlement balance: {gains / 10**6:,.2f} USDC of variation margin owed to her")

        say(f"[6/7] Carol withdraws 3,000 USDC of her gains on {chain_a.network}, where Bob's USDC was")
        release = await request_release(
            self.live[0], self.carol[1], chain_a.chain_id, chain_a.token("USDC")["address"], 3_000 * 10**6, carol, secrets.token_bytes(32), self.domain
        )
        paid = await self.release(chain_a, release, carol)
        say(f"      {len(release.signatures)} node signatures; vault on {chain_a.network} paid {paid / 10**6:,.2f} USDC to Carol, whose own collateral is on {chain_b.network}")

        say("[7/7] Alice withdraws 1,000 USDC: released by a quorum, paid by the vault")
        release = await request_release(
            self.live[0], self.alice[1], chain_a.chain_id, chain_a.token("USDC")["address"], 1_000 * 10**6, alice, secrets.token_bytes(32), self.domain
        )
        say(f"      {len(release.signatures)} node signatures (quorum {release.threshold}): {', '.join(s[:10] + '…' for s in release.signers)}")
        paid = await self.release(chain_a, release, alice)
        say(f"      vault paid {paid / 10**6:,.2f} USDC to Alice")
        say("demo complete")

    async def release(self, chain: Chain, release: Any, owner: str) -> int:
        """Submit a quorum release to the vault; returns what the owner received."""
        token = chain.web3.eth.contract(address=Web3.to_checksum_address(release.token), abi=list(load_artifact("MockERC20").abi))
        before = await asyncio.to_thread(token.functions.balanceOf(owner).call)
        await self.transact(chain, "CollateralVault", release.vault, "release", bytes(release.release_id), release.account, release.token, int(release.amount), release.recipient, release.deadline, list(release.signatures), sender=owner)
        after = await asyncio.to_thread(token.functions.balanceOf(owner).call)
        return int(after - before)


async def play(manifest: dict[str, Any], say: Say = print) -> None:
    """Run the story against the devnet the manifest describes."""
    try:
        await Story(manifest, say).play()
    except grpc.aio.AioRpcError as error:
        raise UsageError(f"demo: a node answered {error.code().name}: {error.details()}") from None
