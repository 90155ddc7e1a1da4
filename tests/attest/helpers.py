"""Keys, node sets and observations shared by the attestation tests."""

from __future__ import annotations

from crossclear.attest import NodeKey, NodeSet, Observation, ObservationKind

KEYS = tuple(NodeKey(bytes([index + 1]) * 32) for index in range(7))
VAULT = bytes.fromhex("5fbdb2315678afecb367f032d93f642f64180aa3")


def node_set(size: int) -> NodeSet:
    return NodeSet(frozenset(key.address for key in KEYS[:size]))


def observation(block: int = 7, root_byte: int = 0xAB, chain_id: int = 31337) -> Observation:
    return Observation(
        kind=ObservationKind.ROOT,
        chain_id=chain_id,
        emitter=VAULT,
        block_number=block,
        block_hash=bytes([block % 256]) * 32,
        root=bytes([root_byte]) * 32,
        leaf_count=block,
    )
