"""A cascade simulation's report: report.json (every figure) and report.html (the same, with plots)."""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from crossclear.margin._model import FloatArray
from crossclear.risk.cascade.engine import METRICS, silo_count
from crossclear.risk.cascade.market import MARKET_MAKER, SimulationSpec
from crossclear.risk.cascade.run import SimulationArrays

#: Columns of the headline table: (key in the report, heading, format).
HEADLINE_COLUMNS = (
    ("collateral_required", "collateral required (median)", "{:,.0f}"),
    ("collateral_required_p95", "collateral p95", "{:,.0f}"),
    ("collateral_vs_isolated", "vs isolated", "{:.2f}×"),
    ("bad_debt_mean", "bad debt mean", "{:,.0f}"),
    ("bad_debt_p95", "bad debt p95", "{:,.0f}"),
    ("bad_debt_p99", "bad debt p99", "{:,.0f}"),
    ("insurance_draw_p95", "insurance draw p95", "{:,.0f}"),
    ("insurance_draw_p99", "insurance draw p99", "{:,.0f}"),
    ("adl_events", "ADL events (all paths)", "{:,}"),
    ("paths_with_adl", "paths with ADL", "{:,}"),
    ("uncovered", "uncovered (all paths)", "{:,.0f}"),
    ("liquidations_mean", "close-outs / path", "{:.1f}"),
    ("slippage_mean", "slippage / path", "{:,.0f}"),
    ("slippage_bps", "slippage bps", "{:.0f}"),
)


def _money(value: float) -> float:
    return round(float(value), 2)


def _label(combo: tuple[str, str]) -> str:
    return f"{combo[0]} {combo[1]}"


def _column(arrays: SimulationArrays, combo: int, name: str) -> FloatArray:
    column: FloatArray = arrays.metrics[:, combo, METRICS.index(name)]
    return column


def _percentile(values: FloatArray, q: float) -> float:
    return _money(float(np.percentile(values, q))) if values.size else 0.0


