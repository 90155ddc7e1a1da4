"""The asyncio face of the gossip network: start, publish, receive, stop."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable, Mapping, Sequence

from crossclear.p2p._bridge import AsyncioSink, TrioThread
from crossclear.p2p._envelope import EnvelopeGuard, OpenedEnvelope, RecoverSigner, SignDigest, now_ms, seal
from crossclear.p2p._host import GossipHost, HostConfig, TopicCheck, TopicRules, peer_id_for

#: Called on the asyncio loop with (topic, envelope, payload the topic check returned).
OnMessage = Callable[[str, OpenedEnvelope, object], None]


def topic_name(network: str, kind: str) -> str:
    """Topics are per network, so two devnets on one machine never mix."""
    return f"/crossclear/{network}/{kind}/1"


class GossipNetwork:
    """One node's libp2p gossip, driven from asyncio through the bridge."""

    def __init__(
        self,
        config: HostConfig,
        members: frozenset[bytes],
        sign: SignDigest,
        recover: RecoverSigner,
        topics: Mapping[str, TopicCheck | TopicRules],
        on_message: OnMessage,
    ) -> None:
        self._config = config
        self._sign = sign
        self._on_message = on_message
        self.guard = EnvelopeGuard(members, recover, config.settings)
        self._host: GossipHost | None = None
        self._thread = TrioThread(f"libp2p:{config.listen_port}")
        self._topics = dict(topics)
        self._nonce = secrets.randbits(48)
        self.published_bytes = 0

    async def start(self) -> None:
        sink = AsyncioSink(asyncio.get_running_loop())

        def deliver(topic: str, envelope: OpenedEnvelope, payload: object) -> None:
            sink.deliver(self._dispatch, topic, envelope, payload)

        self._host = GossipHost(self._config, self.guard, self._topics, deliver)
        await self._thread.start(self._host.serve)

    async def stop(self) -> None:
        await self._thread.stop()

    @property
    def peer_id(self) -> str:
        return peer_id_for(self._config.key_secret) if self._host is None else self._host.peer_id

    def connected_peers(self) -> int:
        return 0 if self._host is None else self._host.connected_peers()

    def _dispatch(self, topic: str, envelope: OpenedEnvelope, payload: object) -> None:
        try:
            self._on_message(topic, envelope, payload)
        finally:
            self.guard.leave_queue(envelope.signer)

    def dropped(self) -> dict[str, int]:
        return self.guard.dropped_snapshot()

    def drop_costs_us(self) -> dict[str, float]:
        """Mean validation time per dropped message, per reason (microseconds)."""
        return self.guard.drop_cost_snapshot()

    async def publish(self, topic: str, body: bytes) -> None:
        if self._host is None:
            raise RuntimeError("the gossip network is not started")
        self._nonce += 1
        data = seal(self._sign, topic, body, now_ms(), self._nonce)
        self.published_bytes += len(data)
        await self._thread.call(self._host.publish, topic, data)

    async def publish_raw(self, topic: str, messages: Sequence[bytes]) -> None:
        """Publish bytes as they are, unsealed, back to back on the trio side: for tests and
        tools that play a misbehaving peer (garbage, replays, floods)."""
        host = self._host
        if host is None:
            raise RuntimeError("the gossip network is not started")

        async def publish_all() -> None:
            for data in messages:
                await host.publish(topic, data)

        await self._thread.call(publish_all)
