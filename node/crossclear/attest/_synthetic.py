"""A synthetic chain and adapter for tests and the benchmark: blocks appear on a fixed clock,
whether or not a node is running, so a node that was down has blocks to catch up on."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from eth_hash.auto import keccak

from crossclear.attest._node import AttestationNode
from crossclear.attest._observation import Observation, ObservationKind
from crossclear.p2p import now_ms


@dataclass(frozen=True, slots=True)
class SyntheticChain:
    """Block n of this chain appears at genesis_ms + n / blocks_per_second, with a fixed root."""

    chain_id: int
    """EIP-155 chain id."""
    genesis_ms: int
    """Wall-clock time of block 0, in ms since the epoch."""
    blocks_per_second: float
    """Block rate."""
    last_block: int = 2**62
    """No blocks after this one (a finite run for the benchmark)."""
    emitter: bytes = bytes.fromhex("c011a7e4a1c011a7e4a1c011a7e4a1c011a7e4a1")
    """The vault whose root is observed."""

    def block_time_ms(self, block_number: int) -> float:
        return self.genesis_ms + block_number * 1000.0 / self.blocks_per_second

    def head(self, at_ms: int) -> int:
        """Highest block produced by `at_ms` (0 before the first)."""
        produced = int((at_ms - self.genesis_ms) * self.blocks_per_second / 1000)
        return max(0, min(produced, self.last_block))

    def observation(self, block_number: int, lie: int = 0) -> Observation:
        """The honest observation of a block, or (lie > 0) a distinct fabricated one."""
        seed = self.chain_id.to_bytes(8, "big") + block_number.to_bytes(8, "big")
        root = keccak(b"root" + seed + lie.to_bytes(4, "big"))
        return Observation(
            kind=ObservationKind.ROOT,
            chain_id=self.chain_id,
            emitter=self.emitter,
            block_number=block_number,
            block_hash=keccak(b"block" + seed),
            root=root,
            leaf_count=block_number,
        )


def cursor_name(chain: SyntheticChain) -> str:
    return f"synthetic:{chain.chain_id}"


async def run_synthetic_adapter(
    node: AttestationNode, chains: Sequence[SyntheticChain], *, byzantine: bool = False, poll_ms: int = 5
) -> None:
    """Attest every block of every chain from the stored cursor on, forever (cancel to stop).

    A Byzantine adapter signs two different fabricated roots for every block: its
    observations never match the honest ones, and every block is an equivocation.
    """
    while True:
        now = now_ms()
        for chain in chains:
            first = (node.store.cursor(cursor_name(chain)) or 0) + 1
            last = chain.head(now)
            lies = (1, 2) if byzantine else (0,)
            observations = [chain.observation(block, lie) for block in range(first, last + 1) for lie in lies]
            if observations:
                await node.attest_many(observations)
                with node.store.transaction():
                    node.store.set_cursor(cursor_name(chain), last)
        next_due = min(
            (chain.block_time_ms(chain.head(now) + 1) for chain in chains if chain.head(now) < chain.last_block),
            default=now + 1000,
        )
        await asyncio.sleep(max(poll_ms, next_due - now_ms()) / 1000)
