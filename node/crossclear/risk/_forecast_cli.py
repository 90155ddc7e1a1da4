"""`crossclear risk forecast`: walk-forward evaluation of the volatility forecasters."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from crossclear._errors import UsageError
from crossclear.margin._json import _read_json
from crossclear.risk._history import read_history
from crossclear.risk._inputs import parse_fhs_params, split_risk_document
from crossclear.risk._model import FhsParams
from crossclear.risk.forecast import FORECASTER_NAMES


def register(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    forecast = actions.add_parser("forecast", help="walk-forward evaluation of the volatility forecasters (QLIKE, MSE, Diebold-Mariano)")
    forecast.add_argument("--history", type=Path, required=True, metavar="HISTORY.csv")
    forecast.add_argument("--from", dest="start", required=True, metavar="YYYY-MM-DD", help="first decision day")
    forecast.add_argument("--to", dest="stop", required=True, metavar="YYYY-MM-DD", help="last decision day")
    forecast.add_argument("--out", type=Path, required=True, metavar="DIR", help="where report.json and report.html go")
    forecast.add_argument("--series", help="comma-separated HISTORY columns (default: all)")
    forecast.add_argument("--forecasters", default=",".join(FORECASTER_NAMES), help=f"comma-separated, of {', '.join(FORECASTER_NAMES)} (ewma is always the baseline)")
    forecast.add_argument("--risk", type=Path, metavar="RISK.json", help="take fhs_* and forecast_* params from this RISK file")
    forecast.add_argument("--refit-every", type=int, help="days between fits (forecast_refit_days)")
    forecast.add_argument("--window", type=int, help="returns each fit uses (forecast_window_days)")
    forecast.set_defaults(handler=run_forecast)


def _params(args: argparse.Namespace) -> FhsParams:
    params = FhsParams()
    if args.risk is not None:
        document = _read_json(args.risk)
        _, raw = split_risk_document(document, str(args.risk))
        underlyings = tuple(document.get("underlyings", {})) if isinstance(document, dict) else ()
        params = parse_fhs_params(raw, str(args.risk), underlyings)
    for option, field in (("refit_every", "forecast_refit_days"), ("window", "forecast_window_days")):
        value = getattr(args, option)
        if value is not None:
            if value < 1:
                raise UsageError(f"--{option.replace('_', '-')} must be at least 1")
            params = dataclasses.replace(params, **{field: value})
    return params


def run_forecast(args: argparse.Namespace) -> int:
    from crossclear.risk._backtest_cli import TerminalProgress
    from crossclear.risk.forecast_report import check_forecasters, decision_rows, run_forecasts, write_forecast_report

    history = read_history(args.history)
    params = _params(args)
    names = tuple(n.strip() for n in args.series.split(",") if n.strip()) if args.series else history.names
    for name in names:
        if name not in history.names:
            raise UsageError(f"{args.history}: row 1: no column {name!r} (columns: {', '.join(history.names)})")
    forecasters = check_forecasters([n.strip() for n in args.forecasters.split(",") if n.strip()])
    first, last = decision_rows(history, params, args.start, args.stop, str(args.history))
    bar = TerminalProgress()
    steps = len(names) * len(forecasters)
    done = [0]

    def progress(label: str) -> None:
        done[0] += 1
        if bar.enabled:
            sys.stderr.write(f"\r{done[0]}/{steps} {label:<30}")
            sys.stderr.flush()

    run = run_forecasts(history, names, forecasters, first, last, params, progress)
    if bar.enabled:
        sys.stderr.write("\n")
    report = write_forecast_report(run, args.out)
    summary = {
        name: {model: row["qlike"] for model, row in result["forecasters"].items()} for name, result in report["results"].items()
    }
    print(json.dumps({"out": str(args.out), "from": report["from"], "to": report["to"], "days": report["days"], "qlike": summary}))
    return 0
