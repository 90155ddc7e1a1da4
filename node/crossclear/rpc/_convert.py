"""Between the clearing state's types and the API's protobuf messages, with input bounds.

Every number from a request is checked here (finite, within bounds) so the servicers can
answer INVALID_ARGUMENT with a message that names the field.
"""

from __future__ import annotations

import math

from crossclear.margin import InstrumentKind
from crossclear.node.clearing import AccountMargin, ClearingError, PositionRecord
from crossclear.v1 import margin_pb2

#: Most what-if changes one SimulateMargin request may carry.
MAX_SIMULATED_CHANGES = 64
#: Largest absolute quantity, price or amount accepted from a request.
MAX_MAGNITUDE = 1e15
MAX_NAME_LENGTH = 64

_KINDS = {
    margin_pb2.INSTRUMENT_KIND_PERP: InstrumentKind.PERP,
    margin_pb2.INSTRUMENT_KIND_CALL: InstrumentKind.CALL,
    margin_pb2.INSTRUMENT_KIND_PUT: InstrumentKind.PUT,
}
_PROTO_KINDS = {kind: proto for proto, kind in _KINDS.items()}


class InvalidRequest(ValueError):
    """A request field is out of bounds; the message names the field."""


def bounded(value: float, field: str, *, allow_negative: bool = True) -> float:
    """A finite number within the API's magnitude bounds."""
    if not math.isfinite(value) or abs(value) > MAX_MAGNITUDE:
        raise InvalidRequest(f"{field} must be a finite number of magnitude at most {MAX_MAGNITUDE:g}, got {value!r}")
    if not allow_negative and value < 0:
        raise InvalidRequest(f"{field} must not be negative, got {value!r}")
    return value


def base_units(value: str, field: str) -> int:
    """A positive decimal integer of token base units (no signs, no exponents, no floats)."""
    if not value or not (value.isascii() and value.isdigit()) or len(value) > 78:
        raise InvalidRequest(f"{field} must be a positive decimal integer of base units, got {value[:80]!r}")
    units = int(value)
    if units <= 0:
        raise InvalidRequest(f"{field} must be positive, got {units}")
    return units


def short_name(value: str, field: str) -> str:
    """A non-empty name of at most MAX_NAME_LENGTH characters."""
    if not value or len(value) > MAX_NAME_LENGTH:
        raise InvalidRequest(f"{field} must be 1 to {MAX_NAME_LENGTH} characters, got {len(value)}")
    return value


def position_from_proto(position: margin_pb2.Position, field: str) -> tuple[str, PositionRecord]:
    """A what-if position from a request."""
    if position.kind not in _KINDS:
        raise InvalidRequest(f"{field}.kind must be PERP, CALL or PUT")
    kind = _KINDS[position.kind]
    record = PositionRecord(
        chain_id=position.chain_id,
        underlying=short_name(position.underlying, f"{field}.underlying"),
        kind=kind,
        qty=bounded(position.qty, f"{field}.qty"),
        entry=bounded(position.entry, f"{field}.entry", allow_negative=False),
        strike=bounded(position.strike, f"{field}.strike", allow_negative=False),
        expiry_timestamp=bounded(position.expiry_timestamp, f"{field}.expiry_timestamp", allow_negative=False),
    )
    if kind != InstrumentKind.PERP and record.strike <= 0:
        raise InvalidRequest(f"{field}.strike must be positive for an option")
    position_id = position.position_id or f"simulated-{field}"
    return short_name(position_id, f"{field}.position_id"), record


def margin_to_proto(margin: AccountMargin) -> margin_pb2.AccountMargin:
    """The API's view of an account's margin."""
    message = margin_pb2.AccountMargin(
        account=margin.account,
        equity=margin.equity,
        collateral_value=margin.collateral_value,
        upnl=margin.upnl,
        liquidatable=margin.liquidatable,
        state_height=margin.height,
        prices_fresh=margin.prices_fresh,
        stale_feeds=list(margin.stale_feeds),
    )
    for line in margin.collateral:
        message.collateral.add(
            chain_id=line.chain_id, asset=line.asset, amount=line.amount, price=line.price, haircut=line.haircut, value=line.value,
            amount_units=str(line.units), decimals=line.decimals,
        )
    for position in margin.positions:
        record = position.record
        message.positions.add(
            position_id=position.position_id,
            chain_id=record.chain_id,
            underlying=record.underlying,
            kind=_PROTO_KINDS[record.kind],
            qty=record.qty,
            entry=record.entry,
            strike=record.strike,
            expiry_timestamp=record.expiry_timestamp,
            mark=position.mark,
            upnl=position.upnl,
        )
    for index, mode in enumerate((message.isolated, message.cross_siloed, message.cross, message.portfolio)):
        mode.im = margin.im[index]
        mode.mm = margin.mm[index]
        mode.required = margin.required[index]
    if margin.health is not None:
        message.health = margin.health
    return message


__all__ = ["ClearingError", "InvalidRequest", "base_units", "bounded", "margin_to_proto", "position_from_proto", "short_name"]
