"""The node set as the dashboard sees it: one gRPC channel per node, and a watcher that reads
every node's GetStatus and /metrics each second.

A node that does not answer is *down*, with the reason in one line; everything else on the
page keeps working from the nodes that do answer.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import grpc

from crossclear.dash import views
from crossclear.dash.config import DashConfig, NodeTarget
from crossclear.dash.scrape import Samples, ScrapeError, scrape
from crossclear.dash.topics import Topic
from crossclear.v1 import node_pb2, node_pb2_grpc

#: A dead node must be reported as down within a few seconds, and come back as soon as it serves.
CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 300),
    ("grpc.min_reconnect_backoff_ms", 300),
    ("grpc.max_reconnect_backoff_ms", 2000),
    ("grpc.enable_retries", 0),
]
#: Window over which certificates per second are measured.
RATE_WINDOW_SECONDS = 15.0


class NodeError(Exception):
    """A node call failed; the message is one line naming the node, `code` the gRPC status."""

    def __init__(self, message: str, code: grpc.StatusCode | None = None) -> None:
        super().__init__(message)
        self.code = code


def describe_rpc_error(node: NodeTarget, error: grpc.aio.AioRpcError) -> str:
    """One line for the page: unreachable, timed out, or what the node answered."""
    code = error.code()
    details = " ".join((error.details() or "").split())
    if code == grpc.StatusCode.UNAVAILABLE:
        # grpc's text names every address it tried; the last reason is the one a person needs.
        reason = details.rsplit(": ", 1)[-1] if "Failed to connect" in details or "failed to connect" in details else details
        return f"{node.name} ({node.rpc}) is unreachable: {reason[:200]}"
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return f"{node.name} ({node.rpc}) did not answer in time"
    return f"{node.name} answered {code.name}: {details[:300]}"


class NodeSet:
    """Channels to every configured node (open them on the running event loop)."""

    def __init__(self, config: DashConfig) -> None:
        self.config = config
        self.nodes = config.nodes
        self._channels: dict[str, grpc.aio.Channel] = {}

    def open(self) -> None:
        for node in self.nodes:
            self._channels[node.name] = grpc.aio.insecure_channel(node.rpc, options=CHANNEL_OPTIONS)

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close()
        self._channels.clear()

    def channel(self, node: NodeTarget) -> grpc.aio.Channel:
        return self._channels[node.name]

    def by_name(self, name: str) -> NodeTarget | None:
        for node in self.nodes:
            if node.name == name:
                return node
        return None

    async def call(self, node: NodeTarget, stub_type: Callable[[grpc.aio.Channel], Any], method: str, request: Any, timeout: float = 5.0) -> Any:
        """One unary call; any failure is a NodeError with a one-line reason."""
        try:
            return await getattr(stub_type(self.channel(node)), method)(request, timeout=timeout)
        except grpc.aio.AioRpcError as error:
            raise NodeError(describe_rpc_error(node, error), error.code()) from None


class NodeWatcher:
    """Polls every node's status and metrics; publishes the node-set document."""

    def __init__(self, node_set: NodeSet, topic: Topic) -> None:
        self.node_set = node_set
        self.topic = topic
        self.views: dict[str, dict[str, Any]] = {}
        self.samples: dict[str, Samples] = {}
        self._certificates: dict[str, deque[tuple[float, int]]] = {node.name: deque() for node in node_set.nodes}
        self._down_since: dict[str, float] = {}
        self._last_seen: dict[str, float] = {}
        self.polls = 0

    def up_nodes(self) -> list[NodeTarget]:
        """Nodes whose last status call answered, in configured order."""
        return [node for node in self.node_set.nodes if self.views.get(node.name, {}).get("up")]

    def is_down(self, node: NodeTarget) -> bool:
        view = self.views.get(node.name)
        return view is not None and not view["up"]

    def name_of_signer(self, address: str) -> str | None:
        """The node whose signer is `address` (from config or its status), if any."""
        wanted = address.lower()
        for node in self.node_set.nodes:
            known = node.address or (self.views.get(node.name, {}).get("status") or {}).get("node_address")
            if known and known.lower() == wanted:
                return node.name
        return None

    async def run(self) -> None:
        interval = self.node_set.config.poll_seconds
        while True:
            started = time.monotonic()
            await self.poll_once()
            await asyncio.sleep(max(0.05, interval - (time.monotonic() - started)))

    async def poll_once(self) -> None:
        nodes = self.node_set.nodes
        results = await asyncio.gather(*(self._poll(node) for node in nodes))
        for node, view in zip(nodes, results):
            self.views[node.name] = view
        self.polls += 1
        self.topic.publish(self.document())

    def document(self) -> dict[str, Any]:
        nodes = [self.views[node.name] for node in self.node_set.nodes if node.name in self.views]
        up = sum(1 for view in nodes if view["up"])
        quorum = self.node_set.config.quorum()
        return {
            "time": time.time(),
            "nodes": nodes,
            "up": up,
            "total": len(self.node_set.nodes),
            "quorum": quorum,
            "quorum_available": up >= quorum,
            "halted": [view["name"] for view in nodes if view["up"] and view["status"]["signing_halted"]],
            "equivocations": max((view["status"]["equivocation_count"] for view in nodes if view["up"]), default=0),
            "source": self.node_set.config.source,
        }

    async def _poll(self, node: NodeTarget) -> dict[str, Any]:
        timeout = max(0.5, min(2.0, self.node_set.config.poll_seconds * 1.5))
        status_call = self.node_set.call(node, node_pb2_grpc.NodeServiceStub, "GetStatus", node_pb2.GetNodeStatusRequest(), timeout=timeout)
        metrics_call = scrape(node.metrics, timeout) if node.metrics else None
        outcomes = await asyncio.gather(status_call, *([metrics_call] if metrics_call else []), return_exceptions=True)
        now = time.time()
        view: dict[str, Any] = {"name": node.name, "rpc": node.rpc, "metrics_url": node.metrics, "checked_at": now}
        status = outcomes[0]
        if isinstance(status, node_pb2.NodeStatus):
            view["up"] = True
            view["error"] = None
            view["status"] = views.status(status)
            self._down_since.pop(node.name, None)
            self._last_seen[node.name] = now
            view["certificates_per_second"] = self._rate(node.name, status.certificate_count)
        else:
            view["up"] = False
            view["error"] = str(status) if isinstance(status, NodeError) else f"{node.name}: {type(status).__name__}: {status}"
            view["status"] = None
            view["certificates_per_second"] = None
            self._down_since.setdefault(node.name, now)
            self._certificates[node.name].clear()
        view["down_since"] = self._down_since.get(node.name)
        view["last_seen"] = self._last_seen.get(node.name)
        view["metrics"], view["metrics_error"] = None, None
        if metrics_call is not None:
            samples = outcomes[1]
            if isinstance(samples, Samples):
                self.samples[node.name] = samples
                view["metrics"] = _metrics_view(samples)
            else:
                self.samples.pop(node.name, None)
                view["metrics_error"] = str(samples) if isinstance(samples, ScrapeError) else f"{type(samples).__name__}: {samples}"
        view["health"] = _health(view)
        return view

    def _rate(self, name: str, count: int) -> float | None:
        now = time.monotonic()
        window = self._certificates[name]
        window.append((now, count))
        while window and now - window[0][0] > RATE_WINDOW_SECONDS:
            window.popleft()
        if len(window) < 2 or window[-1][0] - window[0][0] < 0.5:
            return None
        return max(0.0, (window[-1][1] - window[0][1]) / (window[-1][0] - window[0][0]))


def _metrics_view(samples: Samples) -> dict[str, Any]:
    recompute_sum = samples.value("crossclear_margin_recompute_seconds_sum")
    recompute_count = samples.value("crossclear_margin_recompute_seconds_count")
    return {
        "gossip_peers": samples.value("crossclear_gossip_peers"),
        "stale_feeds": samples.value("crossclear_stale_feeds"),
        "signing_halted": samples.value("crossclear_signing_halted"),
        "claims": samples.by_label("crossclear_claims_total", "result"),
        "releases": samples.by_label("crossclear_releases_total", "result"),
        "events": samples.by_label("crossclear_clearing_events_total", "event"),
        "recompute_mean_seconds": (recompute_sum / recompute_count) if recompute_sum is not None and recompute_count else None,
    }


def _health(view: dict[str, Any]) -> str:
    """down, halted (signs nothing), warning (an adapter not ok, stale feeds, evidence), ok."""
    if not view["up"]:
        return "down"
    status = view["status"]
    if status["signing_halted"]:
        return "halted"
    if any(chain["health"] != "ok" for chain in status["chains"]) or any(feed["stale"] for feed in status["feeds"]) or status["equivocation_count"] > 0:
        return "warning"
    return "ok"
