"""Three honest nodes' processors and one Byzantine signer, driven through random schedules.

A model chain mines blocks (prices, trades, vault payouts) with gaps from a second to a
quarter of an hour; each node observes them in order at its own pace, receives certificates
in any order (before or after it observed the block, duplicated), credits claims in any order,
restarts at any step, and is asked to sign releases and seizes. A model vault pays any order
that carries a quorum: two honest signatures plus the Byzantine one, unused id, deadline not
passed by the block it would be paid in.

After every step:
- every node's ledger passes its conservation check and no node stopped signing;
- for every account and asset, the vault paid out at most what was deposited and credited;
- honest nodes that applied the same certified blocks, credited the same claims and hold the
  same open reservations hold the same money state, exactly.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

from eth_account import Account
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from crossclear.chains.interface import Released, Seized
from crossclear.node.withdrawals import WithdrawalRefused

from crossclear.chains.market_orders import auction_price

from .harness import (
    CHAIN,
    ETH_FEED,
    NODE_KEYS,
    OWNER_KEY,
    START,
    TOKENS,
    USDC,
    WETH,
    Harness,
    claim,
    opening_block,
    payout,
    trade as two_sided,
    price,
    release_request,
)

HONEST = 3
KEYS = [OWNER_KEY, b"\x43" * 32, b"\x44" * 32]
ACCOUNTS = [Account.from_key(key).address.lower() for key in KEYS]
TRADERS = ACCOUNTS[:2]
BACKSTOP = ACCOUNTS[2]
ASSETS = {"USDC": (TOKENS[(CHAIN, "USDC")], USDC), "WETH": (TOKENS[(CHAIN, "WETH")], WETH)}


class Clearing(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.folder = Path(tempfile.mkdtemp(prefix="crossclear-sm-"))
        self.nodes = [Harness(self.folder / f"node{i}.sqlite", NODE_KEYS[i]) for i in range(HONEST)]
        for node in self.nodes:
            self.run(node.start())
        self.blocks: list[tuple[int, int, list[Any]]] = []
        self.digests: list[list[bytes]] = []
        self.time = START
        self.observed = [0] * HONEST
        self.claims: list[Any] = []
        self.credited: list[set[int]] = [set() for _ in range(HONEST)]
        self.deposited: dict[tuple[str, str], int] = defaultdict(int)
        self.paid: dict[tuple[str, str], int] = defaultdict(int)
        self.executable: dict[tuple[bytes, int], tuple[str, Any]] = {}
        self.used: set[bytes] = set()
        self.mark = 3000
        self.positions: dict[int, tuple[str, float]] = {}
        self.nonce = 0
        self.mine_block(opening_block(START), gap=0)
        for index in range(HONEST):  # every node starts with the feeds' first answers applied
            self.catch_up(index)

    def run(self, coroutine: Any) -> Any:
        return self.loop.run_until_complete(asyncio.wait_for(coroutine, 30))

    def teardown(self) -> None:
        for node in self.nodes:
            self.run(node.stop())
        self.loop.close()
        shutil.rmtree(self.folder, ignore_errors=True)

    # --- the model chain ---------------------------------------------------------------------

    def mine_block(self, events: list[Any], gap: int) -> None:
        self.time += gap
        number = len(self.blocks) + 1
        self.blocks.append((number, self.time, events))
        # Digests depend only on the block's content: any node computes the same.
        probe = self.nodes[0]
        from crossclear.attest import SigningDomain, observation_digest
        from crossclear.node.facts import facts_for_block

        facts = facts_for_block(CHAIN, number, number.to_bytes(32, "big"), self.time, "0x" + "11" * 20, events)
        self.digests.append([observation_digest(SigningDomain(), item.fact) for item in facts])
        del probe

    def retimed(self, events: list[Any], number: int, timestamp: int) -> list[Any]:
        from dataclasses import replace

        return [replace(e, block_number=number, block_hash=number.to_bytes(32, "big"), block_timestamp=timestamp, log_index=i) for i, e in enumerate(events)]

    @rule(gap=st.sampled_from([1, 12, 120, 900]), move=st.sampled_from([0.5, 0.8, 0.95, 1.05, 1.25, 2.0]))
    def price_moves(self, gap: int, move: float) -> None:
        self.mark = max(10, int(self.mark * move))
        number, timestamp = len(self.blocks) + 1, self.time + gap
        self.mine_block([price(number, 0, timestamp, ETH_FEED, self.mark)], gap)

    @rule(gap=st.sampled_from([1, 12, 120]), maker=st.sampled_from(TRADERS), size=st.sampled_from([-3.0, -1.0, 0.5, 2.0]), off=st.sampled_from([0.0, 0.04, -0.04, 0.2]))
    def trade(self, gap: int, maker: str, size: float, off: float) -> None:
        """Two traders agree a trade (maybe outside the band, which the nodes must ignore)."""
        taker = TRADERS[1 - TRADERS.index(maker)]
        number, timestamp = len(self.blocks) + 1, self.time + gap
        position = len(self.positions) + 1
        self.positions[position] = (maker, size)
        self.mine_block([two_sided(number, 0, timestamp, maker, taker, size, self.mark * (1 + off), trade_id=position)], gap)

    @precondition(lambda self: bool(self.positions))
    @rule(gap=st.sampled_from([1, 12]), data=st.data())
    def close(self, gap: int, data: st.DataObject) -> None:
        position = data.draw(st.sampled_from(sorted(self.positions)))
        maker, size = self.positions[position]
        taker = TRADERS[1 - TRADERS.index(maker)]
        number, timestamp = len(self.blocks) + 1, self.time + gap
        self.mine_block([two_sided(number, 0, timestamp, maker, taker, -size, self.mark, trade_id=10_000 + position)], gap)

    @rule(synced=st.booleans(), wait=st.sampled_from([0, 150, 599, 900]))
    def close_outs(self, synced: bool, wait: int) -> None:
        """Nodes sign close-outs of accounts below maintenance; a backstop takes any with a quorum
        somewhere in the auction (or too late)."""
        if synced:
            self.everyone_catches_up()
        by_content: dict[Any, int] = defaultdict(int)
        for node in self.nodes:
            for signed in self.run(node.sign_close_outs()):
                by_content[signed.order] += 1
        for order, count in sorted(by_content.items(), key=lambda item: item[0].close_out_id):
            if count + 1 < 3 or order.close_out_id in self.used:
                continue
            timestamp = max(self.time + 1, order.start + wait)
            if timestamp > order.deadline:
                continue  # the market refuses an expired close-out
            self.used.add(order.close_out_id)
            fill = auction_price(order, timestamp)
            number = len(self.blocks) + 1
            event = two_sided(number, 0, timestamp, order.account.lower(), BACKSTOP, order.account_size / 10**18, fill / 10**18, trade_id=20_000 + number, close_out_id=order.close_out_id)
            self.mine_block([event], timestamp - self.time)

    @rule(gap=st.sampled_from([1, 300, 900]))
    def empty_block(self, gap: int) -> None:
        self.mine_block([], gap)

    # --- nodes -------------------------------------------------------------------------------

    @rule(node=st.integers(0, HONEST - 1), count=st.integers(1, 4))
    def observe(self, node: int, count: int) -> None:
        harness = self.nodes[node]
        for number, timestamp, events in self.blocks[self.observed[node] : self.observed[node] + count]:
            harness.observe(number, timestamp, events)
            self.observed[node] = number
        self.run(harness.progress())
        self.run(harness.settled())

    @rule(node=st.integers(0, HONEST - 1), data=st.data())
    def certificate_arrives(self, node: int, data: st.DataObject) -> None:
        index = data.draw(st.integers(0, len(self.blocks) - 1))
        self.run(self.nodes[node].certify(self.digests[index]))
        self.run(self.nodes[node].settled())

    @rule(node=st.integers(0, HONEST - 1), count=st.integers(2, 6))
    def certificates_arrive_backwards(self, node: int, count: int) -> None:
        """The newest blocks' certificates first: a later block must wait for an earlier one."""
        self.observe(node, len(self.blocks))
        for digests in reversed(self.digests[-count:]):
            self.run(self.nodes[node].certify(digests))
            self.run(self.nodes[node].settled())

    @rule(node=st.integers(0, HONEST - 1))
    def catch_up(self, node: int) -> None:
        self.run(self.nodes[node].certify([d for digests in self.digests for d in digests]))
        self.observe(node, len(self.blocks))

    @rule()
    def everyone_catches_up(self) -> None:
        for node in range(HONEST):
            self.catch_up(node)

    @rule(node=st.integers(0, HONEST - 1))
    def restart(self, node: int) -> None:
        self.run(self.nodes[node].restart())

    # --- claims ------------------------------------------------------------------------------

    @rule(node=st.integers(0, HONEST - 1), account=st.sampled_from(ACCOUNTS), asset=st.sampled_from(sorted(ASSETS)), units=st.integers(1, 10**22))
    def deposit_and_claim(self, node: int, account: str, asset: str, units: int) -> None:
        token = ASSETS[asset][0]
        verified = claim(account, units, nullifier=len(self.claims) + 1, token=token)
        self.claims.append(verified)
        self.deposited[(account, asset)] += units
        self.gossip(node, len(self.claims) - 1)

    @precondition(lambda self: bool(self.claims))
    @rule(node=st.integers(0, HONEST - 1), data=st.data())
    def gossip_arrives(self, node: int, data: st.DataObject) -> None:
        self.gossip(node, data.draw(st.integers(0, len(self.claims) - 1)))

    def gossip(self, node: int, index: int) -> None:
        verified = self.claims[index]
        outcome = self.run(self.nodes[node].credit(verified))
        assert outcome.accepted == (verified.claim.nullifier not in self.credited[node])
        self.credited[node].add(verified.claim.nullifier)
        self.run(self.nodes[node].settled())

    # --- orders and the vault ----------------------------------------------------------------

    def collect(self, signed: list[tuple[str, Any]]) -> None:
        by_content: dict[Any, int] = defaultdict(int)
        for kind, order in signed:
            by_content[(kind, order)] += 1
        for (kind, order), count in by_content.items():
            if count + 1 >= 3:  # two honest signatures and the Byzantine one make a quorum
                key = (order.release_id if kind == "release" else order.seize_id, order.amount)
                self.executable[key] = (kind, order)

    @precondition(lambda self: bool(self.claims))
    @rule(data=st.data(), fraction=st.sampled_from([1, 2, 3, 10]), window=st.sampled_from([60, 600, 7200]), synced=st.booleans())
    def release(self, data: st.DataObject, fraction: int, window: int, synced: bool) -> None:
        if synced:
            self.everyone_catches_up()
        verified = data.draw(st.sampled_from(self.claims))
        account = verified.account
        key = KEYS[ACCOUNTS.index(account)]
        self.nonce += 1
        token = "0x" + f"{verified.claim.asset:040x}"
        request = release_request(token, max(1, verified.claim.claimed_amount // fraction), self.time + window, nonce=self.nonce, account=account)
        signed = []
        for node in self.nodes:
            try:
                _, order, _ = self.run(node.sign_release(request, owner_key=key))
            except WithdrawalRefused:
                continue
            signed.append(("release", order))
        self.collect(signed)
        self.pay_now()

    @rule(synced=st.booleans())
    def seize(self, synced: bool) -> None:
        if synced:
            self.everyone_catches_up()
        signed = []
        for node in self.nodes:
            signed.extend(("seize", s.order) for s in self.run(node.sign_seizes()))
        self.collect(signed)
        self.pay_now()

    def pay_now(self) -> None:
        """A keen submitter: every executable order goes to the vault in the next block."""
        for key in sorted(self.executable):
            self.pay(key, 1)

    @precondition(lambda self: bool(self.executable))
    @rule(data=st.data(), gap=st.sampled_from([1, 12, 600]))
    def vault_pays(self, data: st.DataObject, gap: int) -> None:
        """A late submitter: an order signed earlier, maybe long expired, maybe already paid."""
        self.pay(data.draw(st.sampled_from(sorted(self.executable))), gap)

    def pay(self, key: tuple[bytes, int], gap: int) -> None:
        kind, order = self.executable[key]
        order_id = key[0]
        timestamp = self.time + gap
        if order_id in self.used or timestamp > order.deadline:
            self.executable.pop(key)
            return  # the vault refuses: id used or order expired
        asset = "USDC" if order.token.lower() == USDC else "WETH"
        account = order.account.lower()
        self.used.add(order_id)
        self.paid[(account, asset)] += order.amount
        number = len(self.blocks) + 1
        event = payout(Released if kind == "release" else Seized, number, 0, timestamp, order_id, account, order.token, order.amount, order.recipient)
        self.mine_block([event], gap)

    # --- invariants --------------------------------------------------------------------------

    @invariant()
    def never_pays_more_than_was_deposited(self) -> None:
        """Winners may take out more than they put in (what losers posted), but the vault never
        pays out more of a token than was deposited and credited."""
        for asset in ASSETS:
            paid = sum(amount for (_, name), amount in self.paid.items() if name == asset)
            deposited = sum(amount for (_, name), amount in self.deposited.items() if name == asset)
            assert paid <= deposited, f"vault paid {paid} {asset}, only {deposited} deposited"

    @invariant()
    def open_interest_nets_to_zero(self) -> None:
        for node in self.nodes:
            for instrument, sizes in node.processor.open_interest().items():
                assert sum(sizes.values()) == 0, f"{instrument} nets to {sum(sizes.values())}"

    @invariant()
    def books_balance(self) -> None:
        for node in self.nodes:
            assert node.processor.ledger.conservation_failures() == []
            assert node.processor.ledger.audit() == []  # the running totals agree with every holding
            assert not node.processor.halted

    @invariant()
    def same_facts_same_state(self) -> None:
        views: dict[Any, list[dict[str, Any]]] = defaultdict(list)
        for index, node in enumerate(self.nodes):
            applied = node.processor.status().chain_time[CHAIN][0]
            # What a node signed is its own doing (a node asked earlier may reserve what another
            # swept): nodes agree exactly once they share facts and open reservations.
            reserved = frozenset(node.processor.ledger.reservations)
            views[(applied, frozenset(self.credited[index]), reserved)].append(node.money())
        for states in views.values():
            for state in states[1:]:
                assert state == states[0]


Clearing.TestCase.settings = settings(
    max_examples=40, stateful_step_count=50, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]
)
TestClearing = Clearing.TestCase
