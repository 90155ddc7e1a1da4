"""`crossclear risk simulate`: the cascade simulator (docs/cascade-simulator.md)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from crossclear._errors import UsageError
from crossclear.margin import parse_inputs
from crossclear.margin._json import _read_json
from crossclear.risk import books as standard_books
from crossclear.risk._inputs import parse_fhs_params, split_risk_document
from crossclear.risk.cascade.market import ALL_COMBOS, CascadeParams, PathSource, SimulationSpec, build_spec
from crossclear.risk.cascade.run import SimulationArrays, run_local


def register(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    simulate = actions.add_parser(
        "simulate",
        help="replay price paths through margin, variation margin, close-outs and the default waterfall",
        description="Cascade simulator: bad debt, insurance-fund draw, auto-deleveraging and liquidation slippage "
        "of each margin mode and model over many price paths (docs/cascade-simulator.md).",
    )
    simulate.add_argument("--paths", type=int, required=True, metavar="N", help="price paths to simulate")
    simulate.add_argument("--books", type=Path, required=True, metavar="B",
                          help="ACCOUNTS file, or a directory written by `crossclear risk books` (accounts.json, risk.json)")
    simulate.add_argument("--out", type=Path, required=True, metavar="DIR", help="where report.json and report.html go")
    simulate.add_argument("--risk", type=Path, metavar="RISK.json", help="RISK file (default: the books directory's, or the standard one)")
    simulate.add_argument("--source", choices=("synthetic", "arch"), default="synthetic",
                          help="synthetic crypto paths (default) or real closes bundled with arch")
    simulate.add_argument("--series", default="SPX,NDX,WTI", help="arch: comma-separated series (default SPX,NDX,WTI)")
    simulate.add_argument("--days", type=int, default=30, help="days after the opening day (default 30)")
    simulate.add_argument("--seed", type=int, default=2024, help="synthetic: seed of path 0 (default 2024)")
    simulate.add_argument("--buffer", type=float, default=1.0, help="collateral posted = buffer x required (default 1.0)")
    simulate.add_argument("--fund", type=float, help="insurance fund in USDC (default: 1%% of open-interest notional)")
    simulate.add_argument("--impact", type=float, default=1.0, help="square-root impact coefficient Y (default 1.0)")
    simulate.add_argument("--depth", type=float, default=1.0, help="daily volume as a multiple of open interest (default 1.0)")
    simulate.add_argument("--permanent", type=float, default=0.5, help="permanent fraction of a round's impact (default 0.5)")
    simulate.add_argument("--market-makers", type=int, default=4, help="counterparty accounts (default 4)")
    simulate.add_argument("--steps", type=int, default=20, help="close-out granularity: k/steps of each position (default 20)")
    simulate.add_argument("--model", choices=("grid", "fhs"), help="only this model (default: both)")
    where = simulate.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, help="start a local Dask cluster of N worker processes")
    where.add_argument("--scheduler", metavar="ADDRESS", help="run on a running Dask scheduler (tcp://host:port)")
    simulate.set_defaults(handler=run_simulate)


def _underlyings(accounts: Any) -> tuple[str, ...]:
    names: list[str] = []
    for account in accounts.get("accounts", []) if isinstance(accounts, dict) else []:
        for position in account.get("positions", []) if isinstance(account, dict) else []:
            name = position.get("underlying") if isinstance(position, dict) else None
            if isinstance(name, str) and name not in names:
                names.append(name)
    return tuple(names)


def load_books(books: Path, risk: Path | None) -> tuple[Any, Any, str, str]:
    """(RISK document, ACCOUNTS document, their labels) for --books and --risk."""
    if books.is_dir():
        accounts_path = books / "accounts.json"
        if not accounts_path.is_file():
            raise UsageError(f"{books}: no accounts.json in this directory (write one with `crossclear risk books --out {books}`)")
        if risk is None and (books / "risk.json").is_file():
            risk = books / "risk.json"
    elif books.is_file():
        accounts_path = books
    else:
        raise UsageError(f"{books}: no such books file or directory")
    accounts = _read_json(accounts_path)
    if risk is not None:
        return _read_json(risk), accounts, str(risk), str(accounts_path)
    return standard_books.standard_risk(_underlyings(accounts)), accounts, "standard RISK", str(accounts_path)


def load_simulation(args: argparse.Namespace) -> SimulationSpec:
    """Parse the flags and files into a spec; UsageError names any problem."""
    if args.paths < 1:
        raise UsageError(f"--paths must be at least 1, got {args.paths}")
    if args.workers is not None and args.workers < 1:
        raise UsageError(f"--workers must be at least 1, got {args.workers}")
    risk, accounts, risk_label, accounts_label = load_books(args.books, args.risk)
    v1_document, raw_v2 = split_risk_document(risk, risk_label)
    margin = parse_inputs(v1_document, accounts, risk_label, accounts_label)
    fhs = parse_fhs_params(raw_v2, risk_label, margin.market.underlying_names)
    if args.source == "arch":
        from crossclear.risk.data import load_arch_history

        names = tuple(name.strip() for name in args.series.split(",") if name.strip())
        source = PathSource("arch", args.seed, load_arch_history(names))
    else:
        source = PathSource("synthetic", args.seed)
    params = CascadeParams(
        days=args.days, buffer=args.buffer, fund=args.fund, impact=args.impact, depth=args.depth, permanent=args.permanent,
        market_makers=args.market_makers, steps=args.steps,
    )
    combos = tuple(combo for combo in ALL_COMBOS if args.model is None or combo[0] == args.model)
    return build_spec(margin, fhs, params, source, args.paths, combos)


class _Progress:
    """A one-line progress bar on standard error, drawn only on a terminal."""

    def __init__(self) -> None:
        self.enabled = sys.stderr.isatty()
        self.started = time.perf_counter()

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled or (done % 10 and done != total):
            return
        filled = 30 * done // max(total, 1)
        sys.stderr.write(f"\r[{'#' * filled}{'.' * (30 - filled)}] {done}/{total} paths, {time.perf_counter() - self.started:.0f} s")
        if done == total:
            sys.stderr.write("\n")
        sys.stderr.flush()


def run_simulate(args: argparse.Namespace) -> int:
    from crossclear.risk.cascade.report import write_report

    spec = load_simulation(args)
    started = time.perf_counter()
    arrays: SimulationArrays
    workers = 1
    if args.workers is None and args.scheduler is None:
        arrays = run_local(spec, progress=_Progress())
    else:
        from crossclear.risk.cascade.run import run_on
        from crossclear.risk.distributed import client_for

        with client_for(args.workers, args.scheduler) as client:
            workers = max(1, len(client.scheduler_info()["workers"]))
            arrays = run_on(client, spec, show_progress=sys.stderr.isatty())
    seconds = time.perf_counter() - started
    report = write_report(spec, arrays, args.out, seconds, workers)
    summary = {
        f"{row['model']} {row['mode']}": {key: row[key] for key in ("collateral_required", "bad_debt_p95", "bad_debt_p99", "insurance_draw_p99", "adl_events")}
        for row in report["headline"]
    }
    print(json.dumps({"out": str(args.out), "paths": spec.paths, "seconds": round(seconds, 1), "workers": workers, "headline": summary}))
    return 0
