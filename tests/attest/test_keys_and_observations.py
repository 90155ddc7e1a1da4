import pytest

from crossclear.attest import (
    InvalidSignature,
    MalformedObservation,
    NodeKey,
    Observation,
    ObservationKind,
    Rejected,
    SigningDomain,
    recover_signer,
    sign_observation,
    verify_signed_observation,
)
from crossclear.v1 import attestation_pb2

from .helpers import KEYS, VAULT, node_set, observation

_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def test_quorum_is_two_thirds_plus_one() -> None:
    assert [node_set(n).quorum for n in (1, 2, 3, 4, 5, 6, 7)] == [1, 2, 3, 3, 4, 5, 5]


@pytest.mark.parametrize("secret", [b"\x00" * 32, b"\x01" * 31, _ORDER.to_bytes(32, "big")])
def test_bad_node_keys_are_refused(secret: bytes) -> None:
    with pytest.raises(ValueError, match="secp256k1"):
        NodeKey(secret)


def test_key_is_never_printed() -> None:
    assert KEYS[0].secret.hex() not in repr(KEYS[0])


@pytest.mark.parametrize(
    ("signature", "message"),
    [
        (b"\x01" * 64, "64 bytes"),
        (b"\x01" * 64 + b"\x05", "v=5"),
    ],
)
def test_malformed_signatures_are_refused(signature: bytes, message: str) -> None:
    with pytest.raises(InvalidSignature, match=message):
        recover_signer(b"\x11" * 32, signature)


def test_high_s_twin_of_a_valid_signature_is_refused() -> None:
    signed = sign_observation(KEYS[0], SigningDomain(), observation())
    s = int.from_bytes(signed.signature[32:64], "big")
    twin = signed.signature[:32] + (_ORDER - s).to_bytes(32, "big") + bytes([55 - signed.signature[64]])
    with pytest.raises(InvalidSignature, match="upper half"):
        recover_signer(signed.digest, twin)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"chain_id": 0}, "chain id"),
        ({"emitter": b"\x01" * 19}, "emitter"),
        ({"block_hash": b"\x01" * 31}, "block hash"),
        ({"root": b""}, "root"),
        ({"leaf_count": -1}, "leaf count"),
        ({"block_number": 2**63}, "block number"),
    ],
)
def test_out_of_range_observations_are_refused(changes: dict[str, object], message: str) -> None:
    fields: dict[str, object] = {
        "kind": ObservationKind.ROOT,
        "chain_id": 1,
        "emitter": VAULT,
        "block_number": 1,
        "block_hash": b"\x01" * 32,
        "root": b"\x02" * 32,
        "leaf_count": 1,
    }
    fields.update(changes)
    with pytest.raises(MalformedObservation, match=message):
        Observation(**fields)  # type: ignore[arg-type]


def test_observation_round_trips_through_proto() -> None:
    assert Observation.from_proto(observation().to_proto()) == observation()


def test_verify_refuses_outsiders_tampering_and_unknown_kinds() -> None:
    members = node_set(4)
    domain = SigningDomain()
    outsider = sign_observation(KEYS[5], domain, observation()).to_proto()
    with pytest.raises(Rejected, match="not in the node set"):
        verify_signed_observation(domain, members, outsider)
    tampered = sign_observation(KEYS[0], domain, observation()).to_proto()
    tampered.observation.root = b"\x00" * 32
    # A tampered field recovers some other address, never the signer's.
    with pytest.raises(Rejected, match="not in the node set|bad signature"):
        verify_signed_observation(domain, members, tampered)
    unknown = sign_observation(KEYS[0], domain, observation()).to_proto()
    unknown.observation.kind = attestation_pb2.ObservationKind.ValueType(9)
    with pytest.raises(Rejected, match="kind 9"):
        verify_signed_observation(domain, members, unknown)
    genuine = sign_observation(KEYS[1], domain, observation())
    assert verify_signed_observation(domain, members, genuine.to_proto()) == genuine
