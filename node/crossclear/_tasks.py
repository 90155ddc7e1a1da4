"""Stopping asyncio tasks reliably.

Python 3.11's `asyncio.wait_for` can lose a cancellation that arrives just as the awaited
call completes (fixed in 3.12); a task looping over such calls then never ends, and a plain
`task.cancel(); await task` waits forever. Stopping therefore cancels, waits a bounded time,
and cancels again, and the loops also check a stop flag of their own.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Iterable
from typing import TypeVar

_T = TypeVar("_T")

_log = logging.getLogger(__name__)


async def wait_for(awaitable: Awaitable[_T], timeout_seconds: float) -> _T:
    """`asyncio.wait_for`, except that a cancellation of the calling task stays a
    CancelledError: 3.11 may report it as TimeoutError, and a loop that retries on timeouts
    would then outlive its own cancel."""
    try:
        return await asyncio.wait_for(awaitable, timeout_seconds)
    except TimeoutError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise asyncio.CancelledError from None
        raise


async def cancel_and_wait(tasks: Iterable[asyncio.Task[None]], timeout_seconds: float = 10.0) -> None:
    """Cancel the tasks and wait until they end, re-cancelling any that ignore a cancel."""
    pending = {task for task in tasks if not task.done()}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_seconds
    while pending and loop.time() < deadline:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=0.5)
    for task in pending:
        _log.warning("task %s did not stop within %.0f s; abandoning it", task.get_name(), timeout_seconds)


def lower_this_thread_priority(niceness: int = 10) -> None:
    """Make the calling thread yield the CPU to others (Linux: per-thread nice value).

    Used by the worker that recomputes margin snapshots, so that on a machine with few cores the
    event loop answering reads wins the CPU while a recompute is under way."""
    import os
    import threading

    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), niceness)
    except (AttributeError, OSError):
        pass  # not Linux, or not allowed: a recompute at normal priority is still correct
