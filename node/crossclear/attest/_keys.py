"""Node keys: secp256k1 signing and signer recovery through eth-keys' coincurve backend.

Signatures travel as 65 bytes r || s || v with v in {27, 28}, the form Solidity's `ecrecover`
takes. Recovery (about 0.1 ms here) is the only way a signer is known: addresses on the wire
are never trusted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from eth_keys.backends.coincurve import CoinCurveECCBackend
from eth_keys.exceptions import BadSignature
from eth_keys.main import KeyAPI
from eth_utils.exceptions import ValidationError

_KEYS = KeyAPI(backend=CoinCurveECCBackend)
_SECP256K1_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


class InvalidSignature(ValueError):
    """A signature that is malformed or recovers to no key."""


@dataclass(frozen=True)
class NodeKey:
    """A node's secp256k1 private key and the Ethereum address it signs as."""

    secret: bytes = field(repr=False)
    """32-byte private key (never printed)."""

    def __post_init__(self) -> None:
        if len(self.secret) != 32 or not 0 < int.from_bytes(self.secret, "big") < _SECP256K1_ORDER:
            raise ValueError("a node key is 32 bytes encoding a scalar in 1..n-1 of secp256k1")

    @cached_property
    def _private_key(self) -> Any:
        return _KEYS.PrivateKey(self.secret)

    @cached_property
    def address(self) -> bytes:
        return bytes(self._private_key.public_key.to_canonical_address())

    def sign_digest(self, digest: bytes) -> bytes:
        signature = self._private_key.sign_msg_hash(digest)
        return bytes(signature.to_bytes()[:64]) + bytes([27 + signature.v])


def recover_signer(digest: bytes, signature: bytes) -> bytes:
    """The 20-byte address that produced `signature` over `digest`, or InvalidSignature."""
    if len(signature) != 65:
        raise InvalidSignature(f"signature is {len(signature)} bytes, expected 65")
    v = signature[64]
    if v not in (27, 28):
        raise InvalidSignature(f"signature recovery id v={v}, expected 27 or 28")
    s = int.from_bytes(signature[32:64], "big")
    if s > _SECP256K1_ORDER // 2:
        # Malleable high-s twins would be a second valid signature for the same message;
        # contracts (OpenZeppelin ECDSA) refuse them, so the network does too.
        raise InvalidSignature("signature s is in the upper half of the curve order")
    try:
        parsed = _KEYS.Signature(signature[:64] + bytes([v - 27]))
        return bytes(parsed.recover_public_key_from_msg_hash(digest).to_canonical_address())
    except (BadSignature, ValidationError, ValueError) as error:
        raise InvalidSignature(f"signature does not recover: {error}") from None
