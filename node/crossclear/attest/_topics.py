"""What each gossip topic carries, and the checks its bodies pass inside the libp2p validator."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

from google.protobuf.message import DecodeError

from crossclear.attest._admission import Admission, OwnHead
from crossclear.attest._eip712 import SigningDomain
from crossclear.attest._node_set import NodeSet
from crossclear.attest._verify import Rejected, VerifiedSignature, verify_signed_observation
from crossclear.p2p import Admitted, Dropped, OpenedEnvelope
from crossclear.v1 import attestation_pb2

#: Observations per gossip batch, at most (a full batch is ~120 KiB, under the envelope limit).
MAX_BATCH_ITEMS = 512
#: Chains a heartbeat may report.
MAX_HEARTBEAT_HEADS = 256


def _no_head(chain_id: int) -> int | None:
    return None


@dataclass
class AttestationCheck:
    """Admit an AttestationBatch's observations by their plain fields (`admit`, before any
    signature is recovered: items outside the admission rule are dropped and counted, a batch
    left empty is dropped), then verify every admitted signature, all or nothing (`__call__`)."""

    domain: SigningDomain
    """Signing domain of the network."""
    node_set: NodeSet
    """Who may sign."""
    admission: Admission = Admission()
    """Which (chain, emitter) pairs and blocks are let in."""
    head: OwnHead = _no_head
    """This node's head per chain (read on the libp2p thread)."""
    dropped: dict[str, int] = field(default_factory=dict)
    """Observations refused by admission, per reason."""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def dropped_snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self.dropped)

    def admit(self, body: bytes) -> Admitted:
        batch = attestation_pb2.AttestationBatch()
        try:
            batch.ParseFromString(body)
        except DecodeError as error:
            raise Dropped("undecodable", f"attestation batch: {error}") from None
        if not batch.items or len(batch.items) > MAX_BATCH_ITEMS:
            raise Dropped("bad_batch", f"{len(batch.items)} items, expected 1..{MAX_BATCH_ITEMS}")
        admitted = []
        refused: dict[str, int] = {}
        heads: dict[int, int | None] = {}
        for item in batch.items:
            observation = item.observation
            chain_id = observation.chain_id
            if chain_id not in heads:
                heads[chain_id] = self.head(chain_id)
            reason = self.admission.refusal(chain_id, observation.emitter, observation.block_number, heads[chain_id])
            if reason is None:
                admitted.append(item)
            else:
                refused[reason] = refused.get(reason, 0) + 1
        if refused:
            with self._lock:
                for reason, count in refused.items():
                    self.dropped[reason] = self.dropped.get(reason, 0) + count
        if not admitted:
            raise Dropped("not_admitted", f"none of {len(batch.items)} observations admitted: {refused}")
        return Admitted(admitted, len(admitted))

    def __call__(self, envelope: OpenedEnvelope) -> tuple[VerifiedSignature, ...]:
        items: Sequence[attestation_pb2.SignedObservation]
        if isinstance(envelope.admitted, list):
            items = envelope.admitted
        else:  # opened without the admission stage (tests of the check alone)
            batch = attestation_pb2.AttestationBatch()
            try:
                batch.ParseFromString(envelope.body)
            except DecodeError as error:
                raise Dropped("undecodable", f"attestation batch: {error}") from None
            if not batch.items or len(batch.items) > MAX_BATCH_ITEMS:
                raise Dropped("bad_batch", f"{len(batch.items)} items, expected 1..{MAX_BATCH_ITEMS}")
            items = batch.items
        verified = []
        for item in items:
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
    # Claim bodies are defined by the claims concern; the envelope is already
    # verified to come from a member, which is all this layer can know.
    return envelope.body
