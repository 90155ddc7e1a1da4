"""EIP-712 orders the `CollateralVault` pays out against: Release, Seize and NodeSetUpdate.

The vault accepts an order with signatures from at least `threshold(n)` = floor(2n/3)+1
members of its node set, one per signer, ordered by ascending signer address, each a
65-byte r || s || v signature over the EIP-712 digest of the order under the domain
(name "CrossclearVault", version "1", chain id, vault address). Each release and seize id
works once and carries a deadline (unix time, judged by the chain's block timestamp) after
which the vault refuses it; a node-set update signs the vault's current epoch, so it also
works once.

These definitions mirror `devnet/contracts/CollateralVault.sol`; tests compare the digests
with the contract's own.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, TypeAlias

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from crossclear.chains.interface import Address

#: The largest uint64: an order that never expires (tests; nodes always set a real deadline).
NO_DEADLINE = 2**64 - 1

DOMAIN_NAME = "CrossclearVault"
DOMAIN_VERSION = "1"

_DOMAIN_TYPE = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]


@dataclass(frozen=True)
class VaultDomain:
    """The EIP-712 domain of one vault: a signature for one vault is useless at any other."""

    chain_id: int
    """Chain the vault lives on."""
    vault: Address
    """The vault's address (the verifying contract)."""


@dataclass(frozen=True)
class ReleaseOrder:
    """Pay `amount` of `token` to `recipient` out of `account`'s collateral (a withdrawal)."""

    release_id: bytes
    """32-byte id; the vault accepts each once."""
    account: Address
    """Account whose collateral is released."""
    token: Address
    """Token to pay."""
    amount: int
    """Amount in the token's smallest unit."""
    recipient: Address
    """Who receives the tokens."""
    deadline: int = NO_DEADLINE
    """Unix time after which the vault refuses the release (its signatures expire)."""


@dataclass(frozen=True)
class SeizeOrder:
    """Take `amount` of `token` from a liquidated `account` and pay it to `recipient`."""

    seize_id: bytes
    """32-byte id; the vault accepts each once."""
    account: Address
    """Liquidated account."""
    token: Address
    """Token to seize."""
    amount: int
    """Amount in the token's smallest unit."""
    recipient: Address
    """Who receives the tokens (the liquidator)."""
    deadline: int
    """Unix time after which the vault refuses the seize (its signatures expire)."""


@dataclass(frozen=True)
class NodeSetUpdate:
    """Replace the vault's node set; signed by a quorum of the current set."""

    epoch: int
    """The vault's current `epoch()`; the update moves it to epoch + 1."""
    signers: tuple[Address, ...]
    """The new node set (sorted ascending by `sorted_signers` before signing)."""


VaultOrder: TypeAlias = ReleaseOrder | SeizeOrder | NodeSetUpdate


def threshold(node_set_size: int) -> int:
    """Signatures needed out of `node_set_size`: floor(2n/3)+1 (tolerates f < n/3 faulty)."""
    if node_set_size <= 0:
        raise ValueError(f"a node set needs at least one member, got {node_set_size}")
    return (2 * node_set_size) // 3 + 1


def sorted_signers(addresses: Iterable[Address]) -> tuple[Address, ...]:
    """Addresses checksummed and in the ascending numeric order the vault requires."""
    return tuple(sorted((to_checksum_address(address) for address in addresses), key=lambda a: int(a, 16)))


def typed_data(domain: VaultDomain, order: VaultOrder) -> dict[str, Any]:
    """The full EIP-712 message (eth_signTypedData_v4 shape) for an order."""
    primary_type, fields, message = _describe(order)
    return {
        "types": {"EIP712Domain": _DOMAIN_TYPE, primary_type: fields},
        "primaryType": primary_type,
        "domain": {
            "name": DOMAIN_NAME,
            "version": DOMAIN_VERSION,
            "chainId": domain.chain_id,
            "verifyingContract": to_checksum_address(domain.vault),
        },
        "message": message,
    }


def digest(domain: VaultDomain, order: VaultOrder) -> bytes:
    """The 32-byte EIP-712 digest the vault recovers signers from."""
    signable = encode_typed_data(full_message=typed_data(domain, order))
    # keccak256("\x19\x01" || domainSeparator || structHash), as the contract computes it.
    return bytes(keccak(b"\x19" + signable.version + signable.header + signable.body))


def sign(domain: VaultDomain, order: VaultOrder, private_key: bytes) -> bytes:
    """One node's 65-byte signature (r || s || v, v in {27, 28}, low s) over the order."""
    signed = Account.sign_typed_data(private_key, full_message=typed_data(domain, order))
    return bytes(signed.signature)


def recover_signer(domain: VaultDomain, order: VaultOrder, signature: bytes) -> Address:
    """The address that produced `signature` over the order, under the vault's own rules
    (65 bytes, v in {27, 28}, low s): a signature the vault would refuse raises ValueError
    here too, so no caller can count one towards a quorum."""
    # Imported here: the attestation package pulls in libp2p, which order building and the
    # devnet's deployment do not need.
    from crossclear.attest import recover_signer as recover_address

    return to_checksum_address(recover_address(digest(domain, order), signature))


def quorum_signatures(domain: VaultDomain, order: VaultOrder, signatures: Iterable[bytes]) -> list[bytes]:
    """Signatures arranged as the vault wants them: one per signer, by ascending signer address."""
    by_signer: dict[int, bytes] = {}
    for signature in signatures:
        by_signer.setdefault(int(recover_signer(domain, order, signature), 16), signature)
    return [by_signer[signer] for signer in sorted(by_signer)]


def _describe(order: VaultOrder) -> tuple[str, list[dict[str, str]], dict[str, Any]]:
    if isinstance(order, ReleaseOrder):
        return "Release", _payout_fields("releaseId"), _payout_message("releaseId", order.release_id, order)
    if isinstance(order, SeizeOrder):
        return "Seize", _payout_fields("seizeId"), _payout_message("seizeId", order.seize_id, order)
    fields = [{"name": "epoch", "type": "uint256"}, {"name": "signers", "type": "address[]"}]
    return "NodeSetUpdate", fields, {"epoch": order.epoch, "signers": [to_checksum_address(s) for s in order.signers]}


def _payout_fields(id_name: str) -> list[dict[str, str]]:
    return [
        {"name": id_name, "type": "bytes32"},
        {"name": "account", "type": "address"},
        {"name": "token", "type": "address"},
        {"name": "amount", "type": "uint256"},
        {"name": "recipient", "type": "address"},
        {"name": "deadline", "type": "uint64"},
    ]


def _payout_message(id_name: str, order_id: bytes, order: ReleaseOrder | SeizeOrder) -> dict[str, Any]:
    if len(order_id) != 32:
        raise ValueError(f"{id_name} must be 32 bytes, got {len(order_id)}")
    return {
        id_name: order_id,
        "account": to_checksum_address(order.account),
        "token": to_checksum_address(order.token),
        "amount": order.amount,
        "recipient": to_checksum_address(order.recipient),
        "deadline": order.deadline,
    }
