"""Withdrawals: only the owner may ask, every node derives the same release id from the whole
order, and a node signs only when the account stays above initial margin without the
released collateral; every refusal names the problem and leaves the state as it was."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from crossclear.chains.interface import Released
from crossclear.chains.vault_orders import recover_signer
from crossclear.node.claims import VerifiedClaim
from crossclear.node.withdrawals import (
    MAX_RELEASE_WINDOW_SECONDS,
    WithdrawalRefused,
    WithdrawalRequest,
    check_shape,
    recover_owner,
    release_id,
    request_typed_data,
    sign_request,
)

from .harness import NODE_KEYS, START, Harness, payout, perp
from .test_claims import ASSET, CHAIN, DOMAIN, VAULT, checker, fixture, started_fixture_node

# Fixture claim 0 belongs to anvil's well-known test account #1.
OWNER_KEY = bytes.fromhex("59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d")
OWNER = Account.from_key(OWNER_KEY).address
NODE_KEY = NODE_KEYS[0]
STRANGER_KEY = bytes.fromhex("22" * 32)
WETH_UNITS = 10**18
VAULT_ADDRESS = to_checksum_address(f"{VAULT:#042x}")
TOKEN_ADDRESS = to_checksum_address(f"{ASSET:#042x}")


UNKNOWN_TOKEN = "0x" + "ab" * 20


def request(token: str, amount: float, release: int = 1, recipient: str | None = None, deadline: int = START + 600) -> WithdrawalRequest:
    return WithdrawalRequest(OWNER, CHAIN, token, int(amount * WETH_UNITS), recipient or OWNER, release.to_bytes(32, "big"), deadline)


# --- what the owner signs ------------------------------------------------------------------------


def test_the_typed_data_binds_every_field_and_the_clearinghouse() -> None:
    ask = request(TOKEN_ADDRESS, 0.25, recipient="0x" + "cd" * 20)
    typed = request_typed_data(ask, DOMAIN)
    assert typed["primaryType"] == "WithdrawalRequest"
    assert typed["domain"] == {"name": "Crossclear", "version": "1"}
    assert [field["name"] for field in typed["types"]["WithdrawalRequest"]] == [
        "clearinghouse", "account", "chainId", "token", "amount", "recipient", "nonce", "deadline",
    ]
    assert typed["message"] == {
        "clearinghouse": DOMAIN, "account": OWNER, "chainId": CHAIN, "token": TOKEN_ADDRESS, "amount": 25 * 10**16,
        "recipient": to_checksum_address("0x" + "cd" * 20), "nonce": (1).to_bytes(32, "big"), "deadline": START + 600,
    }
    # The owner's signature is an ordinary EIP-712 signature over exactly this message.
    signature = sign_request(ask, DOMAIN, OWNER_KEY)
    assert Account.recover_message(encode_typed_data(full_message=typed), signature=signature) == OWNER


def test_only_the_owner_signature_over_exactly_this_request_counts() -> None:
    ask = request(TOKEN_ADDRESS, 0.1)
    recover_owner(ask, sign_request(ask, DOMAIN, OWNER_KEY), DOMAIN)  # the owner: accepted
    lowercase = replace(ask, account=OWNER.lower())
    recover_owner(lowercase, sign_request(lowercase, DOMAIN, OWNER_KEY), DOMAIN)
    cases = [
        (sign_request(ask, DOMAIN, STRANGER_KEY), "not by the account"),
        (b"\x00" * 65, "unreadable|not by the account"),
        (b"", "unreadable"),
        (sign_request(ask, DOMAIN + 1, OWNER_KEY), "not by the account"),  # another clearinghouse
        (sign_request(replace(ask, amount=ask.amount + 1), DOMAIN, OWNER_KEY), "not by the account"),
        (sign_request(replace(ask, recipient=Account.from_key(STRANGER_KEY).address), DOMAIN, OWNER_KEY), "not by the account"),
    ]
    for signature, message in cases:
        with pytest.raises(WithdrawalRefused, match=message):
            recover_owner(ask, signature, DOMAIN)


def test_the_release_id_is_derived_from_the_whole_order_and_the_nonce() -> None:
    args: dict[str, Any] = {
        "chain_id": CHAIN, "vault": VAULT_ADDRESS, "account": OWNER, "token": TOKEN_ADDRESS,
        "amount": 10**17, "recipient": OWNER, "deadline": START + 600, "nonce": b"\x01" * 32,
    }
    reference = release_id(**args)
    assert reference == bytes(keccak(
        b"crossclear-release-v1" + CHAIN.to_bytes(32, "big") + bytes.fromhex(VAULT_ADDRESS[2:]) + bytes.fromhex(OWNER[2:])
        + bytes.fromhex(TOKEN_ADDRESS[2:]) + (10**17).to_bytes(32, "big") + bytes.fromhex(OWNER[2:]) + (START + 600).to_bytes(8, "big") + b"\x01" * 32
    ))
    assert release_id(**{**args, "vault": VAULT_ADDRESS.lower(), "account": OWNER.lower()}) == reference  # case is not content
    changed = {
        "chain_id": CHAIN + 1, "vault": "0x" + "12" * 20, "account": "0x" + "13" * 20, "token": "0x" + "14" * 20,
        "amount": 10**17 + 1, "recipient": "0x" + "15" * 20, "deadline": START + 601, "nonce": b"\x02" * 32,
    }
    ids = {name: release_id(**{**args, name: value}) for name, value in changed.items()}
    assert reference not in ids.values() and len(set(ids.values())) == len(ids)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"account": "0x1234"}, "account must be a 0x address"),
        ({"recipient": "nobody"}, "recipient must be a 0x address"),
        ({"recipient": "0x" + "00" * 20}, "recipient must not be the zero address"),
        ({"nonce": b"short"}, "nonce must be 32 bytes, got 5"),
        ({"nonce": b"\x01" * 33}, "nonce must be 32 bytes, got 33"),
        ({"deadline": -1}, "deadline must be a unix time"),
        ({"deadline": 2**64}, "deadline must be a unix time"),
        ({"amount": 0}, "amount must be a positive integer"),
        ({"amount": -5}, "amount must be a positive integer"),
        ({"amount": 1 << 252}, "amount must be a positive integer below 2\\^252"),
    ],
)
def test_bad_shapes_are_refused_by_name(change: dict[str, Any], message: str) -> None:
    check_shape(request(TOKEN_ADDRESS, 0.1))
    with pytest.raises(WithdrawalRefused, match=message):
        check_shape(replace(request(TOKEN_ADDRESS, 0.1), **change))


# --- a node's processor signing releases of a real, proven claim --------------------------------


def run(body: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(body(), 120))


async def funded(tmp_path: Path) -> tuple[Harness, int]:
    """A node that credited fixture claim 0: 0.5 WETH of OWNER on the fixtures' chain."""
    node = await started_fixture_node(tmp_path / "node.sqlite", NODE_KEY)
    verified = checker(roots=node.processor, credited=node.processor.is_credited).check(*fixture(0))
    assert isinstance(verified, VerifiedClaim) and verified.account == OWNER.lower()
    assert (await node.credit(verified)).accepted
    return node, verified.claim.nullifier


