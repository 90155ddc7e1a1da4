"""Attestations: signing observations (EIP-712, secp256k1), quorum certificates, equivocation
evidence, the gossiping node and its Sync catch-up."""

from crossclear.attest._admission import Admission, OwnHead
from crossclear.attest._aggregator import Certificate, IngestReport, ingest
from crossclear.attest._claim_gate import ClaimBudget, ClaimGate
from crossclear.attest._eip712 import SigningDomain, observation_digest
from crossclear.attest._keys import InvalidSignature, NodeKey, recover_signer
from crossclear.attest._metrics import AttestationCollector
from crossclear.attest._node import AttestationNode, NodeConfig, NodeStatus
from crossclear.attest._node_set import NodeSet
from crossclear.attest._observation import MalformedObservation, Observation, ObservationKind, Slot
from crossclear.attest._signing import sign_observation
from crossclear.attest._sync import CatchUp, CatchUpReport, PeerScores, SyncLimits
from crossclear.attest._verify import Rejected, VerifiedSignature, verify_certificate, verify_signed_observation

__all__ = [
    "Admission",
    "AttestationCollector",
    "AttestationNode",
    "CatchUp",
    "CatchUpReport",
    "Certificate",
    "ClaimBudget",
    "ClaimGate",
    "IngestReport",
    "InvalidSignature",
    "MalformedObservation",
    "NodeConfig",
    "NodeKey",
    "NodeSet",
    "NodeStatus",
    "Observation",
    "ObservationKind",
    "OwnHead",
    "PeerScores",
    "Rejected",
    "SigningDomain",
    "Slot",
    "SyncLimits",
    "VerifiedSignature",
    "ingest",
    "observation_digest",
    "recover_signer",
    "sign_observation",
    "verify_certificate",
    "verify_signed_observation",
]
