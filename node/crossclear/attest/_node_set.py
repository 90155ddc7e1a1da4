"""The node set and its quorum."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class NodeSet:
    """The addresses whose signatures count, fixed for a network's lifetime."""

    members: frozenset[bytes]
    """20-byte signer addresses."""

    def __post_init__(self) -> None:
        if not self.members:
            raise ValueError("a node set needs at least one member")
        wrong = [member.hex() for member in self.members if len(member) != 20]
        if wrong:
            raise ValueError(f"node set members must be 20-byte addresses, got {', '.join(wrong)}")

    @property
    def quorum(self) -> int:
        """floor(2n/3)+1: any two quorums share an honest member while fewer than n/3 lie."""
        return 2 * len(self.members) // 3 + 1

    def __contains__(self, address: object) -> bool:
        return address in self.members

    def __len__(self) -> int:
        return len(self.members)
