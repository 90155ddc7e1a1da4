"""Latest-value topics that server-sent event streams follow.

A watcher publishes a whole JSON-ready document; every subscriber gets the newest one when it
connects and then each newer one. A slow subscriber skips versions instead of queueing them,
so one stuck browser tab never holds memory or slows the watchers.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from crossclear._tasks import wait_for

HEARTBEAT_SECONDS = 15.0


class Topic:
    """One document that changes over time."""

    def __init__(self, name: str, initial: Any) -> None:
        self.name = name
        self.value: Any = initial
        self.version = 0
        self._changed = asyncio.Event()

    def publish(self, value: Any) -> None:
        """Replace the document and wake every subscriber."""
        self.value = value
        self.version += 1
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def updates(self, heartbeat_seconds: float = HEARTBEAT_SECONDS) -> AsyncIterator[Any | None]:
        """The current document, then every newer one; None when nothing changed for a heartbeat."""
        seen = -1
        while True:
            if self.version != seen:
                seen = self.version
                yield self.value
                continue
            changed = self._changed
            try:
                await wait_for(changed.wait(), heartbeat_seconds)
            except TimeoutError:
                yield None
