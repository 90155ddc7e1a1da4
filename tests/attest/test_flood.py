"""One member floods at several times its budgets while the other three certify: what it
sends beyond the budgets is dropped before any signature is recovered, what it may send is
stored within its share and pruned, and the honest nodes' databases stay under a bound."""

import asyncio
import contextlib
from dataclasses import replace
from pathlib import Path

import pytest

from crossclear.attest import Admission
from crossclear.attest._flood import FloodStats, run_flood
from crossclear.attest._synthetic import SyntheticChain
from crossclear.p2p import GossipSettings, now_ms

from .cluster import RunningNode, certified_blocks, certified_roots, chain_clock, configs, wait_until

CHAIN = 31337
FLOOD_SECONDS = 20
#: What a flooded node may hold after FLOOD_SECONDS: ~200 certificates, its window of the
#: flooder's pending signatures (2 kinds x 220 blocks), and one piece of evidence per slot
#: the flood passed over. Without admission, budgets and pruning the same flood stores
#: ~950 bytes per junk signature, tens of megabytes here.
DATABASE_BOUND_BYTES = 3 * 1024 * 1024


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_a_flooding_member_is_held_to_its_budgets_and_the_databases_stay_bounded(tmp_path: Path) -> None:
    async def scenario() -> None:
        chain = SyntheticChain(chain_id=CHAIN, genesis_ms=now_ms(), blocks_per_second=10.0)
        # Budgets scaled down so that four nodes sharing one test process keep up; the flooder
        # tries three times what they allow.
        budgets = GossipSettings(signer_recoveries_per_second=400.0, signer_recovery_burst=2000, signer_messages_per_second=50.0, signer_burst=100)
        admission = Admission(
            emitters=frozenset({(CHAIN, chain.emitter)}), behind_blocks=200, ahead_blocks=20
        )
        all_configs = [
            replace(config, admission=admission, storage_share=300, prune_seconds=1.0)
            for config in configs(tmp_path, 4, gossip=budgets)
        ]
        honest = [RunningNode(config, [chain]) for config in all_configs[:3]]
        flooder = RunningNode(replace(all_configs[3], own_head=chain_clock([chain])), [chain])
        stats = FloodStats()
        flood: asyncio.Task[None] | None = None
        try:
            await asyncio.gather(*(node.start() for node in honest))
            flooder.node = None
            from crossclear.attest import AttestationNode

            flooder.node = AttestationNode(flooder.config)
            await flooder.node.start()
            await wait_until(lambda: flooder.running.network.connected_peers() == 3, 20, "the flooder connected")
            flood = asyncio.create_task(run_flood(flooder.running, [chain], factor=3.0, stats=stats))
            start_mark = chain.head(now_ms())
            await asyncio.sleep(FLOOD_SECONDS)
            mark = chain.head(now_ms())
            await wait_until(
                lambda: all(set(range(1, mark + 1)) <= certified_blocks(n.running, CHAIN) for n in honest),
                30,
                f"blocks 1..{mark} certified on the three honest nodes during the flood",
            )
            assert mark - start_mark >= 150
            print("flood", stats, [n.running.status() for n in honest], flooder.running.status())
            for node in honest:
                status = node.running.status()
                roots = certified_roots(node.running, CHAIN)
                assert all(root == chain.observation(block).root for block, root in roots.items())
                # Beyond its budgets the flood was dropped before recovery, at a small cost each.
                assert status.gossip_dropped.get("recovery_budget", 0) + status.gossip_dropped.get("rate_limited", 0) > 100
                assert status.gossip_drop_cost_us["recovery_budget"] < 2000
                # What it could send went to its share, was pruned behind the window, and its
                # equivocations are on file once per slot.
                assert status.pruned_rows > 0
                assert node.running.store.pending_count(flooder.config.key.address) <= 300
                assert 0 < status.equivocations_by_signer[flooder.config.key.address] <= 2 * (mark + 20)
                assert status.database_bytes < DATABASE_BOUND_BYTES, status.database_bytes
            assert stats.observations > 10_000
        finally:
            if flood is not None:
                flood.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await flood
            await asyncio.gather(*(node.stop() for node in [*honest, flooder]), return_exceptions=True)

    asyncio.run(scenario())
