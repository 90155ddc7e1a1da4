"""The pages' HTML: a fixed skeleton per page; static/dash.js fills it from the event streams.

Nothing here interpolates node data: the only dynamic text is the configuration (node names,
the report path) and the query string, all escaped.
"""

from __future__ import annotations

import html
import json

from crossclear import __version__
from crossclear.dash.config import DashConfig

NAV = (("nodes", "/", "Node set"), ("accounts", "/accounts", "Accounts"), ("efficiency", "/efficiency", "Capital efficiency"), ("orders", "/orders", "Liquidations & withdrawals"), ("risk", "/risk", "Risk"))

_BODIES = {
    "nodes": """
<section class="summary" id="summary"><p class="muted">reading the nodes…</p></section>
<h2>Nodes</h2>
<table class="grid" id="node-table">
  <thead><tr><th>node</th><th>state</th><th>signer</th><th>peers</th><th>state height</th><th>accounts</th><th>certificates</th><th>cert/s</th>
  <th>equivocations</th><th>signing</th><th>pending payouts</th><th>ignored events</th><th>detail</th></tr></thead>
  <tbody></tbody>
</table>
<h2>Chains, as each node follows them</h2>
<table class="grid" id="chain-table">
  <thead><tr><th>chain</th><th>node</th><th>adapter</th><th>head</th><th>final</th><th>finality lag</th><th>finality rule</th><th>applied block</th><th>applied behind final</th><th>chain time</th>
  <th>waiting blocks</th><th>certificates</th></tr></thead>
  <tbody></tbody>
</table>
<h2>Price feeds, as each node uses them <span class="muted">(staleness judged by chain time)</span></h2>
<table class="grid" id="feed-table"><thead><tr><th>feed</th></tr></thead><tbody></tbody></table>
<h2>From each node's /metrics</h2>
<table class="grid" id="metrics-table">
  <thead><tr><th>node</th><th>gossip peers</th><th>stale feeds</th><th>claims by result</th><th>release requests</th><th>clearing events</th><th>mean kernel recompute</th></tr></thead>
  <tbody></tbody>
</table>
""",
    "accounts": """
<form id="search" class="search" autocomplete="off">
  <label>Account <input id="address" name="address" size="46" placeholder="0x… (40 hex digits)" spellcheck="false"></label>
  <label>Node <select id="node" name="node"><option value="">first node up</option>{node_options}</select></label>
  <button type="submit">Show</button>
  <a href="/accounts">all accounts</a>
</form>
<div id="message" class="message" hidden></div>
<section id="account-list">
  <h2>All accounts <span class="muted" id="list-source"></span></h2>
  <table class="grid" id="accounts-table">
    <thead><tr><th>account</th><th>equity</th><th>collateral</th><th>isolated req</th><th>cross-siloed req</th><th>cross req</th><th>portfolio req</th><th>health</th><th>liquidatable</th><th>positions</th></tr></thead>
    <tbody></tbody>
  </table>
</section>
<section id="account-detail" hidden>
  <h2>Account <code id="account-id"></code> <span class="muted" id="account-source"></span></h2>
  <div class="cards" id="account-cards"></div>
  <h3>Requirements: the four modes side by side</h3>
  <table class="grid" id="modes-table"><thead><tr><th>mode</th><th>initial margin</th><th>maintenance margin</th><th>required</th></tr></thead><tbody></tbody></table>
  <h3>Collateral by chain and asset</h3>
  <table class="grid" id="collateral-table"><thead><tr><th>chain</th><th>asset</th><th>amount</th><th>base units</th><th>price</th><th>haircut</th><th>value</th></tr></thead><tbody></tbody></table>
  <h3>Positions</h3>
  <table class="grid" id="positions-table"><thead><tr><th>chain</th><th>underlying</th><th>kind</th><th>qty</th><th>entry</th><th>strike</th><th>expiry</th><th>mark</th><th>unrealised P&amp;L</th></tr></thead><tbody></tbody></table>
  <h3>What if… <span class="muted">(answered by the node's SimulateMargin; nothing is stored)</span></h3>
  <form id="whatif" class="whatif" autocomplete="off">
    <fieldset><legend>Add positions</legend>
      <div id="position-rows"></div>
      <button type="button" id="add-position">+ position</button>
    </fieldset>
    <fieldset><legend>Remove collateral</legend>
      <div id="removal-rows"></div>
      <button type="button" id="add-removal">+ removal</button>
    </fieldset>
    <button type="submit" id="simulate">Simulate</button>
  </form>
  <div id="whatif-message" class="message" hidden></div>
  <section id="whatif-result" hidden>
    <p id="whatif-described" class="muted"></p>
    <table class="grid" id="whatif-table"><thead><tr><th></th><th>now</th><th>what-if</th><th>change</th></tr></thead><tbody></tbody></table>
  </section>
</section>
""",
    "efficiency": """
<div id="message" class="message" hidden></div>
<section class="cards" id="efficiency-cards"></section>
<h2>Required collateral per account: isolated vs portfolio margin <span class="muted" id="efficiency-source"></span></h2>
<div id="efficiency-chart" class="chart"></div>
<h2>Totals by mode</h2>
<table class="grid" id="mode-totals"><thead><tr><th>mode</th><th>required over all accounts</th><th>vs isolated</th></tr></thead><tbody></tbody></table>
""",
    "orders": """
<div id="message" class="message" hidden></div>
<h2>Pending seize orders <span class="muted" id="pending-source"></span></h2>
<table class="grid" id="pending-table">
  <thead><tr><th>account</th><th>chain</th><th>token</th><th>amount (base units)</th><th>equity / maintenance</th><th>deadline</th><th>signatures</th><th>signed by</th></tr></thead>
  <tbody></tbody>
</table>
<h2>Pending close-outs <span class="muted">(a backstop takes each by Dutch auction once a quorum signed it)</span></h2>
<table class="grid" id="close-out-table">
  <thead><tr><th>account</th><th>chain</th><th>position closed</th><th>equity / maintenance</th><th>auction</th><th>signatures</th><th>signed by</th></tr></thead>
  <tbody></tbody>
</table>
<h2>Executed on chain: seizes, close-outs and releases <span class="muted">(vault and market events; signatures from the transactions)</span></h2>
<table class="grid" id="executed-table">
  <thead><tr><th>kind</th><th>chain</th><th>block</th><th>transaction</th><th>account</th><th>amount</th><th>paid to / taken by</th><th>quorum signatures</th></tr></thead>
  <tbody></tbody>
</table>
<h2>Orders each node signed, paid and saw expire <span class="muted">(its /metrics; the API lists no signed releases)</span></h2>
<table class="grid" id="release-table">
  <thead><tr><th>node</th><th>release requests signed / refused</th><th>releases signed</th><th>releases paid</th><th>seizes signed</th><th>seizes paid</th><th>close-outs signed</th><th>reservations expired</th></tr></thead>
  <tbody></tbody>
</table>
""",
    "risk": """
<div id="message" class="message" hidden></div>
<section id="risk-header" class="cards"></section>
<h2>Backtest: coverage and exceptions</h2>
<table class="grid" id="backtest-table">
  <thead><tr><th>model</th><th>mode</th><th>observations</th><th>exceptions</th><th>coverage</th><th>expected</th><th>Kupiec p</th><th>independence p</th>
  <th>cond. coverage p</th><th>traffic light windows</th><th>worst</th><th>largest exception</th><th>average exception</th></tr></thead>
  <tbody></tbody>
</table>
<h2>Capital efficiency by book (average required, relative to isolated)</h2>
<div id="risk-chart" class="chart"></div>
<table class="grid" id="risk-efficiency"><thead></thead><tbody></tbody></table>
<h2>Procyclicality of total margin</h2>
<table class="grid" id="procyclicality-table"><thead><tr><th>model</th><th>mode</th><th>largest 1-day increase</th><th>largest 30-day increase</th><th>peak to trough</th></tr></thead><tbody></tbody></table>
""",
    "error": """<div class="message error">{message}</div><p><a href="/">the node set</a></p>""",
}


