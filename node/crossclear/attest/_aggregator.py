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

Bounds, so that one member cannot grow another's database: a signer holding `storage_share`
uncertified signatures already has further ones dropped (this node's own are never dropped);
evidence is kept once per signer and slot; a signature is stored before its observation row,
so a refused one leaves nothing behind. Beyond `evidence_cap` pieces against one signer, a
further equivocation records its slot only (a row of ~200 bytes instead of ~1 KB): the count
stays exact, and the first pieces already prove the offence.
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
    over_share: int = 0
    """Signatures dropped because their signer already held its storage share."""


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
    store: AttestationStore,
    node_set: NodeSet,
    signatures: Sequence[VerifiedSignature],
    now_ms: int,
    *,
    storage_share: int | None = None,
    own: bytes = b"",
    evidence_cap: int | None = None,
) -> IngestReport:
    """Count `signatures` (already verified) in one transaction and report what changed.

    `storage_share`: uncertified signatures a signer other than `own` may hold here; beyond
    it, its signatures over uncertified observations are dropped (None: no limit)."""
    certificates: list[Certificate] = []
    counted = duplicates = equivocations = over_share = 0
    with store.transaction():
        for verified in signatures:
            if verified.signer not in node_set:
                raise ValueError(f"signer 0x{verified.signer.hex()} is not in the node set; verify before ingesting")
            row = stored_observation(verified.observation)
            certified = store.has_certificate(verified.digest)
            if (
                storage_share is not None
                and not certified
                and verified.signer != own
                and store.pending_count(verified.signer) >= storage_share
                # A signature in a slot the signer already holds adds no row (a duplicate, or
                # evidence kept once per slot): only new rows count against the share.
                and store.signature_at_slot(verified.signer, row.kind, row.chain_id, row.emitter, row.block_number)
                is None
            ):
                over_share += 1
                continue
            # The common case (a new signature) costs four statements: insert the signature
            # and its observation, count, look for a certificate. Only a refused insert (same
            # signer, same slot) looks further, to tell a duplicate from an equivocation.
            stored = StoredSignature(verified.digest, verified.signer, verified.signature)
            if not store.insert_signature(stored, row, now_ms, pending=not certified):
                held = store.signature_at_slot(verified.signer, row.kind, row.chain_id, row.emitter, row.block_number)
                if held is None or held.digest == verified.digest:
                    duplicates += 1
                elif _record_equivocation(store, held, verified, row, now_ms, evidence_cap):
                    equivocations += 1
                continue
            store.insert_observation(verified.digest, row, now_ms)
            counted += 1
            if certified or store.signature_count(verified.digest) < node_set.quorum:
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
    return IngestReport(tuple(certificates), counted, duplicates, equivocations, over_share)


def _record_equivocation(
    store: AttestationStore,
    held: StoredSignature,
    verified: VerifiedSignature,
    row: StoredObservation,
    now_ms: int,
    evidence_cap: int | None,
) -> bool:
    if store.has_evidence_at_slot(verified.signer, row.kind, row.chain_id, row.emitter, row.block_number):
        return False  # one piece per slot proves it; a flood of variants adds nothing
    if evidence_cap is not None and store.kept_evidence_count(verified.signer) >= evidence_cap:
        return store.insert_evidence(verified.signer, row, verified.digest, b"", now_ms)
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
