"""A flooding member, for tests and the benchmark: gossip validly signed, fabricated
observations as fast as the honest nodes' budgets let a member (times `factor`).

Everything it sends passes admission (a followed chain and emitter, blocks inside the window
around the head), so every item costs an honest node a signature recovery and a store lookup:
new slots are stored as pending signatures (up to the member's storage share, pruned as the
head moves on), later ones are equivocations (kept once per slot). With `factor` > 1 the
excess is what the budgets drop.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass

from crossclear.attest._node import AttestationNode
from crossclear.attest._observation import Observation, ObservationKind
from crossclear.attest._signing import sign_observation
from crossclear.attest._synthetic import SyntheticChain
from crossclear.p2p import now_ms
from crossclear.v1 import attestation_pb2

_log = logging.getLogger(__name__)

_TICK_SECONDS = 0.05


@dataclass
class FloodStats:
    """What the flooder sent."""

    messages: int = 0
    observations: int = 0
    bytes: int = 0


async def run_flood(
    node: AttestationNode,
    chains: Sequence[SyntheticChain],
    *,
    factor: float = 1.0,
    behind_blocks: int | None = None,
    ahead_blocks: int | None = None,
    stats: FloodStats | None = None,
) -> None:
    """Flood until cancelled. The window defaults to the node's own admission settings."""
    settings = node.config.gossip
    admission = node.config.admission
    behind = admission.behind_blocks if behind_blocks is None else behind_blocks
    ahead = admission.ahead_blocks if ahead_blocks is None else ahead_blocks
    messages_per_tick = settings.signer_messages_per_second * _TICK_SECONDS * factor
    recoveries_per_tick = settings.signer_recoveries_per_second * _TICK_SECONDS * factor
    # Each message costs one recovery for its envelope plus one per item.
    items = max(1, int(recoveries_per_tick / max(1.0, messages_per_tick)) - 1)
    # Roughly 240 bytes per item; stay under the byte budget too.
    bytes_per_tick = settings.signer_bytes_per_second * _TICK_SECONDS * factor
    per_tick = min(messages_per_tick, bytes_per_tick / (items * 240 + 200))
    counters = stats if stats is not None else FloodStats()
    rng = random.Random(node.config.key.address)
    carry = 0.0
    while True:
        started = asyncio.get_running_loop().time()
        now = now_ms()
        carry += per_tick
        due = int(carry)
        carry -= due
        bodies = []
        for _ in range(due):
            batch = attestation_pb2.AttestationBatch()
            for _ in range(items):
                chain = rng.choice(list(chains))
                head = chain.head(now)
                block = max(1, head + rng.randint(-behind, ahead))
                fabricated = Observation(
                    kind=rng.choice((ObservationKind.ROOT, ObservationKind.EVENTS)),
                    chain_id=chain.chain_id,
                    emitter=chain.emitter,
                    block_number=block,
                    block_hash=rng.randbytes(32),
                    root=rng.randbytes(32),
                    leaf_count=block,
                )
                batch.items.append(sign_observation(node.config.key, node.config.domain, fabricated).to_proto())
            bodies.append(batch.SerializeToString())
        # All of a tick's messages at once: one publish's round trip must not slow the flood.
        outcomes = await asyncio.gather(
            *(node.network.publish(node.topic("attestations"), body) for body in bodies), return_exceptions=True
        )
        for body, outcome in zip(bodies, outcomes):
            if isinstance(outcome, BaseException):  # peers may be unreachable; a flooder does not care
                _log.debug("flood publish failed: %s", outcome)
                continue
            counters.messages += 1
            counters.observations += items
            counters.bytes += len(body)
        elapsed = asyncio.get_running_loop().time() - started
        await asyncio.sleep(max(0.0, _TICK_SECONDS - elapsed))
