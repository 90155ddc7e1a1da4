"""`crossclear risk forecast`: every forecaster, walk-forward, judged against the realised variance.

For each underlying of the HISTORY and each decision day d in the range, every forecaster
forecasts the variance of the next h days' return from the closes up to d (refitted every
`forecast_refit_days` days on the last `forecast_window_days` returns), and the forecast is
scored against the realised h-day variance RV = r_(d+1)^2 + ... + r_(d+h)^2 (squared daily
log returns: the proxy daily data allow):

- QLIKE, ln F + RV / F (Patton 2011: the loss that ranks forecasts correctly with a noisy
  proxy of the variance; lower is better), and MSE, (RV - F)^2;
- a Diebold-Mariano test of each forecaster's losses against the EWMA's (positive statistic:
  the forecaster's losses are smaller);
- how often the forecaster could not answer and the EWMA stood in.

report.json holds every figure; report.html the tables and plots of the forecasts against the
realised volatility over time.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from crossclear._errors import UsageError
from crossclear.margin._model import FloatArray
from crossclear.risk._model import FhsParams, History
from crossclear.risk.forecast import FORECASTER_NAMES, WalkForward, realised_variance, walk_forward
from crossclear.risk.stats import diebold_mariano, qlike

Progress = Callable[[str], None]

#: One colour per forecaster in every plot.
COLOURS = {"ewma": "black", "gjr_garch": "tab:blue", "har": "tab:orange", "lightgbm": "tab:green"}


@dataclass(frozen=True)
class ForecastRun:
    """Walk-forward forecasts of every forecaster for every underlying over the same days."""

    history: History
    names: tuple[str, ...]
    """Underlyings evaluated (HISTORY columns)."""
    forecasters: tuple[str, ...]
    first: int
    """Row of the first decision day."""
    last: int
    """Row of the last decision day (h rows after it exist)."""
    params: FhsParams
    forecasts: dict[str, dict[str, WalkForward]]
    """underlying -> forecaster -> its walk-forward."""
    realised: dict[str, FloatArray]
    """underlying -> realised h-day variance after each decision day."""


def decision_rows(history: History, params: FhsParams, start: str, stop: str, label: str) -> tuple[int, int]:
    """First and last decision rows between the dates (inclusive), leaving h rows after the last."""
    dates = history.dates
    first = next((row for row, date in enumerate(dates) if date >= start), None)
    last = next((row for row in range(len(dates) - 1, -1, -1) if dates[row] <= stop), None)
    if first is None or last is None or last < first:
        raise UsageError(f"{label}: no rows between {start} and {stop} (the file covers {dates[0]} to {dates[-1]})")
    first = max(first, 1)
    last = min(last, len(dates) - 1 - params.fhs_mpor_days)
    if last < first:
        raise UsageError(f"{label}: row {len(dates) + 1}: no day in range has the {params.fhs_mpor_days} later closes the realised variance needs")
    return first, last


def run_forecasts(
    history: History, names: Sequence[str], forecasters: Sequence[str], first: int, last: int, params: FhsParams,
    progress: Progress | None = None,
) -> ForecastRun:
    """Walk every forecaster forward over every named underlying."""
    settings = params.forecast_settings()
    forecasts: dict[str, dict[str, WalkForward]] = {}
    realised: dict[str, FloatArray] = {}
    for name in names:
        closes = history.closes[:, history.column(name)]
        realised[name] = realised_variance(closes, first, last, settings.horizon)
        forecasts[name] = {}
        for model in forecasters:
            if progress is not None:
                progress(f"{name}: {model}")
            forecasts[name][model] = walk_forward(closes, model, first, last, settings)
    return ForecastRun(history, tuple(names), tuple(forecasters), first, last, params, forecasts, realised)


def _round(value: float, digits: int = 6) -> float | None:
    return None if not math.isfinite(value) else float(f"{value:.{digits}g}")


def build_forecast_report(run: ForecastRun) -> dict[str, Any]:
    """Every figure of the evaluation, JSON-ready."""
    horizon = run.params.fhs_mpor_days
    results: dict[str, dict[str, Any]] = {}
    for name in run.names:
        rv = run.realised[name]
        base = run.forecasts[name]["ewma"].variance if "ewma" in run.forecasts[name] else None
        base_qlike = qlike(rv, base) if base is not None else None
        base_mse = (rv - base) ** 2 if base is not None else None
        rows: dict[str, Any] = {}
        for model in run.forecasters:
            walk = run.forecasts[name][model]
            loss_q = qlike(rv, walk.variance)
            loss_m = (rv - walk.variance) ** 2
            row: dict[str, Any] = {
                "qlike": _round(float(loss_q.mean())),
                "mse": _round(float(loss_m.mean())),
                "fallbacks": int(walk.fallback.sum()),
                "fallback_reasons": list(walk.reasons),
                "fits": len(walk.fits),
                "mean_forecast_vol": _round(float(np.sqrt(walk.variance / horizon).mean())),
            }
            if base_qlike is not None and base_mse is not None and model != "ewma":
                dm_q = diebold_mariano(base_qlike, loss_q, horizon)
                dm_m = diebold_mariano(base_mse, loss_m, horizon)
                row["qlike_minus_ewma"] = _round(float(loss_q.mean() - base_qlike.mean()))
                row["mse_relative_to_ewma"] = _round(float(loss_m.mean() / base_mse.mean())) if base_mse.mean() > 0 else None
                row["dm_qlike"] = {"statistic": _round(dm_q.statistic), "p_value": _round(dm_q.p_value), "lags": dm_q.lags}
                row["dm_mse"] = {"statistic": _round(dm_m.statistic), "p_value": _round(dm_m.p_value), "lags": dm_m.lags}
            rows[model] = row
        results[name] = {
            "days": int(rv.size),
            "mean_realised_vol": _round(float(np.sqrt(rv / horizon).mean())),
            "forecasters": rows,
        }
    dates = run.history.dates
    return {
        "from": dates[run.first],
        "to": dates[run.last],
        "days": run.last - run.first + 1,
        "underlyings": list(run.names),
        "forecasters": list(run.forecasters),
        "params": {
            "horizon_days": horizon,
            "ewma_lambda": run.params.fhs_lambda,
            "ewma_lookback_days": run.params.fhs_lookback_days,
            "forecast_window_days": run.params.forecast_window_days,
            "forecast_refit_days": run.params.forecast_refit_days,
        },
        "loss": {
            "qlike": "mean of ln F + RV / F (Patton 2011); lower is better",
            "mse": "mean of (RV - F)^2, RV and F in squared daily log return units",
            "dm": "Diebold-Mariano against ewma, Newey-West variance; statistic > 0: smaller losses than ewma",
        },
        "results": results,
        "summary": summarise(results, run.forecasters),
    }


def summarise(results: dict[str, dict[str, Any]], forecasters: Sequence[str]) -> dict[str, Any]:
    """Per forecaster: on how many underlyings it beat EWMA on QLIKE, significantly (DM p < 5%)."""
    summary: dict[str, Any] = {}
    for model in forecasters:
        if model == "ewma":
            continue
        better = worse = significant_better = significant_worse = 0
        for result in results.values():
            row = result["forecasters"][model]
            difference = row.get("qlike_minus_ewma")
            if difference is None:
                continue
            p = row["dm_qlike"]["p_value"]
            if difference < 0:
                better += 1
                significant_better += int(p is not None and p < 0.05)
            elif difference > 0:
                worse += 1
                significant_worse += int(p is not None and p < 0.05)
        summary[model] = {
            "qlike_better_than_ewma": better,
            "qlike_worse_than_ewma": worse,
            "significantly_better": significant_better,
            "significantly_worse": significant_worse,
        }
    return summary


def evaluation_table(report: dict[str, Any]) -> str:
    """The evaluation as a Markdown table (docs quote it)."""
    lines = [
        "| underlying | forecaster | QLIKE | QLIKE − EWMA | DM (QLIKE) | p | MSE / EWMA | DM (MSE) | p | fallbacks |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, result in report["results"].items():
        for model, row in result["forecasters"].items():
            if model == "ewma":
                lines.append(f"| {name} | ewma | {row['qlike']:.4f} | | | | 1 | | | {row['fallbacks']} |")
                continue
            lines.append(
                f"| {name} | {model} | {row['qlike']:.4f} | {row['qlike_minus_ewma']:+.4f} | {row['dm_qlike']['statistic']:+.2f} | "
                f"{row['dm_qlike']['p_value']:.3f} | {row['mse_relative_to_ewma']:.3f} | {row['dm_mse']['statistic']:+.2f} | "
                f"{row['dm_mse']['p_value']:.3f} | {row['fallbacks']} |"
            )
    return "\n".join(lines) + "\n"


def _png(figure: Any) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _plots(run: ForecastRun, report: dict[str, Any]) -> list[tuple[str, str]]:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    horizon = run.params.fhs_mpor_days
    dates = np.array(run.history.dates[run.first : run.last + 1], dtype="datetime64[D]")
    annual = math.sqrt(252.0)
    plots = []
    for name in run.names:
        figure, axes = pyplot.subplots(figsize=(11, 3.6))
        realised = np.sqrt(run.realised[name] / horizon) * annual
        axes.scatter(dates, realised, s=1.5, color="0.75", label=f"realised ({horizon}-day, annualised)")
        # A 22-day centred mean of the realised variance, to see the level through the noise.
        kernel = np.ones(22) / 22.0
        smooth = np.sqrt(np.convolve(run.realised[name] / horizon, kernel, mode="same")) * annual
        axes.plot(dates, smooth, color="tab:red", linewidth=0.8, linestyle="--", label="realised, 22-day mean")
        for model in run.forecasters:
            axes.plot(dates, np.sqrt(run.forecasts[name][model].variance / horizon) * annual, linewidth=0.7, color=COLOURS.get(model), label=model)
        axes.set_ylim(0, max(float(np.percentile(realised, 99.5)), float(smooth.max())) * 1.1)
        axes.set_title(f"{name}: forecast against realised volatility (annualised)")
        axes.legend(loc="upper left", fontsize=7, ncol=3)
        plots.append((f"{name} forecasts", _png(figure)))
        pyplot.close(figure)

    models = [m for m in run.forecasters if m != "ewma"]
    if models and "ewma" in run.forecasters:
        figure, axes = pyplot.subplots(figsize=(8, 3.2))
        width = 0.8 / max(1, len(models))
        for index, model in enumerate(models):
            values = [report["results"][name]["forecasters"][model]["qlike_minus_ewma"] or 0.0 for name in run.names]
            axes.bar(np.arange(len(run.names)) + index * width, values, width, label=model, color=COLOURS.get(model))
        axes.axhline(0.0, color="black", linewidth=0.6)
        axes.set_xticks(np.arange(len(run.names)) + 0.4 - width / 2, list(run.names))
        axes.set_ylabel("QLIKE − EWMA (below 0: better)")
        axes.set_title("mean QLIKE against the EWMA baseline")
        axes.legend(fontsize=8)
        plots.append(("QLIKE against EWMA", _png(figure)))
        pyplot.close(figure)
    return plots


def write_forecast_report(run: ForecastRun, out: Path) -> dict[str, Any]:
    """Write out/report.json and out/report.html; return the report."""
    out.mkdir(parents=True, exist_ok=True)
    report = build_forecast_report(run)
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    rows = []
    for name, result in report["results"].items():
        for model, row in result["forecasters"].items():
            dm_q = row.get("dm_qlike", {})
            dm_m = row.get("dm_mse", {})
            cells = (
                name, model, row["qlike"], row.get("qlike_minus_ewma", ""), dm_q.get("statistic", ""), dm_q.get("p_value", ""),
                row.get("mse_relative_to_ewma", 1 if model == "ewma" else ""), dm_m.get("statistic", ""), dm_m.get("p_value", ""),
                row["fallbacks"], row["mean_forecast_vol"],
            )
            rows.append("<tr>" + "".join(f"<td>{html.escape(str(cell))}</td>" for cell in cells) + "</tr>")
    header = "".join(
        f"<th>{h}</th>"
        for h in ("underlying", "forecaster", "QLIKE", "QLIKE − EWMA", "DM QLIKE", "p", "MSE / EWMA", "DM MSE", "p", "fallbacks", "mean daily vol")
    )
    reasons = "".join(
        f"<li>{html.escape(name)} {html.escape(model)}: {html.escape(reason)}</li>"
        for name, result in report["results"].items()
        for model, row in result["forecasters"].items()
        for reason in row["fallback_reasons"]
    )
    images = "".join(
        f'<h3>{html.escape(title)}</h3><img alt="{html.escape(title)}" src="data:image/png;base64,{data}">' for title, data in _plots(run, report)
    )
    params = report["params"]
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>crossclear volatility forecasts {report['from']} to {report['to']}</title>
<style>body{{font-family:sans-serif;max-width:1150px;margin:2em auto}}td,th{{padding:2px 8px;text-align:right;border-bottom:1px solid #ddd}}</style>
</head><body>
<h1>Volatility forecasts, {report['from']} to {report['to']}</h1>
<p>{report['days']} decision days; underlyings {html.escape(', '.join(report['underlyings']))}. Each forecaster predicts the
variance of the next {params['horizon_days']} days' return from the closes up to the decision day, refitted every
{params['forecast_refit_days']} days on the last {params['forecast_window_days']} returns; the EWMA is v2's filter
(λ = {params['ewma_lambda']}, {params['ewma_lookback_days']} returns). QLIKE = ln F + RV/F (lower is better);
DM: Diebold–Mariano against the EWMA (statistic &gt; 0: smaller losses than the EWMA).</p>
<table><tr>{header}</tr>{''.join(rows)}</table>
{'<h2>Fallbacks to the EWMA</h2><ul>' + reasons + '</ul>' if reasons else ''}
<h2>Plots</h2>{images}
</body></html>
"""
    (out / "report.html").write_text(page)
    return report


def check_forecasters(names: Sequence[str]) -> tuple[str, ...]:
    """Validated forecaster names, the EWMA baseline always first."""
    unknown = [name for name in names if name not in FORECASTER_NAMES]
    if unknown:
        raise UsageError(f"--forecasters: unknown forecaster {unknown[0]!r} (expected: {', '.join(FORECASTER_NAMES)})")
    return ("ewma", *(name for name in dict.fromkeys(names) if name != "ewma"))
