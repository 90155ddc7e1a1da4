"""A backtest's report: report.json (every figure) and report.html (the same, with plots)."""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from crossclear.margin._model import FloatArray
from crossclear.risk.backtest import BacktestArrays, BacktestSpec, book_type
from crossclear.risk.stats import christoffersen, kupiec, traffic_light_zone

TRAFFIC_LIGHT_DAYS = 250


def _round(value: float, digits: int = 6) -> float | None:
    return None if not np.isfinite(value) else round(float(value), digits)


def _coverage(spec: BacktestSpec, mm: FloatArray, loss: FloatArray) -> dict[str, Any]:
    probability = 1.0 - spec.fhs.fhs_confidence
    horizon = spec.fhs.fhs_mpor_days
    # Accounts with nothing at risk (no positions) say nothing about a model's coverage.
    active = np.flatnonzero(np.diff(spec.margin.book.position_offsets) > 0)
    exceeded = loss[:, active] > mm[:, active]
    observations, exceptions = int(exceeded.size), int(exceeded.sum())
    pof = kupiec(observations, exceptions, probability)
    windows = [exceeded[::horizon, column] for column in range(exceeded.shape[1])]
    independence = christoffersen(windows, probability)
    zones = {"green": 0, "yellow": 0, "red": 0}
    for column in range(exceeded.shape[1]):
        for start in range(0, exceeded.shape[0] - TRAFFIC_LIGHT_DAYS + 1, TRAFFIC_LIGHT_DAYS):
            count = int(exceeded[start : start + TRAFFIC_LIGHT_DAYS, column].sum())
            zones[traffic_light_zone(count, TRAFFIC_LIGHT_DAYS, probability)] += 1
    excess = (loss[:, active] - mm[:, active])[exceeded]
    return {
        "observations": observations,
        "exceptions": exceptions,
        "coverage": _round(1.0 - exceptions / observations) if observations else None,
        "expected_coverage": spec.fhs.fhs_confidence,
        "kupiec_pof": {"statistic": _round(pof.statistic), "p_value": _round(pof.p_value)},
        "christoffersen": {
            "windows": independence.observations,
            "exceptions": independence.exceptions,
            "independence": _round(independence.independence),
            "independence_p_value": _round(independence.independence_p_value),
            "conditional_coverage": _round(independence.conditional_coverage),
            "conditional_coverage_p_value": _round(independence.conditional_coverage_p_value),
        },
        "traffic_light_windows": zones,
        "traffic_light_worst": "red" if zones["red"] else ("yellow" if zones["yellow"] else "green"),
        "largest_exception": _round(float(excess.max())) if excess.size else 0.0,
        "average_exception": _round(float(excess.mean())) if excess.size else 0.0,
    }


def _procyclicality(total: FloatArray) -> dict[str, Any]:
    def largest_increase(lag: int) -> float | None:
        if total.size <= lag:
            return None
        before, after = total[:-lag], total[lag:]
        ratio = np.divide(after, before, out=np.ones_like(after), where=before > 0) - 1.0
        return _round(float(ratio.max()))

    positive = total[total > 0]
    return {
        "largest_1_day_increase": largest_increase(1),
        "largest_30_day_increase": largest_increase(30),
        "peak_to_trough": _round(float(positive.max() / positive.min())) if positive.size else None,
    }


def build_report(spec: BacktestSpec, arrays: BacktestArrays) -> dict[str, Any]:
    """Every figure of the report, JSON-ready."""
    dates = spec.history.dates[spec.first : spec.last + 1]
    ids = spec.margin.account_ids
    types = sorted({book_type(account) for account in ids})
    models: dict[str, dict[str, Any]] = {}
    procyclicality: dict[str, dict[str, Any]] = {}
    for column, (model, mode) in enumerate(spec.columns):
        models.setdefault(model, {})[mode] = _coverage(spec, arrays.mm[column], arrays.loss)
        procyclicality.setdefault(model, {})[mode] = _procyclicality(arrays.mm[column].sum(axis=1))
    efficiency: dict[str, dict[str, Any]] = {}
    labels = [f"{model} {mode}" for model, mode in spec.columns]
    isolated = spec.columns.index(("grid", "isolated")) if ("grid", "isolated") in spec.columns else None
    for kind in types:
        members = [row for row, account in enumerate(ids) if book_type(account) == kind]
        totals = {label: float(arrays.required[column][:, members].sum()) for column, label in enumerate(labels)}
        base = totals[labels[isolated]] if isolated is not None else None
        efficiency[kind] = {
            "accounts": len(members),
            "average_required": {label: _round(total / spec.days) for label, total in totals.items()},
            "relative_to_isolated": {label: (_round(total / base) if base else None) for label, total in totals.items()},
        }
    return {
        "from": dates[0],
        "to": dates[-1],
        "days": spec.days,
        "accounts": len(ids),
        "account_days": spec.days * len(ids),
        "underlyings": [name for name in spec.margin.market.underlying_names if name in spec.history.names],
        "params": {
            "fhs_lambda": spec.fhs.fhs_lambda,
            "fhs_confidence": spec.fhs.fhs_confidence,
            "fhs_lookback_days": spec.fhs.fhs_lookback_days,
            "fhs_mpor_days": spec.fhs.fhs_mpor_days,
            "apc_vol_floor": spec.fhs.apc_vol_floor,
            "tail_count": spec.fhs.tail_count,
            "fhs_forecaster": spec.fhs.fhs_forecaster,
            "forecast_window_days": spec.fhs.forecast_window_days,
            "forecast_refit_days": spec.fhs.forecast_refit_days,
        },
        "models": models,
        "procyclicality": procyclicality,
        "efficiency": efficiency,
        "forecasters": _forecasters(spec, arrays, models, procyclicality),
    }


