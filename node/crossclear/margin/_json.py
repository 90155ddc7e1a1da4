"""RISK and ACCOUNTS files: strict parsing into arrays, and results back to JSON.

Every problem is reported as one line that names the file, the account or entry, and what
is wrong, before any computation runs: a bad file never produces a partial result.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from crossclear._errors import UsageError
from crossclear.margin._model import Book, InstrumentKey, InstrumentKind, Instruments, MarginParams, MarginResult, Market, Mode
from crossclear.margin.methodology import ewma_daily_vol


@dataclass(frozen=True)
class MarginInputs:
    """Everything parsed from a RISK file and an ACCOUNTS file, ready for either engine."""

    params: MarginParams
    """Methodology parameters (defaults overridden by RISK `params`)."""
    market: Market
    """Underlyings, assets and chains, indexed in the order they first appear."""
    instruments: Instruments
    """Distinct instruments the accounts' positions refer to."""
    book: Book
    """Positions and collateral of every account, in CSR form, in input order."""
    account_ids: tuple[str, ...]
    """Account ids in input order (row k of the book is account_ids[k])."""


class _InputProblem(Exception):
    """Raised deep inside parsing with the location already attached."""


def _fail(where: str, problem: str) -> NoReturn:
    raise _InputProblem(f"{where}: {problem}")


def _reject_constant(token: str) -> float:
    raise ValueError(f"{token} is not a finite number")


