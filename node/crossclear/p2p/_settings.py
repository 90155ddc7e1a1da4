"""Every gossip knob py-libp2p 0.8.1 exposes, set on purpose (see docs/attestation-network.md)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class GossipSettings:
    """Gossipsub and envelope limits. Defaults suit a node set of 4..20 nodes on one LAN."""

    direct_peering: bool = True
    """Make every bootstrap peer (the rest of the node set) a gossipsub direct peer: each
    message goes straight to all of them instead of only to the mesh, so delivery never waits
    for a heartbeat's IHAVE/IWANT round when the mesh is incomplete (measured: median latency
    jumped from ~60 ms to ~500 ms in runs where it was)."""
    mesh_degree: int = 6
    """D: mesh peers per topic (go-libp2p's default; a 4-node set is a full mesh anyway)."""
    mesh_degree_low: int = 4
    """D_lo: below this the heartbeat grafts more peers."""
    mesh_degree_high: int = 12
    """D_hi: above this the heartbeat prunes."""
    heartbeat_seconds: int = 1
    """Mesh repair and IHAVE gossip period; py-libp2p's 120 s would leave a broken mesh for minutes."""
    gossip_window: int = 3
    """Heartbeats of message ids advertised in IHAVE."""
    gossip_history: int = 5
    """Heartbeats of messages kept for IWANT and for replay to peers that (re)join."""
    fanout_ttl_seconds: int = 60
    """How long fanout state for unsubscribed topics lives."""
    router_messages_per_second: float = 1000.0
    """py-libp2p's per-peer, per-topic forwarding cap (default 10/s, which silently stops relaying
    our own batches at saturation). Our own per-signer limit below is the real spam control."""
    max_pending_messages_per_peer: int = 1000
    """Messages queued for a peer whose subscription is not known yet (default 100 = 2 s of batches)."""
    pending_messages_ttl_seconds: float = 30.0
    """Queued messages older than this are dropped instead of flushed."""
    max_rpc_bytes: int = 1 << 20
    """Inbound pubsub frame limit; a larger frame resets the stream (the 10 MB garbage test)."""
    max_message_bytes: int = 256 * 1024
    """Envelope limit checked by our validator; a full batch of 512 observations is ~120 KiB."""
    max_age_ms: int = 60_000
    """Envelopes older than this are stale (replays of old traffic); catch-up goes over Sync."""
    max_future_ms: int = 5_000
    """Clock skew tolerated for envelopes stamped in the future."""
    signer_messages_per_second: float = 100.0
    """Envelopes accepted per signer per topic per second (token bucket refill). A node sends
    at most one attestation batch per `batch_delay_ms` (10 ms), heartbeats once a second."""
    signer_burst: int = 400
    """Token bucket size: a burst beyond this from one signer is dropped."""
    signer_bytes_per_second: float = 1024 * 1024
    """Envelope bytes accepted per signer per topic per second, checked on the raw length before
    anything is decoded. An honest node at 100 observations/s sends ~25 KB/s."""
    signer_bytes_burst: int = 4 * 1024 * 1024
    """Byte bucket size: room for a 10,000-observation burst (~2.4 MB) from one honest node."""
    signer_recoveries_per_second: float = 1000.0
    """Signature recoveries (envelope plus every observation in it) granted per signer per
    second; a batch that does not fit is dropped before any of its signatures is recovered.
    At ~65-95 us per recovery a member at this budget costs a peer under 0.1 CPU-second per
    second; an honest member sustains far less (one signature per observation it makes)."""
    signer_recovery_burst: int = 12_000
    """Recovery bucket size: a 10,000-observation burst from one honest node fits."""
    delivery_queue_limit: int = 10_000
    """Validated messages waiting for the asyncio side; beyond this new ones are dropped."""
    signer_queue_share: int = 1_000
    """Validated messages of one signer waiting for the asyncio side; beyond this that signer's
    new messages are dropped, so one member cannot fill the queue the others share."""
    relay_messages_per_second: float = 10.0
    """Messages of one publisher this node forwards to others per second. Every member sends
    to every other directly, so relays only matter while some link is down; an honest node
    publishes a few batches a second, and a flood beyond this is delivered here but not
    multiplied through the mesh (each relay costs every receiver a decryption and a parse)."""
    relay_burst: int = 100
    """Relay bucket size: a saturation burst of an honest node (~20 batches) is relayed whole."""
    reconnect_seconds: float = 1.0
    """How often missing bootstrap peers are redialled."""
    silent_peer_seconds: float = 5.0
    """A connected peer that sent nothing (not even a heartbeat) for this long is disconnected
    and redialled: a link that went down without a TCP reset otherwise looks connected for
    minutes while everything sent to it waits in a retransmission queue."""
