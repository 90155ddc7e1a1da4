"""The fact nodes sign: one contract's state at one block of one chain."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from crossclear.v1 import attestation_pb2


class ObservationKind(enum.IntEnum):
    """What an observation states; values match the proto enum and the EIP-712 `kind` field."""

    ROOT = attestation_pb2.OBSERVATION_KIND_ROOT
    EVENTS = attestation_pb2.OBSERVATION_KIND_EVENTS


class MalformedObservation(ValueError):
    """An observation whose fields are out of range or the wrong size."""


# SQLite integers are signed 64-bit; keeping every number below 2^63 lets the store hold
# them as plain integers (no real chain id, block or tree comes near).
_UINT64_MAX = 2**63 - 1


@dataclass(frozen=True, slots=True)
class Slot:
    """Where an observation sits: one signer may sign at most one observation per slot."""

    kind: ObservationKind
    """What the observation states."""
    chain_id: int
    """EIP-155 chain id of the observed chain."""
    emitter: bytes
    """20-byte address of the contract the fact is about."""
    block_number: int
    """Block the fact holds at."""


@dataclass(frozen=True, slots=True)
class Observation:
    """One fact about one contract at one block; what a node signs and a quorum certifies."""

    kind: ObservationKind
    """ROOT for the vault's Merkle root, EVENTS for a digest of other events."""
    chain_id: int
    """EIP-155 chain id of the observed chain."""
    emitter: bytes
    """20-byte address of the contract the fact is about."""
    block_number: int
    """Block the fact holds at."""
    block_hash: bytes
    """32-byte hash of that block (pins the fork the node saw)."""
    root: bytes
    """32 bytes: the Merkle root (ROOT) or keccak256 of the canonical event encoding (EVENTS)."""
    leaf_count: int
    """Tree size after the block (ROOT) or number of events (EVENTS)."""

    def __post_init__(self) -> None:
        if not 0 < self.chain_id <= _UINT64_MAX:
            raise MalformedObservation(f"chain id {self.chain_id} is outside 1..2^63-1")
        if len(self.emitter) != 20:
            raise MalformedObservation(f"emitter is {len(self.emitter)} bytes, expected a 20-byte address")
        if not 0 <= self.block_number <= _UINT64_MAX:
            raise MalformedObservation(f"block number {self.block_number} is outside 0..2^63-1")
        if len(self.block_hash) != 32:
            raise MalformedObservation(f"block hash is {len(self.block_hash)} bytes, expected 32")
        if len(self.root) != 32:
            raise MalformedObservation(f"root is {len(self.root)} bytes, expected 32")
        if not 0 <= self.leaf_count <= _UINT64_MAX:
            raise MalformedObservation(f"leaf count {self.leaf_count} is outside 0..2^63-1")

    @property
    def slot(self) -> Slot:
        return Slot(self.kind, self.chain_id, self.emitter, self.block_number)

    def to_proto(self) -> attestation_pb2.Observation:
        return attestation_pb2.Observation(
            kind=attestation_pb2.ObservationKind.ValueType(int(self.kind)),
            chain_id=self.chain_id,
            emitter=self.emitter,
            block_number=self.block_number,
            block_hash=self.block_hash,
            root=self.root,
            leaf_count=self.leaf_count,
        )

    @classmethod
    def from_proto(cls, message: attestation_pb2.Observation) -> Observation:
        """Build from the wire form, raising MalformedObservation for anything out of range."""
        try:
            kind = ObservationKind(message.kind)
        except ValueError:
            raise MalformedObservation(f"observation kind {message.kind} is not ROOT or EVENTS") from None
        return cls(
            kind=kind,
            chain_id=message.chain_id,
            emitter=bytes(message.emitter),
            block_number=message.block_number,
            block_hash=bytes(message.block_hash),
            root=bytes(message.root),
            leaf_count=message.leaf_count,
        )
