"""Turning wire messages into verified signatures: recover the signer, check membership.

Everything arriving from a peer (gossip or sync) goes through here before it can count.
"""

from __future__ import annotations

from dataclasses import dataclass

from crossclear.attest._eip712 import SigningDomain, observation_digest
from crossclear.attest._keys import InvalidSignature, recover_signer
from crossclear.attest._node_set import NodeSet
from crossclear.attest._observation import MalformedObservation, Observation
from crossclear.v1 import attestation_pb2


class Rejected(ValueError):
    """A message that must not count, with the reason in one line."""


@dataclass(frozen=True, slots=True)
class VerifiedSignature:
    """A signature checked to come from a member of the node set over this observation."""

    observation: Observation
    """What was signed."""
    digest: bytes
    """The observation's EIP-712 digest (also its identity in the store)."""
    signer: bytes
    """Recovered 20-byte address, a member of the node set."""
    signature: bytes
    """65-byte r || s || v."""

    def to_proto(self) -> attestation_pb2.SignedObservation:
        return attestation_pb2.SignedObservation(observation=self.observation.to_proto(), signature=self.signature)


def verify_signed_observation(
    domain: SigningDomain, node_set: NodeSet, message: attestation_pb2.SignedObservation
) -> VerifiedSignature:
    try:
        observation = Observation.from_proto(message.observation)
    except MalformedObservation as error:
        raise Rejected(f"malformed observation: {error}") from None
    digest = observation_digest(domain, observation)
    signature = bytes(message.signature)
    try:
        signer = recover_signer(digest, signature)
    except InvalidSignature as error:
        raise Rejected(f"bad signature: {error}") from None
    if signer not in node_set:
        raise Rejected(f"signer 0x{signer.hex()} is not in the node set")
    return VerifiedSignature(observation, digest, signer, signature)


def verify_certificate(
    domain: SigningDomain, node_set: NodeSet, message: attestation_pb2.QuorumCertificate
) -> list[VerifiedSignature]:
    """All signatures of a certificate, each verified; Rejected unless a quorum of distinct members signed."""
    verified = [
        verify_signed_observation(
            domain, node_set, attestation_pb2.SignedObservation(observation=message.observation, signature=signature)
        )
        for signature in message.signatures
    ]
    signers = {signature.signer for signature in verified}
    if len(signers) < node_set.quorum:
        raise Rejected(f"certificate has {len(signers)} distinct signers, a quorum is {node_set.quorum}")
    return verified
