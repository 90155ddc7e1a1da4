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

    def take(self, amount: float, per_second: float, burst: float, now_ms: int) -> bool:
        self.tokens = min(burst, self.tokens + (now_ms - self.updated_ms) / 1000 * per_second)
        self.updated_ms = now_ms
        if self.tokens < amount:
            return False
        self.tokens -= amount
        return True


@dataclass(frozen=True, slots=True)
class Admitted:
    """What a topic's admission step made of a body, before any signature was recovered."""

    value: object
    """The decoded (and possibly filtered) body, handed on to the topic's check."""
    recoveries: int = 0
    """Signatures the topic's check will recover for it: charged to the sender's budget first."""


#: Decodes a body and applies the cheap rules (no signature recovery); raises Dropped to refuse.
Admit = Callable[[bytes], Admitted]


@dataclass(frozen=True, slots=True)
class OpenedEnvelope:
    """An envelope that passed every check."""

    signer: bytes
    """20-byte address of the node that sealed it (a member of the node set)."""
    sent_at_ms: int
    """Sender's clock when sealed."""
    body: bytes
    """The payload, still to be decoded by the topic's handler."""
    admitted: object = None
    """What the topic's admission step returned for the body (None without one)."""


@dataclass
class EnvelopeGuard:
    """Size, budget, decoding, freshness, signer, replay and rate checks for inbound envelopes.

    With `origin` (the member libp2p already authenticated as the message's publisher) every
    per-member budget is charged before the body is decoded, and the signature budget before
    any signature is recovered: a member over budget costs a length check and a dict lookup.
    """

    members: frozenset[bytes]
    recover: RecoverSigner
    settings: GossipSettings
    clock_ms: Callable[[], int] = now_ms
    dropped: dict[str, int] = field(default_factory=dict)
    drop_cost_ns: dict[str, int] = field(default_factory=dict)
    """Validation time spent on the messages dropped, per reason."""
    not_relayed: int = 0
    """Valid messages delivered here but not forwarded (their publisher's relay budget was spent)."""
    _seen: OrderedDict[bytes, int] = field(default_factory=OrderedDict)
    _buckets: dict[tuple[bytes, str, str], _TokenBucket] = field(default_factory=dict)
    _queued: dict[bytes, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def open(
        self,
        topic: str,
        data: bytes,
        *,
        origin: bytes | None = None,
        admit: Admit | None = None,
        started_ns: int | None = None,
    ) -> OpenedEnvelope:
        started = time.perf_counter_ns() if started_ns is None else started_ns
        try:
            return self._open(topic, data, origin, admit)
        except Dropped as error:
            self.count_drop(error.reason, started)
            raise

    def count_drop(self, reason: str, started_ns: int | None = None) -> None:
        cost = 0 if started_ns is None else time.perf_counter_ns() - started_ns
        with self._lock:
            self.dropped[reason] = self.dropped.get(reason, 0) + 1
            self.drop_cost_ns[reason] = self.drop_cost_ns.get(reason, 0) + cost

    def count_not_relayed(self) -> None:
        with self._lock:
            self.not_relayed += 1

    def dropped_snapshot(self) -> dict[str, int]:
        """A copy of the drop counters, safe to take from another thread (status calls)."""
        with self._lock:
            return dict(self.dropped)

    def drop_cost_snapshot(self) -> dict[str, float]:
        """Mean validation time per dropped message, in microseconds, per reason."""
        with self._lock:
            return {
                reason: round(self.drop_cost_ns.get(reason, 0) / count / 1000, 1)
                for reason, count in self.dropped.items()
                if count
            }

    # --- the queue share of each signer (messages validated, not yet handled) -------------

    def queued(self, signer: bytes) -> int:
        with self._lock:
            return self._queued.get(signer, 0)

    def enter_queue(self, signer: bytes) -> None:
        with self._lock:
            self._queued[signer] = self._queued.get(signer, 0) + 1

    def leave_queue(self, signer: bytes) -> None:
        with self._lock:
            left = self._queued.get(signer, 0) - 1
            if left > 0:
                self._queued[signer] = left
            else:
                self._queued.pop(signer, None)

    # --- checks ---------------------------------------------------------------------------

    def _open(self, topic: str, data: bytes, origin: bytes | None, admit: Admit | None) -> OpenedEnvelope:
        settings = self.settings
        if len(data) > settings.max_message_bytes:
            raise Dropped("oversized", f"{len(data)} bytes, limit {settings.max_message_bytes}")
        now = self.clock_ms()
        if origin is not None:
            if origin not in self.members:
                raise Dropped("not_member", f"publisher 0x{origin.hex()} is not in the node set")
            self._charge_messages(origin, topic, len(data), now)
            if self.queued(origin) >= settings.signer_queue_share:
                raise Dropped("queue_share", f"0x{origin.hex()} has {settings.signer_queue_share} messages waiting")
        envelope = attestation_pb2.GossipEnvelope()
        try:
            envelope.ParseFromString(data)
        except DecodeError as error:
            raise Dropped("undecodable", str(error)) from None
        if envelope.sent_at_ms < now - settings.max_age_ms:
            raise Dropped("stale", f"sent {now - envelope.sent_at_ms} ms ago")
        if envelope.sent_at_ms > now + settings.max_future_ms:
            raise Dropped("stale", f"stamped {envelope.sent_at_ms - now} ms in the future")
        body = bytes(envelope.body)
        admitted = Admitted(None) if admit is None else admit(body)
        if origin is not None:
            self._charge_recoveries(origin, 1 + admitted.recoveries, now)
        digest = envelope_digest(topic, envelope.sent_at_ms, envelope.nonce, body)
        try:
            signer = self.recover(digest, bytes(envelope.signature))
        except ValueError as error:
            raise Dropped("bad_signature", str(error)) from None
        if signer not in self.members:
            raise Dropped("not_member", f"signer 0x{signer.hex()} is not in the node set")
        if origin is not None and signer != origin:
            # Gossipsub keeps the publisher's id across relays, so an honest envelope is
            # always sealed by the member that published it.
            raise Dropped("wrong_origin", f"sealed by 0x{signer.hex()}, published by 0x{origin.hex()}")
        self._forget_expired(now)
        seen_key = signer + digest
        if seen_key in self._seen:
            raise Dropped("replayed", f"envelope 0x{digest.hex()[:16]} already delivered")
        if origin is None:
            self._charge_messages(signer, topic, len(data), now)
            self._charge_recoveries(signer, 1 + admitted.recoveries, now)
        self._seen[seen_key] = envelope.sent_at_ms + settings.max_age_ms
        return OpenedEnvelope(signer, envelope.sent_at_ms, body, admitted.value)

    def _forget_expired(self, now: int) -> None:
        # Entries go in roughly in send order, so expired ones sit at the front; anything
        # older than max_age is refused as stale anyway, so forgetting it is safe.
        while self._seen:
            digest, expires = next(iter(self._seen.items()))
            if expires >= now:
                break
            del self._seen[digest]

    def _bucket(self, signer: bytes, topic: str, kind: str, burst: float, now: int) -> _TokenBucket:
        key = (signer, topic, kind)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _TokenBucket(burst, now)
        return bucket

    def _charge_messages(self, signer: bytes, topic: str, size: int, now: int) -> None:
        settings = self.settings
        messages = self._bucket(signer, topic, "messages", settings.signer_burst, now)
        if not messages.take(1, settings.signer_messages_per_second, settings.signer_burst, now):
            raise Dropped("rate_limited", f"signer 0x{signer.hex()} above {settings.signer_messages_per_second}/s")
        octets = self._bucket(signer, topic, "bytes", settings.signer_bytes_burst, now)
        if not octets.take(size, settings.signer_bytes_per_second, settings.signer_bytes_burst, now):
            raise Dropped("byte_budget", f"signer 0x{signer.hex()} above {settings.signer_bytes_per_second:.0f} B/s")

    def _charge_recoveries(self, signer: bytes, count: int, now: int) -> None:
        settings = self.settings
        # One budget per signer across topics: it is this node's CPU that is being shared.
        bucket = self._bucket(signer, "", "recoveries", settings.signer_recovery_burst, now)
        if not bucket.take(count, settings.signer_recoveries_per_second, settings.signer_recovery_burst, now):
            raise Dropped(
                "recovery_budget",
                f"signer 0x{signer.hex()}: {count} recoveries above {settings.signer_recoveries_per_second:.0f}/s",
            )
