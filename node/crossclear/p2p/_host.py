"""The libp2p host (trio side): TCP on 127.0.0.1 (or a test namespace's address), Noise only,
yamux, gossipsub v1.2/v1.1.

Runs inside the bridge's trio thread. Inbound messages are checked by a synchronous topic
validator (envelope guard with the publisher's budgets, the topic's admission, signatures, then
the topic's own check); only what passes is relayed and handed to `deliver`, which must not
block (the bridge forwards it to asyncio).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import coincurve
import multiaddr
import trio
from eth_hash.auto import keccak
from libp2p import create_yamux_muxer_option, new_host
from libp2p.crypto.secp256k1 import create_new_key_pair
from libp2p.crypto.x25519 import create_new_key_pair as create_noise_key_pair
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo
from libp2p.pubsub.gossipsub import PROTOCOL_ID_V11, PROTOCOL_ID_V12, GossipSub
from libp2p.pubsub.pubsub import Pubsub
from libp2p.security.noise.transport import PROTOCOL_ID as NOISE_PROTOCOL_ID
from libp2p.security.noise.transport import Transport as NoiseTransport
from libp2p.tools.anyio_service import background_trio_service

from crossclear._net import LOOPBACK
from crossclear.p2p._envelope import Admit, Dropped, EnvelopeGuard, OpenedEnvelope
from crossclear.p2p._settings import GossipSettings

_log = logging.getLogger(__name__)

#: Decodes and checks an opened envelope's body for one topic; raises Dropped to refuse it.
TopicCheck = Callable[[OpenedEnvelope], object]


@dataclass(frozen=True, slots=True)
class TopicRules:
    """A topic's two stages: `admit` runs on the raw body before any signature is recovered
    (decode, cheap rules, how many recoveries checking it costs); `check` runs on the opened
    envelope, whose `admitted` field holds what `admit` returned."""

    check: TopicCheck
    admit: Admit | None = None

#: Receives (topic, envelope, checked payload) on the trio thread; must return at once.
Deliver = Callable[[str, OpenedEnvelope, object], None]


@dataclass(frozen=True, slots=True)
class PeerAddress:
    """Where to dial a bootstrap peer."""

    peer_id: str
    """Base58 libp2p peer id (derived from the peer's node key, see `peer_id_for`)."""
    port: int
    """TCP port on the peer's host."""
    host: str = LOOPBACK
    """IPv4 address of the peer."""

    @property
    def multiaddr(self) -> str:
        return f"/ip4/{self.host}/tcp/{self.port}/p2p/{self.peer_id}"


@dataclass(frozen=True, slots=True)
class HostConfig:
    """One node's libp2p host."""

    key_secret: bytes
    """32-byte secp256k1 node key; the libp2p identity and the attestation key are the same key."""
    listen_port: int
    """TCP port to listen on."""
    bootstrap: tuple[PeerAddress, ...]
    """Peers to dial at start and to redial whenever they are not connected."""
    settings: GossipSettings = GossipSettings()
    """Gossipsub and envelope limits."""
    listen_host: str = LOOPBACK
    """IPv4 address to listen on."""


def peer_id_for(key_secret: bytes) -> str:
    """The libp2p peer id a node with this key has."""
    return str(ID.from_pubkey(create_new_key_pair(key_secret).public_key).to_base58())


def _address_of_peer(peer_id: bytes) -> bytes:
    """The signer address behind a secp256k1 peer id (the key is inlined in the id); b"" otherwise."""
    try:
        public_key = ID(peer_id).extract_public_key()
        if public_key is None:
            return b""
        uncompressed = coincurve.PublicKey(public_key.to_bytes()).format(compressed=False)
    except Exception:  # any other key type, or bytes that are not a key
        return b""
    return bytes(keccak(uncompressed[1:])[-20:])


class _DeliveringPubsub(Pubsub):
    # py-libp2p hands validated messages to a 32-slot channel per subscription and drops
    # them when it is full. We take them here instead, synchronously, and pass them to the
    # bridge, whose own queue limit is explicit (GossipSettings.delivery_queue_limit).
    on_validated: Callable[[Any], None]
    on_heard: Callable[[ID], None]

    def notify_subscriptions(self, publish_message: Any) -> None:
        self.on_validated(publish_message)

    async def push_msg(self, msg_forwarder: ID, msg: Any) -> None:
        # Every message a peer sends on its own stream proves the link to it works, even a
        # copy libp2p drops as already seen; silence is what `_keep_connected` acts on.
        self.on_heard(msg_forwarder)
        await super().push_msg(msg_forwarder, msg)

    async def stream_handler(self, stream: Any) -> None:
        # py-libp2p 0.8.1 catches stream and varint errors here but not a protobuf DecodeError:
        # one unparseable RPC frame from any peer would end the whole pubsub service. A bad
        # frame costs only that peer's stream.
        try:
            await super().stream_handler(stream)
        except Exception as error:
            peer_id = stream.muxed_conn.peer_id
            _log.warning("dropping pubsub stream of %s after an unreadable frame: %s", peer_id, error)
            with contextlib.suppress(Exception):
                await stream.reset()
            self._handle_dead_peer(peer_id)


class _RelayBudgetGossipSub(GossipSub):
    # Forwarding a validated message to the mesh is the router's `publish`; this node's own
    # messages always go out, other publishers' only within their relay budget.
    relay_allowed: Callable[[bytes], bool]

    async def publish(self, msg_forwarder: ID, pubsub_msg: Any) -> None:
        if self.pubsub is not None and msg_forwarder != self.pubsub.my_id and not self.relay_allowed(bytes(pubsub_msg.from_id)):
            return
        await super().publish(msg_forwarder, pubsub_msg)


class GossipHost:
    """Build, run and publish through one node's libp2p host."""

    def __init__(
        self,
        config: HostConfig,
        guard: EnvelopeGuard,
        topics: Mapping[str, TopicCheck | TopicRules],
        deliver: Deliver,
    ) -> None:
        self._config = config
        self._guard = guard
        self._topics = {
            topic: rules if isinstance(rules, TopicRules) else TopicRules(rules) for topic, rules in topics.items()
        }
        self._deliver = deliver
        self._key_pair = create_new_key_pair(config.key_secret)
        self._peer_id = ID.from_pubkey(self._key_pair.public_key)
        self._checked: OrderedDict[tuple[bytes, bytes], tuple[OpenedEnvelope, object]] = OrderedDict()
        self._pubsub: Pubsub | None = None
        self._host: Any = None
        self._origins: dict[bytes, bytes] = {}
        self._relay_tokens: dict[bytes, tuple[float, float]] = {}
        self._last_heard: dict[ID, float] = {}

    @property
    def peer_id(self) -> str:
        return str(self._peer_id.to_base58())

    def connected_peers(self) -> int:
        """Connected peer count; read from the asyncio thread, so retry if libp2p mutates mid-read."""
        for _ in range(10):
            try:
                return 0 if self._host is None else len(self._host.get_connected_peers())
            except RuntimeError:  # "dictionary changed size during iteration"
                continue
        return 0

    async def serve(self, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        settings = self._config.settings
        host = new_host(
            key_pair=self._key_pair,
            # Noise only: py-libp2p also offers TLS, secio and plaintext unless told otherwise.
            sec_opt={
                NOISE_PROTOCOL_ID: NoiseTransport(self._key_pair, noise_privkey=create_noise_key_pair().private_key)
            },
            muxer_opt=create_yamux_muxer_option(),
            enable_mDNS=False,
            enable_upnp=False,
        )
        direct_peers = (
            [
                PeerInfo(ID.from_base58(peer.peer_id), [multiaddr.Multiaddr(peer.multiaddr)])
                for peer in self._config.bootstrap
            ]
            if settings.direct_peering
            else None
        )
        router = _RelayBudgetGossipSub(
            protocols=[PROTOCOL_ID_V12, PROTOCOL_ID_V11],
            direct_peers=direct_peers,
            # Our own loop dials (one side per pair, see _keep_connected); the router's
            # direct-connect only repairs, later, so the two never race at start-up.
            direct_connect_initial_delay=5.0,
            direct_connect_interval=5,
            degree=settings.mesh_degree,
            degree_low=settings.mesh_degree_low,
            degree_high=settings.mesh_degree_high,
            time_to_live=settings.fanout_ttl_seconds,
            gossip_window=settings.gossip_window,
            gossip_history=settings.gossip_history,
            heartbeat_initial_delay=0.1,
            heartbeat_interval=settings.heartbeat_seconds,
            # Mesh degree must not drift with load: the node set is small and fixed.
            adaptive_gossip_enabled=False,
            spam_protection_enabled=True,
            max_messages_per_topic_per_second=settings.router_messages_per_second,
            # IP diversity cannot exist on a loopback devnet, and membership (not IPs) is what
            # guards a closed node set.
            eclipse_protection_enabled=False,
            max_pending_messages_per_peer=settings.max_pending_messages_per_peer,
            pending_messages_ttl=settings.pending_messages_ttl_seconds,
        )
        pubsub = _DeliveringPubsub(
            host,
            router,
            strict_signing=True,
            max_inbound_rpc_size=settings.max_rpc_bytes,
            allowed_topics=frozenset(self._topics),
            # libp2p's validation cache would replay a verdict for a repeated message id; our
            # guard already refuses replays, and a cached "valid" must not bypass it.
            validation_cache_size=1,
        )
        pubsub.on_validated = self._on_validated
        pubsub.on_heard = self._on_heard
        router.relay_allowed = self._relay_allowed
        self._pubsub = pubsub
        self._host = host
        listen = multiaddr.Multiaddr(f"/ip4/{self._config.listen_host}/tcp/{self._config.listen_port}")
        async with host.run([listen]):
            async with background_trio_service(pubsub), background_trio_service(router):
                await pubsub.wait_until_ready()
                for topic in self._topics:
                    pubsub.set_topic_validator(topic, self._validator(topic), False)
                    await pubsub.subscribe(topic)
                task_status.started()
                await self._keep_connected(host)

    def _origin(self, from_id: bytes) -> bytes:
        origin = self._origins.get(from_id)
        if origin is None:
            origin = _address_of_peer(from_id)
            if origin in self._guard.members:
                self._origins[from_id] = origin  # members only: a flood of made-up ids is not kept
        return origin

    def _validator(self, topic: str) -> Callable[[ID, Any], bool]:
        rules = self._topics[topic]

        def validate(forwarder: ID, message: Any) -> bool:
            started = time.perf_counter_ns()
            try:
                return checked(forwarder, message, started)
            except Exception:  # a validator that raises would take libp2p's task down with it
                _log.exception("gossip validator failed on a message from %s", forwarder)
                self._guard.count_drop("validator_error", started)
                return False

        def checked(forwarder: ID, message: Any, started: int) -> bool:
            from_id = bytes(message.from_id)
            if from_id == self._peer_id.to_bytes():
                return True  # our own publish: the node already holds what it signed
            if list(message.topicIDs) != [topic]:
                self._guard.count_drop("wrong_topic", started)
                return False
            try:
                # libp2p has checked the publisher's signature over the message (strict
                # signing), so the member behind from_id is known before anything is decoded:
                # its budgets are charged first, and nothing of ours is recovered for it when
                # it is over them.
                opened = self._guard.open(
                    topic, bytes(message.data), origin=self._origin(from_id), admit=rules.admit, started_ns=started
                )
            except Dropped as error:  # the guard counts its own drops
                _log.debug("dropped gossip from %s on %s: %s", forwarder, topic, error)
                return False
            try:
                payload = rules.check(opened)
            except Dropped as error:
                self._guard.count_drop(error.reason, started)
                _log.debug("dropped gossip from %s on %s: %s", forwarder, topic, error)
                return False
            self._checked[(bytes(message.from_id), bytes(message.seqno))] = (opened, payload)
            while len(self._checked) > self._config.settings.delivery_queue_limit:
                self._checked.popitem(last=False)
                self._guard.count_drop("delivery_overflow")
            return True

        return validate

    def _on_validated(self, message: Any) -> None:
        checked = self._checked.pop((bytes(message.from_id), bytes(message.seqno)), None)
        if checked is not None:
            self._guard.enter_queue(checked[0].signer)
            self._deliver(message.topicIDs[0], checked[0], checked[1])

    def _on_heard(self, peer_id: ID) -> None:
        self._last_heard[peer_id] = time.monotonic()

    def _relay_allowed(self, from_id: bytes) -> bool:
        settings = self._config.settings
        now = time.monotonic()
        tokens, updated = self._relay_tokens.get(from_id, (float(settings.relay_burst), now))
        tokens = min(float(settings.relay_burst), tokens + (now - updated) * settings.relay_messages_per_second)
        allowed = tokens >= 1
        self._relay_tokens[from_id] = (tokens - 1 if allowed else tokens, now)
        if not allowed:
            self._guard.count_not_relayed()
        return allowed

    async def publish(self, topic: str, data: bytes) -> None:
        if self._pubsub is None:
            raise RuntimeError("the gossip host is not running")
        await self._pubsub.publish(topic, data)

    async def _keep_connected(self, host: Any) -> None:
        """Dial missing bootstrap peers, and reset links that are up but carry no gossip.

        One side of each pair dials (the one with the larger peer id), so two nodes starting
        together do not race two connections and tear one down under pubsub; the other side
        dials too once a peer has been missing for a few rounds (asymmetric configs). A peer
        that stays connected without a pubsub stream or subscription for a few rounds is
        disconnected, and the next round dials it afresh: py-libp2p can lose a pubsub stream
        when a duplicate connection closes, and gossip with that peer would silently stop.
        """
        peers = [(ID.from_base58(peer.peer_id), peer.multiaddr) for peer in self._config.bootstrap]
        missing_rounds: dict[ID, int] = {}
        silent_rounds: dict[ID, int] = {}
        topic = next(iter(self._topics), None)
        silent_after = self._config.settings.silent_peer_seconds
        while True:
            connected = set(host.get_connected_peers())
            pubsub = self._pubsub
            now = time.monotonic()
            for peer_id, address in peers:
                if peer_id == self._peer_id:
                    continue
                if peer_id in connected:
                    missing_rounds.pop(peer_id, None)
                    subscribed = pubsub is not None and peer_id in pubsub.peers and (
                        topic is None or peer_id in pubsub.peer_topics.get(topic, ())
                    )
                    silent_rounds[peer_id] = 0 if subscribed else silent_rounds.get(peer_id, 0) + 1
                    heard = self._last_heard.setdefault(peer_id, now)
                    mute = silent_after > 0 and now - heard > silent_after
                    if silent_rounds[peer_id] >= _SILENT_ROUNDS_BEFORE_RESET or mute:
                        silent_rounds[peer_id] = 0
                        self._last_heard.pop(peer_id, None)
                        why = f"nothing heard for {now - heard:.1f} s" if mute else "connected but no gossip stream"
                        _log.info("resetting the connection to %s: %s", peer_id, why)
                        with trio.move_on_after(2.0):
                            with contextlib.suppress(Exception):
                                await host.disconnect(peer_id)
                    continue
                self._last_heard.pop(peer_id, None)
                missing_rounds[peer_id] = missing_rounds.get(peer_id, 0) + 1
                we_dial = self._peer_id.to_bytes() > peer_id.to_bytes()
                if not we_dial and missing_rounds[peer_id] < _MISSING_ROUNDS_BEFORE_DIALING_ANYWAY:
                    continue
                with trio.move_on_after(2.0):
                    try:
                        await host.connect(PeerInfo(peer_id, [multiaddr.Multiaddr(address)]))
                    except Exception as error:  # a peer that is down is normal; retry next round
                        _log.debug("dial %s failed: %s", address, error)
            await trio.sleep(self._config.settings.reconnect_seconds)


_SILENT_ROUNDS_BEFORE_RESET = 3
_MISSING_ROUNDS_BEFORE_DIALING_ANYWAY = 3
