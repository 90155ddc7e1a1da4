"""Liquidation orders: identical across honest nodes, only for liquidatable accounts, only on fresh prices."""

from __future__ import annotations

from eth_account import Account

from crossclear.chains.vault_orders import quorum_signatures, recover_signer
from crossclear.margin import InstrumentKind
from crossclear.node import PositionRecord
from crossclear.node.claims import CollateralToken
from crossclear.node.liquidations import LiquidationDesk

from .test_clearing import ALICE, BOB, CHAIN_A, FakeClock, make_state

USDC = CollateralToken(CHAIN_A, 0x1111111111111111111111111111111111111111, 0x2222222222222222222222222222222222222222, "USDC", 6)
LIQUIDATOR = "0x" + "33" * 20
KEYS = [bytes([index + 1]) * 32 for index in range(4)]


def desk(key: bytes, clock: FakeClock | None = None) -> LiquidationDesk:
    state = make_state(clock, heartbeat=60.0)
    # Alice: 100 USDC behind a short ETH perp already 200 under water -> liquidatable.
    state.credit_collateral(ALICE, CHAIN_A, "USDC", 100.0)
    state.set_position(ALICE, "p", PositionRecord(CHAIN_A, "ETH", InstrumentKind.PERP, -1.0, 2800.0))
    # Bob: plenty of collateral for a small position.
    state.credit_collateral(BOB, CHAIN_A, "USDC", 10_000.0)
    state.set_position(BOB, "p", PositionRecord(CHAIN_A, "ETH", InstrumentKind.PERP, 1.0, 3000.0))
    return LiquidationDesk(state, {(CHAIN_A, "USDC"): USDC}, LIQUIDATOR, key)


def test_every_node_signs_the_same_order_for_the_liquidatable_account_only() -> None:
    signed = [desk(key).sign_orders() for key in KEYS]
    assert all(len(orders) == 1 for orders in signed)
    orders = {s[0].order for s in signed}
    assert len(orders) == 1
    order = orders.pop()
    assert order.account.lower() == ALICE and order.amount == 100 * 10**6 and order.recipient.lower() == LIQUIDATOR
    domain = signed[0][0].domain
    signatures = quorum_signatures(domain, order, [s[0].signature for s in signed])
    signers = {recover_signer(domain, order, signature) for signature in signatures}
    assert signers == {Account.from_key(key).address for key in KEYS}
    assert signed[0][0].equity < signed[0][0].maintenance


def test_a_certified_seize_changes_the_next_order_id() -> None:
    node = desk(KEYS[0])
    first = node.sign_orders()[0].order.seize_id
    node.record_seized(ALICE)
    assert node.sign_orders()[0].order.seize_id != first


def test_stale_prices_sign_nothing() -> None:
    clock = FakeClock()
    node = desk(KEYS[0], clock)
    clock.now += 3600
    assert node.sign_orders() == []
