"""The what-if form: checked here field by field, then answered by the node's SimulateMargin.

Every problem is a WhatIfError whose message names the field ("position 1: qty must be a
number, got 'abc'"); what the node itself refuses (INVALID_ARGUMENT) comes back with the
node's own message. Collateral to remove is typed in whole tokens ("250.5") and converted to
base units exactly with the holding's decimals; a fraction finer than the token allows is
refused rather than rounded.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from crossclear.dash.margins import check_account
from crossclear.v1 import margin_pb2

MAX_CHANGES = 64
MAX_MAGNITUDE = 1e15
_KINDS = {"perp": margin_pb2.INSTRUMENT_KIND_PERP, "call": margin_pb2.INSTRUMENT_KIND_CALL, "put": margin_pb2.INSTRUMENT_KIND_PUT}


class WhatIfError(ValueError):
    """A malformed what-if; the message is for the page."""


@dataclass(frozen=True)
class Removal:
    """Collateral to take away, before its decimals are known."""

    chain_id: int
    asset: str
    amount: Decimal
    """Whole tokens."""


@dataclass(frozen=True)
class WhatIf:
    """A checked what-if: the account, positions to add, collateral to remove."""

    account: str
    positions: tuple[margin_pb2.Position, ...]
    removals: tuple[Removal, ...]


def _text(row: dict[str, Any], key: str) -> str:
    value = row.get(key, "")
    if value is None:
        return ""
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        raise WhatIfError(f"{key} must be text or a number")
    return str(value).strip()


def _number(row: dict[str, Any], key: str, where: str, *, required: bool = True, positive: bool = False, nonzero: bool = False) -> float:
    text = _text(row, key)
    if not text:
        if required:
            raise WhatIfError(f"{where}: {key} is required")
        return 0.0
    try:
        value = float(text.replace(",", "").replace("_", ""))
    except ValueError:
        raise WhatIfError(f"{where}: {key} must be a number, got {text[:40]!r}") from None
    if not math.isfinite(value) or abs(value) > MAX_MAGNITUDE:
        raise WhatIfError(f"{where}: {key} must be a finite number of magnitude at most {MAX_MAGNITUDE:g}, got {text[:40]!r}")
    if positive and value <= 0:
        raise WhatIfError(f"{where}: {key} must be positive, got {text[:40]!r}")
    if nonzero and value == 0:
        raise WhatIfError(f"{where}: {key} must not be zero")
    if value < 0 and not nonzero:
        raise WhatIfError(f"{where}: {key} must not be negative, got {text[:40]!r}")
    return value


def _chain(row: dict[str, Any], where: str) -> int:
    text = _text(row, "chain_id")
    if not text.isdigit() or not 0 < int(text) < 2**63:
        raise WhatIfError(f"{where}: chain_id must be a chain id (a positive whole number), got {text[:40]!r}")
    return int(text)


def _rows(document: dict[str, Any], key: str) -> list[dict[str, Any]]:
    rows = document.get(key) or []
    if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
        raise WhatIfError(f"{key} must be a list of rows")
    # Rows left completely empty on the form are not changes.
    return [row for row in rows if any(str(value).strip() for name, value in row.items() if name not in ("kind", "chain_id") and value is not None)]


def parse(document: Any, now: float | None = None) -> WhatIf:
    """The form's JSON into a checked what-if."""
    if not isinstance(document, dict):
        raise WhatIfError("the what-if must be a JSON object")
    try:
        account = check_account(_text(document, "account"))
    except ValueError as error:
        raise WhatIfError(str(error)) from None
    positions = []
    for index, row in enumerate(_rows(document, "add_positions"), start=1):
        where = f"position {index}"
        kind_text = _text(row, "kind").lower() or "perp"
        if kind_text not in _KINDS:
            raise WhatIfError(f"{where}: kind must be perp, call or put, got {kind_text[:20]!r}")
        underlying = _text(row, "underlying")
        if not underlying or len(underlying) > 64:
            raise WhatIfError(f"{where}: underlying must be 1 to 64 characters (e.g. ETH)")
        position = margin_pb2.Position(
            chain_id=_chain(row, where),
            underlying=underlying,
            kind=_KINDS[kind_text],
            qty=_number(row, "qty", where, nonzero=True),
            entry=_number(row, "entry", where, required=kind_text == "perp"),
        )
        if kind_text != "perp":
            position.strike = _number(row, "strike", where, positive=True)
            days = _number(row, "expiry_days", where, positive=True)
            position.expiry_timestamp = float(int((time.time() if now is None else now) + days * 86400))
        positions.append(position)
    removals = []
    for index, row in enumerate(_rows(document, "remove_collateral"), start=1):
        where = f"removal {index}"
        asset = _text(row, "asset")
        if not asset or len(asset) > 64:
            raise WhatIfError(f"{where}: asset must be 1 to 64 characters (e.g. USDC)")
        amount_text = _text(row, "amount").replace(",", "").replace("_", "")
        try:
            amount = Decimal(amount_text)
        except InvalidOperation:
            raise WhatIfError(f"{where}: amount must be a number of whole tokens, got {amount_text[:40]!r}") from None
        if not amount.is_finite() or amount <= 0:
            raise WhatIfError(f"{where}: amount must be a positive number of tokens, got {amount_text[:40]!r}")
        removals.append(Removal(_chain(row, where), asset, amount))
    if not positions and not removals:
        raise WhatIfError("add at least one position or one collateral removal")
    if len(positions) + len(removals) > MAX_CHANGES:
        raise WhatIfError(f"at most {MAX_CHANGES} changes per what-if")
    return WhatIf(account, tuple(positions), tuple(removals))


def to_request(what_if: WhatIf, holdings: list[margin_pb2.CollateralHolding]) -> margin_pb2.SimulateMarginRequest:
    """The SimulateMargin request, with removals converted to base units by the holdings' decimals."""
    request = margin_pb2.SimulateMarginRequest(account=what_if.account, add_positions=list(what_if.positions))
    for index, removal in enumerate(what_if.removals, start=1):
        holding = next((h for h in holdings if h.chain_id == removal.chain_id and h.asset.lower() == removal.asset.lower()), None)
        if holding is None:
            held = ", ".join(f"{h.asset} on chain {h.chain_id}" for h in holdings) or "nothing"
            raise WhatIfError(f"removal {index}: the account holds no {removal.asset} on chain {removal.chain_id} (it holds {held})")
        units = removal.amount.scaleb(holding.decimals)
        if units != units.to_integral_value():
            raise WhatIfError(f"removal {index}: {holding.asset} has {holding.decimals} decimals; {removal.amount:f} is finer than that")
        request.remove_collateral.add(chain_id=holding.chain_id, asset=holding.asset, amount_units=str(int(units)))
    return request


def describe(request: margin_pb2.SimulateMarginRequest) -> list[str]:
    """The request in words, for the page."""
    lines = []
    for position in request.add_positions:
        kind = {margin_pb2.INSTRUMENT_KIND_PERP: "perp", margin_pb2.INSTRUMENT_KIND_CALL: "call", margin_pb2.INSTRUMENT_KIND_PUT: "put"}[position.kind]
        line = f"add {position.qty:+g} {position.underlying} {kind} on chain {position.chain_id}"
        line += f" at {position.entry:g}" if position.entry else ""
        if kind != "perp":
            line += f", strike {position.strike:g}, expiry {time.strftime('%Y-%m-%d', time.gmtime(position.expiry_timestamp))}"
        lines.append(line)
    for removal in request.remove_collateral:
        lines.append(f"remove {removal.amount_units} base units of {removal.asset} on chain {removal.chain_id}")
    return lines
