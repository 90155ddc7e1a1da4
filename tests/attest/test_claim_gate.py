"""Gossiped claims: proof checks are rate-limited per sending member, and a claim that failed
once is never checked again (the memory of failures is bounded)."""

import asyncio
import json
import threading
from types import SimpleNamespace

from crossclear.attest import ClaimBudget, ClaimGate
from crossclear.node.claims import ClaimOutcome, RejectReason
from crossclear.node.wiring import Node
from crossclear.v1 import claim_pb2

A, B = b"\xaa" * 20, b"\xbb" * 20


def _body(n: int) -> bytes:
    return claim_pb2.SubmitClaimRequest(proof_json=json.dumps({"pi_a": [str(n)]}), public_signals=[str(n)]).SerializeToString()


def test_the_gate_charges_each_sender_and_remembers_failures() -> None:
    clock = [0.0]
    gate = ClaimGate(ClaimBudget(checks_per_second=1.0, burst=2, waiting_per_sender=5, failed_memory=3), lambda: clock[0])
    first = gate.admit(A, b"one")
    assert first is not None
    assert gate.admit(A, b"one") is None  # being checked already
    gate.finished(first, failed=True)
    assert gate.admit(A, b"one") is None and gate.admit(B, b"one") is None  # failed once: never again
    second = gate.admit(A, b"two")
    assert second is not None
    assert gate.admit(A, b"three") is None  # A's bucket is empty
    assert gate.admit(B, b"three") is not None  # B has its own
    clock[0] += 1.0
    assert gate.admit(A, b"three") is None  # in flight for B
    third = gate.admit(A, b"four")
    assert third is not None
    assert gate.dropped == {"in_flight": 2, "failed_before": 2, "rate_limited": 1}
    for n in range(10):  # the memory keeps the newest failures only
        gate.finished(bytes([n]) * 32, failed=True)
    assert gate.admit(B, b"one") is not None


def test_a_member_spamming_claims_gets_a_few_checks_and_a_failed_claim_is_checked_once() -> None:
    async def scenario() -> None:
        calls: list[str] = []
        release = threading.Event()

        def check(proof: object, signals: list[str]) -> ClaimOutcome:
            release.wait(5)
            calls.append(signals[0])
            return ClaimOutcome(False, RejectReason.INVALID_PROOF, "the proof does not verify")

        node = object.__new__(Node)
        node.attestation = SimpleNamespace(claim_gate=ClaimGate(ClaimBudget(checks_per_second=0.5, burst=3)))  # type: ignore[assignment]
        node.checker = SimpleNamespace(check=check)  # type: ignore[assignment]
        node._claim_checks = asyncio.Semaphore(4)
        node._early_claims = {}
        for _ in range(100):  # the same bad claim, over and over
            node._on_gossiped_claim(A, _body(0))
        for n in range(1, 51):  # fifty different bad claims
            node._on_gossiped_claim(A, _body(n))
        node._on_gossiped_claim(B, _body(1000))  # another member is not held back
        release.set()
        await asyncio.sleep(0.5)
        node._on_gossiped_claim(B, _body(0))  # failed once: not checked again, whoever sends it
        await asyncio.sleep(0.2)
        assert sorted(calls, key=int) == ["0", "1", "2", "1000"]
        dropped = node.attestation.claim_gate.dropped
        assert dropped == {"in_flight": 99, "rate_limited": 48, "failed_before": 1}

    asyncio.run(scenario())
