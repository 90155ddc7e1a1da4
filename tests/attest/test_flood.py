"""One member floods at three times its budgets while the other three certify: what it sends
beyond the budgets is dropped before any signature is recovered, what it may send is stored
within its share and pruned, and the honest nodes' databases stay under a bound."""

import asyncio
import contextlib
from dataclasses import replace
from pathlib import Path

import pytest

from crossclear.attest import Admission, AttestationNode
from crossclear.attest._flood import FloodStats, run_flood
from crossclear.attest._synthetic import SyntheticChain
from crossclear.p2p import GossipSettings, now_ms
from crossclear.store import WAL_SIZE_LIMIT_BYTES

from .cluster import RunningNode, certified_blocks, certified_roots, chain_clock, configs, wait_until

CHAIN = 31337
FLOOD_SECONDS = 20
#: What a flooded node may hold after FLOOD_SECONDS: ~120 certificates, its window of the
#: flooder's pending signatures (at most the storage share of 300), and one piece of evidence
#: per slot the flood passed over (2 kinds x ~140 blocks, 40 of them behind the head). Without admission, budgets and
#: pruning the same flood stores ~950 bytes per junk signature: over 2 MB here.
DATABASE_BOUND_BYTES = 1024 * 1024
#: The WAL may hold up to its limit plus one checkpoint's worth on top of the database.
FILES_BOUND_BYTES = DATABASE_BOUND_BYTES + WAL_SIZE_LIMIT_BYTES + 1024 * 1024


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_a_flooding_member_is_held_to_its_budgets_and_the_databases_stay_bounded(tmp_path: Path) -> None:
    async def scenario() -> None:
        chain = SyntheticChain(chain_id=CHAIN, genesis_ms=now_ms(), blocks_per_second=5.0)
        # Budgets scaled down so that four nodes sharing one test process keep up with the
        # flooder, which tries three times what they allow (an honest node sends ~5 messages
        # and ~10 recoveries per second here).
        budgets = GossipSettings(
            signer_recoveries_per_second=50.0,
            signer_recovery_burst=100,
            signer_messages_per_second=10.0,
            signer_burst=20,
        )
        admission = Admission(emitters=frozenset({(CHAIN, chain.emitter)}), behind_blocks=40, ahead_blocks=20)
        all_configs = [
            replace(config, admission=admission, storage_share=300, prune_seconds=1.0)
            for config in configs(tmp_path, 4, gossip=budgets)
        ]
        honest = [RunningNode(config, [chain]) for config in all_configs[:3]]
        flooder = AttestationNode(replace(all_configs[3], own_head=chain_clock([chain])))
        stats = FloodStats()
        flood: asyncio.Task[None] | None = None
        try:
            await asyncio.gather(*(node.start() for node in honest), flooder.start())
            await wait_until(lambda: flooder.network.connected_peers() == 3, 20, "the flooder connected")
            flood = asyncio.create_task(run_flood(flooder, [chain], factor=3.0, stats=stats))
            start_mark = chain.head(now_ms())
            await asyncio.sleep(FLOOD_SECONDS)
            mark = chain.head(now_ms())
            await wait_until(
                lambda: all(set(range(1, mark + 1)) <= certified_blocks(n.running, CHAIN) for n in honest),
                30,
                f"blocks 1..{mark} certified on the three honest nodes during the flood",
            )
            assert mark - start_mark >= 80
            assert stats.observations > 1.5 * FLOOD_SECONDS * 50  # it really tried beyond the budget
            liar = flooder.config.key.address
            for node in honest:
                status = node.running.status()
                roots = certified_roots(node.running, CHAIN)
                assert all(root == chain.observation(block).root for block, root in roots.items())
                # Beyond its budgets the flood was dropped before recovery, cheaply.
                over = status.gossip_dropped.get("recovery_budget", 0) + status.gossip_dropped.get("rate_limited", 0)
                assert over > stats.messages / 4, status.gossip_dropped
                assert status.gossip_drop_cost_us.get("recovery_budget", 0) < 1000, status.gossip_drop_cost_us
                # What it was allowed went to its share, was pruned behind the window, and its
                # equivocations are on file once per slot.
                assert status.pruned_rows > 0
                assert node.running.store.pending_count(liar) <= 300
                assert 0 < status.equivocations_by_signer[liar] <= 2 * (mark + 20)
                assert node.running.store.logical_bytes() < DATABASE_BOUND_BYTES, node.running.store.logical_bytes()
                assert status.database_bytes < FILES_BOUND_BYTES, status.database_bytes
        finally:
            if flood is not None:
                flood.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await flood
            await asyncio.gather(*(node.stop() for node in honest), flooder.stop(), return_exceptions=True)

    asyncio.run(scenario())
