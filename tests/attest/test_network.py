"""Four nodes in one process: certificates with one node down, none with two down, recovery."""

import asyncio
from pathlib import Path

import pytest

from crossclear.attest._synthetic import SyntheticChain
from crossclear.p2p import now_ms

from .cluster import RunningNode, certified_blocks, certified_roots, configs, wait_until

CHAIN = 31337


def _chain(blocks_per_second: float = 10.0) -> SyntheticChain:
    return SyntheticChain(chain_id=CHAIN, genesis_ms=now_ms(), blocks_per_second=blocks_per_second)


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_three_of_four_certify_and_two_of_four_do_not(tmp_path: Path) -> None:
    async def scenario() -> None:
        chain = _chain()
        nodes = [RunningNode(config, [chain]) for config in configs(tmp_path, 4)]
        try:
            # One node never starts: the other three still certify every block.
            await asyncio.gather(*(node.start() for node in nodes[:3]))
            await wait_until(
                lambda: all(len(certified_blocks(n.running, CHAIN)) >= 10 for n in nodes[:3]),
                30,
                "10 certificates on each of 3 running nodes",
            )
            # Heartbeats carry each node's heads to the others.
            await wait_until(
                lambda: {n.config.key.address for n in nodes[1:3]} <= set(nodes[0].running.status().peer_heads),
                10,
                "heartbeats from both peers",
            )
            assert all(heads.get(CHAIN, 0) > 0 for heads in nodes[0].running.status().peer_heads.values())
            honest = {b: chain.observation(b).root for b in range(1, 11)}
            for node in nodes[:3]:
                roots = certified_roots(node.running, CHAIN)
                assert {b: roots[b] for b in range(1, 11)} == honest

            # A second node stops: two of four cannot certify anything new.
            await nodes[2].stop()
            await asyncio.sleep(0.5)  # let batches already in flight land
            frozen = [max(certified_blocks(n.running, CHAIN)) for n in nodes[:2]]
            await asyncio.sleep(2.0)  # 20 more blocks are produced and signed by two nodes
            for node, before in zip(nodes[:2], frozen):
                assert max(certified_blocks(node.running, CHAIN)) <= max(frozen) + 1
                assert node.running.store.certificate_count() <= max(frozen) + 1

            # The stopped node returns: everything missed certifies, with the honest roots.
            await nodes[2].start()
            target = chain.head(now_ms())
            await wait_until(
                lambda: all(set(range(1, target + 1)) <= certified_blocks(n.running, CHAIN) for n in nodes[:3]),
                40,
                f"blocks 1..{target} certified on the three running nodes",
            )
            for node in nodes[:3]:
                roots = certified_roots(node.running, CHAIN)
                assert all(roots[b] == chain.observation(b).root for b in range(1, target + 1))
        finally:
            await asyncio.gather(*(node.stop() for node in nodes), return_exceptions=True)

    asyncio.run(scenario())


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_byzantine_signer_never_certifies_and_its_equivocation_is_recorded(tmp_path: Path) -> None:
    async def scenario() -> None:
        chain = _chain()
        all_configs = configs(tmp_path, 4)
        nodes = [RunningNode(config, [chain], byzantine=index == 3) for index, config in enumerate(all_configs)]
        liar = all_configs[3].key.address
        try:
            await asyncio.gather(*(node.start() for node in nodes))
            await wait_until(
                lambda: all(
                    len(certified_blocks(n.running, CHAIN)) >= 15
                    and n.running.status().equivocations_by_signer.get(liar, 0) >= 15
                    for n in nodes[:3]
                ),
                40,
                "15 certificates and 15 pieces of evidence against the liar on every honest node",
            )
            for node in nodes:
                roots = certified_roots(node.running, CHAIN)
                # Whatever is certified anywhere (the liar's own store included) is the truth.
                assert all(root == chain.observation(block).root for block, root in roots.items())
            for node in nodes[:3]:
                status = node.running.status()
                assert set(status.equivocations_by_signer) == {liar}
                assert status.equivocation_count == status.equivocations_by_signer[liar]
        finally:
            await asyncio.gather(*(node.stop() for node in nodes), return_exceptions=True)

    asyncio.run(scenario())


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_node_restarted_after_missing_100_blocks_catches_up(tmp_path: Path) -> None:
    async def scenario() -> None:
        chains = [
            SyntheticChain(chain_id=CHAIN, genesis_ms=now_ms(), blocks_per_second=50.0),
            SyntheticChain(chain_id=CHAIN + 1, genesis_ms=now_ms(), blocks_per_second=50.0),
        ]
        nodes = [RunningNode(config, chains) for config in configs(tmp_path, 4)]
        try:
            await asyncio.gather(*(node.start() for node in nodes))
            await wait_until(
                lambda: all(len(certified_blocks(n.running, c.chain_id)) >= 20 for n in nodes for c in chains),
                30,
                "20 certificates per chain on every node",
            )
            await nodes[3].stop()
            stopped_at = max(c.head(now_ms()) for c in chains)
            await wait_until(
                lambda: min(c.head(now_ms()) for c in chains) >= stopped_at + 100, 10, "100 more blocks on each chain"
            )
            await nodes[3].start()
            # Catch-up over Sync (a busy machine may time a round out: retry until all answer).
            received = 0
            for _ in range(10):
                report = await nodes[3].running.catch_up()
                assert report.signatures_rejected == 0
                received += report.certificates_received
                if report.peers_answered == 3:
                    break
            assert report.peers_answered == 3 and received >= 100
            target = min(c.head(now_ms()) for c in chains)

            def caught_up() -> bool:
                return all(
                    set(range(1, target + 1)) <= certified_blocks(n.running, c.chain_id) for n in nodes for c in chains
                )

            await wait_until(caught_up, 40, f"blocks 1..{target} of both chains certified on all four nodes")
            for chain in chains:
                reference = {b: r for b, r in certified_roots(nodes[0].running, chain.chain_id).items() if b <= target}
                for node in nodes[1:]:
                    roots = certified_roots(node.running, chain.chain_id)
                    assert {b: r for b, r in roots.items() if b <= target} == reference
        finally:
            await asyncio.gather(*(node.stop() for node in nodes), return_exceptions=True)

    asyncio.run(scenario())
