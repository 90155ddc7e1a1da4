"""libp2p gossip for the node set: Noise-only TCP hosts, gossipsub, envelope checks, the trio bridge."""

from crossclear.p2p._bridge import AsyncioSink, TrioThread
from crossclear.p2p._envelope import Admit, Admitted, Dropped, EnvelopeGuard, OpenedEnvelope, envelope_digest, now_ms, seal
from crossclear.p2p._host import HostConfig, PeerAddress, TopicCheck, TopicRules, peer_id_for
from crossclear.p2p._network import GossipNetwork, topic_name
from crossclear.p2p._settings import GossipSettings

__all__ = [
    "Admit",
    "Admitted",
    "AsyncioSink",
    "Dropped",
    "EnvelopeGuard",
    "GossipNetwork",
    "GossipSettings",
    "HostConfig",
    "OpenedEnvelope",
    "PeerAddress",
    "TopicCheck",
    "TopicRules",
    "TrioThread",
    "envelope_digest",
    "now_ms",
    "peer_id_for",
    "seal",
    "topic_name",
]
