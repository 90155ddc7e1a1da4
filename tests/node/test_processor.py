"""The processor: certified facts in block order, integer money, chain-time expiries, and a
regression test for each way a node could be made to pay out more than was credited."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from crossclear.chains.interface import Released, Seized
from crossclear.node.liquidations import SEIZE_WINDOW_SECONDS, seize_id
from crossclear.node.withdrawals import WithdrawalRefused
from crossclear.store import MIGRATIONS, ClearingStore, open_database

from .harness import (
    CHAIN,
    ETH_FEED,
    NODE_KEYS,
    OWNER,
    START,
    USDC,
    WETH,
    Harness,
    claim,
    opening_block,
    payout,
    perp,
    price,
    release_request,
)


def run(body: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(body(), 60))


async def started(tmp_path: Path, name: str = "node", key: bytes = NODE_KEYS[0]) -> Harness:
    harness = Harness(tmp_path / f"{name}.sqlite", key)
    await harness.start()
    await harness.certify(harness.observe(1, START, opening_block()))
    await harness.settled()
    return harness


async def block(harness: Harness, number: int, timestamp: int, events: list[Any] = (), certify: bool = True) -> list[bytes]:  # type: ignore[assignment]
    digests = harness.observe(number, timestamp, events)
    await harness.progress()
    if certify:
        await harness.certify(digests)
    await harness.settled()
    return digests


def test_claims_credit_integers_once(tmp_path: Path) -> None:
    async def body() -> None:
        node = await started(tmp_path)
        first = await node.credit(claim(OWNER, 1_000_000_001, nullifier=5))
        again = await node.credit(claim(OWNER, 1_000_000_001, nullifier=5))
        assert first.accepted and not again.accepted and "already claimed" in again.detail
        await node.settled()
        assert node.processor.ledger.balances == {(OWNER, CHAIN, "USDC"): 1_000_000_001}
        assert node.processor.snapshot is not None
        assert node.processor.snapshot.margin(OWNER).collateral[0].units == 1_000_000_001
        await node.restart()
        assert node.processor.ledger.balances == {(OWNER, CHAIN, "USDC"): 1_000_000_001}
        assert not (await node.credit(claim(OWNER, 1, nullifier=5))).accepted
        await node.stop()

    run(body)


def test_blocks_apply_in_block_order_whatever_order_certificates_arrive(tmp_path: Path) -> None:
    """An open and a close of one position do not commute: a close certified before its open
    waits for it, so live state and replay agree (once applied in arrival order, the position
    survived its close)."""

    async def body() -> None:
        node = await started(tmp_path)
        opened = node.observe(2, START + 2, [perp(2, 0, START + 2, OWNER, 7, 1.0, 3000.0)])
        closed = node.observe(3, START + 3, [perp(3, 0, START + 3, OWNER, 7, 1.0, 3000.0, is_open=False)])
        await node.progress()
        await node.certify(closed)
        await node.settled()
        assert node.processor.status().chain_time[CHAIN][0] == 1  # block 3 waits for block 2
        await node.certify(opened)
        await node.settled()
        assert node.processor.snapshot is not None
        assert node.processor.snapshot.books.get(OWNER) is None or node.processor.snapshot.books[OWNER].positions == ()
        assert node.processor.status().chain_time[CHAIN] == (3, START + 3)
        live = node.money()
        await node.restart()
        assert node.money() == live
        await node.stop()

    run(body)


def test_an_observed_block_survives_a_restart_before_its_certificate(tmp_path: Path) -> None:
    """Kill after observe, after sign, after certify and after apply: nothing lost, nothing twice."""

    async def body() -> None:
        node = await started(tmp_path)
        await node.credit(claim(OWNER, 10**9, nullifier=1))
        digests = node.observe(2, START + 2, [perp(2, 0, START + 2, OWNER, 1, 2.0, 3000.0)])
        await node.restart()  # observed and cursor stored, nothing certified yet
        assert [fact.block_number for fact in node.processor.unsigned_facts()] == [2]  # signed again at start
        node.certified.update(digests)  # the certificate formed while the node was down
        await node.restart()
        await node.progress()
        await node.settled()
        assert node.processor.snapshot is not None
        assert [pid for pid, _ in node.processor.snapshot.books[OWNER].positions] == [f"{CHAIN}:0x{'22' * 20}:ETH:perp:0:0"]
        assert node.processor.unsigned_facts() == []
        await node.restart()  # after apply: applied once, never again
        await node.certify(digests)
        await node.settled()
        assert len(node.processor.snapshot.books[OWNER].positions) == 1
        assert node.processor.ledger.balances == {(OWNER, CHAIN, "USDC"): 10**9}
        await node.stop()

    run(body)


def test_release_reservation_outlives_any_clock_until_chain_time_passes_its_deadline(tmp_path: Path) -> None:
    """Finding: a reservation handed back by the wall clock let one claim be withdrawn twice
    when the Released event was certified late. Now only chain time hands it back."""

    async def body() -> None:
        node = await started(tmp_path)
        await node.credit(claim(OWNER, 100 * 10**6, nullifier=9))
        deadline = START + 600
        domain, order, _ = await node.sign_release(release_request(USDC, 100 * 10**6, deadline))
        assert node.processor.ledger.balances == {}
        # The vault paid in a block before the deadline, but finality lags: blocks long past
        # the deadline are observed (and certified) while the Released block is not yet.
        paid = payout(Released, 2, 0, START + 500, order.release_id, OWNER, USDC, 100 * 10**6, OWNER)
        released_digests = await block(node, 2, START + 500, [paid], certify=False)
        await block(node, 3, START + 10_000, [price(3, 0, START + 10_000, ETH_FEED, 3000)])
        assert node.processor.ledger.reservations, "the reservation must not come back before the Released block is applied"
        with pytest.raises(WithdrawalRefused, match="asked for"):
            await node.sign_release(release_request(USDC, 100 * 10**6, START + 20_000, nonce=2))
        await node.certify(released_digests)
        await node.settled()
        ledger = node.processor.ledger
        assert ledger.reservations == {} and ledger.balances == {}
        assert ledger.paid_out == {(CHAIN, "USDC"): 100 * 10**6} and ledger.conservation_failures() == []
        with pytest.raises(WithdrawalRefused):
            await node.sign_release(release_request(USDC, 1, START + 20_000, nonce=3))
        await node.stop()

    run(body)


def test_an_unpaid_release_comes_back_once_chain_time_passes_its_deadline(tmp_path: Path) -> None:
    async def body() -> None:
        node = await started(tmp_path)
        await node.credit(claim(OWNER, 100 * 10**6, nullifier=9))
        await node.sign_release(release_request(USDC, 40 * 10**6, START + 600))
        await block(node, 2, START + 600)  # at the deadline the vault still pays: nothing back
        assert node.processor.ledger.balance((OWNER, CHAIN, "USDC")) == 60 * 10**6
        await node.restart()
        await block(node, 3, START + 601)
        assert node.processor.ledger.balance((OWNER, CHAIN, "USDC")) == 100 * 10**6
        assert node.store.order(next(iter([r.order_id for r in node.store.orders()]))).state == "expired"  # type: ignore[union-attr]
        await node.stop()

    run(body)


def test_release_refusals_name_the_problem_and_reserve_nothing(tmp_path: Path) -> None:
    async def body() -> None:
        node = await started(tmp_path)
        await node.credit(claim(OWNER, 100 * 10**6, nullifier=9))
        cases = [
            (release_request(USDC, 101 * 10**6, START + 600), "asked for 101000000"),
            (release_request("0x" + "ab" * 20, 1, START + 600), "no vault on chain 31001 pays"),
            (release_request(USDC, 1, START - 1), "deadline must be after"),
            (release_request(USDC, 1, START + 25 * 3600), "at most 24 h"),
        ]
        for request, message in cases:
            with pytest.raises(WithdrawalRefused, match=message):
                await node.sign_release(request)
        with pytest.raises(WithdrawalRefused, match="signed by"):
            await node.sign_release(release_request(USDC, 1, START + 600), owner_key=b"\x07" * 32)
        node.healthy = False
        with pytest.raises(WithdrawalRefused, match="not healthy"):
            await node.sign_release(release_request(USDC, 1, START + 600))
        assert node.processor.ledger.reservations == {}
        assert node.processor.ledger.balances == {(OWNER, CHAIN, "USDC"): 100 * 10**6}
        await node.stop()

    run(body)


def test_a_certified_seize_is_applied_once_and_moves_only_its_holdings_nonce(tmp_path: Path) -> None:
    """Finding: a seize id counted the account's certified seizes, so after the first holding's
    Seized the second holding got a fresh id and was paid again. Ids are per holding now, and
    only that holding's own Seized moves its nonce."""
    from .harness import TOKENS

    async def body() -> None:
        node = await started(tmp_path)
        await node.credit(claim(OWNER, 1_000 * 10**6, nullifier=1))
        await node.credit(claim(OWNER, 5 * 10**17, nullifier=2, token=TOKENS[(CHAIN, "WETH")]))
        usdc_id = seize_id(OWNER, CHAIN, USDC, 0)
        seized = payout(Seized, 2, 0, START + 2, usdc_id, OWNER, USDC, 400 * 10**6, OWNER)
        await block(node, 2, START + 2, [seized])
        await block(node, 3, START + 3, [payout(Seized, 3, 0, START + 3, usdc_id, OWNER, USDC, 400 * 10**6, OWNER)])  # the id again
        ledger = node.processor.ledger
        assert ledger.seize_nonces == {(OWNER, CHAIN, "USDC"): 1}
        assert ledger.balances == {(OWNER, CHAIN, "USDC"): 600 * 10**6, (OWNER, CHAIN, "WETH"): 5 * 10**17}
        assert ledger.paid_out == {(CHAIN, "USDC"): 400 * 10**6} and ledger.conservation_failures() == []
        # The WETH holding's next seize still has nonce 0: its id did not change.
        assert seize_id(OWNER, CHAIN, WETH, ledger.seize_nonces.get((OWNER, CHAIN, "WETH"), 0)) == seize_id(OWNER, CHAIN, WETH, 0)
        await node.stop()

    run(body)


