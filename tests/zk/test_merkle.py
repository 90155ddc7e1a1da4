"""The Python tree agrees with the contract's filled-subtrees algorithm (run in JS)."""

from __future__ import annotations

import random

import pytest

from crossclear.zk import IncrementalMerkleTree, poseidon, root_from_path, zero_values
from crossclear.zk.merkle import TREE_DEPTH


def test_zero_values_chain() -> None:
    zeros = zero_values()
    assert len(zeros) == TREE_DEPTH + 1 and zeros[0] == 0
    assert all(zeros[i + 1] == poseidon([zeros[i], zeros[i]]) for i in range(TREE_DEPTH))
    assert IncrementalMerkleTree().root == zeros[TREE_DEPTH]


def test_roots_match_reference(node_json) -> None:  # type: ignore[no-untyped-def]
    rng = random.Random(7)
    leaves = [rng.randrange(1 << 250) for _ in range(9)]
    reference = node_json("merkle_reference.mjs", {"depth": TREE_DEPTH, "leaves": [str(v) for v in leaves]})
    assert [int(z) for z in reference["zeros"]] == list(zero_values())
    tree = IncrementalMerkleTree()
    roots = []
    for leaf in leaves:
        tree.insert(leaf)
        roots.append(tree.root)
    assert roots == [int(r) for r in reference["roots"]]


def test_paths_lead_to_root() -> None:
    tree = IncrementalMerkleTree(depth=6)
    for leaf in range(1, 12):
        tree.insert(leaf * 1000)
    for index in range(tree.leaf_count):
        path = tree.path(index)
        assert path.root == tree.root
        assert path.path_indices == tuple((index >> level) & 1 for level in range(6))
        assert root_from_path(path.leaf, path.path_elements, index) == tree.root


def test_rejections_leave_tree_unchanged() -> None:
    tree = IncrementalMerkleTree(depth=2)
    for leaf in range(4):
        tree.insert(leaf)
    root = tree.root
    with pytest.raises(ValueError, match="is full"):
        tree.insert(5)
    with pytest.raises(ValueError, match="not a field element"):
        IncrementalMerkleTree(depth=2).insert(-1)
    with pytest.raises(IndexError):
        tree.path(4)
    assert tree.root == root and tree.leaf_count == 4
