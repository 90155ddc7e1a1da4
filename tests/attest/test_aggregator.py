from pathlib import Path

import pytest

from crossclear.attest import (
    SigningDomain,
    ingest,
    sign_observation,
    verify_certificate,
)
from crossclear.store import AttestationStore
from crossclear.v1 import attestation_pb2

from .helpers import KEYS, node_set, observation

DOMAIN = SigningDomain()


@pytest.fixture
def store(tmp_path: Path) -> AttestationStore:
    opened = AttestationStore(tmp_path / "node.sqlite")
    yield opened
    opened.close()


def test_certificate_forms_at_the_third_of_four_signers(store: AttestationStore) -> None:
    members = node_set(4)
    signed = [sign_observation(key, DOMAIN, observation()) for key in KEYS[:4]]
    first = ingest(store, members, signed[:2], 1)
    assert first.certificates == () and first.counted == 2
    third = ingest(store, members, signed[2:3], 2)
    assert len(third.certificates) == 1
    certificate = third.certificates[0]
    assert certificate.observation == observation()
    verified = verify_certificate(DOMAIN, members, certificate.to_proto())
    assert sorted(v.signer for v in verified) == sorted(key.address for key in KEYS[:3])
    assert [v.signer for v in verified] == sorted(v.signer for v in verified)
    fourth = ingest(store, members, signed[3:], 3)
    assert fourth.certificates == () and fourth.counted == 1
    assert store.certificate_count() == 1


def test_duplicates_do_not_count_twice(store: AttestationStore) -> None:
    members = node_set(4)
    one = sign_observation(KEYS[0], DOMAIN, observation())
    report = ingest(store, members, [one, one, one], 1)
    assert (report.counted, report.duplicates) == (1, 2)
    two = sign_observation(KEYS[1], DOMAIN, observation())
    assert ingest(store, members, [two, two], 2).certificates == ()
    assert store.certificate_count() == 0


def test_equivocation_is_evidence_and_the_honest_certificate_still_forms(store: AttestationStore) -> None:
    members = node_set(4)
    byzantine = KEYS[3]
    lie_one = sign_observation(byzantine, DOMAIN, observation(root_byte=1))
    lie_two = sign_observation(byzantine, DOMAIN, observation(root_byte=2))
    report = ingest(store, members, [lie_one, lie_two], 1)
    assert report.equivocations == 1
    assert store.evidence_by_signer() == {byzantine.address: 1}
    evidence = attestation_pb2.EquivocationEvidence()
    evidence.ParseFromString(store.evidence()[0])
    assert evidence.first.signature == lie_one.signature
    assert evidence.second.signature == lie_two.signature
    # The same conflict arriving again (gossip and sync both deliver) is not new evidence.
    assert ingest(store, members, [lie_two], 2).equivocations == 0
    honest = [sign_observation(key, DOMAIN, observation()) for key in KEYS[:3]]
    report = ingest(store, members, honest, 3)
    assert [c.observation for c in report.certificates] == [observation()]
    # The liar's observations never reach a quorum.
    assert store.certificate_count() == 1


def test_two_of_four_never_certify(store: AttestationStore) -> None:
    members = node_set(4)
    signed = [sign_observation(key, DOMAIN, observation(block)) for key in KEYS[:2] for block in range(1, 50)]
    assert ingest(store, members, signed, 1).certificates == ()
    assert store.certificate_count() == 0


def test_unverified_outsider_is_refused_without_any_write(store: AttestationStore) -> None:
    members = node_set(4)
    good = sign_observation(KEYS[0], DOMAIN, observation())
    outsider = sign_observation(KEYS[6], DOMAIN, observation())
    with pytest.raises(ValueError, match="not in the node set"):
        ingest(store, members, [good, outsider], 1)
    # The whole call rolled back: not even the member's signature was kept.
    assert store.signatures_for(good.digest) == []


def test_certificates_survive_reopening(tmp_path: Path) -> None:
    members = node_set(4)
    path = tmp_path / "node.sqlite"
    first = AttestationStore(path)
    ingest(first, members, [sign_observation(key, DOMAIN, observation()) for key in KEYS[:3]], 1)
    first.close()
    reopened = AttestationStore(path)
    assert reopened.certificate_count() == 1
    # State continues where it was: the fourth signature is counted, not a new certificate.
    report = ingest(reopened, members, [sign_observation(KEYS[3], DOMAIN, observation())], 2)
    assert report.counted == 1 and report.certificates == ()
    reopened.close()
