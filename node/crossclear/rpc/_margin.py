"""MarginService: GetMargin, StreamMargin and SimulateMargin over the clearing state.

Every read uses the latest `MarginSnapshot` the processor published: immutable, so no lock
and no recompute on the read path. Simulations run the kernel for one account on a worker
thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import numpy as np

from crossclear._tasks import wait_for
from crossclear.node.clearing import ClearingError, MarginSnapshot, normalise_account
from crossclear.rpc._convert import MAX_SIMULATED_CHANGES, InvalidRequest, base_units, margin_to_proto, position_from_proto, short_name
from crossclear.v1 import margin_pb2, margin_pb2_grpc


class HeightWatch:
    """Wakes streaming calls when a new snapshot is published (called on the event loop)."""

    def __init__(self) -> None:
        self._changed = asyncio.Event()

    def notify(self, snapshot: MarginSnapshot) -> None:
        del snapshot
        self._changed.set()

    async def wait(self, timeout: float) -> None:
        """Return after the next publication, or after `timeout` seconds."""
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


#: The per-account figures a stream reports; an account is pushed when any of them moved.
_FIGURES = ("equity", "collateral_value", "upnl", "health", "liquidatable")
_MODE_FIGURES = ("im", "mm", "required")


def changed_accounts(before: MarginSnapshot | None, after: MarginSnapshot) -> list[str]:
    """Accounts whose margin figures or book differ between two snapshots (all when no before)."""
    accounts = after.accounts()
    if before is None:
        return accounts
    shared = len(before.rows)
    moved = np.zeros(len(accounts), dtype=bool)
    moved[shared:] = True
    for name in _FIGURES:
        old, new = getattr(before.result, name)[:shared], getattr(after.result, name)[:shared]
        moved[:shared] |= ~((old == new) | (np.isnan(old) & np.isnan(new)))
    for name in _MODE_FIGURES:
        moved[:shared] |= (getattr(before.result, name) != getattr(after.result, name))[:shared].any(axis=1)
    if before.books is not after.books:
        for row in np.flatnonzero(~moved[:shared]):
            account = accounts[int(row)]
            if before.books.get(account) is not after.books[account]:
                moved[row] = True
    return [accounts[int(row)] for row in np.flatnonzero(moved)]


def _row_changed(before: MarginSnapshot | None, after: MarginSnapshot, account: str) -> bool:
    if before is None or account not in before.rows or before.books.get(account) is not after.books.get(account):
        return True
    old, new = before.rows[account], after.rows[account]
    for name in _FIGURES:
        a, b = getattr(before.result, name)[old], getattr(after.result, name)[new]
        if not (a == b or (np.isnan(a) and np.isnan(b))):
            return True
    return any(bool((getattr(before.result, name)[old] != getattr(after.result, name)[new]).any()) for name in _MODE_FIGURES)


Snapshots = Callable[[], MarginSnapshot | None]


class MarginServicer(margin_pb2_grpc.MarginServiceServicer):
    """The integrators' margin API, answered from the latest published snapshot without locks."""

    def __init__(self, snapshots: Snapshots, watch: HeightWatch, stream_heartbeat_seconds: float = 5.0) -> None:
        self._snapshots = snapshots
        self._watch = watch
        self._stream_heartbeat_seconds = stream_heartbeat_seconds

    def _snapshot(self) -> MarginSnapshot:
        snapshot = self._snapshots()
        if snapshot is None:
            raise ClearingError("the node is still loading its clearing state; try again in a moment")
        return snapshot

    async def GetMargin(self, request: margin_pb2.GetMarginRequest, context: Any) -> margin_pb2.AccountMargin:
        try:
            account = _account(request.account)
        except InvalidRequest as error:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))
        try:
            margin = self._snapshot().margin(account)
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
                (r.chain_id, short_name(r.asset, f"remove_collateral[{i}].asset"), base_units(r.amount_units, f"remove_collateral[{i}].amount_units"))
                for i, r in enumerate(request.remove_collateral)
            ]
            snapshot = self._snapshot()
            margin = await asyncio.to_thread(snapshot.simulate, account, positions, removals)
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
        sent: MarginSnapshot | None = None
        while not context.done():
            snapshot = self._snapshots()
            if snapshot is not None and (sent is None or snapshot.height != sent.height):
                if only is not None:
                    accounts = [only] if only in snapshot.rows and _row_changed(sent, snapshot, only) else []
                else:
                    accounts = await asyncio.to_thread(changed_accounts, sent, snapshot)
                for account in accounts:
                    yield margin_to_proto(snapshot.margin(account))
                sent = snapshot
            await self._watch.wait(self._stream_heartbeat_seconds)