def test_a_payout_certified_before_its_claim_waits_and_settles(tmp_path: Path) -> None:
    async def body() -> None:
        node = await started(tmp_path)
        order_id = b"\x31" * 32
        await block(node, 2, START + 2, [payout(Released, 2, 0, START + 2, order_id, OWNER, USDC, 7 * 10**6, OWNER)])
        assert list(node.processor.ledger.pending_payouts) == [order_id]
        await node.restart()
        assert list(node.processor.ledger.pending_payouts) == [order_id]
        await node.credit(claim(OWNER, 10 * 10**6, nullifier=4))
        await node.settled()
        ledger = node.processor.ledger
        assert ledger.pending_payouts == {} and ledger.balances == {(OWNER, CHAIN, "USDC"): 3 * 10**6}
        assert ledger.conservation_failures() == []
        await node.restart()
        assert node.processor.ledger.balances == {(OWNER, CHAIN, "USDC"): 3 * 10**6}
        await node.stop()

    run(body)


@pytest.mark.parametrize(("entry", "kept"), [(3000.0, True), (3140.0, True), (3200.0, False), (1.0, False)])
def test_a_trade_price_outside_the_band_of_the_certified_mark_is_ignored(tmp_path: Path, entry: float, kept: bool) -> None:
    """Finding: a trader chose its own entry price, and with it its own P&L."""

    async def body() -> None:
        node = await started(tmp_path)
        await node.credit(claim(OWNER, 10**9, nullifier=1))
        await block(node, 2, START + 2, [perp(2, 0, START + 2, OWNER, 1, 1.0, entry)])
        assert node.processor.snapshot is not None
        assert bool(node.processor.snapshot.books[OWNER].positions) is kept
        assert (node.processor.ignored_events == 1) is not kept
        if not kept:
            assert "outside 5% of the certified ETH mark 3000" in node.store.ignored()[0][3]
        await node.stop()

    run(body)