def held(node: Harness) -> int:
    return node.processor.ledger.balance((OWNER.lower(), CHAIN, "WETH"))


async def sign(node: Harness, ask: WithdrawalRequest, key: bytes = OWNER_KEY) -> Any:
    return await node.sign_release_with(ask, sign_request(ask, DOMAIN, key))


async def refused(node: Harness, ask: WithdrawalRequest, signature: bytes, message: str) -> None:
    await node.settled()
    before = (node.processor.snapshot.height if node.processor.snapshot else None, held(node), dict(node.processor.ledger.reservations), node.store.orders())
    with pytest.raises(WithdrawalRefused, match=message):
        await node.sign_release_with(ask, signature)
    await node.settled()
    after = (node.processor.snapshot.height if node.processor.snapshot else None, held(node), dict(node.processor.ledger.reservations), node.store.orders())
    assert after == before


def test_owner_gets_a_node_signature_and_the_amount_is_reserved(tmp_path: Path) -> None:
    async def body() -> None:
        node, nullifier = await funded(tmp_path)
        ask = request(TOKEN_ADDRESS, 0.2)
        domain, order, signature = await sign(node, ask)
        assert recover_signer(domain, order, signature) == Account.from_key(NODE_KEY).address
        assert (domain.chain_id, int(domain.vault, 16), int(order.token, 16), order.amount) == (CHAIN, VAULT, ASSET, 2 * 10**17)
        assert (order.account, order.recipient, order.deadline) == (OWNER, OWNER, START + 600)
        assert order.release_id == release_id(CHAIN, domain.vault, OWNER, order.token, order.amount, OWNER, ask.deadline, ask.nonce)
        assert held(node) == 3 * 10**17
        await node.settled()  # the reply comes before the batch's snapshot is published
        assert node.processor.snapshot is not None and node.processor.snapshot.margin(OWNER).collateral[0].units == 3 * 10**17
        # Asking again for the same order returns the same signature and reserves nothing more.
        assert await sign(node, ask) == (domain, order, signature)
        assert held(node) == 3 * 10**17 and list(node.processor.ledger.reservations) == [order.release_id]
        too_much = request(TOKEN_ADDRESS, 0.4, release=2)
        await refused(node, too_much, sign_request(too_much, DOMAIN, OWNER_KEY), r"holds 300000000000000000 base units of WETH on chain \d+; asked for 400000000000000000")
        assert node.processor.ledger.conservation_failures() == []
        await node.stop()

    run(body)


