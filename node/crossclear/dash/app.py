"""The dashboard's ASGI app: pages, JSON, and server-sent event streams.

| path | what |
|---|---|
| `/`, `/accounts`, `/efficiency`, `/orders`, `/risk` | the pages (HTML; static/dash.js fills them) |
| `/events/{nodes,accounts,orders,risk}` | server-sent events: the page's document now, then each change |
| `/events/account?address=&node=` | one account's margin now, then each change |
| `/api/...` | the same documents once, as JSON; `POST /api/whatif` runs a what-if |

Every failure a person can cause (a malformed address or what-if, an unknown account, a node
that is down) is answered with a one-line message the page shows; an unexpected error is
logged and answered with one line too, never a traceback.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.json_format import MessageToDict
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from crossclear._tasks import cancel_and_wait
from crossclear.dash import pages, views
from crossclear.dash.config import DashConfig
from crossclear.dash.margins import MarginFollower, account_updates, pick_node
from crossclear.dash.nodes import NodeError, NodeSet, NodeWatcher
from crossclear.dash.orders import OrdersWatcher
from crossclear.dash.risk import RiskWatcher
from crossclear.dash.topics import HEARTBEAT_SECONDS, Topic
from crossclear.dash.whatif import WhatIfError, describe, parse, to_request
from crossclear.v1 import margin_pb2, margin_pb2_grpc

STATIC = Path(__file__).parent / "static"
_log = logging.getLogger("crossclear.dash")
TOPICS = ("nodes", "accounts", "orders", "risk")
#: Browsers reconnect an EventSource this many milliseconds after it drops.
SSE_RETRY_MS = 1000
MAX_WHATIF_BYTES = 256 * 1024


def dumps(document: Any) -> str:
    return json.dumps(views.finite(document), allow_nan=False, separators=(",", ":"))


class _JSON(JSONResponse):
    def render(self, content: Any) -> bytes:
        return dumps(content).encode()


def _error(message: str, status: int) -> Response:
    return _JSON({"error": message}, status_code=status)


@dataclass
class Dashboard:
    """The running dashboard: channels, watchers and their topics."""

    config: DashConfig
    node_set: NodeSet = field(init=False)
    topics: dict[str, Topic] = field(init=False)
    watcher: NodeWatcher = field(init=False)
    follower: MarginFollower = field(init=False)
    orders: OrdersWatcher = field(init=False)
    risk: RiskWatcher = field(init=False)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.node_set = NodeSet(self.config)
        self.topics = {name: Topic(name, {"loading": True}) for name in TOPICS}
        self.watcher = NodeWatcher(self.node_set, self.topics["nodes"])
        self.follower = MarginFollower(self.node_set, self.watcher, self.topics["accounts"])
        self.orders = OrdersWatcher(self.node_set, self.watcher, self.config.chains, self.topics["orders"])
        self.risk = RiskWatcher(self.config.report_path, self.topics["risk"])

    async def start(self) -> None:
        self.node_set.open()
        await self.watcher.poll_once()  # the first page load already knows who is up
        for name, runner in (("nodes", self.watcher.run), ("accounts", self.follower.run), ("orders", self.orders.run), ("risk", self.risk.run)):
            self.tasks.append(asyncio.create_task(self._guarded(name, runner), name=f"dash-{name}"))

    async def _guarded(self, name: str, runner: Any) -> None:
        # A watcher that fails unexpectedly is logged and restarted; the page keeps its last document.
        while True:
            try:
                await runner()
            except asyncio.CancelledError:
                raise
            except Exception:
                _log.exception("dashboard %s watcher failed; restarting it", name)
                await asyncio.sleep(1.0)

    async def stop(self) -> None:
        await cancel_and_wait(self.tasks)
        await self.node_set.close()


def create_app(config: DashConfig) -> Starlette:
    """The app for `config`; watchers start with the app's lifespan."""
    dashboard = Dashboard(config)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await dashboard.start()
        try:
            yield
        finally:
            await dashboard.stop()

    def page(name: str) -> Any:
        async def endpoint(request: Request) -> Response:
            return HTMLResponse(pages.render(name, config, dict(request.query_params)))

        return endpoint

    async def api_topic(request: Request) -> Response:
        name = request.path_params["topic"]
        if name not in dashboard.topics:
            return _error(f"no such document: {name}", 404)
        return _JSON(dashboard.topics[name].value)

    async def events_topic(request: Request) -> Response:
        name = request.path_params["topic"]
        if name not in dashboard.topics:
            return _error(f"no such event stream: {name}", 404)
        return _sse(name, dashboard.topics[name].updates())

    async def events_account(request: Request) -> Response:
        address = request.query_params.get("address", "")
        node = request.query_params.get("node") or None
        return _sse("account", _with_heartbeat(account_updates(dashboard.node_set, dashboard.watcher, address, node)))

    async def api_account(request: Request) -> Response:
        address = request.query_params.get("address", "")
        node = request.query_params.get("node") or None
        updates = account_updates(dashboard.node_set, dashboard.watcher, address, node)
        try:
            first = await anext(updates)
        finally:
            await updates.aclose()
        status = {"bad_input": 400, "unknown_account": 404, "unreachable": 503}.get(first.get("error", ""), 200)
        return _JSON(first, status_code=status)

    async def api_whatif(request: Request) -> Response:
        body = await request.body()
        if len(body) > MAX_WHATIF_BYTES:
            return _error("the what-if is too large", 413)
        try:
            document = json.loads(body or b"null")
        except ValueError:
            return _error("the what-if must be a JSON object (the form sends one)", 400)
        try:
            what_if = parse(document)
        except WhatIfError as error:
            return _error(str(error), 400)
        node = pick_node(dashboard.node_set, dashboard.watcher, document.get("node") or None)
        if node is None:
            return _error("no node answers: every node is down or unreachable", 503)
        try:
            before: margin_pb2.AccountMargin = await dashboard.node_set.call(
                node, margin_pb2_grpc.MarginServiceStub, "GetMargin", margin_pb2.GetMarginRequest(account=what_if.account)
            )
            simulate = to_request(what_if, list(before.collateral))
            after: margin_pb2.AccountMargin = await dashboard.node_set.call(node, margin_pb2_grpc.MarginServiceStub, "SimulateMargin", simulate, timeout=15.0)
        except WhatIfError as error:
            return _error(str(error), 400)
        except NodeError as error:
            if error.code == grpc.StatusCode.NOT_FOUND:
                return _error(f"{node.name} knows no account {what_if.account}: it has no credited claim or position yet", 404)
            if error.code == grpc.StatusCode.INVALID_ARGUMENT:
                return _error(f"{node.name} refused the what-if: {str(error).split(': ', 1)[-1]}", 400)
            return _error(str(error), 503)
        return _JSON(
            {
                "node": node.name,
                "request": MessageToDict(simulate, preserving_proto_field_name=True),
                "described": describe(simulate),
                "before": views.margin(before),
                "after": views.margin(after),
            }
        )

    async def healthz(request: Request) -> Response:
        return _JSON({"ok": True, "nodes_up": len(dashboard.watcher.up_nodes()), "nodes": len(config.nodes)})

    async def not_found(request: Request, exc: Exception) -> Response:
        detail = exc.detail if isinstance(exc, HTTPException) else "not found"
        status = exc.status_code if isinstance(exc, HTTPException) else 404
        if request.url.path.startswith(("/api/", "/events/")):
            return _error(str(detail), status)
        return HTMLResponse(pages.render("error", config, {"message": f"{request.url.path}: {detail}"}), status_code=status)

    async def server_error(request: Request, exc: Exception) -> Response:
        _log.error("dashboard error on %s: %s: %s", request.url.path, type(exc).__name__, exc)
        return _error(f"the dashboard failed on this request ({type(exc).__name__}); see its log", 500)

    routes = [
        Route("/", page("nodes")),
        Route("/accounts", page("accounts")),
        Route("/efficiency", page("efficiency")),
        Route("/orders", page("orders")),
        Route("/risk", page("risk")),
        Route("/healthz", healthz),
        Route("/api/account", api_account),
        Route("/api/whatif", api_whatif, methods=["POST"]),
        Route("/api/{topic}", api_topic),
        Route("/events/account", events_account),
        Route("/events/{topic}", events_topic),
        Mount("/static", app=StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={HTTPException: not_found, Exception: server_error})
    app.state.dashboard = dashboard
    return app


async def _with_heartbeat(updates: AsyncIterator[dict[str, Any]]) -> AsyncIterator[dict[str, Any] | None]:
    """Interleave None (a keep-alive) when `updates` is quiet for a heartbeat."""
    iterator = aiter(updates)
    pending: asyncio.Task[dict[str, Any]] | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(anext(iterator))
            done, _ = await asyncio.wait({pending}, timeout=HEARTBEAT_SECONDS)
            if not done:
                yield None
                continue
            try:
                value = pending.result()
            except StopAsyncIteration:
                return
            pending = None
            yield value
    finally:
        if pending is not None:
            pending.cancel()
            await asyncio.gather(pending, return_exceptions=True)


def _sse(event: str, updates: AsyncIterator[Any]) -> StreamingResponse:
    async def body() -> AsyncIterator[str]:
        yield f"retry: {SSE_RETRY_MS}\n\n"
        async for value in updates:
            if value is None:
                yield ": keep-alive\n\n"
            else:
                yield f"event: {event}\ndata: {dumps(value)}\n\n"

    return StreamingResponse(body(), media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
