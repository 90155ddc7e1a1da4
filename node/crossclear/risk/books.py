"""Standard books for backtests: the kinds of account a venue sees, on any set of underlyings.

Book types (the account id is "<type>-<n>"):
- outright-long: long a perpetual;
- naked-short-put / naked-short-call: a short 30-day option 10% out of the money;
- covered-call: long a perpetual, short a 30-day call 5% out of the money;
- call-spread: long the 30-day at-the-money call, short the 10% out-of-the-money one;
- hedged-pair: long one underlying's perpetual, short an equal notional of the next one's
  (v1's grid margins each leg alone; v2 sees that they move together).
Every underlying is priced 100 in the RISK file: the backtest re-strikes the book at each
day's price level, so only moneyness and notional matter.
"""

from __future__ import annotations

from typing import Any

REFERENCE_PRICE = 100.0
UNITS = 100.0
THIRTY_DAYS = 30.0 / 365.0

#: (implied vol, v1 scan range) of the underlyings the standard books know; others get DEFAULT.
MARKET_INPUTS = {"SPX": (0.18, 0.06), "NDX": (0.24, 0.08), "WTI": (0.35, 0.12), "BTC": (0.65, 0.20), "ETH": (0.80, 0.25), "SOL": (0.95, 0.30)}
DEFAULT_INPUTS = (0.30, 0.10)


def standard_risk(underlyings: tuple[str, ...]) -> dict[str, Any]:
    """A RISK document for the standard books (USDC collateral; v2 defaults)."""
    return {
        "underlyings": {
            name: {"price": REFERENCE_PRICE, "vol": MARKET_INPUTS.get(name, DEFAULT_INPUTS)[0], "scan_range": MARKET_INPUTS.get(name, DEFAULT_INPUTS)[1]}
            for name in underlyings
        },
        "assets": {"USDC": {"price": 1, "base_haircut": 0, "depth": 1e10, "vol_daily": 0.0005}},
        "params": {},
    }


def _perp(underlying: str, qty: float) -> dict[str, Any]:
    return {"chain": "chain-a", "kind": "perp", "underlying": underlying, "qty": qty, "entry": REFERENCE_PRICE}


def _option(underlying: str, kind: str, moneyness: float, qty: float, chain: str = "chain-b") -> dict[str, Any]:
    return {
        "chain": chain, "kind": "option", "underlying": underlying, "type": kind,
        "strike": REFERENCE_PRICE * moneyness, "expiry": THIRTY_DAYS, "qty": qty, "entry": 0.0,
    }


def standard_accounts(underlyings: tuple[str, ...], copies: int = 1) -> dict[str, Any]:
    """An ACCOUNTS document: every book type on every underlying, `copies` times over."""
    books: list[tuple[str, list[dict[str, Any]]]] = []
    for index, name in enumerate(underlyings):
        books += [
            ("outright-long", [_perp(name, UNITS)]),
            ("naked-short-put", [_option(name, "put", 0.9, -UNITS)]),
            ("naked-short-call", [_option(name, "call", 1.1, -UNITS)]),
            ("covered-call", [_perp(name, UNITS), _option(name, "call", 1.05, -UNITS)]),
            ("call-spread", [_option(name, "call", 1.0, UNITS), _option(name, "call", 1.1, -UNITS, "chain-a")]),
        ]
        if len(underlyings) > 1:
            other = underlyings[(index + 1) % len(underlyings)]
            books.append(("hedged-pair", [_perp(name, UNITS), {**_perp(other, -UNITS), "chain": "chain-b"}]))
    accounts = []
    counters: dict[str, int] = {}
    for _ in range(copies):
        for kind, positions in books:
            counters[kind] = counters.get(kind, 0) + 1
            accounts.append({"id": f"{kind}-{counters[kind]}", "collateral": [{"chain": "chain-a", "asset": "USDC", "amount": 10_000.0}], "positions": positions})
    return {"accounts": accounts}
