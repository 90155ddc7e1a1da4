"""`crossclear risk backtest`, `risk history` and `risk books`."""

from __future__ import annotations

import argparse
import datetime
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

from crossclear._errors import UsageError
from crossclear.margin._json import _read_json
from crossclear.margin._model import FloatArray
from crossclear.risk import books, synthetic
from crossclear.risk._history import read_history, write_history
from crossclear.risk._model import History
from crossclear.risk._inputs import parse_es_inputs
from crossclear.risk.backtest import BacktestArrays, BacktestSpec, forecast_sigmas, run_local, select_days
from crossclear.risk.forecast import FORECASTER_NAMES
from crossclear.risk.data import ARCH_SERIES, load_arch_history


def register(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    backtest = actions.add_parser("backtest", help="margin every day with the history up to it, compare with realised losses")
    backtest.add_argument("--history", type=Path, required=True, metavar="HISTORY.csv")
    backtest.add_argument("--accounts", type=Path, required=True, metavar="ACCOUNTS.json")
    backtest.add_argument("--risk", type=Path, required=True, metavar="RISK.json")
    backtest.add_argument("--from", dest="start", required=True, metavar="YYYY-MM-DD", help="first day")
    backtest.add_argument("--to", dest="stop", required=True, metavar="YYYY-MM-DD", help="last day")
    backtest.add_argument("--out", type=Path, required=True, metavar="DIR", help="where report.json and report.html go")
    backtest.add_argument("--model", choices=("grid", "fhs"), help="only this model (default: both)")
    backtest.add_argument(
        "--forecasters", default="",
        help=f"also run FHS with these volatility forecasters, side by side (comma-separated, of {', '.join(FORECASTER_NAMES)})",
    )
    where = backtest.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, help="start a local Dask cluster of N worker processes")
    where.add_argument("--scheduler", metavar="ADDRESS", help="run on a running Dask scheduler (tcp://host:port)")
    backtest.set_defaults(handler=run_backtest)

    history = actions.add_parser("history", help="write a HISTORY file from arch's bundled closes or the crypto generator")
    history.add_argument("source", choices=("arch", "synthetic"))
    history.add_argument("--out", type=Path, required=True, metavar="HISTORY.csv")
    history.add_argument("--series", default="SPX,NDX,WTI", help=f"arch: comma-separated, of {', '.join(ARCH_SERIES)}")
    history.add_argument("--from", dest="start", metavar="YYYY-MM-DD", help="arch: first date")
    history.add_argument("--to", dest="stop", metavar="YYYY-MM-DD", help="arch: last date")
    history.add_argument("--days", type=int, default=3000, help="synthetic: days to generate (default 3000)")
    history.add_argument("--seed", type=int, default=2020, help="synthetic: seed (default 2020)")
    history.add_argument("--columns", help="synthetic: output columns, NAME (a generated series: BTC, ETH, SOL) or NAME=SERIES (a copy under another name), e.g. ETH,BTC,WETH=ETH")
    history.add_argument("--end-prices", help="synthetic: NAME=PRICE,... rescale these columns to end at PRICE (returns unchanged)")
    history.add_argument("--last-date", metavar="YYYY-MM-DD", help="synthetic: date of the last row (default: the generator's calendar from 2016-01-01)")
    history.set_defaults(handler=run_history)

    standard = actions.add_parser("books", help="write RISK and ACCOUNTS files of the standard backtest books")
    standard.add_argument("--underlyings", default="SPX,NDX,WTI", help="comma-separated (default SPX,NDX,WTI)")
    standard.add_argument("--copies", type=int, default=1, help="accounts of each book type (default 1)")
    standard.add_argument("--out", type=Path, required=True, metavar="DIR", help="writes DIR/risk.json and DIR/accounts.json")
    standard.set_defaults(handler=run_books)


def load_spec(
    history_path: Path, accounts_path: Path, risk_path: Path, start: str, stop: str, model: str | None, forecasters: tuple[str, ...] = ()
) -> BacktestSpec:
    """Parse the three files and pick the backtest days; UsageError names any problem.

    `forecasters`: more forecasters to run FHS with, beside params.fhs_forecaster; every
    forecaster's walk-forward volatility is computed here, once, before the days are split."""
    history = read_history(history_path)
    labels = (str(risk_path), str(accounts_path), str(history_path))
    risk, accounts = _read_json(risk_path), _read_json(accounts_path)
    # parse_es_inputs checks the columns and that L + 1 rows exist at all; the days are
    # checked against the lookback and the horizon below.
    inputs = parse_es_inputs(risk, accounts, history, labels, forecast=False)
    first, last = select_days(history, inputs.fhs, start, stop, str(history_path))
    models = (model,) if model else ("grid", "fhs")
    unknown = [name for name in forecasters if name not in FORECASTER_NAMES]
    if unknown:
        raise UsageError(f"--forecasters: unknown forecaster {unknown[0]!r} (expected: {', '.join(FORECASTER_NAMES)})")
    extra = tuple(name for name in dict.fromkeys(forecasters) if name != inputs.fhs.fhs_forecaster) if "fhs" in models else ()
    sigma: dict[str, FloatArray] = {}
    fallbacks: dict[str, dict[str, int]] = {}
    if "fhs" in models:
        sigma, fallbacks = forecast_sigmas(history, inputs.margin, inputs.fhs, first, last, (inputs.fhs.fhs_forecaster, *extra))
    return BacktestSpec(
        margin=inputs.margin, fhs=inputs.fhs, history=history, first=first, last=last, models=models,
        forecasters=extra, sigma=sigma, forecast_fallbacks=fallbacks,
    )


