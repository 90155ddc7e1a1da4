"""The public gRPC API against a real grpc.aio server on 127.0.0.1, answering from published
margin snapshots (what the processor publishes)."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crossclear.margin import InstrumentKind
from crossclear.node import ClearingState, PositionRecord
from crossclear.node.clearing import MarginSnapshot
from crossclear.rpc import ApiServer
from crossclear.v1 import margin_pb2, margin_pb2_grpc, node_pb2, node_pb2_grpc

from ..node.test_clearing import ALICE, BOB, CHAIN_A, CHAIN_B, make_state


def status() -> node_pb2.NodeStatus:
    return node_pb2.NodeStatus(version="test", connected_peers=3)


class Published:
    """The processor's part for the API: the latest snapshot, and a wake-up for streams."""

    def __init__(self, state: ClearingState) -> None:
        self.state = state
        self.snapshot: MarginSnapshot | None = state.publish()
        self.server: ApiServer | None = None

    def __call__(self) -> MarginSnapshot | None:
        return self.snapshot

    def publish(self) -> MarginSnapshot:
        snapshot = self.state.publish()
        self.snapshot = snapshot
        if self.server is not None:
            self.server.watch.notify(snapshot)
        return snapshot

    @property
    def height(self) -> int:
        assert self.snapshot is not None
        return self.snapshot.height


def run_with_server(published: Published, scenario: Callable[[grpc.aio.Channel, ApiServer], Awaitable[None]]) -> None:
    async def main() -> None:
        server = ApiServer(published, status)
        published.server = server
        port = await server.start(0)
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                await scenario(channel, server)
        finally:
            await server.stop(0)

    asyncio.run(main())


USDC_UNITS = 10**6
#: Heights the fresh state starts at: one per starting price (ETH, BTC, USDC, WETH, WBTC).
PRICED = 5
FUNDED = PRICED + 3


def funded_state() -> Published:
    state = make_state()
    assert state.height == PRICED
    state.set_collateral(ALICE, CHAIN_A, "USDC", 1000 * USDC_UNITS)
    state.set_position(ALICE, "a-1", PositionRecord(CHAIN_A, "ETH", InstrumentKind.PERP, 2.0, 3050.0))
    state.set_position(ALICE, "b-1", PositionRecord(CHAIN_B, "ETH", InstrumentKind.PERP, -2.0, 2980.0))
    return Published(state)


def test_get_margin_reports_every_figure() -> None:
    published = funded_state()

    async def scenario(channel: grpc.aio.Channel, server: ApiServer) -> None:
        stub = margin_pb2_grpc.MarginServiceStub(channel)
        reply = await stub.GetMargin(margin_pb2.GetMarginRequest(account=ALICE), timeout=5)
        assert reply.account == ALICE and reply.state_height == FUNDED
        assert reply.equity == pytest.approx(858.352341, abs=1e-6)
        assert reply.isolated.required == pytest.approx(1340.0)
        assert reply.portfolio.mm == pytest.approx(60.0) and reply.portfolio.required == pytest.approx(215.0)
        assert reply.HasField("health") and reply.health == pytest.approx(14.305872, abs=1e-6)
        assert [(c.chain_id, c.asset, c.amount_units, c.decimals, c.amount) for c in reply.collateral] == [(CHAIN_A, "USDC", "1000000000", 6, 1000.0)]
        assert [p.kind for p in reply.positions] == [margin_pb2.INSTRUMENT_KIND_PERP] * 2
        assert reply.prices_fresh and not reply.liquidatable and list(reply.stale_feeds) == []

    run_with_server(published, scenario)


