"""The trio thread: start, call across, errors come back, stop."""

import asyncio
import threading

import pytest
import trio

from crossclear.p2p import AsyncioSink, TrioThread


def test_calls_cross_from_asyncio_to_trio_and_back() -> None:
    async def scenario() -> None:
        seen: list[str] = []
        sink = AsyncioSink(asyncio.get_running_loop())
        received = asyncio.Event()

        async def service(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
            task_status.started()
            await trio.sleep_forever()

        async def on_trio(value: int) -> str:
            await trio.sleep(0.01)
            sink.deliver(lambda: (seen.append(threading.current_thread().name), received.set()))
            return f"trio got {value} on {threading.current_thread().name}"

        async def fails() -> None:
            raise ValueError("boom")

        thread = TrioThread("libp2p-test")
        await thread.start(service)
        assert await thread.call(on_trio, 7) == "trio got 7 on libp2p-test"
        await asyncio.wait_for(received.wait(), 5)
        assert seen == [threading.current_thread().name]  # delivered on the asyncio thread
        with pytest.raises(ValueError, match="boom"):
            await thread.call(fails)
        await thread.stop()
        with pytest.raises(RuntimeError, match="not running"):
            await thread.call(on_trio, 1)

    asyncio.run(scenario())


def test_a_service_that_fails_to_start_reports_it() -> None:
    async def scenario() -> None:
        async def broken(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
            raise OSError("port in use")

        thread = TrioThread("libp2p-broken")
        with pytest.raises(RuntimeError, match="libp2p-broken failed to start: OSError\\('port in use'\\)"):
            await thread.start(broken)
        await thread.stop()

    asyncio.run(scenario())
