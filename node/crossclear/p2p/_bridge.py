"""The one place trio (py-libp2p) meets asyncio (grpc.aio, web3, the node).

Choice: libp2p runs under `trio.run` on its own thread. Guest mode would share one thread,
so every signature check in a gossip validator would stall gRPC and web3; a thread keeps the
two loops independent, and the crossing points are two small, explicit functions:

- asyncio -> trio: `TrioThread.call(async_fn, *args)` schedules the coroutine in the trio
  nursery with `TrioToken.run_sync_soon` (thread-safe, non-blocking) and hands back an
  asyncio-awaitable result through a concurrent.futures.Future;
- trio -> asyncio: `AsyncioSink.deliver(fn, *args)` is `loop.call_soon_threadsafe`.

Nothing else in the code base touches both libraries.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import trio

T = TypeVar("T")


#: The trio-side service: called with a `task_status` keyword, runs until cancelled, and calls
#: task_status.started() once ready (trio's `nursery.start` protocol).
TrioService = Callable[..., Awaitable[None]]


class TrioThread:
    """A trio event loop on a daemon thread, running one long-lived service."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._thread: threading.Thread | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._nursery: trio.Nursery | None = None
        self._started: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._finished: concurrent.futures.Future[None] = concurrent.futures.Future()

    async def start(self, service: TrioService, timeout_seconds: float = 30.0) -> None:
        """Start the thread and wait (without blocking asyncio) until the service is ready."""
        self._thread = threading.Thread(target=self._run, args=(service,), name=self._name, daemon=True)
        self._thread.start()
        await asyncio.wait_for(asyncio.wrap_future(self._started), timeout_seconds)

    def _run(self, service: TrioService) -> None:
        try:
            trio.run(self._main, service)
        except BaseException as error:
            cause = _first_leaf(error)
            if not self._started.done():
                self._started.set_exception(RuntimeError(f"{self._name} failed to start: {cause!r}"))
            self._finished.set_exception(cause)
        else:
            if not self._started.done():
                self._started.set_exception(RuntimeError(f"{self._name} stopped before it was ready"))
            self._finished.set_result(None)

    async def _main(self, service: TrioService) -> None:
        self._token = trio.lowlevel.current_trio_token()
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            await nursery.start(service)
            self._started.set_result(None)

    def submit(self, function: Callable[..., Awaitable[T]], *args: Any) -> concurrent.futures.Future[T]:
        """Run `function(*args)` on the trio loop; callable from any thread."""
        result: concurrent.futures.Future[T] = concurrent.futures.Future()
        token, nursery = self._token, self._nursery
        if token is None or nursery is None or self._finished.done():
            result.set_exception(RuntimeError(f"{self._name} is not running"))
            return result

        async def runner() -> None:
            try:
                value = await function(*args)
            except BaseException as error:
                result.set_exception(error if isinstance(error, Exception) else RuntimeError("cancelled"))
                if not isinstance(error, Exception):
                    raise
            else:
                result.set_result(value)

        try:
            token.run_sync_soon(nursery.start_soon, runner)
        except trio.RunFinishedError:
            result.set_exception(RuntimeError(f"{self._name} is not running"))
        return result

    async def call(self, function: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Await `function(*args)` run on the trio loop, from asyncio."""
        return await asyncio.wrap_future(self.submit(function, *args))

    async def stop(self, timeout_seconds: float = 10.0) -> None:
        """Cancel the service and wait for the thread to end."""
        token, nursery = self._token, self._nursery
        if token is not None and nursery is not None and not self._finished.done():
            try:
                token.run_sync_soon(nursery.cancel_scope.cancel)
            except trio.RunFinishedError:
                pass
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, timeout_seconds)
            if self._thread.is_alive():
                raise TimeoutError(f"{self._name} did not stop within {timeout_seconds:.0f} s")


def _first_leaf(error: BaseException) -> BaseException:
    # trio wraps failures in exception groups; people need the one thing that went wrong.
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    return error


class AsyncioSink:
    """Hands values from the trio thread to the asyncio loop that created it.

    Calls are queued, and the trio side wakes the loop only when it is not already draining:
    while messages keep coming, the loop looks again every `POLL_SECONDS` on its own. Every
    wake-up writes to asyncio's self-pipe and hands the GIL across, which under a flood cost
    the trio thread more than validating the messages. Order is kept."""

    POLL_SECONDS = 0.003

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._pending: collections.deque[tuple[Callable[..., object], tuple[Any, ...]]] = collections.deque()
        self._lock = threading.Lock()
        self._draining = False

    def deliver(self, function: Callable[..., object], *args: Any) -> None:
        with self._lock:
            self._pending.append((function, args))
            if self._draining:
                return
            self._draining = True
        try:
            self._loop.call_soon_threadsafe(self._drain)
        except RuntimeError:
            pass  # the asyncio loop already closed: the node is shutting down

    def _drain(self) -> None:
        with self._lock:
            batch, self._pending = self._pending, collections.deque()
            if not batch:
                self._draining = False  # quiet: the next delivery wakes the loop again
                return
        for function, args in batch:
            try:
                function(*args)
            except Exception as error:  # one bad call must not lose the rest of the batch
                self._loop.call_exception_handler({"message": "delivery from the trio thread failed", "exception": error})
        self._loop.call_later(self.POLL_SECONDS, self._drain)
