"""Withdrawals: a node signs a vault Release only for the account's owner, and only when the
account stays above initial margin without that collateral.

The owner signs a WithdrawalRequest (EIP-712, bound to the clearinghouse domain) naming the
claim whose collateral to release, the amount, the recipient and a 32-byte release id. Every
node checks it on its own; the vault pays out only with a quorum of node signatures over the
Release order, and each release id works once. A node that signs reserves the amount at once
(its margin no longer counts it), so the same collateral cannot back two releases.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils.address import is_address, to_checksum_address

from crossclear.chains.vault_orders import ReleaseOrder, VaultDomain, sign
from crossclear.margin import Mode
from crossclear.node.claims import ClaimLedger, CollateralToken
from crossclear.node.clearing import ClearingError, ClearingState

REQUEST_DOMAIN_NAME = "Crossclear"
REQUEST_DOMAIN_VERSION = "1"


class WithdrawalRefused(Exception):
    """This node will not sign; the message says why, for the account owner."""


@dataclass(frozen=True)
class WithdrawalRequest:
    """What the account owner asks for, and signs."""

    account: str
    """The account (0x address) whose collateral is released."""
    claim_nullifier: int
    """The credited claim whose collateral to release (it names chain, vault and token)."""
    amount: int
    """Amount in the token's smallest unit."""
    recipient: str
    """Address the vault pays."""
    release_id: bytes
    """32 bytes chosen by the owner; the vault accepts each once."""


def request_typed_data(request: WithdrawalRequest, clearinghouse_domain: int) -> dict[str, Any]:
    """The EIP-712 message an owner signs (eth_signTypedData_v4 shape)."""
    return {
        "types": {
            "EIP712Domain": [{"name": "name", "type": "string"}, {"name": "version", "type": "string"}],
            "WithdrawalRequest": [
                {"name": "clearinghouse", "type": "uint256"},
                {"name": "account", "type": "address"},
                {"name": "claimNullifier", "type": "uint256"},
                {"name": "amount", "type": "uint256"},
                {"name": "recipient", "type": "address"},
                {"name": "releaseId", "type": "bytes32"},
            ],
        },
        "primaryType": "WithdrawalRequest",
        "domain": {"name": REQUEST_DOMAIN_NAME, "version": REQUEST_DOMAIN_VERSION},
        "message": {
            "clearinghouse": clearinghouse_domain,
            "account": to_checksum_address(request.account),
            "claimNullifier": request.claim_nullifier,
            "amount": request.amount,
            "recipient": to_checksum_address(request.recipient),
            "releaseId": request.release_id,
        },
    }


def sign_request(request: WithdrawalRequest, clearinghouse_domain: int, private_key: bytes) -> bytes:
    """The owner's signature over a request."""
    return bytes(Account.sign_typed_data(private_key, full_message=request_typed_data(request, clearinghouse_domain)).signature)


def _check_shape(request: WithdrawalRequest) -> None:
    for name in ("account", "recipient"):
        if not is_address(getattr(request, name)):
            raise WithdrawalRefused(f"{name} must be a 0x address, got {getattr(request, name)!r}")
    if len(request.release_id) != 32:
        raise WithdrawalRefused(f"release id must be 32 bytes, got {len(request.release_id)}")
    if not 0 < request.amount < 1 << 252:
        raise WithdrawalRefused(f"amount must be a positive integer below 2^252, got {request.amount}")


_SCHEMA = """
CREATE TABLE IF NOT EXISTS releases (
    release_id BLOB PRIMARY KEY,
    claim_nullifier TEXT NOT NULL,
    account TEXT NOT NULL,
    chain_id INTEGER NOT NULL,
    asset TEXT NOT NULL,
    amount_units INTEGER NOT NULL,
    amount REAL NOT NULL,
    recipient TEXT NOT NULL
)
"""


