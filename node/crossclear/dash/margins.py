"""Margin for the pages: every account (for the accounts list and capital efficiency), one
account live, and what-if simulations.

The API has no "list accounts" call; `StreamMargin` with an empty account streams every
account's margin (all of them first, then each change), so the dashboard follows that stream
on one node, the first that answers, and moves to another when it goes down.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any

import grpc

from crossclear.dash import views
from crossclear.dash.config import NodeTarget
from crossclear.dash.nodes import NodeError, NodeSet, NodeWatcher, describe_rpc_error
from crossclear.dash.topics import Topic
from crossclear.v1 import margin_pb2, margin_pb2_grpc

ACCOUNT = re.compile(r"^0x[0-9a-fA-F]{40}$")
#: How often a stream checks that the watcher still sees its node up.
WATCHDOG_SECONDS = 0.5
#: Accounts-list updates are sent at most this often (a burst of changes is one update).
PUBLISH_SECONDS = 0.25


def check_account(text: str) -> str:
    """A 0x address, or ValueError with a message for the page."""
    text = text.strip()
    if not text:
        raise ValueError("enter an account address (0x followed by 40 hex digits)")
    if not ACCOUNT.match(text):
        raise ValueError(f"{text[:60]!r} is not an account address: expected 0x followed by 40 hex digits")
    return text


def pick_node(node_set: NodeSet, watcher: NodeWatcher, preferred: str | None = None) -> NodeTarget | None:
    """The preferred node when it is up, else the first node up (None when none answers)."""
    if preferred:
        node = node_set.by_name(preferred)
        if node is not None and not watcher.is_down(node):
            return node
    up = watcher.up_nodes()
    if up:
        return up[0]
    if watcher.polls == 0:  # nothing polled yet: try the configured order
        return node_set.nodes[0]
    return None


async def _stream_until_down(
    watcher: NodeWatcher, node: NodeTarget, messages: AsyncIterator[margin_pb2.AccountMargin], on_message: Callable[[margin_pb2.AccountMargin], None]
) -> None:
    """Consume `messages` until the stream ends or the watcher reports `node` down."""

    async def consume() -> None:
        async for message in messages:
            on_message(message)

    task = asyncio.create_task(consume())
    try:
        while not task.done():
            await asyncio.wait({task}, timeout=WATCHDOG_SECONDS)
            if not task.done() and watcher.is_down(node):
                task.cancel()
                raise NodeError(f"{node.name} ({node.rpc}) stopped answering")
        task.result()
    finally:
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


class MarginFollower:
    """Every account's latest margin, from one node's StreamMargin(""), published as a list."""

    def __init__(self, node_set: NodeSet, watcher: NodeWatcher, topic: Topic) -> None:
        self.node_set = node_set
        self.watcher = watcher
        self.topic = topic
        self.accounts: dict[str, margin_pb2.AccountMargin] = {}
        self.source: NodeTarget | None = None
        self.error: str | None = None
        self._dirty = True

    async def run(self) -> None:
        publisher = asyncio.create_task(self._publisher())
        try:
            while True:
                node = pick_node(self.node_set, self.watcher)
                if node is None:
                    self.source, self.error = None, "no node answers: every node is down or unreachable"
                    self._dirty = True
                    await asyncio.sleep(0.5)
                    continue
                if self.source is None or self.source.name != node.name:
                    self.accounts = {}  # another node: start from its full picture
                self.source, self.error = node, None
                self._dirty = True
                try:
                    stub = margin_pb2_grpc.MarginServiceStub(self.node_set.channel(node))
                    await _stream_until_down(self.watcher, node, stub.StreamMargin(margin_pb2.StreamMarginRequest(account="")), self._update)
                except grpc.aio.AioRpcError as error:
                    self.error = describe_rpc_error(node, error)
                except NodeError as error:
                    self.error = str(error)
                self._dirty = True
                await asyncio.sleep(0.5)
        finally:
            publisher.cancel()
            await asyncio.gather(publisher, return_exceptions=True)

    def _update(self, message: margin_pb2.AccountMargin) -> None:
        self.accounts[message.account.lower()] = message
        self._dirty = True

    async def _publisher(self) -> None:
        while True:
            if self._dirty:
                self._dirty = False
                self.topic.publish(self.document())
            await asyncio.sleep(PUBLISH_SECONDS)

    def document(self) -> dict[str, Any]:
        rows = [views.margin_summary(message) for _, message in sorted(self.accounts.items())]
        document: dict[str, Any]
        totals = {mode: sum(row["required"][mode] or 0.0 for row in rows) for mode in views.MODES}
        isolated, portfolio = totals["isolated"], totals["portfolio"]
        document = views.finite(
            {
                "time": time.time(),
                "node": self.source.name if self.source else None,
                "error": self.error,
                "accounts": rows,
                "totals": totals,
                "freed": isolated - portfolio,
                "ratio": (isolated / portfolio) if portfolio > 0 else None,
                "state_height": max((row["state_height"] for row in rows), default=0),
            }
        )
        return document


async def account_updates(node_set: NodeSet, watcher: NodeWatcher, address: str, preferred: str | None) -> AsyncGenerator[dict[str, Any], None]:
    """One account's margin for the page: now, then each change; moves to another node when
    the one it reads goes down. Yields {"node", "margin"} or {"node", "error", "message"}."""
    try:
        account = check_account(address)
    except ValueError as error:
        yield {"error": "bad_input", "message": str(error)}
        return
    asked = preferred
    while True:
        node = pick_node(node_set, watcher, preferred)
        if node is None:
            yield {"node": None, "error": "unreachable", "message": "no node answers: every node is down or unreachable; retrying"}
            await asyncio.sleep(1.0)
            continue
        stub = margin_pb2_grpc.MarginServiceStub(node_set.channel(node))
        note = None
        if asked and asked != node.name:
            note = f"{asked} is down or unknown; reading {node.name} instead"
        try:
            try:
                first = await stub.GetMargin(margin_pb2.GetMarginRequest(account=account), timeout=5.0)
                yield {"node": node.name, "margin": views.finite(views.margin(first)), "note": note}
            except grpc.aio.AioRpcError as error:
                if error.code() == grpc.StatusCode.NOT_FOUND:
                    yield {
                        "node": node.name,
                        "error": "unknown_account",
                        "message": f"{node.name} knows no account {account}: it has no credited claim or position yet. "
                        "This page shows it as soon as it appears.",
                    }
                elif error.code() == grpc.StatusCode.INVALID_ARGUMENT:
                    yield {"node": node.name, "error": "bad_input", "message": f"{node.name} refused the address: {error.details()}"}
                    return
                else:
                    raise
            queue: asyncio.Queue[margin_pb2.AccountMargin] = asyncio.Queue()
            streaming = asyncio.create_task(
                _stream_until_down(watcher, node, stub.StreamMargin(margin_pb2.StreamMarginRequest(account=account)), queue.put_nowait)
            )
            try:
                while True:
                    getter = asyncio.create_task(queue.get())
                    await asyncio.wait({getter, streaming}, return_when=asyncio.FIRST_COMPLETED)
                    if getter.done():
                        yield {"node": node.name, "margin": views.finite(views.margin(getter.result())), "note": note}
                        continue
                    getter.cancel()
                    streaming.result()  # raises what ended the stream
                    break
            finally:
                streaming.cancel()
                await asyncio.gather(streaming, return_exceptions=True)
        except grpc.aio.AioRpcError as error:
            yield {"node": node.name, "error": "unreachable", "message": describe_rpc_error(node, error) + "; trying another node"}
        except NodeError as error:
            yield {"node": node.name, "error": "unreachable", "message": f"{error}; trying another node"}
        preferred = None
        await asyncio.sleep(0.5)
