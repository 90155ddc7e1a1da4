"""Hostile gossip: a member's libp2p host sends garbage, forgeries, replays, a 10 MB message
and a 10,000-message burst to three honest nodes, which drop it all and keep certifying."""

import asyncio
import os
from pathlib import Path

import psutil
import pytest
import trio
from libp2p.pubsub.pb import rpc_pb2
from libp2p.pubsub.pubsub import PUBSUB_SIGNING_PREFIX

from crossclear.attest import SigningDomain, sign_observation
from crossclear.attest._keys import recover_signer
from crossclear.attest._synthetic import SyntheticChain
from crossclear.p2p import GossipNetwork, GossipSettings, HostConfig, now_ms, seal, topic_name
from crossclear.v1 import attestation_pb2

from ..attest.cluster import RunningNode, certified_blocks, configs, wait_until
from ..attest.helpers import KEYS

CHAIN = 31337
ATTESTATIONS = topic_name("devnet", "attestations")


def _batch(block: int, chain: SyntheticChain) -> bytes:
    signed = sign_observation(KEYS[3], SigningDomain(), chain.observation(block))
    return attestation_pb2.AttestationBatch(items=[signed.to_proto()]).SerializeToString()


async def _flood(attacker: GossipNetwork, peer: str, topic: str, payloads: list[bytes]) -> None:
    """Queue pubsub frames of 1,000 libp2p-signed messages each for one peer: the fastest a
    hostile peer can push through a well-behaved sender (runs on the attacker's trio thread)."""
    pubsub = attacker._host._pubsub  # type: ignore[union-attr]
    target = next(peer_id for peer_id in pubsub.peers if peer_id.to_base58() == peer)
    messages = []
    for data in payloads:
        message = rpc_pb2.Message(data=data, topicIDs=[topic], from_id=pubsub.my_id.to_bytes(), seqno=pubsub._next_seqno())
        message.signature = pubsub.sign_key.sign(PUBSUB_SIGNING_PREFIX.encode() + message.SerializeToString())
        message.key = pubsub.host.get_public_key().serialize()
        messages.append(message)
    for start in range(0, len(messages), 1000):
        pubsub.router.send_rpc(target, rpc_pb2.RPC(publish=messages[start : start + 1000]))
        await trio.sleep(0.1)  # the outbound queue holds 32 frames; let it drain


async def _write_unparseable_frame(attacker: GossipNetwork) -> None:
    """A length-prefixed frame that is not a pubsub RPC at all."""
    pubsub = attacker._host._pubsub  # type: ignore[union-attr]
    garbage = b"\xff" * 64
    for stream in list(pubsub.peers.values()):
        await stream.write(bytes([len(garbage)]) + garbage)


