"""Withdrawals: a node signs a vault Release only for the account's owner, and only when the
account stays above initial margin without that collateral.

The owner signs a WithdrawalRequest (EIP-712, bound to the clearinghouse domain) naming the
claim whose collateral to release, the amount, the recipient and a 32-byte nonce. Every node
checks it on its own; the vault pays out only with a quorum of node signatures over the
Release order, and each release id works once. A node that signs reserves the amount at once
(its margin no longer counts it), so the same collateral cannot back two releases.

The release id is not chosen by anyone: every node derives it from the whole order (chain,
vault, account, token, amount, recipient) and the owner's nonce. One id therefore names one
order, and a certified Released event is matched to a reservation by id *and* content.
Asking a node to sign an order it already signed returns the same signature again, so a
requester that lost the answers can gather them anew; the reservation is not taken twice.
"""

from __future__ import annotations

from collections.abc import Callable
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils.address import is_address, to_checksum_address
from eth_utils.crypto import keccak

from crossclear.chains.vault_orders import ReleaseOrder, VaultDomain, sign
from crossclear.margin import Mode
from crossclear.node.claims import ClaimLedger, CollateralToken
from crossclear.node.clearing import ClearingError, ClearingState
from crossclear.store import open_database

REQUEST_DOMAIN_NAME = "Crossclear"
REQUEST_DOMAIN_VERSION = "1"
#: Longest a release may stay valid: the amount is reserved (not usable) meanwhile.
MAX_RELEASE_WINDOW_SECONDS = 24 * 3600
#: After a release's deadline, how long a node waits for its Released event to be certified
#: (finality plus certification) before handing the reserved amount back to the account.
EXPIRY_GRACE_SECONDS = 300


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
    nonce: bytes
    """32 bytes chosen by the owner, so two equal withdrawals get different release ids."""
    deadline: int
    """Unix time after which the vault refuses the release; at most MAX_RELEASE_WINDOW away."""


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
                {"name": "nonce", "type": "bytes32"},
                {"name": "deadline", "type": "uint64"},
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
            "nonce": request.nonce,
            "deadline": request.deadline,
        },
    }


def sign_request(request: WithdrawalRequest, clearinghouse_domain: int, private_key: bytes) -> bytes:
    """The owner's signature over a request."""
    return bytes(Account.sign_typed_data(private_key, full_message=request_typed_data(request, clearinghouse_domain)).signature)


def release_id(chain_id: int, vault: str, account: str, token: str, amount: int, recipient: str, deadline: int, nonce: bytes) -> bytes:
    """The id every node derives for an order: keccak256 over all of it and the owner's nonce."""
    return bytes(
        keccak(
            b"crossclear-release-v1"
            + chain_id.to_bytes(32, "big")
            + bytes.fromhex(vault[2:])
            + bytes.fromhex(account[2:])
            + bytes.fromhex(token[2:])
            + amount.to_bytes(32, "big")
            + bytes.fromhex(recipient[2:])
            + deadline.to_bytes(8, "big")
            + nonce
        )
    )


def _check_shape(request: WithdrawalRequest) -> None:
    for name in ("account", "recipient"):
        if not is_address(getattr(request, name)):
            raise WithdrawalRefused(f"{name} must be a 0x address, got {getattr(request, name)!r}")
    if int(request.recipient, 16) == 0:
        raise WithdrawalRefused("recipient must not be the zero address (the vault cannot pay it)")
    if len(request.nonce) != 32:
        raise WithdrawalRefused(f"nonce must be 32 bytes, got {len(request.nonce)}")
    if not 0 <= request.deadline < 2**64:
        raise WithdrawalRefused(f"deadline must be a unix time in seconds, got {request.deadline}")
    if not 0 < request.amount < 1 << 252:
        raise WithdrawalRefused(f"amount must be a positive integer below 2^252, got {request.amount}")


