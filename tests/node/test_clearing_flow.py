"""Clearing for real on one node's processor: two-sided trades, variation margin that moves
money between accounts (and across chains' cash pools), close-outs of a defaulting account,
and the waterfall that leaves no bad debt while anyone can still pay it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from crossclear.chains.interface import Released
from crossclear.chains.market_orders import auction_price
from crossclear.clearing import MarkMove, settle_trade, settle_variation
from crossclear.node.withdrawals import WithdrawalRefused

from .harness import (
    BACKSTOP,
    CHAIN,
    ETH_FEED,
    FUND_ADDRESS,
    MARKET_MAKER,
    NODE_KEYS,
    OWNER,
    START,
    TOKENS,
    USDC,
    Harness,
    claim,
    opening_block,
    payout,
    price,
    release_request,
    size_units,
    trade,
)

MM_KEY = bytes.fromhex("cc" * 32)


def run(body: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(body(), 60))


async def started(tmp_path: Path) -> Harness:
    node = Harness(tmp_path / "node.sqlite", NODE_KEYS[0])
    await node.start()
    await node.certify(node.observe(1, START, opening_block()))
    await node.settled()
    return node


async def block(node: Harness, number: int, timestamp: int, events: list[Any]) -> None:
    digests = node.observe(number, timestamp, events)
    await node.progress()
    await node.certify(digests)
    await node.settled()


def usdc(dollars: float) -> int:
    return round(dollars * 10**6)


def test_variation_margin_never_creates_money() -> None:
    sizes = {"a": size_units(1.5), "b": size_units(-0.7), "c": size_units(-0.8)}
    payments, residue = settle_variation(sizes, MarkMove(300_000_000_001, 299_999_999_999, 8), 6)
    assert residue >= 0 and sum(payments.values()) + residue == 0
    with pytest.raises(ValueError, match="does not net to zero"):
        settle_variation({"a": 1}, MarkMove(1, 2, 8), 6)
    cash, residue = settle_trade("maker", "taker", size_units(2), 3010 * 10**18, 3000 * 10**8, 8, 6, premium=False)
    assert cash == {"maker": -usdc(20), "taker": usdc(20)} and residue == 0
    cash, residue = settle_trade("maker", "taker", -size_units(1), 75 * 10**18, 0, 8, 6, premium=True)
    assert cash == {"maker": usdc(75), "taker": -usdc(75)} and residue == 0


def test_every_long_has_a_short_and_the_mark_moves_money(tmp_path: Path) -> None:
    async def body() -> None:
        node = await started(tmp_path)
        await node.credit(claim(OWNER, usdc(10_000), nullifier=1))
        await node.credit(claim(MARKET_MAKER, usdc(10_000), nullifier=2))
        # OWNER buys 2 ETH at 3,010 from the market maker while the mark is 3,000: it pays 20 at
        # once (out of its USDC holding, into the chain's cash pool), the market maker is owed 20.
        await block(node, 2, START + 2, [trade(2, 0, START + 2, OWNER, MARKET_MAKER, 2.0, 3010.0)])
        open_interest = node.processor.open_interest()
        assert [sum(sizes.values()) for sizes in open_interest.values()] == [0]
        ledger = node.processor.ledger
        assert ledger.settlement == {MARKET_MAKER: usdc(20)} and ledger.balance((OWNER, CHAIN, "USDC")) == usdc(9_980)
        # The mark rises to 3,100: the long receives 200, the short pays it (180 net of the 20 it
        # was owed) out of its USDC.
        await block(node, 3, START + 3, [price(3, 0, START + 3, ETH_FEED, 3100)])
        assert ledger.settlement == {OWNER: usdc(200)}
        assert ledger.balance((MARKET_MAKER, CHAIN, "USDC")) == usdc(10_000 - 180)
        assert ledger.cash == {(CHAIN, "USDC"): usdc(200)} and ledger.conservation_failures() == []
        # The winner withdraws what the loser posted, from the chain's cash pool.
        _, gains, _ = await node.sign_release(release_request(USDC, usdc(200), START + 600))
        assert ledger.settlement == {} and ledger.cash == {(CHAIN, "USDC"): 0}
        await block(node, 4, START + 4, [payout(Released, 4, 0, START + 4, gains.release_id, OWNER, USDC, gains.amount, OWNER)])
        assert ledger.paid_out == {(CHAIN, "USDC"): usdc(200)} and ledger.conservation_failures() == []
        await node.restart()
        assert node.processor.open_interest() == open_interest
        assert node.processor.ledger.conservation_failures() == []
        await node.stop()

    run(body)


def test_a_trade_outside_the_band_and_a_self_trade_change_nothing(tmp_path: Path) -> None:
    async def body() -> None:
        node = await started(tmp_path)
        await node.credit(claim(OWNER, usdc(10_000), nullifier=1))
        before = node.money()
        await block(node, 2, START + 2, [trade(2, 0, START + 2, OWNER, MARKET_MAKER, 1.0, 3300.0), trade(2, 1, START + 2, OWNER, OWNER, 1.0, 3000.0, trade_id=2)])
        assert node.money() == before and node.processor.open_interest() == {}
        reasons = [row[3] for row in node.store.ignored()]
        assert "outside 5% of the certified ETH mark 3000" in reasons[0] and reasons[1] == "a trade needs two parties"
        await node.stop()

    run(body)


def test_a_withdrawal_beyond_holdings_and_gains_is_refused(tmp_path: Path) -> None:
    async def body() -> None:
        node = await started(tmp_path)
        await node.credit(claim(OWNER, usdc(100), nullifier=1))
        with pytest.raises(WithdrawalRefused, match="can draw 0 of settlement gains"):
            await node.sign_release(release_request(USDC, usdc(101), START + 600))
        await node.stop()

    run(body)


async def defaulted(tmp_path: Path, fund: float = 0.0) -> Harness:
    """OWNER: long 3 ETH against 1,000 USDC and 0.5 WETH; the mark then falls from 3,000 to 2,000."""
    node = await started(tmp_path)
    await node.credit(claim(OWNER, usdc(1_000), nullifier=1))
    await node.credit(claim(OWNER, 5 * 10**17, nullifier=2, token=TOKENS[(CHAIN, "WETH")]))
    await node.credit(claim(MARKET_MAKER, usdc(50_000), nullifier=3))
    await node.credit(claim(BACKSTOP, usdc(50_000), nullifier=4))
    if fund:
        await node.credit(claim(FUND_ADDRESS, usdc(fund), nullifier=5))
    await block(node, 2, START + 2, [trade(2, 0, START + 2, OWNER, MARKET_MAKER, 3.0, 3000.0)])
    await block(node, 3, START + 3, [price(3, 0, START + 3, ETH_FEED, 2000)])
    assert node.processor.snapshot is not None and node.processor.snapshot.margin(OWNER).liquidatable
    return node


def test_close_outs_go_partial_first_with_window_bound_auctions(tmp_path: Path) -> None:
    async def body() -> None:
        node = await defaulted(tmp_path)
        ledger = node.processor.ledger
        assert ledger.settlement_of(OWNER) == -usdc(2_000)  # the 1,000 USDC holding paid the rest
        first = await node.sign_close_outs()
        assert len(first) == 1
        order = first[0].order
        assert order.account_size == -size_units(0.75)  # a quarter first
        assert order.mark == 2000 * 10**18 and order.start == (START + 3) // 300 * 300 and order.deadline == order.start + 600
        assert [(s.order, s.signature) for s in await node.sign_close_outs()] == [(o.order, o.signature) for o in first]  # idempotent
        # A backstop takes it halfway through the auction, at the contract's price.
        when = order.start + 300
        fill_price = auction_price(order, when)
        await block(node, 4, when, [trade(4, 0, when, OWNER, BACKSTOP, -0.75, fill_price / 10**18, trade_id=9, close_out_id=order.close_out_id)])
        assert node.processor.open_interest()[next(iter(node.processor.open_interest()))][OWNER] == size_units(2.25)
        second = await node.sign_close_outs()
        assert second[0].order.account_size == -size_units(1.125) and second[0].order.close_out_id != order.close_out_id
        assert ledger.conservation_failures() == []
        await node.stop()

    run(body)


def test_the_waterfall_uses_the_defaulters_collateral_then_the_fund_then_the_winners(tmp_path: Path) -> None:
    async def body() -> None:
        node = await defaulted(tmp_path, fund=100.0)
        ledger = node.processor.ledger
        order = (await node.sign_close_outs())[0].order
        # Deeper and deeper: the backstop closes out everything at a low price, in three steps.
        when, number = order.start, 4
        for _ in range(3):
            orders = await node.sign_close_outs()
            if not orders:
                break
            order = orders[0].order
            when = max(when, order.start) + 1
            fill = auction_price(order, when)
            await block(node, number, when, [trade(number, 0, when, OWNER, BACKSTOP, order.account_size / 10**18, fill / 10**18, trade_id=number, close_out_id=order.close_out_id)])
            number += 1
        assert all(OWNER not in sizes for sizes in node.processor.open_interest().values())
        account, debt, uncovered = node.processor.defaults[-1]
        assert account == OWNER and debt > 0
        steps = node.store.defaults()[-1][2]
        assert "collateral_to_fund:account" in steps and "fund_pays:fund" in steps
        assert ledger.settlement_of(OWNER) == -uncovered
        assert ledger.insurance.get((CHAIN, "WETH"), 0) > 0  # the fund took (some of) the WETH
        if uncovered == 0:
            assert "deleverage" not in steps or ledger.settlement_of(MARKET_MAKER) >= 0
        assert ledger.conservation_failures() == []
        assert all(sum(sizes.values()) == 0 for sizes in node.processor.open_interest().values())
        await node.restart()
        assert node.processor.ledger.conservation_failures() == [] and node.processor.defaults[-1][0] == OWNER
        await node.stop()

    run(body)


def test_with_no_fund_the_winners_take_the_defaulters_collateral_before_any_deleveraging(tmp_path: Path) -> None:
    async def body() -> None:
        node = await defaulted(tmp_path, fund=0.0)
        ledger = node.processor.ledger
        number = 4
        for _ in range(3):
            orders = await node.sign_close_outs()
            if not orders:
                break
            order = orders[0].order
            when = order.start + 1 + number
            fill = auction_price(order, when)
            await block(node, number, when, [trade(number, 0, when, OWNER, BACKSTOP, order.account_size / 10**18, fill / 10**18, trade_id=number, close_out_id=order.close_out_id)])
            number += 1
        steps = node.store.defaults()[-1][2]
        assert "collateral_to_winner" in steps
        assert ledger.balance((OWNER, CHAIN, "WETH")) < 5 * 10**17  # the WETH went to the winner first
        assert ledger.conservation_failures() == []
        await node.stop()

    run(body)


def test_an_expired_close_out_is_signed_again_under_the_same_id_and_never_closes_twice(tmp_path: Path) -> None:
    """A close-out nobody took (or that was front-run and reverted) expires in chain time; the
    nodes sign the same close-out id in a new window, so the market can execute it only once."""

    async def body() -> None:
        node = await defaulted(tmp_path)
        (first,) = [s.order for s in await node.sign_close_outs()]
        later = first.deadline + 1
        await block(node, 4, later, [price(4, 0, later, ETH_FEED, 2000)])
        (again,) = [s.order for s in await node.sign_close_outs()]
        assert again.close_out_id == first.close_out_id and again.account_size == first.account_size
        assert again.start > first.start and again.deadline > first.deadline
        # Once taken, the same id is spent: the next close-out is a new one for what is left.
        when = again.start + 1
        fill = auction_price(again, when)
        await block(node, 5, when, [trade(5, 0, when, OWNER, BACKSTOP, again.account_size / 10**18, fill / 10**18, trade_id=5, close_out_id=again.close_out_id)])
        (after,) = [s.order for s in await node.sign_close_outs()]
        assert after.close_out_id != again.close_out_id
        # A replay of the executed close-out (a second Traded with the same id) would be a new
        # trade the market refuses; the nodes' nonce moves only once.
        assert node.processor.ledger.conservation_failures() == []
        await node.stop()

    run(body)
