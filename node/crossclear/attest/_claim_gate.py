"""Which gossiped claims a node spends a proof check on.

A claim body arrives from a member (the gossip envelope's signer). Checking it costs a
Groth16 verification (milliseconds natively, over a second in pure Python), so a member may
start only so many checks per second, may have only so many waiting, and a body that failed
once is never checked again (the memory of failures is bounded; the oldest are forgotten
first). Bodies are identified by keccak256 of their bytes: a sender that varies the encoding
to dodge the memory pays for every variant from its own budget.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from eth_hash.auto import keccak


@dataclass(frozen=True)
class ClaimBudget:
    """Per-member limits on gossiped-claim verification."""

    checks_per_second: float = 2.0
    """Proof checks started per sending member per second (token bucket refill)."""
    burst: int = 20
    """Bucket size: a member may start this many checks at once."""
    waiting_per_sender: int = 16
    """Checks of one member's claims admitted but not finished; beyond, its claims are dropped."""
    failed_memory: int = 10_000
    """Claim hashes remembered as failed (32 bytes each)."""


@dataclass
class _Bucket:
    tokens: float
    updated: float


class ClaimGate:
    """Admission of gossiped claims to verification; runs on the node's event loop only."""

    def __init__(self, budget: ClaimBudget = ClaimBudget(), clock: Callable[[], float] = time.monotonic) -> None:
        self.budget = budget
        self._clock = clock
        self._buckets: dict[bytes, _Bucket] = {}
        self._waiting: dict[bytes, int] = {}
        self._in_flight: dict[bytes, bytes] = {}
        self._failed: OrderedDict[bytes, None] = OrderedDict()
        self.dropped: dict[str, int] = {}
        self.checked = 0

    def admit(self, sender: bytes, body: bytes) -> bytes | None:
        """The claim's key when it may be checked now (call `finished` after), else None (counted)."""
        key = bytes(keccak(body))
        if key in self._failed:
            return self._drop_it("failed_before")
        if key in self._in_flight:
            return self._drop_it("in_flight")
        if self._waiting.get(sender, 0) >= self.budget.waiting_per_sender:
            return self._drop_it("queue_share")
        now = self._clock()
        bucket = self._buckets.get(sender)
        if bucket is None:
            bucket = self._buckets[sender] = _Bucket(float(self.budget.burst), now)
        bucket.tokens = min(float(self.budget.burst), bucket.tokens + (now - bucket.updated) * self.budget.checks_per_second)
        bucket.updated = now
        if bucket.tokens < 1:
            return self._drop_it("rate_limited")
        bucket.tokens -= 1
        self._waiting[sender] = self._waiting.get(sender, 0) + 1
        self._in_flight[key] = sender
        self.checked += 1
        return key

    def readmit(self, body: bytes) -> bytes | None:
        """A claim checked before that may pass now (its root was certified meanwhile): no
        sender budget is charged again, but the failure memory and duplicates still apply."""
        key = bytes(keccak(body))
        if key in self._failed:
            return self._drop_it("failed_before")
        if key in self._in_flight:
            return self._drop_it("in_flight")
        self._in_flight[key] = b""
        self.checked += 1
        return key

    def finished(self, key: bytes, *, failed: bool) -> None:
        sender = self._in_flight.pop(key, None)
        if sender:
            left = self._waiting.get(sender, 0) - 1
            if left > 0:
                self._waiting[sender] = left
            else:
                self._waiting.pop(sender, None)
        if failed:
            self._failed[key] = None
            while len(self._failed) > self.budget.failed_memory:
                self._failed.popitem(last=False)

    def _drop_it(self, reason: str) -> bytes | None:
        self.dropped[reason] = self.dropped.get(reason, 0) + 1
        return None
