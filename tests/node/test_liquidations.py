"""Seize orders: an id and a deadline every honest node derives identically from certified
state, so their signatures add up; only for liquidatable accounts, only on fresh prices.

What one node's processor does with them (reservations, deadlines passing, nonces after a
certified Seized) is in test_processor.py."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from eth_account import Account
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from hypothesis import given
from hypothesis import strategies as st

from crossclear.chains.vault_orders import quorum_signatures, recover_signer
from crossclear.node.liquidations import SEIZE_WINDOW_SECONDS, SEIZE_WINDOWS_AHEAD, seize_deadline, seize_id

from .harness import CHAIN, ETH_FEED, LIQUIDATOR, NODE_KEYS, OWNER, START, TOKENS, USDC, WETH, Harness, claim, opening_block, perp, price

ACCOUNT = "0x" + "a1" * 20
TOKEN = "0x" + "55" * 20
BOB = "0x" + "b0" * 20


# --- seize_id ------------------------------------------------------------------------------------


def test_the_seize_id_is_the_declared_hash_of_the_holding_and_its_nonce() -> None:
    expected = keccak(
        b"crossclear-seize-v2" + bytes.fromhex("a1" * 20) + CHAIN.to_bytes(32, "big") + bytes.fromhex("55" * 20) + (3).to_bytes(32, "big")
    )
    assert seize_id(ACCOUNT, CHAIN, TOKEN, 3) == bytes(expected)


def test_the_seize_id_does_not_depend_on_how_an_address_is_written() -> None:
    reference = seize_id(ACCOUNT, CHAIN, TOKEN, 0)
    assert seize_id(to_checksum_address(ACCOUNT), CHAIN, to_checksum_address(TOKEN), 0) == reference
    assert seize_id(ACCOUNT.upper().replace("0X", "0x"), CHAIN, TOKEN[2:], 0) == reference


@given(nonce=st.integers(0, 2**64), other=st.integers(0, 2**64))
def test_the_nonce_changes_the_id(nonce: int, other: int) -> None:
    assert (seize_id(ACCOUNT, CHAIN, TOKEN, nonce) == seize_id(ACCOUNT, CHAIN, TOKEN, other)) is (nonce == other)


def test_every_part_of_the_holding_changes_the_id() -> None:
    reference = seize_id(ACCOUNT, CHAIN, TOKEN, 0)
    others = {seize_id(BOB, CHAIN, TOKEN, 0), seize_id(ACCOUNT, CHAIN + 1, TOKEN, 0), seize_id(ACCOUNT, CHAIN, "0x" + "44" * 20, 0), seize_id(ACCOUNT, CHAIN, TOKEN, 1)}
    assert reference not in others and len(others) == 4


# --- seize_deadline ------------------------------------------------------------------------------


@given(window=st.integers(0, 10**8), offset=st.integers(0, SEIZE_WINDOW_SECONDS - 1), other=st.integers(0, SEIZE_WINDOW_SECONDS - 1))
def test_the_same_window_gives_the_same_deadline(window: int, offset: int, other: int) -> None:
    start = window * SEIZE_WINDOW_SECONDS
    assert seize_deadline(start + offset) == seize_deadline(start + other) == start + SEIZE_WINDOWS_AHEAD * SEIZE_WINDOW_SECONDS


@given(chain_time=st.integers(0, 2**40), later=st.integers(0, 10**6))
def test_the_deadline_is_a_window_boundary_ahead_and_never_moves_back(chain_time: int, later: int) -> None:
    deadline = seize_deadline(chain_time)
    assert deadline % SEIZE_WINDOW_SECONDS == 0
    assert SEIZE_WINDOW_SECONDS < deadline - chain_time <= SEIZE_WINDOWS_AHEAD * SEIZE_WINDOW_SECONDS
    assert seize_deadline(chain_time + later) >= deadline


# --- honest nodes sign the same orders -------------------------------------------------------------


def run(body: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(body(), 120))


async def node_with_a_losing_account(tmp_path: Path, index: int, usdc: int = 1_000 * 10**6, last_block: int = 3) -> Harness:
    """OWNER: a long 3 ETH perp against USDC and 0.5 WETH; ETH halves in block 3. BOB: the
    same USDC, no position. Block 4 (one second later) is certified only when `last_block` is 4."""
    node = Harness(tmp_path / f"node{index}.sqlite", NODE_KEYS[index])
    await node.start()
    await node.certify(node.observe(1, START, opening_block()))
    await node.credit(claim(OWNER, usdc, nullifier=1))
    await node.credit(claim(OWNER, 5 * 10**17, nullifier=2, token=TOKENS[(CHAIN, "WETH")]))
    await node.credit(claim(BOB, usdc, nullifier=3))
    await node.certify(node.observe(2, START + 2, [perp(2, 0, START + 2, OWNER, 1, 3.0, 3000.0)]))
    await node.certify(node.observe(3, START + 3, [price(3, 0, START + 3, ETH_FEED, 1500)]))
    if last_block == 4:
        await node.certify(node.observe(4, START + 4))
    await node.settled()
    return node


def test_every_node_signs_the_same_close_outs_for_the_liquidatable_account_only(tmp_path: Path) -> None:
    """Node 3's view is one block further on (same auction window): still the same orders."""
    from crossclear.chains.market_orders import quorum_signatures as close_out_quorum
    from crossclear.chains.market_orders import recover_close_out_signer

    async def body() -> None:
        nodes = [await node_with_a_losing_account(tmp_path, index, last_block=4 if index == 3 else 3) for index in range(4)]
        signed = [await node.sign_close_outs() for node in nodes]
        orders = [[s.order for s in batch] for batch in signed]
        assert all(batch == orders[0] for batch in orders) and len(orders[0]) == 1
        (order,) = orders[0]
        assert (order.account.lower(), order.account_size) == (OWNER, -3 * 10**18 // 4)  # a quarter of the long, sold
        by_node = [batch[0] for batch in signed]
        domain = by_node[0].domain
        signatures = close_out_quorum(domain, order, [s.signature for s in by_node])
        assert {recover_close_out_signer(domain, order, signature) for signature in signatures} == {Account.from_key(key).address for key in NODE_KEYS}
        assert all(s.equity < s.maintenance for s in by_node)
        for node in nodes:
            await node.stop()

    run(body)


def test_the_close_out_id_does_not_depend_on_the_collateral_held(tmp_path: Path) -> None:
    async def body() -> None:
        small = await node_with_a_losing_account(tmp_path, 0, usdc=400 * 10**6)
        large = await node_with_a_losing_account(tmp_path, 1, usdc=500 * 10**6)
        (a,) = [s.order for s in await small.sign_close_outs()]
        (b,) = [s.order for s in await large.sign_close_outs()]
        assert a.close_out_id == b.close_out_id and a.account_size == b.account_size
        await small.stop()
        await large.stop()

    run(body)


def test_stale_prices_sign_nothing(tmp_path: Path) -> None:
    async def body() -> None:
        node = await node_with_a_losing_account(tmp_path, 0)
        await node.certify(node.observe(4, START + 3 + 3601))  # an hour of chain time with no feed answer
        await node.settled()
        assert await node.sign_seizes() == [] and await node.sign_close_outs() == []
        assert node.processor.ledger.reservations == {}
        await node.stop()

    run(body)
