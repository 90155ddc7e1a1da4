"""The envelope guard: every refusal path, with an injected clock."""

import pytest

from crossclear.attest._keys import NodeKey, recover_signer
from crossclear.p2p import Admitted, Dropped, EnvelopeGuard, GossipSettings, seal
from crossclear.v1 import attestation_pb2

KEYS = [NodeKey(bytes([index + 1]) * 32) for index in range(5)]
MEMBERS = frozenset(key.address for key in KEYS[:4])
TOPIC = "/crossclear/devnet/attestations/1"
NOW = 1_700_000_000_000


def _guard(**settings: object) -> EnvelopeGuard:
    return EnvelopeGuard(MEMBERS, recover_signer, GossipSettings(**settings), clock_ms=lambda: NOW)  # type: ignore[arg-type]


def _refused(guard: EnvelopeGuard, data: bytes, reason: str, topic: str = TOPIC) -> None:
    before = dict(guard.dropped)
    with pytest.raises(Dropped) as refused:
        guard.open(topic, data)
    assert refused.value.reason == reason
    assert guard.dropped[reason] == before.get(reason, 0) + 1


def test_a_good_envelope_opens_once() -> None:
    guard = _guard()
    data = seal(KEYS[1].sign_digest, TOPIC, b"body", NOW, 7)
    opened = guard.open(TOPIC, data)
    assert (opened.signer, opened.body, opened.sent_at_ms) == (KEYS[1].address, b"body", NOW)
    _refused(guard, data, "replayed")


def test_every_kind_of_bad_envelope_is_dropped_with_its_reason() -> None:
    guard = _guard(max_message_bytes=1000)
    _refused(guard, b"\x00" * 1001, "oversized")
    _refused(guard, b"\xff\xff\xff", "undecodable")
    _refused(guard, seal(KEYS[1].sign_digest, TOPIC, b"b", NOW - 60_001, 1), "stale")
    _refused(guard, seal(KEYS[1].sign_digest, TOPIC, b"b", NOW + 5_001, 1), "stale")
    forged = attestation_pb2.GossipEnvelope(sent_at_ms=NOW, nonce=1, body=b"b", signature=b"\x01" * 65)
    _refused(guard, forged.SerializeToString(), "bad_signature")
    _refused(guard, seal(KEYS[4].sign_digest, TOPIC, b"b", NOW, 1), "not_member")
    # Sealed for one topic, replayed on another: the signature no longer recovers the sender.
    moved = seal(KEYS[1].sign_digest, "/crossclear/devnet/claims/1", b"b", NOW, 1)
    with pytest.raises(Dropped) as refused:
        guard.open(TOPIC, moved)
    assert refused.value.reason in {"not_member", "bad_signature"}
    tampered = attestation_pb2.GossipEnvelope()
    tampered.ParseFromString(seal(KEYS[1].sign_digest, TOPIC, b"b", NOW, 1))
    tampered.body = b"c"
    with pytest.raises(Dropped):
        guard.open(TOPIC, tampered.SerializeToString())


def test_a_burst_beyond_the_bucket_is_rate_limited_per_signer() -> None:
    guard = _guard(signer_burst=5, signer_messages_per_second=1.0)
    for nonce in range(5):
        guard.open(TOPIC, seal(KEYS[1].sign_digest, TOPIC, b"b", NOW, nonce))
    _refused(guard, seal(KEYS[1].sign_digest, TOPIC, b"b", NOW, 99), "rate_limited")
    # Another signer has its own bucket.
    guard.open(TOPIC, seal(KEYS[2].sign_digest, TOPIC, b"b", NOW, 1))


def test_replay_memory_forgets_what_is_stale_anyway() -> None:
    clock = [NOW]
    guard = EnvelopeGuard(MEMBERS, recover_signer, GossipSettings(), clock_ms=lambda: clock[0])
    for nonce in range(100):
        guard.open(TOPIC, seal(KEYS[1].sign_digest, TOPIC, b"b", clock[0], nonce))
    clock[0] += 120_001
    guard.open(TOPIC, seal(KEYS[1].sign_digest, TOPIC, b"b", clock[0], 1000))
    assert len(guard._seen) == 1


def test_a_publishers_budgets_are_charged_before_anything_is_decoded_or_recovered() -> None:
    recovered: list[bytes] = []

    def counting_recover(digest: bytes, signature: bytes) -> bytes:
        recovered.append(digest)
        return recover_signer(digest, signature)

    guard = EnvelopeGuard(
        MEMBERS,
        counting_recover,
        GossipSettings(signer_bytes_burst=3000, signer_bytes_per_second=1.0, signer_recovery_burst=10, signer_recoveries_per_second=1.0),
        clock_ms=lambda: NOW,
    )
    origin = KEYS[1].address
    # An outsider's publish costs a dict lookup.
    with pytest.raises(Dropped, match="not_member"):
        guard.open(TOPIC, b"\xff" * 100, origin=KEYS[4].address)
    # Bytes: the bucket holds 3000, so the second 2000-byte message is refused undecoded.
    guard.open(TOPIC, seal(KEYS[1].sign_digest, TOPIC, b"x" * 1900, NOW, 1), origin=origin)
    with pytest.raises(Dropped, match="byte_budget"):
        guard.open(TOPIC, b"\xff" * 2000, origin=origin)
    # Recoveries: the admission step says what checking a body costs; 1 + 12 does not fit in 10.
    before = len(recovered)
    with pytest.raises(Dropped, match="recovery_budget"):
        guard.open(TOPIC, seal(KEYS[2].sign_digest, TOPIC, b"y", NOW, 2), origin=KEYS[2].address, admit=lambda body: Admitted(body, 12))
    assert len(recovered) == before
    opened = guard.open(TOPIC, seal(KEYS[2].sign_digest, TOPIC, b"y", NOW, 3), origin=KEYS[2].address, admit=lambda body: Admitted(body.upper(), 3))
    assert opened.admitted == b"Y"
    # A member's envelope relayed under another member's publish is not that member's to send.
    with pytest.raises(Dropped, match="wrong_origin"):
        guard.open(TOPIC, seal(KEYS[3].sign_digest, TOPIC, b"z", NOW, 4), origin=KEYS[2].address)
    assert set(guard.drop_cost_snapshot()) == {"not_member", "byte_budget", "recovery_budget", "wrong_origin"}


def test_a_signer_with_its_queue_share_waiting_is_dropped() -> None:
    guard = _guard(signer_queue_share=2)
    for _ in range(2):
        guard.enter_queue(KEYS[1].address)
    with pytest.raises(Dropped, match="queue_share"):
        guard.open(TOPIC, seal(KEYS[1].sign_digest, TOPIC, b"b", NOW, 1), origin=KEYS[1].address)
    guard.open(TOPIC, seal(KEYS[2].sign_digest, TOPIC, b"b", NOW, 1), origin=KEYS[2].address)  # others unaffected
    guard.leave_queue(KEYS[1].address)
    guard.open(TOPIC, seal(KEYS[1].sign_digest, TOPIC, b"b", NOW, 2), origin=KEYS[1].address)
