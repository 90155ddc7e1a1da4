"""Admission: observations outside the followed (chain, emitter) pairs or the window around
this node's head are dropped, and counted, before any signature is recovered."""

from dataclasses import replace
from pathlib import Path

import pytest

import crossclear.attest._verify as verify_module
from crossclear.attest import Admission, SigningDomain, sign_observation
from crossclear.attest._keys import recover_signer
from crossclear.attest._topics import AttestationCheck
from crossclear.p2p import Dropped, EnvelopeGuard, GossipSettings, seal
from crossclear.v1 import attestation_pb2

from .helpers import KEYS, VAULT, node_set, observation

DOMAIN = SigningDomain()
TOPIC = "/crossclear/devnet/attestations/1"
NOW = 1_700_000_000_000
CHAIN = 31337
HEAD = 1000


def _batch(*observations: object) -> bytes:
    items = [sign_observation(KEYS[1], DOMAIN, o).to_proto() for o in observations]  # type: ignore[arg-type]
    return attestation_pb2.AttestationBatch(items=items).SerializeToString()


@pytest.fixture
def recoveries(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    seen: list[bytes] = []

    def counting(digest: bytes, signature: bytes) -> bytes:
        seen.append(digest)
        return recover_signer(digest, signature)

    monkeypatch.setattr(verify_module, "recover_signer", counting)
    return seen


def _check(heads: dict[int, int]) -> AttestationCheck:
    admission = Admission(emitters=frozenset({(CHAIN, VAULT)}), behind_blocks=100, ahead_blocks=10)
    return AttestationCheck(DOMAIN, node_set(4), admission, heads.get)


def test_only_followed_pairs_inside_the_window_are_admitted(recoveries: list[bytes]) -> None:
    check = _check({CHAIN: HEAD})
    other_vault = replace(observation(block=HEAD), emitter=b"\x77" * 20)
    body = _batch(
        observation(block=HEAD),  # at the head
        observation(block=HEAD + 10),  # a peer a little ahead: normal
        observation(block=HEAD - 100),  # the oldest admitted
        observation(block=HEAD + 11),  # too far ahead
        observation(block=HEAD - 101),  # too old
        observation(block=HEAD, chain_id=1),  # a chain this node does not follow
        other_vault,  # an emitter this node does not follow
    )
    admitted = check.admit(body)
    assert admitted.recoveries == 3
    assert [item.observation.block_number for item in admitted.value] == [HEAD, HEAD + 10, HEAD - 100]  # type: ignore[attr-defined]
    assert check.dropped_snapshot() == {"too_new": 1, "too_old": 1, "unknown_emitter": 2}
    assert recoveries == []  # admission alone recovers nothing


def test_a_batch_with_nothing_admitted_costs_no_recovery_at_all(recoveries: list[bytes]) -> None:
    envelope_recoveries: list[bytes] = []

    def counting(digest: bytes, signature: bytes) -> bytes:
        envelope_recoveries.append(digest)
        return recover_signer(digest, signature)

    guard = EnvelopeGuard(node_set(4).members, counting, GossipSettings(), clock_ms=lambda: NOW)
    junk = _batch(*(observation(block=HEAD + 5000 + n) for n in range(512)))
    check = _check({CHAIN: HEAD})
    with pytest.raises(Dropped, match="not_admitted"):
        guard.open(TOPIC, seal(KEYS[1].sign_digest, TOPIC, junk, NOW, 1), origin=KEYS[1].address, admit=check.admit)
    assert recoveries == [] and envelope_recoveries == []
    assert check.dropped_snapshot() == {"too_new": 512}
    assert guard.dropped == {"not_admitted": 1}


def test_without_a_head_for_the_chain_nothing_is_admitted_from_gossip() -> None:
    check = _check({})
    with pytest.raises(Dropped, match="not_admitted"):
        check.admit(_batch(observation(block=5)))
    assert check.dropped_snapshot() == {"no_head": 1}


def test_admitted_items_are_verified_after_the_budget_was_charged(recoveries: list[bytes]) -> None:
    guard = EnvelopeGuard(node_set(4).members, recover_signer, GossipSettings(), clock_ms=lambda: NOW)
    check = _check({CHAIN: HEAD})
    body = _batch(observation(block=HEAD), observation(block=HEAD + 500))
    opened = guard.open(TOPIC, seal(KEYS[1].sign_digest, TOPIC, body, NOW, 1), origin=KEYS[1].address, admit=check.admit)
    verified = check(opened)
    assert [v.observation.block_number for v in verified] == [HEAD]
    assert len(recoveries) == 1


def test_drops_reach_prometheus_by_reason(tmp_path: Path) -> None:
    import asyncio

    from prometheus_client import CollectorRegistry, generate_latest

    from crossclear.attest import AttestationCollector, AttestationNode, NodeConfig

    async def scenario() -> str:
        node = AttestationNode(NodeConfig(key=KEYS[0], node_set=node_set(4), store_path=tmp_path / "node.sqlite", p2p_port=0))
        node.network.guard.count_drop("recovery_budget")
        node._attestation_check.dropped["too_new"] = 3
        registry = CollectorRegistry(auto_describe=False)
        registry.register(AttestationCollector(node))
        text = generate_latest(registry).decode()
        node.store.close()
        return text

    text = asyncio.run(scenario())
    assert 'crossclear_gossip_dropped_total{reason="recovery_budget"} 1.0' in text
    assert 'crossclear_observations_dropped_total{reason="too_new"} 3.0' in text
    assert "crossclear_attestation_database_bytes" in text
