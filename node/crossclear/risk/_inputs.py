"""RISK + ACCOUNTS + HISTORY files into what the v2 methodology needs.

The RISK file is v1's with more `params`: the v2 keys are taken out here and the rest goes
through v1's parser unchanged, so both methodologies read one file the same way.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from crossclear._errors import UsageError
from crossclear.margin import MarginInputs, MarginParams, parse_inputs
from crossclear.margin._json import _read_json
from crossclear.margin._model import FloatArray
from crossclear.risk._history import read_history, require_window
from crossclear.risk._model import FHS_PARAM_NAMES, FhsParams, History, StressScenario
from crossclear.risk.forecast import FORECASTER_NAMES, SigmaForecast, sigma_forecast


@dataclass(frozen=True)
class EsInputs:
    """Everything `crossclear risk es` computes from."""

    margin: MarginInputs
    """v1's parsed market, instruments, book and parameters."""
    fhs: FhsParams
    """v2 parameters."""
    closes: FloatArray
    """(L + 1) x underlyings of the market, oldest first; 1.0 for underlyings no position uses."""
    dates: tuple[str, ...]
    """The L + 1 dates of `closes`."""
    forecast: SigmaForecast | None = None
    """Today's volatility from params.fhs_forecaster, fitted on the whole history (None: EWMA)."""


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, (int, float, str)):
        return f"{type(value).__name__} {value!r}"
    return "null" if value is None else ("a list" if isinstance(value, list) else "an object")


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(float(value)):
        raise UsageError(f"{where}: must be a finite number, got {_describe(value)}")
    return float(value)


def _open_unit(value: Any, where: str) -> float:
    number = _number(value, where)
    if not 0.0 < number < 1.0:
        raise UsageError(f"{where}: must be strictly between 0 and 1, got {value!r}")
    return number


def _positive_int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UsageError(f"{where}: must be an integer >= 1, got {_describe(value)}")
    return value


def _stress(value: Any, where: str, underlyings: tuple[str, ...]) -> tuple[StressScenario, ...]:
    if not isinstance(value, list):
        raise UsageError(f"{where}: must be a list, got {_describe(value)}")
    scenarios = []
    for index, raw in enumerate(value):
        at = f"{where}[{index}]"
        if not isinstance(raw, dict):
            raise UsageError(f"{at}: must be an object, got {_describe(raw)}")
        unknown = sorted(set(raw) - {"name", "returns", "weight"})
        if unknown:
            raise UsageError(f'{at}: unknown field "{unknown[0]}" (expected one of: name, returns, weight)')
        for key in ("name", "returns", "weight"):
            if key not in raw:
                raise UsageError(f'{at}: missing field "{key}"')
        name = raw["name"]
        if not isinstance(name, str) or not name:
            raise UsageError(f"{at}.name: must be a non-empty string, got {_describe(name)}")
        moves = raw["returns"]
        if not isinstance(moves, dict):
            raise UsageError(f"{at}.returns: must be an object, got {_describe(moves)}")
        for underlying in moves:
            if underlying not in underlyings:
                raise UsageError(f'{at}.returns: unknown underlying "{underlying}" (RISK file defines: {", ".join(underlyings)})')
        weight = _number(raw["weight"], f"{at}.weight")
        if weight < 0.0:
            raise UsageError(f"{at}.weight: must be >= 0, got {raw['weight']!r}")
        returns = tuple((u, _number(r, f"{at}.returns.{u}")) for u, r in moves.items())
        scenarios.append(StressScenario(name=name, returns=returns, weight=weight))
    return tuple(scenarios)


