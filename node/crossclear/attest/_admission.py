"""Which peers' observations a node lets in at all, decided from plain fields before any
signature is recovered.

An observation is admitted when its (chain, emitter) pair is one this node follows and its
block lies in a window around this node's own view of that chain's head: at most
`behind_blocks` below it (older ones would be pruned anyway, and Sync serves history) and at
most `ahead_blocks` above it (a peer whose RPC is a little ahead is normal; one far ahead is
either lying or about a block this node cannot check yet, and Sync brings it later). Without
a head for the chain nothing is admitted from gossip: there is no window to bound it by.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

#: This node's own view of a chain's head (its adapter's latest block), None when unknown.
OwnHead = Callable[[int], int | None]


@dataclass(frozen=True)
class Admission:
    """The admission rule; see the module docstring."""

    emitters: frozenset[tuple[int, bytes]] | None = None
    """(chain id, 20-byte contract) pairs this node follows; None admits every pair (unit
    tests and tools only: a node always configures its pairs)."""
    behind_blocks: int = 1024
    """How far below this node's head an admitted block may be."""
    ahead_blocks: int = 64
    """How far above this node's head an admitted block may be."""

    def __post_init__(self) -> None:
        if self.behind_blocks < 0 or self.ahead_blocks < 0:
            raise ValueError("admission windows are block counts >= 0")
        wrong = [pair for pair in self.emitters or () if pair[0] <= 0 or len(pair[1]) != 20]
        if wrong:
            raise ValueError(f"admitted pairs must be (chain id > 0, 20-byte address), got {wrong[:3]}")

    @property
    def chains(self) -> frozenset[int] | None:
        """Chains with at least one admitted emitter (None when every pair is admitted)."""
        return None if self.emitters is None else frozenset(chain for chain, _ in self.emitters)

    def refusal(self, chain_id: int, emitter: bytes, block_number: int, head: int | None) -> str | None:
        """Why an observation is not admitted (a metric label), or None when it is."""
        if self.emitters is not None and (chain_id, emitter) not in self.emitters:
            return "unknown_emitter"
        if head is None:
            return "no_head"
        if block_number > head + self.ahead_blocks:
            return "too_new"
        if block_number + self.behind_blocks < head:
            return "too_old"
        return None

    def refusal_ahead_only(self, chain_id: int, emitter: bytes, block_number: int, head: int | None) -> str | None:
        """As `refusal`, without the lower bound (catch-up fetches history on purpose)."""
        if self.emitters is not None and (chain_id, emitter) not in self.emitters:
            return "unknown_emitter"
        if head is not None and block_number > head + self.ahead_blocks:
            return "too_new"
        return None
