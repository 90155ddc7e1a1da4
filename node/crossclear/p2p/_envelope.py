"""Gossip envelopes: sealing with the node key, and the checks every inbound one must pass.

An envelope binds topic, send time, a nonce and the body under the sender's secp256k1
signature. `EnvelopeGuard.open` runs inside the libp2p validator, so a message that fails
here never reaches application code, and is not relayed.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from eth_hash.auto import keccak
from google.protobuf.message import DecodeError

from crossclear.p2p._settings import GossipSettings
from crossclear.v1 import attestation_pb2

_DOMAIN_TAG = b"crossclear-gossip-v1"

#: Signs a 32-byte digest, returning 65 bytes r || s || v.
SignDigest = Callable[[bytes], bytes]
#: Recovers the 20-byte signer address of a digest and signature; raises ValueError when invalid.
RecoverSigner = Callable[[bytes, bytes], bytes]


class Dropped(ValueError):
    """A gossip message refused before application code; `reason` is a short metric label."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


def envelope_digest(topic: str, sent_at_ms: int, nonce: int, body: bytes) -> bytes:
    return keccak(_DOMAIN_TAG + topic.encode() + sent_at_ms.to_bytes(8, "big") + nonce.to_bytes(8, "big") + body)


def seal(sign: SignDigest, topic: str, body: bytes, sent_at_ms: int, nonce: int) -> bytes:
    signature = sign(envelope_digest(topic, sent_at_ms, nonce, body))
    return attestation_pb2.GossipEnvelope(
        sent_at_ms=sent_at_ms, nonce=nonce, body=body, signature=signature
    ).SerializeToString()


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(slots=True)
class _TokenBucket:
    tokens: float
    updated_ms: int


@dataclass(frozen=True, slots=True)
class OpenedEnvelope:
    """An envelope that passed every check."""

    signer: bytes
    """20-byte address of the node that sealed it (a member of the node set)."""
    sent_at_ms: int
    """Sender's clock when sealed."""
    body: bytes
    """The payload, still to be decoded by the topic's handler."""


@dataclass
class EnvelopeGuard:
    """Size, decoding, freshness, signer, replay and rate checks for inbound envelopes."""

    members: frozenset[bytes]
    recover: RecoverSigner
    settings: GossipSettings
    clock_ms: Callable[[], int] = now_ms
    dropped: dict[str, int] = field(default_factory=dict)
    _seen: OrderedDict[bytes, int] = field(default_factory=OrderedDict)
    _buckets: dict[tuple[bytes, str], _TokenBucket] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def open(self, topic: str, data: bytes) -> OpenedEnvelope:
        try:
            return self._open(topic, data)
        except Dropped as error:
            self.count_drop(error.reason)
            raise

    def count_drop(self, reason: str) -> None:
        with self._lock:
            self.dropped[reason] = self.dropped.get(reason, 0) + 1

    def dropped_snapshot(self) -> dict[str, int]:
        """A copy of the drop counters, safe to take from another thread (status calls)."""
        with self._lock:
            return dict(self.dropped)

    def _open(self, topic: str, data: bytes) -> OpenedEnvelope:
        if len(data) > self.settings.max_message_bytes:
            raise Dropped("oversized", f"{len(data)} bytes, limit {self.settings.max_message_bytes}")
        envelope = attestation_pb2.GossipEnvelope()
        try:
            envelope.ParseFromString(data)
        except DecodeError as error:
            raise Dropped("undecodable", str(error)) from None
        now = self.clock_ms()
        if envelope.sent_at_ms < now - self.settings.max_age_ms:
            raise Dropped("stale", f"sent {now - envelope.sent_at_ms} ms ago")
        if envelope.sent_at_ms > now + self.settings.max_future_ms:
            raise Dropped("stale", f"stamped {envelope.sent_at_ms - now} ms in the future")
        digest = envelope_digest(topic, envelope.sent_at_ms, envelope.nonce, envelope.body)
        try:
            signer = self.recover(digest, bytes(envelope.signature))
        except ValueError as error:
            raise Dropped("bad_signature", str(error)) from None
        if signer not in self.members:
            raise Dropped("not_member", f"signer 0x{signer.hex()} is not in the node set")
        self._forget_expired(now)
        seen_key = signer + digest
        if seen_key in self._seen:
            raise Dropped("replayed", f"envelope 0x{digest.hex()[:16]} already delivered")
        if not self._take_token(signer, topic, now):
            raise Dropped("rate_limited", f"signer 0x{signer.hex()} above {self.settings.signer_messages_per_second}/s")
        self._seen[seen_key] = envelope.sent_at_ms + self.settings.max_age_ms
        return OpenedEnvelope(signer, envelope.sent_at_ms, bytes(envelope.body))

    def _forget_expired(self, now: int) -> None:
        # Entries go in roughly in send order, so expired ones sit at the front; anything
        # older than max_age is refused as stale anyway, so forgetting it is safe.
        while self._seen:
            digest, expires = next(iter(self._seen.items()))
            if expires >= now:
                break
            del self._seen[digest]

    def _take_token(self, signer: bytes, topic: str, now: int) -> bool:
        bucket = self._buckets.get((signer, topic))
        if bucket is None:
            bucket = self._buckets[(signer, topic)] = _TokenBucket(float(self.settings.signer_burst), now)
        refill = (now - bucket.updated_ms) / 1000 * self.settings.signer_messages_per_second
        bucket.tokens = min(float(self.settings.signer_burst), bucket.tokens + refill)
        bucket.updated_ms = now
        if bucket.tokens < 1:
            return False
        bucket.tokens -= 1
        return True