def test_restart_keeps_reservations(tmp_path: Path) -> None:
    async def body() -> None:
        node, nullifier = await funded(tmp_path)
        ask = request(TOKEN_ADDRESS, 0.1)
        _, order, signature = await sign(node, ask)
        await node.restart()
        assert held(node) == 4 * 10**17 and list(node.processor.ledger.reservations) == [order.release_id]
        assert (await sign(node, ask))[2] == signature  # still the same order, not reserved twice
        assert held(node) == 4 * 10**17
        await node.stop()

    run(body)


def test_someone_else_cannot_withdraw(tmp_path: Path) -> None:
    async def body() -> None:
        node, nullifier = await funded(tmp_path)
        ask = request(TOKEN_ADDRESS, 0.1, recipient=Account.from_key(STRANGER_KEY).address)
        await refused(node, ask, sign_request(ask, DOMAIN, STRANGER_KEY), "not by the account")
        await refused(node, ask, b"\x00" * 65, "unreadable|not by the account")
        await refused(node, ask, sign_request(ask, DOMAIN + 1, OWNER_KEY), "not by the account")
        # The stranger asking for the owner's token in their own name finds no holding of theirs.
        theirs = replace(ask, account=Account.from_key(STRANGER_KEY).address)
        await refused(node, theirs, sign_request(theirs, DOMAIN, STRANGER_KEY), "holds 0 base units of WETH")
        await node.stop()

    run(body)


def test_release_that_would_break_initial_margin_is_refused(tmp_path: Path) -> None:
    async def body() -> None:
        node, nullifier = await funded(tmp_path)
        # 0.5 WETH backs a certified short 2 ETH perp: releasing 0.3 leaves too little.
        short = perp(2, 0, START + 2, OWNER.lower(), 1, -2.0, 3000.0, chain_id=CHAIN)
        await node.certify(node.observe(2, START + 2, [short]))
        await node.settled()
        assert node.processor.snapshot is not None and len(node.processor.snapshot.margin(OWNER).positions) == 1
        ask = request(TOKEN_ADDRESS, 0.3)
        await refused(node, ask, sign_request(ask, DOMAIN, OWNER_KEY), "would leave equity .* below initial margin")
        small = request(TOKEN_ADDRESS, 0.01, release=9)
        await sign(node, small)
        assert held(node) == 49 * 10**16
        await node.stop()

    run(body)


def test_stale_prices_block_releases(tmp_path: Path) -> None:
    async def body() -> None:
        node, nullifier = await funded(tmp_path)
        later = START + 3601  # the feeds' heartbeat is an hour of chain time; nobody answered since
        await node.certify(node.observe(2, later))
        await node.settled()
        assert node.processor.status().chain_time[CHAIN] == (2, later)
        ask = request(TOKEN_ADDRESS, 0.1, deadline=later + 600)
        await refused(node, ask, sign_request(ask, DOMAIN, OWNER_KEY), "prices are stale")
        await node.stop()

    run(body)


def test_unknown_claim_and_bad_shapes(tmp_path: Path) -> None:
    async def body() -> None:
        node, nullifier = await funded(tmp_path)
        other = request(UNKNOWN_TOKEN, 0.1)
        await refused(node, other, sign_request(other, DOMAIN, OWNER_KEY), "no vault on chain .* pays token")
        await refused(node, replace(request(TOKEN_ADDRESS, 0.1), nonce=b"short"), b"", "nonce must be 32 bytes")
        await refused(node, request(TOKEN_ADDRESS, 0.1, recipient="0x" + "00" * 20), b"", "recipient must not be the zero address")
        await refused(node, request(TOKEN_ADDRESS, 0.0), b"", "amount must be a positive integer")
        too_far = request(TOKEN_ADDRESS, 0.1, release=3, deadline=START + MAX_RELEASE_WINDOW_SECONDS + 1)
        await refused(node, too_far, sign_request(too_far, DOMAIN, OWNER_KEY), "at most 24 h")
        await node.stop()

    run(body)


def test_a_payout_is_matched_to_the_reservation_by_id_and_content(tmp_path: Path) -> None:
    """The id is derived from the whole order, so a certified Released under a reserved id with
    another amount is not that order: the reservation comes back and the amount paid is debited."""

    async def body() -> None:
        node, nullifier = await funded(tmp_path)
        _, order, _ = await sign(node, request(TOKEN_ADDRESS, 0.2))
        assert held(node) == 3 * 10**17
        odd = payout(Released, 2, 0, START + 2, order.release_id, OWNER, TOKEN_ADDRESS, 1, OWNER, chain_id=CHAIN, vault=VAULT_ADDRESS)
        await node.certify(node.observe(2, START + 2, [odd]))
        await node.settled()
        ledger = node.processor.ledger
        assert ledger.reservations == {} and held(node) == 5 * 10**17 - 1
        assert ledger.paid_out == {(CHAIN, "WETH"): 1} and ledger.conservation_failures() == []
        await node.stop()

    run(body)