def build_report(spec: SimulationSpec, arrays: SimulationArrays, seconds: float | None = None, workers: int = 1) -> dict[str, Any]:
    """Every figure of the report, JSON-ready."""
    params, fhs = spec.params, spec.fhs
    market = spec.margin.market
    used = [index for index in range(len(market.underlying_names)) if spec.open_interest[index] > 0]
    isolated_required = None
    if ("grid", "isolated") in spec.combos:
        isolated_required = float(np.median(_column(arrays, spec.combos.index(("grid", "isolated")), "collateral_required")))
    headline = []
    per_path: dict[str, dict[str, list[float]]] = {}
    by_kind: dict[str, dict[str, float]] = {}
    collateral_by_kind: dict[str, dict[str, float]] = {}
    for index, combo in enumerate(spec.combos):
        def column(name: str) -> FloatArray:
            return _column(arrays, index, name)

        # fhs asks for a different amount on every path (its lookback is the path's history):
        # the median is what a typical opening day needs, the mean is pulled by a few paths.
        required = float(np.median(column("collateral_required")))
        bad, draw = column("bad_debt"), column("fund_draw")
        notional = float(column("closed_notional").sum())
        headline.append(
            {
                "model": combo[0],
                "mode": combo[1],
                "silos": silo_count(spec, combo[1]),
                "collateral_required": _money(required),
                "collateral_required_mean": _money(column("collateral_required").mean()),
                "collateral_required_p5": _percentile(column("collateral_required"), 5),
                "collateral_required_p95": _percentile(column("collateral_required"), 95),
                "collateral_vs_isolated": round(required / isolated_required, 3) if isolated_required else None,
                "bad_debt_mean": _money(bad.mean()),
                "bad_debt_p95": _percentile(bad, 95),
                "bad_debt_p99": _percentile(bad, 99),
                "bad_debt_max": _money(bad.max()),
                "paths_with_bad_debt": int((bad > 0).sum()),
                "insurance_draw_mean": _money(draw.mean()),
                "insurance_draw_p95": _percentile(draw, 95),
                "insurance_draw_p99": _percentile(draw, 99),
                # Exhausted once: drew all it started with (rounding residue may refill it a little).
                "paths_fund_exhausted": int((draw >= spec.fund_units / 1e6 - 1e-6).sum()) if spec.fund_units else spec.paths,
                "adl_events": int(column("adl_events").sum()),
                "adl_amount": _money(column("adl_amount").sum()),
                "paths_with_adl": int((column("adl_events") > 0).sum()),
                "uncovered": _money(column("uncovered").sum()),
                "liquidations_mean": round(float(column("liquidations").mean()), 2),
                "full_liquidations_mean": round(float(column("full_liquidations").mean()), 2),
                "defaults": int(column("defaults").sum()),
                "slippage_mean": _money(column("slippage").mean()),
                "closed_notional_mean": _money(column("closed_notional").mean()),
                "slippage_bps": round(1e4 * float(column("slippage").sum()) / notional, 1) if notional > 0 else 0.0,
                "cascade_rounds_max": int(column("cascade_rounds").max()),
                "vm_residue_to_fund": round(float(column("vm_residue").sum()), 6),
                "liquidator_pnl_mean": _money(column("liquidator_pnl").mean()),
            }
        )
        per_path[_label(combo)] = {
            "bad_debt": [_money(v) for v in bad],
            "insurance_draw": [_money(v) for v in draw],
            "adl_events": [int(v) for v in column("adl_events")],
            "slippage": [_money(v) for v in column("slippage")],
            "collateral_required": [_money(v) for v in column("collateral_required")],
        }
        by_kind[_label(combo)] = {kind: _money(arrays.by_kind[:, index, k].mean()) for k, kind in enumerate(spec.kinds)}
        collateral_by_kind[_label(combo)] = {kind: _money(np.median(arrays.collateral_by_kind[:, index, k])) for k, kind in enumerate(spec.kinds)}
    books = sum(1 for p in spec.participants if p.kind != MARKET_MAKER)
    report: dict[str, Any] = {
        "source": spec.source.describe(),
        "paths": spec.paths,
        "days": params.days,
        "underlyings": [market.underlying_names[i] for i in used],
        "accounts": {"books": books, "market_makers": len(spec.participants) - books},
        "open_interest_units": {market.underlying_names[i]: round(float(spec.open_interest[i]), 6) for i in used},
        "open_interest_notional": _money(float(np.dot(spec.open_interest, market.underlying_price))),
        "params": {
            "buffer": params.buffer,
            "insurance_fund": _money(spec.fund_units / 1e6),
            "impact_y": params.impact,
            "depth_x_open_interest": params.depth,
            "permanent_impact": params.permanent,
            "market_makers": params.market_makers,
            "close_out_steps": params.steps,
            "max_rounds_per_day": params.max_rounds,
            "grid_im_multiplier": spec.margin.params.im_multiplier,
            "fhs_lookback_days": fhs.fhs_lookback_days,
            "fhs_confidence": fhs.fhs_confidence,
            "fhs_mpor_days": fhs.fhs_mpor_days,
            "fhs_lambda": fhs.fhs_lambda,
        },
        "checks": "open interest nets to zero and money is conserved after every step of every path (the run stops otherwise)",
        "headline": headline,
        "bad_debt_by_kind_mean": by_kind,
        "collateral_by_kind_median": collateral_by_kind,
        "path_stats": {
            "worst_daily_log_return": [round(float(v), 6) for v in arrays.path_stats[:, 0]],
            "worst_drawdown": [round(float(v), 6) for v in arrays.path_stats[:, 1]],
        },
        "per_path": per_path,
    }
    if seconds is not None:
        report["run"] = {"seconds": round(seconds, 1), "workers": workers}
    return report


def _cell(value: Any, form: str = "{}") -> str:
    if value is None:
        return "–"
    if form == "{}" and isinstance(value, float):
        return f"{value:,.2f}"
    return form.format(value)