def test_bad_requests_get_clear_status_codes() -> None:
    published = funded_state()

    async def scenario(channel: grpc.aio.Channel, server: ApiServer) -> None:
        stub = margin_pb2_grpc.MarginServiceStub(channel)
        cases = [
            (stub.GetMargin(margin_pb2.GetMarginRequest(account="alice")), grpc.StatusCode.INVALID_ARGUMENT, "20-byte hex address"),
            (stub.GetMargin(margin_pb2.GetMarginRequest(account=BOB)), grpc.StatusCode.NOT_FOUND, "unknown account"),
            (stub.SimulateMargin(margin_pb2.SimulateMarginRequest(account=ALICE, add_positions=[
                margin_pb2.Position(chain_id=1, underlying="ETH", kind=margin_pb2.INSTRUMENT_KIND_PERP, qty=math.nan)])),
             grpc.StatusCode.INVALID_ARGUMENT, "add_positions[0].qty must be a finite number"),
            (stub.SimulateMargin(margin_pb2.SimulateMarginRequest(account=ALICE, add_positions=[
                margin_pb2.Position(chain_id=1, underlying="DOGE", kind=margin_pb2.INSTRUMENT_KIND_PERP, qty=1)])),
             grpc.StatusCode.INVALID_ARGUMENT, "unknown underlying 'DOGE'"),
            (stub.SimulateMargin(margin_pb2.SimulateMarginRequest(account=ALICE, add_positions=[
                margin_pb2.Position(chain_id=1, underlying="ETH", qty=1)])),
             grpc.StatusCode.INVALID_ARGUMENT, "kind must be PERP, CALL or PUT"),
            (stub.SimulateMargin(margin_pb2.SimulateMarginRequest(account=ALICE, remove_collateral=[
                margin_pb2.CollateralRemoval(chain_id=CHAIN_A, asset="USDC", amount_units="5000000000")])),
             grpc.StatusCode.INVALID_ARGUMENT, "account holds 1000000000"),
            (stub.SimulateMargin(margin_pb2.SimulateMarginRequest(account=ALICE, remove_collateral=[
                margin_pb2.CollateralRemoval(chain_id=CHAIN_A, asset="USDC", amount_units="1")] * 65)),
             grpc.StatusCode.INVALID_ARGUMENT, "at most 64"),
            *[
                (stub.SimulateMargin(margin_pb2.SimulateMarginRequest(account=ALICE, remove_collateral=[
                    margin_pb2.CollateralRemoval(chain_id=CHAIN_A, asset="USDC", amount_units=units)])),
                 grpc.StatusCode.INVALID_ARGUMENT, f"remove_collateral[0].amount_units must be {what}")
                for units, what in [("", "a positive decimal integer"), ("1.5", "a positive decimal integer"), ("-1", "a positive decimal integer"),
                                    ("1e6", "a positive decimal integer"), ("²", "a positive decimal integer"), ("9" * 79, "a positive decimal integer"),
                                    ("0", "positive"), ("000", "positive")]
            ],
            (stub.SimulateMargin(margin_pb2.SimulateMarginRequest(account=ALICE, remove_collateral=[
                margin_pb2.CollateralRemoval(chain_id=CHAIN_A, asset="", amount_units="1")])),
             grpc.StatusCode.INVALID_ARGUMENT, "remove_collateral[0].asset must be 1 to 64 characters"),
            (stub.GetMargin(margin_pb2.GetMarginRequest(account="0x" + "a" * 2_000_000)),
             grpc.StatusCode.RESOURCE_EXHAUSTED, ""),
        ]
        for call, code, fragment in cases:
            with pytest.raises(grpc.aio.AioRpcError) as error:
                await call
            assert error.value.code() == code
            assert fragment in (error.value.details() or "")
        assert published.state.height == FUNDED and published.height == FUNDED  # nothing a bad request did changed the state

    run_with_server(published, scenario)


def test_a_node_still_loading_says_so() -> None:
    async def main() -> None:
        server = ApiServer(lambda: None, status)
        port = await server.start(0)
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = margin_pb2_grpc.MarginServiceStub(channel)
                for call in (stub.GetMargin(margin_pb2.GetMarginRequest(account=ALICE), timeout=5),
                             stub.SimulateMargin(margin_pb2.SimulateMarginRequest(account=ALICE), timeout=5)):
                    with pytest.raises(grpc.aio.AioRpcError) as error:
                        await call
                    assert "still loading its clearing state" in (error.value.details() or "")
                reply = await node_pb2_grpc.NodeServiceStub(channel).GetStatus(node_pb2.GetNodeStatusRequest(), timeout=5)
                assert reply.version == "test"
        finally:
            await server.stop(0)

    asyncio.run(main())


