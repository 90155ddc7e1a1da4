"""MarginService: GetMargin, StreamMargin and SimulateMargin over the clearing state.

Reads that may rebuild the margin arrays run on a worker thread (the kernel releases the
GIL), so the event loop keeps serving other calls while a recompute is under way.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc

from crossclear._tasks import wait_for
from crossclear.node.clearing import ClearingError, ClearingState, normalise_account
from crossclear.rpc._convert import MAX_SIMULATED_CHANGES, InvalidRequest, bounded, margin_to_proto, position_from_proto, short_name
from crossclear.v1 import margin_pb2, margin_pb2_grpc


class HeightWatch:
    """Wakes streaming calls when the clearing state changes, from whichever thread changed it."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._changed = asyncio.Event()

    def notify(self, height: int) -> None:
        """Thread-safe: called by the clearing state after every change."""
        del height
        self._loop.call_soon_threadsafe(self._changed.set)

    async def wait(self, timeout: float) -> None:
        """Return after the next change, or after `timeout` seconds."""
        try:
            await wait_for(self._changed.wait(), timeout)
        except TimeoutError:
            return
        self._changed.clear()


def _account(raw: str) -> str:
    try:
        return normalise_account(raw)
    except ClearingError as error:
        raise InvalidRequest(f"account: {error}") from None


class MarginServicer(margin_pb2_grpc.MarginServiceServicer):
    """The integrators' margin API."""

    def __init__(self, state: ClearingState, watch: HeightWatch, stream_heartbeat_seconds: float = 5.0) -> None:
        self._state = state
        self._watch = watch
        self._stream_heartbeat_seconds = stream_heartbeat_seconds
        state.add_listener(watch.notify)

    async def GetMargin(self, request: margin_pb2.GetMarginRequest, context: Any) -> margin_pb2.AccountMargin:
        try:
            account = _account(request.account)
        except InvalidRequest as error:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))
        try:
            # A read of clean state takes microseconds: answer inline. A read that must first
            # rebuild the arrays goes to a worker thread (the kernel releases the GIL).
            if self._state.needs_recompute:
                margin = await asyncio.to_thread(self._state.margin, account)
            else:
                margin = self._state.margin(account)
        except ClearingError as error:
            await context.abort(grpc.StatusCode.NOT_FOUND, str(error))
        return margin_to_proto(margin)

    async def SimulateMargin(self, request: margin_pb2.SimulateMarginRequest, context: Any) -> margin_pb2.AccountMargin:
        try:
            account = _account(request.account)
            if len(request.add_positions) + len(request.remove_collateral) > MAX_SIMULATED_CHANGES:
                raise InvalidRequest(f"at most {MAX_SIMULATED_CHANGES} positions and collateral removals per simulation")
            positions = [position_from_proto(p, f"add_positions[{i}]") for i, p in enumerate(request.add_positions)]
            removals = [
                (r.chain_id, short_name(r.asset, f"remove_collateral[{i}].asset"), bounded(r.amount, f"remove_collateral[{i}].amount"))
                for i, r in enumerate(request.remove_collateral)
            ]
            margin = await asyncio.to_thread(self._state.simulate, account, positions, removals)
        except (InvalidRequest, ClearingError) as error:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))
        return margin_to_proto(margin)

    async def StreamMargin(self, request: margin_pb2.StreamMarginRequest, context: Any) -> AsyncIterator[margin_pb2.AccountMargin]:
        only: str | None = None
        if request.account:
            try:
                only = _account(request.account)
            except InvalidRequest as error:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))
        sent_height = -1
        while not context.done():
            height = self._state.height
            accounts = [only] if only is not None else self._state.accounts()
            if sent_height >= 0:
                changed = set(self._state.accounts_changed_since(sent_height))
                accounts = [a for a in accounts if a in changed]
            for account in accounts:
                try:
                    margin = await asyncio.to_thread(self._state.margin, account)
                except ClearingError:
                    continue  # not credited yet: nothing to stream until it exists
                yield margin_to_proto(margin)
            sent_height = height
            await self._watch.wait(self._stream_heartbeat_seconds)