class WithdrawalDesk:
    """Checks withdrawal requests and signs vault Release orders for the ones that pass."""

    def __init__(
        self,
        path: Path | str,
        ledger: ClaimLedger,
        state: ClearingState,
        tokens: dict[tuple[int, str], CollateralToken],
        clearinghouse_domain: int,
        node_private_key: bytes,
    ) -> None:
        """`tokens` maps (chain id, asset name) to the token the vault on that chain pays."""
        self._connection = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._connection.execute("PRAGMA journal_mode=WAL")
        self._connection.execute(_SCHEMA)
        self._ledger = ledger
        self._state = state
        self._tokens = tokens
        self._domain = clearinghouse_domain
        self._key = node_private_key
        self._lock = threading.Lock()

    def restore(self) -> int:
        """Re-reserve every signed release in a fresh clearing state (after claims are restored)."""
        rows = self._connection.execute("SELECT account, chain_id, asset, amount FROM releases").fetchall()
        for account, chain_id, asset, amount in rows:
            self._state.debit_collateral(account, int(chain_id), asset, float(amount))
        return len(rows)

    def is_reserved(self, release_id: bytes) -> bool:
        """True when this node signed (and so already reserved) the release."""
        with self._lock:
            return self._connection.execute("SELECT 1 FROM releases WHERE release_id = ?", (release_id,)).fetchone() is not None

    def sign_release(self, request: WithdrawalRequest, owner_signature: bytes) -> tuple[VaultDomain, ReleaseOrder, bytes]:
        """Check the request; when it passes, reserve the amount and sign the Release order."""
        _check_shape(request)
        signable = encode_typed_data(full_message=request_typed_data(request, self._domain))
        try:
            signer = Account.recover_message(signable, signature=owner_signature)
        except Exception as error:  # eth-account raises several types for garbage signatures
            raise WithdrawalRefused(f"the owner's signature is unreadable: {error}") from None
        if signer.lower() != request.account.lower():
            raise WithdrawalRefused(f"request is signed by {signer}, not by the account {to_checksum_address(request.account)}")
        claim = self._ledger.get(request.claim_nullifier)
        if claim is None or claim.account.lower() != request.account.lower():
            raise WithdrawalRefused(f"account {request.account} has no credited claim with nullifier {request.claim_nullifier}")
        token = self._tokens.get((claim.chain_id, claim.asset))
        if token is None:
            raise WithdrawalRefused(f"no vault pays {claim.asset} on chain {claim.chain_id}")
        amount = request.amount / 10**token.decimals
        with self._lock:
            already = self._connection.execute(
                "SELECT COALESCE(SUM(amount), 0) FROM releases WHERE claim_nullifier = ?", (str(request.claim_nullifier),)
            ).fetchone()[0]
            if self._connection.execute("SELECT 1 FROM releases WHERE release_id = ?", (request.release_id,)).fetchone():
                raise WithdrawalRefused(f"release id {request.release_id.hex()} was already signed")
            if amount > claim.amount - float(already) + 1e-12:
                raise WithdrawalRefused(f"claim holds {claim.amount - float(already):g} {claim.asset} not yet released; asked for {amount:g}")
            stale = self._state.stale_feeds()
            if stale:
                raise WithdrawalRefused(f"prices are stale ({', '.join(stale)}): releases wait for fresh prices")
            try:
                after = self._state.simulate(request.account, remove_collateral=[(claim.chain_id, claim.asset, amount)])
            except ClearingError as error:
                raise WithdrawalRefused(str(error)) from None
            initial = after.im[Mode.PORTFOLIO]
            if after.equity < initial:
                raise WithdrawalRefused(
                    f"releasing {amount:g} {claim.asset} would leave equity {after.equity:,.2f} below initial margin {initial:,.2f}"
                )
            self._connection.execute(
                "INSERT INTO releases VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (request.release_id, str(request.claim_nullifier), claim.account, claim.chain_id, claim.asset, request.amount, amount, request.recipient),
            )
            self._state.debit_collateral(claim.account, claim.chain_id, claim.asset, amount)
        domain = VaultDomain(chain_id=claim.chain_id, vault=to_checksum_address(f"{token.vault:#042x}"))
        order = ReleaseOrder(
            release_id=request.release_id,
            account=to_checksum_address(request.account),
            token=to_checksum_address(f"{token.token:#042x}"),
            amount=request.amount,
            recipient=to_checksum_address(request.recipient),
        )
        return domain, order, sign(domain, order, self._key)

    def close(self) -> None:
        self._connection.close()
