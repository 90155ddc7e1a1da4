"""Test helpers for the dashboard: a fake node (a real gRPC server with canned answers, so the
dashboard's logic is tested without a devnet), the dashboard served from a thread, and a
headless Chromium driven through Debian's chromium-driver."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import grpc
import uvicorn

from crossclear.dash.app import create_app
from crossclear.dash.config import DashConfig
from crossclear.v1 import (
    liquidation_pb2,
    liquidation_pb2_grpc,
    margin_pb2,
    margin_pb2_grpc,
    node_pb2,
    node_pb2_grpc,
)

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "build" / "screenshots"
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ALICE = "0x" + "a1" * 20


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def margin_of(account: str, usdc_units: int = 10_000 * 10**6, height: int = 7) -> margin_pb2.AccountMargin:
    """A plausible AccountMargin: USDC on chain 31001, one ETH perp, the four modes."""
    usdc = usdc_units / 10**6
    margin = margin_pb2.AccountMargin(
        account=account, equity=usdc * 0.998 + 150.0, collateral_value=usdc * 0.998, upnl=150.0, liquidatable=False,
        state_height=height, prices_fresh=True,
    )
    margin.collateral.add(chain_id=31001, asset="USDC", amount=usdc, price=1.0, haircut=0.002, value=usdc * 0.998, amount_units=str(usdc_units), decimals=6)
    margin.positions.add(position_id="p1", chain_id=31001, underlying="ETH", kind=margin_pb2.INSTRUMENT_KIND_PERP, qty=1.5, entry=3000.0, mark=3100.0, upnl=150.0)
    for index, mode in enumerate(("isolated", "cross_siloed", "cross", "portfolio")):
        getattr(margin, mode).im = 900.0 - 100 * index
        getattr(margin, mode).mm = 450.0 - 50 * index
        getattr(margin, mode).required = 900.0 - 100 * index
    margin.health = margin.equity / margin.portfolio.mm
    return margin


class FakeNode:
    """A gRPC server answering NodeService, MarginService and LiquidationService from fields
    a test may change while it runs. Runs its own event loop on a thread."""

    def __init__(self, name: str = "fake-0") -> None:
        self.name = name
        self.port = free_port()
        self.accounts: dict[str, margin_pb2.AccountMargin] = {ALICE: margin_of(ALICE)}
        self.simulated: list[margin_pb2.SimulateMarginRequest] = []
        self.certificates = 10
        self.seize_orders: list[liquidation_pb2.SignedSeizeOrder] = []
        self.close_outs: list[liquidation_pb2.SignedCloseOut] = []
        self._changed: asyncio.Event | None = None
        self._loop = asyncio.new_event_loop()
        self._server: grpc.aio.Server | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> FakeNode:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._serve(), self._loop).result(10)
        return self

    def stop(self) -> None:
        if self._server is not None:
            asyncio.run_coroutine_threadsafe(self._server.stop(0), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def put(self, margin: margin_pb2.AccountMargin) -> None:
        """Add or change an account; streams push it."""

        def change() -> None:
            self.accounts[margin.account] = margin
            assert self._changed is not None
            self._changed.set()

        self._loop.call_soon_threadsafe(change)

    async def _serve(self) -> None:
        self._changed = asyncio.Event()
        server = grpc.aio.server()
        node = self

        class Status(node_pb2_grpc.NodeServiceServicer):
            async def GetStatus(self, request: Any, context: Any) -> node_pb2.NodeStatus:
                status = node_pb2.NodeStatus(
                    version="0.1.0", node_address="0x" + "0b" * 20, connected_peers=3, certificate_count=node.certificates,
                    state_height=7, accounts=len(node.accounts),
                )
                status.chains.add(chain_id=31001, network="devnet-a", head=120, finalized=118, finality="2 confirmations", health="ok", applied_block=118, chain_time=int(time.time()))
                status.feeds.add(name="ETH", price=3100.0, updated_at=time.time(), heartbeat_seconds=3600, stale=False)
                return status

        class Margin(margin_pb2_grpc.MarginServiceServicer):
            async def GetMargin(self, request: margin_pb2.GetMarginRequest, context: Any) -> margin_pb2.AccountMargin:
                margin = node.accounts.get(request.account.lower())
                if margin is None:
                    await context.abort(grpc.StatusCode.NOT_FOUND, f"unknown account {request.account}")
                return margin

            async def StreamMargin(self, request: margin_pb2.StreamMarginRequest, context: Any) -> Any:
                sent: dict[str, bytes] = {}
                assert node._changed is not None
                while True:
                    for account, margin in list(node.accounts.items()):
                        if request.account and request.account.lower() != account:
                            continue
                        if sent.get(account) != margin.SerializeToString():
                            sent[account] = margin.SerializeToString()
                            yield margin
                    node._changed.clear()
                    await node._changed.wait()

            async def SimulateMargin(self, request: margin_pb2.SimulateMarginRequest, context: Any) -> margin_pb2.AccountMargin:
                node.simulated.append(request)
                if any(p.underlying == "DOGE" for p in request.add_positions):
                    await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "unknown underlying 'DOGE'")
                after = margin_pb2.AccountMargin()
                after.CopyFrom(node.accounts[request.account.lower()])
                after.portfolio.required += 500.0
                return after

        class Liquidations(liquidation_pb2_grpc.LiquidationServiceServicer):
            async def ListSeizeOrders(self, request: Any, context: Any) -> liquidation_pb2.ListSeizeOrdersResponse:
                return liquidation_pb2.ListSeizeOrdersResponse(orders=node.seize_orders)

            async def ListCloseOuts(self, request: Any, context: Any) -> liquidation_pb2.ListCloseOutsResponse:
                return liquidation_pb2.ListCloseOutsResponse(orders=node.close_outs)

        node_pb2_grpc.add_NodeServiceServicer_to_server(Status(), server)
        margin_pb2_grpc.add_MarginServiceServicer_to_server(Margin(), server)
        liquidation_pb2_grpc.add_LiquidationServiceServicer_to_server(Liquidations(), server)
        server.add_insecure_port(self.address)
        await server.start()
        self._server = server


class ServedDash:
    """The dashboard app served by uvicorn on a thread of this process."""

    def __init__(self, config: DashConfig) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(create_app(config), host="127.0.0.1", port=self.port, log_level="warning", timeout_graceful_shutdown=1))
        self._thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> ServedDash:
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert self._thread.is_alive() and time.monotonic() < deadline, "the dashboard did not start"
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(15)


@contextmanager
def served(config: DashConfig) -> Iterator[ServedDash]:
    dash = ServedDash(config).start()
    try:
        yield dash
    finally:
        dash.stop()


def get_json(url: str, data: bytes | None = None) -> tuple[int, Any]:
    """(status, JSON body) of a GET, or of a POST when `data` is given."""
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"} if data is not None else {})
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def first_event(url: str, timeout: float = 10.0) -> tuple[str, Any]:
    """The first named event of a server-sent event stream."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        assert response.headers["Content-Type"].startswith("text/event-stream")
        event = None
        for raw in response:
            line = raw.decode().rstrip("\n")
            if line.startswith("event: "):
                event = line.removeprefix("event: ")
            elif line.startswith("data: ") and event:
                return event, json.loads(line.removeprefix("data: "))
    raise AssertionError(f"{url}: the stream ended without an event")


