"""`crossclear risk`: v2 (filtered historical simulation) margin, and backtests of v1 and v2."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from crossclear.margin import Mode, compute_margin
from crossclear.risk._inputs import EsInputs, load_es_inputs
from crossclear.risk._kernel_api import compute_es, default_threads
from crossclear.risk._model import EsResult


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "risk",
        help="v2 margin (filtered historical simulation ES) and backtests of v1 and v2",
        description="Methodology v2 (docs/margin-methodology.md, v2 section) and its backtests (docs/risk-v2.md).",
    )
    actions = parser.add_subparsers(dest="risk_action", metavar="ACTION", required=True)

    es = actions.add_parser("es", help="v2 portfolio margin of every account, beside v1's grid")
    es.add_argument("--risk", type=Path, required=True, metavar="RISK.json", help="v1 RISK file; fhs_* params allowed")
    es.add_argument("--accounts", type=Path, required=True, metavar="ACCOUNTS.json", help="collateral and positions per account")
    es.add_argument("--history", type=Path, required=True, metavar="HISTORY.csv", help="daily closes: date,<U1>,<U2>,... oldest first")
    es.add_argument("--format", choices=("json", "table"), default="json", help="json for programs (default), table for people")
    es.add_argument("--threads", type=int, default=0, help="kernel threads (default: every core)")
    es.set_defaults(handler=run_es)

    from crossclear.risk import _backtest_cli, _forecast_cli

    _backtest_cli.register(actions)
    _forecast_cli.register(actions)

    from crossclear.risk.cascade import _cli as _cascade_cli

    _cascade_cli.register(actions)


def es_document(inputs: EsInputs, result: EsResult, grid_im: list[float]) -> dict[str, Any]:
    """The JSON output of `risk es`: one object per account, in input order."""
    rows = []
    for row, account_id in enumerate(inputs.margin.account_ids):
        rows.append(
            {
                "id": account_id,
                "es": float(result.es[row]),
                "stress": float(result.stress[row]),
                "mm": float(result.mm[row]),
                "im": float(result.im[row]),
                "required": float(result.required[row]),
                "upnl": float(result.upnl[row]),
                "grid_im": grid_im[row],
            }
        )
    names = inputs.margin.market.underlying_names
    forecast = inputs.forecast
    return {
        "model": "fhs",
        "forecaster": {
            "name": inputs.fhs.fhs_forecaster,
            "params_hash": forecast.digest() if forecast is not None else "",
            "sigma": {names[c]: float(forecast.sigma[c]) for c, fit in enumerate(forecast.fits) if fit is not None} if forecast else {},
            "fallbacks": [{"underlying": names[c], "reason": why} for c, why in forecast.fallbacks] if forecast else [],
        },
        "scenarios": inputs.fhs.fhs_lookback_days,
        "tail_count": inputs.fhs.tail_count,
        "history": {"from": inputs.dates[0], "to": inputs.dates[-1]},
        "accounts": rows,
    }


def format_es_table(document: dict[str, Any]) -> str:
    """One row per account: v2's figures, then the v1 grid's portfolio im beside them."""
    headers = ["account", "es", "stress", "mm", "im", "required", "grid im"]
    rows = [
        [a["id"], *(f"{a[key]:,.2f}" for key in ("es", "stress", "mm", "im", "required", "grid_im"))]
        for a in document["accounts"]
    ]
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows)]
    lines = []
    for index, row in enumerate([headers, *rows]):
        lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))).rstrip())
        if index == 0:
            lines.append("  ".join("-" * w for w in widths))
    history = document["history"]
    lines.append("")
    lines.append(
        f"fhs: ES of the {document['tail_count']} worst of {document['scenarios']} filtered historical scenarios "
        f"({history['from']} to {history['to']}); grid im = v1 portfolio im"
    )
    forecaster = document["forecaster"]
    if forecaster["name"] != "ewma":
        sigma = ", ".join(f"{name} {value:.4%}" for name, value in forecaster["sigma"].items())
        lines.append(f"today's volatility from {forecaster['name']} ({sigma}; parameters {forecaster['params_hash'][:16]})")
    return "\n".join(lines) + "\n"


def run_es(args: argparse.Namespace) -> int:
    inputs = load_es_inputs(args.risk, args.accounts, args.history)
    margin = inputs.margin
    forecast = inputs.forecast
    for column, why in forecast.fallbacks if forecast else ():
        sys.stderr.write(f"{args.risk}: {margin.market.underlying_names[column]}: {why}; its volatility is the EWMA's\n")
    result = compute_es(
        inputs.fhs, margin.params, margin.market, margin.instruments, margin.book, inputs.closes, args.threads or default_threads(),
        sigma_forecast=forecast.sigma if forecast else None,
    )
    grid = compute_margin(margin.params, margin.market, margin.instruments, margin.book)
    document = es_document(inputs, result, [float(value) for value in grid.im[:, Mode.PORTFOLIO]])
    if args.format == "json":
        json.dump(document, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(format_es_table(document))
    return 0