def test_a_trade_is_priced_at_its_own_block_not_at_a_later_mark(tmp_path: Path) -> None:
    async def body() -> None:
        node = await started(tmp_path)
        await node.credit(claim(OWNER, 10**9, nullifier=1))
        # The mark moves to 4000 in block 3; a trade at 3000 in block 2 certified after it is fine.
        trade = node.observe(2, START + 2, [perp(2, 0, START + 2, OWNER, 1, 1.0, 3000.0)])
        moved = node.observe(3, START + 3, [price(3, 0, START + 3, ETH_FEED, 4000)])
        await node.certify(moved)
        await node.certify(trade)
        await node.settled()
        assert node.processor.snapshot is not None and len(node.processor.snapshot.books[OWNER].positions) == 1
        await node.stop()

    run(body)


def test_the_schema_is_versioned_and_a_newer_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "node.sqlite"
    store = ClearingStore(path)
    assert store.connection.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    store.connection.execute("PRAGMA user_version = 99")
    store.close()
    with pytest.raises(RuntimeError, match="schema version 99, newer than this crossclear"):
        ClearingStore(path)


def test_credits_in_any_order_give_the_same_state_and_orders_to_the_base_unit(tmp_path: Path) -> None:
    """Finding: collateral summed as floats made two honest nodes sign orders one base unit apart
    (no quorum, or with a Byzantine signer two payable orders). Integer holdings are the same
    whatever order the claims arrive in, and so are the orders signed from them."""
    from .harness import TOKENS

    amounts = [100_000_000_000_000_001, 200_000_000_000_000_002, 3, 7 * 10**17 + 13]

    async def body() -> None:
        results = []
        for name, order in (("forward", amounts), ("backward", amounts[::-1])):
            node = await started(tmp_path, name)
            for units in order:
                await node.credit(claim(OWNER, units, nullifier=units, token=TOKENS[(CHAIN, "WETH")]))
            await block(node, 2, START + 2, [perp(2, 0, START + 2, OWNER, 1, 3.0, 3000.0)])
            await block(node, 3, START + 3, [price(3, 0, START + 3, ETH_FEED, 1000)])
            close_outs = [(s.order, s.signature) for s in await node.sign_close_outs()]
            results.append((node.money(), close_outs))
            await node.stop()
        assert results[0] == results[1]
        assert results[0][0]["owned"][(OWNER, CHAIN, "WETH")] == sum(amounts)
        assert len(results[0][1]) == 1

    run(body)


def test_an_older_file_is_migrated_in_place_keeping_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "node.sqlite"
    connection = open_database(path)
    connection.executescript(f"BEGIN; {MIGRATIONS[0]}; PRAGMA user_version = 1; COMMIT;")
    connection.execute("INSERT INTO clearing_pools VALUES (31001, 'USDC', '10', '3', '0')")
    connection.close()
    store = ClearingStore(path)
    assert store.pools() == [(31001, "USDC", 10, 3, 0, 0)]
    assert store.connection.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    store.close()
