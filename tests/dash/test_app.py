"""The dashboard against fake nodes (real gRPC servers with canned answers) and unreachable
ones: what each JSON document and event stream holds, and that every bad input is answered
with one clear line, never a traceback. No devnet, no browser: these run in seconds."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from crossclear.dash.config import DashConfig, NodeTarget
from crossclear.v1 import margin_pb2
from tests.dash.harness import ALICE, FakeNode, eventually, first_event, free_port, get_json, margin_of, served

REPORT = Path(__file__).resolve().parents[2] / "docs" / "risk-v2" / "report.json"


@pytest.fixture()
def fake() -> Iterator[FakeNode]:
    node = FakeNode().start()
    try:
        yield node
    finally:
        node.stop()


def _config(*nodes: NodeTarget, report: Path = REPORT) -> DashConfig:
    return DashConfig(nodes=tuple(nodes), report_path=report, poll_seconds=0.3, orders_poll_seconds=0.3)


def test_node_set_document_shows_up_and_down_nodes_with_a_reason(fake: FakeNode) -> None:
    dead = NodeTarget(name="dead", rpc=f"127.0.0.1:{free_port()}")
    with served(_config(NodeTarget(name="fake-0", rpc=fake.address), dead)) as dash:
        status, document = get_json(dash.url + "/api/nodes")
        assert status == 200
        nodes = {node["name"]: node for node in document["nodes"]}
        assert nodes["fake-0"]["up"] and nodes["fake-0"]["health"] == "ok"
        assert nodes["fake-0"]["status"]["chains"][0]["finality_lag"] == 2
        assert not nodes["dead"]["up"] and nodes["dead"]["health"] == "down"
        assert "dead" in nodes["dead"]["error"] and "unreachable" in nodes["dead"]["error"]
        assert (document["up"], document["total"], document["quorum"], document["quorum_available"]) == (1, 2, 2, False)
        # Certificates per second come from successive status reads.
        fake.certificates = 40
        rate = eventually(lambda: get_json(dash.url + "/api/nodes")[1]["nodes"][0]["certificates_per_second"], 5, "a certificate rate")
        assert rate > 0


def test_accounts_follow_stream_margin_of_every_account_and_sum_capital_efficiency(fake: FakeNode) -> None:
    with served(_config(NodeTarget(name="fake-0", rpc=fake.address))) as dash:
        document = eventually(lambda: (d := get_json(dash.url + "/api/accounts")[1]).get("accounts") and d, 5, "the accounts list")
        assert document["node"] == "fake-0" and [row["account"] for row in document["accounts"]] == [ALICE]
        assert document["totals"]["isolated"] == 900.0 and document["totals"]["portfolio"] == 600.0
        assert document["freed"] == 300.0 and document["ratio"] == 1.5
        bob = "0x" + "b0" * 20
        fake.put(margin_of(bob, usdc_units=5 * 10**6))  # a new account arrives while the page is open
        document = eventually(lambda: (d := get_json(dash.url + "/api/accounts")[1]) and len(d["accounts"]) == 2 and d, 5, "the new account")
        assert document["freed"] == 600.0


def test_one_account_now_and_live(fake: FakeNode) -> None:
    with served(_config(NodeTarget(name="fake-0", rpc=fake.address))) as dash:
        status, document = get_json(dash.url + f"/api/account?address={ALICE.upper().replace('0X', '0x')}")
        assert status == 200 and document["node"] == "fake-0"
        margin = document["margin"]
        assert margin["modes"]["portfolio"]["required"] == 600.0 and margin["collateral"][0]["amount_units"] == "10000000000"
        event, data = first_event(dash.url + f"/events/account?address={ALICE}")
        assert event == "account" and data["margin"]["account"] == ALICE


def test_bad_input_and_unknown_accounts_get_one_clear_line(fake: FakeNode) -> None:
    with served(_config(NodeTarget(name="fake-0", rpc=fake.address))) as dash:
        status, document = get_json(dash.url + "/api/account?address=0x123")
        assert status == 400 and "is not an account address" in document["message"]
        status, document = get_json(dash.url + "/api/account?address=" + "0x" + "99" * 20)
        assert status == 404 and document["error"] == "unknown_account" and "knows no account" in document["message"]
        event, data = first_event(dash.url + "/events/account?address=nonsense")
        assert data["error"] == "bad_input"
        cases = {
            b"not json": "must be a JSON object",
            b"[]": "must be a JSON object",
            json.dumps({"account": ALICE}).encode(): "add at least one position",
            json.dumps({"account": ALICE, "add_positions": [{"chain_id": "31001", "underlying": "ETH", "kind": "perp", "qty": "abc", "entry": "1"}]}).encode(): "position 1: qty must be a number",
            json.dumps({"account": ALICE, "add_positions": [{"chain_id": "x", "underlying": "ETH", "qty": "1", "entry": "1"}]}).encode(): "chain_id must be a chain id",
            json.dumps({"account": ALICE, "add_positions": [{"chain_id": "31001", "underlying": "ETH", "kind": "call", "qty": "1", "entry": "1"}]}).encode(): "strike is required",
            json.dumps({"account": ALICE, "add_positions": [{"chain_id": "31001", "underlying": "ETH", "qty": "1e400", "entry": "1"}]}).encode(): "finite number",
            json.dumps({"account": ALICE, "remove_collateral": [{"chain_id": "31001", "asset": "USDC", "amount": "-5"}]}).encode(): "positive number of tokens",
            json.dumps({"account": ALICE, "remove_collateral": [{"chain_id": "31001", "asset": "USDC", "amount": "0.0000001"}]}).encode(): "finer than that",
            json.dumps({"account": ALICE, "remove_collateral": [{"chain_id": "31002", "asset": "WETH", "amount": "1"}]}).encode(): "holds no WETH on chain 31002",
            json.dumps({"account": ALICE, "add_positions": [{"chain_id": "31001", "underlying": "DOGE", "qty": "1", "entry": "1"}]}).encode(): "fake-0 refused the what-if: unknown underlying 'DOGE'",
            json.dumps({"account": "0x" + "99" * 20, "add_positions": [{"chain_id": "31001", "underlying": "ETH", "qty": "1", "entry": "1"}]}).encode(): "knows no account",
        }
        for body, expected in cases.items():
            status, document = get_json(dash.url + "/api/whatif", data=body)
            assert status in (400, 404) and expected in document["error"], (body, document)
            assert "Traceback" not in document["error"]


def test_what_if_sends_exact_base_units_and_returns_the_node_figures(fake: FakeNode) -> None:
    with served(_config(NodeTarget(name="fake-0", rpc=fake.address))) as dash:
        body = {
            "account": ALICE,
            "add_positions": [{"chain_id": "31001", "underlying": "ETH", "kind": "perp", "qty": "-2.5", "entry": "3,000"}, {"chain_id": "31001", "underlying": "", "qty": "", "entry": ""}],
            "remove_collateral": [{"chain_id": "31001", "asset": "usdc", "amount": "1234.567891"}],
        }
        status, document = get_json(dash.url + "/api/whatif", data=json.dumps(body).encode())
        assert status == 200, document
        (sent,) = fake.simulated
        assert [(p.chain_id, p.underlying, p.kind, p.qty, p.entry) for p in sent.add_positions] == [(31001, "ETH", margin_pb2.INSTRUMENT_KIND_PERP, -2.5, 3000.0)]
        assert [(r.chain_id, r.asset, r.amount_units) for r in sent.remove_collateral] == [(31001, "USDC", "1234567891")]
        assert document["after"]["modes"]["portfolio"]["required"] == 1100.0 and document["before"]["modes"]["portfolio"]["required"] == 600.0
        assert document["described"] == ["add -2.5 ETH perp on chain 31001 at 3000", "remove 1234567891 base units of USDC on chain 31001"]


def test_an_unreachable_node_set_is_a_message_everywhere(tmp_path: Path) -> None:
    dead = NodeTarget(name="dead", rpc=f"127.0.0.1:{free_port()}")
    with served(_config(dead, report=tmp_path / "missing.json")) as dash:
        status, document = get_json(dash.url + f"/api/account?address={ALICE}")
        assert status == 503 and "no node answers" in document["message"]
        status, document = get_json(dash.url + "/api/whatif", data=json.dumps({"account": ALICE, "add_positions": [{"chain_id": "1", "underlying": "ETH", "qty": "1", "entry": "1"}]}).encode())
        assert status == 503 and "no node answers" in document["error"]
        document = eventually(lambda: (d := get_json(dash.url + "/api/accounts")[1]).get("error") and d, 5, "the accounts error")
        assert "no node answers" in document["error"]
        assert "no backtest report at" in get_json(dash.url + "/api/risk")[1]["error"]
        for page in ("/", "/accounts", f"/accounts?address={ALICE}", "/efficiency", "/orders", "/risk", "/no-such-page"):
            import urllib.error
            import urllib.request

            try:
                html = urllib.request.urlopen(dash.url + page, timeout=10).read().decode()
            except urllib.error.HTTPError as error:
                assert error.code == 404 and page == "/no-such-page"
                html = error.read().decode()
            assert "Traceback" not in html and "<script" in html


def test_the_risk_report_is_read_and_reread_when_it_changes(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    report.write_text("{not json")
    dead = NodeTarget(name="dead", rpc=f"127.0.0.1:{free_port()}")
    with served(_config(dead, report=report)) as dash:
        assert "is not valid JSON" in get_json(dash.url + "/api/risk")[1]["error"]
        report.write_text(REPORT.read_text())
        document = eventually(lambda: (d := get_json(dash.url + "/api/risk")[1]).get("report") and d, 8, "the report after it was fixed")
        assert document["report"]["models"]["fhs"]["portfolio"]["traffic_light_worst"] == json.loads(REPORT.read_text())["models"]["fhs"]["portfolio"]["traffic_light_worst"]


def test_the_page_script_parses_and_loads_nothing_from_elsewhere() -> None:
    import shutil
    import subprocess

    static = Path(__file__).resolve().parents[2] / "node" / "crossclear" / "dash" / "static"
    script = (static / "dash.js").read_text()
    node = shutil.which("node")
    if node is not None:
        result = subprocess.run([node, "--check", str(static / "dash.js")], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
    from crossclear.dash import pages
    from crossclear.dash.config import DashConfig, NodeTarget

    config = DashConfig(nodes=(NodeTarget(name="<b>n</b>", rpc="127.0.0.1:1"),))
    for name in ("nodes", "accounts", "efficiency", "orders", "risk"):
        html = pages.render(name, config, {})
        assert "<b>n</b>" not in html  # node names are escaped
        if name == "accounts":
            assert "&lt;b&gt;n&lt;/b&gt;" in html
        for text in (html, script, (static / "dash.css").read_text()):
            assert "http://" not in text.replace("http://www.w3.org/2000/svg", "") and "https://" not in text and "//cdn" not in text


def test_the_readme_shows_the_dashboard_screenshots() -> None:
    repo = Path(__file__).resolve().parents[2]
    readme = (repo / "README.md").read_text()
    for image in ("docs/dashboard/node-set.png", "docs/dashboard/capital-efficiency.png"):
        assert f"]({image})" in readme and (repo / image).stat().st_size > 10_000, image


def test_pending_orders_count_only_signatures_that_verify(fake: FakeNode) -> None:
    from eth_account import Account

    from crossclear.chains.interface import InstrumentKind
    from crossclear.chains.market_orders import CloseOut, MarketDomain, sign_close_out
    from crossclear.chains.vault_orders import SeizeOrder, VaultDomain, sign
    from crossclear.v1 import liquidation_pb2

    keys = [Account.from_key(bytes([index + 1]) * 32) for index in range(4)]
    vault, market, token = "0x" + "11" * 20, "0x" + "22" * 20, "0x" + "33" * 20
    seize = SeizeOrder(seize_id=b"\x05" * 32, account=Account.from_key(b"\x09" * 32).address, token=Account.from_key(b"\x0a" * 32).address, amount=10**9, recipient=keys[0].address, deadline=2_000_000_000)
    close_out = CloseOut(
        close_out_id=b"\x07" * 32, account=seize.account, underlying=seize.token, kind=InstrumentKind.PERPETUAL, strike=0, expiry=0, is_call=False,
        account_size=-(10**18), mark=2100 * 10**18, max_discount_bps=500, start=1_900_000_000, deadline=1_900_000_600,
    )
    for index, key in enumerate(keys[:3]):
        signature = sign(VaultDomain(31001, vault), seize, bytes(key.key))
        if index == 2:
            signature = signature[:10] + bytes([signature[10] ^ 1]) + signature[11:]  # tampered: recovers someone else
        fake.seize_orders.append(liquidation_pb2.SignedSeizeOrder(
            chain_id=31001, vault=vault, seize_id=seize.seize_id, account=seize.account, token=seize.token, amount=str(seize.amount),
            recipient=seize.recipient, signer=key.address, signature=signature, equity=100.0, maintenance=400.0, state_height=9, deadline=seize.deadline,
        ))
        fake.close_outs.append(liquidation_pb2.SignedCloseOut(
            chain_id=31001, market=market, close_out_id=close_out.close_out_id, account=close_out.account, underlying=close_out.underlying, kind=0, strike="0",
            expiry=0, is_call=False, account_size=str(close_out.account_size), mark=str(close_out.mark), max_discount_bps=500, start=close_out.start,
            deadline=close_out.deadline, signer=key.address, signature=sign_close_out(MarketDomain(31001, market), close_out, bytes(key.key)),
            equity=100.0, maintenance=400.0, state_height=9,
        ))
    with served(_config(NodeTarget(name="fake-0", rpc=fake.address))) as dash:
        document = eventually(lambda: (d := get_json(dash.url + "/api/orders")[1]).get("pending_seizes") and d, 10, "the pending orders")
        assert document["errors"] == []
        (pending,) = document["pending_seizes"]
        assert [s["verified"] for s in pending["signatures"]] == [True, True, False]
        assert len(pending["signers"]) == 2 and pending["quorum"] == 1 and pending["has_quorum"]
        (close,) = document["pending_close_outs"]
        assert all(s["verified"] for s in close["signatures"]) and len(close["signers"]) == 3
        assert close["description"].startswith("-1 ") and "from mark 2,100.00" in close["description"]