def render(name: str, config: DashConfig, query: dict[str, str]) -> str:
    """The page `name`, with the configuration the script needs embedded as JSON."""
    node_options = "".join(f'<option value="{html.escape(node.name)}">{html.escape(node.name)}</option>' for node in config.nodes)
    body = _BODIES[name].replace("{node_options}", node_options).replace("{message}", html.escape(query.get("message", "")))
    active = ' class="active"'
    nav = "".join(f'<a href="{href}"{active if key == name else ""}>{html.escape(label)}</a>' for key, href, label in NAV)
    settings = {
        "page": name,
        "nodes": [node.name for node in config.nodes],
        "chains": [{"chain_id": chain.chain_id, "network": chain.network} for chain in config.chains],
        "report": str(config.report_path),
        "quorum": config.quorum(),
    }
    # json.dumps escapes nothing HTML-special by itself: keep "</script>" out of the script block.
    settings_json = json.dumps(settings).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    title = dict((key, label) for key, _, label in NAV).get(name, "crossclear")
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>crossclear · {html.escape(title)}</title>
<link rel="stylesheet" href="/static/dash.css">
<link rel="icon" href="data:,">
</head>
<body data-page="{html.escape(name)}">
<header>
  <span class="brand">crossclear</span>
  <nav>{nav}</nav>
  <span id="live" class="live connecting" title="server-sent events">connecting…</span>
</header>
<main>
{body}
</main>
<footer>crossclear {html.escape(__version__)} dashboard · reads {len(config.nodes)} node(s) over gRPC and /metrics · {html.escape(config.source)}</footer>
<script id="settings" type="application/json">{settings_json}</script>
<script src="/static/dash.js"></script>
</body>
</html>
"""
