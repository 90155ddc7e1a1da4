"""Counting verified signatures into quorum certificates and equivocation evidence.

The store is the aggregator's state: one signature per signer per slot (its primary key),
certificates and evidence are rows. Nothing lives only in memory, so a restart resumes with
every signature counted so far, and memory does not grow with history.

Rules, per verified signature:
- the signer already signed this exact observation: a duplicate, ignored;
- the signer already signed a *different* observation in the same slot: equivocation; both
  signed messages are stored as evidence and the new one does not count. The signer's first
  signature still counts for its own observation, so the honest certificate forms whenever
  enough honest members agree;
- otherwise it counts, and the observation is certified once floor(2n/3)+1 distinct members
  have signed it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from crossclear.attest._node_set import NodeSet
from crossclear.attest._observation import Observation, ObservationKind
from crossclear.attest._verify import VerifiedSignature
from crossclear.store import AttestationStore, StoredObservation, StoredSignature
from crossclear.v1 import attestation_pb2


@dataclass(frozen=True, slots=True)
class Certificate:
    """A quorum certificate: an observation and enough member signatures over it."""

    observation: Observation
    """What the quorum agreed on."""
    digest: bytes
    """Its EIP-712 digest."""
    signatures: tuple[bytes, ...]
    """65-byte signatures, sorted by signer address."""

    def to_proto(self) -> attestation_pb2.QuorumCertificate:
        return attestation_pb2.QuorumCertificate(observation=self.observation.to_proto(), signatures=self.signatures)


@dataclass(frozen=True, slots=True)
class IngestReport:
    """What one call to `ingest` changed."""

    certificates: tuple[Certificate, ...]
    """Certificates formed by this call."""
    counted: int
    """Signatures newly counted."""
    duplicates: int
    """Signatures already held."""
    equivocations: int
    """New pieces of equivocation evidence stored."""


def stored_observation(observation: Observation) -> StoredObservation:
    return StoredObservation(
        kind=int(observation.kind),
        chain_id=observation.chain_id,
        emitter=observation.emitter,
        block_number=observation.block_number,
        block_hash=observation.block_hash,
        root=observation.root,
        leaf_count=observation.leaf_count,
    )


def observation_from_stored(row: StoredObservation) -> Observation:
    return Observation(
        kind=ObservationKind(row.kind),
        chain_id=row.chain_id,
        emitter=row.emitter,
        block_number=row.block_number,
        block_hash=row.block_hash,
        root=row.root,
        leaf_count=row.leaf_count,
    )


def ingest(
    store: AttestationStore, node_set: NodeSet, signatures: Sequence[VerifiedSignature], now_ms: int
) -> IngestReport:
    """Count `signatures` (already verified) in one transaction and report what changed."""
    certificates: list[Certificate] = []
    counted = duplicates = equivocations = 0
    with store.transaction():
        for verified in signatures:
            if verified.signer not in node_set:
                raise ValueError(f"signer 0x{verified.signer.hex()} is not in the node set; verify before ingesting")
            row = stored_observation(verified.observation)
            # The common case (a new signature) costs three statements: insert the observation
            # and the signature, count. Only a refused insert (same signer, same slot) looks
            # further, to tell a duplicate from an equivocation.
            store.insert_observation(verified.digest, row, now_ms)
            stored = StoredSignature(verified.digest, verified.signer, verified.signature)
            if not store.insert_signature(stored, row, now_ms):
                held = store.signature_at_slot(verified.signer, row.kind, row.chain_id, row.emitter, row.block_number)
                if held is None or held.digest == verified.digest:
                    duplicates += 1
                elif _record_equivocation(store, held, verified, row, now_ms):
                    equivocations += 1
                continue
            counted += 1
            if store.signature_count(verified.digest) < node_set.quorum or store.has_certificate(verified.digest):
                continue
            certificate = Certificate(
                verified.observation,
                verified.digest,
                tuple(held.signature for held in store.signatures_for(verified.digest)),
            )
            store.insert_certificate(
                verified.digest, row.chain_id, row.block_number, certificate.to_proto().SerializeToString(), now_ms
            )
            certificates.append(certificate)
    return IngestReport(tuple(certificates), counted, duplicates, equivocations)


def _record_equivocation(
    store: AttestationStore, held: StoredSignature, verified: VerifiedSignature, row: StoredObservation, now_ms: int
) -> bool:
    first_observation = store.observation(held.digest)
    if first_observation is None:
        raise RuntimeError(f"store holds a signature over unknown observation 0x{held.digest.hex()}")
    evidence = attestation_pb2.EquivocationEvidence(
        first=attestation_pb2.SignedObservation(
            observation=observation_from_stored(first_observation).to_proto(), signature=held.signature
        ),
        second=verified.to_proto(),
    )
    return store.insert_evidence(verified.signer, row, verified.digest, evidence.SerializeToString(), now_ms)
