"""What each gossip topic carries, and the checks its bodies pass inside the libp2p validator."""

from __future__ import annotations

from dataclasses import dataclass

from google.protobuf.message import DecodeError

from crossclear.attest._eip712 import SigningDomain
from crossclear.attest._node_set import NodeSet
from crossclear.attest._verify import Rejected, VerifiedSignature, verify_signed_observation
from crossclear.p2p import Dropped, OpenedEnvelope
from crossclear.v1 import attestation_pb2

#: Observations per gossip batch, at most (a full batch is ~120 KiB, under the envelope limit).
MAX_BATCH_ITEMS = 512
#: Chains a heartbeat may report.
MAX_HEARTBEAT_HEADS = 256


@dataclass(frozen=True, slots=True)
class AttestationCheck:
    """Decode an AttestationBatch and verify every signature in it, all or nothing."""

    domain: SigningDomain
    """Signing domain of the network."""
    node_set: NodeSet
    """Who may sign."""

    def __call__(self, envelope: OpenedEnvelope) -> tuple[VerifiedSignature, ...]:
        batch = attestation_pb2.AttestationBatch()
        try:
            batch.ParseFromString(envelope.body)
        except DecodeError as error:
            raise Dropped("undecodable", f"attestation batch: {error}") from None
        if not batch.items or len(batch.items) > MAX_BATCH_ITEMS:
            raise Dropped("bad_batch", f"{len(batch.items)} items, expected 1..{MAX_BATCH_ITEMS}")
        verified = []
        for item in batch.items:
            try:
                signature = verify_signed_observation(self.domain, self.node_set, item)
            except Rejected as error:
                raise Dropped("bad_observation", str(error)) from None
            if signature.signer != envelope.signer:
                # Nodes gossip only their own signatures; relaying others' is what Sync is for.
                raise Dropped("bad_observation", "an item is signed by someone other than the envelope's sender")
            verified.append(signature)
        return tuple(verified)


def check_heartbeat(envelope: OpenedEnvelope) -> attestation_pb2.Heartbeat:
    heartbeat = attestation_pb2.Heartbeat()
    try:
        heartbeat.ParseFromString(envelope.body)
    except DecodeError as error:
        raise Dropped("undecodable", f"heartbeat: {error}") from None
    if len(heartbeat.heads) > MAX_HEARTBEAT_HEADS:
        raise Dropped("bad_heartbeat", f"{len(heartbeat.heads)} heads, limit {MAX_HEARTBEAT_HEADS}")
    return heartbeat


def check_claim(envelope: OpenedEnvelope) -> bytes:
    # Claim bodies are defined by the claims concern (issue 7); the envelope is already
    # verified to come from a member, which is all this layer can know.
    return envelope.body
