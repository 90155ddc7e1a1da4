"""The incremental Poseidon Merkle tree shared with the `CollateralVault` contract.

Depth 20, node = Poseidon(left, right), empty leaf 0, zeros[0] = 0 and
zeros[i + 1] = Poseidon(zeros[i], zeros[i]). Leaves fill from index 0 left to right, so the
root after n insertions is the root the vault emits after its n-th deposit.

The tree keeps every level (not only the "filled subtrees" the contract keeps) so it can
hand out the authentication path of any leaf, which the prover needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from crossclear.zk.poseidon import SNARK_SCALAR_FIELD, poseidon

TREE_DEPTH = 20


@cache
def zero_values(depth: int = TREE_DEPTH) -> tuple[int, ...]:
    """zeros[0..depth]: zeros[i] is the root of an empty subtree of height i."""
    zeros = [0]
    for _ in range(depth):
        zeros.append(poseidon([zeros[-1], zeros[-1]]))
    return tuple(zeros)


@dataclass(frozen=True)
class MerklePath:
    """The authentication path of one leaf, in the form the circuit takes it."""

    leaf: int
    """The leaf value."""
    leaf_index: int
    """Position of the leaf, 0-based from the left."""
    path_elements: tuple[int, ...]
    """Sibling at each level, from the leaf level up."""
    path_indices: tuple[int, ...]
    """Bit i of the leaf index: 1 when the node at level i is a right child."""
    root: int
    """The root this path leads to."""


def root_from_path(leaf: int, path_elements: tuple[int, ...], leaf_index: int) -> int:
    """Recompute the root from a leaf and its siblings (what the circuit does)."""
    node = leaf
    for level, sibling in enumerate(path_elements):
        if (leaf_index >> level) & 1:
            node = poseidon([sibling, node])
        else:
            node = poseidon([node, sibling])
    return node


class IncrementalMerkleTree:
    """An append-only Poseidon tree; `insert` costs `depth` Poseidon(2) calls."""

    def __init__(self, depth: int = TREE_DEPTH) -> None:
        if not 1 <= depth <= 32:
            raise ValueError(f"tree depth must be 1..32, got {depth}")
        self.depth = depth
        self._zeros = zero_values(depth)
        # _levels[0] are the leaves; _levels[depth] holds the root once a leaf exists.
        self._levels: list[list[int]] = [[] for _ in range(depth + 1)]

    @property
    def leaf_count(self) -> int:
        return len(self._levels[0])

    @property
    def zeros(self) -> tuple[int, ...]:
        return self._zeros

    @property
    def root(self) -> int:
        top = self._levels[self.depth]
        return top[0] if top else self._zeros[self.depth]

    def leaf(self, index: int) -> int:
        return self._levels[0][index]

    def insert(self, leaf: int) -> int:
        """Append a leaf and return its index."""
        if not 0 <= leaf < SNARK_SCALAR_FIELD:
            raise ValueError(f"leaf {leaf} is not a field element")
        index = self.leaf_count
        if index >= 1 << self.depth:
            raise ValueError(f"tree of depth {self.depth} is full ({index} leaves)")
        self._levels[0].append(leaf)
        node_index = index
        for level in range(self.depth):
            parent = poseidon(self._children(level, node_index >> 1))
            parent_index = node_index >> 1
            above = self._levels[level + 1]
            if parent_index < len(above):
                above[parent_index] = parent
            else:
                above.append(parent)
            node_index = parent_index
        return index

    def path(self, leaf_index: int) -> MerklePath:
        """The authentication path of an inserted leaf under the current root."""
        if not 0 <= leaf_index < self.leaf_count:
            raise IndexError(f"leaf index {leaf_index} not in tree of {self.leaf_count} leaves")
        elements = []
        for level in range(self.depth):
            elements.append(self._node(level, (leaf_index >> level) ^ 1))
        return MerklePath(
            leaf=self._levels[0][leaf_index],
            leaf_index=leaf_index,
            path_elements=tuple(elements),
            path_indices=tuple((leaf_index >> level) & 1 for level in range(self.depth)),
            root=self.root,
        )

    def _node(self, level: int, index: int) -> int:
        nodes = self._levels[level]
        return nodes[index] if index < len(nodes) else self._zeros[level]

    def _children(self, level: int, parent_index: int) -> list[int]:
        return [self._node(level, 2 * parent_index), self._node(level, 2 * parent_index + 1)]