def _dropped_total(nodes: list[RunningNode], reason: str) -> int:
    return sum(node.running.status().gossip_dropped.get(reason, 0) for node in nodes)


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_garbage_is_dropped_and_honest_nodes_keep_certifying(tmp_path: Path) -> None:
    async def scenario() -> None:
        chain = SyntheticChain(chain_id=CHAIN, genesis_ms=now_ms(), blocks_per_second=5.0)
        # A tight per-signer limit (honest nodes send at most 5 batches/s here) makes the flood's
        # rate limiting visible even when this one process is slow to drain it.
        limits = GossipSettings(signer_messages_per_second=10.0, signer_burst=20)
        all_configs = configs(tmp_path, 4, gossip=limits)
        honest = [RunningNode(config, [chain]) for config in all_configs[:3]]
        attacker_config = all_configs[3]
        attacker = GossipNetwork(
            HostConfig(
                attacker_config.key.secret,
                attacker_config.p2p_port,
                attacker_config.bootstrap,
                # The attacker turns off its own router's rate limit to flood at full speed.
                GossipSettings(router_messages_per_second=1e9),
            ),
            attacker_config.node_set.members,
            attacker_config.key.sign_digest,
            recover_signer,
            {ATTESTATIONS: lambda envelope: None},
            lambda topic, envelope, payload: None,
        )
        try:
            await asyncio.gather(*(node.start() for node in honest))
            await attacker.start()
            await wait_until(lambda: attacker.connected_peers() == 3, 20, "the attacker connected to all three")
            await wait_until(
                lambda: all(len(certified_blocks(n.running, CHAIN)) >= 5 for n in honest), 30, "first certificates"
            )
            sign = attacker_config.key.sign_digest

            # Random bytes, a well-formed envelope with a bad signature, a forger outside the set.
            forged = attestation_pb2.GossipEnvelope(
                sent_at_ms=now_ms(), nonce=1, body=_batch(1, chain), signature=b"\x01" * 65
            )
            outsider = seal(KEYS[6].sign_digest, ATTESTATIONS, _batch(1, chain), now_ms(), 2)
            # A batch whose envelope is fine but whose observation signature is not the sender's.
            stolen = sign_observation(KEYS[0], SigningDomain(), chain.observation(1)).to_proto()
            stolen_batch = attestation_pb2.AttestationBatch(items=[stolen]).SerializeToString()
            await attacker.publish_raw(
                ATTESTATIONS,
                [
                    os.urandom(2000),
                    forged.SerializeToString(),
                    outsider,
                    seal(sign, ATTESTATIONS, stolen_batch, now_ms(), 3),
                ],
            )
            await wait_until(
                lambda: _dropped_total(honest, "undecodable") >= 3
                and _dropped_total(honest, "bad_signature") >= 3
                and _dropped_total(honest, "not_member") >= 3
                and _dropped_total(honest, "bad_observation") >= 3,
                20,
                "each garbage message dropped by all three honest nodes",
                lambda: [node.running.status().gossip_dropped for node in honest],
            )

            # A replay: the same sealed envelope twice (fresh pubsub wrapper), and a stale one.
            original = seal(sign, ATTESTATIONS, _batch(chain.head(now_ms()) + 2, chain), now_ms(), 4)
            stale = seal(sign, ATTESTATIONS, _batch(chain.head(now_ms()) + 3, chain), now_ms() - 120_000, 5)
            await attacker.publish_raw(ATTESTATIONS, [original, original, stale])
            await wait_until(
                lambda: _dropped_total(honest, "replayed") >= 3 and _dropped_total(honest, "stale") >= 3,
                20,
                "replay and stale envelope dropped",
            )

            # 10,000 validly sealed messages in one burst at one node: beyond the per-signer
            # bucket they are rate limited, memory stays bounded, certificates keep forming.
            rss_before = psutil.Process().memory_info().rss
            body = _batch(chain.head(now_ms()) + 2000, chain)
            burst = [seal(sign, ATTESTATIONS, body, now_ms(), 100 + n) for n in range(10_000)]
            victim = honest[0].running
            await attacker._thread.call(_flood, attacker, victim.network.peer_id, ATTESTATIONS, burst)
            del burst
            await wait_until(
                lambda: victim.status().gossip_dropped.get("rate_limited", 0) >= 8_000,
                120,
                "at least 8,000 of the burst rate limited",
                lambda: victim.status().gossip_dropped,
            )
            assert psutil.Process().memory_info().rss - rss_before < 300 * 1024 * 1024

            # A frame that is not a pubsub RPC at all, then 10 MB in one message: each costs the
            # attacker its stream, never the honest host.
            await attacker._thread.call(_write_unparseable_frame, attacker)
            await attacker.publish_raw(ATTESTATIONS, [os.urandom(10 * 1024 * 1024)])

            # Through all of it the honest nodes kept certifying new blocks.
            mark = chain.head(now_ms())
            await wait_until(
                lambda: all(set(range(1, mark + 5)) <= certified_blocks(n.running, CHAIN) for n in honest),
                40,
                f"blocks 1..{mark + 4} certified after the attack",
            )
            for node in honest:
                assert node.running.store.certificate_count() == len(certified_blocks(node.running, CHAIN))
                assert max(certified_blocks(node.running, CHAIN)) <= chain.head(now_ms())  # nothing from the burst
        finally:
            await attacker.stop()
            await asyncio.gather(*(node.stop() for node in honest), return_exceptions=True)

    asyncio.run(scenario())