def eventually(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.1) -> Any:
    """Call `check` until it returns something truthy; fail naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except Exception as error:  # a page mid-redraw: try again
            last = error
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")


def browser_available() -> bool:
    return CHROMIUM.exists() and CHROMEDRIVER.exists()


def require_browser() -> None:
    """Skip where Debian's chromium is absent (make test installs it); fail in CI."""
    import pytest

    if browser_available():
        return
    message = "Debian's chromium and chromium-driver are not installed (make test installs them)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def start_browser(width: int = 1400, height: int = 1000) -> Any:
    """Headless Debian Chromium through chromium-driver (no browser download, no Selenium Manager)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", f"--window-size={width},{height}", "--hide-scrollbars", "--lang=en-US"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    return driver


def screenshot(driver: Any, name: str, full_page: bool = True) -> Path:
    """Save build/screenshots/NAME.png (the whole page when `full_page`)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    size = driver.get_window_size()
    if full_page:
        height = int(driver.execute_script("return Math.max(document.body.scrollHeight, document.documentElement.scrollHeight)"))
        driver.set_window_size(size["width"], min(max(height + 10, 600), 4000))
        time.sleep(0.3)
    driver.save_screenshot(str(path))
    if full_page:
        driver.set_window_size(size["width"], size["height"])
    return path


def copy_for_docs(path: Path, name: str) -> None:
    """Keep a screenshot for the README when CROSSCLEAR_DOCS_SCREENSHOTS=1 (docs/dashboard/)."""
    if os.environ.get("CROSSCLEAR_DOCS_SCREENSHOTS") == "1":
        target = REPO / "docs" / "dashboard" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