def parse_fhs_params(raw: Mapping[str, Any], label: str, underlyings: tuple[str, ...]) -> FhsParams:
    """The v2 keys of a RISK file's `params` (other keys are ignored here)."""
    overrides: dict[str, Any] = {}
    for key in FHS_PARAM_NAMES:
        if key not in raw:
            continue
        where = f"{label}: params.{key}"
        value = raw[key]
        if key in ("fhs_lambda", "fhs_confidence"):
            overrides[key] = _open_unit(value, where)
        elif key in ("fhs_lookback_days", "fhs_mpor_days", "forecast_window_days", "forecast_refit_days"):
            overrides[key] = _positive_int(value, where)
        elif key == "fhs_forecaster":
            if not isinstance(value, str) or value not in FORECASTER_NAMES:
                raise UsageError(f"{where}: must be one of {', '.join(FORECASTER_NAMES)}, got {_describe(value)}")
            overrides[key] = value
        elif key == "apc_vol_floor":
            if not isinstance(value, bool):
                raise UsageError(f"{where}: must be true or false, got {_describe(value)}")
            overrides[key] = value
        else:
            overrides[key] = _stress(value, where, underlyings)
    return FhsParams(**overrides)


def split_risk_document(document: Any, label: str) -> tuple[Any, Mapping[str, Any]]:
    """(the RISK document v1's parser accepts, the raw v2 params), rejecting unknown params."""
    if not isinstance(document, dict) or not isinstance(document.get("params", {}), dict):
        return document, {}
    params = dict(document.get("params") or {})
    known = {f for f in MarginParams.__dataclass_fields__} | set(FHS_PARAM_NAMES)
    unknown = sorted(set(params) - known)
    if unknown:
        raise UsageError(f'{label}: params: unknown field "{unknown[0]}" (expected one of: {", ".join(sorted(known))})')
    v2 = {key: params.pop(key) for key in FHS_PARAM_NAMES if key in params}
    return {**document, "params": params}, v2


def underlyings_in_use(inputs: MarginInputs) -> tuple[str, ...]:
    """Names of the underlyings some position refers to, in market order."""
    used = set(inputs.instruments.underlying[inputs.book.position_instrument].tolist())
    return tuple(name for index, name in enumerate(inputs.market.underlying_names) if index in used)


def closes_for_market(history: History, inputs: MarginInputs, end: int, rows: int) -> FloatArray:
    """history rows end-rows+1..end, one column per market underlying (1.0 where unused)."""
    closes = np.ones((rows, len(inputs.market.underlying_names)))
    for name in underlyings_in_use(inputs):
        column = history.column(name)
        closes[:, inputs.market.underlying_names.index(name)] = history.closes[end - rows + 1 : end + 1, column]
    return closes


def parse_es_inputs(risk: Any, accounts: Any, history: History, labels: tuple[str, str, str], forecast: bool = True) -> EsInputs:
    """Build v2 inputs from decoded documents and a history (labels name the files in errors);
    `forecast`: fit params.fhs_forecaster on the whole history for today's volatility."""
    risk_label, accounts_label, history_label = labels
    v1_document, raw_v2 = split_risk_document(risk, risk_label)
    margin = parse_inputs(v1_document, accounts, risk_label, accounts_label)
    fhs = parse_fhs_params(raw_v2, risk_label, margin.market.underlying_names)
    rows = fhs.fhs_lookback_days + 1
    require_window(history, history_label, underlyings_in_use(margin), rows)
    end = len(history.dates) - 1
    closes = closes_for_market(history, margin, end, rows)
    today = None
    if forecast and fhs.fhs_forecaster != "ewma":
        used = [margin.market.underlying_names.index(name) for name in underlyings_in_use(margin)]
        today = sigma_forecast(closes_for_market(history, margin, end, end + 1), used, fhs.fhs_forecaster, fhs.forecast_settings())
    return EsInputs(margin=margin, fhs=fhs, closes=closes, dates=history.dates[end - rows + 1 :], forecast=today)


def load_es_inputs(risk_path: Path, accounts_path: Path, history_path: Path) -> EsInputs:
    """Parse and validate the three files; raises UsageError naming the first problem."""
    history = read_history(history_path)
    return parse_es_inputs(_read_json(risk_path), _read_json(accounts_path), history, (str(risk_path), str(accounts_path), str(history_path)))
