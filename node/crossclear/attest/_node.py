"""One node's attestation service: sign what the adapters saw, gossip it in batches, count
what peers signed into certificates, keep evidence, serve and use Sync, prune.

Everything here runs on one asyncio loop, which owns the store; libp2p runs behind the bridge
and hands over messages already admitted, budgeted and verified by its validators.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from crossclear._net import LOOPBACK
from crossclear._tasks import cancel_and_wait
from crossclear.attest._admission import Admission, OwnHead
from crossclear.attest._aggregator import Certificate, IngestReport, ingest
from crossclear.attest._claim_gate import ClaimBudget, ClaimGate
from crossclear.attest._eip712 import SigningDomain
from crossclear.attest._keys import NodeKey, recover_signer
from crossclear.attest._node_set import NodeSet
from crossclear.attest._observation import Observation
from crossclear.attest._signing import sign_observation
from crossclear.attest._sync import CatchUp, CatchUpReport, SyncLimits, SyncServicer
from crossclear.attest._topics import MAX_BATCH_ITEMS, AttestationCheck, check_claim, check_heartbeat
from crossclear.attest._verify import VerifiedSignature
from crossclear.p2p import (
    GossipNetwork,
    GossipSettings,
    HostConfig,
    OpenedEnvelope,
    PeerAddress,
    TopicRules,
    now_ms,
    topic_name,
)
from crossclear.store import AttestationStore
from crossclear.v1 import attestation_pb2, sync_pb2_grpc

_log = logging.getLogger(__name__)

#: gRPC keepalive: a Sync connection across a link that went down without a reset is noticed
#: in seconds (not after TCP's retransmission timeout), and redialled soon after it heals.
_SYNC_CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", 64 << 20),
    ("grpc.keepalive_time_ms", 2000),
    ("grpc.keepalive_timeout_ms", 2000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.initial_reconnect_backoff_ms", 500),
    ("grpc.min_reconnect_backoff_ms", 500),
    ("grpc.max_reconnect_backoff_ms", 2000),
]
_SYNC_SERVER_OPTIONS = [
    ("grpc.max_receive_message_length", 1 << 20),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_recv_ping_interval_without_data_ms", 1000),
    ("grpc.http2.max_ping_strikes", 0),
]


def check_listen_host(host: str) -> str:
    """127.0.0.1, or a private IPv4 address (a test's network namespace); nothing public."""
    try:
        address = ipaddress.IPv4Address(host)
    except ValueError:
        raise ValueError(f"listen host {host!r} is not an IPv4 address") from None
    if not (address.is_loopback or address.is_private) or address.is_unspecified:
        raise ValueError(f"listen host {host} is neither loopback nor a private (namespace) address")
    return host


@dataclass(frozen=True)
class NodeConfig:
    """Everything one attestation node needs; the node process builds it from its config file."""

    key: NodeKey
    """This node's secp256k1 key (signing, and its libp2p identity)."""
    node_set: NodeSet
    """Addresses whose signatures count."""
    store_path: Path
    """SQLite file of this node (shared with other concerns' tables)."""
    p2p_port: int
    """libp2p TCP port on `listen_host`."""
    bootstrap: tuple[PeerAddress, ...] = ()
    """libp2p peers to dial and keep dialling."""
    sync_port: int = 0
    """Port of this node's Sync gRPC server on `listen_host`; 0 serves nothing."""
    sync_peers: tuple[str, ...] = ()
    """host:port of peers' Sync servers, for catch-up."""
    chain_ids: frozenset[int] = frozenset()
    """Chains to catch up on even before any peer reports certificates for them."""
    network: str = "devnet"
    """Network name; part of every topic."""
    domain: SigningDomain = SigningDomain()
    """EIP-712 domain."""
    gossip: GossipSettings = GossipSettings()
    """libp2p gossip limits."""
    batch_delay_ms: int = 10
    """How long a first signature waits for company before its batch is sent."""
    heartbeat_seconds: float = 1.0
    """Heartbeat period."""
    catch_up_seconds: float = 5.0
    """Period of background catch-up rounds over Sync (0 disables the background rounds)."""
    listen_host: str = LOOPBACK
    """Address libp2p and Sync listen on: 127.0.0.1, or for the network-namespace tests the
    namespace's private address (node.toml cannot set it; see docs/attestation-network.md)."""
    admission: Admission = Admission()
    """Which (chain, emitter) pairs and which blocks around this node's head are let in."""
    own_head: OwnHead | None = None
    """This node's view of a chain's head; None uses the highest block it signed itself."""
    storage_share: int = 20_000
    """Uncertified signatures one other member may have stored here (~1 KB each)."""
    evidence_kept_per_signer: int = 1000
    """Pieces of equivocation evidence kept whole per member; later ones record the slot only."""
    prune_depth_blocks: int | None = None
    """Blocks below this node's head beyond which uncertified signatures of others, and
    signatures of certified observations, are deleted (None: `admission.behind_blocks`)."""
    prune_certified_depth_blocks: int = 64
    """Blocks below this node's head beyond which signatures of certified observations are
    deleted (the certificate holds them; the row only matters for equivocation in the slot)."""
    prune_seconds: float = 5.0
    """Pruning period (0 never prunes)."""
    sync: SyncLimits = SyncLimits()
    """Caps on what one catch-up round spends on one peer."""
    claims: ClaimBudget = ClaimBudget()
    """Per-member limits on verifying gossiped claims."""


@dataclass(frozen=True, slots=True)
class NodeStatus:
    """A snapshot for status calls and metrics."""

    address: bytes
    """This node's signer address."""
    peer_id: str
    """This node's libp2p peer id."""
    connected_peers: int
    """libp2p connections open now."""
    certificate_count: int
    """Certificates held."""
    equivocation_count: int
    """Pieces of equivocation evidence held."""
    equivocations_by_signer: dict[bytes, int]
    """Evidence count per offending signer."""
    heads: dict[int, int]
    """Per chain, the highest block this node's adapters reported."""
    peer_heads: dict[bytes, dict[int, int]]
    """Per peer signer, the heads its last heartbeat reported."""
    gossip_dropped: dict[str, int]
    """Inbound gossip messages dropped, by reason."""
    gossip_drop_cost_us: dict[str, float] = field(default_factory=dict)
    """Mean validation time spent on a dropped message, by reason (microseconds)."""
    observations_dropped: dict[str, int] = field(default_factory=dict)
    """Observations of peers refused (admission, storage share), by reason."""
    claims_dropped: dict[str, int] = field(default_factory=dict)
    """Gossiped claims not verified (per-member budget, failed before), by reason."""
    sync_peer_scores: dict[str, float] = field(default_factory=dict)
    """Sync peers' scores (lies cost points)."""
    pruned_rows: int = 0
    """Rows deleted by pruning since start."""
    database_bytes: int = 0
    """Size of the SQLite file and its WAL."""


@dataclass
class _Counters:
    published_batches: int = 0
    received_batches: int = 0
    certificates_formed: int = 0
    equivocations: int = 0
    over_share: int = 0
    pruned_rows: int = 0
    heads: dict[int, int] = field(default_factory=dict)
    peer_heads: dict[bytes, dict[int, int]] = field(default_factory=dict)


class AttestationNode:
    """Start it, feed it observations with `attest`, read certificates from its store."""

    def __init__(self, config: NodeConfig) -> None:
        if config.key.address not in config.node_set:
            raise ValueError(f"node key 0x{config.key.address.hex()} is not in the node set")
        check_listen_host(config.listen_host)
        self.config = config
        self.store = AttestationStore(config.store_path)
        self._counters = _Counters()
        self._head: OwnHead = config.own_head or self._counters.heads.get
        self._attestation_check = AttestationCheck(
            config.domain, config.node_set, config.admission, self._head
        )
        self.claim_gate = ClaimGate(config.claims)
        self._topics = {
            "attestations": topic_name(config.network, "attestations"),
            "heartbeats": topic_name(config.network, "heartbeats"),
            "claims": topic_name(config.network, "claims"),
        }
        self.network = GossipNetwork(
            HostConfig(config.key.secret, config.p2p_port, config.bootstrap, config.gossip, config.listen_host),
            config.node_set.members,
            config.key.sign_digest,
            recover_signer,
            {
                self._topics["attestations"]: TopicRules(self._attestation_check, self._attestation_check.admit),
                self._topics["heartbeats"]: check_heartbeat,
                self._topics["claims"]: check_claim,
            },
            self._on_gossip,
        )
        self._catch_up = CatchUp(
            self.store,
            config.domain,
            config.node_set,
            config.chain_ids | (config.admission.chains or frozenset()),
            now_ms,
            self._absorb,
            own=config.key.address,
            admission=config.admission,
            head=self._head,
            storage_share=config.storage_share,
            evidence_cap=config.evidence_kept_per_signer,
            limits=config.sync,
        )
        # Pruning waits for a catch-up round to finish: a round may fetch one peer's old
        # signature and another's for the same observation, and must be able to count both.
        self._store_lock = asyncio.Lock()
        self._outbox: list[VerifiedSignature] = []
        self._outbox_ready = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._server: grpc.aio.Server | None = None
        self._channels: list[grpc.aio.Channel] = []
        self.certificate_listeners: list[Callable[[Certificate], None]] = []
        self.claim_listeners: list[Callable[[bytes, bytes], None]] = []

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        if self.config.sync_port:
            self._server = grpc.aio.server(options=_SYNC_SERVER_OPTIONS)
            sync_pb2_grpc.add_SyncServicer_to_server(
                SyncServicer(self.store, self.config.key.address, self._status_extras), self._server
            )
            self._server.add_insecure_port(f"{self.config.listen_host}:{self.config.sync_port}")
            await self._server.start()
        self._channels = [grpc.aio.insecure_channel(peer, options=_SYNC_CHANNEL_OPTIONS) for peer in self.config.sync_peers]
        await self.network.start()
        self._tasks = [asyncio.create_task(self._flush_outbox()), asyncio.create_task(self._heartbeats())]
        if self.config.catch_up_seconds > 0 and self._channels:
            self._tasks.append(asyncio.create_task(self._catch_up_periodically()))
        if self.config.prune_seconds > 0:
            self._tasks.append(asyncio.create_task(self._prune_periodically()))

    async def stop(self) -> None:
        await cancel_and_wait(self._tasks)
        self._tasks = []
        await self.network.stop()
        for channel in self._channels:
            await channel.close()
        if self._server is not None:
            await self._server.stop(grace=0.5)
        self.store.close()

    # --- own observations --------------------------------------------------------------------

    async def attest(self, observation: Observation) -> VerifiedSignature:
        """Sign an observation this node's adapter saw, count it, and queue it for gossip."""
        return (await self.attest_many([observation]))[0]

    async def attest_many(self, observations: Sequence[Observation]) -> list[VerifiedSignature]:
        """Sign several observations at once: one store transaction, one gossip batch."""
        signed = [sign_observation(self.config.key, self.config.domain, observation) for observation in observations]
        self._absorb(ingest(self.store, self.config.node_set, signed, now_ms(), own=self.config.key.address))
        heads = self._counters.heads
        for observation in observations:
            # One assignment per chain: the libp2p thread reads this dict for admission.
            heads[observation.chain_id] = max(heads.get(observation.chain_id, 0), observation.block_number)
        self._outbox.extend(signed)
        self._outbox_ready.set()
        return signed

    def topic(self, kind: str) -> str:
        """This network's topic of a kind: "attestations", "heartbeats" or "claims"."""
        return self._topics[kind]

    async def publish_claim(self, body: bytes) -> None:
        """Gossip a claim body (format owned by the claims concern)."""
        await self.network.publish(self._topics["claims"], body)

    async def _flush_outbox(self) -> None:
        while True:
            await self._outbox_ready.wait()
            await asyncio.sleep(self.config.batch_delay_ms / 1000)
            self._outbox_ready.clear()
            pending, self._outbox = self._outbox, []
            for start in range(0, len(pending), MAX_BATCH_ITEMS):
                batch = attestation_pb2.AttestationBatch(
                    items=[signed.to_proto() for signed in pending[start : start + MAX_BATCH_ITEMS]]
                )
                try:
                    await self.network.publish(self._topics["attestations"], batch.SerializeToString())
                    self._counters.published_batches += 1
                except Exception as error:  # peers may be absent; Sync repairs what gossip lost
                    _log.warning("publishing an attestation batch failed: %s", error)

    async def _heartbeats(self) -> None:
        while True:
            heartbeat = attestation_pb2.Heartbeat(
                heads=[
                    attestation_pb2.ChainHead(chain_id=chain, block_number=block)
                    for chain, block in sorted(self._counters.heads.items())
                ],
                certificate_count=self.store.certificate_count(),
            )
            try:
                await self.network.publish(self._topics["heartbeats"], heartbeat.SerializeToString())
            except Exception as error:
                _log.debug("heartbeat not sent: %s", error)
            await asyncio.sleep(self.config.heartbeat_seconds)

    # --- peers' messages ---------------------------------------------------------------------

    def _on_gossip(self, topic: str, envelope: OpenedEnvelope, payload: object) -> None:
        if topic == self._topics["attestations"]:
            assert isinstance(payload, tuple)
            self._counters.received_batches += 1
            self._absorb(
                ingest(
                    self.store,
                    self.config.node_set,
                    payload,
                    now_ms(),
                    storage_share=self.config.storage_share,
                    own=self.config.key.address,
                    evidence_cap=self.config.evidence_kept_per_signer,
                )
            )
        elif topic == self._topics["heartbeats"]:
            assert isinstance(payload, attestation_pb2.Heartbeat)
            self._counters.peer_heads[envelope.signer] = {head.chain_id: head.block_number for head in payload.heads}
        elif topic == self._topics["claims"]:
            assert isinstance(payload, bytes)
            for claim_listener in self.claim_listeners:
                claim_listener(envelope.signer, payload)

    def _absorb(self, report: IngestReport) -> None:
        self._counters.certificates_formed += len(report.certificates)
        self._counters.equivocations += report.equivocations
        self._counters.over_share += report.over_share
        for certificate in report.certificates:
            for listener in self.certificate_listeners:
                listener(certificate)

    # --- catch-up ----------------------------------------------------------------------------

    async def catch_up(self) -> CatchUpReport:
        """One round over every Sync peer at once; a peer that is down, slow or lies only costs its share."""
        peers = [(name, sync_pb2_grpc.SyncStub(channel)) for name, channel in zip(self.config.sync_peers, self._channels)]
        async with self._store_lock:
            return await self._catch_up.round(peers)

    async def _catch_up_periodically(self) -> None:
        while True:
            try:
                await self.catch_up()
            except Exception as error:
                _log.warning("catch-up round failed: %s", error)
            await asyncio.sleep(self.config.catch_up_seconds)

    # --- pruning -----------------------------------------------------------------------------

    async def prune(self) -> int:
        """Delete what is older than the prune depth below this node's head, per chain; returns rows deleted."""
        depth = self.config.prune_depth_blocks
        if depth is None:
            depth = self.config.admission.behind_blocks
        chains = set(self.config.chain_ids) | set(self.config.admission.chains or ()) | set(self._counters.heads)
        deleted = 0
        async with self._store_lock:
            for chain_id in sorted(chains):
                head = self._head(chain_id)
                if head is None:
                    continue
                certified_below = head - min(depth, self.config.prune_certified_depth_blocks)
                with self.store.transaction():
                    deleted += self.store.prune(chain_id, head - depth, self.config.key.address, certified_below)
        self._counters.pruned_rows += deleted
        return deleted

    async def _prune_periodically(self) -> None:
        while True:
            await asyncio.sleep(self.config.prune_seconds)
            try:
                await self.prune()
            except Exception as error:
                _log.warning("pruning failed: %s", error)

    # --- status ------------------------------------------------------------------------------

    def _status_extras(self) -> tuple[int, int]:
        return self.store.evidence_count(), self.network.connected_peers()

    def status(self) -> NodeStatus:
        return NodeStatus(
            address=self.config.key.address,
            peer_id=self.network.peer_id,
            connected_peers=self.network.connected_peers(),
            certificate_count=self.store.certificate_count(),
            equivocation_count=self.store.evidence_count(),
            equivocations_by_signer=self.store.evidence_by_signer(),
            heads=dict(self._counters.heads),
            peer_heads={signer: dict(heads) for signer, heads in self._counters.peer_heads.items()},
            gossip_dropped=self.network.dropped(),
            gossip_drop_cost_us=self.network.drop_costs_us(),
            observations_dropped=self.observations_dropped(),
            claims_dropped=dict(self.claim_gate.dropped),
            sync_peer_scores=self._catch_up.scores.snapshot(),
            pruned_rows=self._counters.pruned_rows,
            database_bytes=self.store.size_bytes(),
        )

    def observations_dropped(self) -> dict[str, int]:
        dropped = self._attestation_check.dropped_snapshot()
        for reason, count in self._catch_up.refused.items():
            dropped[f"sync_{reason}"] = count
        if self._counters.over_share:
            dropped["storage_share"] = self._counters.over_share
        return dropped
