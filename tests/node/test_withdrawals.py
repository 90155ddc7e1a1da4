"""Withdrawals: only the owner may ask, and a node signs only when the account stays above
initial margin without the released collateral; every refusal leaves the state as it was."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from eth_account import Account

from crossclear.chains.vault_orders import recover_signer
from crossclear.margin import InstrumentKind
from crossclear.node import PositionRecord
from crossclear.node.claims import ClaimLedger, ClaimProcessor, CollateralToken
from crossclear.node.withdrawals import WithdrawalDesk, WithdrawalRefused, WithdrawalRequest, sign_request
from crossclear.zk import load_verification_key
from crossclear.zk.artifacts import default_artifacts

from .test_claims import ASSET, CHAIN, DOMAIN, ROOT, VAULT, Roots, fixture
from .test_clearing import FakeClock, make_state

# Fixture claim 0 belongs to anvil's well-known test account #1.
OWNER_KEY = bytes.fromhex("59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d")
OWNER = Account.from_key(OWNER_KEY).address
NODE_KEY = bytes.fromhex("11" * 32)
STRANGER_KEY = bytes.fromhex("22" * 32)


def setup(tmp_path: Path, clock: FakeClock | None = None, heartbeat: float = 3600.0, desk_clock: FakeClock | None = None) -> tuple[WithdrawalDesk, int]:
    state = make_state(clock, heartbeat)
    token = CollateralToken(CHAIN, VAULT, ASSET, "WETH", 18)
    ledger = ClaimLedger(tmp_path / "node.sqlite")
    claims = ClaimProcessor(load_verification_key(default_artifacts().verification_key), DOMAIN, {(CHAIN, VAULT, ASSET): token}, Roots((CHAIN, VAULT, ROOT)), ledger, state)
    outcome = claims.submit(*fixture(0))
    assert outcome.accepted and outcome.claim is not None
    assert outcome.claim.account == int(OWNER, 16)
    desk = WithdrawalDesk(tmp_path / "node.sqlite", ledger, state, {(CHAIN, "WETH"): token}, DOMAIN, NODE_KEY, clock=desk_clock)
    return desk, outcome.claim.nullifier


def request(nullifier: int, amount: float, release: int = 1, recipient: str | None = None, deadline: float | None = None) -> WithdrawalRequest:
    return WithdrawalRequest(OWNER, nullifier, int(amount * 10**18), recipient or OWNER, release.to_bytes(32, "big"), int(deadline or time.time() + 600))


def held(desk: WithdrawalDesk) -> float:
    return sum(line.amount for line in desk._state.margin(OWNER).collateral)


def test_owner_gets_a_node_signature_and_the_amount_is_reserved(tmp_path: Path) -> None:
    desk, nullifier = setup(tmp_path)
    ask = request(nullifier, 0.2)
    domain, order, signature = desk.sign_release(ask, sign_request(ask, DOMAIN, OWNER_KEY))
    assert recover_signer(domain, order, signature) == Account.from_key(NODE_KEY).address
    assert (domain.chain_id, int(domain.vault, 16), int(order.token, 16), order.amount) == (CHAIN, VAULT, ASSET, 2 * 10**17)
    assert held(desk) == pytest.approx(0.3)
    # Asking again for the same order returns the same signature and reserves nothing more.
    again = desk.sign_release(ask, sign_request(ask, DOMAIN, OWNER_KEY))
    assert again == (domain, order, signature)
    assert held(desk) == pytest.approx(0.3)
    # The id is derived from the whole order: a different amount is a different release.
    assert not desk.settle_reservation(order.release_id, order.account, order.token, 1)
    assert desk.settle_reservation(order.release_id, order.account, order.token, order.amount)
    too_much = request(nullifier, 0.4, release=2)
    with pytest.raises(WithdrawalRefused, match="claim holds 0.3 WETH not yet released"):
        desk.sign_release(too_much, sign_request(too_much, DOMAIN, OWNER_KEY))
    assert held(desk) == pytest.approx(0.3)


def test_restart_keeps_reservations(tmp_path: Path) -> None:
    desk, nullifier = setup(tmp_path)
    ask = request(nullifier, 0.1)
    desk.sign_release(ask, sign_request(ask, DOMAIN, OWNER_KEY))
    state = make_state()
    ledger = ClaimLedger(tmp_path / "node.sqlite")
    token = CollateralToken(CHAIN, VAULT, ASSET, "WETH", 18)
    ClaimProcessor(load_verification_key(default_artifacts().verification_key), DOMAIN, {(CHAIN, VAULT, ASSET): token}, Roots(), ledger, state).restore()
    restarted = WithdrawalDesk(tmp_path / "node.sqlite", ledger, state, {(CHAIN, "WETH"): token}, DOMAIN, NODE_KEY)
    assert restarted.restore() == 1
    assert held(restarted) == pytest.approx(0.4)


def refused(desk: WithdrawalDesk, ask: WithdrawalRequest, signature: bytes, message: str) -> None:
    height = desk._state.height
    before = held(desk)
    with pytest.raises(WithdrawalRefused, match=message):
        desk.sign_release(ask, signature)
    assert desk._state.height == height and held(desk) == before


def test_someone_else_cannot_withdraw(tmp_path: Path) -> None:
    desk, nullifier = setup(tmp_path)
    ask = request(nullifier, 0.1, recipient=Account.from_key(STRANGER_KEY).address)
    refused(desk, ask, sign_request(ask, DOMAIN, STRANGER_KEY), "not by the account")
    refused(desk, ask, b"\x00" * 65, "unreadable|not by the account")
    refused(desk, ask, sign_request(ask, DOMAIN + 1, OWNER_KEY), "not by the account")


def test_release_that_would_break_initial_margin_is_refused(tmp_path: Path) -> None:
    desk, nullifier = setup(tmp_path)
    # 0.5 WETH (about 1,370 after haircut) backs a short 2 ETH perp: portfolio im = 1.25 x 900.
    desk._state.set_position(OWNER, "p", PositionRecord(CHAIN, "ETH", InstrumentKind.PERP, -2.0, 3000.0))
    ask = request(nullifier, 0.3)
    refused(desk, ask, sign_request(ask, DOMAIN, OWNER_KEY), "below initial margin")
    small = request(nullifier, 0.01, release=9)
    desk.sign_release(small, sign_request(small, DOMAIN, OWNER_KEY))


def test_stale_prices_block_releases(tmp_path: Path) -> None:
    clock = FakeClock()
    desk, nullifier = setup(tmp_path, clock, heartbeat=60.0)
    clock.now += 120
    ask = request(nullifier, 0.1)
    refused(desk, ask, sign_request(ask, DOMAIN, OWNER_KEY), "prices are stale")


def test_unknown_claim_and_bad_shapes(tmp_path: Path) -> None:
    desk, nullifier = setup(tmp_path)
    other = request(nullifier + 1, 0.1)
    refused(desk, other, sign_request(other, DOMAIN, OWNER_KEY), "has no credited claim")
    bad_nonce = WithdrawalRequest(OWNER, nullifier, 10, OWNER, b"short", int(time.time()) + 60)
    refused(desk, bad_nonce, b"", "nonce must be 32 bytes")
    to_nobody = WithdrawalRequest(OWNER, nullifier, 10, "0x" + "00" * 20, b"\x01" * 32, int(time.time()) + 60)
    refused(desk, to_nobody, b"", "recipient must not be the zero address")
    zero = request(nullifier, 0.0)
    refused(desk, zero, b"", "amount must be a positive integer")


def test_a_release_never_submitted_gives_its_collateral_back_after_the_deadline(tmp_path: Path) -> None:
    clock = FakeClock()
    clock.now = time.time()
    desk, nullifier = setup(tmp_path, desk_clock=clock)
    unused = request(nullifier, 0.2, release=1, deadline=clock.now + 60)
    paid = request(nullifier, 0.1, release=2, deadline=clock.now + 60)
    desk.sign_release(unused, sign_request(unused, DOMAIN, OWNER_KEY))
    _, order, _ = desk.sign_release(paid, sign_request(paid, DOMAIN, OWNER_KEY))
    assert held(desk) == pytest.approx(0.2)
    assert desk.settle_reservation(order.release_id, order.account, order.token, order.amount)  # certified Released
    clock.now += 60 + 299
    assert desk.expire_reservations() == 0  # still within the grace for a late Released event
    clock.now += 2
    assert desk.expire_reservations() == 1
    assert held(desk) == pytest.approx(0.4)  # the unused 0.2 is back; the paid 0.1 stays gone
    too_far = request(nullifier, 0.1, release=3, deadline=clock.now + 2 * 24 * 3600)
    refused(desk, too_far, sign_request(too_far, DOMAIN, OWNER_KEY), "at most 24 h away")
