// crossclear dashboard: plain JavaScript, no build step, nothing loaded from elsewhere.
// Each page subscribes to its server-sent event stream and redraws from the whole document
// it receives. Every piece of node data goes into the page as text (never as HTML).
(function () {
  "use strict";

  const settings = JSON.parse(document.getElementById("settings").textContent);
  // Tests read this to prove a change arrived without a reload.
  window.__dashLoadedAt = Date.now();
  window.__dashUpdates = 0;
  const MODES = ["isolated", "cross_siloed", "cross", "portfolio"];
  const MODE_LABELS = { isolated: "isolated", cross_siloed: "cross (per chain)", cross: "cross (global)", portfolio: "portfolio" };
  const money2 = new Intl.NumberFormat("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  const plain = new Intl.NumberFormat("en-US", { maximumFractionDigits: 6 });
  const ints = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });

  // ---- small helpers ---------------------------------------------------------------------
  function missing(v) { return v === null || v === undefined; }
  function money(v) { return missing(v) ? "–" : money2.format(v); }
  function num(v) { return missing(v) ? "–" : plain.format(v); }
  function int(v) { return missing(v) ? "–" : ints.format(v); }
  function pvalue(v) { return missing(v) ? "–" : v < 1e-4 ? "< 0.0001" : v.toFixed(4); }
  function pct(v, digits) { return missing(v) ? "–" : (v * 100).toFixed(digits === undefined ? 2 : digits) + " %"; }
  function shortHex(text, head, tail) {
    if (!text) return "–";
    head = head || 10; tail = tail || 6;
    return text.length > head + tail + 1 ? text.slice(0, head) + "…" + text.slice(-tail) : text;
  }
  function utc(seconds) {
    if (!seconds) return "–";
    return new Date(seconds * 1000).toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
  }
  // A recent chain time as "08:38:12 UTC · 3 s ago"; an older one with its date.
  function clock(seconds) {
    if (!seconds) return "–";
    const full = utc(seconds);
    const recent = Math.abs(Date.now() / 1000 - seconds) < 43200;
    return (recent ? full.slice(11) : full) + " · " + ago(seconds);
  }
  function ago(seconds) {
    if (!seconds) return "";
    const s = Math.round(Date.now() / 1000 - seconds);
    if (s < 0) return "in " + human(-s);
    return human(s) + " ago";
  }
  function human(s) {
    if (s < 120) return s + " s";
    if (s < 7200) return Math.round(s / 60) + " min";
    if (s < 172800) return Math.round(s / 3600) + " h";
    return Math.round(s / 86400) + " d";
  }

  function el(tag, attrs) {
    const node = document.createElement(tag);
    if (attrs) {
      for (const key of Object.keys(attrs)) {
        const value = attrs[key];
        if (missing(value) || value === false) continue;
        if (key === "text") node.textContent = String(value);
        else if (key === "cls") node.className = value;
        else if (key.startsWith("data-")) node.setAttribute(key, String(value));
        else node.setAttribute(key, String(value));
      }
    }
    for (let i = 2; i < arguments.length; i++) {
      const child = arguments[i];
      if (missing(child) || child === false) continue;
      node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    }
    return node;
  }
  function td(text, attrs) { return el("td", Object.assign({ text: text }, attrs || {})); }
  function numTd(text, field, value) { return el("td", { text: text, cls: "num", "data-field": field, "data-value": missing(value) ? null : String(value) }); }
  function badge(text, kind) { return el("span", { cls: "badge " + kind, text: text }); }
  function fill(tbody, rows, emptyText, columns) {
    tbody.replaceChildren();
    if (!rows.length) {
      const cell = el("td", { text: emptyText, colspan: columns || 20 });
      tbody.appendChild(el("tr", { cls: "empty" }, cell));
      return;
    }
    for (const row of rows) tbody.appendChild(row);
  }
  function $(id) { return document.getElementById(id); }
  function showMessage(id, text, kind) {
    const box = $(id);
    if (!box) return;
    if (!text) { box.hidden = true; box.textContent = ""; return; }
    box.hidden = false;
    box.className = "message " + (kind || "error");
    box.textContent = text;
  }
  function card(label, value, kind, field, raw) {
    return el("div", { cls: "card " + (kind || ""), "data-card": field || null },
      el("div", { cls: "label", text: label }),
      el("div", { cls: "value", text: value, "data-field": field || null, "data-value": missing(raw) ? null : String(raw) }));
  }

  // ---- live connection -------------------------------------------------------------------
  const indicator = $("live");
  function liveState(state) {
    if (!indicator) return;
    indicator.className = "live " + (state === "live" ? "live-on" : state);
    indicator.textContent = state === "live" ? "live" : state === "reconnecting" ? "reconnecting…" : "connecting…";
  }
  function stream(path, event, handler) {
    const source = new EventSource(path);
    source.addEventListener(event, function (message) {
      liveState("live");
      let document_;
      try { document_ = JSON.parse(message.data); } catch (error) { return; }
      window.__dashUpdates += 1;
      handler(document_);
    });
    source.onopen = function () { liveState("live"); };
    source.onerror = function () { liveState("reconnecting"); };
    return source;
  }

  // ---- node set --------------------------------------------------------------------------
  function renderNodes(doc) {
    if (doc.loading) return;
    const summary = $("summary");
    const maxRate = Math.max(0, ...doc.nodes.filter(n => n.up && n.certificates_per_second !== null).map(n => n.certificates_per_second));
    summary.replaceChildren(el("div", { cls: "cards" },
      card("nodes up", doc.up + " of " + doc.total, doc.up === doc.total ? "good" : "bad", "nodes-up", doc.up),
      card("quorum (signatures)", doc.quorum + (doc.quorum_available ? " · available" : " · NOT available"), doc.quorum_available ? "good" : "bad", "quorum"),
      card("certificates / s", maxRate.toFixed(2), "", "cert-rate", maxRate),
      card("equivocation evidence", String(doc.equivocations), doc.equivocations > 0 ? "bad" : "good", "equivocations", doc.equivocations),
      card("signing halted", doc.halted.length ? doc.halted.join(", ") : "none", doc.halted.length ? "bad" : "good", "halted")));

    const rows = doc.nodes.map(function (node) {
      const s = node.status;
      const tr = el("tr", { cls: "node-row state-" + node.health, "data-node": node.name, "data-state": node.health });
      tr.appendChild(el("td", null, el("strong", { text: node.name }), el("div", { cls: "muted mono", text: node.rpc })));
      tr.appendChild(el("td", null, badge(node.health === "down" ? "DOWN" : node.health, node.health)));
      if (!s) {
        const since = node.down_since ? "down for " + human(Math.max(0, Math.round(Date.now() / 1000 - node.down_since))) : "down";
        const seen = node.last_seen ? " (last answered " + ago(node.last_seen) + ")" : "";
        tr.appendChild(td(since + seen + ": " + (node.error || "no answer"), { "data-field": "error", colspan: 11 }));
        return tr;
      }
      tr.appendChild(td(shortHex(s.node_address), { cls: "mono nowrap", title: s.node_address }));
      tr.appendChild(numTd(int(s.connected_peers), "peers", s.connected_peers));
      tr.appendChild(numTd(int(s.state_height), "state_height", s.state_height));
      tr.appendChild(numTd(int(s.accounts), "accounts", s.accounts));
      tr.appendChild(numTd(int(s.certificate_count), "certificates", s.certificate_count));
      tr.appendChild(numTd(missing(node.certificates_per_second) ? "–" : node.certificates_per_second.toFixed(2), "cert_rate", node.certificates_per_second));
      tr.appendChild(el("td", { cls: "num" }, s.equivocation_count > 0 ? badge(String(s.equivocation_count), "bad") : document.createTextNode("0")));
      tr.appendChild(el("td", null, s.signing_halted ? badge("HALTED: " + s.signing_halted, "halted") : badge("signing", "ok")));
      tr.appendChild(numTd(int(s.pending_payouts), "pending_payouts", s.pending_payouts));
      tr.appendChild(numTd(int(s.ignored_events), "ignored_events", s.ignored_events));
      const notes = [];
      const bad = s.chains.filter(c => c.health !== "ok").map(c => c.network + " adapter " + c.health);
      const stale = s.feeds.filter(f => f.stale).map(f => f.name + " stale");
      notes.push.apply(notes, bad.concat(stale));
      if (s.risk && s.risk.model) notes.push("risk " + s.risk.model + (s.risk.forecaster ? " / " + s.risk.forecaster : "") + (s.risk.params_hash ? " params " + s.risk.params_hash.slice(0, 8) : ""));
      if (node.metrics_error) notes.push("metrics: " + node.metrics_error);
      notes.push("v" + s.version);
      tr.appendChild(td(notes.join("; ")));
      return tr;
    });
    fill($("node-table").tBodies[0], rows, "no nodes configured");

    const chainRows = [];
    const feedRows = [];
    const metricRows = [];
    for (const node of doc.nodes) {
      if (!node.status) {
        chainRows.push(el("tr", { cls: "node-row state-down", "data-node": node.name }, td("–"), td(node.name, { cls: "nowrap" }), el("td", { colspan: 10 }, badge("DOWN", "down"), " " + (node.error || ""))));
        continue;
      }
      for (const c of node.status.chains) {
        chainRows.push(el("tr", { "data-node": node.name, "data-chain": c.chain_id },
          td(c.network + " (" + c.chain_id + ")", { cls: "nowrap" }), td(node.name, { cls: "nowrap" }),
          el("td", null, badge(c.health, c.health === "ok" ? "ok" : c.health)),
          numTd(int(c.head), "head", c.head), numTd(int(c.finalized), "finalized", c.finalized),
          el("td", { cls: "num", "data-field": "finality_lag", "data-value": String(c.finality_lag) }, c.finality_lag > 10 ? badge(int(c.finality_lag) + " blocks", "warning") : document.createTextNode(int(c.finality_lag) + " blocks")),
          td(c.finality), numTd(int(c.applied_block), "applied_block", c.applied_block),
          el("td", { cls: "num", "data-field": "apply_lag", "data-value": String(Math.max(0, c.finalized - c.applied_block)) },
            c.finalized - c.applied_block > 10 ? badge(int(c.finalized - c.applied_block) + " behind", "warning") : document.createTextNode(int(Math.max(0, c.finalized - c.applied_block)))),
          td(clock(c.chain_time), { cls: "nowrap" }),
          numTd(int(c.waiting_blocks), "waiting_blocks", c.waiting_blocks), numTd(int(c.certificates), "chain_certificates", c.certificates)));
      }
      if (node.metrics) {
        const m = node.metrics;
        const pairs = o => Object.keys(o).sort().map(k => k + " " + int(o[k])).join(", ") || "–";
        metricRows.push(el("tr", null, td(node.name, { cls: "nowrap" }), numTd(int(m.gossip_peers), "gossip_peers", m.gossip_peers), numTd(int(m.stale_feeds), "stale_feeds", m.stale_feeds),
          td(pairs(m.claims)), td(pairs(m.releases)), td(pairs(m.events)),
          numTd(missing(m.recompute_mean_seconds) ? "–" : (m.recompute_mean_seconds * 1000).toFixed(2) + " ms", "recompute", m.recompute_mean_seconds)));
      } else {
        metricRows.push(el("tr", null, td(node.name), el("td", { colspan: 6, text: node.metrics_error || (node.metrics_url ? "not read yet" : "no metrics URL configured") })));
      }
    }
    fill($("chain-table").tBodies[0], chainRows, "no chain reported");
    const feedNames = Array.from(new Set(doc.nodes.flatMap(n => n.status ? n.status.feeds.map(f => f.name) : []))).sort();
    $("feed-table").tHead.replaceChildren(el("tr", null, el("th", { text: "feed" }), ...doc.nodes.map(n => el("th", { text: n.name }))));
    for (const name of feedNames) {
      feedRows.push(el("tr", { "data-feed": name }, td(name), ...doc.nodes.map(function (n) {
        if (!n.status) return el("td", { cls: "muted", text: "down" });
        const f = n.status.feeds.find(x => x.name === name);
        if (!f) return td("–");
        return el("td", { title: "updated " + utc(f.updated_at) + " (" + ago(f.updated_at) + "), heartbeat " + int(f.heartbeat_seconds) + " s" },
          el("span", { cls: "num", text: money(f.price) + " " }), f.stale ? badge("STALE", "bad") : badge("fresh " + ago(f.updated_at), "ok"));
      })));
    }
    fill($("feed-table").tBodies[0], feedRows, "no price feed reported");
    fill($("metrics-table").tBodies[0], metricRows, "no metrics");
  }

  // ---- accounts ----------------------------------------------------------------------------
  function accountLink(address, short) {
    const node = new URLSearchParams(location.search).get("node");
    return el("a", { href: "/accounts?address=" + encodeURIComponent(address) + (node ? "&node=" + encodeURIComponent(node) : ""), cls: "mono", title: address, text: short ? shortHex(address) : address });
  }

  function renderAccountList(doc) {
    if (doc.loading) return;
    $("list-source").textContent = doc.node ? "from " + doc.node + " (StreamMargin of every account), state height " + int(doc.state_height) : "";
    showMessage("message", doc.error ? doc.error + (doc.accounts.length ? " (showing the last figures)" : "") : "", "error");
    const rows = doc.accounts.map(a => el("tr", { "data-account": a.account.toLowerCase() },
      el("td", null, accountLink(a.account)),
      numTd(money(a.equity), "equity", a.equity), numTd(money(a.collateral_value), "collateral_value", a.collateral_value),
      ...MODES.map(m => numTd(money(a.required[m]), m + ".required", a.required[m])),
      numTd(missing(a.health) ? "–" : a.health.toFixed(2), "health", a.health),
      el("td", { cls: a.liquidatable ? "yes" : "no", text: a.liquidatable ? "YES" : "no" }),
      numTd(int(a.positions), "positions", a.positions)));
    fill($("accounts-table").tBodies[0], rows, doc.node ? "no account yet: accounts appear once a claim is credited" : "waiting for a node to answer…");
  }

  let accountNode = null;
  let currentMargin = null;

  function renderAccount(doc) {
    if (doc.error) {
      showMessage("message", doc.message, doc.error === "unknown_account" ? "info" : "error");
      if (doc.error === "bad_input") { $("account-detail").hidden = true; }
      return;
    }
    showMessage("message", doc.note || "", "info");
    const m = doc.margin;
    currentMargin = m;
    accountNode = doc.node;
    $("account-detail").hidden = false;
    $("account-id").textContent = m.account;
    $("account-source").textContent = "read from " + doc.node + " · state height " + int(m.state_height) + (m.prices_fresh ? " · prices fresh" : " · PRICES STALE: " + m.stale_feeds.join(", "));
    $("account-detail").setAttribute("data-node", doc.node);
    $("account-detail").setAttribute("data-state-height", String(m.state_height));
    $("account-cards").replaceChildren(
      card("equity", money(m.equity), "", "equity", m.equity),
      card("collateral value", money(m.collateral_value), "", "collateral_value", m.collateral_value),
      card("unrealised P&L", money(m.upnl), "", "upnl", m.upnl),
      card("health (equity / portfolio mm)", missing(m.health) ? "–" : m.health.toFixed(3), m.liquidatable ? "bad" : "good", "health", m.health),
      card("liquidatable", m.liquidatable ? "YES" : "no", m.liquidatable ? "bad" : "good", "liquidatable", m.liquidatable));
    fill($("modes-table").tBodies[0], MODES.map(mode => el("tr", { "data-mode": mode },
      td(MODE_LABELS[mode]),
      numTd(money(m.modes[mode].im), mode + ".im", m.modes[mode].im),
      numTd(money(m.modes[mode].mm), mode + ".mm", m.modes[mode].mm),
      numTd(money(m.modes[mode].required), mode + ".required", m.modes[mode].required))), "");
    fill($("collateral-table").tBodies[0], m.collateral.map(c => el("tr", { "data-chain": c.chain_id, "data-asset": c.asset },
      td(chainName(c.chain_id)), td(c.asset), numTd(num(c.amount), "amount", c.amount),
      el("td", { cls: "num mono", text: c.amount_units + " (" + c.decimals + " dp)", "data-field": "amount_units", "data-value": c.amount_units }),
      numTd(money(c.price), "price", c.price), numTd(pct(c.haircut), "haircut", c.haircut), numTd(money(c.value), "value", c.value))), "no collateral", 7);
    fill($("positions-table").tBodies[0], m.positions.map(p => el("tr", { "data-position": p.position_id },
      td(chainName(p.chain_id)), td(p.underlying), td(p.kind), numTd(num(p.qty), "qty", p.qty), numTd(money(p.entry), "entry", p.entry),
      numTd(p.kind === "perp" ? "–" : money(p.strike), "strike", p.strike), td(p.kind === "perp" ? "–" : utc(p.expiry_timestamp)),
      numTd(money(p.mark), "mark", p.mark), numTd(money(p.upnl), "upnl", p.upnl))), "no positions", 9);
    if (!$("position-rows").children.length) resetWhatIf(m);
  }

  function chainShort(id) {
    const chain = settings.chains.find(c => c.chain_id === id);
    return chain ? chain.network : String(id);
  }
  function chainName(id) {
    const chain = settings.chains.find(c => c.chain_id === id);
    return chain ? chain.network + " (" + id + ")" : String(id);
  }
  function chainField(name, value) {
    if (!settings.chains.length) return el("input", { name: name, value: value || "", placeholder: "chain id" });
    const select = el("select", { name: name });
    for (const c of settings.chains) select.appendChild(el("option", { value: c.chain_id, text: c.network + " (" + c.chain_id + ")" }));
    if (value) select.value = String(value);
    return select;
  }
  function positionRow(defaults) {
    defaults = defaults || {};
    const kind = el("select", { name: "kind" }, el("option", { value: "perp", text: "perp" }), el("option", { value: "call", text: "call" }), el("option", { value: "put", text: "put" }));
    return el("div", { cls: "row position" },
      chainField("chain_id", defaults.chain_id), el("input", { name: "underlying", value: defaults.underlying || "ETH", placeholder: "underlying" }), kind,
      el("input", { name: "qty", placeholder: "qty (+ long, − short)" }), el("input", { name: "entry", placeholder: "entry price" }),
      el("input", { name: "strike", placeholder: "strike (options)" }), el("input", { name: "expiry_days", placeholder: "days to expiry" }));
  }
  function removalRow(defaults) {
    defaults = defaults || {};
    return el("div", { cls: "row removal" }, chainField("chain_id", defaults.chain_id), el("input", { name: "asset", value: defaults.asset || "", placeholder: "asset (e.g. USDC)" }),
      el("input", { name: "amount", placeholder: "amount in tokens" }));
  }
  function resetWhatIf(m) {
    const first = m.positions[0] || {};
    $("position-rows").replaceChildren(positionRow({ chain_id: first.chain_id, underlying: first.underlying }));
    const holding = m.collateral[0] || {};
    $("removal-rows").replaceChildren(removalRow({ chain_id: holding.chain_id, asset: holding.asset }));
  }
  function rowsOf(container) {
    return Array.from(container.children).map(function (row) {
      const out = {};
      for (const input of row.querySelectorAll("input, select")) out[input.name] = input.value;
      return out;
    });
  }

  async function simulate(event) {
    event.preventDefault();
    showMessage("whatif-message", "");
    $("whatif-result").hidden = true;
    const body = { account: currentMargin ? currentMargin.account : new URLSearchParams(location.search).get("address"), node: accountNode, add_positions: rowsOf($("position-rows")), remove_collateral: rowsOf($("removal-rows")) };
    let answer;
    try {
      const response = await fetch("/api/whatif", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
      answer = await response.json();
    } catch (error) {
      showMessage("whatif-message", "the dashboard did not answer: " + error.message, "error");
      return;
    }
    if (answer.error) { showMessage("whatif-message", answer.error, "error"); return; }
    $("whatif-described").textContent = "sent to " + answer.node + ": " + answer.described.join("; ");
    const before = answer.before, after = answer.after;
    const lines = [["equity", "equity", b => b.equity], ["collateral value", "collateral_value", b => b.collateral_value]];
    for (const mode of MODES) {
      lines.push([MODE_LABELS[mode] + " required", mode + ".required", b => b.modes[mode].required]);
      lines.push([MODE_LABELS[mode] + " maintenance", mode + ".mm", b => b.modes[mode].mm]);
    }
    lines.push(["health", "health", b => b.health]);
    const rows = lines.map(function (line) {
      const a = line[2](before), b = line[2](after);
      const change = missing(a) || missing(b) ? null : b - a;
      return el("tr", { "data-line": line[1] }, td(line[0]), numTd(money(a), "before." + line[1], a), numTd(money(b), "after." + line[1], b), numTd(missing(change) ? "–" : (change >= 0 ? "+" : "") + money(change), "change." + line[1], change));
    });
    rows.push(el("tr", { "data-line": "liquidatable" }, td("liquidatable"), td(before.liquidatable ? "YES" : "no"), el("td", { text: after.liquidatable ? "YES" : "no", cls: after.liquidatable ? "yes" : "no", "data-field": "after.liquidatable", "data-value": String(after.liquidatable) }), td("")));
    fill($("whatif-table").tBodies[0], rows, "");
    $("whatif-result").hidden = false;
    $("whatif-result").setAttribute("data-node", answer.node);
    $("whatif-result").setAttribute("data-state-height", String(after.state_height));
  }

  function startAccounts() {
    const params = new URLSearchParams(location.search);
    const address = (params.get("address") || "").trim();
    const node = params.get("node") || "";
    $("address").value = address;
    $("node").value = node;
    $("add-position").addEventListener("click", () => $("position-rows").appendChild(positionRow()));
    $("add-removal").addEventListener("click", () => $("removal-rows").appendChild(removalRow()));
    $("whatif").addEventListener("submit", simulate);
    if (!address) {
      stream("/events/accounts", "accounts", renderAccountList);
      return;
    }
    $("account-list").hidden = true;
    stream("/events/account?address=" + encodeURIComponent(address) + (node ? "&node=" + encodeURIComponent(node) : ""), "account", renderAccount);
  }

  // ---- capital efficiency -------------------------------------------------------------------
  const SVG = "http://www.w3.org/2000/svg";
  function svg(tag, attrs, text) {
    const node = document.createElementNS(SVG, tag);
    for (const key of Object.keys(attrs || {})) node.setAttribute(key, String(attrs[key]));
    if (text !== undefined) node.textContent = text;
    return node;
  }
  function legend(items) {
    return el("div", { cls: "legend" }, ...items.map(item => { const s = el("span", { text: item[0] }); s.style.setProperty("--c", item[1]); return s; }));
  }
  // Horizontal grouped bars: groups of [label, [[series, value, class]...]].
  function barChart(container, groups, unit) {
    const width = 1000, groupWidth = 150, seriesWidth = 120, barHeight = 14, gap = 12, valueWidth = 110;
    const left = groupWidth + seriesWidth;
    const max = Math.max(1e-9, ...groups.flatMap(g => g[1].map(b => Math.abs(b[1] || 0))));
    const height = groups.reduce((h, g) => h + g[1].length * (barHeight + 3) + gap, 8);
    const chart = svg("svg", { width: width, height: height, viewBox: "0 0 " + width + " " + height, role: "img" });
    let y = 4;
    for (const group of groups) {
      chart.appendChild(svg("text", { x: 0, y: y + barHeight - 2, "data-label": group[0], "font-weight": 600 }, group[0]));
      for (const bar of group[1]) {
        const value = bar[1] || 0;
        const w = Math.max(1, (Math.abs(value) / max) * (width - left - valueWidth));
        chart.appendChild(svg("text", { x: left - 6, y: y + barHeight - 3, "text-anchor": "end", class: "series" }, bar[0]));
        chart.appendChild(svg("rect", { x: left, y: y, width: w, height: barHeight, rx: 2, class: bar[2], "data-series": bar[0], "data-value": value }));
        chart.appendChild(svg("text", { x: left + w + 5, y: y + barHeight - 3 }, unit(value)));
        y += barHeight + 3;
      }
      y += gap;
    }
    container.replaceChildren(chart);
  }

  function renderEfficiency(doc) {
    if (doc.loading) return;
    showMessage("message", doc.error ? doc.error + (doc.accounts.length ? " (showing the last figures)" : "") : "", "error");
    $("efficiency-source").textContent = doc.node ? "· " + doc.accounts.length + " accounts from " + doc.node + " · state height " + int(doc.state_height) : "";
    $("efficiency-cards").replaceChildren(
      card("accounts", int(doc.accounts.length), "", "accounts", doc.accounts.length),
      card("isolated margin requires", money(doc.totals.isolated), "", "total.isolated", doc.totals.isolated),
      card("portfolio margin requires", money(doc.totals.portfolio), "", "total.portfolio", doc.totals.portfolio),
      card("collateral freed by portfolio margin", money(doc.freed), doc.freed > 0 ? "good" : "", "freed", doc.freed),
      card("isolated / portfolio", missing(doc.ratio) ? "–" : doc.ratio.toFixed(2) + "×", "", "ratio", doc.ratio));
    const chart = $("efficiency-chart");
    const accounts = doc.accounts.filter(a => (a.required.isolated || 0) > 0 || (a.required.portfolio || 0) > 0)
      .sort((a, b) => (b.required.isolated || 0) - (a.required.isolated || 0)).slice(0, 40);
    if (!accounts.length) {
      chart.replaceChildren(el("p", { cls: "muted", text: doc.node ? "no account requires margin yet: open positions to see the comparison" : "waiting for a node to answer…" }));
    } else {
      chart.replaceChildren();
      const box = el("div");
      barChart(box, accounts.map(a => [shortHex(a.account, 8, 6), [["isolated", a.required.isolated, "iso"], ["portfolio", a.required.portfolio, "port"]]]), money);
      chart.append(legend([["isolated margin", "var(--iso)"], ["portfolio margin", "var(--port)"]]), box);
    }
    const isolated = doc.totals.isolated;
    fill($("mode-totals").tBodies[0], MODES.map(mode => el("tr", { "data-mode": mode }, td(MODE_LABELS[mode]), numTd(money(doc.totals[mode]), "total." + mode, doc.totals[mode]),
      numTd(isolated > 0 ? pct(doc.totals[mode] / isolated, 1) : "–", "relative." + mode, isolated > 0 ? doc.totals[mode] / isolated : null))), "");
  }

  // ---- liquidations and withdrawals -----------------------------------------------------------
  function signatureList(signatures) {
    const box = el("div");
    for (const s of signatures) {
      const who = s.signer_node || shortHex(s.signer || "unknown signer");
      const mark = s.verified === false ? " (signature does NOT verify)" : "";
      box.appendChild(el("span", { cls: "sig mono", title: (s.signer || "") + " " + s.signature, text: who + ": " + shortHex(s.signature, 12, 6) + mark }));
    }
    return box;
  }
  function renderOrders(doc) {
    if (doc.loading) return;
    showMessage("message", doc.errors.length ? doc.errors.join("\n") : "", "error");
    $("pending-source").textContent = "· asked " + (doc.asked.join(", ") || "no node (none answers)") + " · quorum " + doc.quorum;
    fill($("pending-table").tBodies[0], doc.pending_seizes.map(o => el("tr", { "data-seize": o.seize_id },
      el("td", null, accountLink(o.account, true)), td(chainShort(o.chain_id), { cls: "nowrap" }), td(shortHex(o.token), { cls: "mono", title: o.token }),
      el("td", { cls: "num mono", text: o.amount_units }),
      td(money(o.equity) + " / " + money(o.maintenance)), td(utc(o.deadline) + " (" + ago(o.deadline) + ")"),
      el("td", null, badge(o.signers.length + " of " + o.quorum + (o.has_quorum ? " · quorum" : ""), o.has_quorum ? "ok" : "warning"), o.paid_on_chain ? el("div", { cls: "muted", text: "paid on chain; waiting for certification" }) : null),
      el("td", null, signatureList(o.signatures)))), "no seize order pending: no account is below maintenance");
    fill($("close-out-table").tBodies[0], (doc.pending_close_outs || []).map(o => el("tr", { "data-close-out": o.close_out_id },
      el("td", null, accountLink(o.account, true)), td(chainShort(o.chain_id), { cls: "nowrap" }), td(o.description),
      td(money(o.equity) + " / " + money(o.maintenance)),
      td(clock(o.start) + " → " + clock(o.deadline) + " (down to −" + (o.max_discount_bps / 100).toFixed(2) + " %)"),
      el("td", null, badge(o.signers.length + " of " + o.quorum + (o.has_quorum ? " · quorum" : ""), o.has_quorum ? "ok" : "warning"), o.paid_on_chain ? el("div", { cls: "muted", text: "taken on chain; waiting for certification" }) : null),
      el("td", null, signatureList(o.signatures)))), "no close-out pending: no account is below maintenance");
    fill($("executed-table").tBodies[0], doc.executed.map(e => el("tr", { "data-kind": e.kind, "data-tx": e.tx_hash },
      el("td", { cls: "nowrap" }, badge(e.kind, e.kind === "release" ? "ok" : "bad")), td(chainShort(e.chain_id), { cls: "nowrap" }), numTd(int(e.block), "block", e.block),
      td(shortHex(e.tx_hash, 14, 8), { cls: "mono nowrap", title: e.tx_hash, "data-field": "tx_hash" }), el("td", null, accountLink(e.account, true)),
      el("td", { cls: "num", text: e.description || ((e.decimals ? num(Number(e.amount_units) / Math.pow(10, e.decimals)) : e.amount_units) + " " + e.asset) }),
      td(shortHex(e.recipient), { cls: "mono", title: e.recipient }), el("td", null, signatureList(e.signatures)))),
      doc.chains.length ? "nothing executed yet" : "no chain configured: executed orders are read from the vaults (run from a devnet manifest or pass --chain)");
    fill($("release-table").tBodies[0], doc.releases.map(r => r.available ? el("tr", null, td(r.node), td(int(r.requests_signed) + " / " + int(r.requests_refused)),
      numTd(int(r.release_signed)), numTd(int(r.release_paid)), numTd(int(r.seize_signed)), numTd(int(r.seize_paid)), numTd(int(r.close_out_signed)), numTd(int(r.expired)))
      : el("tr", null, td(r.node), el("td", { colspan: 7, text: "metrics not available (node down or no metrics URL)" }))), "no node");
  }

  // ---- risk --------------------------------------------------------------------------------
  function renderRisk(doc) {
    if (doc.loading) return;
    if (doc.error) { showMessage("message", doc.error, "error"); return; }
    showMessage("message", "");
    const r = doc.report;
    $("risk-header").replaceChildren(
      card("period", r.from + " → " + r.to, "", "period"), card("days", int(r.days), "", "days", r.days), card("accounts", int(r.accounts), "", "accounts", r.accounts),
      card("account-days", int(r.account_days), "", "account_days", r.account_days), card("underlyings", (r.underlyings || []).join(", "), "", "underlyings"),
      card("report", doc.path.split("/").slice(-2).join("/") + " · " + utc(doc.modified), "", "path"));
    const rows = [];
    for (const model of Object.keys(r.models || {})) {
      for (const mode of Object.keys(r.models[model])) {
        const b = r.models[model][mode];
        const light = b.traffic_light_windows || {};
        const worst = b.traffic_light_worst || "–";
        rows.push(el("tr", { "data-model": model, "data-mode": mode }, td(model), td(mode), numTd(int(b.observations)), numTd(int(b.exceptions), "exceptions", b.exceptions),
          numTd(pct(b.coverage, 3), "coverage", b.coverage), numTd(pct(b.expected_coverage, 1)), numTd(pvalue(b.kupiec_pof && b.kupiec_pof.p_value)),
          numTd(pvalue(b.christoffersen && b.christoffersen.independence_p_value)), numTd(pvalue(b.christoffersen && b.christoffersen.conditional_coverage_p_value)),
          td(int(light.green) + " green · " + int(light.yellow) + " yellow · " + int(light.red) + " red"), el("td", null, badge(worst, worst)),
          numTd(money(b.largest_exception)), numTd(money(b.average_exception))));
      }
    }
    fill($("backtest-table").tBodies[0], rows, "the report holds no model");
    const efficiency = r.efficiency || {};
    const books = Object.keys(efficiency);
    const series = books.length ? Object.keys(efficiency[books[0]].relative_to_isolated || {}) : [];
    if (books.length) {
      const box = el("div");
      barChart(box, books.map(book => [book, series.map((name, i) => [name, efficiency[book].relative_to_isolated[name], "s" + (i % 6)])]), v => pct(v, 1));
      $("risk-chart").replaceChildren(box);
      const head = $("risk-efficiency").tHead;
      head.replaceChildren(el("tr", null, el("th", { text: "book" }), el("th", { text: "accounts" }), ...series.map(s => el("th", { cls: "num", text: s + " (avg required)" }))));
      fill($("risk-efficiency").tBodies[0], books.map(book => el("tr", null, td(book), numTd(int(efficiency[book].accounts)),
        ...series.map(s => numTd(money(efficiency[book].average_required[s]) + " (" + pct(efficiency[book].relative_to_isolated[s], 0) + ")")))), "");
    } else {
      $("risk-chart").replaceChildren(el("p", { cls: "muted", text: "the report has no efficiency section" }));
    }
    const pro = [];
    for (const model of Object.keys(r.procyclicality || {})) {
      for (const mode of Object.keys(r.procyclicality[model])) {
        const p = r.procyclicality[model][mode];
        pro.push(el("tr", null, td(model), td(mode), numTd(pct(p.largest_1_day_increase, 1)), numTd(pct(p.largest_30_day_increase, 1)), numTd(num(p.peak_to_trough))));
      }
    }
    fill($("procyclicality-table").tBodies[0], pro, "the report has no procyclicality section");
  }

  // ---- start ---------------------------------------------------------------------------------
  const page = settings.page;
  if (page === "nodes") stream("/events/nodes", "nodes", renderNodes);
  else if (page === "accounts") startAccounts();
  else if (page === "efficiency") stream("/events/accounts", "accounts", renderEfficiency);
  else if (page === "orders") stream("/events/orders", "orders", renderOrders);
  else if (page === "risk") stream("/events/risk", "risk", renderRisk);
  if (page === "error") liveState("live");
})();
