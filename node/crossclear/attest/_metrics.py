"""Prometheus families for what the attestation layer refuses and prunes, read at scrape time.

Register on a node's registry: `registry.register(AttestationCollector(node))`.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from crossclear.attest._node import AttestationNode


class AttestationCollector:
    """Drops by reason (gossip messages, observations, gossiped claims), the mean validation
    time a dropped message cost, Sync peer scores, rows pruned and the database size."""

    def __init__(self, node: AttestationNode) -> None:
        self._node = node

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        status = self._node.status()
        dropped = CounterMetricFamily(
            "crossclear_gossip_dropped", "inbound gossip messages dropped before delivery", labels=["reason"]
        )
        for reason, count in sorted(status.gossip_dropped.items()):
            dropped.add_metric([reason], count)
        yield dropped
        cost = GaugeMetricFamily(
            "crossclear_gossip_drop_cost_microseconds",
            "mean validation time spent on a dropped gossip message",
            labels=["reason"],
        )
        for reason, microseconds in sorted(status.gossip_drop_cost_us.items()):
            cost.add_metric([reason], microseconds)
        yield cost
        observations = CounterMetricFamily(
            "crossclear_observations_dropped", "peers' observations refused (admission, storage share)", labels=["reason"]
        )
        for reason, count in sorted(status.observations_dropped.items()):
            observations.add_metric([reason], count)
        yield observations
        claims = CounterMetricFamily(
            "crossclear_gossiped_claims_dropped", "gossiped claims not verified", labels=["reason"]
        )
        for reason, count in sorted(status.claims_dropped.items()):
            claims.add_metric([reason], count)
        yield claims
        scores = GaugeMetricFamily("crossclear_sync_peer_score", "Sync peer score (lies cost points)", labels=["peer"])
        for peer, score in sorted(status.sync_peer_scores.items()):
            scores.add_metric([peer], score)
        yield scores
        yield CounterMetricFamily("crossclear_attestation_pruned_rows", "rows deleted by pruning", value=status.pruned_rows)
        yield GaugeMetricFamily(
            "crossclear_attestation_database_bytes", "the SQLite file and its WAL", value=status.database_bytes
        )
