"""The dashboard in a real headless Chromium (Debian's, through chromium-driver) against a real
devnet: `crossclear devnet up` starts the chains, four node processes, the liquidator and the
dashboard; `crossclear demo` plays its story while the pages are open.

One devnet and one browser serve the whole module; the tests run in file order (the node is
killed last). Screenshots go to build/screenshots/ (CROSSCLEAR_DOCS_SCREENSHOTS=1 also copies
the README's into docs/dashboard/).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from crossclear.dash.config import DashConfig, NodeTarget
from crossclear.rpc.client import get_margin
from crossclear.v1 import margin_pb2, margin_pb2_grpc
from tests.dash.harness import copy_for_docs, eventually, free_port, require_browser, screenshot, served, start_browser

pytestmark = pytest.mark.slow
COMMAND = [sys.executable, "-m", "crossclear"]
UP_TIMEOUT_SECONDS = 180
DEMO_TIMEOUT_SECONDS = 300
MODES = ("isolated", "cross_siloed", "cross", "portfolio")


@dataclass
class Devnet:
    state: Path
    environment: dict[str, str]
    manifest: dict[str, Any]
    url: str
    up_log: Path

    def node(self, name: str) -> dict[str, Any]:
        return next(node for node in self.manifest["nodes"] if node["name"] == name)


@dataclass
class Demo:
    process: subprocess.Popen[bytes]
    log: Path

    def text(self) -> str:
        return self.log.read_text()

    def alice(self) -> str:
        match = eventually(lambda: re.search(r"Alice is (0x[0-9a-fA-F]{40})", self.text()), 60, "the demo to name Alice")
        return match.group(1)


@pytest.fixture(scope="module")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devnet]:
    require_browser()
    directory = tmp_path_factory.mktemp("dash-devnet")
    state = directory / "state"
    environment = dict(os.environ, CROSSCLEAR_DEVNET_STATE=str(state), PYTHONUNBUFFERED="1")
    up_log = directory / "up.log"
    with up_log.open("w") as log:
        up = subprocess.Popen([*COMMAND, "devnet", "up", "--chains", "2", "--dash-port", "0"], stdout=log, stderr=subprocess.STDOUT, env=environment)
    try:
        deadline = time.monotonic() + UP_TIMEOUT_SECONDS
        while "running; Ctrl-C" not in up_log.read_text():
            assert up.poll() is None, up_log.read_text()
            assert time.monotonic() < deadline, "devnet up did not come up in time:\n" + up_log.read_text()
            time.sleep(0.25)
        manifest = json.loads((state / "devnet.json").read_text())
        match = re.search(r"^dashboard: (http://127\.0\.0\.1:\d+/) \(pid \d+\)$", up_log.read_text(), re.MULTILINE)
        assert match, "devnet up printed no dashboard URL:\n" + up_log.read_text()
        yield Devnet(state, environment, manifest, match.group(1).rstrip("/"), up_log)
    finally:
        down = subprocess.run([*COMMAND, "devnet", "down"], capture_output=True, text=True, env=environment, timeout=120)
        up.wait(timeout=60)
        assert down.returncode == 0, down.stderr
    dash_pid = manifest["dash"]["pid"]
    time.sleep(0.5)
    assert not Path(f"/proc/{dash_pid}").exists() or Path(f"/proc/{dash_pid}/stat").read_text().split()[2] == "Z", "the dashboard outlived the devnet"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    require_browser()
    driver = start_browser()
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def demo(devnet: Devnet, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    log_path = tmp_path_factory.mktemp("dash-demo") / "demo.log"
    with log_path.open("w") as log:
        process = subprocess.Popen([*COMMAND, "demo"], stdout=log, stderr=subprocess.STDOUT, env=devnet.environment)
    try:
        yield Demo(process, log_path)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)


def _css(driver: Any, selector: str) -> list[Any]:
    """Elements, for typing and clicking (forms are not redrawn; tables are: read them with _read)."""
    from selenium.webdriver.common.by import By

    return list(driver.find_elements(By.CSS_SELECTOR, selector))


_READ = """
const [selector, attributes] = arguments;
return Array.from(document.querySelectorAll(selector)).map(element => {
  const out = {text: element.textContent, hidden: element.hidden};
  for (const name of attributes) out[name] = element.getAttribute(name);
  return out;
});
"""


def _read(driver: Any, selector: str, *attributes: str) -> list[dict[str, Any]]:
    """Every element matching `selector`, read in one script: its text, whether it is hidden,
    and the attributes asked for. The pages redraw tables on every event, so element handles
    go stale; one script reads one consistent state."""
    return list(driver.execute_script(_READ, selector, list(attributes)))


def _count(driver: Any, selector: str) -> int:
    return len(_read(driver, selector))


def _value(driver: Any, selector: str) -> float | None:
    found = _read(driver, selector, "data-value")
    if not found or found[0]["data-value"] in (None, ""):
        return None
    return float(found[0]["data-value"])


def _message(driver: Any, selector: str = "#message") -> str:
    found = _read(driver, selector)
    return "" if not found or found[0]["hidden"] else str(found[0]["text"]).strip()


def _no_traceback(driver: Any) -> None:
    source = driver.page_source
    assert "Traceback" not in source and 'File "' not in source


# ---- the tests, in the order a person would meet them ----------------------------------------


def test_devnet_up_starts_the_dashboard_and_the_cli_finds_a_node(devnet: Devnet) -> None:
    assert devnet.manifest["dash"]["url"].rstrip("/") == devnet.url
    status = subprocess.run([*COMMAND, "status"], capture_output=True, text=True, env=devnet.environment, timeout=60)
    assert status.returncode == 0, status.stderr
    assert f"using node-0 at {devnet.node('node-0')['rpc']}" in status.stderr and "chain devnet-a" in status.stdout


def test_node_set_page_shows_four_nodes(devnet: Devnet, browser: Any) -> None:
    browser.get(devnet.url + "/")
    rows = eventually(
        lambda: (r := _read(browser, "#node-table tr.node-row", "data-node", "data-state")) and len(r) == 4 and all(row["data-state"] == "ok" for row in r) and r,
        30, "four nodes up",
    )
    assert [row["data-node"] for row in rows] == ["node-0", "node-1", "node-2", "node-3"]
    assert _value(browser, '[data-field="nodes-up"]') == 4
    # Every node follows both chains, live.
    assert _count(browser, "#chain-table tr[data-chain]") == 8
    heads = [row["text"] for row in _read(browser, '#chain-table [data-field="head"]')]
    eventually(lambda: [row["text"] for row in _read(browser, '#chain-table [data-field="head"]')] != heads, 10, "chain heads to move")
    _no_traceback(browser)
    screenshot(browser, "node-set")


def test_a_claim_appears_live_without_a_reload(devnet: Devnet, browser: Any, demo: Demo) -> None:
    browser.get(devnet.url + "/accounts")
    loaded = browser.execute_script("return window.__dashLoadedAt")
    eventually(lambda: browser.execute_script("return window.__dashUpdates") >= 1, 20, "the first accounts update")
    before = {row["data-account"] for row in _read(browser, "#accounts-table tr[data-account]", "data-account")}
    alice = demo.alice().lower()
    assert alice not in before
    row = f'#accounts-table tr[data-account="{alice}"]'
    # The demo proves and submits Alice's claims now; her row appears by itself.
    eventually(lambda: (_value(browser, row + ' [data-field="collateral_value"]') or 0) > 0, 120, "Alice's credited claim on the page")
    assert browser.execute_script("return window.__dashLoadedAt") == loaded, "the page reloaded"
    screenshot(browser, "accounts-live-claim")
    # Her account page follows her second claim (WETH on the other chain) live too.
    browser.get(devnet.url + f"/accounts?address={alice}")
    loaded = browser.execute_script("return window.__dashLoadedAt")
    eventually(lambda: _count(browser, "#collateral-table tr[data-asset]") == 2, 120, "both of Alice's claims on her page")
    assert browser.execute_script("return window.__dashLoadedAt") == loaded


def _margin(devnet: Devnet, node: str, account: str) -> margin_pb2.AccountMargin:
    return asyncio.run(get_margin(devnet.node(node)["rpc"], account))


def test_an_accounts_margin_on_the_page_equals_get_margin(devnet: Devnet, browser: Any, demo: Demo) -> None:
    alice = demo.alice().lower()
    browser.get(devnet.url + f"/accounts?address={alice}")

    def matches() -> bool:
        detail = _read(browser, "#account-detail", "data-node", "data-state-height")[0]
        node, height = detail["data-node"], detail["data-state-height"]
        if not node or not height:
            return False
        margin = _margin(devnet, node, alice)
        if str(margin.state_height) != height:
            return False  # the demo moved the state on; compare at one height
        figures = {"equity": margin.equity, "collateral_value": margin.collateral_value, "upnl": margin.upnl}
        for mode in MODES:
            for kind in ("im", "mm", "required"):
                figures[f"{mode}.{kind}"] = getattr(getattr(margin, mode), kind)
        page = browser.execute_script(
            """const out = {height: document.querySelector('#account-detail').getAttribute('data-state-height'), fields: {}, holdings: {}};
            for (const e of document.querySelectorAll('#account-detail [data-field]')) if (!e.closest('#collateral-table, #positions-table, #whatif-result')) out.fields[e.getAttribute('data-field')] = e.getAttribute('data-value');
            for (const row of document.querySelectorAll('#collateral-table tr[data-asset]')) {
              const cells = {};
              for (const e of row.querySelectorAll('[data-field]')) cells[e.getAttribute('data-field')] = e.getAttribute('data-value');
              out.holdings[row.getAttribute('data-chain') + '/' + row.getAttribute('data-asset')] = cells;
            }
            return out;"""
        )
        if page["height"] != height:
            return False  # redrawn in between: read again
        for field, expected in figures.items():
            assert float(page["fields"][field]) == expected, field
        assert (page["fields"]["liquidatable"] == "true") == margin.liquidatable
        assert len(page["holdings"]) == len(margin.collateral)
        for holding in margin.collateral:
            cells = page["holdings"][f"{holding.chain_id}/{holding.asset}"]
            assert cells["amount_units"] == holding.amount_units
            assert float(cells["value"]) == holding.value and float(cells["haircut"]) == holding.haircut
        return True

    eventually(matches, 60, "the page and GetMargin at the same state height", interval=0.3)
    screenshot(browser, "account")


def test_the_what_if_form_returns_the_simulated_figures(devnet: Devnet, browser: Any, demo: Demo) -> None:
    from selenium.webdriver.common.by import By

    alice = demo.alice().lower()
    browser.get(devnet.url + f"/accounts?address={alice}")
    from selenium.webdriver.support.ui import Select

    eventually(lambda: _count(browser, "#position-rows .row") and not _read(browser, "#account-detail")[0]["hidden"], 30, "the what-if form")
    chain_a = devnet.manifest["chains"][0]["chain_id"]
    position = _css(browser, "#position-rows .row")[0]
    Select(position.find_element(By.NAME, "chain_id")).select_by_value(str(chain_a))
    position.find_element(By.NAME, "underlying").clear()
    position.find_element(By.NAME, "underlying").send_keys("ETH")
    position.find_element(By.NAME, "qty").send_keys("-3")
    position.find_element(By.NAME, "entry").send_keys("3000")
    removal = _css(browser, "#removal-rows .row")[0]
    Select(removal.find_element(By.NAME, "chain_id")).select_by_value(str(chain_a))
    removal.find_element(By.NAME, "asset").clear()
    removal.find_element(By.NAME, "asset").send_keys("USDC")
    removal.find_element(By.NAME, "amount").send_keys("1000")
    request = margin_pb2.SimulateMarginRequest(
        account=alice,
        add_positions=[margin_pb2.Position(chain_id=chain_a, underlying="ETH", kind=margin_pb2.INSTRUMENT_KIND_PERP, qty=-3.0, entry=3000.0)],
        remove_collateral=[margin_pb2.CollateralRemoval(chain_id=chain_a, asset="USDC", amount_units=str(1000 * 10**6))],
    )

    async def simulate(node: str) -> margin_pb2.AccountMargin:
        import grpc

        async with grpc.aio.insecure_channel(devnet.node(node)["rpc"]) as channel:
            reply: margin_pb2.AccountMargin = await margin_pb2_grpc.MarginServiceStub(channel).SimulateMargin(request, timeout=30)
            return reply

    def same_figures() -> bool:
        _css(browser, "#simulate")[0].click()
        result = eventually(lambda: (r := _read(browser, "#whatif-result", "data-node", "data-state-height")[0]) and not r["hidden"] and r["data-state-height"] and r, 30, "the what-if answer")
        assert _message(browser, "#whatif-message") == ""
        expected = asyncio.run(simulate(result["data-node"]))
        if str(expected.state_height) != result["data-state-height"]:
            return False
        assert _value(browser, '[data-field="after.equity"]') == expected.equity
        for mode in MODES:
            assert _value(browser, f'[data-field="after.{mode}.required"]') == getattr(expected, mode).required, mode
            assert _value(browser, f'[data-field="after.{mode}.mm"]') == getattr(expected, mode).mm, mode
        assert "remove 1000000000 base units of USDC" in _read(browser, "#whatif-described")[0]["text"]
        return True

    eventually(same_figures, 90, "the page's what-if to equal SimulateMargin at one state height", interval=0.5)
    screenshot(browser, "what-if")


def test_bad_input_gives_a_clear_message_never_a_traceback(devnet: Devnet, browser: Any, demo: Demo) -> None:
    from selenium.webdriver.common.by import By

    def message() -> str:
        return _message(browser)

    browser.get(devnet.url + "/accounts?address=" + "0x" + "12" * 20)
    assert "knows no account 0x" + "12" * 20 in eventually(message, 20, "the unknown-account message")
    browser.get(devnet.url + "/accounts?address=0x12")
    assert "'0x12' is not an account address" in eventually(message, 20, "the malformed-address message")
    _no_traceback(browser)
    browser.get(devnet.url + f"/accounts?address={demo.alice().lower()}")
    eventually(lambda: _count(browser, "#position-rows .row"), 30, "the what-if form")
    _css(browser, "#position-rows .row")[0].find_element(By.NAME, "qty").send_keys("lots")
    _css(browser, "#simulate")[0].click()
    text = eventually(lambda: _message(browser, "#whatif-message"), 20, "the what-if message")
    assert text == "position 1: qty must be a number, got 'lots'"
    _no_traceback(browser)
    screenshot(browser, "bad-what-if")
    # A dashboard whose only node is unreachable says so on every page.
    with served(DashConfig(nodes=(NodeTarget(name="gone", rpc=f"127.0.0.1:{free_port()}"),), poll_seconds=0.5)) as lonely:
        browser.get(lonely.url + "/")
        eventually(lambda: _count(browser, 'tr.node-row[data-node="gone"][data-state="down"]'), 20, "the unreachable node shown down")
        assert "is unreachable" in _read(browser, 'tr.node-row[data-node="gone"] [data-field="error"]')[0]["text"]
        browser.get(lonely.url + f"/accounts?address={demo.alice().lower()}")
        assert "no node answers" in eventually(message, 20, "the no-node message")
        _no_traceback(browser)
        browser.get("about:blank")  # close the event streams before that dashboard stops


def _executed_on_chain(devnet: Devnet) -> dict[str, str]:
    """Transaction hash to kind of every vault payout and market close-out, read from the chains."""
    from web3 import HTTPProvider, Web3

    from crossclear.chains.artifacts import load_artifact

    found: dict[str, str] = {}
    for chain in devnet.manifest["chains"]:
        web3 = Web3(HTTPProvider(chain["rpc_url"]))
        contracts = chain["contracts"]
        vault = web3.eth.contract(address=Web3.to_checksum_address(contracts["vault"]), abi=list(load_artifact("CollateralVault").abi))
        for kind, event in (("seize", vault.events.Seized), ("release", vault.events.Released)):
            for log in event.get_logs(from_block=contracts["deploy_block"]):
                found[log["transactionHash"].to_0x_hex()] = kind
        market = web3.eth.contract(address=Web3.to_checksum_address(contracts["market"]), abi=list(load_artifact("Market").abi))
        if hasattr(market.events, "Traded"):
            for log in market.events.Traded.get_logs(from_block=contracts["deploy_block"]):
                if any(bytes(log["args"].get("closeOutId", b"\0" * 32))):
                    found[log["transactionHash"].to_0x_hex()] = "close-out"
    return found


def test_orders_and_capital_efficiency_follow_the_demo(devnet: Devnet, browser: Any, demo: Demo) -> None:
    try:
        demo.process.wait(timeout=DEMO_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        pytest.fail("the demo did not finish:\n" + demo.text())
    output = demo.text()
    assert demo.process.returncode == 0 and "demo complete" in output, output
    executed = _executed_on_chain(devnet)
    assert "release" in executed.values(), f"the demo paid no withdrawal: {executed}"
    browser.get(devnet.url + "/orders")
    names = {node["name"] for node in devnet.manifest["nodes"]}
    for transaction, kind in executed.items():
        row = eventually(lambda: _read(browser, f'#executed-table tr[data-tx="{transaction}"]', "data-kind"), 30, f"the executed {kind} {transaction}")[0]
        assert row["data-kind"] == kind
        signers = [line["text"].split(":")[0] for line in _read(browser, f'#executed-table tr[data-tx="{transaction}"] .sig')]
        assert len(signers) >= devnet.manifest["node_set"]["threshold"] and set(signers) <= names, (kind, signers)
    _no_traceback(browser)
    screenshot(browser, "orders")
    browser.get(devnet.url + "/efficiency")
    eventually(lambda: (_value(browser, '[data-field="freed"]') or 0) > 0, 30, "collateral freed by portfolio margin")
    assert _count(browser, '#efficiency-chart rect[data-series="portfolio"]')
    copy_for_docs(screenshot(browser, "capital-efficiency"), "capital-efficiency.png")


def test_the_risk_page_renders_the_backtest_report(devnet: Devnet, browser: Any) -> None:
    report = json.loads((Path(__file__).resolve().parents[2] / "docs" / "risk-v2" / "report.json").read_text())
    browser.get(devnet.url + "/risk")
    pairs = [(model, mode) for model in report["models"] for mode in report["models"][model]]
    rows = eventually(lambda: (r := _read(browser, "#backtest-table tr[data-model]", "data-model", "data-mode")) and len(r) == len(pairs) and r, 20, "the backtest rows")
    assert [(row["data-model"], row["data-mode"]) for row in rows] == pairs
    exceptions = [float(cell["data-value"]) for cell in _read(browser, '#backtest-table tr[data-model] [data-field="exceptions"]', "data-value")]
    assert exceptions == [report["models"][model][mode]["exceptions"] for model, mode in pairs]
    for row, (model, mode) in zip(rows, pairs):
        assert report["models"][model][mode]["traffic_light_worst"] in row["text"]
    assert _count(browser, "#risk-chart rect") == sum(len(book["relative_to_isolated"]) for book in report["efficiency"].values())
    screenshot(browser, "risk")


def test_a_killed_node_turns_red_within_seconds(devnet: Devnet, browser: Any, demo: Demo) -> None:
    browser.get(devnet.url + "/")
    eventually(lambda: _count(browser, '#node-table tr.node-row[data-state="ok"]') == 4, 30, "four nodes up")
    loaded = browser.execute_script("return window.__dashLoadedAt")
    os.kill(devnet.node("node-3")["pid"], signal.SIGKILL)
    killed = time.monotonic()
    eventually(lambda: _count(browser, '#node-table tr.node-row[data-node="node-3"][data-state="down"]'), 10, "node-3 shown down", interval=0.05)
    took = time.monotonic() - killed
    assert took < 5.0, f"node-3 turned red {took:.1f} s after it was killed"
    row = browser.execute_script(
        "const r = document.querySelector('#node-table tr.node-row[data-node=\"node-3\"]');"
        "return {text: r.textContent, background: getComputedStyle(r.querySelector('td')).backgroundColor};"
    )
    assert "unreachable" in row["text"] and row["background"] == "rgb(253, 228, 228)", row  # red
    assert _value(browser, '[data-field="nodes-up"]') == 3
    assert _count(browser, '#node-table tr.node-row[data-state="ok"]') == 3
    assert browser.execute_script("return window.__dashLoadedAt") == loaded
    copy_for_docs(screenshot(browser, "node-set-one-down"), "node-set.png")
    # Asking for the dead node's view of an account reads another node, and says so.
    browser.get(devnet.url + f"/accounts?address={demo.alice().lower()}&node=node-3")
    text = eventually(lambda: _message(browser), 20, "a message")
    assert text == "node-3 is down or unknown; reading node-0 instead"
    assert _read(browser, "#account-detail", "data-node")[0]["data-node"] == "node-0"