_SCHEMA = """
CREATE TABLE IF NOT EXISTS releases (
    release_id BLOB PRIMARY KEY,
    claim_nullifier TEXT NOT NULL,
    account TEXT NOT NULL,
    chain_id INTEGER NOT NULL,
    asset TEXT NOT NULL,
    amount_units TEXT NOT NULL,
    amount REAL NOT NULL,
    recipient TEXT NOT NULL,
    token TEXT NOT NULL,
    deadline INTEGER NOT NULL,
    executed INTEGER NOT NULL DEFAULT 0
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
        clock: Callable[[], float] | None = None,
    ) -> None:
        """`tokens` maps (chain id, asset name) to the token the vault on that chain pays."""
        self._connection = open_database(path, shared_across_threads=True)
        self._connection.execute(_SCHEMA)
        self._ledger = ledger
        self._state = state
        self._tokens = tokens
        self._domain = clearinghouse_domain
        self._key = node_private_key
        self._clock = clock or time.time
        self._lock = threading.Lock()
        self.alarms: list[str] = []
        self.result_observers: list[Callable[[str], None]] = []
        """Called with "signed" or "refused" for every request (metrics)."""

    def restore(self) -> int:
        """Re-reserve every signed release in a fresh clearing state (after claims are restored).

        A reservation the state cannot take (its collateral already left through a certified
        event) is reported in `alarms`, never a reason not to start."""
        self._drop_expired(self._clock())
        rows = self._connection.execute("SELECT account, chain_id, asset, amount FROM releases").fetchall()
        for account, chain_id, asset, amount in rows:
            try:
                self._state.debit_collateral(account, int(chain_id), asset, float(amount))
            except ClearingError as error:
                self.alarms.append(f"reservation not restored: {error}")
        return len(rows)

    def settle_reservation(self, release_id: bytes, account: str, token: str, amount: int) -> bool:
        """A Released event was certified. True when this node signed exactly this release
        (same id and content) and so already took it out of the account's collateral; the
        reservation is then final and never expires."""
        with self._lock:
            row = self._connection.execute(
                "SELECT account, token, amount_units FROM releases WHERE release_id = ?", (release_id,)
            ).fetchone()
            matches = row is not None and (row[0].lower(), row[1].lower(), int(row[2])) == (account.lower(), token.lower(), amount)
            if matches:
                self._connection.execute("UPDATE releases SET executed = 1 WHERE release_id = ?", (release_id,))
        return matches

    def expire_reservations(self) -> int:
        """Hand back amounts reserved for releases that were never paid: their deadline and a
        grace period for the Released event to be certified have passed. Returns how many."""
        with self._lock:
            expired = self._drop_expired(self._clock())
        for account, chain_id, asset, amount in expired:
            self._state.credit_collateral(account, chain_id, asset, amount)
        return len(expired)

    def _drop_expired(self, now: float) -> list[tuple[str, int, str, float]]:
        cutoff = now - EXPIRY_GRACE_SECONDS
        rows = self._connection.execute(
            "SELECT release_id, account, chain_id, asset, amount FROM releases WHERE executed = 0 AND deadline < ?", (cutoff,)
        ).fetchall()
        for row in rows:
            self._connection.execute("DELETE FROM releases WHERE release_id = ?", (row[0],))
        return [(row[1], int(row[2]), row[3], float(row[4])) for row in rows]

    def sign_release(self, request: WithdrawalRequest, owner_signature: bytes) -> tuple[VaultDomain, ReleaseOrder, bytes]:
        """Check the request; when it passes, reserve the amount and sign the Release order."""
        try:
            signed = self._sign_release(request, owner_signature)
        except WithdrawalRefused:
            for observer in self.result_observers:
                observer("refused")
            raise
        for observer in self.result_observers:
            observer("signed")
        return signed

    def _sign_release(self, request: WithdrawalRequest, owner_signature: bytes) -> tuple[VaultDomain, ReleaseOrder, bytes]:
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
        now = self._clock()
        if not now < request.deadline <= now + MAX_RELEASE_WINDOW_SECONDS:
            raise WithdrawalRefused(
                f"deadline must be in the future and at most {MAX_RELEASE_WINDOW_SECONDS // 3600} h away (the amount stays reserved until then)"
            )
        domain = VaultDomain(chain_id=claim.chain_id, vault=to_checksum_address(f"{token.vault:#042x}"))
        token_address = to_checksum_address(f"{token.token:#042x}")
        order = ReleaseOrder(
            release_id=release_id(
                claim.chain_id, domain.vault, to_checksum_address(request.account), token_address, request.amount,
                to_checksum_address(request.recipient), request.deadline, request.nonce,
            ),
            account=to_checksum_address(request.account),
            token=token_address,
            amount=request.amount,
            recipient=to_checksum_address(request.recipient),
            deadline=request.deadline,
        )
        with self._lock:
            if self._connection.execute("SELECT 1 FROM releases WHERE release_id = ?", (order.release_id,)).fetchone():
                # Already signed and reserved: the id fixes the content, so sign the same order again.
                return domain, order, sign(domain, order, self._key)
            released = self._connection.execute(
                "SELECT amount_units FROM releases WHERE claim_nullifier = ?", (str(request.claim_nullifier),)
            ).fetchall()
            claimed_units = claim.amount_units
            remaining_units = claimed_units - sum(int(row[0]) for row in released)
            if request.amount > remaining_units:
                raise WithdrawalRefused(
                    f"claim holds {remaining_units / 10**token.decimals:g} {claim.asset} not yet released; asked for {amount:g}"
                )
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
                "INSERT INTO releases VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0)",
                (order.release_id, str(request.claim_nullifier), claim.account, claim.chain_id, claim.asset, str(request.amount), amount, order.recipient, token_address, request.deadline),
            )
            self._state.debit_collateral(claim.account, claim.chain_id, claim.asset, amount)
        return domain, order, sign(domain, order, self._key)

    def close(self) -> None:
        self._connection.close()
