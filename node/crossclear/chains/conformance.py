"""A reusable pytest suite every chain adapter must pass.

An adapter author subclasses `ChainAdapterConformance` in their own test module and supplies
a `harness` fixture that drives a running chain:

    import pytest
    from crossclear.chains.conformance import ChainAdapterConformance

    class TestMyAdapter(ChainAdapterConformance):
        @pytest.fixture
        def harness(self, my_running_chain):
            return MyHarness(my_running_chain)   # implements ConformanceHarness

The suite checks the contract of `crossclear.chains.interface.ChainAdapter`: identity,
heads, a deposit observed exactly once with its idempotency fields, ordering, resuming from
any cursor without repeats, the vault root, cursor validation and health.
`collect_batches` is also handy in an adapter's own tests.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import pytest

from crossclear._tasks import cancel_and_wait
from crossclear.chains.interface import (
    ChainAdapter,
    ChainAdapterError,
    Cursor,
    DepositObserved,
    Health,
    ObservationBatch,
    RootUpdated,
)

_T = TypeVar("_T")


@dataclass(frozen=True)
class ExpectedDeposit:
    """What the harness deposited, for the suite to look for."""

    tx_hash: bytes
    """Hash of the deposit transaction."""
    account: str
    """Depositor address."""
    asset: str
    """Token address."""
    amount: int
    """Amount deposited."""


class ConformanceHarness(Protocol):
    """What an adapter author provides: a running chain the suite can act on."""

    chain_id: int
    """The chain id the adapter must report."""

    def new_adapter(self) -> ChainAdapter:
        """A fresh, unconnected adapter for the running chain."""
        ...

    def start_cursor(self) -> Cursor:
        """A cursor before the vault's deployment."""
        ...

    def make_deposit(self) -> ExpectedDeposit:
        """Make one vault deposit on the chain and return what it should be observed as."""
        ...

    def finalize(self) -> None:
        """Advance the chain until everything so far is final for the adapter."""
        ...


def run(coroutine: Coroutine[Any, Any, _T], timeout_seconds: float = 60.0) -> _T:
    """Run one coroutine to completion under a time-out (the suite needs no asyncio plugin)."""
    return asyncio.run(asyncio.wait_for(coroutine, timeout_seconds))


async def collect_batches(
    adapter: ChainAdapter,
    cursor: Cursor,
    until: Callable[[Sequence[ObservationBatch]], bool],
    timeout_seconds: float = 30.0,
) -> list[ObservationBatch]:
    """Read batches from `cursor` until `until(batches)` holds; TimeoutError if it never does."""
    batches: list[ObservationBatch] = []
    stream = adapter.observations(cursor)

    async def read() -> None:
        async for batch in stream:
            batches.append(batch)
            if until(batches):
                return

    try:
        await asyncio.wait_for(read(), timeout_seconds)
    finally:
        await _close(stream)
    return batches


class StreamFollower:
    """Reads an adapter's stream in a background task, for tests that act on the chain meanwhile.

    Create it inside a running event loop; `batches` grows as the stream delivers.
    """

    def __init__(self, adapter: ChainAdapter, cursor: Cursor) -> None:
        self.adapter = adapter
        self.batches: list[ObservationBatch] = []
        self.error: BaseException | None = None
        self._task = asyncio.ensure_future(self._follow(cursor))

    async def _follow(self, cursor: Cursor) -> None:
        try:
            async for batch in self.adapter.observations(cursor):
                self.batches.append(batch)
        except Exception as error:  # kept for the test to inspect
            self.error = error

    async def wait_until(self, condition: Callable[[Sequence[ObservationBatch]], bool], timeout_seconds: float = 30.0) -> None:
        """Return once `condition(batches)` holds; raise the stream's error or TimeoutError."""
        async with asyncio.timeout(timeout_seconds):
            while not condition(self.batches):
                if self.error is not None:
                    raise self.error
                await asyncio.sleep(0.02)

    async def wait_for_error(self, timeout_seconds: float = 30.0) -> BaseException:
        """Return the error the stream ended with."""
        async with asyncio.timeout(timeout_seconds):
            while self.error is None:
                await asyncio.sleep(0.02)
        return self.error

    async def stop(self) -> None:
        """Stop reading (bounded: see crossclear._tasks)."""
        await cancel_and_wait([self._task])


def reached(block_number: int) -> Callable[[Sequence[ObservationBatch]], bool]:
    """`until` condition: the stream delivered everything up to `block_number`."""
    return lambda batches: bool(batches) and batches[-1].cursor.block_number >= block_number


async def _close(stream: Any) -> None:
    closer: Callable[[], Awaitable[None]] | None = getattr(stream, "aclose", None)
    if closer is not None:
        await closer()


async def _with_adapter(harness: ConformanceHarness, use: Callable[[ChainAdapter], Awaitable[_T]]) -> _T:
    adapter = harness.new_adapter()
    try:
        await adapter.connect()
        return await use(adapter)
    finally:
        await adapter.close()


