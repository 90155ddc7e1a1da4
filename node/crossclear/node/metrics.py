"""Prometheus metrics of one node, served as text on a local port.

Each node owns its registry (no process-global state), so several nodes can run in one
process in tests. Gauges that mirror state elsewhere (peers, heads, certificates) are read at
scrape time from the callables the node wires in; counters are incremented as things happen.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest


#: A scraper has this long to send its request line and headers.
SCRAPE_TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True)
class LiveReadings:
    """Callables read at every scrape."""

    connected_peers: Callable[[], int]
    certificates: Callable[[], int]
    equivocations: Callable[[], int]
    state_height: Callable[[], int]
    chain_heads: Callable[[], Mapping[str, tuple[int, int]]]
    """Chain name to (head, finalized head)."""
    stale_feeds: Callable[[], int]
    signing_halted: Callable[[], int]
    """1 when the conservation check failed and this node signs no orders."""


class _LiveCollector:
    def __init__(self, readings: LiveReadings) -> None:
        self._readings = readings

    def collect(self) -> Iterator[GaugeMetricFamily]:
        readings = self._readings
        yield GaugeMetricFamily("crossclear_gossip_peers", "libp2p peers connected now", value=readings.connected_peers())
        yield GaugeMetricFamily("crossclear_certificates", "quorum certificates held", value=readings.certificates())
        yield GaugeMetricFamily("crossclear_equivocations", "equivocation evidence records held", value=readings.equivocations())
        yield GaugeMetricFamily("crossclear_state_height", "changes applied to the clearing state", value=readings.state_height())
        yield GaugeMetricFamily("crossclear_stale_feeds", "price feeds older than their heartbeat", value=readings.stale_feeds())
        yield GaugeMetricFamily("crossclear_signing_halted", "1 when a failed conservation check stopped all signing", value=readings.signing_halted())
        heads = GaugeMetricFamily("crossclear_chain_head", "latest block seen per chain", labels=["chain", "kind"])
        for chain, (head, finalized) in readings.chain_heads().items():
            heads.add_metric([chain, "head"], head)
            heads.add_metric([chain, "finalized"], finalized)
        yield heads


class NodeMetrics:
    """Counters and histograms the node updates, plus live gauges read at scrape time."""

    def __init__(self, readings: LiveReadings) -> None:
        # No auto-describe: the live collector reads components that may not be started yet.
        self.registry = CollectorRegistry(auto_describe=False)
        self.claims = Counter("crossclear_claims", "claims checked, by result", ["result"], registry=self.registry)
        self.margin_recompute_seconds = Histogram(
            "crossclear_margin_recompute_seconds",
            "wall time of kernel recomputes",
            buckets=(0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0),
            registry=self.registry,
        )
        self.releases = Counter("crossclear_releases", "withdrawal requests, by result", ["result"], registry=self.registry)
        self.clearing_events = Counter(
            "crossclear_clearing_events", "processor events: orders signed, paid and expired, claims credited, events ignored", ["event"], registry=self.registry
        )
        self.registry.register(_LiveCollector(readings))
        self._server: asyncio.Server | None = None

    async def serve(self, port: int) -> int:
        """Serve /metrics on 127.0.0.1:`port` (0 picks one) from the event loop; returns the port.

        Scrapes run on the loop like every other reader, so the readings need no locks."""
        self._server = await asyncio.start_server(self._answer, "127.0.0.1", port)
        return int(self._server.sockets[0].getsockname()[1])

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), SCRAPE_TIMEOUT_SECONDS)
            path = request.split(b" ", 2)[1] if request.count(b" ") >= 2 else b""
            if request.startswith(b"GET ") and path.split(b"?")[0] in (b"/metrics", b"/"):
                body, status = generate_latest(self.registry), b"200 OK"
            else:
                body, status = b"only GET /metrics is served here\n", b"404 Not Found"
            writer.write(
                b"HTTP/1.1 " + status + b"\r\nContent-Type: " + CONTENT_TYPE_LATEST.encode()
                + b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body
            )
            await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ConnectionError):
            pass  # a scraper that sends garbage or goes away gets nothing
        finally:
            writer.close()

    async def close(self) -> None:
        """Stop serving."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
