"""Withdrawals: what an owner asks for, and the release id every node derives from it.

A node signs a vault Release only for the account's owner, and only when the account stays
above initial margin without that collateral (the processor decides, see
crossclear.node.processor).

The owner signs a WithdrawalRequest (EIP-712, bound to the clearinghouse domain) naming the
chain and token to be paid, the amount, the recipient, a 32-byte nonce and a deadline. It
draws on the account's holding of that token on that chain, or, for the settlement asset, on
its settlement balance (variation-margin gains) where that chain's cash pool can pay. Every node
checks it on its own; the vault pays out only with a quorum of node signatures over the
Release order, and each release id works once. A node that signs reserves the amount at once
(its margin no longer counts it), so the same collateral cannot back two releases. The
reservation comes back only when this node's certified view of the vault's chain has passed
the deadline with no `Released` for the id: chain time, never the node's clock.

The release id is not chosen by anyone: every node derives it from the whole order (chain,
vault, account, token, amount, recipient) and the owner's nonce. One id therefore names one
order, and a certified Released event is matched to a reservation by id *and* content.
Asking a node to sign an order it already signed returns the same signature again, so a
requester that lost the answers can gather them anew; the reservation is not taken twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils.address import is_address, to_checksum_address
from eth_utils.crypto import keccak


REQUEST_DOMAIN_NAME = "Crossclear"
REQUEST_DOMAIN_VERSION = "1"
#: Longest a release may stay valid: the amount is reserved (not usable) meanwhile.
MAX_RELEASE_WINDOW_SECONDS = 24 * 3600


class WithdrawalRefused(Exception):
    """This node will not sign; the message says why, for the account owner."""


@dataclass(frozen=True)
class WithdrawalRequest:
    """What the account owner asks for, and signs."""

    account: str
    """The account (0x address) whose collateral is released."""
    chain_id: int
    """Chain whose vault pays."""
    token: str
    """Token (0x address) the vault pays: a holding of it, or settlement gains in it."""
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
                {"name": "chainId", "type": "uint256"},
                {"name": "token", "type": "address"},
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
            "chainId": request.chain_id,
            "token": to_checksum_address(request.token),
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


def check_shape(request: WithdrawalRequest) -> None:
    for name in ("account", "recipient", "token"):
        if not is_address(getattr(request, name)):
            raise WithdrawalRefused(f"{name} must be a 0x address, got {getattr(request, name)!r}")
    if int(request.recipient, 16) == 0:
        raise WithdrawalRefused("recipient must not be the zero address (the vault cannot pay it)")
    if not 0 < request.chain_id < 2**63:
        raise WithdrawalRefused(f"chain id must be a positive integer, got {request.chain_id}")
    if len(request.nonce) != 32:
        raise WithdrawalRefused(f"nonce must be 32 bytes, got {len(request.nonce)}")
    if not 0 <= request.deadline < 2**64:
        raise WithdrawalRefused(f"deadline must be a unix time in seconds, got {request.deadline}")
    if not 0 < request.amount < 1 << 252:
        raise WithdrawalRefused(f"amount must be a positive integer below 2^252, got {request.amount}")


def recover_owner(request: WithdrawalRequest, owner_signature: bytes, clearinghouse_domain: int) -> None:
    """Refuse unless `owner_signature` is the account owner's over exactly this request."""
    signable = encode_typed_data(full_message=request_typed_data(request, clearinghouse_domain))
    try:
        signer = Account.recover_message(signable, signature=owner_signature)
    except Exception as error:  # eth-account raises several types for garbage signatures
        raise WithdrawalRefused(f"the owner's signature is unreadable: {error}") from None
    if signer.lower() != request.account.lower():
        raise WithdrawalRefused(f"request is signed by {signer}, not by the account {to_checksum_address(request.account)}")
