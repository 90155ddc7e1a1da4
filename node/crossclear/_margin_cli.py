"""`crossclear margin`: margin for every account of an ACCOUNTS file under a RISK file, or from a running node.

A command-line module: it sits above both the margin package and the node API client."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from crossclear._errors import UsageError
from crossclear.margin import Mode, compute_margin
from crossclear.margin._json import load_inputs, result_to_json


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "margin",
        help="compute margin from files, or ask a running node (margin get ACCOUNT --node ...)",
        description="Compute margin for every account in ACCOUNTS under the RISK file "
        "(methodology: docs/margin-methodology.md), or with `get ACCOUNT --node HOST:PORT` ask a "
        "running node for an account's margin (`stream` follows it as it changes).",
    )
    parser.add_argument("action", nargs="?", choices=("get", "stream"), help="ask a node instead of computing from files")
    parser.add_argument("account", nargs="?", help="account address, for get and stream")
    parser.add_argument("--node", default=None, metavar="HOST:PORT", help="node to ask (default: a node of the running devnet, else 127.0.0.1:50051)")
    parser.add_argument("--risk", type=Path, metavar="RISK.json", help="prices, vols, haircut inputs, parameters")
    parser.add_argument("--accounts", type=Path, metavar="ACCOUNTS.json", help="collateral and positions per account")
    parser.add_argument("--format", choices=("json", "table"), default=None, help="json for programs, table for people")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.action is not None:
        return _ask_node(args)
    if args.risk is None or args.accounts is None:
        raise UsageError("margin needs --risk RISK.json and --accounts ACCOUNTS.json (or `margin get ACCOUNT --node HOST:PORT`)")
    inputs = load_inputs(args.risk, args.accounts)
    result = compute_margin(inputs.params, inputs.market, inputs.instruments, inputs.book)
    document = result_to_json(inputs.account_ids, result)
    if args.format in (None, "json"):
        json.dump(document, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(format_table(document["accounts"]))
    return 0


def _ask_node(args: argparse.Namespace) -> int:
    import asyncio

    from google.protobuf.json_format import MessageToDict

    from crossclear.rpc.client import format_margin, get_margin, resolve_node

    if not args.account and args.action == "get":
        raise UsageError("margin get needs an ACCOUNT")
    node = resolve_node(args.node)
    if args.action == "get":
        margin = asyncio.run(get_margin(node, args.account))
        if args.format == "json":
            print(json.dumps(MessageToDict(margin, preserving_proto_field_name=True), indent=2))
        else:
            sys.stdout.write(format_margin(margin))
        return 0
    from crossclear.rpc.client import stream_margin

    asyncio.run(stream_margin(node, args.account or "", lambda m: sys.stdout.write(format_margin(m) + "\n")))
    return 0


def _money(value: float) -> str:
    return f"{value:,.2f}"


def format_table(accounts: list[dict[str, Any]]) -> str:
    """One row per account: equity, what each mode requires, health, and the efficiency gain."""
    headers = ["account", "equity", *(f"{mode.label} req" for mode in Mode), "health", "liquidatable", "efficiency"]
    rows = []
    for account in accounts:
        modes = account["modes"]
        isolated = modes["isolated"]["required"]
        portfolio = modes["portfolio"]["required"]
        if portfolio > 0:
            efficiency = f"{isolated / portfolio:.2f}x"
        else:
            efficiency = "n/a" if isolated == 0 else "inf"
        health = account["health"]
        rows.append(
            [
                account["id"],
                _money(account["equity"]),
                *(_money(modes[mode.label]["required"]) for mode in Mode),
                "-" if health is None or math.isnan(health) else f"{health:.2f}",
                "YES" if account["liquidatable"] else "no",
                efficiency,
            ]
        )
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows)]
    lines = []
    for index, row in enumerate([headers, *rows]):
        cells = [cell.ljust(width) if column == 0 else cell.rjust(width) for column, (cell, width) in enumerate(zip(row, widths))]
        lines.append("  ".join(cells).rstrip())
        if index == 0:
            lines.append("  ".join("-" * width for width in widths))
    lines.append("")
    lines.append("req = collateral each mode requires; efficiency = isolated req / portfolio req")
    return "\n".join(lines) + "\n"
