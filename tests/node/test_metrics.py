"""Metrics are Prometheus text on a loopback port, served from the event loop, with live
readings taken at scrape time."""

from __future__ import annotations

import asyncio
import urllib.request

from crossclear.node.metrics import LiveReadings, NodeMetrics


def test_metrics_endpoint_serves_prometheus_text() -> None:
    heads = {"devnet-a": (120, 118)}
    metrics = NodeMetrics(LiveReadings(lambda: 3, lambda: 42, lambda: 1, lambda: 7, lambda: heads, lambda: 0, lambda: 1))
    metrics.claims.labels(result="accepted").inc()
    metrics.claims.labels(result="nullifier_used").inc(2)
    metrics.margin_recompute_seconds.observe(0.004)
    metrics.clearing_events.labels(event="seize_signed").inc()

    def scrape(port: int, path: str = "/metrics") -> str:
        try:
            return urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5).read().decode()
        except urllib.error.HTTPError as error:
            return f"{error.code}"

    async def main() -> tuple[str, str, str]:
        port = await metrics.serve(0)
        try:
            text = await asyncio.to_thread(scrape, port)
            heads["devnet-a"] = (121, 119)
            again = await asyncio.to_thread(scrape, port)
            missing = await asyncio.to_thread(scrape, port, "/other")
        finally:
            await metrics.close()
        return text, again, missing

    text, again, missing = asyncio.run(main())
    assert 'crossclear_claims_total{result="accepted"} 1.0' in text
    assert 'crossclear_claims_total{result="nullifier_used"} 2.0' in text
    assert "crossclear_certificates 42.0" in text and "crossclear_gossip_peers 3.0" in text
    assert 'crossclear_chain_head{chain="devnet-a",kind="finalized"} 118.0' in text
    assert "crossclear_margin_recompute_seconds_count 1.0" in text
    assert "crossclear_signing_halted 1.0" in text and "crossclear_stale_feeds 0.0" in text
    assert 'crossclear_clearing_events_total{event="seize_signed"} 1.0' in text
    assert 'crossclear_chain_head{chain="devnet-a",kind="head"} 121.0' in again
    assert missing == "404"
