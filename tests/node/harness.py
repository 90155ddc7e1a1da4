"""A node's processor on its own, fed certified facts by the test instead of chains and gossip.

Everything the processor does is real (SQLite file, ledger, kernel, signatures); only the
inputs are scripted: a block "observed" here is written exactly as the chain follower writes
it (facts and cursor in one transaction), and "certified" means the attestation store would
answer yes for its digest.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_account import Account

from crossclear.attest import SigningDomain, observation_digest
from crossclear.chains.interface import AnyObservation, InstrumentKind, Traded, PriceUpdated, Released, Seized
from crossclear.chains.vault_orders import ReleaseOrder, VaultDomain
from crossclear.node.claims import ClaimOutcome, CollateralToken, VerifiedClaim
from crossclear.node.facts import ChainNames, facts_for_block
from crossclear.node.liquidations import SignedCloseOut, SignedSeize
from crossclear.node.processor import CertificatesFormed, ChainProgress, CreditClaim, Processor, ProcessorConfig, SignCloseOuts, SignRelease, SignSeizes
from crossclear.node.withdrawals import WithdrawalRequest, sign_request
from crossclear.store import ClearingStore, CursorRow, ObservedRow
from crossclear.zk import ClaimPublicSignals

from .test_clearing import make_state

CHAIN = 31001
OTHER_CHAIN = 31002
VAULT = "0x" + "11" * 20
MARKET = "0x" + "22" * 20
ETH_FEED = "0x" + "33" * 20
WETH = "0x" + "44" * 20
USDC = "0x" + "55" * 20
USDC_FEED = "0x" + "66" * 20
BTC_FEED = "0x" + "88" * 20
DOMAIN = 7
NODE_KEYS = [bytes([index + 1]) * 32 for index in range(4)]
NODE_SET = [Account.from_key(key).address for key in NODE_KEYS]
LIQUIDATOR = "0x" + "99" * 20
START = 1_800_000_000
OWNER_KEY = b"\x42" * 32
OWNER = Account.from_key(OWNER_KEY).address.lower()

TOKENS = {
    (CHAIN, "USDC"): CollateralToken(CHAIN, int(VAULT, 16), int(USDC, 16), "USDC", 6),
    (CHAIN, "WETH"): CollateralToken(CHAIN, int(VAULT, 16), int(WETH, 16), "WETH", 18),
}
NAMES = {
    CHAIN: ChainNames(CHAIN, VAULT, {WETH: "ETH"}, {ETH_FEED: ("ETH", "WETH"), USDC_FEED: ("USDC",), BTC_FEED: ("BTC", "WBTC")}, {USDC: ("USDC", 6), WETH: ("WETH", 18)}),
}
FEED_CHAINS = {"ETH": CHAIN, "WETH": CHAIN, "USDC": CHAIN, "BTC": CHAIN, "WBTC": CHAIN}


def base(contract: str, block: int, log_index: int, timestamp: int, chain_id: int = CHAIN) -> dict[str, Any]:
    return {
        "chain_id": chain_id, "contract": contract, "block_number": block, "block_hash": block.to_bytes(32, "big"),
        "block_timestamp": timestamp, "tx_hash": bytes([log_index % 256]) * 32, "log_index": log_index,
    }


def price(block: int, log_index: int, timestamp: int, feed: str, dollars: int, decimals: int = 8, chain_id: int = CHAIN) -> PriceUpdated:
    asset = {ETH_FEED: WETH, USDC_FEED: USDC}.get(feed, "0x" + "ab" * 20)
    return PriceUpdated(**base(feed, block, log_index, timestamp, chain_id), asset=asset, answer=dollars * 10**decimals, decimals=decimals, round_id=block, updated_at=timestamp)


#: The other side of every trade `perp` makes: a market maker.
MARKET_MAKER = "0x" + "cc" * 20
#: Claims by this address seed the insurance fund.
FUND_ADDRESS = "0x" + "fd" * 20
#: A backstop liquidator that takes close-outs.
BACKSTOP = "0x" + "bb" * 20


def trade(
    block: int, log_index: int, timestamp: int, maker: str, taker: str, maker_size: float, price: float, *,
    trade_id: int = 1, close_out_id: bytes = bytes(32), chain_id: int = CHAIN,
    kind: InstrumentKind = InstrumentKind.PERPETUAL, strike: float = 0.0, expiry: int = 0, is_call: bool = False,
) -> Traded:
    """A two-sided trade on the market: `maker` trades `maker_size` (positive: buys), `taker` the opposite."""
    return Traded(
        **base(MARKET, block, log_index, timestamp, chain_id), trade_id=trade_id.to_bytes(32, "big"), maker=maker, taker=taker,
        underlying=WETH, kind=kind, strike=int(strike * 10**18), expiry=expiry, is_call=is_call,
        maker_size=int(size_units(maker_size)), price=int(price * 10**18), close_out_id=close_out_id,
    )


def size_units(size: float) -> int:
    return int(round(size * 10**18))


def perp(
    block: int, log_index: int, timestamp: int, trader: str, position_id: int, size: float, entry: float, is_open: bool = True, chain_id: int = CHAIN
) -> Traded:
    """`trader` buys `size` perpetuals at `entry` from the market maker (sells them back to it when
    `is_open` is False)."""
    return trade(block, log_index, timestamp, trader, MARKET_MAKER, size if is_open else -size, entry, trade_id=position_id * 2 + (0 if is_open else 1), chain_id=chain_id)


def payout(
    kind: type[Released] | type[Seized], block: int, log_index: int, timestamp: int, order_id: bytes, account: str, token: str, amount: int, recipient: str,
    chain_id: int = CHAIN, vault: str = VAULT,
) -> Released | Seized:
    return kind(**base(vault, block, log_index, timestamp, chain_id), order_id=order_id, account=account, asset=token, amount=amount, recipient=recipient)


def claim(account: str, amount: int, nullifier: int, token: CollateralToken = TOKENS[(CHAIN, "USDC")]) -> VerifiedClaim:
    signals = ClaimPublicSignals(root=1, source_chain_id=token.chain_id, vault=token.vault, account=int(account, 16), asset=token.token, claimed_amount=amount, nullifier=nullifier, domain=DOMAIN)
    return VerifiedClaim(signals, token, "{}", "[]")


@dataclass
class Harness:
    """One node's processor with a scripted view of the chain.

    By default it clears the scripted chain CHAIN; pass `chain`, `vault`, `names`, `tokens`,
    `feed_chains`, `domain` and `liquidation_recipient` to clear another deployment (a real
    anvil vault, the zk fixtures' chain)."""

    path: Path
    key: bytes
    certified: set[bytes] = field(default_factory=set)
    healthy: bool = True
    chain: int = CHAIN
    vault: str = VAULT
    names: Mapping[int, ChainNames] = field(default_factory=lambda: NAMES)
    tokens: Mapping[tuple[int, str], CollateralToken] = field(default_factory=lambda: TOKENS)
    feed_chains: Mapping[str, int] = field(default_factory=lambda: FEED_CHAINS)
    domain: int = DOMAIN
    liquidation_recipient: str | None = LIQUIDATOR
    processor: Processor = field(init=False)
    store: ClearingStore = field(init=False)
    _task: asyncio.Task[None] | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self._open()

    def _open(self) -> None:
        self.store = ClearingStore(self.path)
        config = ProcessorConfig(
            self.names, self.tokens, self.feed_chains, self.domain, self.key, self.liquidation_recipient, price_band=0.05, insurance_fund=FUND_ADDRESS
        )
        self.processor = Processor(config, self.store, make_state(fresh=False), self.certified.__contains__, lambda chain: self.healthy)

    async def start(self) -> None:
        await self.processor.load()
        self._task = asyncio.create_task(self.processor.run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        self.processor.close()
        self.store.close()

    async def restart(self) -> None:
        await self.stop()
        self._open()
        await self.start()

    async def settled(self) -> None:
        await self.processor.queue.join()

    # --- inputs ----------------------------------------------------------------------------

    def observe(self, block: int, timestamp: int, events: Sequence[AnyObservation] = ()) -> list[bytes]:
        """Store one block as the follower would; returns the digests of its EVENTS facts."""
        observed = facts_for_block(self.chain, block, block.to_bytes(32, "big"), timestamp, self.vault, list(events))
        digests = []
        with self.store.transaction():
            for item in observed:
                fact = item.fact
                digest = observation_digest(SigningDomain(), fact)
                self.store.insert_observed(ObservedRow(digest, int(fact.kind), fact.chain_id, fact.emitter, fact.block_number, fact.block_hash, fact.root, fact.leaf_count, timestamp, item.events, False))
                digests.append(digest)
            cursor = self.store.cursor("devnet-a")
            if cursor is None or cursor.block_number < block:
                self.store.save_cursor("devnet-a", CursorRow(self.chain, block, block.to_bytes(32, "big"), timestamp))
        return digests

    async def progress(self) -> None:
        await self.processor.queue.put(ChainProgress(self.chain))

    async def certify(self, digests: Sequence[bytes]) -> None:
        self.certified.update(digests)
        await self.processor.queue.put(CertificatesFormed(()))
        await self.processor.queue.put(ChainProgress(self.chain))

    async def credit(self, verified: VerifiedClaim) -> ClaimOutcome:
        reply: asyncio.Future[ClaimOutcome] = asyncio.get_running_loop().create_future()
        await self.processor.queue.put(CreditClaim(verified, reply))
        return await reply

    async def sign_release(self, request: WithdrawalRequest, owner_key: bytes = OWNER_KEY) -> tuple[VaultDomain, ReleaseOrder, bytes]:
        return await self.sign_release_with(request, sign_request(request, self.domain, owner_key))

    async def sign_release_with(self, request: WithdrawalRequest, owner_signature: bytes) -> tuple[VaultDomain, ReleaseOrder, bytes]:
        """What WithdrawalServicer calls: check, reserve and sign with the owner's signature as given."""
        reply: asyncio.Future[tuple[VaultDomain, ReleaseOrder, bytes]] = asyncio.get_running_loop().create_future()
        await self.processor.queue.put(SignRelease(request, owner_signature, reply))
        return await reply

    async def sign_close_outs(self) -> list[SignedCloseOut]:
        reply: asyncio.Future[list[SignedCloseOut]] = asyncio.get_running_loop().create_future()
        await self.processor.queue.put(SignCloseOuts(reply))
        return await reply

    async def sign_seizes(self) -> list[SignedSeize]:
        reply: asyncio.Future[list[SignedSeize]] = asyncio.get_running_loop().create_future()
        await self.processor.queue.put(SignSeizes(reply))
        return await reply

    # --- reading ---------------------------------------------------------------------------

    def money(self) -> dict[str, Any]:
        """The part of the state every honest node must agree on, bit for bit."""
        ledger = self.processor.ledger
        owned: dict[tuple[str, int, str], int] = dict(ledger.balances)
        for reservation in ledger.reservations.values():
            owned[reservation.line] = owned.get(reservation.line, 0) + reservation.amount
        snapshot = self.processor.snapshot
        return {
            "owned": {k: v for k, v in owned.items() if v},
            "credited": {k: v for k, v in ledger.credited.items() if v},
            "paid_out": {k: v for k, v in ledger.paid_out.items() if v},
            "nonces": dict(ledger.seize_nonces),
            "pending": sorted(ledger.pending_payouts),
            "positions": {a: b.positions for a, b in snapshot.books.items() if b.positions} if snapshot else {},
            "prices": {n: (f.price, f.updated_at) for n, f in snapshot.feeds.items()} if snapshot else {},
        }


def release_request(token: str, amount: int, deadline: int, nonce: int = 1, account: str = OWNER, recipient: str | None = None, chain: int = CHAIN) -> WithdrawalRequest:
    return WithdrawalRequest(account, chain, token, amount, recipient or account, nonce.to_bytes(32, "big"), deadline)


def opening_block(timestamp: int = START, chain_id: int = CHAIN, block: int = 1) -> list[AnyObservation]:
    """Block 1: the feeds answer (ETH 3000, USDC 1), so prices are fresh from there on."""
    return [
        price(block, 0, timestamp, ETH_FEED, 3000, chain_id=chain_id),
        price(block, 1, timestamp, USDC_FEED, 1, chain_id=chain_id),
        price(block, 2, timestamp, BTC_FEED, 60000, chain_id=chain_id),
    ]


def chain_names(chain_id: int, vault: str, collateral: Mapping[str, tuple[str, int]]) -> ChainNames:
    """Another deployment's names, with the scripted Market (WETH underlying) and feeds."""
    return ChainNames(
        chain_id, vault.lower(), {WETH: "ETH"}, {ETH_FEED: ("ETH", "WETH"), USDC_FEED: ("USDC",), BTC_FEED: ("BTC", "WBTC")},
        {token.lower(): named for token, named in collateral.items()},
    )


def every_feed_on(chain_id: int) -> dict[str, int]:
    return {name: chain_id for name in FEED_CHAINS}