def headline_markdown(report: dict[str, Any]) -> str:
    """The headline table as Markdown (docs/cascade-simulator.md and the README quote it)."""
    heads = ["model, mode", *(heading for _, heading, _ in HEADLINE_COLUMNS)]
    lines = ["| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]
    for row in report["headline"]:
        cells = [f"{row['model']} {row['mode']}", *(_cell(row[key], form) for key, _, form in HEADLINE_COLUMNS)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _png(figure: Any) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _plots(report: dict[str, Any]) -> list[tuple[str, str]]:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    plots = []
    rows = report["headline"]
    labels = [f"{row['model']} {row['mode']}" for row in rows]

    figure, axes = pyplot.subplots(figsize=(8, 4.5))
    for row, label in zip(rows, labels):
        line = axes.plot([row["collateral_required"]] * 2, [row["bad_debt_p95"], row["bad_debt_p99"]], linewidth=2)[0]
        axes.scatter([row["collateral_required"]], [row["bad_debt_p99"]], color=line.get_color(), label=label, zorder=3)
        axes.scatter([row["collateral_required"]], [row["bad_debt_p95"]], color=line.get_color(), marker="_", s=120, zorder=3)
        axes.annotate(label, (row["collateral_required"], row["bad_debt_p99"]), textcoords="offset points", xytext=(6, 4), fontsize=8)
    axes.set_xlabel("collateral required (USDC, sum over silos; median over paths)")
    axes.set_ylabel("bad debt per path (USDC): p95 (bar) to p99 (dot)")
    axes.set_title("what each margin mode and model costs, and what it leaves uncovered")
    axes.grid(alpha=0.3)
    plots.append(("collateral against bad debt", _png(figure)))
    pyplot.close(figure)

    figure, panes = pyplot.subplots(1, 2, figsize=(11, 4))
    for pane, key, title in ((panes[0], "bad_debt", "bad debt"), (panes[1], "insurance_draw", "insurance-fund draw")):
        for label in labels:
            values = np.sort(np.array(report["per_path"][label][key]))
            exceed = 1.0 - np.arange(1, values.size + 1) / values.size
            positive = values > 0
            if positive.any():
                pane.step(values[positive], exceed[positive], where="post", label=label)
            else:
                pane.plot([], [], label=f"{label} (none)")
        pane.set_xscale("log")
        pane.set_yscale("log")
        pane.set_xlabel(f"{title} per path (USDC)")
        pane.set_ylabel("fraction of paths with more")
        pane.set_title(f"{title}: tail of the distribution")
        pane.legend(fontsize=7)
        pane.grid(alpha=0.3)
    plots.append(("tails of bad debt and insurance draw", _png(figure)))
    pyplot.close(figure)

    figure, axes = pyplot.subplots(figsize=(8, 3.5))
    every = np.concatenate([report["per_path"][label]["collateral_required"] for label in labels])
    bins = [float(edge) for edge in np.geomspace(max(float(every.min()), 1.0), max(float(every.max()) * 1.01, 2.0), 60)]
    for label in labels:
        axes.hist(report["per_path"][label]["collateral_required"], bins=bins, histtype="step", label=label)
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("collateral required on the opening day (USDC)")
    axes.set_ylabel("paths")
    axes.set_title("collateral required across paths (v1 depends only on prices; v2 on the path's history)")
    axes.legend(fontsize=7)
    plots.append(("collateral across paths", _png(figure)))
    pyplot.close(figure)

    drawdown = np.array(report["path_stats"]["worst_drawdown"])
    figure, axes = pyplot.subplots(figsize=(8, 4))
    for label in labels:
        values = np.array(report["per_path"][label]["bad_debt"])
        axes.scatter(100 * drawdown, values, s=6, alpha=0.6, label=label)
    axes.set_xlabel(f"worst drawdown of {report['underlyings'][0]} over the path (%)")
    axes.set_ylabel("bad debt (USDC)")
    axes.set_title("bad debt against the path's fall")
    axes.legend(fontsize=7)
    axes.grid(alpha=0.3)
    plots.append(("bad debt against drawdown", _png(figure)))
    pyplot.close(figure)

    kinds = list(next(iter(report["bad_debt_by_kind_mean"].values())))
    figure, axes = pyplot.subplots(figsize=(9, 4))
    bottom = np.zeros(len(labels))
    for kind in kinds:
        values = np.array([report["bad_debt_by_kind_mean"][label][kind] for label in labels])
        axes.bar(labels, values, bottom=bottom, label=kind)
        bottom += values
    axes.set_ylabel("mean bad debt per path (USDC)")
    axes.set_title("who defaults: mean bad debt by account type")
    axes.tick_params(axis="x", labelsize=8)
    axes.legend(fontsize=7)
    plots.append(("bad debt by account type", _png(figure)))
    pyplot.close(figure)
    return plots


def _html_table(report: dict[str, Any]) -> str:
    heads = "".join(f"<th>{html.escape(h)}</th>" for h in ["model", "mode", *(heading for _, heading, _ in HEADLINE_COLUMNS)])
    rows = "".join(
        f"<tr><td>{html.escape(row['model'])}</td><td>{html.escape(row['mode'])}</td>"
        + "".join(f"<td>{html.escape(_cell(row[key], form))}</td>" for key, _, form in HEADLINE_COLUMNS)
        + "</tr>"
        for row in report["headline"]
    )
    return f"<table><tr>{heads}</tr>{rows}</table>"


def write_report(spec: SimulationSpec, arrays: SimulationArrays, out: Path, seconds: float | None = None, workers: int = 1) -> dict[str, Any]:
    """Write out/report.json and out/report.html; return the report."""
    out.mkdir(parents=True, exist_ok=True)
    report = build_report(spec, arrays, seconds, workers)
    (out / "report.json").write_text(json.dumps(report, indent=1) + "\n")
    images = "".join(
        f'<h3>{html.escape(title)}</h3><img alt="{html.escape(title)}" src="data:image/png;base64,{data}">' for title, data in _plots(report)
    )
    kinds = list(next(iter(report["bad_debt_by_kind_mean"].values())))
    def kind_rows(key: str) -> str:
        return "".join(
            f"<tr><td>{html.escape(label)}</td>" + "".join(f"<td>{_cell(values[k])}</td>" for k in kinds) + "</tr>"
            for label, values in report[key].items()
        )

    kind_head = "".join(f"<th>{html.escape(k)}</th>" for k in kinds)
    p = report["params"]
    run = report.get("run")
    timing = f" Run time {run['seconds']} s on {run['workers']} worker(s)." if run else ""
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>crossclear cascade simulation</title>
<style>body{{font-family:sans-serif;max-width:1150px;margin:2em auto}}td,th{{padding:2px 8px;text-align:right;border-bottom:1px solid #ddd}}</style>
</head><body>
<h1>Cascade simulation: {report['paths']:,} paths × {report['days']} days</h1>
<p>{html.escape(report['source'])}; underlyings {html.escape(', '.join(report['underlyings']))};
{report['accounts']['books']} book accounts and {report['accounts']['market_makers']} market makers
(open interest {report['open_interest_notional']:,.2f} USDC notional). Each margin silo posts
{p['buffer']} × its required collateral; insurance fund {p['insurance_fund']:,.2f} USDC;
square-root impact Y = {p['impact_y']}, daily volume {p['depth_x_open_interest']} × open interest,
{p['permanent_impact']:.0%} of a round's impact permanent.{timing}
Amounts are USDC per path; percentiles are over paths. {html.escape(report['checks'])}.</p>
<h2>Headline</h2>{_html_table(report)}
<h2>Collateral required by account type (opening day, median over paths)</h2>
<table><tr><th>model, mode</th>{kind_head}</tr>{kind_rows("collateral_by_kind_median")}</table>
<h2>Mean bad debt by account type</h2>
<table><tr><th>model, mode</th>{kind_head}</tr>{kind_rows("bad_debt_by_kind_mean")}</table>
<h2>Plots</h2>{images}
</body></html>
"""
    (out / "report.html").write_text(page)
    return report