async def _stream_to_final(adapter: ChainAdapter, cursor: Cursor) -> list[ObservationBatch]:
    final = await adapter.finalized_head()
    return await collect_batches(adapter, cursor, reached(final.number))


class ChainAdapterConformance:
    """Subclass in a `Test...` class and provide a `harness` fixture (see the module docstring)."""

    @pytest.fixture
    def harness(self) -> ConformanceHarness:
        raise NotImplementedError("provide a `harness` fixture returning a ConformanceHarness")

    def test_identity(self, harness: ConformanceHarness) -> None:
        adapter = harness.new_adapter()
        assert isinstance(adapter, ChainAdapter)
        assert adapter.chain_id == harness.chain_id
        assert isinstance(adapter.network, str) and adapter.network
        run(adapter.close())

    def test_connect_reports_healthy(self, harness: ConformanceHarness) -> None:
        report = run(_with_adapter(harness, _connected_health))
        assert report.state is Health.OK

    def test_heads_are_ordered_blocks(self, harness: ConformanceHarness) -> None:
        head, final = run(_with_adapter(harness, _heads))
        assert 0 <= final.number <= head.number
        assert len(head.hash) == 32 and len(final.hash) == 32

    def test_deposit_is_observed_exactly_once(self, harness: ConformanceHarness) -> None:
        expected = harness.make_deposit()
        harness.finalize()
        batches = run(_with_adapter(harness, lambda adapter: _stream_to_final(adapter, harness.start_cursor())))
        observations = [o for batch in batches for o in batch.observations]
        deposits = [o for o in observations if isinstance(o, DepositObserved) and o.tx_hash == expected.tx_hash]
        assert len(deposits) == 1
        deposit = deposits[0]
        assert (deposit.account.lower(), deposit.asset.lower(), deposit.amount) == (
            expected.account.lower(),
            expected.asset.lower(),
            expected.amount,
        )
        assert deposit.chain_id == harness.chain_id
        assert len(deposit.block_hash) == 32 and len(deposit.tx_hash) == 32
        roots = [o for o in observations if isinstance(o, RootUpdated) and o.tx_hash == expected.tx_hash]
        assert len(roots) == 1
        assert roots[0].root == deposit.root and roots[0].leaf_count == deposit.leaf_index + 1

    def test_stream_is_ordered_with_unique_keys(self, harness: ConformanceHarness) -> None:
        harness.make_deposit()
        harness.make_deposit()
        harness.finalize()
        batches = run(_with_adapter(harness, lambda adapter: _stream_to_final(adapter, harness.start_cursor())))
        keys = [o.key for batch in batches for o in batch.observations]
        assert keys == sorted(keys)
        assert len(keys) == len(set(keys))
        for previous, batch in zip(batches, batches[1:]):
            assert batch.first_block == previous.cursor.block_number + 1
        for batch in batches:
            assert all(batch.first_block <= o.block_number <= batch.cursor.block_number for o in batch.observations)

    def test_resuming_from_any_cursor_neither_repeats_nor_skips(self, harness: ConformanceHarness) -> None:
        harness.make_deposit()
        harness.make_deposit()
        harness.finalize()
        full = run(_with_adapter(harness, lambda adapter: _stream_to_final(adapter, harness.start_cursor())))
        all_keys = [o.key for batch in full for o in batch.observations]
        end = full[-1].cursor.block_number
        # Resume from a delivered batch's cursor (with its hash), or mid-range when there was one batch.
        if len(full) >= 2:
            middle = full[(len(full) - 2) // 2].cursor
        else:
            middle = Cursor.before(harness.chain_id, (full[0].first_block + end) // 2 + 1)
        resumed = run(_with_adapter(harness, lambda adapter: collect_batches(adapter, middle, reached(end))))
        resumed_keys = [o.key for batch in resumed for o in batch.observations]
        assert resumed_keys == [key for key in all_keys if key.block_number > middle.block_number]

    def test_vault_root_matches_the_last_root_update(self, harness: ConformanceHarness) -> None:
        harness.make_deposit()
        harness.finalize()

        async def check(adapter: ChainAdapter) -> None:
            batches = await _stream_to_final(adapter, harness.start_cursor())
            updates = [o for batch in batches for o in batch.observations if isinstance(o, RootUpdated)]
            assert updates, "no RootUpdated observed after a deposit"
            last = updates[-1]
            state = await adapter.vault_root(last.block_number)
            assert (state.root, state.leaf_count) == (last.root, last.leaf_count)
            assert state.block.hash == last.block_hash

        run(_with_adapter(harness, check))

    def test_cursor_of_another_chain_is_refused(self, harness: ConformanceHarness) -> None:
        foreign = Cursor.genesis(harness.chain_id + 1)

        async def check(adapter: ChainAdapter) -> None:
            with pytest.raises(ChainAdapterError):
                await collect_batches(adapter, foreign, lambda batches: True, timeout_seconds=10)

        run(_with_adapter(harness, check))


async def _connected_health(adapter: ChainAdapter) -> Any:
    return adapter.health()


async def _heads(adapter: ChainAdapter) -> Any:
    return await adapter.head(), await adapter.finalized_head()
