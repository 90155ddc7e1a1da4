"""Metrics are Prometheus text on a loopback port, with live readings taken at scrape time."""

from __future__ import annotations

import urllib.request

from crossclear.node.metrics import LiveReadings, NodeMetrics


def test_metrics_endpoint_serves_prometheus_text() -> None:
    heads = {"devnet-a": (120, 118)}
    metrics = NodeMetrics(LiveReadings(lambda: 3, lambda: 42, lambda: 1, lambda: 7, lambda: heads, lambda: 0, lambda: 1))
    metrics.claims.labels(result="accepted").inc()
    metrics.claims.labels(result="nullifier_used").inc(2)
    metrics.margin_recompute_seconds.observe(0.004)
    port = metrics.serve(0)
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        heads["devnet-a"] = (121, 119)
        again = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    finally:
        metrics.close()
    assert 'crossclear_claims_total{result="accepted"} 1.0' in text
    assert 'crossclear_claims_total{result="nullifier_used"} 2.0' in text
    assert "crossclear_certificates 42.0" in text and "crossclear_gossip_peers 3.0" in text
    assert 'crossclear_chain_head{chain="devnet-a",kind="finalized"} 118.0' in text
    assert "crossclear_margin_recompute_seconds_count 1.0" in text
    assert "crossclear_signing_halted 1.0" in text and "crossclear_stale_feeds 0.0" in text
    assert 'crossclear_chain_head{chain="devnet-a",kind="head"} 121.0' in again