def _forecasters(spec: BacktestSpec, arrays: BacktestArrays, models: dict[str, dict[str, Any]], procyclicality: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """FHS under each forecaster side by side: what predicting volatility buys, or not."""
    rows: dict[str, Any] = {}
    totals = {}
    for column, (model, mode) in enumerate(spec.columns):
        forecaster = spec.forecaster_of(model)
        if forecaster is None:
            continue
        totals[model] = float(arrays.required[column].sum())
        figures, pro = models[model][mode], procyclicality[model][mode]
        rows[model] = {
            "forecaster": forecaster,
            "exceptions": figures["exceptions"],
            "coverage": figures["coverage"],
            "traffic_light_worst": figures["traffic_light_worst"],
            "traffic_light_windows": figures["traffic_light_windows"],
            "average_exception": figures["average_exception"],
            "largest_1_day_increase": pro["largest_1_day_increase"],
            "largest_30_day_increase": pro["largest_30_day_increase"],
            "peak_to_trough": pro["peak_to_trough"],
            "fallback_days": dict(spec.forecast_fallbacks.get(forecaster, {})),
        }
    ewma = next((model for model, row in rows.items() if row["forecaster"] == "ewma"), None)
    for model, row in rows.items():
        row["required_relative_to_ewma"] = _round(totals[model] / totals[ewma]) if ewma is not None and totals[ewma] > 0 else None
    return rows


def _png(figure: Any) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _plots(spec: BacktestSpec, arrays: BacktestArrays, report: dict[str, Any]) -> list[tuple[str, str]]:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    dates = np.array(spec.history.dates[spec.first : spec.last + 1], dtype="datetime64[D]")
    ids = spec.margin.account_ids
    plots = []
    seen: set[str] = set()
    portfolio_columns = [(column, f"{model} {mode}") for column, (model, mode) in enumerate(spec.columns) if mode == "portfolio"]
    for row, account in enumerate(ids):
        kind = book_type(account)
        if kind in seen or spec.margin.book.position_offsets[row + 1] == spec.margin.book.position_offsets[row]:
            continue
        seen.add(kind)
        figure, axes = pyplot.subplots(figsize=(10, 3.2))
        axes.plot(dates, arrays.loss[:, row], color="0.6", linewidth=0.6, label=f"realised {spec.fhs.fhs_mpor_days}-day loss")
        for column, label in portfolio_columns:
            line = axes.plot(dates, arrays.mm[column][:, row], linewidth=1.0, label=f"{label} mm")[0]
            exceeded = arrays.loss[:, row] > arrays.mm[column][:, row]
            axes.scatter(dates[exceeded], arrays.loss[exceeded, row], s=10, color=line.get_color(), marker="x")
        axes.set_title(f"{account}: margin against realised loss (x = exception)")
        axes.legend(loc="upper left", fontsize=8)
        plots.append((f"{account}", _png(figure)))
        pyplot.close(figure)

    labels = [f"{model} {mode}" for model, modes in report["models"].items() for mode in modes]
    coverage = [report["models"][label.split()[0]][label.split()[1]]["coverage"] or 0.0 for label in labels]
    figure, axes = pyplot.subplots(figsize=(7, 3))
    axes.bar(labels, coverage, color="tab:blue")
    axes.axhline(spec.fhs.fhs_confidence, color="tab:red", linestyle="--", label=f"target {spec.fhs.fhs_confidence:.0%}")
    axes.set_ylim(min(0.9, min(coverage) - 0.01), 1.0)
    axes.set_title("coverage by model and mode")
    axes.legend(fontsize=8)
    plots.append(("coverage by model", _png(figure)))
    pyplot.close(figure)

    kinds = list(report["efficiency"])
    columns = [f"{model} {mode}" for model, mode in spec.columns]
    figure, axes = pyplot.subplots(figsize=(10, 3.5))
    width = 0.8 / max(1, len(columns))
    for index, label in enumerate(columns):
        values = [report["efficiency"][kind]["relative_to_isolated"][label] or 0.0 for kind in kinds]
        axes.bar(np.arange(len(kinds)) + index * width, values, width, label=label)
    axes.set_xticks(np.arange(len(kinds)) + 0.4 - width / 2, kinds, rotation=20, fontsize=8)
    axes.set_ylabel("required / isolated")
    axes.set_title("capital efficiency by mode (lower needs less collateral)")
    axes.legend(fontsize=8)
    plots.append(("efficiency by mode", _png(figure)))
    pyplot.close(figure)
    return plots


def _table(report: dict[str, Any]) -> str:
    rows = []
    for model, modes in report["models"].items():
        for mode, figures in modes.items():
            pro = report["procyclicality"][model][mode]
            rows.append(
                "<tr>"
                + "".join(
                    f"<td>{html.escape(str(cell))}</td>"
                    for cell in (
                        model, mode, figures["observations"], figures["exceptions"], figures["coverage"],
                        figures["kupiec_pof"]["p_value"], figures["christoffersen"]["conditional_coverage_p_value"],
                        figures["traffic_light_worst"], figures["largest_exception"], pro["largest_1_day_increase"],
                        pro["largest_30_day_increase"], pro["peak_to_trough"],
                    )
                )
                + "</tr>"
            )
    header = "".join(
        f"<th>{name}</th>"
        for name in ("model", "mode", "obs", "exceptions", "coverage", "Kupiec p", "Christoffersen cc p", "traffic light", "largest exception", "max 1-day rise", "max 30-day rise", "peak/trough")
    )
    return f"<table><tr>{header}</tr>{''.join(rows)}</table>"


def _forecaster_table(report: dict[str, Any]) -> str:
    rows = report.get("forecasters", {})
    if len(rows) < 2:
        return ""
    header = "".join(
        f"<th>{name}</th>"
        for name in ("model", "forecaster", "exceptions", "coverage", "traffic light", "average exception", "max 1-day rise", "max 30-day rise", "peak/trough", "required / EWMA", "fallback days")
    )
    body = "".join(
        "<tr>" + "".join(
            f"<td>{html.escape(str(cell))}</td>"
            for cell in (
                model, row["forecaster"], row["exceptions"], row["coverage"], row["traffic_light_worst"], row["average_exception"],
                row["largest_1_day_increase"], row["largest_30_day_increase"], row["peak_to_trough"], row["required_relative_to_ewma"],
                sum(row["fallback_days"].values()),
            )
        ) + "</tr>"
        for model, row in rows.items()
    )
    return f"<h2>FHS by volatility forecaster (portfolio)</h2><table><tr>{header}</tr>{body}</table>"


def write_report(spec: BacktestSpec, arrays: BacktestArrays, out: Path) -> dict[str, Any]:
    """Write out/report.json and out/report.html; return the report."""
    out.mkdir(parents=True, exist_ok=True)
    report = build_report(spec, arrays)
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    images = "".join(
        f'<h3>{html.escape(title)}</h3><img alt="{html.escape(title)}" src="data:image/png;base64,{data}">' for title, data in _plots(spec, arrays, report)
    )
    efficiency = "".join(
        f"<tr><td>{html.escape(kind)}</td>"
        + "".join(f"<td>{value}</td>" for value in figures["relative_to_isolated"].values())
        + "</tr>"
        for kind, figures in report["efficiency"].items()
    )
    efficiency_header = "".join(f"<th>{html.escape(label)}</th>" for label in next(iter(report["efficiency"].values()))["relative_to_isolated"])
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>crossclear backtest {report['from']} to {report['to']}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto}}td,th{{padding:2px 8px;text-align:right;border-bottom:1px solid #ddd}}</style>
</head><body>
<h1>Margin backtest, {report['from']} to {report['to']}</h1>
<p>{report['accounts']} accounts over {report['days']} days ({report['account_days']} account-days);
underlyings {html.escape(', '.join(report['underlyings']))}; confidence {report['params']['fhs_confidence']},
horizon {report['params']['fhs_mpor_days']} days, lookback {report['params']['fhs_lookback_days']} days.
An exception is a day whose realised loss over the horizon exceeds the maintenance margin.</p>
<h2>Coverage and procyclicality</h2>{_table(report)}
{_forecaster_table(report)}
<h2>Capital efficiency (required collateral relative to isolated)</h2>
<table><tr><th>book</th>{efficiency_header}</tr>{efficiency}</table>
<h2>Plots</h2>{images}
</body></html>
"""
    (out / "report.html").write_text(page)
    return report