def test_simulation_answers_without_storing() -> None:
    published = funded_state()

    async def scenario(channel: grpc.aio.Channel, server: ApiServer) -> None:
        stub = margin_pb2_grpc.MarginServiceStub(channel)
        reply = await stub.SimulateMargin(margin_pb2.SimulateMarginRequest(
            account=ALICE,
            add_positions=[margin_pb2.Position(chain_id=CHAIN_B, underlying="ETH", kind=margin_pb2.INSTRUMENT_KIND_PERP, qty=-1, entry=3000)],
            remove_collateral=[margin_pb2.CollateralRemoval(chain_id=CHAIN_A, asset="USDC", amount_units="500000000")],
        ), timeout=5)
        assert len(reply.positions) == 3 and reply.collateral[0].amount == pytest.approx(500.0)
        assert reply.collateral[0].amount_units == "500000000"
        # Removing one base unit is exact, not lost in a float.
        exact = await stub.SimulateMargin(margin_pb2.SimulateMarginRequest(
            account=ALICE, remove_collateral=[margin_pb2.CollateralRemoval(chain_id=CHAIN_A, asset="USDC", amount_units="1")],
        ), timeout=5)
        assert exact.collateral[0].amount_units == "999999999"
        assert (await stub.GetMargin(margin_pb2.GetMarginRequest(account=ALICE))).collateral[0].amount == 1000.0
        assert published.state.height == FUNDED and published.height == FUNDED

    run_with_server(published, scenario)


def test_stream_pushes_on_change() -> None:
    published = funded_state()
    state = published.state
    state.set_collateral(BOB, CHAIN_B, "USDC", 1 * USDC_UNITS)
    published.publish()
    base = FUNDED + 1

    async def scenario(channel: grpc.aio.Channel, server: ApiServer) -> None:
        stub = margin_pb2_grpc.MarginServiceStub(channel)
        stream = stub.StreamMargin(margin_pb2.StreamMarginRequest(account=ALICE), timeout=10)
        first = await stream.read()
        assert first.state_height == base
        state.set_collateral(ALICE, CHAIN_B, "USDC", 500 * USDC_UNITS)
        await asyncio.to_thread(published.publish)
        second = await asyncio.wait_for(stream.read(), 3)
        assert second.state_height == base + 1 and len(second.collateral) == 2
        state.set_price("ETH", 2900.0, 1e12)
        await asyncio.to_thread(published.publish)
        third = await asyncio.wait_for(stream.read(), 3)
        assert third.state_height == base + 2 and third.portfolio.mm == pytest.approx(0.005 * 4 * 2900)
        stream.cancel()

        everyone = stub.StreamMargin(margin_pb2.StreamMarginRequest(), timeout=10)
        seen = {(await everyone.read()).account for _ in range(2)}
        assert seen == {ALICE, BOB}
        # Then only what changed: a change to BOB pushes BOB alone.
        state.set_collateral(BOB, CHAIN_B, "USDC", 2 * USDC_UNITS)
        await asyncio.to_thread(published.publish)
        pushed = await asyncio.wait_for(everyone.read(), 3)
        assert (pushed.account, pushed.state_height) == (BOB, base + 3)
        everyone.cancel()

    run_with_server(published, scenario)


def test_a_change_to_another_account_pushes_nothing_for_this_one() -> None:
    published = funded_state()
    state = published.state
    state.set_collateral(BOB, CHAIN_B, "USDC", 1 * USDC_UNITS)
    published.publish()

    async def scenario(channel: grpc.aio.Channel, server: ApiServer) -> None:
        stub = margin_pb2_grpc.MarginServiceStub(channel)
        stream = stub.StreamMargin(margin_pb2.StreamMarginRequest(account=ALICE), timeout=10)
        assert (await stream.read()).state_height == FUNDED + 1
        state.set_collateral(BOB, CHAIN_B, "USDC", 2 * USDC_UNITS)
        await asyncio.to_thread(published.publish)
        await asyncio.sleep(0.5)  # the stream has seen BOB's snapshot
        state.set_price("ETH", 2900.0, 1e12)
        await asyncio.to_thread(published.publish)
        pushed = await asyncio.wait_for(stream.read(), 3)
        assert pushed.state_height == FUNDED + 3
        stream.cancel()

    run_with_server(published, scenario)