def _read_json(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise UsageError(f"{path}: cannot read: {error.strerror or error}") from None
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except ValueError as error:
        raise UsageError(f"{path}: not valid JSON: {error}") from None


def _object(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        _fail(where, f"must be an object, got {_describe(value)}")
    return value


def _list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        _fail(where, f"must be a list, got {_describe(value)}")
    return value


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, (int, float)):
        return f"number {value!r}"
    if isinstance(value, str):
        return f"string {value!r}"
    return type(value).__name__ if not isinstance(value, (list, dict)) else ("a list" if isinstance(value, list) else "an object")


def _require(entry: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in entry:
        _fail(where, f'missing field "{key}"')
    return entry[key]


def _only_keys(entry: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(entry) - allowed)
    if unknown:
        _fail(where, f'unknown field "{unknown[0]}" (expected one of: {", ".join(sorted(allowed))})')


def _number(value: Any, where: str, *, minimum: float | None = None, strictly_above: float | None = None, maximum: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        _fail(where, f"must be a number, got {_describe(value)}")
    number = float(value)
    if not math.isfinite(number):
        _fail(where, f"must be a finite number, got {value!r}")
    if minimum is not None and number < minimum:
        _fail(where, f"must be >= {minimum:g}, got {value!r}")
    if strictly_above is not None and number <= strictly_above:
        _fail(where, f"must be > {strictly_above:g}, got {value!r}")
    if maximum is not None and number > maximum:
        _fail(where, f"must be <= {maximum:g}, got {value!r}")
    return number


def _name(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        _fail(where, f"must be a non-empty string, got {_describe(value)}")
    return value


# --------------------------------------------------------------------------- RISK


_PARAM_BOUNDS: dict[str, dict[str, float]] = {
    "extreme_move": {"minimum": 0.0},
    "extreme_weight": {"minimum": 0.0},
    "pm_floor_rate": {"minimum": 0.0},
    "im_multiplier": {"minimum": 1.0},
    "perp_im_rate": {"minimum": 0.0},
    "perp_mm_rate": {"minimum": 0.0},
    "short_option_im_rate": {"minimum": 0.0},
    "short_option_im_floor_rate": {"minimum": 0.0},
    "short_option_mm_rate": {"minimum": 0.0},
    "haircut_z": {"minimum": 0.0},
    "haircut_liq_days": {"minimum": 0.0},
    "haircut_conc_k": {"minimum": 0.0},
    "haircut_max": {"minimum": 0.0, "maximum": 1.0},
    "ewma_lambda": {"strictly_above": 0.0, "maximum": 1.0},
}


def _parse_params(raw: Any, where: str) -> MarginParams:
    if raw is None:
        return MarginParams()
    entries = _object(raw, where)
    _only_keys(entries, {f.name for f in fields(MarginParams)}, where)
    overrides: dict[str, Any] = {}
    for key, value in entries.items():
        at = f"{where}.{key}"
        if key == "price_steps":
            if isinstance(value, bool) or not isinstance(value, int) or value < 2:
                _fail(at, f"must be an integer >= 2, got {_describe(value)}")
            overrides[key] = value
        elif key == "vol_shocks":
            shocks = _list(value, at)
            if not shocks:
                _fail(at, "must list at least one shock")
            overrides[key] = tuple(_number(s, f"{at}[{i}]", strictly_above=-1.0) for i, s in enumerate(shocks))
        else:
            overrides[key] = _number(value, at, **_PARAM_BOUNDS[key])
    return MarginParams(**overrides)


def _parse_risk(document: Any, accounts_chains: tuple[str, ...]) -> tuple[MarginParams, Market]:
    risk = _object(document, "top level")
    _only_keys(risk, {"underlyings", "assets", "params"}, "top level")
    params = _parse_params(risk.get("params"), "params")

    underlyings = _object(_require(risk, "underlyings", "top level"), "underlyings")
    names, prices, vols, ranges = [], [], [], []
    for name, raw in underlyings.items():
        where = f"underlyings.{name}"
        entry = _object(raw, where)
        _only_keys(entry, {"price", "vol", "scan_range"}, where)
        names.append(name)
        prices.append(_number(_require(entry, "price", where), f"{where}.price", strictly_above=0.0))
        vols.append(_number(_require(entry, "vol", where), f"{where}.vol", minimum=0.0))
        ranges.append(_number(_require(entry, "scan_range", where), f"{where}.scan_range", minimum=0.0))

    assets = _object(_require(risk, "assets", "top level"), "assets")
    asset_names, asset_prices, base_haircuts, depths, daily_vols = [], [], [], [], []
    for name, raw in assets.items():
        where = f"assets.{name}"
        entry = _object(raw, where)
        _only_keys(entry, {"price", "base_haircut", "depth", "vol_daily", "price_history"}, where)
        asset_names.append(name)
        asset_prices.append(_number(_require(entry, "price", where), f"{where}.price", minimum=0.0))
        base_haircuts.append(_number(_require(entry, "base_haircut", where), f"{where}.base_haircut", minimum=0.0, maximum=1.0))
        depths.append(_number(_require(entry, "depth", where), f"{where}.depth", strictly_above=0.0))
        if "vol_daily" in entry:
            daily_vols.append(_number(entry["vol_daily"], f"{where}.vol_daily", minimum=0.0))
        elif "price_history" in entry:
            history = _list(entry["price_history"], f"{where}.price_history")
            if len(history) < 2:
                _fail(f"{where}.price_history", f"needs at least 2 prices to form a return, got {len(history)}")
            points = [_number(p, f"{where}.price_history[{i}]", strictly_above=0.0) for i, p in enumerate(history)]
            daily_vols.append(ewma_daily_vol(points, params.ewma_lambda))
        else:
            _fail(where, 'needs "vol_daily" or "price_history"')

    market = Market(
        underlying_names=tuple(names),
        underlying_price=np.array(prices, dtype=np.float64),
        underlying_vol=np.array(vols, dtype=np.float64),
        underlying_scan_range=np.array(ranges, dtype=np.float64),
        asset_names=tuple(asset_names),
        asset_price=np.array(asset_prices, dtype=np.float64),
        asset_base_haircut=np.array(base_haircuts, dtype=np.float64),
        asset_depth=np.array(depths, dtype=np.float64),
        asset_daily_vol=np.array(daily_vols, dtype=np.float64),
        chain_names=accounts_chains,
    )
    return params, market


# ----------------------------------------------------------------------- ACCOUNTS

_POSITION_FIELDS = {"chain", "kind", "underlying", "qty", "entry"}
_OPTION_FIELDS = _POSITION_FIELDS | {"type", "strike", "expiry"}


@dataclass
class _BookBuilder:
    underlying_index: dict[str, int]
    asset_index: dict[str, int]
    chain_index: dict[str, int]
    instrument_index: dict[InstrumentKey, int]

    def chain(self, name: str) -> int:
        return self.chain_index.setdefault(name, len(self.chain_index))

    def instrument(self, key: InstrumentKey) -> int:
        return self.instrument_index.setdefault(key, len(self.instrument_index))


def _parse_accounts(document: Any, market_names: tuple[dict[str, int], dict[str, int]]) -> tuple[tuple[str, ...], Book, Instruments, tuple[str, ...]]:
    underlying_index, asset_index = market_names
    top = _object(document, "top level")
    _only_keys(top, {"accounts"}, "top level")
    accounts = _list(_require(top, "accounts", "top level"), "accounts")
    builder = _BookBuilder(underlying_index, asset_index, {}, {})
    ids: list[str] = []
    seen: set[str] = set()
    position_offsets, collateral_offsets = [0], [0]
    position_rows: list[InstrumentKey] = []
    collateral_rows: list[tuple[int, int, float]] = []

    for number, raw in enumerate(accounts):
        account = _object(raw, f"accounts[{number}]")
        account_id = _name(_require(account, "id", f"accounts[{number}]"), f"accounts[{number}].id")
        where = f'account "{account_id}"'
        if account_id in seen:
            _fail(where, "appears twice (account ids must be unique)")
        seen.add(account_id)
        _only_keys(account, {"id", "collateral", "positions"}, where)
        ids.append(account_id)

        for index, raw_entry in enumerate(_list(account.get("collateral", []), f"{where} collateral")):
            at = f"{where} collateral[{index}]"
            entry = _object(raw_entry, at)
            _only_keys(entry, {"chain", "asset", "amount"}, at)
            chain = builder.chain(_name(_require(entry, "chain", at), f"{at}.chain"))
            asset_name = _name(_require(entry, "asset", at), f"{at}.asset")
            if asset_name not in asset_index:
                _fail(at, f'unknown asset "{asset_name}" (RISK file defines: {", ".join(asset_index) or "none"})')
            amount = _number(_require(entry, "amount", at), f"{at}.amount", minimum=0.0)
            collateral_rows.append((asset_index[asset_name], chain, amount))
        collateral_offsets.append(len(collateral_rows))

        for index, raw_entry in enumerate(_list(account.get("positions", []), f"{where} positions")):
            at = f"{where} positions[{index}]"
            position_rows.append(_parse_position(_object(raw_entry, at), at, builder))
        position_offsets.append(len(position_rows))

    instruments = Instruments.from_keys(builder.instrument_index)
    book = Book(
        position_offsets=np.array(position_offsets, dtype=np.int64),
        position_instrument=np.array([row[0] for row in position_rows], dtype=np.int32),
        position_chain=np.array([row[1] for row in position_rows], dtype=np.int32),
        position_qty=np.array([row[2] for row in position_rows], dtype=np.float64),
        position_entry=np.array([row[3] for row in position_rows], dtype=np.float64),
        collateral_offsets=np.array(collateral_offsets, dtype=np.int64),
        collateral_asset=np.array([row[0] for row in collateral_rows], dtype=np.int32),
        collateral_chain=np.array([row[1] for row in collateral_rows], dtype=np.int32),
        collateral_amount=np.array([row[2] for row in collateral_rows], dtype=np.float64),
    )
    return tuple(ids), book, instruments, tuple(builder.chain_index)


def _parse_position(entry: Mapping[str, Any], at: str, builder: _BookBuilder) -> InstrumentKey:
    kind_name = _require(entry, "kind", at)
    if kind_name not in ("perp", "option"):
        _fail(f"{at}.kind", f'must be "perp" or "option", got {_describe(kind_name)}')
    _only_keys(entry, _POSITION_FIELDS if kind_name == "perp" else _OPTION_FIELDS, at)
    chain = builder.chain(_name(_require(entry, "chain", at), f"{at}.chain"))
    underlying_name = _name(_require(entry, "underlying", at), f"{at}.underlying")
    if underlying_name not in builder.underlying_index:
        known = ", ".join(builder.underlying_index) or "none"
        _fail(at, f'unknown underlying "{underlying_name}" (RISK file defines: {known})')
    underlying = builder.underlying_index[underlying_name]
    qty = _number(_require(entry, "qty", at), f"{at}.qty")
    entry_price = _number(_require(entry, "entry", at), f"{at}.entry", minimum=0.0)
    if kind_name == "perp":
        return builder.instrument((underlying, InstrumentKind.PERP, 0.0, 0.0)), chain, qty, entry_price
    if "strike" not in entry:
        _fail(at, 'option without "strike"')
    option_type = _require(entry, "type", at)
    if option_type not in ("call", "put"):
        _fail(f"{at}.type", f'must be "call" or "put", got {_describe(option_type)}')
    strike = _number(entry["strike"], f"{at}.strike", strictly_above=0.0)
    expiry = _number(_require(entry, "expiry", at), f"{at}.expiry")
    kind = InstrumentKind.CALL if option_type == "call" else InstrumentKind.PUT
    return builder.instrument((underlying, kind, strike, expiry)), chain, qty, entry_price


def load_inputs(risk_path: Path, accounts_path: Path) -> MarginInputs:
    """Parse and validate both files; raises UsageError naming the first problem found."""
    return parse_inputs(_read_json(risk_path), _read_json(accounts_path), str(risk_path), str(accounts_path))


def parse_inputs(risk: Any, accounts: Any, risk_label: str = "RISK", accounts_label: str = "ACCOUNTS") -> MarginInputs:
    """Build engine inputs from decoded RISK and ACCOUNTS documents (labels name them in errors)."""
    # Underlyings and assets come from RISK, chains from ACCOUNTS: read the names first so
    # the accounts can be checked against them, then give the market its chains.
    try:
        params, market = _parse_risk(risk, ())
    except _InputProblem as problem:
        raise UsageError(f"{risk_label}: {problem}") from None
    names = ({n: i for i, n in enumerate(market.underlying_names)}, {n: i for i, n in enumerate(market.asset_names)})
    try:
        ids, book, instruments, chains = _parse_accounts(accounts, names)
    except _InputProblem as problem:
        raise UsageError(f"{accounts_label}: {problem}") from None
    market = replace(market, chain_names=chains)
    return MarginInputs(params=params, market=market, instruments=instruments, book=book, account_ids=ids)


def result_to_json(account_ids: tuple[str, ...], result: MarginResult) -> dict[str, Any]:
    """The JSON output document: one object per account, in input order."""
    rows = []
    for row, account_id in enumerate(account_ids):
        health = float(result.health[row])
        rows.append(
            {
                "id": account_id,
                "collateral_value": float(result.collateral_value[row]),
                "upnl": float(result.upnl[row]),
                "equity": float(result.equity[row]),
                "modes": {
                    mode.label: {
                        "im": float(result.im[row, mode]),
                        "mm": float(result.mm[row, mode]),
                        "required": float(result.required[row, mode]),
                    }
                    for mode in Mode
                },
                "health": None if math.isnan(health) else health,
                "liquidatable": bool(result.liquidatable[row]),
            }
        )
    return {"accounts": rows}