class TerminalProgress:
    """A one-line progress bar on standard error, drawn only on a terminal."""

    def __init__(self) -> None:
        self.enabled = sys.stderr.isatty()
        self.started = time.perf_counter()

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled or (done % 10 and done != total):
            return
        width = 30
        filled = width * done // max(total, 1)
        elapsed = time.perf_counter() - self.started
        sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} days, {elapsed:.0f} s")
        if done == total:
            sys.stderr.write("\n")
        sys.stderr.flush()


def run_backtest(args: argparse.Namespace) -> int:
    from crossclear.risk.report import write_report

    forecasters = tuple(name.strip() for name in args.forecasters.split(",") if name.strip())
    spec = load_spec(args.history, args.accounts, args.risk, args.start, args.stop, args.model, forecasters)
    if args.workers is not None and args.workers < 1:
        raise UsageError("--workers must be at least 1")
    arrays: BacktestArrays
    if args.workers is None and args.scheduler is None:
        arrays = run_local(spec, progress=TerminalProgress())
    else:
        from crossclear.risk.distributed import client_for, run_on

        with client_for(args.workers, args.scheduler) as client:
            arrays = run_on(client, spec, show_progress=sys.stderr.isatty())
    report = write_report(spec, arrays, args.out)
    summary = {
        f"{model} {mode}": figures["coverage"] for model, modes in report["models"].items() for mode, figures in modes.items()
    }
    print(json.dumps({"out": str(args.out), "from": report["from"], "to": report["to"], "account_days": report["account_days"], "coverage": summary}))
    return 0


def run_history(args: argparse.Namespace) -> int:
    if args.source == "arch":
        names = tuple(name.strip() for name in args.series.split(",") if name.strip())
        history = load_arch_history(names, args.start, args.stop)
    else:
        if args.days < 2:
            raise UsageError("--days must be at least 2")
        history = _shape(synthetic.generate(args.days, args.seed).history, args.columns, args.end_prices, args.last_date)
    write_history(args.out, history.dates, history.names, history.closes)
    print(json.dumps({"out": str(args.out), "rows": len(history.dates), "from": history.dates[0], "to": history.dates[-1], "columns": list(history.names)}))
    return 0


def _pairs(text: str, option: str) -> list[tuple[str, str]]:
    pairs = []
    for item in (part.strip() for part in text.split(",") if part.strip()):
        name, _, value = item.partition("=")
        pairs.append((name.strip(), value.strip()))
    if not pairs:
        raise UsageError(f"{option} names nothing")
    return pairs


def _shape(history: History, columns: str | None, end_prices: str | None, last_date: str | None) -> History:
    """The generated history with chosen, renamed, rescaled columns and a moved calendar (a
    node's HISTORY file: its columns are the RISK file's names and it ends where live prices start)."""
    names, closes, dates = history.names, history.closes, history.dates
    if columns:
        chosen = _pairs(columns, "--columns")
        for name, source in chosen:
            if (source or name) not in names:
                raise UsageError(f"--columns: {source or name!r} is not a generated series (those are {', '.join(names)})")
        closes = np.column_stack([history.closes[:, names.index(source or name)] for name, source in chosen])
        names = tuple(name for name, _ in chosen)
    if end_prices:
        closes = closes.copy()
        for name, value in _pairs(end_prices, "--end-prices"):
            if name not in names:
                raise UsageError(f"--end-prices: no column {name!r} (columns: {', '.join(names)})")
            try:
                price = float(value)
            except ValueError:
                raise UsageError(f"--end-prices: {name}={value!r} is not a number") from None
            if not math.isfinite(price) or price <= 0:
                raise UsageError(f"--end-prices: {name} must end at a positive price, got {value!r}")
            column = names.index(name)
            closes[:, column] = closes[:, column] * (price / closes[-1, column])
    if last_date:
        try:
            end = datetime.date.fromisoformat(last_date)
        except ValueError:
            raise UsageError(f"--last-date {last_date!r} is not an ISO date (YYYY-MM-DD)") from None
        dates = tuple((end - datetime.timedelta(days=len(dates) - 1 - k)).isoformat() for k in range(len(dates)))
    return History(dates=dates, names=names, closes=np.ascontiguousarray(closes))


def run_books(args: argparse.Namespace) -> int:
    names = tuple(name.strip() for name in args.underlyings.split(",") if name.strip())
    if not names or args.copies < 1:
        raise UsageError("--underlyings must name at least one underlying and --copies be at least 1")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "risk.json").write_text(json.dumps(books.standard_risk(names), indent=2) + "\n")
    accounts = books.standard_accounts(names, args.copies)
    (args.out / "accounts.json").write_text(json.dumps(accounts, indent=2) + "\n")
    print(json.dumps({"out": str(args.out), "accounts": len(accounts["accounts"])}))
    return 0