def test_health_reflection_and_status() -> None:
    async def scenario(channel: grpc.aio.Channel, server: ApiServer) -> None:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "crossclear.v1.MarginService", "crossclear.v1.NodeService"):
            reply = await health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        reflect = reflection_pb2_grpc.ServerReflectionStub(channel)

        async def ask() -> AsyncIterator[reflection_pb2.ServerReflectionRequest]:
            yield reflection_pb2.ServerReflectionRequest(list_services="")

        async for answer in reflect.ServerReflectionInfo(ask(), timeout=5):
            names = {service.name for service in answer.list_services_response.service}
            assert {"crossclear.v1.MarginService", "crossclear.v1.NodeService", "grpc.health.v1.Health"} <= names
            break
        reply = await node_pb2_grpc.NodeServiceStub(channel).GetStatus(node_pb2.GetNodeStatusRequest(), timeout=5)
        assert reply.version == "test" and reply.connected_peers == 3

    run_with_server(funded_state(), scenario)


positions = st.builds(
    margin_pb2.Position,
    position_id=st.text(max_size=80),
    chain_id=st.integers(0, 2**64 - 1),
    underlying=st.sampled_from(["ETH", "BTC", "", "X" * 100]) | st.text(max_size=10),
    kind=st.integers(0, 5),
    qty=st.floats(allow_nan=True, allow_infinity=True),
    entry=st.floats(allow_nan=True, allow_infinity=True),
    strike=st.floats(allow_nan=True, allow_infinity=True),
    expiry_timestamp=st.floats(allow_nan=True, allow_infinity=True),
)
removals = st.builds(
    margin_pb2.CollateralRemoval,
    chain_id=st.integers(0, 2**64 - 1),
    asset=st.sampled_from(["USDC", "WETH", ""]) | st.text(max_size=70),
    amount_units=st.sampled_from(["", "0", "1", "1000000000", "1000000001", "-1", "1.5", "1e9", "9" * 78, "9" * 79, "²"])
    | st.integers(0, 2**256).map(str)
    | st.text(max_size=90),
)
accounts = st.sampled_from([ALICE, BOB, "", "0x", ALICE.upper(), "0x" + "g" * 40]) | st.text(max_size=50)


def test_fuzzed_requests_never_break_the_server() -> None:
    published = funded_state()
    failures: list[Any] = []

    async def scenario(channel: grpc.aio.Channel, server: ApiServer) -> None:
        stub = margin_pb2_grpc.MarginServiceStub(channel)
        loop = asyncio.get_running_loop()

        @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
        @given(account=accounts, add=st.lists(positions, max_size=4), remove=st.lists(removals, max_size=4), which=st.integers(0, 1))
        def fuzz(account: str, add: list[Any], remove: list[Any], which: int) -> None:
            async def call() -> None:
                try:
                    if which == 0:
                        await stub.GetMargin(margin_pb2.GetMarginRequest(account=account), timeout=5)
                    else:
                        await stub.SimulateMargin(margin_pb2.SimulateMarginRequest(account=account, add_positions=add, remove_collateral=remove), timeout=5)
                except grpc.aio.AioRpcError as error:
                    if error.code() not in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND):
                        failures.append((account, add, remove, error.code(), error.details()))

            asyncio.run_coroutine_threadsafe(call(), loop).result(10)

        await asyncio.to_thread(fuzz)
        health = health_pb2_grpc.HealthStub(channel)
        assert (await health.Check(health_pb2.HealthCheckRequest(), timeout=5)).status == health_pb2.HealthCheckResponse.SERVING
        assert published.state.height == FUNDED and published.height == FUNDED

    run_with_server(published, scenario)
    assert failures == []
