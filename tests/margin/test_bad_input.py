"""Bad input exits 2 with one line naming the account, the entry and the problem; nothing on stdout."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from crossclear._cli import main

from .conftest import default_risk

GOOD_POSITION = {"chain": "a", "kind": "perp", "underlying": "ETH", "qty": 1, "entry": 3000}
GOOD_OPTION = {"chain": "a", "kind": "option", "underlying": "ETH", "type": "call", "strike": 3000, "expiry": 0.1, "qty": -1, "entry": 100}


def accounts_with(*positions: dict[str, Any], collateral: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"accounts": [
        {"id": "ok", "positions": [GOOD_POSITION]},
        {"id": "bob", "collateral": collateral or [], "positions": list(positions)},
    ]}


def run_cli(tmp_path: Path, risk: Any, accounts: Any, raw_risk: str | None = None, raw_accounts: str | None = None) -> subprocess.CompletedProcess[str]:
    """Runs `crossclear margin` in this process (the exit path is the same as the console script's)."""
    risk_path, accounts_path = tmp_path / "risk.json", tmp_path / "accounts.json"
    risk_path.write_text(raw_risk if raw_risk is not None else json.dumps(risk))
    accounts_path.write_text(raw_accounts if raw_accounts is not None else json.dumps(accounts))
    arguments = ["margin", "--risk", str(risk_path), "--accounts", str(accounts_path)]
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        status = main(arguments)
    return subprocess.CompletedProcess(arguments, status, stdout.getvalue(), stderr.getvalue())


def assert_rejected(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


CASES = {
    "unknown underlying": (None, accounts_with({**GOOD_POSITION, "underlying": "DOGE"}),
                           ['accounts.json: account "bob" positions[0]', 'unknown underlying "DOGE"']),
    "unknown asset": (None, accounts_with(collateral=[{"chain": "a", "asset": "SHIB", "amount": 1}]),
                      ['account "bob" collateral[0]', 'unknown asset "SHIB"']),
    "missing qty": (None, accounts_with({k: v for k, v in GOOD_POSITION.items() if k != "qty"}),
                    ['account "bob" positions[0]', 'missing field "qty"']),
    "option without strike": (None, accounts_with({k: v for k, v in GOOD_OPTION.items() if k != "strike"}),
                              ['account "bob" positions[0]', 'option without "strike"']),
    "wrong type qty": (None, accounts_with({**GOOD_POSITION, "qty": "1"}),
                       ['account "bob" positions[0].qty', "must be a number, got string '1'"]),
    "boolean amount": (None, accounts_with(collateral=[{"chain": "a", "asset": "USDC", "amount": True}]),
                       ['account "bob" collateral[0].amount', "must be a number, got boolean true"]),
    "negative amount": (None, accounts_with(collateral=[{"chain": "a", "asset": "USDC", "amount": -5}]),
                        ['collateral[0].amount', "must be >= 0"]),
    "bad option type": (None, accounts_with({**GOOD_OPTION, "type": "straddle"}),
                        ['positions[0].type', 'must be "call" or "put"']),
    "bad kind": (None, accounts_with({**GOOD_POSITION, "kind": "future"}),
                 ['positions[0].kind', 'must be "perp" or "option"']),
    "zero strike": (None, accounts_with({**GOOD_OPTION, "strike": 0}), ['positions[0].strike', "must be > 0"]),
    "typo field": (None, accounts_with({**GOOD_POSITION, "quantity": 1}), ['positions[0]', 'unknown field "quantity"']),
    "perp with strike": (None, accounts_with({**GOOD_POSITION, "strike": 3000}), ['positions[0]', 'unknown field "strike"']),
    "duplicate id": (None, {"accounts": [{"id": "x"}, {"id": "x"}]}, ['account "x"', "appears twice"]),
    "missing id": (None, {"accounts": [{"positions": []}]}, ["accounts[0]", 'missing field "id"']),
    "accounts not a list": (None, {"accounts": {}}, ["accounts", "must be a list"]),
    "negative underlying price": ({"underlyings.ETH.price": -3000}, accounts_with(GOOD_POSITION),
                                  ["risk.json: underlyings.ETH.price", "must be > 0, got -3000"]),
    "negative vol": ({"underlyings.ETH.vol": -0.2}, accounts_with(GOOD_POSITION), ["underlyings.ETH.vol", "must be >= 0"]),
    "negative asset price": ({"assets.USDC.price": -1}, accounts_with(GOOD_POSITION), ["assets.USDC.price", "must be >= 0"]),
    "asset without vol": ({"assets.USDC.vol_daily": None}, accounts_with(GOOD_POSITION), ["assets.USDC", '"vol_daily" or "price_history"']),
    "short history": ({"assets.USDC.vol_daily": None, "assets.USDC.price_history": [1.0]}, accounts_with(GOOD_POSITION), ["assets.USDC.price_history", "at least 2 prices"]),
    "bad price_steps": ({"params.price_steps": 1}, accounts_with(GOOD_POSITION), ["params.price_steps", "integer >= 2"]),
    "unknown param": ({"params.haircut_zz": 1}, accounts_with(GOOD_POSITION), ["params", 'unknown field "haircut_zz"']),
    "haircut_max above 1": ({"params.haircut_max": 1.5}, accounts_with(GOOD_POSITION), ["params.haircut_max", "must be <= 1"]),
}


def apply_risk_edits(edits: dict[str, Any] | None) -> dict[str, Any]:
    risk = default_risk()
    for path, value in (edits or {}).items():
        *parents, leaf = path.split(".")
        node = risk
        for key in parents:
            node = node[key]
        if value is None:
            node.pop(leaf)
        else:
            node[leaf] = value
    return risk


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_rejected_with_one_line(tmp_path: Path, case: str) -> None:
    risk_edits, accounts, fragments = CASES[case]
    assert_rejected(run_cli(tmp_path, apply_risk_edits(risk_edits), accounts), *fragments)


def test_nan_literal_is_rejected(tmp_path: Path) -> None:
    raw = json.dumps(accounts_with(GOOD_POSITION)).replace('"qty": 1', '"qty": NaN')
    assert_rejected(run_cli(tmp_path, default_risk(), None, raw_accounts=raw), "accounts.json: not valid JSON", "NaN is not a finite number")


def test_overflowing_number_is_rejected(tmp_path: Path) -> None:
    raw = json.dumps(default_risk()).replace('"vol": 0.6', '"vol": 1e999')
    assert_rejected(run_cli(tmp_path, None, accounts_with(), raw_risk=raw), "underlyings.ETH.vol", "must be a finite number")


def test_invalid_json_is_rejected(tmp_path: Path) -> None:
    assert_rejected(run_cli(tmp_path, None, accounts_with(), raw_risk="{\"underlyings\": "), "risk.json: not valid JSON")


def test_missing_file_is_rejected_by_the_console_script(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "crossclear", "margin", "--risk", str(tmp_path / "nope.json"), "--accounts", str(tmp_path / "nope.json")],
        capture_output=True, text=True,
    )
    assert_rejected(result, "nope.json: cannot read: No such file or directory")
